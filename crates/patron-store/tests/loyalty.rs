//! The loyalty ledger on SQLite, PostgreSQL and Citus (`test_both!`): nearest-expiry spending,
//! no double spend under concurrent redemptions, idempotent retries and re-imports, debts from
//! reversals of spent points and their repayment, expiry once, bad input refused with nothing
//! written, and the balance equal to the lots after any sequence of operations.

use std::io::Cursor;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use patron_store::customers::NewCustomer;
use patron_store::db::query;
use patron_store::events::EventFilter;
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::loyalty::ledger::{AdjustmentRequest, RedemptionRequest};
use patron_store::loyalty::rewards::{FulfilmentUpdate, RewardInput};
use patron_store::loyalty::{LoyaltyProgram, TierDef};
use patron_store::orders::NewOrder;
use patron_store::testing::{test_now, TestDb};
use patron_store::users::Actor;
use patron_store::{test_both, Store, StoreError};
use serde_json::Value;

fn cli() -> Actor {
    Actor::cli()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 4, 0, 0).unwrap()
}

async fn programme(s: &Store) -> LoyaltyProgram {
    let p = LoyaltyProgram { enabled: true, expiry_months: 12, ..Default::default() };
    s.set_loyalty_program(&cli(), &p).await.unwrap()
}

async fn customer(s: &Store, name: &str) -> i64 {
    s.create_customer(&cli(), NewCustomer { name: name.into(), ..Default::default() }).await.expect("customer").id
}

/// An order of `yuan` at `when` (external id `ext`).
async fn order(s: &Store, cid: i64, ext: &str, yuan: i64, when: DateTime<Utc>, status: &str) -> i64 {
    let o = NewOrder {
        external_id: Some(ext.into()),
        customer_id: Some(cid),
        ordered_at: when,
        total_cents: Some(yuan * 100),
        status: Some(status.into()),
        ..Default::default()
    };
    s.create_orders(&cli(), vec![o]).await.expect("order")[0].id
}

fn redeem(points: i64, key: &str) -> RedemptionRequest {
    RedemptionRequest { points: Some(points), reward_id: None, idempotency_key: key.into() }
}

async fn scalar(s: &Store, sql: &str, cid: i64) -> i64 {
    let (n,): (i64,) = s.db.reader().fetch_one(query(sql.to_owned()).bind(cid)).await.unwrap();
    n
}

/// The ledger's sum equals the lots' remaining less the debt, which is the member's balance; no
/// lot is negative or above its points; every draw adds up to its lot's spending.
async fn check_invariants(s: &Store, cid: i64) -> i64 {
    let entries = scalar(s, "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM loyalty_entries WHERE customer_id = $1", cid).await;
    let lots = scalar(s, "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM loyalty_lots WHERE customer_id = $1", cid).await;
    let bad = scalar(s, "SELECT COUNT(*) FROM loyalty_lots WHERE customer_id = $1 AND (remaining < 0 OR remaining > points)", cid).await;
    let drawn = scalar(s, "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM loyalty_draws WHERE customer_id = $1", cid).await;
    let spent =
        scalar(s, "SELECT CAST(COALESCE(SUM(points - remaining), 0) AS BIGINT) FROM loyalty_lots WHERE customer_id = $1", cid).await;
    let m = s.loyalty_member(cid).await.unwrap();
    assert_eq!(bad, 0, "a lot out of range");
    assert_eq!(drawn, spent, "draws add up to what the lots lost");
    assert_eq!(entries, lots - m.debt, "ledger sum = lots remaining − debt");
    assert_eq!(m.balance, entries, "the balance is the ledger's");
    m.balance
}

test_both!(spending_takes_the_nearest_expiry_first_and_expiry_runs_once, |db: TestDb| async move {
    let s = &db.store;
    programme(s).await;
    let c = customer(s, "王伟").await;
    order(s, c, "A", 100, at(2026, 1, 10), "completed").await; // expires 2027-01-10
    order(s, c, "B", 50, at(2025, 8, 1), "completed").await; // expires 2026-08-01: first
    order(s, c, "C", 30, at(2026, 6, 1), "completed").await; // 2027-06-01
    order(s, c, "P", 999, at(2026, 6, 2), "pending").await; // earns nothing
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.balance, m.spendable, m.pending), (180, 180, 0));
    assert_eq!(m.next_expiry.as_ref().map(|e| e.points), Some(50));
    assert_eq!(m.lots.iter().map(|l| l.points).collect::<Vec<_>>(), vec![50, 100, 30], "spending order");
    let (r, fresh) = s.redeem_points(&cli(), c, redeem(70, "k1")).await.unwrap();
    assert!(fresh);
    assert_eq!(r.points, 70);
    let m = s.loyalty_member(c).await.unwrap();
    // B's 50 and 20 of A (a partial lot); C untouched.
    assert_eq!(m.lots.iter().map(|l| (l.points, l.remaining)).collect::<Vec<_>>(), vec![(100, 80), (30, 30)]);
    assert_eq!(check_invariants(s, c).await, 110);
    // Partial again, then the due lot expires once however often the scheduler runs.
    s.redeem_points(&cli(), c, redeem(75, "k2")).await.unwrap();
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!(m.lots.iter().map(|l| (l.points, l.remaining)).collect::<Vec<_>>(), vec![(100, 5), (30, 30)]);
    db.clock.set(at(2027, 1, 11));
    let first = s.run_due_jobs().await.unwrap().loyalty;
    let second = s.run_due_jobs().await.unwrap().loyalty;
    assert_eq!((first.expired_lots, first.expired_points), (1, 5));
    assert_eq!((second.expired_lots, second.expired_points), (0, 0));
    assert_eq!(check_invariants(s, c).await, 30);
    let ledger = s.loyalty_ledger(c, None, 100).await.unwrap();
    assert_eq!(ledger.items[0].kind, "expire");
    assert_eq!(ledger.items.iter().filter(|e| e.kind == "earn").count(), 3);
});

test_both!(concurrent_redemptions_never_double_spend, |db: TestDb| async move {
    let s = Arc::new(db.store.clone());
    programme(&s).await;
    let c = customer(&s, "李娜").await;
    order(&s, c, "O1", 100, at(2026, 6, 1), "completed").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.redeem_points(&cli(), c, redeem(60, &format!("r{i}"))).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::State(m)) => assert!(m.contains("not enough"), "{m}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one redemption of 60% succeeds");
    assert_eq!(check_invariants(&s, c).await, 40);
});

test_both!(retries_are_idempotent_and_bad_input_writes_nothing, |db: TestDb| async move {
    let s = &db.store;
    programme(s).await;
    let c = customer(s, "张三").await;
    let o1 = order(s, c, "O1", 100, at(2026, 6, 1), "completed").await;
    // Re-posting the same order (a retry) earns nothing twice.
    order(s, c, "O1", 100, at(2026, 6, 1), "completed").await;
    assert_eq!(check_invariants(s, c).await, 100);
    let (a, _) = s.redeem_points(&cli(), c, redeem(10, "same")).await.unwrap();
    let (b, fresh) = s.redeem_points(&cli(), c, redeem(10, "same")).await.unwrap();
    assert!(!fresh);
    assert_eq!((a.id, a.entry_id), (b.id, b.entry_id), "the first result");
    assert!(matches!(s.redeem_points(&cli(), c, redeem(11, "same")).await, Err(StoreError::Conflict(_))));
    let entries = || scalar(s, "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1", c);
    let before = entries().await;
    for bad in [0, -5] {
        assert!(matches!(s.redeem_points(&cli(), c, redeem(bad, &format!("b{bad}"))).await, Err(StoreError::Invalid { .. })));
    }
    assert!(matches!(s.redeem_points(&cli(), c, redeem(91, "over")).await, Err(StoreError::State(_))));
    let unknown_reward = RedemptionRequest { points: None, reward_id: Some(999_999), idempotency_key: "rw".into() };
    assert!(matches!(s.redeem_points(&cli(), c, unknown_reward).await, Err(StoreError::NotFound(_))));
    let no_reason = AdjustmentRequest { points: 5, reason: "  ".into(), idempotency_key: None };
    assert!(matches!(s.adjust_points(&cli(), c, no_reason).await, Err(StoreError::Invalid { .. })));
    let zero = AdjustmentRequest { points: 0, reason: "x".into(), idempotency_key: None };
    assert!(matches!(s.adjust_points(&cli(), c, zero).await, Err(StoreError::Invalid { .. })));
    // The contract run's find: i64::MIN used to overflow `abs()` and panic the handler.
    for extreme in [i64::MIN, i64::MAX, -100_000_001] {
        let huge = AdjustmentRequest { points: extreme, reason: "x".into(), idempotency_key: None };
        assert!(matches!(s.adjust_points(&cli(), c, huge).await, Err(StoreError::Invalid { .. })), "{extreme}");
    }
    let too_much = AdjustmentRequest { points: -91, reason: "x".into(), idempotency_key: None };
    assert!(matches!(s.adjust_points(&cli(), c, too_much).await, Err(StoreError::State(_))));
    let stranger = customer(s, "路人").await;
    assert!(matches!(s.redeem_points(&cli(), stranger, redeem(1, "n")).await, Err(StoreError::NotFound("member"))));
    assert!(matches!(s.loyalty_member(stranger).await, Err(StoreError::NotFound("member"))));
    assert_eq!(entries().await, before, "nothing written");
    assert_eq!(check_invariants(s, c).await, 90);
    let _ = o1;
});

test_both!(a_refund_after_spending_leaves_a_debt_the_next_earnings_pay, |db: TestDb| async move {
    let s = &db.store;
    programme(s).await;
    let c = customer(s, "赵敏").await;
    order(s, c, "O1", 100, at(2026, 6, 1), "completed").await;
    s.redeem_points(&cli(), c, redeem(80, "spend")).await.unwrap();
    // The refund: 20 taken back from the lot, 80 spent already become a debt.
    order(s, c, "O1", 100, at(2026, 6, 1), "refunded").await;
    order(s, c, "O1", 100, at(2026, 6, 1), "refunded").await; // once
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.balance, m.debt, m.spendable), (-80, 80, 0));
    let ledger = s.loyalty_ledger(c, None, 100).await.unwrap();
    let kinds: Vec<(&str, i64)> = ledger.items.iter().map(|e| (e.kind.as_str(), e.points)).collect();
    assert_eq!(kinds, vec![("debt", -80), ("reverse", -20), ("redeem", -80), ("earn", 100)]);
    check_invariants(s, c).await;
    // The next earnings pay the debt first: 50 all to it, then 30 of 100 and a lot of 70.
    order(s, c, "O2", 50, at(2026, 6, 10), "completed").await;
    assert_eq!(s.loyalty_member(c).await.unwrap().debt, 30);
    order(s, c, "O3", 100, at(2026, 6, 11), "completed").await;
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.balance, m.debt, m.lots.len()), (70, 0, 1));
    let ledger = s.loyalty_ledger(c, None, 2).await.unwrap();
    assert_eq!(ledger.items.iter().map(|e| e.debt_repaid).collect::<Vec<_>>(), vec![30, 50]);
    assert!(ledger.next_cursor.is_some());
    check_invariants(s, c).await;
});

test_both!(reimporting_an_orders_file_earns_nothing_new, |db: TestDb| async move {
    let s = &db.store;
    programme(s).await;
    let import = |kind: ImportKind, name: &'static str, text: String| async move {
        let opts = ImportOptions::new(kind, name);
        let r = s.import(&cli(), Box::new(Cursor::new(text.into_bytes())), &opts, &|_| {}).await.expect("import");
        assert!(r.committed, "{:?}", r.rejections);
    };
    let mut customers = String::from("customer_id,name\n");
    let mut orders = String::from("order_id,customer_id,ordered_at,amount,status\n");
    for i in 0..30 {
        customers.push_str(&format!("C{i},客户{i}\n"));
        for j in 0..3 {
            let status = if j == 2 && i % 5 == 0 { "pending" } else { "completed" };
            orders.push_str(&format!("O{i}-{j},C{i},2026-0{}-1{j},{}.50,{status}\n", 3 + j, 10 + i));
        }
    }
    import(ImportKind::Customers, "c.csv", customers).await;
    import(ImportKind::Orders, "o.csv", orders.clone()).await;
    let total =
        || async { scalar(s, "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM loyalty_entries WHERE customer_id > $1", 0).await };
    let count = || async { scalar(s, "SELECT COUNT(*) FROM loyalty_entries WHERE customer_id > $1", 0).await };
    let (t1, n1) = (total().await, count().await);
    // 84 completed orders; customer i's order of (10+i).50 yuan earns 10+i points.
    assert_eq!(n1, 84);
    let expected: i64 = (0..30).map(|i| (10 + i) * if i % 5 == 0 { 2 } else { 3 }).sum();
    assert_eq!(t1, expected);
    import(ImportKind::Orders, "o.csv", orders.clone()).await;
    assert_eq!((total().await, count().await), (t1, n1), "the same file again earns nothing");
    // A later file refunds one order and completes a pending one: one reversal, one earning.
    import(
        ImportKind::Orders,
        "o2.csv",
        "order_id,customer_id,ordered_at,amount,status\nO1-0,C1,2026-03-10,11.50,refunded\nO0-2,C0,2026-05-12,10.50,completed\n".into(),
    )
    .await;
    assert_eq!((total().await, count().await), (t1 - 11 + 10, n1 + 2));
    let ids: Vec<(i64,)> = s.db.reader().fetch_all(query("SELECT customer_id FROM loyalty_members ORDER BY customer_id")).await.unwrap();
    assert_eq!(ids.len(), 30, "enrolled on their first completed order");
    for (cid,) in ids {
        check_invariants(s, cid).await;
    }
});

test_both!(any_sequence_keeps_the_balance_equal_to_the_lots, |db: TestDb| async move {
    let s = &db.store;
    let mut p = programme(s).await;
    p.pending_days = 3;
    s.set_loyalty_program(&cli(), &p).await.unwrap();
    let c = customer(s, "钱七").await;
    // A small deterministic generator (xorshift), several seeds' worth of operations.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut day = test_now() - Duration::days(400);
    let mut orders: Vec<String> = Vec::new();
    for step in 0..60 {
        day += Duration::days(next(12) as i64);
        db.clock.set(day.max(test_now() - Duration::days(400)));
        match next(6) {
            0 | 1 => {
                let ext = format!("S{step}");
                order(s, c, &ext, 1 + next(300) as i64, day - Duration::hours(1), "completed").await;
                orders.push(ext);
            }
            2 => {
                let m = s.loyalty_member(c).await.unwrap();
                if m.spendable > 0 {
                    s.redeem_points(&cli(), c, redeem(1 + next(m.spendable as u64) as i64, &format!("r{step}"))).await.unwrap();
                }
            }
            3 if !orders.is_empty() => {
                let ext = orders.remove(next(orders.len() as u64) as usize);
                let status = if next(2) == 0 { "refunded" } else { "cancelled" };
                let o = NewOrder {
                    external_id: Some(ext),
                    customer_id: Some(c),
                    ordered_at: day - Duration::days(1),
                    total_cents: Some(100),
                    status: Some(status.into()),
                    ..Default::default()
                };
                s.create_orders(&cli(), vec![o]).await.unwrap();
            }
            4 => {
                let m = s.loyalty_member(c).await.unwrap();
                let pts = if next(2) == 0 { 1 + next(50) as i64 } else { -(next(m.balance.max(0) as u64 + 1) as i64) };
                if pts != 0 {
                    s.adjust_points(&cli(), c, AdjustmentRequest { points: pts, reason: "盘点".into(), idempotency_key: None })
                        .await
                        .unwrap();
                }
            }
            _ => {
                s.run_due_jobs().await.unwrap();
            }
        }
        if s.loyalty_member(c).await.is_ok() {
            check_invariants(s, c).await;
        }
    }
});

test_both!(tiers_follow_points_earned_with_a_grace_period, |db: TestDb| async move {
    let s = &db.store;
    let mut p = programme(s).await;
    p.tiers = vec![
        TierDef { name: "银卡".into(), min_points_earned: 100, multiplier: 1.0, benefits: vec![] },
        TierDef { name: "金卡".into(), min_points_earned: 500, multiplier: 1.5, benefits: vec!["优先服务".into()] },
    ];
    p.expiry_months = 0;
    s.set_loyalty_program(&cli(), &p).await.unwrap();
    let c = customer(s, "周芷若").await;
    order(s, c, "T1", 600, at(2026, 6, 1), "completed").await;
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.tier.as_deref(), m.earned_in_period), (Some("金卡"), 600), "straight to the highest tier reached");
    // Redeeming everything does not demote: tiers are on points earned, not the balance.
    s.redeem_points(&cli(), c, redeem(600, "all")).await.unwrap();
    s.run_due_jobs().await.unwrap();
    assert_eq!(s.loyalty_member(c).await.unwrap().tier.as_deref(), Some("金卡"));
    // 金卡 earns 1.5 times.
    order(s, c, "T2", 100, at(2026, 6, 5), "completed").await;
    assert_eq!(s.loyalty_member(c).await.unwrap().balance, 150);
    // A year on, only T2's 150 points are in the period: below 金卡, the grace period starts.
    db.clock.set(at(2027, 6, 2));
    s.run_due_jobs().await.unwrap();
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.tier.as_deref(), m.below_since), (Some("金卡"), Some(at(2027, 6, 2))));
    db.clock.set(at(2027, 8, 30));
    s.run_due_jobs().await.unwrap();
    assert_eq!(s.loyalty_member(c).await.unwrap().tier.as_deref(), Some("金卡"), "kept within the 90 days");
    // 91 days: down one tier (not two), and below that one too, a new grace period.
    db.clock.set(at(2027, 9, 1));
    let r = s.run_due_jobs().await.unwrap();
    assert_eq!(r.loyalty.tier_changes, 1);
    let m = s.loyalty_member(c).await.unwrap();
    assert_eq!((m.tier.as_deref(), m.below_since), (Some("银卡"), Some(at(2027, 9, 1))));
    db.clock.set(at(2027, 12, 1));
    s.run_due_jobs().await.unwrap();
    assert_eq!(s.loyalty_member(c).await.unwrap().tier, None);
    // Every change is an event and on the timeline with its reason.
    let events =
        s.events(&EventFilter { kind: Some("loyalty.tier_changed".into()), customer_id: Some(c), ..Default::default() }, 10).await.unwrap();
    let moves: Vec<(Value, Value)> = events.iter().map(|e| (e.payload["from"].clone(), e.payload["to"].clone())).collect();
    assert_eq!(moves, vec![(Value::Null, "金卡".into()), ("金卡".into(), "银卡".into()), ("银卡".into(), Value::Null)]);
    let timeline = s.timeline(c, None, 100).await.unwrap();
    let tiers: Vec<&str> = timeline.items.iter().filter(|e| e.kind == "loyalty").map(|e| e.title.as_str()).collect();
    assert_eq!(tiers, vec!["银卡 → —", "金卡 → 银卡", "— → 金卡"]);
    assert!(timeline.items.iter().any(|e| e.kind == "loyalty" && e.detail.as_deref().is_some_and(|d| d.contains("grace 90 days"))));
});

test_both!(rewards_are_never_oversold_and_a_cancellation_gives_points_back, |db: TestDb| async move {
    let s = Arc::new(db.store.clone());
    programme(&s).await;
    let input = |stock: Option<i64>, tiers: Vec<String>| RewardInput {
        name: "招牌酸菜鱼".into(),
        points: 100,
        stock,
        cost_cents: 3800,
        active_from: None,
        active_to: None,
        tiers,
        image_url: Some("https://example.com/fish.jpg".into()),
    };
    let fish = s.create_reward(&cli(), input(Some(3), vec![])).await.unwrap();
    let gold_only = s.create_reward(&cli(), input(None, vec!["金卡".into()])).await.unwrap();
    let mut members = Vec::new();
    for i in 0..5 {
        let c = customer(&s, &format!("会员{i}")).await;
        order(&s, c, &format!("R{i}"), 250, at(2026, 6, 1), "completed").await;
        members.push(c);
    }
    assert_eq!(
        s.rewards(Some(members[0])).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![fish.id],
        "what the member may choose"
    );
    let no_tier = RedemptionRequest { points: None, reward_id: Some(gold_only.id), idempotency_key: "g".into() };
    assert!(matches!(s.redeem_points(&cli(), members[0], no_tier).await, Err(StoreError::State(_))));
    // Ten concurrent redemptions (two per member) of a reward with 3 in stock: 3 made.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, c) = (s.clone(), members[i % 5]);
            tokio::spawn(async move {
                s.redeem_points(&cli(), c, RedemptionRequest { points: None, reward_id: Some(fish.id), idempotency_key: format!("f{i}") })
                    .await
            })
        })
        .collect();
    let mut made = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((r, _)) => made.push(r),
            Err(StoreError::State(m)) => assert!(m.contains("out of stock"), "{m}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(made.len(), 3);
    let stock = s.rewards(None).await.unwrap().into_iter().find(|r| r.id == fish.id).unwrap().stock;
    assert_eq!(stock, Some(0));
    // Cancelled: the points come back and the fish goes back in stock; handed over is final.
    let r = &made[0];
    let before = s.loyalty_member(r.customer_id).await.unwrap().balance;
    let done = s.fulfil_redemption(&cli(), r.customer_id, r.id, FulfilmentUpdate { status: "cancelled".into() }).await.unwrap();
    assert_eq!(done.status, "cancelled");
    assert_eq!(s.loyalty_member(r.customer_id).await.unwrap().balance, before + 100);
    assert!(matches!(
        s.fulfil_redemption(&cli(), r.customer_id, r.id, FulfilmentUpdate { status: "handed_over".into() }).await,
        Err(StoreError::State(_))
    ));
    let r2 = &made[1];
    s.fulfil_redemption(&cli(), r2.customer_id, r2.id, FulfilmentUpdate { status: "handed_over".into() }).await.unwrap();
    let stock = s.rewards(None).await.unwrap().into_iter().find(|r| r.id == fish.id).unwrap().stock;
    assert_eq!(stock, Some(1));
    for c in members {
        check_invariants(&s, c).await;
    }
});

test_both!(liability_on_a_known_ledger_equals_the_hand_computation, |db: TestDb| async move {
    let s = &db.store;
    let mut p = programme(s).await;
    p.pending_days = 14;
    s.set_loyalty_program(&cli(), &p).await.unwrap();
    let c = customer(s, "孙悟空").await;
    db.clock.set(at(2025, 3, 2));
    order(s, c, "L1", 100, at(2025, 3, 1), "completed").await; // lot 1: expires 2026-03-01
    db.clock.set(at(2025, 3, 20));
    s.redeem_points(&cli(), c, redeem(30, "l-r1")).await.unwrap();
    db.clock.set(at(2025, 9, 2));
    order(s, c, "L2", 200, at(2025, 9, 1), "completed").await; // lot 2: expires 2026-09-01
    db.clock.set(at(2026, 3, 2));
    assert_eq!(s.run_due_jobs().await.unwrap().loyalty.expired_points, 70);
    db.clock.set(test_now());
    order(s, c, "L3", 50, at(2026, 6, 20), "completed").await; // lot 3: pending to 07-04
    s.redeem_points(&cli(), c, redeem(20, "l-r2")).await.unwrap(); // from lot 2
    let l = s.loyalty_liability(None).await.unwrap();
    assert_eq!((l.spendable, l.pending, l.outstanding, l.debt), (180, 50, 230, 0));
    assert!((l.breakage_rate - 0.7).abs() < 1e-12, "70 of lot 1's 100 expired");
    assert_eq!((l.breakage_base_points, l.expected_liability_cents, l.outstanding_value_cents), (100, 69, 230));
    let by_expiry: Vec<(&str, i64)> = l.by_expiry_month.iter().map(|m| (m.month.as_str(), m.points)).collect();
    assert_eq!(by_expiry, vec![("2026-09", 180), ("2027-06", 50)]);
    let dev: Vec<(&str, i64, i64, i64, i64)> =
        l.by_issue_month.iter().map(|m| (m.month.as_str(), m.issued, m.redeemed, m.expired, m.outstanding)).collect();
    assert_eq!(dev, vec![("2025-03", 100, 30, 70, 0), ("2025-09", 200, 20, 0, 180), ("2026-06", 50, 0, 0, 50)]);
    assert!(l.to_csv().starts_with("issue_month,issued,redeemed,expired,reversed,outstanding\n2025-03,100,30,70,0,0\n"));
    // As of the end of 2025: lot 1 not expired yet, nothing broken: all of it owed.
    let l = s.loyalty_liability(Some(at(2025, 12, 31))).await.unwrap();
    assert_eq!((l.outstanding, l.breakage_rate, l.expected_liability_cents), (270, 0.0, 270));
});

test_both!(referrals_pay_once_with_fraud_guards_and_reverse_on_refund, |db: TestDb| async move {
    let s = &db.store;
    let mut p = programme(s).await;
    p.referral_points = 500;
    p.referral_cap_per_month = 2;
    p.pending_days = 7;
    s.set_loyalty_program(&cli(), &p).await.unwrap();
    let new = |name: &str, referrer: Option<i64>, mobile: Option<&str>, email: Option<&str>| NewCustomer {
        name: name.into(),
        referrer_id: referrer,
        mobile: mobile.map(Into::into),
        email: email.map(Into::into),
        ..Default::default()
    };
    let r = s.create_customer(&cli(), new("推荐人", None, Some("13800138000"), Some("r@example.com"))).await.unwrap().id;
    order(s, r, "R0", 10, at(2026, 5, 1), "completed").await;
    let honest = s.create_customer(&cli(), new("新客甲", Some(r), Some("13900139000"), None)).await.unwrap().id;
    let same_mobile = s.create_customer(&cli(), new("新客乙", Some(r), Some("138 0013 8000"), None)).await.unwrap().id;
    let same_email = s.create_customer(&cli(), new("新客丙", Some(r), None, Some("R@example.com"))).await.unwrap().id;
    let second = s.create_customer(&cli(), new("新客丁", Some(r), None, None)).await.unwrap().id;
    let over_cap = s.create_customer(&cli(), new("新客戊", Some(r), None, None)).await.unwrap().id;
    let too_soon = s.create_customer(&cli(), new("新客己", Some(r), None, None)).await.unwrap().id;
    for (i, c) in [honest, same_mobile, same_email, second, over_cap].into_iter().enumerate() {
        order(s, c, &format!("F{i}"), 100, at(2026, 6, 1) + Duration::hours(i as i64), "completed").await;
    }
    order(s, too_soon, "F9", 100, test_now() - Duration::days(2), "completed").await;
    let first = s.run_due_jobs().await.unwrap().loyalty;
    let again = s.run_due_jobs().await.unwrap().loyalty;
    assert_eq!(
        (first.referrals_paid, first.referrals_refused),
        (2, 3),
        "honest and second paid; shared mobile, shared email and the cap refused"
    );
    assert_eq!((again.referrals_paid, again.referrals_refused), (0, 0), "decided once");
    assert_eq!(s.loyalty_member(r).await.unwrap().balance, 10 + 1000);
    let stats = s.referral_stats().await.unwrap();
    assert_eq!((stats.paid, stats.refused, stats.reversed), (2, 3, 0));
    // The honest referee's first order refunded: the reward goes back.
    order(s, honest, "F0", 100, at(2026, 6, 1), "refunded").await;
    assert_eq!(s.loyalty_member(r).await.unwrap().balance, 10 + 500);
    assert_eq!(s.referral_stats().await.unwrap().reversed, 1);
    check_invariants(s, r).await;
    // Past its pending period, the last referee is decided (the cap: refused this month).
    db.clock.set(test_now() + Duration::days(6));
    let later = s.run_due_jobs().await.unwrap().loyalty;
    assert_eq!(later.referrals_paid + later.referrals_refused, 1);
});

test_both!(a_refund_after_a_merge_takes_the_points_back_from_the_customer_kept, |db: TestDb| async move {
    let s = &db.store;
    programme(s).await;
    let new = |name: &str, ext: &str| NewCustomer { name: name.into(), external_id: Some(ext.into()), ..Default::default() };
    let keep = s.create_customer(&cli(), new("周芷若", "KEEP")).await.unwrap().id;
    let dup = s.create_customer(&cli(), new("周芷若（重复）", "DUP")).await.unwrap().id;
    order(s, keep, "K1", 50, at(2026, 6, 1), "completed").await;
    let d1 = order(s, dup, "D1", 100, at(2026, 6, 2), "completed").await;
    let d2 = order(s, dup, "D2", 30, at(2026, 6, 3), "completed").await;
    order(s, dup, "D3", 20, at(2026, 6, 4), "completed").await;
    // Refunded before the merge: reversed on the duplicate's own ledger.
    order(s, dup, "D3", 20, at(2026, 6, 4), "refunded").await;
    // Nearest expiry first: D1's 100 and 10 of D2's 30.
    s.redeem_points(&cli(), dup, redeem(110, "dup-spend")).await.unwrap();
    s.merge_customers(&cli(), keep, dup).await.unwrap();
    assert_eq!(check_invariants(s, keep).await, 50 + 20, "what was left of D2 moved");

    // D2 refunded at the customer kept: its 30 come back, the moved lot's 20 first.
    order(s, keep, "D2", 30, at(2026, 6, 3), "refunded").await;
    order(s, keep, "D2", 30, at(2026, 6, 3), "refunded").await; // once
    let m = s.loyalty_member(keep).await.unwrap();
    assert_eq!((m.balance, m.debt), (40, 0));
    let key = format!("reverse:order:{d2}");
    assert_eq!(
        scalar(
            s,
            &format!("SELECT CAST(SUM(points) AS BIGINT) FROM loyalty_entries WHERE customer_id = $1 AND idempotency_key = '{key}'"),
            keep
        )
        .await,
        -30
    );
    // D3, reversed before the merge, takes nothing again.
    order(s, keep, "D3", 20, at(2026, 6, 4), "refunded").await;
    assert_eq!(s.loyalty_member(keep).await.unwrap().balance, 40);

    // D1 refunded by an orders file naming the merged customer: 100 back, 60 of them spent.
    let file = "order_id,customer_id,ordered_at,amount,status\nD1,DUP,2026-06-02,100.00,refunded\n";
    for _ in 0..2 {
        let opts = ImportOptions::new(ImportKind::Orders, "refunds.csv");
        let r = s.import(&cli(), Box::new(Cursor::new(file.as_bytes().to_vec())), &opts, &|_| {}).await.expect("import");
        assert!(r.committed, "{:?}", r.rejections);
    }
    let m = s.loyalty_member(keep).await.unwrap();
    assert_eq!((m.balance, m.debt), (-60, 60), "the file twice takes D1's points back once");
    let reversed = scalar(
        s,
        &format!("SELECT COUNT(*) FROM loyalty_entries WHERE customer_id = $1 AND order_id = {d1} AND kind IN ('reverse', 'debt')"),
        keep,
    )
    .await;
    assert_eq!(reversed, 2);
    check_invariants(s, keep).await;
    check_invariants(s, dup).await;
});

test_both!(referees_are_queued_by_their_orders_and_decided_once_by_racing_schedulers, |db: TestDb| async move {
    let s = &db.store;
    let mut p = programme(s).await;
    p.referral_points = 200;
    p.referral_cap_per_month = 10;
    p.pending_days = 7;
    s.set_loyalty_program(&cli(), &p).await.unwrap();
    let new = |name: &str, ext: &str, referrer: Option<i64>| NewCustomer {
        name: name.into(),
        external_id: Some(ext.into()),
        referrer_id: referrer,
        ..Default::default()
    };
    let r = s.create_customer(&cli(), new("推荐人", "R", None)).await.unwrap().id;
    order(s, r, "R0", 10, at(2026, 5, 1), "completed").await;
    let queued = || async { scalar(s, "SELECT COUNT(*) FROM loyalty_referees WHERE customer_id > $1", 0).await };
    // By an order over the API.
    let api = s.create_customer(&cli(), new("接口客", "A", Some(r))).await.unwrap().id;
    order(s, api, "A1", 50, at(2026, 6, 1), "completed").await;
    // By an orders file (two referees, one of them twice in the file).
    for ext in ["F1", "F2"] {
        s.create_customer(&cli(), new("文件客", ext, Some(r))).await.unwrap();
    }
    let file = "order_id,customer_id,ordered_at,amount,status\nFA,F1,2026-06-02,20.00,completed\nFB,F1,2026-06-03,20.00,completed\nFC,F2,2026-06-04,20.00,completed\n";
    let opts = ImportOptions::new(ImportKind::Orders, "o.csv");
    let rep = s.import(&cli(), Box::new(Cursor::new(file.as_bytes().to_vec())), &opts, &|_| {}).await.expect("import");
    assert!(rep.committed, "{:?}", rep.rejections);
    // By a referrer named after the first order.
    let later = s.create_customer(&cli(), new("后补推荐", "L", None)).await.unwrap().id;
    order(s, later, "L1", 30, at(2026, 6, 5), "completed").await;
    // By a merge: the kept customer (referred) had no order, the duplicate had one.
    let keep = s.create_customer(&cli(), new("合并留", "K", Some(r))).await.unwrap().id;
    let dup = s.create_customer(&cli(), new("合并去", "D", None)).await.unwrap().id;
    order(s, dup, "D1", 40, at(2026, 6, 6), "completed").await;
    // An unreferred customer's order queues nothing.
    assert_eq!(queued().await, 3);
    let patch = patron_store::customers::CustomerPatch { referrer_id: Some(Some(r)), ..Default::default() };
    s.update_customer(&cli(), later, patch).await.unwrap();
    s.merge_customers(&cli(), keep, dup).await.unwrap();
    assert_eq!(queued().await, 5);
    // More orders of a queued referee leave the queue as it is.
    order(s, api, "A2", 50, at(2026, 6, 7), "completed").await;
    assert_eq!(queued().await, 5);

    // Two schedulers at once: five decisions, each made once, the referrer paid five times.
    let (a, b) = tokio::join!(s.run_referrals(), s.run_referrals());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.paid + b.paid, a.refused + b.refused), (5, 0));
    assert_eq!(s.run_referrals().await.unwrap().paid, 0);
    assert_eq!(s.loyalty_member(r).await.unwrap().balance, 10 + 5 * 200);
    assert_eq!(scalar(s, "SELECT COUNT(*) FROM loyalty_referees WHERE decided_at IS NULL AND customer_id > $1", 0).await, 0);
    check_invariants(s, r).await;

    // A referee whose first order is still pending waits in the queue, then is decided.
    let fresh = s.create_customer(&cli(), new("新客", "N", Some(r))).await.unwrap().id;
    order(s, fresh, "N1", 60, test_now() - Duration::days(2), "completed").await;
    assert_eq!(s.run_referrals().await.unwrap().paid, 0);
    db.clock.set(test_now() + Duration::days(6));
    assert_eq!(s.run_referrals().await.unwrap().paid, 1);
    assert_eq!(s.run_referrals().await.unwrap().paid, 0);
});
