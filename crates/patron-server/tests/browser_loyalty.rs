//! The loyalty club's pages in a real headless Chromium: an agent redeems a reward for a member
//! from the customer 360 and the balance drops (the stock too; no adjust form without the
//! permission); a manager adjusts points with a reason, and reads the liability dashboard with
//! its chart and the cost-to-serve matrix after an analysis.

mod common;

use chrono::Duration;
use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::loyalty::rewards::RewardInput;
use patron_store::loyalty::LoyaltyProgram;
use patron_store::orders::NewOrder;
use patron_store::testing::{test_db, test_now};
use patron_store::users::{Actor, Role};
use patron_store::Engine;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

async fn login(b: &Browser, base: &str, email: &str) {
    b.goto(&format!("{base}/ui/login")).await;
    b.find("#login-button").await;
    b.type_into("#email", email).await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_redeem_a_reward_from_the_360_page_and_the_balance_drops() {
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let cli = Actor::cli();
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, Some(PASSWORD)).await.unwrap();
    s.create_user("boss@example.com", "刘经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    s.set_loyalty_program(&cli, &LoyaltyProgram { enabled: true, expiry_months: 12, ..Default::default() }).await.unwrap();
    let c = s.create_customer(&cli, NewCustomer { name: "陈静".into(), owner_id: Some(agent.id), ..Default::default() }).await.unwrap();
    let o = NewOrder {
        external_id: Some("L1".into()),
        customer_id: Some(c.id),
        ordered_at: test_now() - Duration::days(3),
        total_cents: Some(30_000),
        status: Some("completed".into()),
        ..Default::default()
    };
    s.create_orders(&cli, vec![o]).await.unwrap();
    let reward = RewardInput {
        name: "咖啡券".into(),
        points: 120,
        stock: Some(5),
        cost_cents: 800,
        active_from: None,
        active_to: None,
        tiers: vec![],
        image_url: None,
    };
    let reward = s.create_reward(&cli, reward).await.unwrap();
    let app = spawn_app(db).await;
    let b = Browser::start().await;

    // The agent: the card shows 300 points; redeem the reward; 180 left, stock 4.
    login(&b, &app.base, "agent@example.com").await;
    b.goto(&format!("{}/ui/customers/{}", app.base, c.id)).await;
    assert_eq!(b.text("#loyalty-balance").await, "300");
    assert_eq!(b.text("#member-no").await, format!("M{}", c.id));
    let no_adjust = b.script("return document.getElementById('adjust-button') === null").await;
    assert_eq!(no_adjust, json!(true), "agents may not adjust points");
    assert!(b.text("#loyalty-rewards").await.contains("咖啡券"));
    b.click(&format!("#redeem-{}", reward.id)).await;
    b.wait_text("#loyalty-done", "兑换成功").await;
    assert_eq!(b.text("#loyalty-balance").await, "180");
    assert!(b.text("#loyalty-ledger").await.contains("-120"));
    b.screenshot(&common::screenshots().join("loyalty-card.png")).await;
    let store = &app.db.store;
    assert_eq!(store.loyalty_member(c.id).await.unwrap().balance, 180);
    assert_eq!(store.rewards(None).await.unwrap()[0].stock, Some(4));
    assert_eq!(store.redemptions(c.id).await.unwrap().len(), 1);

    // The manager adjusts with a reason; without one the browser does not send the form.
    b.click("header.top form button").await;
    b.find("#login-button").await;
    login(&b, &app.base, "boss@example.com").await;
    b.goto(&format!("{}/ui/customers/{}", app.base, c.id)).await;
    b.click("#loyalty-adjust-open").await;
    b.type_into("#adjust-points", "-30").await;
    b.type_into("#adjust-reason", "重复积分更正").await;
    b.click("#adjust-button").await;
    b.wait_text("#loyalty-done", "积分已调整").await;
    assert_eq!(b.text("#loyalty-balance").await, "150");
    // Taking more than the balance: the card says why, nothing written.
    b.click("#loyalty-adjust-open").await;
    b.type_into("#adjust-points", "-1000").await;
    b.type_into("#adjust-reason", "测试").await;
    b.click("#adjust-button").await;
    b.find("#loyalty-error").await;
    assert_eq!(store.loyalty_member(c.id).await.unwrap().balance, 150);

    // Reports: the liability chart, and the cost-to-serve matrix after an analysis.
    b.goto(&format!("{}/ui/loyalty/liability", app.base)).await;
    assert_eq!(b.text("#liab-outstanding").await, "150");
    b.find("#chart-expiry rect").await;
    b.screenshot(&common::screenshots().join("loyalty-liability.png")).await;
    let as_of = test_now().with_timezone(&store.config.business_tz).date_naive();
    store.run_analysis(&Actor::cli(), as_of, &Default::default()).await.unwrap();
    b.goto(&format!("{}/ui/loyalty/cost-to-serve", app.base)).await;
    b.find("#chart-cts").await;
    assert!(b.text("#cts-table").await.contains("¥"), "the table by tier");
    b.goto(&format!("{}/ui/customers/{}", app.base, c.id)).await;
    b.find("#chart-cost").await;
    assert_eq!(b.text("#cost-cost").await, "¥8.00", "the reward at cost");
    b.goto(&format!("{}/ui/lang/en", app.base)).await;
    b.goto(&format!("{}/ui/loyalty/rewards", app.base)).await;
    assert!(b.text("#rewards-table").await.contains("Unlimited") || b.text("#rewards-table").await.contains("4"));
    b.quit().await;
}
