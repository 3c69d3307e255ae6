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
    let c = s
        .create_customer(&a, NewCustomer { name: "王建国".into(), mobile: Some("13800138000".into()), ..Default::default() })
        .await
        .unwrap();
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
        order_id: None,
    };
    let t = s.create_ticket(&a, t).await.unwrap();
    for to in ["acknowledged", "in_progress"] {
        s.transition_ticket(&a, t.id, Transition { to: to.into(), root_cause: None, note: None }).await.unwrap();
    }
    let done =
        s.transition_ticket(&a, t.id, Transition { to: "resolved".into(), root_cause: Some("上菜慢".into()), note: None }).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_complaint_end_to_end() {
    const PASSWORD: &str = "correct horse battery";
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let boss = s.create_user("boss@example.com", "刘经理", patron_store::users::Role::Manager, Some(PASSWORD)).await.unwrap();
    let agent = s.create_user("agent@example.com", "小张", patron_store::users::Role::Agent, Some(PASSWORD)).await.unwrap();
    s.set_user_manager(&Actor::cli(), agent.id, Some(boss.id)).await.unwrap();
    let c = s
        .create_customer(&Actor::cli(), NewCustomer { name: "赵敏".into(), owner_id: Some(agent.id), ..Default::default() })
        .await
        .unwrap();
    let app = spawn_app(db).await;
    let b = Browser::start().await;
    let login = |email: &'static str| {
        let b = &b;
        let base = app.base.clone();
        async move {
            b.goto(&format!("{base}/ui/login")).await;
            b.type_into("#email", email).await;
            b.type_into("#password", PASSWORD).await;
            b.click("#login-button").await;
            b.find("#customer-table").await;
        }
    };
    login("agent@example.com").await;
    // From the customer 360: the tier's policy, then a new complaint.
    b.goto(&format!("{}/ui/customers/{}", app.base, c.id)).await;
    assert!(b.text("#policy-card").await.contains("default"));
    b.click("#new-ticket").await;
    b.click("#ticket-category option[value='上菜慢']").await;
    b.type_into("#ticket-subject", "上菜太慢").await;
    b.type_into("#ticket-body", "等了四十分钟").await;
    b.click("#ticket-create").await;
    assert_eq!(b.text("#ticket-status").await, "新建");
    assert!(b.text("#ticket-assignee").await.contains("小张"), "an agent's new ticket is theirs");
    // Only the allowed moves are offered; a public reply acknowledges.
    b.find("#move-acknowledged").await;
    b.type_into("#comment-body", "您好，我们马上催后厨").await;
    b.click("#comment-send").await;
    b.wait_text("#ticket-status", "已受理").await;
    assert_eq!(b.text("#sla-first").await, "达标");
    b.click("#move-in_progress").await;
    b.wait_text("#ticket-status", "处理中").await;
    // Resolving without a root cause is refused on the page; with one it gives the link.
    b.click("#move-resolved").await;
    assert!(b.text("#ticket-error").await.contains("root cause"));
    b.click("#root-cause option[value='上菜慢']").await;
    b.click("#move-resolved").await;
    let link = b.text("#confirmation-link").await;
    assert!(link.contains("/p/confirm/"), "{link}");
    assert_eq!(b.text("#ticket-status").await, "已解决");
    // Compensation above the default tier's ¥20 authority waits for the manager.
    b.type_into("#comp-amount", "50").await;
    b.type_into("#comp-reason", "致歉代金券").await;
    b.click("#comp-send").await;
    assert_eq!(b.text("#compensations .comp-status").await, "待处理");
    b.screenshot(&common::screenshots().join("ticket-agent.png")).await;
    // The manager sees it in the bell, approves it, and reads the Pareto on the dashboard.
    b.click("header.top form button").await;
    b.find("#login-button").await;
    login("boss@example.com").await;
    b.wait_text("#bell", "1").await;
    b.goto(&format!("{}/ui/notifications", app.base)).await;
    assert!(b.text("#notification-list").await.contains("待审批"));
    let ticket_id = app.db.store.tickets(&Actor::cli(), &Default::default(), Default::default(), None, 1).await.unwrap().items[0].id;
    b.goto(&format!("{}/ui/tickets/{ticket_id}", app.base)).await;
    b.click("#compensations button[name=approve][value=true]").await;
    b.wait_text("#compensations .comp-status", "已发放").await;
    b.goto(&format!("{}/ui/service", app.base)).await;
    assert!(b.text("#pareto-table").await.contains("上菜慢"));
    b.find("#chart-pareto[data-drawn='1']").await;
    b.screenshot(&common::screenshots().join("service-dashboard.png")).await;
    b.quit().await;
}
