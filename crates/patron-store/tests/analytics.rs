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

/// The summaries as stored, last order time as the text the database holds.
async fn summaries_text(store: &Store) -> Vec<(i64, i64, i64, i64, Option<i64>, Option<i64>, i64, Option<String>)> {
    store
        .db
        .reader()
        .fetch_all(query(
            "SELECT customer_id, order_count, spend_cents, purchase_days, first_purchase_day, last_purchase_day, \
             repeat_spend_cents, CAST(last_ordered_at AS TEXT) FROM customer_summaries ORDER BY customer_id",
        ))
        .await
        .expect("summaries")
}

test_both!(imported_orders_summarise_as_the_aggregation_does, |db: TestDb| async move {
    // An import of new orders computes the summaries of customers new to buying from the rows it
    // writes, and recomputes the others by the aggregation: both must equal a rebuild from scratch.
    let s = &db.store;
    import(s, ImportKind::Customers, "customer_id,name\nC1,甲\nC2,乙\nC3,丙\nC4,丁\nC5,戊\nC6,己\nC7,庚\nC8,辛\n".into()).await;
    // Before: C1 and C3 bought; C2 only cancelled; C4 buys through the API.
    import(
        s,
        ImportKind::Orders,
        "order_id,customer_id,ordered_at,amount,status\n\
         A1,C1,2026-01-05 10:00,10.00,\n\
         A2,C2,2026-01-06 10:00,20.00,cancelled\n\
         A3,C3,2026-01-07 10:00,30.00,\n"
            .into(),
    )
    .await;
    let api = NewOrder {
        external_id: Some("A4".into()),
        customer_external_id: Some("C4".into()),
        ordered_at: Utc.with_ymd_and_hms(2026, 1, 8, 2, 0, 0).unwrap(),
        total_cents: Some(4_000),
        status: Some("completed".into()),
        ..Default::default()
    };
    s.create_orders(&Actor::cli(), vec![api]).await.unwrap();
    // New orders for all of them: same days, days out of order (the first purchase day comes
    // last in the file), fractional seconds, a day boundary in Shanghai, every status.
    import(
        s,
        ImportKind::Orders,
        "order_id,customer_id,ordered_at,amount,status\n\
         B1,C1,2026-02-01 10:00,1.00,\n\
         B2,C2,2026-02-03 10:00,2.00,\n\
         B3,C2,2026-02-03 11:00:00.5,3.00,\n\
         B4,C2,2026-02-01 09:00,4.00,refunded\n\
         B5,C4,2026-02-02 10:00,5.00,\n\
         B6,C5,2026-03-10 10:00,6.00,\n\
         B7,C5,2026-03-01T15:59:59.999Z,7.00,\n\
         B8,C5,2026-03-01T16:00:00Z,8.00,\n\
         B9,C5,2026-03-01 12:00,9.00,\n\
         B10,C5,2026-03-10 10:00:00.25,10.00,pending\n\
         B11,C6,2026-03-02 10:00,11.00,cancelled\n\
         B12,C7,2026-04-02 10:00,12.00,\n\
         B13,C7,2026-04-01 10:00,13.00,\n\
         B14,C7,2026-04-01 10:00:00.123456,14.00,\n\
         B15,C8,2026-05-01 10:00,0.00,\n"
            .into(),
    )
    .await;
    let imported = summaries_text(s).await;
    assert_eq!(imported.len(), 7, "everyone but C6 (only a cancelled order) has a summary: {imported:?}");
    let c5 = imported.iter().find(|r| r.1 == 4 && r.3 == 3).expect("C5: 4 completed orders on 3 days");
    assert_eq!((c5.2, c5.6), (3_000, 1_400), "C5 spent 30.00, 14.00 of it after the first purchase day");
    s.rebuild_summaries().await.unwrap();
    assert_eq!(summaries_text(s).await, imported, "the import's summaries are the aggregation's");

    // A file that changes stored orders goes through the merge: the aggregation summarises all.
    import(
        s,
        ImportKind::Orders,
        "order_id,customer_id,ordered_at,amount,status\n\
         B12,C7,2026-04-02 10:00,120.00,\n\
         B11,C6,2026-03-02 10:00,11.00,\n\
         B16,C6,2026-03-03 10:00,1.50,\n"
            .into(),
    )
    .await;
    let merged = summaries_text(s).await;
    assert_eq!(merged.len(), 8);
    s.rebuild_summaries().await.unwrap();
    assert_eq!(summaries_text(s).await, merged);
});

test_both!(api_orders_keep_summaries_as_the_aggregation_does, |db: TestDb| async move {
    // A new completed order through the API is added to the stored summary (without reading the
    // customer's other orders); a changed order has the aggregation recompute. Seeded batches of
    // new and changed orders (same days, days before the first, other statuses, several orders
    // of one customer in a batch, fractional seconds): after each, the summaries must equal a
    // rebuild from scratch.
    let s = &db.store;
    import(s, ImportKind::Customers, "customer_id,name\nC1,甲\nC2,乙\nC3,丙\n".into()).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let statuses = ["completed", "completed", "completed", "completed", "cancelled", "refunded", "pending"];
    let mut owner: Vec<&str> = Vec::new();
    for batch in 0..60 {
        let mut orders = Vec::new();
        for _ in 0..rng.gen_range(1..4) {
            let (ext, customer) = if !owner.is_empty() && rng.gen_bool(0.2) {
                let k = rng.gen_range(0..owner.len());
                (format!("O{k}"), owner[k])
            } else {
                owner.push(["C1", "C2", "C3"][rng.gen_range(0..3)]);
                (format!("O{}", owner.len() - 1), owner[owner.len() - 1])
            };
            let at = base + Duration::seconds(rng.gen_range(0..8 * 86_400)) + Duration::microseconds(rng.gen_range(0..1_000_000));
            orders.push(NewOrder {
                external_id: Some(ext),
                customer_external_id: Some(customer.into()),
                ordered_at: at,
                total_cents: Some(if rng.gen_bool(0.1) { 0 } else { rng.gen_range(1..100_000) }),
                status: Some(statuses[rng.gen_range(0..statuses.len())].into()),
                ..Default::default()
            });
        }
        s.create_orders(&Actor::cli(), orders).await.unwrap();
        let kept = summaries_text(s).await;
        s.rebuild_summaries().await.unwrap();
        assert_eq!(summaries_text(s).await, kept, "after batch {batch}");
    }
    let kept = summaries_text(s).await;
    assert_eq!(kept.len(), 3, "every customer bought: {kept:?}");
    assert!(kept.iter().all(|r| r.1 > 10 && r.3 > 5), "many orders on several days each: {kept:?}");
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

    // The in-memory path: the same orders built from the generated facts (not read back from the
    // database), days taken in Shanghai, through the same models. This proves what the database
    // path reads and stores, not the models themselves (the CDNOW and lifetimes tests do that).
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
    // (The whole base's, stored by the run: the run computes it once, the dashboard reads it.)
    let (stored,): (Option<String>,) =
        s.db.reader().fetch_one(query("SELECT overview FROM analytics_runs WHERE id = $1").bind(run_id)).await.unwrap();
    assert!(stored.is_some(), "the run stores the whole base's overview");
    let o = s.analytics_overview(&Actor::cli()).await.unwrap();
    assert_eq!(o.run.as_ref().map(|r| r.id), Some(run_id));
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
    // The run computed its overview from its output in memory; counted again by the SQL over
    // the stored scores, it is the same (sums of floats up to their rounding).
    s.record_overview(run_id).await.unwrap();
    let counted = s.analytics_overview(&Actor::cli()).await.unwrap();
    assert_same_overview(&o, &counted);

    // A second run replaces the rows; the first run's parameters stay on record.
    let (run2, _) = s.run_analysis(&Actor::cli(), as_of, &config).await.unwrap();
    assert!(run2 > run_id);
    let (rows,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM customer_scores")).await.unwrap();
    assert_eq!(rows, n as i64);
    let (runs,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM analytics_runs")).await.unwrap();
    assert_eq!(runs, 2);
});

/// Adds customer GONE, who bought every day for 80 days from 2024-07-01 and never again: as of
/// mid-2026 a P(alive) of about 1e-70, below what a REAL holds.
fn add_a_long_gone_customer(customers: &mut String, orders: &mut String) {
    customers.push_str("GONE,走了的客户,\n");
    let first = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    for d in 0..80 {
        let _ = writeln!(orders, "G{d},GONE,{},88.00,completed,cat1,false", (first + Duration::days(d)).to_rfc3339());
    }
}

// A customer who bought every day for 80 days and then not for two years has a P(alive) of
// about 1e-70, below what PostgreSQL's REAL (the snapshot's column) holds: the run stored it
// there as 0 instead of failing (it failed at 1 M customers: "value out of range: underflow").
test_both!(a_vanishing_p_alive_is_stored_in_the_snapshot, |db: TestDb| async move {
    let s = &db.store;
    let (mut customers, mut orders, _, _) = random_base(120, 11);
    add_a_long_gone_customer(&mut customers, &mut orders);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let (run_id, _) = s.run_analysis(&Actor::cli(), as_of, &AnalyticsConfig::default()).await.expect("the run stores its scores");
    let (id,): (i64,) = s.db.reader().fetch_one(query("SELECT id FROM customers WHERE external_id = 'GONE'")).await.unwrap();
    let row: ScoreRow = s.customer_scores(id).await.unwrap().expect("scored");
    let p = row.p_alive.expect("a P(alive)");
    assert!(p > 0.0 && p < 1e-40, "the case needs a P(alive) below REAL's range, got {p}");
    let (snap,): (Option<f64>,) =
        s.db.reader()
            .fetch_one(
                query("SELECT CAST(p_alive AS DOUBLE PRECISION) FROM score_snapshots WHERE customer_id = $1 AND run_id = $2")
                    .bind(id)
                    .bind(run_id),
            )
            .await
            .unwrap();
    assert_eq!(snap, Some(0.0));
});

// Issue 15 §5: the run writes its snapshot from memory. Every row holds what the scores it
// stored say, narrowed as the snapshot's columns are: the codes, the lifetime value in whole
// cents, P(alive) as a REAL (0 below 1e-30), computed here from `customer_scores` in SQL.
test_both!(the_snapshot_holds_what_the_scores_say, |db: TestDb| async move {
    let s = &db.store;
    let (mut customers, mut orders, _, _) = random_base(150, 23);
    // A P(alive) below REAL's range among them.
    add_a_long_gone_customer(&mut customers, &mut orders);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let (run_id, _) = s.run_analysis(&Actor::cli(), as_of, &AnalyticsConfig::default()).await.expect("the run");
    type Row = (i64, i64, Option<i64>, Option<f64>, i64, i64, i64, i64);
    let code = |col: &str, codes: &[&str], first: usize| {
        let whens: Vec<String> = codes.iter().enumerate().map(|(i, k)| format!("WHEN '{k}' THEN {}", i + first)).collect();
        format!("CAST(CASE {col} {} ELSE 0 END AS BIGINT)", whens.join(" "))
    };
    use patron_store::history::{ABCD_CODES, CHURN_CODES, LIFECYCLE_CODES, RFM_CODES};
    let want: Vec<Row> =
        s.db.reader()
            .fetch_all(query(format!(
                "SELECT customer_id, trailing_spend_cents, CAST(ROUND(clv_cents) AS BIGINT), \
             CAST(CAST(CASE WHEN p_alive < 1e-30 THEN 0 ELSE p_alive END AS REAL) AS DOUBLE PRECISION), {}, {}, {}, {} \
             FROM customer_scores ORDER BY customer_id",
                code("abcd_tier", ABCD_CODES, 1),
                code("rfm_class", RFM_CODES, 1),
                code("lifecycle", LIFECYCLE_CODES, 1),
                code("churn", CHURN_CODES, 0),
            )))
            .await
            .unwrap();
    let got: Vec<Row> =
        s.db.reader()
            .fetch_all(
                query(
                    "SELECT customer_id, trailing_spend_cents, clv_cents, CAST(p_alive AS DOUBLE PRECISION), CAST(abcd_tier AS BIGINT), \
                 CAST(rfm_class AS BIGINT), CAST(lifecycle AS BIGINT), CAST(churn AS BIGINT) FROM score_snapshots WHERE run_id = $1 \
                 ORDER BY customer_id",
                )
                .bind(run_id),
            )
            .await
            .unwrap();
    assert_eq!(got.len(), want.len());
    assert!(want.len() >= 150);
    for (g, w) in got.iter().zip(&want) {
        // ROUND's ties differ between the engines (PostgreSQL's double rounds half to even).
        let clv_close = match (g.2, w.2) {
            (Some(a), Some(b)) => (a - b).abs() <= 1,
            (a, b) => a == b,
        };
        assert!(clv_close && (g.0, g.1, g.3, g.4, g.5, g.6, g.7) == (w.0, w.1, w.3, w.4, w.5, w.6, w.7), "{g:?} against {w:?}");
    }
    // The codes are not all alike: the run placed customers in several tiers, classes, stages.
    for col in [4usize, 5, 6] {
        let mut seen: Vec<i64> = want.iter().map(|r| [r.4, r.5, r.6][col - 4]).collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() >= 3, "column {col}: {seen:?}");
    }
    assert!(want.iter().any(|r| r.3 == Some(0.0)) && want.iter().any(|r| r.3.is_some_and(|p| p > 0.0)), "P(alive)s of both kinds");
});

test_both!(an_analysis_run_leaves_statistics_of_the_scores_it_wrote, |db: TestDb| async move {
    // PostgreSQL keeps `reltuples` at -1 until a table is analysed or vacuumed, and nothing else
    // refreshes it after a run where autovacuum is off: the planner then guessed a tier's
    // customers at a hundredth of their number (Db::refresh_after_rewrite).
    let s = &db.store;
    let (customers, orders, _, _) = random_base(90, 7);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    s.run_analysis(&Actor::cli(), as_of, &AnalyticsConfig::default()).await.expect("first run");
    s.run_analysis(&Actor::cli(), as_of, &AnalyticsConfig::default()).await.expect("second run");
    let (stored,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM customer_scores")).await.unwrap();
    assert!(stored >= 90);
    if s.db.engine() == patron_store::Engine::Postgres && s.db.layout() == patron_store::db::Layout::Single {
        let (tuples,): (f64,) =
            s.db.reader()
                .fetch_one(query("SELECT CAST(reltuples AS DOUBLE PRECISION) FROM pg_class WHERE oid = 'customer_scores'::regclass"))
                .await
                .unwrap();
        assert_eq!(tuples, stored as f64, "the statistics count the rows the last run wrote");
        let (autovacuum,): (String,) = s.db.reader().fetch_one(query("SELECT current_setting('autovacuum')")).await.unwrap();
        if autovacuum == "off" {
            // Vacuumed too: every page of the scores is all-visible (the second run's dead rows gone).
            let (pages, visible): (i64, i64) = s
                .db
                .reader()
                .fetch_one(query(
                    "SELECT CAST(relpages AS BIGINT), CAST(relallvisible AS BIGINT) FROM pg_class WHERE oid = 'customer_scores'::regclass",
                ))
                .await
                .unwrap();
            assert!(pages > 0 && visible == pages, "{visible} of {pages} pages all-visible");
        }
    }
});

// ---- Score history and migration, cohorts and trends (issue 18 §2, §3) ----

/// The models run in memory over `list` as of `as_of`, for the customers of `ids` (id order),
/// days taken in Shanghai: the independent path the stored history is checked against.
fn analyse_in_memory(list: &[OrderFact], referrals: &[u32], ids: &[(i64, String)], as_of: NaiveDate) -> patron_analytics::AnalyticsOutput {
    let by_ext: HashMap<String, usize> = ids.iter().enumerate().map(|(i, (_, e))| (e.clone(), i)).collect();
    let mut orders = Orders::default();
    for (c, at, cents, completed, category, promo) in list {
        let d = patron_store::analytics::business_day(*at, chrono_tz::Asia::Shanghai);
        if *completed && d <= patron_analytics::day_number(as_of) {
            orders.customer.push(by_ext[&format!("C{c}")] as u32);
            orders.day.push(d);
            orders.amount_cents.push(*cents);
            orders.category.push(*category);
            orders.full_price.push(!promo);
        }
    }
    let mut made = vec![0u32; ids.len()];
    for (c, r) in referrals.iter().enumerate() {
        made[by_ext[&format!("C{c}")]] = *r;
    }
    let extras = CustomerExtras { referrals: Some(made), ..Default::default() };
    patron_analytics::analyze(&orders, ids.len(), patron_analytics::day_number(as_of), &extras, &AnalyticsConfig::default()).unwrap()
}

type Cells = std::collections::BTreeMap<(Option<String>, Option<String>), (i64, i64)>;

fn cells_of(m: &patron_store::history::Migration) -> Cells {
    m.cells.iter().map(|c| ((c.from.clone(), c.to.clone()), (c.customers, c.revenue_cents))).collect()
}

test_both!(score_history_gives_the_migration_matrix_and_previous_fields, |db: TestDb| async move {
    use patron_store::history::Dimension;
    use patron_store::segments::NewSegment;
    let s = &db.store;
    let cli = Actor::cli();
    let n = 300;
    let (customers, orders_csv, list, referrals) = random_base(n, 11);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    let agent_user = s.create_user("agent@example.com", "Agent", Role::Agent, None).await.unwrap();
    // The agent's portfolio: the customers whose id is a multiple of 3.
    s.db.reader().execute(query("UPDATE customers SET owner_id = $1 WHERE id % 3 = 0").bind(agent_user.id)).await.unwrap();
    let agent = Actor::user(&agent_user);
    let new_segment = |name: &str, rule: &str| NewSegment { name: name.into(), description: None, rule: rule.into() };
    let a_to_b = s.create_segment(&cli, new_segment("A→B", r#"previous_abcd_tier = "A" and abcd_tier = "B""#)).await.unwrap();
    let tier_a = s.create_segment(&cli, new_segment("A", r#"abcd_tier = "A""#)).await.unwrap();
    let live_only = s.create_segment(&cli, new_segment("big spenders", "spend > 100")).await.unwrap();

    let (d1, d2) = (NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), NaiveDate::from_ymd_opt(2026, 6, 30).unwrap());
    let (run1, _) = s.run_analysis(&cli, d1, &AnalyticsConfig::default()).await.unwrap();
    // A customer new since the first run (no orders yet: a prospect, scored only in the second).
    import(s, ImportKind::Customers, "customer_id,name\nNEW,新客户\n".into()).await;
    let (run2, _) = s.run_analysis(&cli, d2, &AnalyticsConfig::default()).await.unwrap();

    let ids: Vec<(i64, String)> = s.db.reader().fetch_all(query("SELECT id, external_id FROM customers ORDER BY id")).await.unwrap();
    assert_eq!(ids.len(), n + 1);
    let e1 = analyse_in_memory(&list, &referrals, &ids[..n], d1);
    let e2 = analyse_in_memory(&list, &referrals, &ids, d2);

    // The runs list, newest first.
    let runs = s.analysis_runs().await.unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.id, r.customers, r.history)).collect::<Vec<_>>(),
        vec![(run2, n as i64 + 1, true), (run1, n as i64, true)]
    );
    assert_eq!(runs[0].as_of, Some(d2));

    // The matrix, counted here customer by customer from the in-memory models.
    let expected = |dim: Dimension, only: &dyn Fn(usize) -> bool| -> Cells {
        let value = |e: &patron_analytics::AnalyticsOutput, i: usize| -> String {
            let k = &e.scores;
            match dim {
                Dimension::AbcdTier => k.abcd.tier[i].map(|t| t.key()),
                Dimension::RfmClass => k.rfm.class[i].map(|c| c.key()),
                Dimension::Lifecycle => Some(k.lifecycle.stage[i].key()),
            }
            .unwrap_or("none")
            .to_owned()
        };
        let mut cells = Cells::new();
        for i in (0..=n).filter(|i| only(*i)) {
            let from = (i < n).then(|| value(&e1, i));
            let e = cells.entry((from, Some(value(&e2, i)))).or_default();
            e.0 += 1;
            e.1 += e2.summaries.trailing_spend_cents[i];
        }
        cells
    };
    for dim in [Dimension::AbcdTier, Dimension::RfmClass, Dimension::Lifecycle] {
        let m = s.migration(&cli, Some(run1), Some(run2), dim).await.unwrap();
        assert_eq!((m.from_run, m.to_run, m.dimension), (run1, run2, dim));
        assert_eq!(cells_of(&m), expected(dim, &|_| true), "{dim:?}");
    }
    let everyone = expected(Dimension::AbcdTier, &|_| true);
    assert!(everyone.keys().any(|(f, t)| f.is_some() && f != t), "the base moved between tiers: {everyone:?}");
    assert_eq!(everyone.get(&(None, Some("none".into()))).map(|c| c.0), Some(1), "the new customer: not scored, then no tier");
    // Defaults: the two latest runs, abcd_tier. Agents: their portfolio.
    let m = s.migration(&cli, None, None, Dimension::AbcdTier).await.unwrap();
    assert_eq!((m.from_run, m.to_run, cells_of(&m)), (run1, run2, everyone.clone()));
    let mine = s.migration(&agent, None, None, Dimension::AbcdTier).await.unwrap();
    let ids_ref = &ids;
    assert_eq!(cells_of(&mine), expected(Dimension::AbcdTier, &|i| i < n && ids_ref[i].0 % 3 == 0));
    // Backwards works too; unknown runs are refused on their field.
    let back = s.migration(&cli, Some(run2), Some(run1), Dimension::AbcdTier).await.unwrap();
    assert_eq!(back.cells.iter().map(|c| c.customers).sum::<i64>(), n as i64 + 1);
    for (from, to, field) in [(Some(run2 + 100), None, "from_run"), (None, Some(-5), "to_run")] {
        match s.migration(&cli, from, to, Dimension::AbcdTier).await {
            Err(patron_store::StoreError::Invalid { field: f, .. }) => assert_eq!(f.as_deref(), Some(field)),
            other => panic!("{from:?} {to:?}: {other:?}"),
        }
    }

    // "A customers who became B" is a segment: the matrix's cell, live.
    let ab = everyone.get(&(Some("A".into()), Some("B".into()))).map_or(0, |c| c.0);
    assert_eq!(s.segment_count(&cli, &a_to_b.rule).await.unwrap(), ab);
    assert_eq!(s.segment_count(&cli, "previous_lifecycle is null").await.unwrap(), 1);
    let prev_prospects = (0..n).filter(|&i| e1.scores.lifecycle.stage[i].key() == "prospect").count() as i64;
    assert_eq!(s.segment_count(&cli, r#"previous_lifecycle = "prospect""#).await.unwrap(), prev_prospects);

    // Saved segments over scores have a size at each run; the others are not measured.
    let a_count =
        |e: &patron_analytics::AnalyticsOutput| e.scores.abcd.tier.iter().filter(|t| t.map(|t| t.key()) == Some("A")).count() as i64;
    let sizes = s.segment_sizes(&tier_a.key).await.unwrap();
    assert_eq!(
        sizes.iter().map(|z| (z.run_id, z.as_of, z.customers)).collect::<Vec<_>>(),
        vec![(run1, Some(d1), a_count(&e1)), (run2, Some(d2), a_count(&e2))]
    );
    assert_eq!(s.segment_sizes(&a_to_b.key).await.unwrap().last().map(|z| z.customers), Some(ab));
    assert!(s.segment_sizes(&live_only.key).await.unwrap().is_empty());
    assert!(matches!(s.segment_sizes("424242").await, Err(patron_store::StoreError::NotFound(_))));

    // A third run after a customer left (deleted: scored in run 2, not in run 3). The matrices
    // the run stored (its own codes taken from memory, run 2's from its snapshot) are the ones
    // counted from the two snapshots.
    s.db.reader().execute(query("UPDATE customers SET deleted_at = $1 WHERE id = $2").bind(Utc::now()).bind(ids[5].0)).await.unwrap();
    let (run3, _) = s.run_analysis(&cli, d2, &AnalyticsConfig::default()).await.unwrap();
    let dims = [Dimension::AbcdTier, Dimension::RfmClass, Dimension::Lifecycle];
    let mut stored = Vec::new();
    for dim in dims {
        stored.push(cells_of(&s.migration(&cli, Some(run2), Some(run3), dim).await.unwrap()));
    }
    assert_eq!(stored[0].iter().filter(|(k, _)| k.1.is_none()).map(|(_, c)| c.0).sum::<i64>(), 1, "{:?}", stored[0]);
    s.db.reader().execute(query("DELETE FROM run_migrations WHERE to_run = $1").bind(run3)).await.unwrap();
    for (dim, stored) in dims.into_iter().zip(stored) {
        assert_eq!(cells_of(&s.migration(&cli, Some(run2), Some(run3), dim).await.unwrap()), stored, "{dim:?}");
    }
});

test_both!(score_history_keeps_the_last_n_runs, |db: TestDb| async move {
    use patron_store::history::{Dimension, HistorySettings};
    let s = &db.store;
    let cli = Actor::cli();
    let n = 40;
    let (customers, orders_csv, _, _) = random_base(n, 3);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    assert_eq!(s.history_settings().await.unwrap().runs, 24);
    for bad in [0, 1, 121] {
        match s.set_history_settings(&cli, &HistorySettings { runs: bad }).await {
            Err(patron_store::StoreError::Invalid { field, .. }) => assert_eq!(field.as_deref(), Some("runs")),
            other => panic!("{bad}: {other:?}"),
        }
    }
    s.set_history_settings(&cli, &HistorySettings { runs: 2 }).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(s.run_analysis(&cli, as_of, &AnalyticsConfig::default()).await.unwrap().0);
    }
    let kept: Vec<(i64, i64)> =
        s.db.reader().fetch_all(query("SELECT run_id, COUNT(*) FROM score_snapshots GROUP BY run_id ORDER BY run_id")).await.unwrap();
    assert_eq!(kept, vec![(runs[1], n as i64), (runs[2], n as i64)]);
    let listed: Vec<(i64, bool)> = s.analysis_runs().await.unwrap().into_iter().map(|r| (r.id, r.history)).collect();
    assert_eq!(listed, vec![(runs[2], true), (runs[1], true), (runs[0], false)]);
    match s.migration(&cli, Some(runs[0]), None, Dimension::AbcdTier).await {
        Err(patron_store::StoreError::Invalid { field, message }) => {
            assert_eq!(field.as_deref(), Some("from_run"));
            assert!(message.contains("last 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The same scores twice: everyone stays where they were.
    let m = s.migration(&cli, None, None, Dimension::Lifecycle).await.unwrap();
    assert_eq!((m.from_run, m.to_run), (runs[1], runs[2]));
    assert!(m.cells.iter().all(|c| c.from == c.to), "{:?}", m.cells);
    assert_eq!(m.cells.iter().map(|c| c.customers).sum::<i64>(), n as i64);
});

/// Each customer's (tier, class, stage) now and as the run before left them, by customer.
type Placed = Vec<(i64, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>)>;

async fn placed(s: &Store) -> Placed {
    s.db.reader()
        .fetch_all(query(
            "SELECT customer_id, abcd_tier, rfm_class, lifecycle, previous_abcd_tier, previous_rfm_class, previous_lifecycle \
             FROM customer_scores ORDER BY customer_id",
        ))
        .await
        .unwrap()
}

/// The customers whom run `run` told of a change (`customer.churned`, `customer.at_risk`).
async fn told(s: &Store, run: i64) -> Vec<(i64, String)> {
    s.db.reader()
        .fetch_all(
            query("SELECT customer_id, type FROM events WHERE subject_id = $1 AND type LIKE 'customer.%' ORDER BY customer_id, type")
                .bind(run),
        )
        .await
        .unwrap()
}

// Issue 15 §5: a run reads where everyone stood before it from the previous run's snapshot (a
// million narrow rows) rather than from the scores; a database whose scores have no snapshot
// (made before migration 0026) is read from the scores. Both give the same previous fields and
// the same "became churned / at risk" events.
test_both!(a_run_reads_the_previous_scores_from_the_snapshot_or_the_scores_alike, |db: TestDb| async move {
    let s = &db.store;
    let cli = Actor::cli();
    let n = 200;
    let (customers, orders_csv, _, _) = random_base(n, 7);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    let (d1, d2) = (NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(), NaiveDate::from_ymd_opt(2026, 9, 30).unwrap());
    let config = AnalyticsConfig::default();
    s.run_analysis(&cli, d1, &config).await.unwrap();
    let first = placed(s).await;
    let by_snapshot = s.run_analysis(&cli, d2, &config).await.unwrap().0;
    let after_snapshot = placed(s).await;
    // The same two runs again, the first of them stripped of its snapshot as an older
    // database's run is.
    let again = s.run_analysis(&cli, d1, &config).await.unwrap().0;
    assert_eq!(
        placed(s).await.iter().map(|r| (r.0, &r.1, &r.2, &r.3)).collect::<Vec<_>>(),
        first.iter().map(|r| (r.0, &r.1, &r.2, &r.3)).collect::<Vec<_>>()
    );
    s.db.reader().execute(query("DELETE FROM score_snapshots WHERE run_id = $1").bind(again)).await.unwrap();
    s.db.reader().execute(query("UPDATE analytics_runs SET snapshot_customers = NULL WHERE id = $1").bind(again)).await.unwrap();
    let by_scores = s.run_analysis(&cli, d2, &config).await.unwrap().0;
    let after_scores = placed(s).await;

    assert_eq!(after_scores, after_snapshot);
    // The previous fields are the first run's places.
    assert_eq!(
        after_snapshot.iter().map(|r| (r.0, &r.4, &r.5, &r.6)).collect::<Vec<_>>(),
        first.iter().map(|r| (r.0, &r.1, &r.2, &r.3)).collect::<Vec<_>>()
    );
    let (a, b) = (told(s, by_snapshot).await, told(s, by_scores).await);
    assert_eq!(a, b);
    assert!(a.iter().any(|e| e.1 == "customer.churned"), "eight months on, some customers churned: {a:?}");
    assert!(after_snapshot.iter().any(|r| r.1 != r.4), "the tiers moved between the runs");
});

// Issue 15 §5: on PostgreSQL a run clears the scores while its models run. A run whose models
// then fail leaves the scores, the runs and the snapshots as they were, and holds no lock on
// them: the next run goes through.
test_both!(a_run_that_fails_after_clearing_the_scores_takes_the_clearing_back, |db: TestDb| async move {
    let s = &db.store;
    let cli = Actor::cli();
    let (customers, orders_csv, _, _) = random_base(60, 9);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let first = s.run_analysis(&cli, as_of, &AnalyticsConfig::default()).await.unwrap().0;
    let scores = placed(s).await;
    assert_eq!(scores.len(), 60);
    let mut bad = AnalyticsConfig::default();
    bad.model.monthly_discount = f64::NAN;
    match s.run_analysis(&cli, as_of, &bad).await {
        Err(patron_store::StoreError::Invalid { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(placed(s).await, scores);
    assert_eq!(s.analysis_runs().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![first]);
    let snapshots: Vec<(i64, i64)> =
        s.db.reader().fetch_all(query("SELECT run_id, COUNT(*) FROM score_snapshots GROUP BY run_id")).await.unwrap();
    assert_eq!(snapshots, vec![(first, 60)]);
    let next = s.run_analysis(&cli, as_of, &AnalyticsConfig::default()).await.unwrap().0;
    assert!(next > first);
    assert_eq!(
        placed(s).await.iter().map(|r| (r.0, &r.1, &r.2, &r.3)).collect::<Vec<_>>(),
        scores.iter().map(|r| (r.0, &r.1, &r.2, &r.3)).collect::<Vec<_>>()
    );
});

/// The columns of `score_snapshots`' primary key, in key order.
async fn snapshot_key(s: &Store) -> Vec<String> {
    let sql = match s.db.engine() {
        patron_store::Engine::Sqlite => "SELECT name FROM pragma_table_info('score_snapshots') WHERE pk > 0 ORDER BY pk",
        patron_store::Engine::Postgres => {
            "SELECT CAST(a.attname AS TEXT) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'score_snapshots'::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
        }
    };
    s.db.reader().fetch_all(query(sql)).await.unwrap().into_iter().map(|(c,): (String,)| c).collect()
}

// Issue 15 §5: the snapshot is keyed by run first, so a run's rows go in at the end of the key.
// A PostgreSQL (or distributed Citus) database made before migrations 0032 and 0033, keyed by
// customer first with an index of the run, is upgraded with every row kept, and the runs after
// it work.
test_both!(snapshots_are_keyed_by_run_and_the_upgrade_rekeys_them, |db: TestDb| async move {
    use patron_store::history::Dimension;
    let s = &db.store;
    let cli = Actor::cli();
    let n = 30;
    let (customers, orders_csv, _, _) = random_base(n, 11);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let run1 = s.run_analysis(&cli, as_of, &AnalyticsConfig::default()).await.unwrap().0;
    assert_eq!(snapshot_key(s).await, ["run_id", "customer_id"]);
    if s.db.engine() == patron_store::Engine::Postgres {
        // Back to the schema before 0032 (the scores' three indexes) and 0033 (the key), and
        // both migrations forgotten. On Citus the tables stay distributed: each of the two files
        // holds several statements that Citus forwards to the workers as the query's text.
        for sql in [
            "CREATE INDEX customer_scores_tier ON customer_scores (abcd_tier)",
            "CREATE INDEX customer_scores_lifecycle ON customer_scores (lifecycle)",
            "CREATE INDEX customer_scores_next_action ON customer_scores (next_action)",
            "ALTER TABLE score_snapshots DROP CONSTRAINT score_snapshots_pkey",
            "ALTER TABLE score_snapshots ADD CONSTRAINT score_snapshots_pkey PRIMARY KEY (customer_id, run_id)",
            "CREATE INDEX score_snapshots_run ON score_snapshots (run_id)",
            "DELETE FROM _sqlx_migrations WHERE version IN (32, 33)",
        ] {
            s.db.reader().execute(query(sql)).await.unwrap();
        }
        assert_eq!(snapshot_key(s).await, ["customer_id", "run_id"]);
    }
    let rows = "SELECT customer_id, run_id, trailing_spend_cents, CAST(abcd_tier AS BIGINT), CAST(rfm_class AS BIGINT), \
                CAST(lifecycle AS BIGINT), CAST(churn AS BIGINT) FROM score_snapshots ORDER BY run_id, customer_id";
    let before: Vec<(i64, i64, i64, i64, i64, i64, i64)> = s.db.reader().fetch_all(query(rows)).await.unwrap();
    assert_eq!(before.len(), n);
    let s = Store::connect(&db.url).await.expect("the upgrade applies").with_clock(db.clock.clone());
    assert_eq!(snapshot_key(&s).await, ["run_id", "customer_id"]);
    let after: Vec<(i64, i64, i64, i64, i64, i64, i64)> = s.db.reader().fetch_all(query(rows)).await.unwrap();
    assert_eq!(after, before, "every snapshot row is kept");
    if s.db.engine() == patron_store::Engine::Postgres {
        let (run_index,): (bool,) = s.db.reader().fetch_one(query("SELECT to_regclass('score_snapshots_run') IS NOT NULL")).await.unwrap();
        assert!(!run_index, "the key serves what the run index served");
        let (score_indexes,): (i64,) =
            s.db.reader()
                .fetch_one(query(
                    "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'customer_scores' \
                 AND indexname IN ('customer_scores_tier', 'customer_scores_lifecycle', 'customer_scores_next_action')",
                ))
                .await
                .unwrap();
        assert_eq!(score_indexes, 0, "0032 ran again");
    }
    // A run after the upgrade adds its snapshot under the new key; the same run's rows twice are
    // refused by it, and the matrix between the two runs counts everyone once.
    let run2 = s.run_analysis(&cli, as_of, &AnalyticsConfig::default()).await.unwrap().0;
    let per_run: Vec<(i64, i64)> =
        s.db.reader().fetch_all(query("SELECT run_id, COUNT(*) FROM score_snapshots GROUP BY run_id ORDER BY run_id")).await.unwrap();
    assert_eq!(per_run, [(run1, n as i64), (run2, n as i64)]);
    let again =
        s.db.reader()
            .execute(
                query(
                    "INSERT INTO score_snapshots (customer_id, run_id, trailing_spend_cents, abcd_tier, rfm_class, lifecycle, churn) \
                 SELECT customer_id, run_id, 0, 1, 1, 1, 0 FROM score_snapshots WHERE run_id = $1",
                )
                .bind(run2),
            )
            .await;
    assert!(again.is_err(), "a run's snapshot row twice");
    let m = s.migration(&cli, Some(run1), Some(run2), Dimension::AbcdTier).await.unwrap();
    assert_eq!(m.cells.iter().map(|c| c.customers).sum::<i64>(), n as i64);
    assert!(m.cells.iter().all(|c| c.from == c.to), "{:?}", m.cells);
    s.db.close().await;
});

/// `(year, month)` of an instant in Shanghai.
fn ym(at: chrono::DateTime<Utc>) -> (i32, u32) {
    use chrono::Datelike;
    let d = at.with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
    (d.year(), d.month())
}

fn ym_label((y, m): (i32, u32)) -> String {
    format!("{y:04}-{m:02}")
}

fn next_ym((y, m): (i32, u32)) -> (i32, u32) {
    if m == 12 {
        (y + 1, 1)
    } else {
        (y, m + 1)
    }
}

test_both!(cohorts_and_trends_match_the_orders, |db: TestDb| async move {
    use std::collections::{BTreeMap, BTreeSet};
    let s = &db.store;
    let cli = Actor::cli();
    let n = 300;
    let (customers, orders_csv, list, _) = random_base(n, 5);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    // A deleted customer is no one's cohort.
    s.db.reader().execute(query("UPDATE customers SET deleted_at = created_at WHERE external_id = 'C0'")).await.unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();

    // Before any run: live. The range is checked first.
    for (from, to, field) in [
        (Some("2026-13"), None, "from"),
        (Some("2026-1"), None, "from"),
        (None, Some("June"), "to"),
        (Some("2026-05"), Some("2026-04"), "from"),
        (Some("1990-01"), Some("2026-04"), "to"),
    ] {
        for r in [s.cohorts(&cli, from, to).await.map(|_| ()), s.trends(&cli, from, to).await.map(|_| ())] {
            match r {
                Err(patron_store::StoreError::Invalid { field: f, .. }) => assert_eq!(f.as_deref(), Some(field), "{from:?} {to:?}"),
                other => panic!("{from:?} {to:?}: {other:?}"),
            }
        }
    }
    let before = s.cohorts(&cli, Some("2024-07"), Some("2026-06")).await.unwrap();
    assert_eq!(before.source, "live");
    let (run, _) = s.run_analysis(&cli, today, &AnalyticsConfig::default()).await.unwrap();

    // Counted here from the orders as written: (cohort, month) → customers, orders, revenue.
    let done: Vec<&OrderFact> =
        list.iter().filter(|f| f.3 && f.0 != 0 && f.1.with_timezone(&chrono_tz::Asia::Shanghai).date_naive() <= today).collect();
    let mut first: BTreeMap<usize, (i32, u32)> = BTreeMap::new();
    for f in &done {
        let m = ym(f.1);
        let e = first.entry(f.0).or_insert(m);
        *e = (*e).min(m);
    }
    // (cohort, month) → the customers active, their orders and revenue.
    type Month = (i32, u32);
    type Cell = (BTreeSet<usize>, i64, i64);
    let mut cells: BTreeMap<(Month, Month), Cell> = BTreeMap::new();
    for f in &done {
        let e = cells.entry((first[&f.0], ym(f.1))).or_default();
        e.0.insert(f.0);
        e.1 += 1;
        e.2 += f.2;
    }
    let check = |r: &patron_store::cohorts::CohortReport| {
        assert_eq!((r.from.as_str(), r.to.as_str(), r.last_month.as_str()), ("2024-07", "2026-06", "2026-06"));
        let mut c = (2024, 7);
        assert_eq!(r.cohorts.len(), 24);
        for got in &r.cohorts {
            assert_eq!(got.cohort, ym_label(c));
            let mut active = Vec::new();
            let mut revenue = Vec::new();
            let mut m = c;
            while m <= (2026, 6) {
                let cell = cells.get(&(c, m));
                active.push(cell.map_or(0, |x| x.0.len() as i64));
                revenue.push(cell.map_or(0, |x| x.2));
                m = next_ym(m);
            }
            assert_eq!(got.customers, first.values().filter(|f| **f == c).count() as i64, "{}", got.cohort);
            assert_eq!((&got.active, &got.revenue_cents), (&active, &revenue), "{}", got.cohort);
            c = next_ym(c);
        }
    };
    let precomputed = s.cohorts(&cli, Some("2024-07"), Some("2026-06")).await.unwrap();
    assert_eq!((precomputed.source.as_str(), precomputed.run_id), ("run", Some(run)));
    check(&precomputed);
    check(&before);
    // An agent's portfolio is computed live; one owning every customer sees the same.
    let agent_user = s.create_user("agent@example.com", "Agent", Role::Agent, None).await.unwrap();
    s.db.reader().execute(query("UPDATE customers SET owner_id = $1").bind(agent_user.id)).await.unwrap();
    let agent = Actor::user(&agent_user);
    let live = s.cohorts(&agent, Some("2024-07"), Some("2026-06")).await.unwrap();
    assert_eq!(live.source, "live");
    check(&live);
    // Default range: the last 12 months; later months than the last are not listed.
    let d = s.cohorts(&cli, None, None).await.unwrap();
    assert_eq!((d.from.as_str(), d.to.as_str(), d.cohorts.len()), ("2025-07", "2026-06", 12));
    assert_eq!(s.cohorts(&cli, Some("2026-05"), Some("2027-01")).await.unwrap().cohorts.len(), 2);

    // Trends: the same cells by month, and the run's churn of A and B customers.
    let (ab, churned): (i64, i64) = s
        .db
        .reader()
        .fetch_one(query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN churn <> 'none' THEN 1 ELSE 0 END), 0) FROM customer_scores WHERE abcd_tier IN ('A', 'B')",
        ))
        .await
        .unwrap();
    assert!(ab > 0);
    for actor in [&cli, &agent] {
        let t = s.trends(actor, Some("2024-07"), Some("2026-06")).await.unwrap();
        assert_eq!(t.months.len(), 24);
        let mut m = (2024, 7);
        for got in &t.months {
            assert_eq!(got.month, ym_label(m));
            let in_month: Vec<_> = cells.iter().filter(|(k, _)| k.1 == m).collect();
            let active: BTreeSet<usize> = in_month.iter().flat_map(|(_, v)| v.0.iter().copied()).collect();
            let new = first.values().filter(|f| **f == m).count() as i64;
            assert_eq!(got.new_customers, new, "{}", got.month);
            assert_eq!(got.active_customers, active.len() as i64, "{}", got.month);
            assert_eq!(got.repeat_customers, active.len() as i64 - new);
            assert_eq!(got.orders, in_month.iter().map(|(_, v)| v.1).sum::<i64>());
            assert_eq!(got.revenue_cents, in_month.iter().map(|(_, v)| v.2).sum::<i64>());
            if m == (2026, 6) {
                assert_eq!((got.run_id, got.ab_customers, got.churned_ab_customers), (Some(run), Some(ab), Some(churned)));
                assert_eq!(got.churn_rate, Some(churned as f64 / ab as f64));
            } else {
                assert_eq!((got.run_id, got.churn_rate), (None, None));
            }
            m = next_ym(m);
        }
    }
});

/// The direct SQLite reads (`db/direct.rs`: the 360, tokens, settings on patron's own
/// connections, rows decoded through serde) give exactly what the same reads through sqlx's pool
/// give, on the same file. The peer store reads through sqlx (`PATRON_SQLITE_READS=sqlx`, read
/// when a store connects; nextest runs each test in a process of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_sqlite_reads_decode_as_sqlx_does() {
    let db = patron_store::testing::test_db(patron_store::Engine::Sqlite).await;
    let s = &db.store;
    let (customers, orders_csv, _, _) = random_base(80, 11);
    import(s, ImportKind::Customers, customers).await;
    import(s, ImportKind::Orders, orders_csv).await;
    // Every kind of value a 360 holds: attributes, tags, consents, a birthday, people.
    let full = "customer_id,kind,name,mobile,email,wechat_id,city,birthday,tags,consent_sms,attr.地址\n\
E1,organisation,张记餐饮,13812345678,boss@zhangji.cn,wx_zhangji,上海,1980-08-08,辣味;大客户,yes,南京西路1号\n";
    import(s, ImportKind::Customers, full.into()).await;
    let orders = "order_id,customer_id,ordered_at,amount,category,promo\nEO1,E1,2026-03-01 12:00:00.123456,100.00,茶,true\n";
    import(s, ImportKind::Orders, orders.into()).await;
    let (e1,): (i64,) = s.db.reader().fetch_one(query("SELECT id FROM customers WHERE external_id = 'E1'")).await.unwrap();
    let person = patron_store::contacts::NewContact { name: "张老板".into(), mobile: Some("13900001111".into()), ..Default::default() };
    s.create_contact(&Actor::cli(), e1, person).await.unwrap();
    s.run_analysis(&Actor::cli(), NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), &AnalyticsConfig::default()).await.unwrap();
    let (_, secret) = s.create_token("direct", Role::Manager, None).await.unwrap();

    std::env::set_var("PATRON_SQLITE_READS", "sqlx");
    let peer = Store::connect(&db.url).await.unwrap();
    std::env::remove_var("PATRON_SQLITE_READS");
    assert!(matches!(s.db.read_conn().await.unwrap(), patron_store::db::ReadConn::Direct(_)));
    assert!(matches!(peer.db.read_conn().await.unwrap(), patron_store::db::ReadConn::Sqlite(_)));

    let ids: Vec<(i64,)> = s.db.reader().fetch_all(query("SELECT id FROM customers ORDER BY id")).await.unwrap();
    assert_eq!(ids.len(), 81);
    for (id,) in ids {
        let (a, b) = (s.customer_360(id, 10).await.unwrap(), peer.customer_360(id, 10).await.unwrap());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "customer {id}");
        assert!(a.scores.is_some(), "customer {id} was scored");
    }
    let a = s.customer_360(e1, 10).await.unwrap();
    assert_eq!((a.customer.tags.len(), a.customer.consents.len(), a.contacts.len()), (2, 1, 1));
    assert_eq!(a.customer.attributes["地址"], "南京西路1号");
    assert_eq!(a.recent_orders[0].lines.len(), 1);
    assert!(matches!(s.customer_360(i64::MAX, 10).await, Err(patron_store::StoreError::NotFound(_))));
    let (a, b) = (s.token_actor(&secret).await.unwrap(), peer.token_actor(&secret).await.unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(a.is_some());
    assert_eq!(s.masking_settings().await.unwrap(), peer.masking_settings().await.unwrap());

    // The reads of one checkout see one snapshot (a 360's parts agree with each other): a
    // customer created meanwhile shows in the next checkout, not in the open one.
    let count = "SELECT COUNT(*) FROM customers";
    let mut open = s.db.read_conn().await.unwrap();
    let (before,): (i64,) = open.fetch_one(query(count)).await.unwrap();
    let created = patron_store::customers::NewCustomer { name: "快照之后".into(), ..Default::default() };
    s.create_customer(&Actor::cli(), created).await.unwrap();
    let (still,): (i64,) = open.fetch_one(query(count)).await.unwrap();
    assert_eq!(still, before, "the open checkout keeps its snapshot");
    drop(open);
    let (after,): (i64,) = s.db.read_conn().await.unwrap().fetch_one(query(count)).await.unwrap();
    assert_eq!(after, before + 1, "the next checkout sees the new customer");
}

/// Two overviews of the same scores agree: counts and money exactly, means and sums of floats
/// to 1e-9 relative (the order of summation differs between SQL and memory).
fn assert_same_overview(a: &patron_store::analytics::Overview, b: &patron_store::analytics::Overview) {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        (x, y) => x == y,
    };
    assert_eq!(a.scored_customers, b.scored_customers);
    for (x, y) in [(&a.rfm_classes, &b.rfm_classes), (&a.abcd_tiers, &b.abcd_tiers), (&a.lifecycle, &b.lifecycle)] {
        let keys =
            |g: &[patron_store::analytics::GroupStat]| g.iter().map(|g| (g.key.clone(), g.customers, g.revenue_cents)).collect::<Vec<_>>();
        assert_eq!(keys(x), keys(y));
        for (g, h) in x.iter().zip(y.iter()) {
            assert!(close(g.mean_p_alive, h.mean_p_alive) && close(g.clv_cents, h.clv_cents), "{g:?} vs {h:?}");
        }
    }
    for (x, y) in [(&a.churn_by_tier, &b.churn_by_tier), (&a.churn_by_rfm_class, &b.churn_by_rfm_class)] {
        let rows = |g: &[patron_store::analytics::ChurnStat]| {
            g.iter().map(|g| (g.key.clone(), g.customers, g.absolute, g.relative)).collect::<Vec<_>>()
        };
        assert_eq!(rows(x), rows(y));
    }
    for (x, y) in [(&a.p_alive_histogram, &b.p_alive_histogram), (&a.clv_histogram, &b.clv_histogram)] {
        let rows = |h: &[patron_store::analytics::Bucket]| h.iter().map(|b| (b.lower, b.upper, b.customers)).collect::<Vec<_>>();
        assert_eq!(rows(x), rows(y));
    }
}
