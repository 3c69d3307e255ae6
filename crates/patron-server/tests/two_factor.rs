//! Two-factor login (issue 21 §4) over a real server on each engine: enrolment from the security
//! page and a TOTP login with the store's clock moved (a code of the previous step accepted, two
//! steps back refused, a code never twice), recovery codes good once, wrong codes throttled like
//! wrong passwords, the per-role policy making enrolment part of the login, and the
//! administrator's reset. The session never exists before the second step passes.

mod common;

use chrono::Duration;
use common::{json_of, spawn_app, TestApp};
use patron_store::access::two_factor::code_at;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A browser: cookies kept, redirects not followed (the test reads them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Status, where it redirects, whether it set the session cookie, and the page.
struct Answer {
    status: u16,
    location: String,
    session: bool,
    body: String,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let session = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with("patron_session=") && !v.starts_with("patron_session=;")));
    Answer { status, location, session, body: r.text().await.unwrap_or_default() }
}

async fn post(b: &reqwest::Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Answer {
    answer(b.post(format!("{}{path}", app.base)).form(form).send().await.unwrap()).await
}

async fn get(b: &reqwest::Client, app: &TestApp, path: &str) -> Answer {
    answer(b.get(format!("{}{path}", app.base)).send().await.unwrap()).await
}

/// The text between `start` and `end` after `start` first occurs.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("{start:?} not in {page}")) + start.len();
    let len = page[from..].find(end).unwrap();
    &page[from..from + len]
}

fn csrf(page: &str) -> String {
    between(page, "name=\"csrf\" value=\"", "\"").to_owned()
}

fn recovery_codes(page: &str) -> Vec<String> {
    let list = between(page, "id=\"recovery-codes\"", "</ul>");
    list.split("<code>").skip(1).map(|c| c.split("</code>").next().unwrap().to_owned()).collect()
}

/// Whether the browser has a session (the customers page answers, not a redirect to login).
async fn logged_in(b: &reqwest::Client, app: &TestApp) -> bool {
    get(b, app, "/ui/customers").await.status == 200
}

test_both!(totp_enrolment_and_login_with_the_clock_moved, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = app.db.store.clone();
    s.create_user("pat@example.com", "小王", Role::Agent, Some(PASSWORD)).await.unwrap();
    let b = browser();
    let r = post(&b, &app, "/ui/login", &[("email", "pat@example.com"), ("password", PASSWORD)]).await;
    assert!(r.session && r.status == 303, "no second factor yet: the password is enough");

    // Enrol on the security page: a QR code (SVG drawn by the server) and the key.
    let page = get(&b, &app, "/ui/account/security").await.body;
    let token = csrf(&page);
    let r = post(&b, &app, "/ui/account/security/enrol", &[("csrf", &token)]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<svg") && r.body.contains("id=\"totp-qr\""), "{}", r.body);
    let secret: String = between(&r.body, "id=\"totp-secret\">", "<").split_whitespace().collect();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    // Not in force before it is confirmed: a wrong code is refused and nothing changes.
    let r = post(&b, &app, "/ui/account/security/confirm", &[("csrf", &token), ("code", "000000")]).await;
    assert!(r.body.contains("id=\"security-error\""), "{}", r.body);
    let t0 = s.now();
    let code = code_at(&secret, t0).unwrap();
    let r = post(&b, &app, "/ui/account/security/confirm", &[("csrf", &token), ("code", &code)]).await;
    let codes = recovery_codes(&r.body);
    assert_eq!(codes.len(), 10, "{}", r.body);
    // Shown once: the page does not show them again.
    let again = get(&b, &app, "/ui/account/security").await.body;
    assert!(!again.contains(&codes[0]) && again.contains("id=\"codes-left\">10<"), "{again}");
    // The key is not in the database in a form the page showed it... but it is never logged either:
    // the audit has the enrolment without it.
    let (_, audit) = app.get("/api/v1/audit?action=enable_two_factor").await;
    assert!(audit.to_string().contains("enable_two_factor") && !audit.to_string().contains(&secret), "{audit}");

    // Log out; the password alone now opens no session.
    let page = get(&b, &app, "/ui/customers").await.body;
    post(&b, &app, "/ui/logout", &[("csrf", &csrf(&page))]).await;
    assert!(!logged_in(&b, &app).await);
    let t1 = t0 + Duration::seconds(300);
    app.db.clock.set(t1);
    let r = post(&b, &app, "/ui/login", &[("email", "pat@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((r.status, r.location.as_str(), r.session), (303, "/ui/login/code", false));
    assert!(!logged_in(&b, &app).await, "no session before the code");
    assert_eq!(get(&b, &app, "/ui/login/code").await.status, 200);
    // Two steps back: refused.
    let r = post(&b, &app, "/ui/login/code", &[("code", &code_at(&secret, t1 - Duration::seconds(60)).unwrap())]).await;
    assert_eq!((r.status, r.session), (401, false));
    assert!(r.body.contains("id=\"code-error\""));
    // The previous step: accepted, and the session starts now.
    let prev = code_at(&secret, t1 - Duration::seconds(30)).unwrap();
    let r = post(&b, &app, "/ui/login/code", &[("code", &prev)]).await;
    assert_eq!((r.status, r.location.as_str(), r.session), (303, "/ui/customers", true));
    assert!(logged_in(&b, &app).await);

    // The same code never works twice, even within its window.
    let b2 = browser();
    post(&b2, &app, "/ui/login", &[("email", "pat@example.com"), ("password", PASSWORD)]).await;
    let r = post(&b2, &app, "/ui/login/code", &[("code", &prev)]).await;
    assert_eq!((r.status, r.session), (401, false), "a replayed code");
    let r = post(&b2, &app, "/ui/login/code", &[("code", &code_at(&secret, t1).unwrap())]).await;
    assert!(r.session, "the current step's code");
});

test_both!(recovery_codes_work_once_and_wrong_codes_lock_like_passwords, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = app.db.store.clone();
    let user = s.create_user("rec@example.com", "小李", Role::Manager, Some(PASSWORD)).await.unwrap();
    let e = s.start_totp_enrolment(&user, "patron").await.unwrap();
    let codes = s.confirm_totp("cli", user.id, &code_at(&e.secret, s.now()).unwrap()).await.unwrap();
    assert!(s.two_factor_enabled(user.id).await.unwrap());

    let b = browser();
    post(&b, &app, "/ui/login", &[("email", "rec@example.com"), ("password", PASSWORD)]).await;
    // Typed in upper case with a space: still the code.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let r = post(&b, &app, "/ui/login/code", &[("code", &typed)]).await;
    assert!(r.session, "a recovery code logs in");
    let b = browser();
    post(&b, &app, "/ui/login", &[("email", "rec@example.com"), ("password", PASSWORD)]).await;
    let r = post(&b, &app, "/ui/login/code", &[("code", &codes[3])]).await;
    assert_eq!((r.status, r.session), (401, false), "but only once");
    assert_eq!(s.two_factor_status(&user).await.unwrap().recovery_codes_left, 9);

    // Wrong codes count against the account as wrong passwords do: the fifth failure in a row
    // (one above, four here) locks it, and then even the right code waits.
    for _ in 0..3 {
        assert_eq!(post(&b, &app, "/ui/login/code", &[("code", "123456")]).await.status, 401);
    }
    let r = post(&b, &app, "/ui/login/code", &[("code", "123456")]).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let b = browser();
    let r = post(&b, &app, "/ui/login", &[("email", "rec@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((r.status, r.session), (429, false), "locked, whatever the password");
    let (_, audit) = app.get("/api/v1/audit?action=login_code_failed").await;
    assert_eq!(audit["items"].as_array().map(|a| a.len()), Some(5), "{audit}");
});

test_both!(a_role_that_requires_two_factors_enrols_at_login, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = app.db.store.clone();
    let agent = s.create_user("must@example.com", "小赵", Role::Agent, Some(PASSWORD)).await.unwrap();
    s.create_user("free@example.com", "小钱", Role::Manager, Some(PASSWORD)).await.unwrap();

    // The policy: unknown roles refused, known ones kept once.
    let (st, e) = app.put("/api/v1/two-factor/policy", json!({"required_roles": ["nobody"]})).await;
    assert_eq!((st, common::error_code(&e).as_str(), e["error"]["field"].as_str()), (422, "invalid", Some("required_roles")), "{e}");
    let (st, p) = app.put("/api/v1/two-factor/policy", json!({"required_roles": ["agent", "agent"]})).await;
    assert_eq!((st, p), (200, json!({"required_roles": ["agent"]})));
    assert_eq!(app.get("/api/v1/two-factor/policy").await.1, json!({"required_roles": ["agent"]}));
    let (_, token) = s.create_token("agent", Role::Agent, Some(agent.id)).await.unwrap();
    let (st, _) = json_of(
        app.req_as(&token, reqwest::Method::PUT, "/api/v1/two-factor/policy").json(&json!({"required_roles": []})).send().await.unwrap(),
    )
    .await;
    assert_eq!(st, 403, "users.admin only");

    // A manager is not concerned.
    let b = browser();
    assert!(post(&b, &app, "/ui/login", &[("email", "free@example.com"), ("password", PASSWORD)]).await.session);

    // The agent's login goes through enrolment; no session until its code passes.
    let b = browser();
    let r = post(&b, &app, "/ui/login", &[("email", "must@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((r.status, r.location.as_str(), r.session), (303, "/ui/login/enrol", false));
    assert_eq!(get(&b, &app, "/ui/login/code").await.location, "/ui/login/enrol");
    let page = get(&b, &app, "/ui/login/enrol").await;
    assert!(page.body.contains("id=\"enrol-required\"") && page.body.contains("<svg"), "{}", page.body);
    let secret: String = between(&page.body, "id=\"totp-secret\">", "<").split_whitespace().collect();
    // Reloading shows the same key (the enrolment in progress), not a new one.
    let again = get(&b, &app, "/ui/login/enrol").await.body;
    assert_eq!(between(&again, "id=\"totp-secret\">", "<").split_whitespace().collect::<String>(), secret);
    let r = post(&b, &app, "/ui/login/enrol", &[("code", "000000")]).await;
    assert_eq!((r.status, r.session), (401, false));
    assert!(!logged_in(&b, &app).await);
    let r = post(&b, &app, "/ui/login/enrol", &[("code", &code_at(&secret, s.now()).unwrap())]).await;
    assert_eq!((r.status, r.session), (200, true));
    assert_eq!(recovery_codes(&r.body).len(), 10, "shown once, at the end of the enrolment");
    assert!(logged_in(&b, &app).await);
    // It cannot be turned off while the role requires it.
    let page = get(&b, &app, "/ui/account/security").await.body;
    assert!(page.contains("id=\"tf-status\"") && !page.contains("id=\"disable-form\""), "{page}");
    let r = post(&b, &app, "/ui/account/security/disable", &[("csrf", &csrf(&page)), ("code", "000000")]).await;
    assert!(r.body.contains("id=\"security-refused\""));
    assert!(s.two_factor_enabled(agent.id).await.unwrap());
    // The users list says who has it.
    let (_, users) = app.get("/api/v1/users").await;
    let me = users.as_array().unwrap().iter().find(|u| u["email"] == "must@example.com").unwrap().clone();
    assert_eq!(me["two_factor"], json!(true), "{me}");

    // A lost phone: the administrator resets it, and the next login enrols again.
    let path = format!("/api/v1/users/{}/two-factor", agent.id);
    let (st, _) = json_of(app.req(reqwest::Method::DELETE, &path).send().await.unwrap()).await;
    assert_eq!(st, 204);
    let (st, e) = json_of(app.req(reqwest::Method::DELETE, "/api/v1/users/999999/two-factor").send().await.unwrap()).await;
    assert_eq!((st, common::error_code(&e).as_str()), (404, "not_found"));
    let b = browser();
    let r = post(&b, &app, "/ui/login", &[("email", "must@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(r.location, "/ui/login/enrol");
    let (_, audit) = app.get("/api/v1/audit?action=disable_two_factor").await;
    assert_eq!(audit["items"].as_array().map(|a| a.len()), Some(1), "{audit}");
});
