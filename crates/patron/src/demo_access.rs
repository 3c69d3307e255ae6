//! The demo's organisation (issue 21): a head office, a region with three stores whose codes
//! are the stores the demo orders name (so customers get their home store from their first
//! order), and a user at each level, whose logins are printed.

use anyhow::Result;
use patron_store::access::roles::RoleInput;
use patron_store::access::units::NewUnit;
use patron_store::access::Permission;
use patron_store::users::{Actor, NewUser, Role};
use patron_store::Store;

/// The region's stores: codes as the demo orders write them.
const STORES: [&str; 3] = ["上海南京西路店", "上海陆家嘴店", "上海徐家汇店"];

/// Creates the units, two custom roles and the users (once); returns `(email, what, password)`
/// for each user made now, to print.
pub async fn seed(store: &Store, password: impl Fn() -> String) -> Result<Vec<(String, String, String)>> {
    let cli = Actor::cli();
    if store.unit_by_code("HQ").await?.is_some() {
        return Ok(Vec::new());
    }
    let unit = |name: &str, code: &str, kind: &str, parent: Option<i64>| NewUnit {
        name: name.into(),
        code: code.into(),
        kind: kind.into(),
        parent_id: parent,
    };
    let hq = store.create_unit(&cli, unit("总部", "HQ", "branch", None)).await?;
    let east = store.create_unit(&cli, unit("华东区", "EAST", "region", Some(hq.id))).await?;
    let mut stores = Vec::new();
    for code in STORES {
        stores.push(store.create_unit(&cli, unit(code, code, "store", Some(east.id))).await?);
    }
    // A manager's permissions without `all_customers`: a region's or a store's manager.
    let scoped: Vec<String> =
        Role::Manager.permissions().list().into_iter().filter(|p| *p != Permission::AllCustomers).map(|p| p.as_str().to_owned()).collect();
    for name in ["region-manager", "store-manager"] {
        store.create_role(&cli, &RoleInput { name: name.into(), permissions: scoped.clone() }).await?;
    }
    let mut made = Vec::new();
    let mut user = |email: &str, name: &str, role: &str, units: Vec<i64>, what: &str| {
        let p = password();
        made.push((email.to_owned(), what.to_owned(), p.clone()));
        NewUser { email: email.into(), name: name.into(), role: role.into(), unit_ids: units, password: Some(p) }
    };
    let mut users = vec![
        user("hq@demo.patron.local", "总部运营 周敏", "manager", vec![hq.id], "head office: every customer"),
        user("east@demo.patron.local", "华东区经理 陈立", "region-manager", vec![east.id], "region: its three stores"),
    ];
    for (i, s) in stores.iter().enumerate() {
        users.push(user(
            &format!("store{}@demo.patron.local", i + 1),
            &format!("{} 店长", s.name),
            "store-manager",
            vec![s.id],
            &format!("store manager: {}", s.name),
        ));
        users.push(user(
            &format!("staff{}@demo.patron.local", i + 1),
            &format!("{} 店员", s.name),
            "agent",
            vec![s.id],
            &format!("store staff: {}", s.name),
        ));
    }
    for u in &users {
        store.create_user_as(&cli, u).await?;
    }
    Ok(made)
}
