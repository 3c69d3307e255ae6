//! Single sign-on with OpenID Connect (issue 21 §4) against a real provider (panva's
//! oidc-provider under node, started by the test), on each engine: the authorization code flow
//! with PKCE, the ID token's signature checked against the provider's keys, a new e-mail
//! creating a user with the default role and unit, a known e-mail matching its user (role kept),
//! a deactivated user refused, and a callback this browser did not start refused.

mod common;
mod support;

use common::{json_of, spawn_app, TestApp};
use patron_store::access::units::NewUnit;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use serde_json::json;
use support::OidcProvider;

/// A browser that keeps cookies (patron's and the provider's); the test follows the redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Logs in through the provider as `email`: the final page's address and text.
async fn sso_login(app: &TestApp, idp: &OidcProvider, email: &str) -> (u16, String, String) {
    idp.next_login(email).await;
    // Each hop by hand (a browser would follow them): patron → provider → patron.
    let b = browser();
    let mut url = format!("{}/ui/login/sso", app.base);
    for _ in 0..20 {
        let r = b.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
        let status = r.status().as_u16();
        match r.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()) {
            Some(next) if (300..400).contains(&status) => {
                url = if next.starts_with('/') {
                    let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                    format!("{origin}{next}")
                } else {
                    next.to_owned()
                };
            }
            _ => {
                let path = r.url().path().to_owned();
                return (status, path, r.text().await.unwrap_or_default());
            }
        }
    }
    panic!("too many redirects")
}

test_both!(oidc_login_creates_and_matches_users_by_email, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = app.db.store.clone();
    let idp = OidcProvider::start(&format!("{}/ui/login/sso/callback", app.base), "patron-test", "a client secret");
    let store_unit = s
        .create_unit(&Actor::cli(), NewUnit { name: "静安店".into(), code: "SH01".into(), kind: "store".into(), parent_id: None })
        .await
        .unwrap();

    // Off: the login page offers nothing, the start goes back to the login.
    let page = reqwest::get(format!("{}/ui/login", app.base)).await.unwrap().text().await.unwrap();
    assert!(!page.contains("id=\"sso-login\""));
    // Settings: checked, the secret never shown.
    let (st, e) = app.put("/api/v1/sso/settings", json!({"enabled": true, "issuer": "http://example.com", "client_id": "x"})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("issuer")), "{e}");
    let (st, e) = app
        .put("/api/v1/sso/settings", json!({"enabled": true, "issuer": idp.issuer, "client_id": "patron-test", "default_role": "nobody"}))
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("default_role")), "{e}");
    let (st, v) = app
        .put(
            "/api/v1/sso/settings",
            json!({"enabled": true, "issuer": format!("{}/", idp.issuer), "client_id": "patron-test", "client_secret": "a client secret",
                   "default_role": "agent", "default_unit_id": store_unit.id}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["client_secret_set"].clone(), v["issuer"].as_str()), (json!(true), Some(idp.issuer.as_str())));
    let (_, shown) = app.get("/api/v1/sso/settings").await;
    assert!(!shown.to_string().contains("a client secret"), "{shown}");
    let page = reqwest::get(format!("{}/ui/login", app.base)).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"sso-login\""));

    // A new e-mail: a user with the default role and unit, logged in.
    let (status, path, page) = sso_login(&app, &idp, "new.person@example.com").await;
    assert_eq!((status, path.as_str()), (200, "/ui/customers"), "{page}");
    let created = s.user_by_email("new.person@example.com").await.unwrap().expect("created");
    assert_eq!((created.role, created.role_name.as_str()), (Role::Agent, "agent"));
    assert_eq!(s.user_unit_ids(created.id).await.unwrap(), vec![store_unit.id]);
    // Again: the same user, not a second one.
    let (status, path, _) = sso_login(&app, &idp, "new.person@example.com").await;
    assert_eq!((status, path.as_str()), (200, "/ui/customers"));
    let count = |users: &serde_json::Value, email: &str| users.as_array().unwrap().iter().filter(|u| u["email"] == email).count();
    assert_eq!(count(&app.get("/api/v1/users").await.1, "new.person@example.com"), 1);

    // A known e-mail (any case at the provider): matched, its role kept.
    let boss = s.create_user("boss@example.com", "刘经理", Role::Manager, None).await.unwrap();
    let (status, path, page) = sso_login(&app, &idp, "Boss@Example.com").await;
    assert_eq!((status, path.as_str()), (200, "/ui/customers"), "{page}");
    assert!(page.contains("刘经理"), "the manager's own session");
    assert_eq!(s.user(boss.id).await.unwrap().role, Role::Manager);
    let users = app.get("/api/v1/users").await.1;
    assert_eq!(count(&users, "boss@example.com"), 1, "{users}");

    // Deactivated: refused, no session.
    let (st, _) = app.patch(&format!("/api/v1/users/{}", boss.id), json!({"active": false})).await;
    assert_eq!(st, 200);
    let (status, _, page) = sso_login(&app, &idp, "boss@example.com").await;
    assert_eq!(status, 502);
    assert!(page.contains("id=\"sso-error\"") && page.contains("deactivated"), "{page}");

    // A callback this browser did not start (a code and state from elsewhere): refused.
    let b = browser();
    let r = b.get(format!("{}/ui/login/sso/callback?code=abc&state=forged", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert!(r.text().await.unwrap().contains("id=\"sso-error\""));
    // No new user was made by the failures; the logins are audited.
    let (_, audit) = app.get("/api/v1/audit?action=login_sso").await;
    assert_eq!(audit["items"].as_array().map(|a| a.len()), Some(3), "{audit}");
    let (st, _) = json_of(app.req(reqwest::Method::GET, "/api/v1/sso/settings").send().await.unwrap()).await;
    assert_eq!(st, 200);
});
