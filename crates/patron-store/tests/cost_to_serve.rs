//! Cost to serve on known data, on SQLite, PostgreSQL and Citus (`test_both!`): margins by
//! category, tickets with their handling minutes (capped), granted compensations, messages sent
//! by channel, rewards redeemed at cost, the profitability matrix split at the medians, the
//! report by tier and cell, and the segment fields — each against a hand computation.
//! Also the loyalty club's membership at the end of a customer: a merge moves the points once,
//! an erasure closes the membership and keeps a ledger without personal data.

use chrono::{Duration, Utc};
use patron_analytics::AnalyticsConfig;
use patron_store::cost_to_serve::CostSettings;
use patron_store::customers::NewCustomer;
use patron_store::db::query;
use patron_store::loyalty::ledger::{AdjustmentRequest, RedemptionRequest};
use patron_store::loyalty::rewards::RewardInput;
use patron_store::loyalty::LoyaltyProgram;
use patron_store::orders::{NewOrder, NewOrderLine};
use patron_store::testing::{test_now, TestDb};
use patron_store::tickets::compensations::{CompensationKind, NewCompensation};
use patron_store::tickets::{NewTicket, Transition};
use patron_store::users::Actor;
use patron_store::{test_both, Store};

fn cli() -> Actor {
    Actor::cli()
}

async fn customer(s: &Store, name: &str) -> i64 {
    s.create_customer(&cli(), NewCustomer { name: name.into(), ..Default::default() }).await.expect("customer").id
}

async fn order(s: &Store, cid: i64, ext: &str, cents: i64, days_ago: i64, status: &str, lines: Vec<NewOrderLine>) {
    let o = NewOrder {
        external_id: Some(ext.into()),
        customer_id: Some(cid),
        ordered_at: test_now() - Duration::days(days_ago),
        total_cents: Some(cents),
        status: Some(status.into()),
        lines,
        ..Default::default()
    };
    s.create_orders(&cli(), vec![o]).await.expect("order");
}

fn line(category: &str, quantity: i64, unit: i64) -> NewOrderLine {
    NewOrderLine { product: None, category: Some(category.into()), quantity: Some(quantity), unit_price_cents: unit, promo: false }
}

fn ticket(cid: i64, opened: chrono::DateTime<Utc>) -> NewTicket {
    NewTicket {
        customer_id: cid,
        kind: "complaint".into(),
        channel: "phone".into(),
        subject: "配送慢".into(),
        body: "等了很久".into(),
        category: None,
        assignee_id: None,
        department: None,
        store: None,
        opened_at: Some(opened),
        order_id: None,
    }
}

async fn sent(s: &Store, cid: i64, key: &str, channel: &str, status: &str) {
    let now = test_now() - Duration::days(2);
    let mut tx = s.db.begin().await.expect("tx");
    tx.execute(
        query(
            "INSERT INTO outbox (customer_id, message_key, channel, purpose, message_id, status, next_attempt_at, created_at, sent_at, updated_at) \
             VALUES ($1, $2, $3, 'marketing', $2, $4, $5, $5, $6, $5)",
        )
        .bind(cid)
        .bind(key)
        .bind(channel)
        .bind(status)
        .bind(now)
        .bind((status == "sent").then_some(now)),
    )
    .await
    .expect("outbox row");
    tx.commit().await.expect("commit");
}

test_both!(cost_to_serve_on_known_data_equals_the_hand_computation, |db: TestDb| async move {
    let s = &db.store;
    let mut rates = CostSettings::default();
    rates.category_margin_rates.insert("蛋糕".into(), 0.5);
    rates.message_cents.insert("sms".into(), 5);
    rates.message_cents.insert("email".into(), 1);
    s.set_cost_settings(&cli(), &rates).await.unwrap();
    let mut bad = rates.clone();
    bad.margin_rate = 1.5;
    assert!(s.set_cost_settings(&cli(), &bad).await.is_err(), "a margin rate above 1 is refused");
    s.set_loyalty_program(&cli(), &LoyaltyProgram { enabled: true, ..Default::default() }).await.unwrap();

    let a = customer(s, "甲").await;
    let b = customer(s, "乙").await;
    let c = customer(s, "丙").await;
    let d = customer(s, "丁").await;
    let e = customer(s, "戊").await;
    // A: ¥90 paid for ¥60 of cake and ¥40 of drinks → 5400 × 0.5 + 3600 × 0.3 = 3780.
    order(s, a, "A1", 9_000, 10, "completed", vec![line("蛋糕", 1, 6_000), line("饮品", 2, 2_000)]).await;
    // B: ¥50 without lines → 1500; an order 13 months back and a refunded one do not count.
    order(s, b, "B1", 5_000, 20, "completed", vec![]).await;
    order(s, b, "B0", 100_000, 400, "completed", vec![]).await;
    order(s, b, "B2", 7_000, 5, "refunded", vec![]).await;
    // E: ¥20 → 600.
    order(s, e, "E1", 2_000, 30, "completed", vec![]).await;

    // A's ticket: resolved 30 minutes after opening (2000 + 30 × 100), a ¥10 compensation.
    let opened = test_now() - Duration::days(5);
    let t = s.create_ticket(&cli(), ticket(a, opened)).await.unwrap();
    for to in ["acknowledged", "in_progress"] {
        s.transition_ticket(&cli(), t.id, Transition { to: to.into(), root_cause: None, note: None }).await.unwrap();
    }
    db.clock.set(opened + Duration::minutes(30));
    s.transition_ticket(&cli(), t.id, Transition { to: "resolved".into(), root_cause: Some("外卖延迟".into()), note: None }).await.unwrap();
    let comp = NewCompensation { amount_cents: 1_000, kind: CompensationKind::Voucher, reason: "致歉".into() };
    assert_eq!(s.compensate(&cli(), t.id, comp).await.unwrap().status, "granted");
    db.clock.set(test_now());
    // C's ticket is still open: its minutes to the period's end, capped at 120 → 2000 + 12000.
    s.create_ticket(&cli(), ticket(c, test_now() - Duration::days(3))).await.unwrap();
    // Messages: A two SMS and an e-mail sent (a failed one is free) → 11; E one e-mail → 1.
    sent(s, a, "m1", "sms", "sent").await;
    sent(s, a, "m2", "sms", "sent").await;
    sent(s, a, "m3", "email", "sent").await;
    sent(s, a, "m4", "sms", "failed").await;
    sent(s, e, "m5", "email", "sent").await;
    // A redeems a reward that costs ¥12.
    let reward = RewardInput {
        name: "蛋挞".into(),
        points: 80,
        stock: None,
        cost_cents: 1_200,
        active_from: None,
        active_to: None,
        tiers: vec![],
        image_url: None,
    };
    let reward = s.create_reward(&cli(), reward).await.unwrap();
    s.redeem_points(&cli(), a, RedemptionRequest { points: None, reward_id: Some(reward.id), idempotency_key: "r1".into() }).await.unwrap();

    let as_of = test_now().with_timezone(&s.config.business_tz).date_naive();
    s.run_analysis(&cli(), as_of, &AnalyticsConfig::default()).await.unwrap();
    // By hand: A margin 3780, cost 5000 + 1000 + 11 + 1200 = 7211; B 1500 / 0; C 0 / 14000;
    // E 600 / 1; D nothing. Medians (lower) of the four active: margin 600, cost 1.
    let expect = [
        (a, Some((9_000, 3_780, 7_211, -3_431, "carriage_trade"))),
        (b, Some((5_000, 1_500, 0, 1_500, "passive"))),
        (c, Some((0, 0, 14_000, -14_000, "aggressive"))),
        (e, Some((2_000, 600, 1, 599, "bargain_basement"))),
        (d, None),
    ];
    for (id, want) in expect {
        let k = s.customer_scores(id).await.unwrap().expect("scored");
        let got = match (k.cts_revenue_cents, k.margin_cents, k.cost_to_serve_cents, k.profit_cents, k.cts_quadrant.as_deref()) {
            (Some(r), Some(m), Some(c), Some(p), Some(q)) => Some((r, m, c, p, q)),
            _ => None,
        };
        assert_eq!(got, want, "customer {id}");
    }
    let report = s.cost_to_serve_report(Some(a)).await.unwrap();
    assert_eq!((report.margin_threshold_cents, report.cost_threshold_cents), (600, 1));
    let q: Vec<(&str, i64, i64, i64, i64, i64)> = report
        .quadrants
        .iter()
        .map(|c| (c.quadrant.as_str(), c.customers, c.revenue_cents, c.margin_cents, c.cost_cents, c.profit_cents))
        .collect();
    assert_eq!(
        q,
        vec![
            ("carriage_trade", 1, 9_000, 3_780, 7_211, -3_431),
            ("passive", 1, 5_000, 1_500, 0, 1_500),
            ("aggressive", 1, 0, 0, 14_000, -14_000),
            ("bargain_basement", 1, 2_000, 600, 1, 599),
        ]
    );
    assert_eq!(report.cells.iter().map(|c| c.customers).sum::<i64>(), 4);
    assert_eq!(report.customer.as_ref().map(|c| c.profit_cents), Some(-3_431));
    // Segment fields, in yuan.
    let mut losing = s.segment_customer_ids(&cli(), "profit < 0").await.unwrap();
    losing.sort();
    assert_eq!(losing, vec![a, c]);
    assert_eq!(s.segment_count(&cli(), "cost_to_serve >= 70 and margin > 30").await.unwrap(), 1);
});

fn adjust(points: i64) -> AdjustmentRequest {
    AdjustmentRequest { points, reason: "客服补偿 13800138000".into(), idempotency_key: None }
}

async fn sum(s: &Store, sql: &str, cid: i64) -> i64 {
    let (n,): (i64,) = s.db.reader().fetch_one(query(sql.to_owned()).bind(cid)).await.unwrap();
    n
}

/// Ledger sum = lots remaining − debt = the balance.
async fn consistent(s: &Store, cid: i64) -> i64 {
    let entries = sum(s, "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM loyalty_entries WHERE customer_id = $1", cid).await;
    let lots = sum(s, "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM loyalty_lots WHERE customer_id = $1", cid).await;
    let m = s.loyalty_member(cid).await.unwrap();
    assert_eq!((entries, m.balance), (lots - m.debt, lots - m.debt), "customer {cid}");
    m.balance
}

test_both!(a_merge_moves_the_points_once_and_an_erasure_closes_the_membership, |db: TestDb| async move {
    let s = &db.store;
    s.set_loyalty_program(&cli(), &LoyaltyProgram { enabled: true, expiry_months: 12, ..Default::default() }).await.unwrap();
    let keep = customer(s, "王芳").await;
    let dup = customer(s, "王芳 (重复)").await;
    order(s, keep, "K1", 10_000, 30, "completed", vec![]).await; // 100 points
    order(s, dup, "D1", 30_000, 200, "completed", vec![]).await; // 300, expires earlier
    order(s, dup, "D2", 5_000, 10, "completed", vec![]).await; // 50
    s.redeem_points(&cli(), dup, RedemptionRequest { points: Some(320), reward_id: None, idempotency_key: "x".into() }).await.unwrap();
    // D2 refunded after spending 20 of it: its 30 left go, 20 are a debt.
    order(s, dup, "D2", 5_000, 10, "refunded", vec![]).await;
    let before = s.loyalty_member(dup).await.unwrap();
    assert_eq!((before.balance, before.debt), (-20, 20));
    s.adjust_points(&cli(), dup, adjust(120)).await.unwrap(); // pays the debt, 100 left
    let dup_lots: Vec<(i64, Option<chrono::DateTime<Utc>>)> =
        s.loyalty_member(dup).await.unwrap().lots.iter().map(|l| (l.remaining, l.expires_at)).collect();
    assert_eq!(consistent(s, dup).await, 100);

    let report = s.merge_customers(&cli(), keep, dup).await.unwrap();
    assert_eq!(report.loyalty_points, 100);
    let kept = s.loyalty_member(keep).await.unwrap();
    assert_eq!(consistent(s, keep).await, 200, "100 own + 100 moved");
    for (remaining, expires) in &dup_lots {
        assert!(kept.lots.iter().any(|l| l.remaining == *remaining && l.expires_at == *expires), "the lot keeps its expiry");
    }
    let gone = s.loyalty_member(dup).await.unwrap();
    assert_eq!((gone.status.as_str(), consistent(s, dup).await), ("closed", 0));
    // Exactly once: the merge cannot run again, and nothing moved twice.
    assert!(s.merge_customers(&cli(), keep, dup).await.is_err());
    assert_eq!(consistent(s, keep).await, 200);
    let moved = sum(s, "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1 AND idempotency_key LIKE 'merge:%'", keep).await;
    assert_eq!(moved, dup_lots.len() as i64);

    // A debt follows the merge too.
    let other = customer(s, "王芳 (再重复)").await;
    order(s, other, "O1", 4_000, 9, "completed", vec![]).await;
    s.redeem_points(&cli(), other, RedemptionRequest { points: Some(40), reward_id: None, idempotency_key: "y".into() }).await.unwrap();
    order(s, other, "O1", 4_000, 9, "refunded", vec![]).await;
    assert_eq!(s.loyalty_member(other).await.unwrap().debt, 40);
    s.merge_customers(&cli(), keep, other).await.unwrap();
    assert_eq!(consistent(s, keep).await, 160);
    assert_eq!(consistent(s, other).await, 0);

    // Erasure: the membership closes, the points are forfeited (breakage), the ledger stays
    // without its free text.
    s.adjust_points(&cli(), keep, adjust(5)).await.unwrap();
    let entries_before = sum(s, "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1", keep).await;
    s.erase_customer(&cli(), keep).await.unwrap();
    let m = s.loyalty_member(keep).await.unwrap();
    assert_eq!((m.status.as_str(), m.lots.len()), ("closed", 0));
    assert_eq!(consistent(s, keep).await, -m.debt);
    assert_eq!(sum(s, "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1", keep).await, entries_before + 1);
    let pii = sum(
        s,
        "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1 AND (reason LIKE '%1380013%' OR request LIKE '%1380013%')",
        keep,
    )
    .await;
    assert_eq!(pii, 0, "no personal data left in the ledger");
    let r = s.redeem_points(&cli(), keep, RedemptionRequest { points: Some(1), reward_id: None, idempotency_key: "z".into() }).await;
    assert!(r.is_err(), "a closed membership spends nothing");
});
