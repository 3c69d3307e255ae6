//! Delivery over real channels on each engine: a real SMTP server (aiosmtpd) and a real
//! webhook receiver on loopback. Every consented, uncapped recipient gets exactly one
//! personalised message with the one-click unsubscribe headers; webhook signatures verify; a
//! 500 is retried with backoff and a 400 is not; consent withdrawn after queueing stops a
//! message; the frequency cap counts across occasions; SMS wait for the end of quiet hours;
//! links are tracked, the unsubscribe page and one-click POST withdraw consent, and a signed
//! 退订 reply withdraws SMS consent.

mod common;
mod support;

use std::time::Duration;

use chrono::TimeZone;
use common::{json_of, spawn_app_with};
use patron_server::delivery::webhook::{sign, verify};
use patron_server::delivery::{Delivery, DeliveryConfig};
use patron_server::ServerConfig;
use patron_store::engagement::outbox::NewMessage;
use patron_store::engagement::{Channel, EngagementSettings, Purpose};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Actor;
use serde_json::json;
use support::{header, receiver, SmtpSink};

const SECRET: &str = "s3cret-for-tests";

fn message(customer_id: i64, key: &str, channel: Channel, template_id: i64, now: chrono::DateTime<chrono::Utc>) -> NewMessage {
    NewMessage {
        customer_id,
        message_key: key.into(),
        channel,
        purpose: Purpose::Marketing,
        template_id: Some(template_id),
        campaign_id: None,
        content: None,
        skipped: None,
        not_before: now,
    }
}

test_both!(messages_reach_real_channels_once, |db: TestDb| async move {
    let app = spawn_app_with(db, ServerConfig { outbound_secret: Some(SECRET.into()), ..Default::default() }).await;
    let s = &app.db.store;
    let clock = app.db.clock.clone();
    // No global control group in this test (its own test is the store's); a cap of 2 a week.
    s.set_engagement_settings(&Actor::cli(), &EngagementSettings { global_control_percent: 0.0, cap_7_days: 2, ..Default::default() })
        .await
        .unwrap();
    let smtp = SmtpSink::start();
    // The receiver fails the first try of 13800000003's message with 500, and refuses 13800000004's with 400.
    let hook = receiver(|j, earlier| match (j["to"].as_str(), earlier) {
        (Some("13800000003"), 0) => 500,
        (Some("13800000004"), _) => 400,
        _ => 200,
    })
    .await;
    let delivery = Delivery::new(DeliveryConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        mail_from: Some("patron <crm@example.com>".into()),
        sms_webhook: Some(hook.url.clone()),
        outbound_secret: Some(SECRET.into()),
        public_url: app.base.clone(),
        outbox_dir: smtp.dir.path().join("files"),
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap();

    // Five e-mail customers: three consent, one does not, one withdraws after queueing.
    let mut mail = Vec::new();
    for (i, (name, gender, consent)) in
        [("王小明", "male", true), ("李雪梅", "female", true), ("张伟", "unknown", true), ("赵强", "male", false), ("陈静", "female", true)]
            .into_iter()
            .enumerate()
    {
        let (st, c) = app
            .post(
                "/api/v1/customers",
                json!({"name": name, "gender": gender, "email": format!("c{i}@example.com"), "consents": {"email": consent}}),
            )
            .await;
        assert_eq!(st, 201, "{c}");
        mail.push(c["id"].as_i64().unwrap());
    }
    let mut sms = Vec::new();
    for i in 1..=4 {
        let (st, c) = app
            .post(
                "/api/v1/customers",
                json!({"name": format!("孙{i}"), "gender": "male", "mobile": format!("1380000000{i}"), "consents": {"sms": true}}),
            )
            .await;
        assert_eq!(st, 201, "{c}");
        sms.push(c["id"].as_i64().unwrap());
    }
    let (st, et) = app
        .post(
            "/api/v1/templates",
            json!({"name": "新菜", "channel": "email", "subject": "{{ salutation }}，本周新菜",
                "body_text": "{{ salutation }}，本周新菜：https://example.com/menu?w=27 退订：{{ unsubscribe_url }}",
                "body_html": "<p>{{ salutation }}，<a href=\"https://example.com/menu?w=27\">本周新菜</a></p>"}),
        )
        .await;
    assert_eq!(st, 201, "{et}");
    let email_template = et["template"]["id"].as_i64().unwrap();
    let (_, stt) =
        app.post("/api/v1/templates", json!({"name": "短信", "channel": "sms", "body_text": "{{ salutation }}，周末八折，回T退订"})).await;
    let sms_template = stt["template"]["id"].as_i64().unwrap();

    let now = s.now();
    for id in &mail {
        assert!(s.enqueue_message(message(*id, "test:1", Channel::Email, email_template, now)).await.unwrap());
        // The same occasion again is the same message: nothing new.
        assert!(!s.enqueue_message(message(*id, "test:1", Channel::Email, email_template, now)).await.unwrap());
    }
    for id in &sms {
        s.enqueue_message(message(*id, "test:1", Channel::Sms, sms_template, now)).await.unwrap();
    }
    // 陈静 withdraws between queueing and sending.
    let (st, _) = app.patch(&format!("/api/v1/customers/{}", mail[4]), json!({"consents": {"email": false}})).await;
    assert_eq!(st, 200);

    // 2026-06-30 12:00 UTC is 20:00 in Shanghai: not quiet.
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.skipped, r.retrying, r.failed), (3 + 2, 2, 1, 1), "{r:?}");

    // Exactly one e-mail each to the three who consent, personalised, with the one-click headers.
    let got = smtp.messages();
    assert_eq!(got.len(), 3);
    let mut to: Vec<String> = got.iter().map(|m| header(m, "To").unwrap()).collect();
    to.sort();
    assert_eq!(to, vec!["c0@example.com", "c1@example.com", "c2@example.com"]);
    for m in &got {
        let unsub = header(m, "List-Unsubscribe").unwrap();
        assert!(unsub.starts_with(&format!("<{}/p/u/", app.base)), "{unsub}");
        assert_eq!(header(m, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
        assert!(header(m, "Message-ID").unwrap().ends_with("@patron>"));
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(!m.contains("https://example.com/menu"), "links go through tracking: {m}");
    }
    let subjects: Vec<String> = got.iter().map(|m| header(m, "Subject").unwrap()).collect();
    assert!(subjects.iter().all(|x| x.starts_with("=?utf-8?") || x.contains("本周新菜")), "{subjects:?}");
    let wang = got.iter().find(|m| header(m, "To").as_deref() == Some("c0@example.com")).unwrap();
    let text = decode_text(wang);
    assert!(text.contains("王先生，本周新菜"), "{text}");
    let li = got.iter().find(|m| header(m, "To").as_deref() == Some("c1@example.com")).unwrap();
    assert!(decode_text(li).contains("李女士"));
    let zhang = got.iter().find(|m| header(m, "To").as_deref() == Some("c2@example.com")).unwrap();
    assert!(decode_text(zhang).contains("张伟，本周新菜"));
    for (id, why) in [(mail[3], "no_consent"), (mail[4], "no_consent")] {
        let m = s.customer_messages(id).await.unwrap();
        assert_eq!((m[0].status.as_str(), m[0].reason.as_deref()), ("skipped", Some(why)));
    }

    // The webhook: signed, with the message id as idempotency key; 500 retried later, 400 never.
    {
        let hooks = hook.got.lock().unwrap().clone();
        assert_eq!(hooks.len(), 4);
        for h in &hooks {
            assert!(verify(SECRET, &h.body, &h.signature), "signature of {:?}", h.json);
            assert_eq!(h.signature, sign(SECRET, &h.body));
            assert_eq!(h.idempotency_key, h.json["message_id"].as_str().unwrap());
            assert!(h.json["text"].as_str().unwrap().starts_with("孙先生，周末八折"));
        }
    }
    let m3 = s.customer_messages(sms[2]).await.unwrap();
    assert_eq!((m3[0].status.as_str(), m3[0].attempts), ("queued", 1));
    assert_eq!(m3[0].next_attempt_at, now + chrono::Duration::seconds(30));
    let m4 = s.customer_messages(sms[3]).await.unwrap();
    assert_eq!((m4[0].status.as_str(), m4[0].reason.as_deref()), ("failed", Some("webhook answered 400")));
    // Nothing is due before the backoff has passed; after it, only the 500 is tried again.
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!(r, Default::default());
    clock.set(now + chrono::Duration::seconds(31));
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.failed), (1, 0), "{r:?}");
    assert_eq!(hook.got.lock().unwrap().len(), 5);
    assert_eq!(s.customer_messages(sms[2]).await.unwrap()[0].status, "sent");
    // Sent messages are never sent again.
    clock.set(now + chrono::Duration::hours(1));
    assert_eq!(delivery.send_due(s, 1000).await.unwrap(), Default::default());
    assert_eq!(smtp.messages().len(), 3);

    // The cap (2 a week) counts across occasions: a second occasion goes, a third is capped.
    for key in ["test:2", "test:3"] {
        s.enqueue_message(message(mail[0], key, Channel::Email, email_template, s.now())).await.unwrap();
    }
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.skipped), (1, 1), "{r:?}");
    assert_eq!(s.customer_messages(mail[0]).await.unwrap()[0].reason.as_deref(), Some("capped"));
    assert_eq!(smtp.messages().len(), 4);

    // Quiet hours: at 22:30 in Shanghai an SMS waits until 09:00; e-mail does not wait.
    let late = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 14, 30, 0).unwrap();
    clock.set(late);
    s.enqueue_message(message(sms[0], "test:quiet", Channel::Sms, sms_template, late)).await.unwrap();
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.deferred), (0, 1), "{r:?}");
    let q = s.customer_messages(sms[0]).await.unwrap();
    assert_eq!((q[0].status.as_str(), q[0].next_attempt_at), ("queued", chrono::Utc.with_ymd_and_hms(2026, 7, 2, 1, 0, 0).unwrap()));
    clock.set(chrono::Utc.with_ymd_and_hms(2026, 7, 2, 1, 0, 0).unwrap());
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");

    // A click goes through /t and lands on the URL of the message; the open pixel answers.
    let html = decode_html(li);
    let tracked = html.split("href=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert!(tracked.starts_with(&format!("{}/t/", app.base)), "{tracked}");
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect.get(&tracked).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "https://example.com/menu?w=27");
    let (st, ix) = app.get(&format!("/api/v1/customers/{}/interactions", mail[1])).await;
    assert_eq!(st, 200);
    assert_eq!(ix["items"][0]["kind"], "click", "{ix}");
    let bogus = format!("{}/t/{}/0", app.base, "0".repeat(64));
    assert_eq!(no_redirect.get(&bogus).send().await.unwrap().status().as_u16(), 404);
    let nth = format!("{}/9", tracked.rsplit_once('/').unwrap().0);
    assert_eq!(no_redirect.get(&nth).send().await.unwrap().status().as_u16(), 404);

    // The unsubscribe page shows a button (a GET changes nothing); the one-click POST withdraws.
    let unsub = header(li, "List-Unsubscribe").unwrap().trim_matches(|c| c == '<' || c == '>').to_owned();
    let page = app.http.get(&unsub).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("退订"));
    assert_eq!(consent(s, mail[1], "email").await, (true, "api".to_owned()));
    let r = app
        .http
        .post(&unsub)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(consent(s, mail[1], "email").await, (false, "unsubscribe".to_owned()));

    // An SMS reply: unsigned is 401; signed 退订 withdraws; anything else is a reply.
    let body = json!({"from": "13800000002", "text": "退订"}).to_string();
    let r = app
        .http
        .post(format!("{}/api/v1/inbound/sms", app.base))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (st, out) = json_of(
        app.http
            .post(format!("{}/api/v1/inbound/sms", app.base))
            .header("content-type", "application/json")
            .header("x-patron-signature", sign(SECRET, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, out["unsubscribed"].as_bool()), (200, Some(true)), "{out}");
    assert_eq!(consent(s, sms[1], "sms").await, (false, "unsubscribe".to_owned()));
    let body = json!({"from": "13800000001", "text": "好的，周六订两位"}).to_string();
    let (st, out) = json_of(
        app.http
            .post(format!("{}/api/v1/inbound/sms", app.base))
            .header("x-patron-signature", sign(SECRET, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, out["unsubscribed"].as_bool()), (200, Some(false)), "{out}");
});

/// A customer's consent on a channel: granted, source.
async fn consent(s: &patron_store::Store, id: i64, channel: &str) -> (bool, String) {
    let c = s.customer(id).await.unwrap();
    let x = c.consents.iter().find(|x| x.channel == channel).unwrap();
    (x.granted, x.source.clone())
}

/// The text/plain part of a raw message, decoded (lettre writes UTF-8 text as base64 or
/// quoted-printable).
fn decode_text(raw: &str) -> String {
    decode_part(raw, "text/plain")
}

fn decode_html(raw: &str) -> String {
    decode_part(raw, "text/html")
}

fn decode_part(raw: &str, kind: &str) -> String {
    let start = raw.find(&format!("Content-Type: {kind}")).unwrap_or_else(|| panic!("no {kind} part in {raw}"));
    let part = &raw[start..];
    let (head, rest) = part.split_once("\r\n\r\n").unwrap();
    let body = rest.split("\r\n--").next().unwrap();
    if head.contains("base64") {
        let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(base64(&clean)).unwrap()
    } else if head.contains("quoted-printable") {
        quoted_printable(body)
    } else {
        body.to_owned()
    }
}

fn base64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = A.iter().position(|&x| x == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file adapter's lines in `file` of `dir`: message id → how many times it was written.
fn lines_by_id(dir: &std::path::Path, file: &str) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *n.entry(v["message_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    n
}

// A batch interrupted between its delivery and the record of it (a crash: the lines written,
// nothing recorded) and a provider failing in the middle of a batch (one file of the batch cannot
// be written). The crash repeats exactly the interrupted batch, under the same message ids, once
// its lease has run out — a consumer deduplicating by message id sees every message once —
// and nothing is lost; a failure that is recorded repeats nothing: only the failed messages go
// again, once.
test_both!(an_interrupted_batch_neither_loses_nor_doubles, |db: TestDb| async move {
    use patron_store::engagement::templates::NewTemplate;
    let s = &db.store;
    let clock = db.clock.clone();
    s.set_engagement_settings(
        &Actor::cli(),
        &EngagementSettings {
            global_control_percent: 0.0,
            cap_7_days: 100,
            cap_30_days: 100,
            rate_per_second: 100_000.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let template = |channel: Channel, subject: Option<&str>| NewTemplate {
        name: format!("t-{}", channel.as_str()),
        channel,
        purpose: Purpose::Marketing,
        subject: subject.map(str::to_owned),
        body_text: "{{ salutation }}，周末八折 {{ unsubscribe_url }}".into(),
        body_html: None,
    };
    let sms_t = s.create_template(&Actor::cli(), template(Channel::Sms, None)).await.unwrap().unwrap().template.id;
    let mail_t =
        s.create_template(&Actor::cli(), template(Channel::Email, Some("{{ salutation }}，周末"))).await.unwrap().unwrap().template.id;
    let (mut sms, mut mail) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let c = s
            .create_customer(
                &Actor::cli(),
                patron_store::customers::NewCustomer {
                    name: format!("王{i}"),
                    gender: Some("male".into()),
                    mobile: Some(format!("1390000{i:04}")),
                    consents: [("sms".to_owned(), true)].into_iter().collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        sms.push(c.id);
    }
    for i in 0..4 {
        let c = s
            .create_customer(
                &Actor::cli(),
                patron_store::customers::NewCustomer {
                    name: format!("李{i}"),
                    gender: Some("female".into()),
                    email: Some(format!("b{i}@example.com")),
                    consents: [("email".to_owned(), true)].into_iter().collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        mail.push(c.id);
    }
    let (sms, mail) = (&sms, &mail);
    let enqueue = |key: &'static str| async move {
        let now = s.now();
        for id in sms {
            assert!(s.enqueue_message(message(*id, key, Channel::Sms, sms_t, now)).await.unwrap());
        }
        for id in mail {
            assert!(s.enqueue_message(message(*id, key, Channel::Email, mail_t, now)).await.unwrap());
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("outbox");
    let delivery = Delivery::files(files.clone(), "http://127.0.0.1:9");
    let statuses = || async move {
        let mut n: std::collections::BTreeMap<String, i64> = Default::default();
        for id in sms.iter().chain(mail) {
            for m in s.customer_messages(*id).await.unwrap() {
                *n.entry(m.status).or_insert(0) += 1;
            }
        }
        n
    };
    let count =
        |pairs: &[(&str, i64)]| -> std::collections::BTreeMap<String, i64> { pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect() };

    // 1. A crash between delivery and record. The e-mail file of the batch cannot be written
    // (a directory is in its way): the provider fails in the middle of the batch too.
    enqueue("batch:1").await;
    std::fs::create_dir_all(files.join("messages-email.jsonl")).unwrap();
    let (batch, claimed) = s.claim_due_messages(500, chrono::Duration::minutes(5), "http://127.0.0.1:9").await.unwrap();
    assert_eq!((batch.len(), claimed.claimed), (14, 14), "one batch claims them all: {claimed:?}");
    let outcomes = delivery.deliver(&batch, None, 100_000.0, std::time::Instant::now() + Duration::from_secs(60)).await.unwrap();
    let sent = outcomes.iter().filter(|o| matches!(o, Some(patron_store::engagement::outbox::DeliveryOutcome::Sent))).count();
    assert_eq!(sent, 10, "{outcomes:?}");
    // … killed here: nothing recorded. Until the leases run out nobody takes the batch over.
    assert_eq!(statuses().await, count(&[("sending", 14)]));
    assert_eq!(delivery.send_due(s, 1000).await.unwrap(), Default::default());
    std::fs::remove_dir(files.join("messages-email.jsonl")).unwrap();
    clock.set(s.now() + chrono::Duration::minutes(5) + chrono::Duration::seconds(1));
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.retrying, r.failed, r.skipped), (14, 0, 0, 0), "{r:?}");
    assert_eq!(statuses().await, count(&[("sent", 14)]));
    // The SMS written before the crash are written again under the same ids (the whole
    // interrupted batch, no more); the e-mail that failed, once; nothing is lost.
    let sms_lines = lines_by_id(&files, "messages-sms.jsonl");
    assert_eq!(sms_lines.len(), 10);
    assert!(sms_lines.values().all(|n| *n == 2), "{sms_lines:?}");
    let mail_lines = lines_by_id(&files, "messages-email.jsonl");
    assert_eq!(mail_lines.len(), 4);
    assert!(mail_lines.values().all(|n| *n == 1), "{mail_lines:?}");
    for id in sms.iter().chain(mail) {
        let m = s.customer_messages(*id).await.unwrap();
        assert_eq!((m[0].status.as_str(), m[0].attempts), ("sent", 2));
    }
    // Recorded messages never go again (20:16 in Shanghai: before the quiet hours).
    clock.set(s.now() + chrono::Duration::minutes(10));
    assert_eq!(delivery.send_due(s, 1000).await.unwrap(), Default::default());
    assert_eq!(lines_by_id(&files, "messages-sms.jsonl").values().sum::<usize>(), 20);

    // 2. A provider failure in the middle of a recorded batch: the e-mail is retried after its
    // backoff, once; the SMS of the same batch are not sent again.
    enqueue("batch:2").await;
    std::fs::create_dir_all(files.join("messages-email.jsonl.tmp")).unwrap();
    std::fs::rename(files.join("messages-email.jsonl"), files.join("saved-email.jsonl")).unwrap();
    std::fs::rename(files.join("messages-email.jsonl.tmp"), files.join("messages-email.jsonl")).unwrap();
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.retrying), (10, 4), "{r:?}");
    std::fs::remove_dir(files.join("messages-email.jsonl")).unwrap();
    std::fs::rename(files.join("saved-email.jsonl"), files.join("messages-email.jsonl")).unwrap();
    assert_eq!(delivery.send_due(s, 1000).await.unwrap(), Default::default(), "not before the backoff");
    clock.set(s.now() + chrono::Duration::seconds(31));
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.retrying), (4, 0), "{r:?}");
    assert_eq!(statuses().await, count(&[("sent", 28)]));
    let sms_lines = lines_by_id(&files, "messages-sms.jsonl");
    let mail_lines = lines_by_id(&files, "messages-email.jsonl");
    assert_eq!((sms_lines.len(), mail_lines.len()), (20, 8));
    assert_eq!(sms_lines.values().filter(|n| **n == 1).count(), 10, "the second occasion's SMS once each");
    assert!(mail_lines.values().all(|n| *n == 1), "{mail_lines:?}");
});
