//! Summaries kept current, analysis runs and stored scores, on SQLite and PostgreSQL alike.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Cursor;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use patron_analytics::{AnalyticsConfig, CustomerExtras, Orders};
use patron_store::analytics::{CustomerSummary, ScoreRow};
use patron_store::db::query;
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::orders::NewOrder;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use patron_store::{test_both, Store};
use rand::{Rng, SeedableRng};

async fn import(store: &Store, kind: ImportKind, text: String) {
    let opts = ImportOptions::new(kind, "f.csv");
    let r = store.import(&Actor::cli(), Box::new(Cursor::new(text.into_bytes())), &opts, &|_| {}).await.expect("import runs");
    assert!(r.committed && r.rejected == 0, "{:?}", r.rejections);
}

async fn summaries(store: &Store) -> Vec<CustomerSummary> {
    store
        .db
        .reader()
        .fetch_all(query(
            "SELECT customer_id, order_count, spend_cents, purchase_days, first_purchase_day, last_purchase_day, \
             repeat_spend_cents, last_ordered_at FROM customer_summaries ORDER BY customer_id",
        ))
        .await
        .expect("summaries")
}

fn day(y: i32, m: u32, d: u32) -> i64 {
    i64::from(patron_analytics::day_number(NaiveDate::from_ymd_opt(y, m, d).expect("date")))
}

test_both!(summaries_follow_orders_and_rebuild_agrees, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "customer_id,name\nC1,王伟\nC2,李娜\nC3,张三\nC4,赵六\n".into()).await;
    // C1: 2026-03-01 15:30Z is 23:30 in Shanghai (day 1) and 16:30Z is 00:30 on 03-02 (day 2);
    // two orders on 03-10 make one purchase day. C2: one order, plus a cancelled one. C3: none.
    // C4: two orders and a cancelled one on its first day, one more later.
    import(
        s,
        ImportKind::Orders,
        "order_id,customer_id,ordered_at,amount,status\n\
         O1,C1,2026-03-01T15:30:00Z,10.00,\n\
         O2,C1,2026-03-01T16:30:00Z,20.00,\n\
         O3,C1,2026-03-10 09:00,5.50,\n\
         O4,C1,2026-03-10 19:00,4.50,\n\
         O5,C2,2026-04-01 12:00,99.00,\n\
         O6,C2,2026-04-02 12:00,50.00,cancelled\n\
         O8,C4,2026-05-01 10:00,10.00,\n\
         O9,C4,2026-05-01 18:00,5.00,\n\
         O10,C4,2026-05-01 19:00,7.00,cancelled\n\
         O11,C4,2026-05-03 10:00,2.00,\n"
            .into(),
    )
    .await;
    let got = summaries(s).await;
    assert_eq!(got.len(), 3, "a customer without completed orders has no summary: {got:?}");
    let c1 = &got[0];
    assert_eq!((c1.order_count, c1.spend_cents, c1.purchase_days), (4, 4000, 3));
    assert_eq!((c1.first_purchase_day, c1.last_purchase_day), (Some(day(2026, 3, 1)), Some(day(2026, 3, 10))));
    assert_eq!(c1.repeat_spend_cents, 3000, "repeat spend leaves out the first purchase day");
    assert_eq!(c1.last_ordered_at, Some(Utc.with_ymd_and_hms(2026, 3, 10, 11, 0, 0).unwrap()));
    let c2 = &got[1];
    assert_eq!((c2.order_count, c2.spend_cents, c2.purchase_days, c2.repeat_spend_cents), (1, 9900, 1, 0));
    let c4 = &got[2];
    assert_eq!((c4.order_count, c4.spend_cents, c4.purchase_days, c4.repeat_spend_cents), (3, 1700, 2, 200));

    // An order through the API (the cancelled one completes, a new one arrives) refreshes at once.
    let fix = |ext: &str, at: chrono::DateTime<Utc>, cents: i64| NewOrder {
        external_id: Some(ext.into()),
        customer_external_id: Some("C2".into()),
        ordered_at: at,
        total_cents: Some(cents),
        status: Some("completed".into()),
        ..Default::default()
    };
    s.create_orders(&Actor::cli(), vec![fix("O6", Utc.with_ymd_and_hms(2026, 4, 2, 4, 0, 0).unwrap(), 5000)]).await.unwrap();
    s.create_orders(&Actor::cli(), vec![fix("O7", Utc.with_ymd_and_hms(2026, 5, 2, 4, 0, 0).unwrap(), 700)]).await.unwrap();
    let c2 = s.customer_summary(c2.customer_id).await.unwrap().expect("summary");
    assert_eq!((c2.order_count, c2.spend_cents, c2.purchase_days, c2.repeat_spend_cents), (3, 15600, 3, 5700));
    assert_eq!(c2.last_purchase_day, Some(day(2026, 5, 2)));

    // The one-aggregation rebuild gives exactly what the incremental path kept.
    let kept = summaries(s).await;
    s.db.reader().execute(query("UPDATE orders SET ordered_day = NULL")).await.unwrap();
    assert_eq!(s.rebuild_summaries().await.unwrap(), 3);
    assert_eq!(summaries(s).await, kept);
});

/// A seeded random base: customers C0…, orders over two years, some cancelled, some on the same day.
type OrderFact = (usize, chrono::DateTime<Utc>, i64, bool, u32, bool);

/// Customers CSV, orders CSV, the orders as facts (customer, time, cents, completed, category,
/// promo) and the referrals each customer made.
fn random_base(n: usize, seed: u64) -> (String, String, Vec<OrderFact>, Vec<u32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut customers = String::from("customer_id,name,referrer_id\n");
    let mut orders = String::from("order_id,customer_id,ordered_at,amount,status,category,promo\n");
    let mut list = Vec::new();
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap();
    let mut k = 0;
    let mut referrals = vec![0u32; n];
    for c in 0..n {
        let referrer = if c > 0 && rng.gen_bool(0.1) {
            let r = rng.gen_range(0..c);
            referrals[r] += 1;
            format!("C{r}")
        } else {
            String::new()
        };
        let _ = writeln!(customers, "C{c},客户{c},{referrer}");
        let orders_n = if rng.gen_bool(0.15) { 0 } else { rng.gen_range(1..12) };
        for _ in 0..orders_n {
            let at = start + Duration::minutes(rng.gen_range(0..(730 * 24 * 60)));
            let cents = rng.gen_range(100..50_000);
            let completed = !rng.gen_bool(0.05);
            let status = if completed { "completed" } else { "refunded" };
            let (category, promo) = (rng.gen_range(0..5u32), rng.gen_bool(0.3));
            let _ = writeln!(orders, "O{k},C{c},{},{}.{:02},{status},cat{category},{promo}", at.to_rfc3339(), cents / 100, cents % 100);
            list.push((c, at, cents, completed, category, promo));
            k += 1;
        }
    }
    (customers, orders, list, referrals)
}

test_both!(analysis_stores_what_the_models_compute, |db: TestDb| async move {
    let s = &db.store;
    let n = 400;
    let (customers, orders_csv, list, referrals) = random_base(n, 7);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let config = AnalyticsConfig::default();
    let (run_id, _) = s.run_analysis(&Actor::cli(), as_of, &config).await.unwrap();

    // The independent path: the same orders built in memory, days taken in Shanghai.
    let ids: Vec<(i64, String)> = s.db.reader().fetch_all(query("SELECT id, external_id FROM customers ORDER BY id")).await.unwrap();
    let by_ext: HashMap<String, usize> = ids.iter().enumerate().map(|(i, (_, e))| (e.clone(), i)).collect();
    let mut orders = Orders::default();
    for (c, at, cents, completed, category, promo) in &list {
        let d = patron_store::analytics::business_day(*at, chrono_tz::Asia::Shanghai);
        if *completed && d <= patron_analytics::day_number(as_of) {
            orders.customer.push(by_ext[&format!("C{c}")] as u32);
            orders.day.push(d);
            orders.amount_cents.push(*cents);
            orders.category.push(*category);
            orders.full_price.push(!promo);
        }
    }
    let mut made = vec![0u32; n];
    for (c, r) in referrals.iter().enumerate() {
        made[by_ext[&format!("C{c}")]] = *r;
    }
    let extras = CustomerExtras { referrals: Some(made), ..Default::default() };
    let expected = patron_analytics::analyze(&orders, n, patron_analytics::day_number(as_of), &extras, &config).unwrap();

    let run = s.latest_run().await.unwrap().expect("a run");
    assert_eq!(run.id, run_id);
    assert_eq!(run.as_of, Some(as_of));
    assert_eq!(run.customers, n as i64);
    let r = run.report["bgnbd"]["r"].as_f64().expect("r in the report");
    let want_r = expected.report.bgnbd.as_ref().unwrap().params.r;
    assert!((r - want_r).abs() <= 1e-9 * want_r, "{r} vs {want_r}");

    for (i, (id, _)) in ids.iter().enumerate() {
        let row: ScoreRow = s.customer_scores(*id).await.unwrap().expect("every customer has a row");
        let e = &expected;
        assert_eq!(row.run_id, run_id);
        assert_eq!(row.x, i64::from(e.summaries.x[i]));
        assert_eq!(row.t_x, i64::from(e.summaries.t_x[i]));
        assert_eq!(row.age_days, i64::from(e.summaries.age[i]));
        assert!((row.m_cents - e.summaries.m[i]).abs() < 1e-9);
        assert_eq!(row.rfm_class.as_deref(), e.scores.rfm.class[i].map(|c| c.key()));
        assert_eq!(row.abcd_tier.as_deref(), e.scores.abcd.tier[i].map(|t| t.key()));
        assert_eq!(row.lifecycle, e.scores.lifecycle.stage[i].key());
        match (row.loyalty_index, e.scores.loyalty.index[i]) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{g} vs {w}"),
            (g, w) => assert_eq!(g, w),
        }
        for (got, want) in
            [(row.p_alive, e.scores.p_alive[i]), (row.expected_purchases, e.scores.expected_purchases[i]), (row.clv_cents, e.scores.clv[i])]
        {
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}"),
                (g, w) => assert_eq!(g, w),
            }
        }
    }

    // The dashboard aggregates add up to the base; an agent with no portfolio sees nothing.
    let o = s.analytics_overview(&Actor::cli()).await.unwrap();
    assert_eq!(o.scored_customers, n as i64);
    assert_eq!(o.lifecycle.iter().map(|g| g.customers).sum::<i64>(), n as i64);
    let with_class = (0..n).filter(|&i| expected.scores.rfm.class[i].is_some()).count() as i64;
    assert_eq!(o.rfm_classes.iter().map(|g| g.customers).sum::<i64>(), with_class);
    let fitted = expected.scores.p_alive.iter().filter(|p| p.is_some()).count() as i64;
    assert_eq!(o.p_alive_histogram.iter().map(|b| b.customers).sum::<i64>(), fitted);
    assert_eq!(o.clv_histogram.iter().map(|b| b.customers).sum::<i64>(), expected.scores.clv.iter().filter(|v| v.is_some()).count() as i64);
    let revenue: i64 = o.abcd_tiers.iter().map(|g| g.revenue_cents).sum();
    assert_eq!(revenue, expected.summaries.trailing_spend_cents.iter().sum::<i64>());
    let agent = Actor::new("user:999", Role::Agent, Some(999));
    assert_eq!(s.analytics_overview(&agent).await.unwrap().scored_customers, 0);

    // A second run replaces the rows; the first run's parameters stay on record.
    let (run2, _) = s.run_analysis(&Actor::cli(), as_of, &config).await.unwrap();
    assert!(run2 > run_id);
    let (rows,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM customer_scores")).await.unwrap();
    assert_eq!(rows, n as i64);
    let (runs,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM analytics_runs")).await.unwrap();
    assert_eq!(runs, 2);
});
