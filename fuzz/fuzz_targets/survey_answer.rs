//! Survey answers on arbitrary JSON: a custom survey with every question type, a fresh
//! invitation each time; the answer is stored or refused with a client error, never a panic or
//! a database error.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use patron_store::customers::NewCustomer;
use patron_store::surveys::{AnswerInput, InvitationRequest, NewSurvey, Question};
use patron_store::users::Actor;

fn question(key: &str, kind: &str, options: &[&str], required: bool) -> Question {
    Question { key: key.into(), kind: kind.into(), text: Some(format!("{kind}?")), options: options.iter().map(|o| o.to_string()).collect(), required }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<AnswerInput>(data) else { return };
    let f = common::fixture(|rt, store| {
        rt.block_on(async {
            let c = store
                .create_customer(&Actor::cli(), serde_json::from_value::<NewCustomer>(serde_json::json!({"name": "王小明"})).expect("customer"))
                .await
                .expect("customer");
            let survey = NewSurvey {
                name: "fuzz".into(),
                kind: "custom".into(),
                questions: Some(vec![
                    question("q1", "nps", &[], true),
                    question("q2", "scale", &[], false),
                    question("q3", "single", &["鱼", "鸡"], false),
                    question("q4", "multiple", &["a", "b", "c"], false),
                    question("q5", "text", &[], false),
                    question("q6", "switch", &[], false),
                ]),
                ask_switch: false,
                trigger: None,
                recontact_days: Some(0),
                expires_days: 30,
            };
            let s = store.create_survey(&Actor::cli(), survey).await.expect("survey");
            std::env::set_var("PATRON_FUZZ_SURVEY", format!("{} {}", s.id, c.id));
        })
    });
    let ids = std::env::var("PATRON_FUZZ_SURVEY").unwrap_or_default();
    let mut parts = ids.split(' ').filter_map(|p| p.parse::<i64>().ok());
    let (Some(survey), Some(customer)) = (parts.next(), parts.next()) else { return };
    let req = InvitationRequest { customer_ids: Some(vec![customer]), segment: None };
    let outcome = f.rt.block_on(f.store.invite(&Actor::cli(), survey, req)).expect("invite");
    let Some(inv) = outcome.invited.first() else { return };
    if let Err(e) = f.rt.block_on(f.store.answer_survey(&inv.token, input)) {
        common::assert_client_error("answer", &e);
    }
});
