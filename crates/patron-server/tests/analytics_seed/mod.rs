//! The analytics tests' seed, shared by the API and browser suites (a directory module, so
//! cargo does not build it as a test of its own).
#![allow(dead_code)]

use chrono::{Duration, NaiveDate};
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::users::{Actor, Role};

use crate::common::TestApp;

/// Customers in the seed.
pub const CUSTOMERS: usize = 60;

/// A deterministic base, as of the test clock (2026-06-30): every tenth customer is a prospect,
/// every tenth + 1 bought once, the rest buy every 10–59 days from a staggered start, and some
/// of them stopped long ago (churned). Every third customer belongs to agent@example.com.
pub async fn seed(app: &TestApp) -> (String, i64) {
    let store = &app.db.store;
    let agent = store.create_user("agent@example.com", "Agent", Role::Agent, None).await.unwrap();
    store.create_user("other@example.com", "Other", Role::Agent, None).await.unwrap();
    let (_, agent_token) = store.create_token("agent", Role::Agent, Some(agent.id)).await.unwrap();
    let cities = ["上海", "北京", "杭州", "广州"];
    let mut customers = String::from("customer_id,name,city,owner\n");
    let mut orders = String::from("order_id,customer_id,ordered_at,amount\n");
    let start = NaiveDate::from_ymd_opt(2024, 7, 1).unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 6, 29).unwrap();
    for i in 0..CUSTOMERS {
        let owner = if i % 3 == 0 { "agent@example.com" } else { "other@example.com" };
        customers.push_str(&format!("C{i:03},客户{i:03},{},{owner}\n", cities[i % 4]));
        let first = start + Duration::days((i as i64 * 11) % 300);
        let (count, gap) = match i % 10 {
            0 => (0, 1),
            1 => (1, 1),
            _ => (2 + (i as i64 * 7) % 12, 10 + (i as i64 * 13) % 50),
        };
        // Every seventh repeat buyer stopped after a few purchases.
        let count = if i % 7 == 3 { count.min(3) } else { count };
        for k in 0..count {
            let day = first + Duration::days(k * gap);
            if day > end {
                break;
            }
            let amount = 40 + (i * 37 + k as usize * 11) % 300;
            orders.push_str(&format!("O{i:03}-{k},C{i:03},{day} 12:00:00,{amount}.50\n"));
        }
    }
    for (kind, text) in [(ImportKind::Customers, customers), (ImportKind::Orders, orders)] {
        let r = store
            .import(&Actor::cli(), Box::new(std::io::Cursor::new(text.into_bytes())), &ImportOptions::new(kind, "seed.csv"), &|_| {})
            .await
            .unwrap();
        assert!(r.committed, "{:?}", r.rejections);
    }
    (agent_token, agent.id)
}
