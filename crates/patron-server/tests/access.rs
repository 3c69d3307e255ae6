//! Access (issue 21) over a real server on each engine: units and home units, the scope of a
//! store user, a region user and an owner outside the unit; the walk of every route of the
//! OpenAPI document with a scoped user and a customer outside its scope; custom roles;
//! deactivation cutting a live session and a token; an import row outside the scope.

mod common;

use std::collections::BTreeSet;

use common::{json_of, spawn_app, TestApp};
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn as_(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

/// Ids of a unit tree: a region with three stores, and a head office.
struct Tree {
    region: i64,
    s1: i64,
    s2: i64,
    s3: i64,
}

async fn tree(app: &TestApp) -> Tree {
    let mut ids = Vec::new();
    let (st, head) = app.post("/api/v1/units", json!({"name": "总部", "code": "HQ", "kind": "branch"})).await;
    assert_eq!(st, 201, "{head}");
    let (st, r) = app.post("/api/v1/units", json!({"name": "华东区", "code": "EAST", "kind": "region", "parent_id": head["id"]})).await;
    assert_eq!(st, 201, "{r}");
    let region = r["id"].as_i64().unwrap();
    for code in ["S1", "S2", "S3"] {
        let (st, s) =
            app.post("/api/v1/units", json!({"name": format!("门店{code}"), "code": code, "kind": "store", "parent_id": region})).await;
        assert_eq!(st, 201, "{s}");
        ids.push(s["id"].as_i64().unwrap());
    }
    Tree { region, s1: ids[0], s2: ids[1], s3: ids[2] }
}

/// A user with a role and units, and a token of theirs.
async fn user_with_token(app: &TestApp, email: &str, role: &str, units: &[i64]) -> (i64, String) {
    let (st, u) = app.post("/api/v1/users", json!({"email": email, "name": email, "role": role, "unit_ids": units})).await;
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_i64().unwrap();
    // The token acts with the user's role, a custom one included.
    let user = app.db.store.user(id).await.unwrap();
    let token = if user.role_name.parse::<Role>().is_err() {
        let opts = patron_store::users::TokenOptions { custom_role: Some(user.role_name.clone()), ..Default::default() };
        app.db.store.create_token_with(email, Role::Agent, Some(id), opts).await.unwrap().1
    } else {
        let role: Role = user.role_name.parse().unwrap();
        app.db.store.create_token(email, role, Some(id)).await.unwrap().1
    };
    (id, token)
}

async fn customer(app: &TestApp, body: Value) -> i64 {
    let (st, c) = app.post("/api/v1/customers", body).await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

async fn listed(app: &TestApp, token: &str) -> BTreeSet<i64> {
    let (st, page) = as_(app, token, Method::GET, "/api/v1/customers?limit=1000", None).await;
    assert_eq!(st, 200, "{page}");
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

async fn preview_count(app: &TestApp, token: &str) -> i64 {
    let (st, p) = as_(app, token, Method::POST, "/api/v1/segments/preview", Some(json!({"rule": "not city = \"nowhere\""}))).await;
    assert_eq!(st, 200, "{p}");
    p["count"].as_i64().unwrap()
}

test_both!(units_scope_customers_by_subtree_and_owner, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    let (store_user, store_token) = user_with_token(&app, "s1@example.com", "agent", &[t.s1]).await;
    let (_, region_token) = user_with_token(&app, "east@example.com", "agent", &[t.region]).await;
    let (_, lonely_token) = user_with_token(&app, "nobody@example.com", "agent", &[]).await;
    let a = customer(&app, json!({"name": "甲", "home_unit_id": t.s1})).await;
    let b = customer(&app, json!({"name": "乙", "home_unit_id": t.s2})).await;
    let c = customer(&app, json!({"name": "丙", "home_unit_id": t.s3})).await;
    let none = customer(&app, json!({"name": "丁"})).await;
    // Owned by the store user but at home in another store: the owner still sees it.
    let owned = customer(&app, json!({"name": "戊", "home_unit_id": t.s2, "owner_id": store_user})).await;

    // Computed independently: the store sees its own and the owned one; the region its three
    // stores; the admin everyone; a user without units or customers nobody.
    assert_eq!(listed(&app, &store_token).await, BTreeSet::from([a, owned]));
    assert_eq!(listed(&app, &region_token).await, BTreeSet::from([a, b, c, owned]));
    assert_eq!(listed(&app, &app.admin_token).await, BTreeSet::from([a, b, c, none, owned]));
    assert!(listed(&app, &lonely_token).await.is_empty());
    // Segment counts follow the same scopes.
    assert_eq!(preview_count(&app, &store_token).await, 2);
    assert_eq!(preview_count(&app, &region_token).await, 4);
    assert_eq!(preview_count(&app, &app.admin_token).await, 5);
    // One customer: inside the scope found, outside 404 like a missing one.
    assert_eq!(as_(&app, &store_token, Method::GET, &format!("/api/v1/customers/{a}"), None).await.0, 200);
    assert_eq!(as_(&app, &store_token, Method::GET, &format!("/api/v1/customers/{b}"), None).await.0, 404);
    assert_eq!(as_(&app, &store_token, Method::GET, &format!("/api/v1/customers/{owned}"), None).await.0, 200);
    assert_eq!(as_(&app, &region_token, Method::GET, &format!("/api/v1/customers/{none}"), None).await.0, 404);

    // Moving a store to another region moves its customers' visibility with it.
    let (st, other) = app.post("/api/v1/units", json!({"name": "华北区", "code": "NORTH", "kind": "region"})).await;
    assert_eq!(st, 201);
    let (st, _) = app.patch(&format!("/api/v1/units/{}", t.s3), json!({"parent_id": other["id"]})).await;
    assert_eq!(st, 200);
    assert_eq!(listed(&app, &region_token).await, BTreeSet::from([a, b, owned]));
    // A unit cannot go under its own subtree, and a unit with customers or children stays.
    let (st, e) = app.patch(&format!("/api/v1/units/{}", t.region), json!({"parent_id": t.s1})).await;
    assert_eq!(st, 422, "{e}");
    let (st, _) = as_(&app, &app.admin_token, Method::DELETE, &format!("/api/v1/units/{}", t.s1), None).await;
    assert_eq!(st, 409);
    let (st, empty) = app.post("/api/v1/units", json!({"name": "空", "code": "EMPTY", "kind": "team"})).await;
    assert_eq!(st, 201);
    assert_eq!(as_(&app, &app.admin_token, Method::DELETE, &format!("/api/v1/units/{}", empty["id"]), None).await.0, 204);

    // A store user cannot hand a customer to a unit outside its scope.
    let (st, _) = as_(&app, &store_token, Method::PATCH, &format!("/api/v1/customers/{a}"), Some(json!({"home_unit_id": t.s2}))).await;
    assert_eq!(st, 403);
    // The home unit is history like any field.
    let (st, _) = app.patch(&format!("/api/v1/customers/{none}"), json!({"home_unit_id": t.s1})).await;
    assert_eq!(st, 200);
    let (_, changes) = app.get(&format!("/api/v1/customers/{none}/changes")).await;
    assert!(
        changes.as_array().unwrap().iter().any(|c| c["field"] == "home_unit_id" && c["new_value"] == json!(t.s1.to_string())),
        "{changes}"
    );
    assert!(listed(&app, &store_token).await.contains(&none));
});

test_both!(the_home_unit_defaults_to_the_first_orders_store, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    let id = customer(&app, json!({"name": "新客"})).await;
    let order = |ext: &str, store: &str, at: &str| json!({"customer_id": id, "external_id": ext, "ordered_at": at, "store": store, "total_cents": 1000});
    let (st, r) = app.post("/api/v1/orders", order("O1", "S2", "2026-01-02T03:00:00Z")).await;
    assert!(st == 201, "{r}");
    let (_, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["customer"]["home_unit_id"], json!(t.s2));
    // Later orders elsewhere do not move it.
    app.post("/api/v1/orders", order("O2", "S3", "2026-02-02T03:00:00Z")).await;
    let (_, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["customer"]["home_unit_id"], json!(t.s2));
    // Turned off by the setting, a new customer's first order leaves it unset.
    app.db
        .store
        .set_unit_settings(&Actor::cli(), &patron_store::access::units::UnitSettings { home_unit_from_first_order: false })
        .await
        .unwrap();
    let other = customer(&app, json!({"name": "旧客"})).await;
    app.post(
        "/api/v1/orders",
        json!({"customer_id": other, "external_id": "O3", "ordered_at": "2026-01-02T03:00:00Z", "store": "S1", "total_cents": 5}),
    )
    .await;
    let (_, c) = app.get(&format!("/api/v1/customers/{other}")).await;
    assert_eq!(c["customer"]["home_unit_id"], Value::Null);
});

/// The value for a path parameter: the outsider's id for customers, its order or ticket, and
/// what exists for the others.
fn fill(path: &str, outsider: i64, order: i64, ticket: i64, survey: i64) -> String {
    let id = if path.starts_with("/api/v1/customers/") {
        outsider
    } else if path.starts_with("/api/v1/orders/") {
        order
    } else if path.starts_with("/api/v1/tickets/") {
        ticket
    } else if path.starts_with("/api/v1/surveys/") {
        survey
    } else {
        // Units, users, notifications: ids that are not the outsider's business.
        1
    };
    path.replace("{id}", &id.to_string()).replace("{cid}", "1").replace("{key}", "all").replace("{tier}", "A").replace("{name}", "agent")
}

/// A request body naming the outsider wherever a route takes a customer.
fn body_for(method: &str, path: &str, outsider: i64) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(match path {
        "/api/v1/orders" => {
            json!({"customer_id": outsider, "external_id": "WALK-O", "ordered_at": "2026-01-02T03:00:00Z", "total_cents": 100})
        }
        "/api/v1/interactions" => {
            json!({"customer_id": outsider, "external_id": "WALK-I", "kind": "visit", "channel": "store", "occurred_at": "2026-01-02T03:00:00Z"})
        }
        "/api/v1/tickets" => json!({"customer_id": outsider, "kind": "complaint", "channel": "store", "subject": "walk", "body": "walk"}),
        "/api/v1/surveys/{id}/invitations" => json!({"customer_ids": [outsider]}),
        "/api/v1/customers/{id}" => json!({"name": "WALKED"}),
        "/api/v1/customers/{id}/notes" => json!({"body": "walked"}),
        "/api/v1/customers/{id}/contacts" => json!({"name": "walked"}),
        "/api/v1/customers/{id}/merge" => json!({"merge_id": outsider}),
        "/api/v1/customers/{id}/churn-reason" => json!({"reason": "价格"}),
        _ => json!({}),
    })
}

test_both!(every_route_hides_a_customer_outside_the_scope, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    // A scoped user whose role has every permission but all_customers: only the scope stands
    // between it and the outsider.
    let everything: Vec<&str> =
        patron_store::access::Permission::ALL.iter().map(|p| p.as_str()).filter(|p| *p != "all_customers").collect();
    let (st, r) = app.post("/api/v1/roles", json!({"name": "store-admin", "permissions": everything})).await;
    assert_eq!(st, 201, "{r}");
    let (_, token) = user_with_token(&app, "walker@example.com", "store-admin", &[t.s1]).await;
    const MARK: &str = "OUTSIDER-紫禁";
    let outsider = customer(&app, json!({"name": MARK, "external_id": "OUT-EXT-9", "home_unit_id": t.s2, "mobile": "13911112222"})).await;
    let (_, o) = app.post("/api/v1/orders", json!({"customer_id": outsider, "external_id": "OUT-O", "ordered_at": "2026-01-02T03:00:00Z", "total_cents": 100, "store": "S2"})).await;
    let order = o[0]["id"].as_i64().or_else(|| o["id"].as_i64()).expect("order id");
    let (st, tk) = app
        .post("/api/v1/tickets", json!({"customer_id": outsider, "kind": "complaint", "channel": "store", "subject": MARK, "body": MARK}))
        .await;
    assert_eq!(st, 201, "{tk}");
    let ticket = tk["id"].as_i64().unwrap();
    let (st, sv) = app.post("/api/v1/surveys", json!({"name": "NPS", "kind": "nps", "expires_days": 14})).await;
    assert_eq!(st, 201, "{sv}");
    let survey = sv["id"].as_i64().unwrap();
    let (_, before) = app.get(&format!("/api/v1/customers/{outsider}/changes")).await;

    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let mut walked = 0;
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/api/v1/public/") || path == "/healthz" || path == "/api/v1/openapi.json" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            // Changing people and units is for administrators and names no customer; erasing
            // would only prove itself by destroying the marker.
            if path.starts_with("/api/v1/users") || path.starts_with("/api/v1/units") || path.starts_with("/api/v1/roles") {
                continue;
            }
            let url = fill(path, outsider, order, ticket, survey);
            let (status, body) = as_(&app, &token, m.parse().unwrap(), &url, body_for(&m, path, outsider)).await;
            walked += 1;
            let text = body.to_string();
            let names_it = path.contains("{id}")
                && (path.starts_with("/api/v1/customers/") || path.starts_with("/api/v1/orders/") || path.starts_with("/api/v1/tickets/"));
            if text.contains(MARK)
                || text.contains("OUT-EXT-9")
                || text.contains("13911112222")
                || (names_it && (200..300).contains(&status))
            {
                failures.push(format!("{m} {url}: {status} {text}"));
            }
            if names_it && status != 404 && status != 403 && status != 422 && status != 400 {
                failures.push(format!("{m} {url}: expected 404, got {status} {text}"));
            }
        }
    }
    assert!(walked > 60, "walked only {walked} routes");
    assert!(failures.is_empty(), "routes revealing or changing a customer outside the scope:\n{}", failures.join("\n"));
    // Nothing changed: the outsider is there, unchanged, with its one order.
    let (st, c) = app.get(&format!("/api/v1/customers/{outsider}")).await;
    assert_eq!(st, 200);
    assert_eq!(c["customer"]["name"], MARK);
    assert_eq!(c["stats"]["order_count"], 1);
    let (_, after) = app.get(&format!("/api/v1/customers/{outsider}/changes")).await;
    assert_eq!(before, after);
    let (_, tickets) = app.get(&format!("/api/v1/tickets?customer_id={outsider}")).await;
    assert!(tickets["items"].as_array().map(|a| a.len() <= 1).unwrap_or(true), "{tickets}");
});

test_both!(custom_roles_allow_exactly_their_permissions, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    let (st, r) = app.post("/api/v1/roles", json!({"name": "reader", "permissions": ["customers.read"]})).await;
    assert_eq!(st, 201, "{r}");
    let (st, e) = app.post("/api/v1/roles", json!({"name": "bad", "permissions": ["customers.fly"]})).await;
    assert_eq!(st, 422, "{e}");
    let (st, _) = app.put("/api/v1/roles/admin", json!({"permissions": []})).await;
    assert_eq!(st, 409);
    let (uid, token) = user_with_token(&app, "reader@example.com", "reader", &[t.s1]).await;
    customer(&app, json!({"name": "甲", "home_unit_id": t.s1})).await;
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/customers", None).await.0, 200);
    assert_eq!(as_(&app, &token, Method::POST, "/api/v1/customers", Some(json!({"name": "x", "home_unit_id": t.s1}))).await.0, 403);
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/segments", None).await.0, 403);
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/users", None).await.0, 403);
    // A permission added reaches the role's users at their next request.
    let (st, _) = app.put("/api/v1/roles/reader", json!({"permissions": ["customers.read", "segments.read", "customers.write"]})).await;
    assert_eq!(st, 200);
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/segments", None).await.0, 200);
    assert_eq!(as_(&app, &token, Method::POST, "/api/v1/customers", Some(json!({"name": "x", "home_unit_id": t.s1}))).await.0, 201);
    // The built-in roles keep today's behaviour: an agent may not delete, a manager may.
    let (_, agent) = user_with_token(&app, "agent@example.com", "agent", &[t.s1]).await;
    let (_, manager) = user_with_token(&app, "manager@example.com", "manager", &[]).await;
    let victim = customer(&app, json!({"name": "乙", "home_unit_id": t.s1})).await;
    assert_eq!(as_(&app, &agent, Method::DELETE, &format!("/api/v1/customers/{victim}"), None).await.0, 403);
    assert_eq!(as_(&app, &manager, Method::DELETE, &format!("/api/v1/customers/{victim}"), None).await.0, 204);
    // The document says what each route needs.
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc["paths"]["/api/v1/customers/{id}"]["delete"]["x-permission"], "customers.delete");
    let (_, users) = app.get("/api/v1/users").await;
    assert!(users.as_array().unwrap().iter().any(|u| u["id"] == uid && u["role"] == "reader" && u["unit_ids"] == json!([t.s1])), "{users}");
});

test_both!(deactivation_cuts_a_live_session_and_a_token_at_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (st, u) = app
        .post("/api/v1/users", json!({"email": "leaver@example.com", "name": "离职", "role": "manager", "password": "long enough pw"}))
        .await;
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_i64().unwrap();
    let s = &app.db.store;
    let user = s.user(id).await.unwrap();
    let (secret, _) = s.create_session(&user, chrono::Duration::hours(8)).await.unwrap();
    let (_, token) = s.create_token("t", Role::Manager, Some(id)).await.unwrap();
    assert!(s.session(&secret).await.unwrap().is_some());
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/customers", None).await.0, 200);
    let (st, u) = app.patch(&format!("/api/v1/users/{id}"), json!({"active": false})).await;
    assert_eq!((st, &u["active"]), (200, &json!(false)), "{u}");
    assert!(s.session(&secret).await.unwrap().is_none());
    assert_eq!(as_(&app, &token, Method::GET, "/api/v1/customers", None).await.0, 401);
    assert!(s.authenticate("leaver@example.com", "long enough pw").await.unwrap().is_none());
    // Audited.
    let (_, audit) = app.get("/api/v1/audit?action=update").await;
    assert!(audit.to_string().contains("deactivated"), "{audit}");
    // A password reset by an administrator ends the sessions too.
    let (_, u2) = app
        .post("/api/v1/users", json!({"email": "reset@example.com", "name": "重置", "role": "agent", "password": "first password"}))
        .await;
    let id2 = u2["id"].as_i64().unwrap();
    let (secret2, _) = s.create_session(&s.user(id2).await.unwrap(), chrono::Duration::hours(8)).await.unwrap();
    let (st, _) = app.post(&format!("/api/v1/users/{id2}/password"), json!({"password": "second password"})).await;
    assert_eq!(st, 204);
    assert!(s.session(&secret2).await.unwrap().is_none());
    assert!(s.authenticate("reset@example.com", "second password").await.unwrap().is_some());
});

test_both!(an_import_row_outside_the_importers_scope_is_rejected, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    let (st, _) = app
        .post("/api/v1/roles", json!({"name": "store-importer", "permissions": ["customers.read", "customers.write", "imports.run"]}))
        .await;
    assert_eq!(st, 201);
    let (uid, _) = user_with_token(&app, "importer@example.com", "store-importer", &[t.s1]).await;
    customer(&app, json!({"name": "他店客", "external_id": "X2", "home_unit_id": t.s2})).await;
    let s = &app.db.store;
    let actor = Actor::user(&s.user(uid).await.unwrap());
    let csv = "customer_id,name,home_unit\nX1,本店新客,S1\nX2,改名,S1\nX3,别店新客,S3\n";
    let mut opts = ImportOptions::new(ImportKind::Customers, "customers.csv");
    opts.skip_invalid = true;
    let report = s.import(&actor, Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())), &opts, &|_| {}).await.unwrap();
    assert_eq!((report.created, report.updated, report.rejected), (1, 0, 2), "{report:?}");
    let text = format!("{report:?}");
    assert!(text.contains("no such customer in your scope"), "{text}");
    assert!(text.contains("outside your scope"), "{text}");
    let (_, page) = app.get("/api/v1/customers?q=X2").await;
    assert_eq!(page["items"][0]["name"], "他店客");
    // Orders name customers the bulk loader does not check one by one: refused as a whole.
    let opts = ImportOptions::new(ImportKind::Orders, "orders.csv");
    let e = s.import(&actor, Box::new(std::io::Cursor::new(b"order_id\n".to_vec())), &opts, &|_| {}).await.unwrap_err();
    assert!(matches!(e, patron_store::StoreError::Forbidden(_)), "{e:?}");
    // The default home unit comes from the import's `home_unit` column.
    let (_, page) = app.get("/api/v1/customers?q=X1").await;
    let id = page["items"][0]["id"].as_i64().unwrap();
    let (_, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["customer"]["home_unit_id"], json!(t.s1));
});

test_both!(dashboard_totals_and_segment_counts_follow_the_scope, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = tree(&app).await;
    let (_, store_token) = user_with_token(&app, "s1@example.com", "agent", &[t.s1]).await;
    let (_, region_token) = user_with_token(&app, "east@example.com", "agent", &[t.region]).await;
    // Customers at home in each store and one without a unit, each with orders of known totals
    // in the last year before the test clock (2026-06-30), so every one is a scored buyer.
    let homes = [Some(t.s1), Some(t.s1), Some(t.s2), Some(t.s3), None];
    let mut bought: Vec<(Option<i64>, i64)> = Vec::new();
    for (i, home) in homes.iter().enumerate() {
        let mut body = json!({"name": format!("顾客{i}")});
        if let Some(unit) = home {
            body["home_unit_id"] = json!(unit);
        }
        let id = customer(&app, body).await;
        let mut total = 0;
        for k in 0..=i {
            let cents = 1_000 * (i as i64 + 1) + 37 * k as i64;
            let at = format!("2026-0{}-1{}T04:00:00Z", 2 + k, i);
            let (st, o) = app
                .post(
                    "/api/v1/orders",
                    json!({"customer_id": id, "external_id": format!("D{i}-{k}"), "ordered_at": at, "total_cents": cents}),
                )
                .await;
            assert_eq!(st, 201, "{o}");
            total += cents;
        }
        bought.push((*home, total));
    }
    let (st, run) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(st, 201, "{run}");

    // The expected totals, computed here from what was bought and where each customer lives.
    let expect = |units: &[i64]| -> (i64, i64) {
        let inside: Vec<i64> = bought.iter().filter(|(h, _)| h.is_some_and(|u| units.contains(&u))).map(|(_, c)| *c).collect();
        (inside.len() as i64, inside.iter().sum())
    };
    let sum = |v: &Value, key: &str| -> i64 { v.as_array().unwrap().iter().map(|g| g[key].as_i64().unwrap()).sum() };
    let all = (bought.len() as i64, bought.iter().map(|(_, c)| c).sum::<i64>());
    for (token, (customers, revenue)) in
        [(store_token.as_str(), expect(&[t.s1])), (region_token.as_str(), expect(&[t.s1, t.s2, t.s3])), (app.admin_token.as_str(), all)]
    {
        let (st, o) = as_(&app, token, Method::GET, "/api/v1/analytics/overview", None).await;
        assert_eq!(st, 200, "{o}");
        assert_eq!(o["scored_customers"].as_i64(), Some(customers), "{o}");
        assert_eq!(sum(&o["lifecycle"], "customers"), customers, "{}", o["lifecycle"]);
        assert_eq!(sum(&o["abcd_tiers"], "revenue_cents"), revenue, "{}", o["abcd_tiers"]);
        assert_eq!(preview_count(&app, token).await, customers);
    }
    // The three scopes really differ, so the equalities above are not one number thrice.
    assert!(expect(&[t.s1]).0 < expect(&[t.s1, t.s2, t.s3]).0 && expect(&[t.s1, t.s2, t.s3]).0 < all.0);
});
