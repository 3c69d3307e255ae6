//! Campaigns in a real headless Chromium: a manager walks the wizard (segment → channel →
//! template → holdout → schedule → review with the counts) and launches; the report page of a
//! campaign whose recipients bought more than its holdout shows the lift with its interval and
//! the chart, in Chinese and in English.

mod common;

use chrono::Duration;
use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::engagement::campaigns::{CampaignChannel, NewCampaign};
use patron_store::engagement::templates::NewTemplate;
use patron_store::engagement::{Channel, EngagementSettings, Purpose};
use patron_store::orders::NewOrder;
use patron_store::testing::test_db;
use patron_store::users::{Actor, Role};
use patron_store::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_launches_a_campaign_and_reads_its_lift() {
    const PASSWORD: &str = "correct horse battery";
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    s.set_engagement_settings(&a, &EngagementSettings { global_control_percent: 0.0, ..Default::default() }).await.unwrap();
    s.create_user("boss@example.com", "刘经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        let c = NewCustomer {
            name: format!("周{i}"),
            gender: Some("male".into()),
            city: Some(if i < 100 { "杭州" } else { "宁波" }.into()),
            email: Some(format!("z{i}@example.com")),
            consents: [("email".to_owned(), i % 10 != 9)].into_iter().collect(),
            ..Default::default()
        };
        ids.push(s.create_customer(&a, c).await.unwrap().id);
    }
    let template = match s
        .create_template(
            &a,
            NewTemplate {
                name: "西湖新店".into(),
                channel: Channel::Email,
                purpose: Purpose::Marketing,
                subject: Some("{{ salutation }}，西湖新店开业".into()),
                body_text: "{{ salutation }}，西湖新店开业，欢迎光临。退订：{{ unsubscribe_url }}".into(),
                body_html: None,
            },
        )
        .await
        .unwrap()
    {
        Ok(t) => t.template.id,
        Err(lint) => panic!("{lint:?}"),
    };
    // An earlier campaign to 宁波, launched, whose recipients bought more than its holdout.
    let earlier = s
        .create_campaign(
            &a,
            NewCampaign {
                name: "宁波老客".into(),
                segment: "city = \"宁波\"".into(),
                channel: CampaignChannel::Email,
                template_id: template,
                holdout_percent: 40.0,
                conversion_window_days: 7,
                send_at: None,
            },
        )
        .await
        .unwrap();
    s.launch_campaign(&a, earlier.id).await.unwrap();
    let t0 = s.now();
    let rows: Vec<(i64, String)> = s
        .db
        .reader()
        .fetch_all(
            patron_store::db::query("SELECT customer_id, status FROM outbox WHERE campaign_id = $1 ORDER BY customer_id").bind(earlier.id),
        )
        .await
        .unwrap();
    let (mut treated, mut control) = (0, 0);
    let mut orders = Vec::new();
    for (c, status) in rows {
        let (k, buys) = if status == "queued" { (&mut treated, 3) } else { (&mut control, 8) };
        // Every third recipient buys, every eighth holdout member.
        if *k % buys == 0 {
            orders.push(NewOrder {
                customer_id: Some(c),
                ordered_at: t0 + Duration::hours(30),
                total_cents: Some(15_000),
                ..Default::default()
            });
        }
        *k += 1;
    }
    db.clock.set(t0 + Duration::days(8));
    s.create_orders(&a, orders).await.unwrap();
    let app = spawn_app(db).await;

    let b = Browser::start().await;
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "boss@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;

    // The wizard.
    b.goto(&format!("{}/ui/campaigns", app.base)).await;
    b.click("#campaign-new").await;
    b.type_into("#campaign-name", "杭州新店开业").await;
    b.type_into("#campaign-rule", "city = \"杭州\"").await;
    b.click("#channel-email").await;
    b.click(&format!("#campaign-template option[value='{template}']")).await;
    b.script("document.querySelector('#campaign-holdout').value = ''").await;
    b.type_into("#campaign-holdout", "20").await;
    b.screenshot(&common::screenshots().join("campaign-wizard.png")).await;
    b.click("#campaign-review").await;
    // The review: 100 in the audience, 10 without consent, 18 of the 90 held out.
    assert_eq!(b.text("#count-audience").await, "100");
    assert_eq!(b.text("#count-no-consent").await, "10");
    assert_eq!(b.text("#count-holdout").await, "18");
    assert_eq!(b.text("#count-queued").await, "72");
    let (n,): (i64,) = app
        .db
        .store
        .db
        .reader()
        .fetch_one(patron_store::db::query("SELECT COUNT(*) FROM outbox WHERE campaign_id <> $1").bind(earlier.id))
        .await
        .unwrap();
    assert_eq!(n, 0, "the review writes nothing");
    b.click("#campaign-launch").await;
    b.wait_text("#campaign-status", "已启动").await;
    assert_eq!(b.text("#count-queued").await, "72");
    let campaigns = app.db.store.campaigns().await.unwrap();
    let launched = campaigns.iter().find(|c| c.name == "杭州新店开业").unwrap();
    assert_eq!((launched.status.as_str(), launched.counts.holdout), ("launched", 18));

    // The report of the earlier campaign: the lift with its interval, and the chart.
    b.goto(&format!("{}/ui/campaigns/{}/report", app.base, earlier.id)).await;
    let diff = b.text("#lift-diff").await;
    assert!(diff.ends_with("pp") && !diff.starts_with('-'), "{diff}");
    assert!(b.text("#lift-interval").await.contains("95%"));
    b.find("#conversion-chart #chart-treated").await;
    let points = b.script("return document.querySelector('#chart-treated').getAttribute('points').split(' ').length").await;
    assert_eq!(points, serde_json::json!(7));
    b.screenshot(&common::screenshots().join("campaign-report.png")).await;
    b.goto(&format!("{}/ui/lang/en", app.base)).await;
    b.goto(&format!("{}/ui/campaigns/{}/report", app.base, earlier.id)).await;
    assert!(b.text("body").await.contains("Conversion difference"));
    b.quit().await;
}
