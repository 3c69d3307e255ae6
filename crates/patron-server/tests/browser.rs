//! The web UI in a real headless Chromium (Debian's chromium + chromium-driver): log in, search,
//! open a customer 360, edit a field and see it in the history; switch language; import a file
//! and read the rejected rows. Screenshots land in target/screenshots for a look.

mod common;

use common::spawn_app;
use common::webdriver::Browser;
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::testing::test_db;
use patron_store::users::{Actor, Role};
use patron_store::Engine;

const PASSWORD: &str = "correct horse battery";

async fn seeded_app() -> common::TestApp {
    let db = test_db(Engine::Sqlite).await;
    db.store.create_user("manager@example.com", "王经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    let customers = "customer_id,name,mobile,email,city,tags,consent_sms\n\
W1,王伟,13800138000,wang@example.com,上海,火锅,true\n\
W2,李娜,13900139000,li@example.com,北京,下午茶,false\n\
W3,张三,13700137000,,杭州,,\n";
    let orders = "order_id,customer_id,ordered_at,amount,category,product,channel,store\n\
O1,W1,2026-05-01 12:30:00,268.00,火锅,鸳鸯锅,store,上海南京西路店\n\
O2,W1,2026-06-10 19:00:00,88.50,茶饮,杨枝甘露,app,\n";
    for (kind, text) in [(ImportKind::Customers, customers), (ImportKind::Orders, orders)] {
        let r = db
            .store
            .import(&Actor::cli(), Box::new(std::io::Cursor::new(text.as_bytes().to_vec())), &ImportOptions::new(kind, "seed.csv"), &|_| {})
            .await
            .unwrap();
        assert!(r.committed, "{:?}", r.rejections);
    }
    spawn_app(db).await
}

async fn login(b: &Browser, app: &common::TestApp) {
    b.goto(&format!("{}/ui/customers", app.base)).await;
    // Not logged in: sent to the login page.
    b.find("#login-button").await;
    b.type_into("#email", "manager@example.com").await;
    b.type_into("#password", "wrong password").await;
    b.click("#login-button").await;
    b.find("#login-error").await;
    b.type_into("#email", "manager@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_search_open_edit_and_see_history() {
    let app = seeded_app().await;
    let b = Browser::start().await;
    login(&b, &app).await;
    let who = b.text("#who").await;
    assert!(who.contains("王经理") && who.contains("主管"), "{who}");
    assert!(b.text("#total").await.contains('3'));
    // Lists mask mobile numbers for a manager.
    assert!(b.text("#customer-table").await.contains("138****8000"));
    b.screenshot(&common::screenshots().join("customers.png")).await;

    // Search narrows the list (htmx swaps the results as one types).
    b.type_into("#q", "李娜").await;
    b.wait_text("#total", "1").await;
    let table = b.wait_text("#customer-table", "李娜").await;
    assert!(!table.contains("王伟"), "{table}");
    b.type_into("#q", "W1").await;
    b.wait_text("#customer-table", "王伟").await;

    // Open the customer 360.
    b.click(".customer-link").await;
    b.wait_text("#customer-name", "王伟").await;
    assert!(b.text("#stat-orders").await.contains('2'));
    assert!(b.text("#stat-spend").await.contains("¥356.50"));
    assert_eq!(b.text("#profile-mobile").await, "13800138000", "the 360 shows the full value");
    assert!(b.text("#orders").await.contains("鸳鸯锅"));
    // Stored values (status, channel, consent channel, entry kind) read in the page's language.
    let orders = b.text("#orders").await;
    assert!(orders.contains("已完成") && orders.contains("门店") && !orders.contains("completed"), "{orders}");
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("订单") && timeline.contains("已完成 · 门店"), "{timeline}");
    assert!(b.text("#consent").await.contains("短信"));
    b.screenshot(&common::screenshots().join("customer360.png")).await;

    // Edit the city and see the change in the history.
    b.click("#edit-link").await;
    b.type_into("#f-city", "苏州").await;
    b.type_into("#f-email", "not an email").await;
    b.click("#save-button").await;
    b.wait_text("#form-error", "email").await;
    b.type_into("#f-email", "wang.wei@example.com").await;
    b.click("#save-button").await;
    b.wait_text("#profile-city", "苏州").await;
    let history = b.wait_text("#history-table", "城市").await;
    assert!(history.contains("上海") && history.contains("苏州"), "{history}");
    assert!(history.contains("wang.wei@example.com"));
    b.screenshot(&common::screenshots().join("history.png")).await;

    // A note lands on the timeline.
    b.type_into("#note-body", "喜欢靠窗的位置").await;
    b.click("#note-button").await;
    b.wait_text("#timeline-list", "喜欢靠窗的位置").await;

    // The same page in English.
    b.click("#lang-switch").await;
    let orders = b.wait_text("#orders", "Completed").await;
    assert!(orders.contains("Store") && orders.contains("App"), "{orders}");
    assert!(b.text("#history-table").await.contains("City"));
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_switch_and_import_report() {
    let app = seeded_app().await;
    let b = Browser::start().await;
    login(&b, &app).await;
    // zh-CN by default; switch to English and back.
    assert!(b.text("#search-button").await.contains("搜索"));
    b.click("#lang-switch").await;
    b.wait_text("#search-button", "Search").await;
    assert!(b.url().await.ends_with("/ui/customers"));

    // Import a file with a bad row: the report lists it and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.csv");
    std::fs::write(
        &file,
        "order_id,customer_id,ordered_at,amount\nN1,W2,2026-06-20 12:00,50\nN2,NOBODY,2026-06-20 12:00,50\nN3,W3,2026-06-20,5.555\n",
    )
    .unwrap();
    b.goto(&format!("{}/ui/import", app.base)).await;
    b.click("#import-kind option[value=orders]").await;
    b.upload("#import-file", &file).await;
    b.click("#import-button").await;
    b.wait_text("#r-rejected", "2").await;
    let rej = b.text("#rejections").await;
    assert!(rej.contains("unknown customer") && rej.contains("2 decimals"), "{rej}");
    assert!(b.text("#r-status").await.contains("Nothing was written"));
    b.screenshot(&common::screenshots().join("import.png")).await;
    // With skip-invalid the valid row loads.
    b.click("#import-kind option[value=orders]").await;
    b.upload("#import-file", &file).await;
    b.click("#import-skip").await;
    b.click("#import-button").await;
    b.wait_text("#r-created", "1").await;
    assert!(b.text("#r-status").await.contains("Written"));
    // In Chinese the reasons read in Chinese, with the offending values as they were.
    b.click("#lang-switch").await;
    b.wait_text("#import-button", "开始导入").await;
    b.click("#import-kind option[value=orders]").await;
    b.upload("#import-file", &file).await;
    b.click("#import-button").await;
    b.wait_text("#r-rejected", "2").await;
    let rej = b.text("#rejections").await;
    assert!(rej.contains("未知客户（请先导入客户）") && rej.contains("金额最多两位小数") && rej.contains("NOBODY"), "{rej}");
    b.click("#lang-switch").await;
    b.wait_text("#import-button", "Import").await;

    // Log out: the session is gone.
    b.goto(&format!("{}/ui/customers", app.base)).await;
    b.click("header.top form button").await;
    b.find("#login-button").await;
    b.goto(&format!("{}/ui/customers", app.base)).await;
    b.find("#login-button").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_a_duplicate_from_the_360_page() {
    let app = seeded_app().await;
    // Someone entered 王伟 again, with another mobile and one more order.
    let text = "customer_id,name,mobile,city,tags\nW9,王 伟,13900000009,上海,会员\n";
    let orders = "order_id,customer_id,ordered_at,amount\nO9,W9,2026-07-01 12:00:00,10.00\n";
    for (kind, text) in [(ImportKind::Customers, text), (ImportKind::Orders, orders)] {
        let r = app
            .db
            .store
            .import(&Actor::cli(), Box::new(std::io::Cursor::new(text.as_bytes().to_vec())), &ImportOptions::new(kind, "dup.csv"), &|_| {})
            .await
            .unwrap();
        assert!(r.committed, "{:?}", r.rejections);
    }
    let b = Browser::start().await;
    login(&b, &app).await;
    b.type_into("#q", "W1").await;
    b.click("#search-button").await;
    b.wait_text("#customer-table", "王伟").await;
    b.click(".customer-link").await;
    let dups = b.wait_text("#duplicates", "同城同名").await;
    assert!(dups.contains("139****0009"), "a manager sees contacts masked: {dups}");
    b.screenshot(&common::screenshots().join("duplicates.png")).await;
    // A manager may export a customer's data, not erase it.
    b.find("#personal-data-link").await;
    assert!(!b.text("#privacy").await.contains("删除个人信息"));
    // Two steps: open, then confirm.
    b.click(".merge-open").await;
    b.click(".merge-button").await;
    // Back on the kept customer: three orders, the merge in the history, no candidates left.
    b.wait_text("#history-table", "合并了客户").await;
    assert!(b.text("#stat-orders").await.contains('3'));
    assert!(b.text("#profile-tags").await.contains("会员"));
    assert!(!b.text("body").await.contains("可能重复的客户"));
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_erases_a_customer_from_the_360_page() {
    let app = seeded_app().await;
    app.db.store.create_user("admin@example.com", "管理员", Role::Admin, Some(PASSWORD)).await.unwrap();
    let b = Browser::start().await;
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "admin@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
    assert!(b.text("#total").await.contains('3'));
    b.type_into("#q", "W2").await;
    b.click("#search-button").await;
    b.wait_text("#customer-table", "李娜").await;
    b.click(".customer-link").await;
    b.wait_text("#privacy", "删除个人信息").await;
    b.click(".erase-open").await;
    b.click("#erase-button").await;
    // Back on the list, without the customer.
    let table = b.wait_text("#total", "2").await;
    assert!(!b.text("#customer-table").await.contains("李娜"), "{table}");
    b.quit().await;
}

/// Issue 21: a store user logs in and its customer list holds the store's customers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_users_list_shows_only_the_store() {
    use patron_store::access::units::NewUnit;
    use patron_store::users::NewUser;
    let app = seeded_app().await;
    let s = &app.db.store;
    let cli = Actor::cli();
    let unit = |code: &str| NewUnit { name: format!("门店{code}"), code: code.into(), kind: "store".into(), parent_id: None };
    let mine = s.create_unit(&cli, unit("S1")).await.unwrap();
    let other = s.create_unit(&cli, unit("S2")).await.unwrap();
    let input = NewUser {
        email: "store@example.com".into(),
        name: "门店小王".into(),
        role: "agent".into(),
        unit_ids: vec![mine.id],
        password: Some(PASSWORD.into()),
    };
    s.create_user_as(&cli, &input).await.unwrap();
    // W1 at home in the user's store, W2 in the other one, W3 in none.
    let (_, page) = app.get("/api/v1/customers").await;
    for c in page["items"].as_array().unwrap() {
        let home = match c["external_id"].as_str() {
            Some("W1") => Some(mine.id),
            Some("W2") => Some(other.id),
            _ => None,
        };
        if let Some(h) = home {
            let (st, _) = app.patch(&format!("/api/v1/customers/{}", c["id"]), serde_json::json!({"home_unit_id": h})).await;
            assert_eq!(st, 200);
        }
    }
    let b = Browser::start().await;
    b.goto(&format!("{}/ui/customers", app.base)).await;
    b.find("#login-button").await;
    b.type_into("#email", "store@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
    let text = b.text("#customer-table").await;
    assert!(text.contains("王伟"), "{text}");
    assert!(!text.contains("李娜") && !text.contains("张三"), "{text}");
    assert!(b.text("#total").await.contains('1'));
    b.screenshot(&common::screenshots().join("access-store-list.png")).await;
}
