//! Two-factor login in a real headless Chromium (issue 21 §5): a user turns it on from the
//! security page (QR code, key, recovery codes shown once), logs out, and logs in again with the
//! password and then a code; an administrator's users page shows it.

mod common;

use common::spawn_app;
use common::webdriver::Browser;
use patron_store::access::two_factor::code_at;
use patron_store::testing::test_db;
use patron_store::users::Role;
use patron_store::Engine;

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_and_a_totp_login() {
    let db = test_db(Engine::Sqlite).await;
    db.store.create_user("admin@example.com", "陈管理员", Role::Admin, Some(PASSWORD)).await.unwrap();
    let app = spawn_app(db).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "admin@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#who").await;

    b.click("#nav-security").await;
    assert!(b.text("#tf-status").await.contains("未开启"));
    b.click("#enrol-start").await;
    b.find("#totp-qr").await;
    let secret: String = b.text("#totp-secret").await.split_whitespace().collect();
    assert_eq!(secret.len(), 32);
    b.screenshot(&common::screenshots().join("two-factor-enrol.png")).await;
    b.type_into("#code", &code_at(&secret, app.db.store.now()).unwrap()).await;
    b.click("#enrol-button").await;
    let codes = b.text("#recovery-codes").await;
    assert_eq!(codes.split_whitespace().count(), 10, "{codes}");
    assert!(b.text("#tf-status").await.contains("已开启"));

    // The users page shows it.
    b.click("#nav-users").await;
    let row = b.text("#user-list").await;
    assert!(row.contains("admin@example.com") && row.contains('✓'), "{row}");

    // Log out, log in: the password, then the code of a later step.
    b.click("header form button").await;
    b.find("#login-button").await;
    b.type_into("#email", "admin@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#code-form").await;
    b.type_into("#code", "000000").await;
    b.click("#code-button").await;
    b.find("#code-error").await;
    app.db.clock.set(app.db.store.now() + chrono::Duration::seconds(90));
    b.type_into("#code", &code_at(&secret, app.db.store.now()).unwrap()).await;
    b.click("#code-button").await;
    b.find("#who").await;
    assert!(b.text("#who").await.contains("陈管理员"));
    b.quit().await;
}
