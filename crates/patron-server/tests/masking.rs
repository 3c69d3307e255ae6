//! Field masking by role (issue 14 §3) over a real server on each engine: one setting, and every
//! surface (API list, 360, orders, change history, segment preview, segment export, the web UI's
//! list, 360 and edit form) shows a role's customers in full, masked or not at all.

mod common;

use common::{csrf_of, json_of, spawn_app, ui, ui_login, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

const MOBILE: &str = "13800138000";
const EMAIL: &str = "liyong@example.com";

async fn as_(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

/// A user with a password (for the UI) and a token of theirs (for the API).
async fn user(app: &TestApp, email: &str, role: &str) -> (i64, String) {
    let (st, u) =
        app.post("/api/v1/users", json!({"email": email, "name": email, "role": role, "password": "a long enough password"})).await;
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_i64().unwrap();
    let token = match role.parse::<Role>() {
        Ok(r) => app.db.store.create_token(email, r, Some(id)).await.unwrap().1,
        Err(_) => {
            let opts = patron_store::users::TokenOptions { custom_role: Some(role.to_owned()), ..Default::default() };
            app.db.store.create_token_with(email, Role::Agent, Some(id), opts).await.unwrap().1
        }
    };
    (id, token)
}

/// A customer owned by `owner` with every personal field and one order of ¥1,234.56.
async fn customer(app: &TestApp, owner: i64) -> i64 {
    let (st, c) = app
        .post(
            "/api/v1/customers",
            json!({"name": "李勇", "mobile": MOBILE, "email": EMAIL, "wechat_id": "liyong_wx", "birthday": "1990-05-12", "city": "上海", "owner_id": owner}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (st, r) = app
        .post(
            "/api/v1/orders",
            json!({"customer_id": id, "external_id": "M1", "ordered_at": "2026-06-01T04:00:00Z", "total_cents": 123_456}),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    id
}

test_both!(each_role_sees_what_its_rule_says_on_every_surface, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (agent_id, agent) = user(&app, "agent@example.com", "agent").await;
    let (st, r) =
        app.post("/api/v1/roles", json!({"name": "质检", "permissions": ["customers.read", "all_customers", "segments.read"]})).await;
    assert_eq!(st, 201, "{r}");
    let (_, auditor) = user(&app, "qa@example.com", "质检").await;
    let (_, manager) = user(&app, "manager@example.com", "manager").await;
    let id = customer(&app, agent_id).await;
    // A change of mobile, so the history holds personal values.
    let (st, r) = app.patch(&format!("/api/v1/customers/{id}"), json!({"mobile": "13900139000"})).await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app.patch(&format!("/api/v1/customers/{id}"), json!({"mobile": MOBILE})).await;
    assert_eq!(st, 200, "{r}");

    // Before any rule: patron's default — lists masked for roles without contact_details.read,
    // the audited 360 in full.
    let (_, page) = as_(&app, &agent, Method::GET, "/api/v1/customers", None).await;
    assert_eq!(page["items"][0]["mobile"], "138****8000");
    assert_eq!(page["items"][0]["spend_cents"], 123_456);
    let (_, c) = as_(&app, &agent, Method::GET, &format!("/api/v1/customers/{id}"), None).await;
    assert_eq!(c["customer"]["mobile"], MOBILE);

    // The rules: agents see personal data masked and no money; the custom role no personal
    // data and money rounded to ¥100; managers personal data masked (exports included).
    let rules = json!({"roles": {
        "agent": {"personal": "masked", "money": "hidden"},
        "质检": {"personal": "hidden", "money": "masked"},
        "manager": {"personal": "masked", "money": "full"}
    }});
    let (st, r) = as_(&app, &agent, Method::PUT, "/api/v1/masking", Some(rules.clone())).await;
    assert_eq!(st, 403, "{r}");
    let (st, r) = app.put("/api/v1/masking", json!({"roles": {"nobody": {"personal": "full", "money": "full"}}})).await;
    assert_eq!((st, r["error"]["field"].as_str()), (422, Some("roles")), "{r}");
    let (st, r) = app.put("/api/v1/masking", rules.clone()).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r, rules);

    // API list.
    let (_, page) = as_(&app, &agent, Method::GET, "/api/v1/customers", None).await;
    let item = &page["items"][0];
    assert_eq!((item["mobile"].as_str(), item["email"].as_str()), (Some("138****8000"), Some("l***@example.com")));
    assert_eq!(item["spend_cents"], Value::Null);
    let (_, page) = as_(&app, &auditor, Method::GET, "/api/v1/customers", None).await;
    let item = &page["items"][0];
    assert_eq!((&item["mobile"], &item["email"]), (&Value::Null, &Value::Null));
    assert_eq!(item["spend_cents"], 120_000);
    let (_, page) = app.get("/api/v1/customers").await;
    assert_eq!((page["items"][0]["mobile"].as_str(), page["items"][0]["spend_cents"].as_i64()), (Some(MOBILE), Some(123_456)));

    // API 360, orders and history.
    let (st, c) = as_(&app, &agent, Method::GET, &format!("/api/v1/customers/{id}"), None).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["customer"]["mobile"], "138****8000");
    assert!(c["customer"]["wechat_id"].as_str().is_some_and(|w| w.contains("****") && w != "liyong_wx"), "{c}");
    assert_eq!(c["customer"]["birthday"], Value::Null);
    assert_eq!(c["customer"]["name"], "李勇");
    assert_eq!(c["stats"]["spend_cents"], Value::Null);
    assert_eq!(c["stats"]["order_count"], 1);
    assert_eq!(c["recent_orders"][0]["total_cents"], Value::Null);
    let (_, c) = as_(&app, &auditor, Method::GET, &format!("/api/v1/customers/{id}"), None).await;
    assert_eq!((&c["customer"]["mobile"], &c["customer"]["birthday"]), (&Value::Null, &Value::Null));
    assert_eq!(c["recent_orders"][0]["total_cents"], 120_000);
    let (_, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!((c["customer"]["birthday"].as_str(), c["stats"]["spend_cents"].as_i64()), (Some("1990-05-12"), Some(123_456)));
    let (_, orders) = as_(&app, &agent, Method::GET, &format!("/api/v1/customers/{id}/orders"), None).await;
    assert_eq!(orders["items"][0]["total_cents"], Value::Null);
    let order_id = orders["items"][0]["id"].as_i64().unwrap();
    let (_, o) = as_(&app, &auditor, Method::GET, &format!("/api/v1/orders/{order_id}"), None).await;
    assert_eq!(o["total_cents"], 120_000);
    let (_, changes) = as_(&app, &agent, Method::GET, &format!("/api/v1/customers/{id}/changes"), None).await;
    let mobile_changes: Vec<&Value> = changes.as_array().unwrap().iter().filter(|c| c["field"] == "mobile").collect();
    assert!(!mobile_changes.is_empty(), "{changes}");
    for ch in mobile_changes {
        for v in [&ch["old_value"], &ch["new_value"]] {
            assert!(v.is_null() || v.as_str().is_some_and(|s| s.contains("****")), "history shows {v}");
        }
    }

    let (_, tl) = as_(&app, &agent, Method::GET, &format!("/api/v1/customers/{id}/timeline"), None).await;
    let text = tl.to_string();
    assert!(!text.contains(MOBILE) && !text.contains("13900139000") && !text.contains("123456"), "timeline shows too much: {text}");
    assert!(text.contains("138****8000"), "{text}");

    // Segment preview.
    let rule = json!({"rule": "city = \"上海\""});
    let (st, p) = as_(&app, &agent, Method::POST, "/api/v1/segments/preview", Some(rule.clone())).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!((p["members"][0]["mobile"].as_str(), &p["members"][0]["spend_cents"]), (Some("138****8000"), &Value::Null));
    let (_, p) = as_(&app, &auditor, Method::POST, "/api/v1/segments/preview", Some(rule)).await;
    assert_eq!((&p["members"][0]["mobile"], p["members"][0]["spend_cents"].as_i64()), (&Value::Null, Some(120_000)));

    // Segment export: a manager's file carries what a manager sees.
    let (st, seg) = app.post("/api/v1/segments", json!({"name": "上海客户", "rule": "city = \"上海\""})).await;
    assert_eq!(st, 201, "{seg}");
    let key = seg["key"].as_str().or(seg["id"].as_str()).map(str::to_owned).unwrap_or_else(|| seg["id"].to_string());
    let r = app.req_as(&manager, Method::GET, &format!("/api/v1/segments/{key}/export")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(csv.contains("138****8000") && !csv.contains(MOBILE) && !csv.contains("1990-05-12"), "{csv}");
    let r = app.req(Method::GET, &format!("/api/v1/segments/{key}/export")).send().await.unwrap();
    let csv = r.text().await.unwrap();
    assert!(csv.contains(MOBILE) && csv.contains("1990-05-12"), "{csv}");

    // The web UI: list, 360 and the edit form, which cannot overwrite what it does not show.
    let cookie = ui_login(&app, "agent@example.com", "a long enough password").await;
    let (st, html) = ui(&app, &cookie, Method::GET, "/ui/customers", &[]).await;
    assert_eq!(st, 200);
    assert!(html.contains("138****8000") && !html.contains(MOBILE) && !html.contains("1,234.56"), "list shows too much");
    let (st, html) = ui(&app, &cookie, Method::GET, &format!("/ui/customers/{id}"), &[]).await;
    assert_eq!(st, 200);
    assert!(html.contains("李勇") && html.contains("138****8000"), "360 lacks the masked mobile");
    for secret in [MOBILE, EMAIL, "1990-05-12", "1,234.56", "13900139000"] {
        assert!(!html.contains(secret), "the 360 page shows {secret}");
    }
    let (st, html) = ui(&app, &cookie, Method::GET, &format!("/ui/customers/{id}/edit"), &[]).await;
    assert_eq!(st, 200);
    assert!(!html.contains(MOBILE) && html.contains("readonly"), "edit form shows the mobile or lets it be changed");
    let csrf = csrf_of(&html);
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "李勇"),
        ("mobile", "138****8000"),
        ("email", "l***@example.com"),
        ("wechat_id", "liy****g_wx"),
        ("gender", ""),
        ("birthday", ""),
        ("city", "杭州"),
        ("tags", ""),
    ];
    let (st, body) = ui(&app, &cookie, Method::POST, &format!("/ui/customers/{id}/edit"), &form).await;
    assert_eq!(st, 303, "{body}");
    let stored = app.db.store.customer(id).await.unwrap();
    assert_eq!(stored.mobile.as_deref(), Some(MOBILE));
    assert_eq!(stored.email.as_deref(), Some(EMAIL));
    assert_eq!(stored.wechat_id.as_deref(), Some("liyong_wx"));
    assert_eq!(stored.birthday.map(|d| d.to_string()).as_deref(), Some("1990-05-12"));
    assert_eq!(stored.city.as_deref(), Some("杭州"));
});
