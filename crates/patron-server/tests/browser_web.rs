//! Web analytics in a real headless Chromium (issue 19 §8, §10): a page served by a separate
//! static server on loopback loads the snippet from patron; its page view and a click arrive;
//! the page then calls `patron.identify(token)` with a token patron issued for a customer, and the
//! earlier view shows on that customer's timeline and as an interest on the 360; the dashboard
//! shows the view, in Chinese and in English.

mod common;

use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::testing::test_db;
use patron_store::users::{Actor, Role};
use patron_store::web::{CategoryRule, NewSite, WebSettings};
use patron_store::Engine;

/// A desktop Chrome's user agent: headless Chromium's own says "HeadlessChrome", which the
/// collector drops as a bot.
const UA: &str = "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// Polls `sql` (a count) until it reaches `n`: the collector writes in batches after ~100 ms.
async fn until_count(s: &patron_store::Store, sql: &'static str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (c,): (i64,) = s.db.reader().fetch_one(patron_store::db::query(sql)).await.unwrap();
        if c >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {c} < {n} after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_the_snippet_is_counted_and_identify_stitches_its_earlier_view() {
    const PASSWORD: &str = "correct horse battery";
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    s.create_user("boss@example.com", "刘经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    let customer = s.create_customer(&a, NewCustomer { name: "钱多多".into(), ..Default::default() }).await.unwrap();
    let settings =
        WebSettings { categories: vec![CategoryRule { pattern: "/menu/*".into(), category: "菜单".into() }], ..Default::default() };
    s.set_web_settings(&a, &settings).await.unwrap();
    let app = spawn_app(db).await;

    // The shop's site: a static server of its own, on another loopback port (another origin).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop = format!("http://{}", listener.local_addr().unwrap());
    let site = s.create_web_site(&a, &NewSite { name: "官网".into(), origin: shop.clone(), cookie_mode: false }).await.unwrap();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>酒水单</title>\
         <script src=\"{}/js/p.js\" data-site=\"{}\" defer></script></head>\
         <body><h1>酒水单</h1><button id=\"book\" data-patron-event=\"book-table\">订座</button></body></html>",
        app.base, site.id
    );
    let shop_app = axum::Router::new().route("/menu/wine", get(move || async move { Html(page) }));
    tokio::spawn(async move { axum::serve(listener, shop_app).await });

    let b = Browser::start_with(&[UA]).await;
    b.goto(&format!("{shop}/menu/wine?utm_campaign=spring")).await;
    until_count(&s, "SELECT COUNT(*) FROM web_events WHERE kind = 'pageview' AND path = '/menu/wine'", 1).await;
    b.click("#book").await;
    until_count(&s, "SELECT COUNT(*) FROM web_events WHERE kind = 'click' AND event_name = 'book-table'", 1).await;

    // Nothing belongs to the customer yet; the site identifies the browser after its login.
    assert!(s.web_interests(customer.id).await.unwrap().is_empty());
    let token = s.issue_identity_token(&a, customer.id).await.unwrap().token;
    b.script(&format!("patron.identify({})", serde_json::json!(token))).await;
    until_count(&s, "SELECT COUNT(*) FROM web_customer_views WHERE kind = 'pageview'", 1).await;
    let interests = s.web_interests(customer.id).await.unwrap();
    assert_eq!(interests.iter().map(|i| (i.category.as_str(), i.views)).collect::<Vec<_>>(), vec![("菜单", 1)]);

    // patron's UI, in the same browser: the view is on the timeline, the interest on the 360.
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "boss@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
    b.goto(&format!("{}/ui/customers/{}", app.base, customer.id)).await;
    let timeline = b.wait_text("#timeline", "/menu/wine").await;
    assert!(timeline.contains("浏览页面"), "{timeline}");
    let card = b.wait_text("#web-card", "菜单").await;
    assert!(card.contains("网站兴趣"), "{card}");

    // The dashboard: the view, the page, the campaign and the click.
    b.goto(&format!("{}/ui/web", app.base)).await;
    assert_eq!(b.text("#web-pageviews").await, "1");
    assert!(b.text("#web-top-pages").await.contains("/menu/wine"));
    assert!(b.text("#web-campaigns").await.contains("spring"));
    assert!(b.text("#web-events").await.contains("book-table"));
    assert!(b.text(&format!("#web-site-{}", site.id)).await.contains(&format!("data-site=\"{}\"", site.id)));
    b.find("#web-chart .web-bar").await;
    b.screenshot(&common::screenshots().join("web-analytics.png")).await;
    b.goto(&format!("{}/ui/lang/en", app.base)).await;
    b.goto(&format!("{}/ui/web", app.base)).await;
    assert!(b.text("body").await.contains("Visitors and page views per day"));
    b.quit().await;
}
