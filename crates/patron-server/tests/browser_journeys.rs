//! Journeys in a real headless Chromium (issue 12 §8): a manager builds a journey with the step
//! editor (a form: wait, condition with a yes/no branch, a send on the preferred channel, a tag),
//! enables it, and — after a customer's first order ran through it — reads its report page, in
//! Chinese and in English.

mod common;

use chrono::Duration;
use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::engagement::templates::NewTemplate;
use patron_store::engagement::{Channel, EngagementSettings, Purpose};
use patron_store::orders::NewOrder;
use patron_store::testing::test_db;
use patron_store::users::{Actor, Role};
use patron_store::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_builds_enables_and_reads_a_journey() {
    const PASSWORD: &str = "correct horse battery";
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    s.set_engagement_settings(&a, &EngagementSettings { global_control_percent: 0.0, ..Default::default() }).await.unwrap();
    s.create_user("boss@example.com", "刘经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    let template = match s
        .create_template(
            &a,
            NewTemplate {
                name: "首单感谢".into(),
                channel: Channel::Sms,
                purpose: Purpose::Marketing,
                subject: None,
                body_text: "{{ salutation }}，感谢您的首单，回T退订".into(),
                body_html: None,
            },
        )
        .await
        .unwrap()
    {
        Ok(t) => t.template.id,
        Err(lint) => panic!("{lint:?}"),
    };
    // Two customers, who buy for the first time once the journey is enabled.
    let mut ids = Vec::new();
    for (name, city) in [("王芳", "上海"), ("赵磊", "北京")] {
        let c = NewCustomer {
            name: name.into(),
            gender: Some("female".into()),
            city: Some(city.into()),
            mobile: Some(format!("1380000{:04}", ids.len())),
            consents: [("sms".to_owned(), true)].into_iter().collect(),
            ..Default::default()
        };
        ids.push(s.create_customer(&a, c).await.unwrap().id);
    }
    let app = spawn_app(db).await;

    let b = Browser::start().await;
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "boss@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;

    // The step editor: 0 wait 1 day; 1 if 上海 go on, else to 3; 2 send on the preferred
    // channel; 3 tag.
    b.goto(&format!("{}/ui/journeys", app.base)).await;
    b.type_into("#journey-form input[name='name']", "新客首单感谢").await;
    b.click("#journey-form select[name='trigger'] option[value='first_order']").await;
    b.click("#journey-form select[name='goal'] option[value='order_completed']").await;
    b.script("document.querySelector(\"#journey-form input[name='holdout_percent']\").value = '0'").await;
    b.click("select[name='s0_type'] option[value='wait']").await;
    b.type_into("input[name='s0_days']", "1").await;
    b.click("select[name='s1_type'] option[value='condition']").await;
    b.type_into("input[name='s1_rule']", "city = \"上海\"").await;
    b.type_into("input[name='s1_no']", "3").await;
    b.click("select[name='s2_type'] option[value='send']").await;
    b.click(&format!("select[name='s2_template'] option[value='{template}']")).await;
    b.click("select[name='s2_channel'] option[value='preferred']").await;
    b.click("select[name='s3_type'] option[value='tag']").await;
    b.type_into("input[name='s3_add']", "首单已感谢").await;
    b.screenshot(&common::screenshots().join("journey-editor.png")).await;
    b.click("#journey-form button[type='submit']").await;

    // Its page: the steps as entered, disabled until enabled.
    b.wait_text("#journey-status", "未启用").await;
    let steps = b.text("#journey-steps").await;
    assert!(
        steps.contains("wait") && steps.contains("city = \"上海\"") && steps.contains("preferred") && steps.contains("首单已感谢"),
        "{steps}"
    );
    let journeys = app.db.store.journeys().await.unwrap();
    let j = journeys.iter().find(|j| j.name == "新客首单感谢").expect("the journey was made");
    assert_eq!((j.trigger.as_str(), j.goal.as_deref(), j.steps.len()), ("first_order", Some("order_completed"), 4));
    b.click("#journey-toggle").await;
    b.wait_text("#journey-status", "已启用").await;
    assert!(app.db.store.journey(j.id).await.unwrap().enabled);

    // Two customers' first orders run through it: the one in 上海 gets the message (by SMS, the
    // only channel consented), the other skips to the tag.
    let s = &app.db.store;
    for id in &ids {
        s.create_orders(&a, vec![NewOrder { customer_id: Some(*id), ordered_at: s.now(), total_cents: Some(8800), ..Default::default() }])
            .await
            .unwrap();
    }
    s.run_journeys().await.unwrap();
    app.db.clock.set(s.now() + Duration::hours(25));
    s.run_journeys().await.unwrap();
    let sms: Vec<String> = s
        .customer_messages(ids[0])
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.message_key.starts_with("journey:"))
        .map(|m| m.channel)
        .collect();
    assert_eq!(sms, vec!["sms".to_owned()]);
    assert!(s.customer_messages(ids[1]).await.unwrap().iter().all(|m| !m.message_key.starts_with("journey:")));

    // The report page (a day later: the session has expired, so log in again).
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "boss@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
    b.goto(&format!("{}/ui/journeys/{}", app.base, j.id)).await;
    let report = b.text("#journey-report").await;
    assert!(report.contains("2"), "two entered: {report}");
    let entered = b
        .script("return document.querySelector('#journey-report tbody tr:last-child td, #journey-report tr:last-child td').textContent")
        .await;
    assert_eq!(entered, serde_json::json!("2"), "{report}");
    assert!(!b.text("#journey-lift").await.is_empty());
    b.screenshot(&common::screenshots().join("journey-report.png")).await;
    // The list shows it enabled with its entries.
    b.goto(&format!("{}/ui/journeys", app.base)).await;
    assert!(b.text("#journey-list").await.contains("新客首单感谢"));
    b.goto(&format!("{}/ui/lang/en", app.base)).await;
    b.goto(&format!("{}/ui/journeys/{}", app.base, j.id)).await;
    assert_eq!(b.text("#journey-status").await, "Enabled");
    b.quit().await;
}
