//! The users page (`/ui/users`, issue 21 §3) over a real server on each engine: an administrator
//! creates a user with units, changes its role and units, resets its password (its sessions
//! end), deactivates it (its session and token stop at once), and sets the two-factor policy; an
//! agent is refused; every change is audited.

mod common;

use common::{spawn_app, TestApp};
use patron_store::access::units::NewUnit;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use reqwest::header::LOCATION;

const PASSWORD: &str = "correct horse battery";

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn login(app: &TestApp, email: &str) -> reqwest::Client {
    let b = browser();
    let r = b.post(format!("{}/ui/login", app.base)).form(&[("email", email), ("password", PASSWORD)]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    b
}

async fn page(b: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = b.get(format!("{}{path}", app.base)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn csrf(page: &str) -> String {
    let from = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    page[from..from + page[from..].find('"').unwrap()].to_owned()
}

test_both!(administrators_manage_users_on_the_users_page, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = app.db.store.clone();
    s.create_user("admin@example.com", "陈管理员", Role::Admin, Some(PASSWORD)).await.unwrap();
    s.create_user("agent@example.com", "小张", Role::Agent, Some(PASSWORD)).await.unwrap();
    let cli = Actor::cli();
    let unit = |name: &str, code: &str| NewUnit { name: name.into(), code: code.into(), kind: "store".into(), parent_id: None };
    let u1 = s.create_unit(&cli, unit("静安店", "SH01")).await.unwrap();
    let u2 = s.create_unit(&cli, unit("徐汇店", "SH02")).await.unwrap();

    // An agent does not administer users.
    let agent = login(&app, "agent@example.com").await;
    assert_eq!(page(&agent, &app, "/ui/users").await.0, 403);

    let b = login(&app, "admin@example.com").await;
    let (st, list) = page(&b, &app, "/ui/users").await;
    assert_eq!(st, 200);
    assert!(list.contains("agent@example.com") && list.contains("SH01") && list.contains("id=\"tf-policy-form\""), "{list}");
    let token = csrf(&list);
    // A bad e-mail is refused on the page, in words.
    let r = b
        .post(format!("{}/ui/users", app.base))
        .form(&[("csrf", token.as_str()), ("email", "not an email"), ("name", "x"), ("role", "agent")])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("id=\"users-error\""));
    // Created with two units (repeated checkboxes).
    let (a, b_) = (u1.id.to_string(), u2.id.to_string());
    let r = b
        .post(format!("{}/ui/users", app.base))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "new@example.com"),
            ("name", "新人"),
            ("role", "agent"),
            ("unit_ids", a.as_str()),
            ("unit_ids", b_.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = to.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(s.user_unit_ids(id).await.unwrap(), vec![u1.id, u2.id]);
    let (st, detail) = page(&b, &app, &to).await;
    assert!(st == 200 && detail.contains("新人"), "{detail}");

    // Role and units changed.
    let r = b
        .post(format!("{}{to}", app.base))
        .form(&[("csrf", token.as_str()), ("name", "新人"), ("role", "manager"), ("unit_ids", b_.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("id=\"users-done\""));
    assert_eq!(s.user(id).await.unwrap().role, Role::Manager);
    assert_eq!(s.user_unit_ids(id).await.unwrap(), vec![u2.id]);

    // A password reset ends the user's sessions.
    let theirs = login(&app, "new@example.com").await;
    assert_eq!(page(&theirs, &app, "/ui/customers").await.0, 200);
    let r = b.post(format!("{}{to}/password", app.base)).form(&[("csrf", token.as_str()), ("password", "short")]).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("id=\"users-error\""), "too short");
    let r = b
        .post(format!("{}{to}/password", app.base))
        .form(&[("csrf", token.as_str()), ("password", "a brand new password")])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("id=\"users-done\""));
    assert_eq!(page(&theirs, &app, "/ui/customers").await.0, 303, "logged out");
    assert!(s.authenticate("new@example.com", "a brand new password").await.unwrap().is_some());

    // Deactivated: a live session and a token stop at once.
    let user = s.user(id).await.unwrap();
    let (secret, _) = s.create_session(&user, chrono::Duration::hours(1)).await.unwrap();
    let (_, api) = s.create_token("t", Role::Manager, Some(id)).await.unwrap();
    let r = b.post(format!("{}{to}/active", app.base)).form(&[("csrf", token.as_str()), ("active", "false")]).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("id=\"user-activate\""));
    assert!(s.session(&secret).await.unwrap().is_none());
    assert_eq!(app.req_as(&api, reqwest::Method::GET, "/api/v1/customers").send().await.unwrap().status().as_u16(), 401);

    // The two-factor policy from the page; a forged form without the CSRF token changes nothing.
    let r = b
        .post(format!("{}/ui/users/two-factor-policy", app.base))
        .form(&[("csrf", "forged"), ("required_roles", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = b
        .post(format!("{}/ui/users/two-factor-policy", app.base))
        .form(&[("csrf", token.as_str()), ("required_roles", "admin"), ("required_roles", "manager")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(s.two_factor_policy().await.unwrap().required_roles, vec!["admin".to_owned(), "manager".to_owned()]);
    // English too.
    b.get(format!("{}/ui/lang/en", app.base)).send().await.unwrap();
    let (_, en) = page(&b, &app, "/ui/users").await;
    assert!(en.contains("New user") && en.contains("Two-factor policy"), "{en}");
    let (_, audit) = app.get("/api/v1/audit?action=update&limit=100").await;
    assert!(audit.to_string().contains("deactivated") && audit.to_string().contains("password reset"), "{audit}");
});
