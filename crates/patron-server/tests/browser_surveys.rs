//! Surveys in a real headless Chromium: a customer answers an NPS survey on a phone-sized window
//! without a login (a detractor's answer opens a complaint), and a manager builds a survey,
//! invites a customer and reads the results with their charts.

mod common;

use common::spawn_app;
use common::webdriver::Browser;
use patron_store::customers::NewCustomer;
use patron_store::surveys::answers::AnswerValue;
use patron_store::surveys::{AnswerInput, InvitationRequest, NewSurvey};
use patron_store::testing::test_db;
use patron_store::users::{Actor, Role};
use patron_store::Engine;

fn nps_survey() -> NewSurvey {
    NewSurvey {
        name: "用餐体验调查".into(),
        kind: "nps".into(),
        questions: None,
        ask_switch: true,
        trigger: None,
        recontact_days: None,
        expires_days: 14,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_answers_a_survey_on_a_phone() {
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    let c = s
        .create_customer(&a, NewCustomer { name: "王小明".into(), mobile: Some("13800138000".into()), ..Default::default() })
        .await
        .unwrap();
    let sv = s.create_survey(&a, nps_survey()).await.unwrap();
    let out = s.invite(&a, sv.id, InvitationRequest { customer_ids: Some(vec![c.id]), segment: None }).await.unwrap();
    let token = out.invited[0].token.clone();
    let app = spawn_app(db).await;

    let b = Browser::start().await;
    b.set_window_size(390, 844).await;
    b.goto(&format!("{}/p/s/{token}", app.base)).await;
    assert_eq!(b.text("#survey-title").await, "用餐体验调查");
    assert!(b.text("#survey-greeting").await.contains("小明"));
    let page = b.text("body").await;
    assert!(!page.contains("王小明") && !page.contains("13800138000"), "only the given name: {page}");
    // Phone first: nothing wider than the screen, score buttons a thumb can hit.
    assert_eq!(b.script("return document.documentElement.scrollWidth <= window.innerWidth").await, serde_json::json!(true));
    let h = b.script("return document.querySelector('#q-nps .pick span').getBoundingClientRect().height").await;
    assert!(h.as_f64().unwrap_or(0.0) >= 44.0, "{h}");
    b.screenshot(&common::screenshots().join("survey-phone.png")).await;
    // A 3 with a reason, and "yes" to switching for 2% less.
    b.click("#q-nps input[value='3'] + span").await;
    b.type_into("#q-why textarea", "上菜太慢，等了四十分钟").await;
    b.click("#q-switch_2pct input[value='yes'] + span").await;
    b.click("#survey-submit").await;
    let result = b.wait_text("#survey-result", "谢谢").await;
    assert!(result.contains("联系您"), "a detractor hears we will follow up: {result}");
    let answers = app.db.store.customer_survey_answers(c.id).await.unwrap();
    assert_eq!(
        (answers[0].nps, answers[0].would_switch, answers[0].comment.as_deref()),
        (Some(3), Some(true), Some("上菜太慢，等了四十分钟"))
    );
    let ticket = app.db.store.ticket(answers[0].ticket_id.expect("a complaint")).await.unwrap().ticket;
    assert_eq!((ticket.channel.as_str(), ticket.kind.as_str()), ("survey", "complaint"));
    // Answered once: the link says so, in English when asked.
    b.goto(&format!("{}/p/s/{token}?lang=en", app.base)).await;
    assert!(b.text("#survey-result").await.contains("answered already"));
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_builds_a_survey_and_reads_its_results() {
    const PASSWORD: &str = "correct horse battery";
    let db = test_db(Engine::Sqlite).await;
    let s = db.store.clone();
    let a = Actor::cli();
    s.create_user("boss@example.com", "刘经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    let mut ids = Vec::new();
    for name in ["李雪梅", "张伟", "赵敏"] {
        ids.push(s.create_customer(&a, NewCustomer { name: name.into(), ..Default::default() }).await.unwrap().id);
    }
    // Answers already in for an earlier survey, so the results have something to draw.
    let earlier = s.create_survey(&a, nps_survey()).await.unwrap();
    let out = s.invite(&a, earlier.id, InvitationRequest { customer_ids: Some(ids.clone()), segment: None }).await.unwrap();
    for (i, (score, why)) in [(10, "菜品质量很好"), (9, "服务员态度热情，菜品质量稳定"), (4, "上菜太慢")].iter().enumerate()
    {
        let input = AnswerInput {
            answers: vec![
                AnswerValue { question: "nps".into(), value: serde_json::json!(score) },
                AnswerValue { question: "why".into(), value: serde_json::json!(why) },
            ],
        };
        s.answer_survey(&out.invited[i].token, input).await.unwrap();
    }
    let app = spawn_app(db).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/ui/login", app.base)).await;
    b.type_into("#email", "boss@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;

    // The results: NPS (2 − 1) / 3 × 100 = 33.3, keywords, both charts drawn.
    b.goto(&format!("{}/ui/surveys/{}", app.base, earlier.id)).await;
    assert_eq!(b.text("#result-nps").await, "33.3");
    assert_eq!(b.text("#result-responses").await, "3");
    // jieba: 菜品质量 is 菜品 + 质量, in two of the answers.
    let keywords = b.text("#keywords").await;
    assert!(keywords.starts_with("菜品 2 质量 2"), "{keywords}");
    b.find("#chart-distribution[data-drawn='1']").await;
    b.find("#chart-trend[data-drawn='1']").await;
    b.screenshot(&common::screenshots().join("survey-results.png")).await;

    // The builder: a custom survey; a bad question line is refused on the page.
    b.goto(&format!("{}/ui/surveys", app.base)).await;
    b.type_into("#survey-name", "新菜品试吃").await;
    b.click("#survey-kind option[value='custom']").await;
    b.type_into("#survey-questions", "colour | 你喜欢什么颜色？").await;
    b.click("#survey-create").await;
    assert!(b.text("#survey-error").await.contains("type"), "{}", b.text("#survey-error").await);
    b.type_into("#survey-name", "新菜品试吃").await;
    b.click("#survey-kind option[value='custom']").await;
    b.type_into("#survey-questions", "scale* | 新菜口味如何？\nsingle | 会再点吗？ | 会; 不会").await;
    b.click("#survey-create").await;
    b.wait_text("#survey-heading", "新菜品试吃").await;
    // Inviting a customer shows the link once.
    b.type_into("#invite-ids", &ids[0].to_string()).await;
    b.click("#invite-send").await;
    b.find("#invite-links input").await;
    let url = b.script("return document.querySelector('#invite-links input').value").await;
    assert!(url.as_str().unwrap_or_default().contains("/p/s/"), "{url}");
    b.quit().await;
}
