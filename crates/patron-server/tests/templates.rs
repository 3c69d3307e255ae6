//! Message templates over a real server on each engine: managers make them, the personalisation
//! lint refuses generic greetings (in the text and as a fallback) and impersonal marketing with
//! every reason, warns of long SMS and a missing unsubscribe link, and a preview renders for one
//! customer strictly (王先生 / 李女士; 422 when the customer has no purchase to name).

mod common;

use common::{error_code, json_of, spawn_app};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::json;

test_both!(templates_lint_and_preview, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();

    let good = json!({"name": "回访", "channel": "sms",
        "body_text": "{{ salutation }}，您上次在{{ last_purchase.store }}点的{{ last_purchase.product }}还合口味吗？退订回T"});
    // Agents may not edit templates.
    let (st, e) = json_of(app.req_as(&at, Method::POST, "/api/v1/templates").json(&good).send().await.unwrap()).await;
    assert_eq!((st, error_code(&e).as_str()), (403, "forbidden"));

    // A generic greeting and a generic fallback: 422 with every reason.
    let (st, e) = app
        .post(
            "/api/v1/templates",
            json!({"name": "x", "channel": "sms", "body_text": "尊敬的客户，{{ name | default(\"亲爱的顾客\") }}，本周八折"}),
        )
        .await;
    assert_eq!((st, error_code(&e).as_str()), (422, "lint"), "{e}");
    let codes: Vec<&str> = e["lint"]["errors"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["generic_greeting", "generic_fallback"], "{e}");
    assert_eq!(e["error"]["field"], "body_text");
    // Marketing that names nobody; an unknown variable.
    let (st, e) = app.post("/api/v1/templates", json!({"name": "x", "channel": "wechat", "body_text": "本周全场八折"})).await;
    assert_eq!((st, e["lint"]["errors"][0]["code"].as_str()), (422, Some("not_personal")), "{e}");
    let (st, e) = app.post("/api/v1/templates", json!({"name": "x", "channel": "sms", "body_text": "{{ nick }}"})).await;
    assert_eq!((st, e["lint"]["errors"][0]["code"].as_str()), (422, Some("unknown_variable")), "{e}");
    // A body outside the schema is the ordinary envelope.
    let (st, e) = app.post("/api/v1/templates", json!({"name": "x", "channel": "fax", "body_text": "{{ name }}"})).await;
    assert_eq!(st, 422, "{e}");
    error_code(&e);

    // The list of generic greetings is a setting (admins): a new entry is refused from then on.
    let (st, mut set) = app.get("/api/v1/engagement/settings").await;
    assert_eq!((st, set["global_control_percent"].as_f64()), (200, Some(5.0)), "{set}");
    set["generic_greetings"].as_array_mut().unwrap().push(json!("各位朋友"));
    let (st, e) = json_of(app.req_as(&at, Method::PUT, "/api/v1/engagement/settings").json(&set).send().await.unwrap()).await;
    assert_eq!((st, error_code(&e).as_str()), (403, "forbidden"));
    let (st, _) = app.put("/api/v1/engagement/settings", set.clone()).await;
    assert_eq!(st, 200);
    let (st, e) = app.post("/api/v1/templates", json!({"name": "x", "channel": "sms", "body_text": "各位朋友，{{ salutation }}"})).await;
    assert_eq!((st, e["lint"]["errors"][0]["code"].as_str()), (422, Some("generic_greeting")), "{e}");
    set["cap_7_days"] = json!(-1);
    let (st, e) = app.put("/api/v1/engagement/settings", set).await;
    assert_eq!((st, error_code(&e).as_str()), (422, "invalid"), "{e}");

    // Accepted, with the warnings.
    let (st, sms) = app.post("/api/v1/templates", good.clone()).await;
    assert_eq!(st, 201, "{sms}");
    assert_eq!(sms["warnings"], json!([]));
    let sms_id = sms["template"]["id"].as_i64().unwrap();
    let (st, mail) = app
        .post(
            "/api/v1/templates",
            json!({"name": "新品", "channel": "email", "subject": "{{ salutation }}，新菜上市",
                "body_text": "{{ salutation }}，您喜欢的{{ favourite_category }}有新菜了。", "body_html": "<p>{{ salutation }}</p>"}),
        )
        .await;
    assert_eq!(st, 201, "{mail}");
    assert_eq!(mail["warnings"][0]["code"], "no_unsubscribe");
    let (st, lint) = app
        .post(
            "/api/v1/templates/lint",
            json!({"name": "x", "channel": "sms", "body_text": "{{ salutation }}，".to_owned() + &"新品上市欢迎品尝".repeat(10)}),
        )
        .await;
    assert_eq!((st, lint["warnings"][0]["code"].as_str()), (200, Some("sms_length")), "{lint}");
    let (st, list) = app.get("/api/v1/templates").await;
    assert_eq!((st, list["items"].as_array().unwrap().len()), (200, 2));
    let (st, _) = app.get("/api/v1/templates/999999").await;
    assert_eq!(st, 404);

    // Preview for a man with a purchase, and for a woman without one (strict: 422).
    let (_, wang) = app.post("/api/v1/customers", json!({"name": "王小明", "gender": "male"})).await;
    let wang = wang["id"].as_i64().unwrap();
    let (st, o) = app
        .post(
            "/api/v1/orders",
            json!({"customer_id": wang, "ordered_at": "2026-06-20T10:00:00Z", "store": "静安店", "total_cents": 12800,
                "lines": [{"product": "招牌红烧肉", "category": "热菜", "unit_price_cents": 12800}]}),
        )
        .await;
    assert_eq!(st, 201, "{o}");
    let (st, p) = app.post(&format!("/api/v1/templates/{sms_id}/preview"), json!({"customer_id": wang})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["text"], "王先生，您上次在静安店点的招牌红烧肉还合口味吗？退订回T");
    let (st, p) = app.post(&format!("/api/v1/templates/{}/preview", mail["template"]["id"]), json!({"customer_id": wang})).await;
    assert_eq!((st, p["subject"].as_str(), p["html"].as_str()), (200, Some("王先生，新菜上市"), Some("<p>王先生</p>")), "{p}");
    assert_eq!(p["text"], "王先生，您喜欢的热菜有新菜了。");
    let (_, li) = app.post("/api/v1/customers", json!({"name": "李雪梅", "gender": "female"})).await;
    let li = li["id"].as_i64().unwrap();
    let (st, e) = app.post(&format!("/api/v1/templates/{sms_id}/preview"), json!({"customer_id": li})).await;
    assert_eq!((st, error_code(&e).as_str()), (422, "invalid"), "{e}");
    // Points: a member's balance; a customer who is not a member has none, which strict
    // rendering refuses rather than writing "none".
    let (st, pt) = app
        .post(
            "/api/v1/templates",
            json!({"name": "积分", "channel": "sms", "body_text": "{{ salutation }}，您有{{ points }}积分可用。退订回T"}),
        )
        .await;
    assert_eq!(st, 201, "{pt}");
    let points_preview = format!("/api/v1/templates/{}/preview", pt["template"]["id"]);
    let (_, mut programme) = app.get("/api/v1/loyalty/program").await;
    programme["enabled"] = json!(true);
    assert_eq!(app.put("/api/v1/loyalty/program", programme).await.0, 200);
    assert_eq!(app.post("/api/v1/loyalty/members", json!({"customer_id": wang})).await.0, 201);
    let (st, a) = app.post(&format!("/api/v1/loyalty/members/{wang}/adjustments"), json!({"points": 1280, "reason": "开卡礼"})).await;
    assert_eq!(st, 201, "{a}");
    let (st, p) = app.post(&points_preview, json!({"customer_id": wang})).await;
    assert_eq!((st, p["text"].as_str()), (200, Some("王先生，您有1280积分可用。退订回T")), "{p}");
    let (st, e) = app.post(&points_preview, json!({"customer_id": li})).await;
    assert_eq!((st, error_code(&e).as_str()), (422, "invalid"), "{e}");
    // An agent previews only customers in its scope: outside it a customer does not exist.
    let (st, _) = json_of(
        app.req_as(&at, Method::POST, &format!("/api/v1/templates/{sms_id}/preview"))
            .json(&json!({"customer_id": wang}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 404);
});
