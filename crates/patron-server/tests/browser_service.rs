//! The service loop's pages in a real headless Chromium: a customer answers a confirmation link
//! on a phone-sized window, without a login.

mod common;

use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::testing::test_db;
use patron_store::tickets::{NewTicket, Transition};
use patron_store::users::Actor;
use patron_store::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_reopens_a_resolution_on_a_phone() {
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    let c = s.create_customer(&a, NewCustomer { name: "王建国".into(), mobile: Some("13800138000".into()), ..Default::default() }).await.unwrap();
    let t = NewTicket {
        customer_id: c.id,
        kind: "complaint".into(),
        channel: "store".into(),
        subject: "上菜太慢".into(),
        body: "等了四十分钟".into(),
        category: Some("上菜慢".into()),
        assignee_id: None,
        department: None,
        store: None,
        opened_at: None,
    };
    let t = s.create_ticket(&a, t).await.unwrap();
    for to in ["acknowledged", "in_progress"] {
        s.transition_ticket(&a, t.id, Transition { to: to.into(), root_cause: None, note: None }).await.unwrap();
    }
    let done = s.transition_ticket(&a, t.id, Transition { to: "resolved".into(), root_cause: Some("上菜慢".into()), note: None }).await.unwrap();
    let token = done.confirmation_token.unwrap();
    let app = spawn_app(db).await;

    let b = Browser::start().await;
    b.set_window_size(390, 844).await;
    b.goto(&format!("{}/p/confirm/{token}", app.base)).await;
    assert_eq!(b.text("#confirm-subject").await, "上菜太慢");
    let page = b.text("body").await;
    assert!(!page.contains("王建国") && !page.contains("13800138000"), "nothing about the customer: {page}");
    // Phone first: nothing wider than the screen, buttons a thumb can hit.
    let fits = b.script("return document.documentElement.scrollWidth <= window.innerWidth").await;
    assert_eq!(fits, serde_json::json!(true));
    let height = b.script("return document.getElementById('confirm-no').getBoundingClientRect().height").await;
    assert!(height.as_f64().unwrap_or(0.0) >= 44.0, "{height}");
    b.screenshot(&common::screenshots().join("confirm-phone.png")).await;
    b.type_into("#comment", "还是很慢").await;
    b.click("#confirm-no").await;
    let result = b.wait_text("#confirm-result", "抱歉").await;
    assert!(result.contains("再次跟进"), "{result}");
    let ticket = app.db.store.ticket(t.id).await.unwrap();
    assert_eq!((ticket.ticket.status.as_str(), ticket.ticket.reopened_count), ("reopened", 1));
    assert!(ticket.comments.iter().any(|c| c.author == "customer" && c.body == "还是很慢"));
    // The link is used: opening it again says so, in English when asked.
    b.goto(&format!("{}/p/confirm/{token}?lang=en", app.base)).await;
    assert!(b.text("#confirm-result").await.contains("answered already"));
    b.quit().await;
}
