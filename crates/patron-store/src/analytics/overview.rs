//! The analytics dashboard's aggregates (issue 15 §4): counts, revenue and means by RFM class,
//! ABCD tier and lifecycle stage, churn by tier and class, and the P(alive) and CLV histograms.
//! The whole base's are computed by each analysis run from the scores it has just computed, in
//! memory (counting them back from the million rows it wrote took the run 6–7 s), and stored
//! with the run; a narrower scope (an agent's portfolio, a unit) is counted in SQL when asked.

use patron_analytics::AnalyticsOutput;

use super::{churn_key, Bucket, ChurnStat, GroupStat, Overview};
use crate::db::query;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The bucket of a P(alive) in the ten of the histogram (as the SQL counts it).
fn p_alive_bucket(p: f64) -> i64 {
    if p >= 1.0 {
        9
    } else if p < 0.0 {
        0
    } else {
        (p * 10.0).floor() as i64
    }
}

/// The CLV histogram's buckets (width in yuan, count) for the CLVs (cents) of the customers
/// fitted, `sorted` ascending: up to the 99th percentile, the tail in the last bucket.
fn clv_buckets(sorted: &[f64]) -> Option<(f64, i64)> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let offset = (((n as f64) * 0.99).floor() as usize).min(n - 1);
    Some(clv_scale(sorted[offset]))
}

/// The CLV histogram's bucket width (yuan) and count for a 99th percentile of `p99_cents`: about
/// 20 round buckets up to it (at least 1 yuan, at most 40 buckets). Both counts use it.
fn clv_scale(p99_cents: f64) -> (f64, i64) {
    let top = (p99_cents / 100.0).max(1.0);
    let width = nice_width(top / 20.0);
    (width, ((top / width).ceil() as i64).clamp(1, 40))
}

/// The bucket of a CLV (cents) among `buckets` of `width` yuan (as the SQL counts it).
fn clv_bucket(clv_cents: f64, width: f64, buckets: i64) -> i64 {
    let last = buckets - 1;
    let x = clv_cents / 100.0 / width;
    if x >= last as f64 {
        last
    } else if clv_cents < 0.0 {
        0
    } else {
        x.floor() as i64
    }
}

/// The whole base's overview of a run, from its output (every customer of the run is live and
/// scored): what [`Store::record_overview`] counts from the stored scores, up to the rounding
/// of sums of floats (means of P(alive), sums of CLV).
pub(crate) fn overview_of(output: &AnalyticsOutput) -> Overview {
    let k = &output.scores;
    let s = &output.summaries;
    let n = s.len();
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    #[derive(Default)]
    struct Acc {
        customers: i64,
        revenue: i128,
        p_sum: f64,
        p_n: i64,
        clv: Option<f64>,
    }
    #[derive(Default)]
    struct ChurnAcc {
        customers: i64,
        absolute: i64,
        relative: i64,
    }
    let mut by_class: std::collections::BTreeMap<&str, Acc> = Default::default();
    let mut by_tier: std::collections::BTreeMap<&str, Acc> = Default::default();
    let mut by_stage: std::collections::BTreeMap<&str, Acc> = Default::default();
    let mut churn_tier: std::collections::BTreeMap<&str, ChurnAcc> = Default::default();
    let mut churn_class: std::collections::BTreeMap<&str, ChurnAcc> = Default::default();
    let mut p_hist = [0i64; 10];
    let mut clvs: Vec<f64> = Vec::new();
    for c in 0..n {
        let class = k.rfm.class[c].map(|v| v.key());
        let tier = k.abcd.tier[c].map(|v| v.key());
        let stage = k.lifecycle.stage[c].key();
        let p = finite(k.p_alive[c]);
        let clv = finite(k.clv[c]);
        for (map, key) in [(&mut by_class, class), (&mut by_tier, tier), (&mut by_stage, Some(stage))] {
            // Customers without a class or tier are counted apart (and not shown).
            let a = map.entry(key.unwrap_or("")).or_default();
            a.customers += 1;
            a.revenue += i128::from(s.trailing_spend_cents[c]);
            if let Some(p) = p {
                a.p_sum += p;
                a.p_n += 1;
            }
            if let Some(v) = clv {
                *a.clv.get_or_insert(0.0) += v;
            }
        }
        if s.purchase_days[c] > 0 {
            let churn = churn_key(output, c);
            for (map, key) in [(&mut churn_tier, tier), (&mut churn_class, class)] {
                let a = map.entry(key.unwrap_or("")).or_default();
                a.customers += 1;
                a.absolute += i64::from(churn == "absolute");
                a.relative += i64::from(churn == "relative");
            }
        }
        if let Some(p) = p {
            p_hist[p_alive_bucket(p) as usize] += 1;
        }
        if let Some(v) = clv {
            clvs.push(v);
        }
    }
    let groups = |map: std::collections::BTreeMap<&str, Acc>, keep_none: bool| -> Vec<GroupStat> {
        map.into_iter()
            .filter(|(key, _)| keep_none || !key.is_empty())
            .map(|(key, a)| GroupStat {
                key: key.to_owned(),
                customers: a.customers,
                revenue_cents: a.revenue.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                mean_p_alive: (a.p_n > 0).then(|| a.p_sum / a.p_n as f64),
                clv_cents: a.clv,
            })
            .collect()
    };
    let churns = |map: std::collections::BTreeMap<&str, ChurnAcc>| -> Vec<ChurnStat> {
        map.into_iter()
            .filter(|(key, _)| !key.is_empty())
            .map(|(key, a)| ChurnStat { key: key.to_owned(), customers: a.customers, absolute: a.absolute, relative: a.relative })
            .collect()
    };
    clvs.sort_unstable_by(f64::total_cmp);
    let clv_histogram = match clv_buckets(&clvs) {
        None => Vec::new(),
        Some((width, buckets)) => {
            let mut counts = vec![0i64; buckets as usize];
            for v in &clvs {
                counts[clv_bucket(*v, width, buckets) as usize] += 1;
            }
            counts
                .into_iter()
                .enumerate()
                .map(|(b, customers)| Bucket { lower: b as f64 * width, upper: (b + 1) as f64 * width, customers })
                .collect()
        }
    };
    Overview {
        run: None,
        scored_customers: n as i64,
        rfm_classes: groups(by_class, false),
        abcd_tiers: groups(by_tier, false),
        lifecycle: groups(by_stage, true),
        churn_by_tier: churns(churn_tier),
        churn_by_rfm_class: churns(churn_class),
        p_alive_histogram: (0..10)
            .map(|b| Bucket { lower: f64::from(b) / 10.0, upper: f64::from(b + 1) / 10.0, customers: p_hist[b as usize] })
            .collect(),
        clv_histogram,
    }
}

impl Store {
    /// The dashboard aggregates for what `actor` may see: for the whole base, those the latest
    /// run stored (as of that run: a customer erased since is counted until the next run); for
    /// a narrower scope (an agent's portfolio, a unit), computed now over that scope.
    pub async fn analytics_overview(&self, actor: &Actor) -> Result<Overview> {
        let run = self.latest_run().await?;
        let scope = crate::access::CustomerScope::of(actor);
        if let (crate::access::CustomerScope::All, Some(latest)) = (scope, &run) {
            let stored: Option<(Option<String>,)> =
                self.db.reader().fetch_optional(query("SELECT overview FROM analytics_runs WHERE id = $1").bind(latest.id)).await?;
            if let Some((Some(text),)) = stored {
                let o: Overview = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Internal(format!("stored overview of run {} unreadable: {e}", latest.id)))?;
                return Ok(Overview { run, ..o });
            }
        }
        let o = self.overview_now(scope).await?;
        Ok(Overview { run, ..o })
    }

    /// Computes the whole base's dashboard aggregates and stores them with run `run_id` (each
    /// run does, after writing its scores; calling it again refreshes them).
    pub async fn record_overview(&self, run_id: i64) -> Result<()> {
        let o = self.overview_now(crate::access::CustomerScope::All).await?;
        self.store_overview(run_id, &o).await
    }

    /// Stores `o` as run `run_id`'s whole-base overview.
    pub(crate) async fn store_overview(&self, run_id: i64, o: &Overview) -> Result<()> {
        let text = serde_json::to_string(o).map_err(|e| StoreError::Internal(format!("overview not serialisable: {e}")))?;
        let mut tx = self.db.begin().await?;
        tx.execute(query("UPDATE analytics_runs SET overview = $1 WHERE id = $2").bind(text).bind(run_id)).await?;
        tx.commit().await
    }

    /// The dashboard aggregates over `scope`'s live customers, computed now (`run` left empty).
    async fn overview_now(&self, scope: crate::access::CustomerScope) -> Result<Overview> {
        // The caller's scope (crate::access): customers outside it are not counted.
        let from = format!("customer_scores k JOIN customers c ON c.id = k.customer_id AND c.deleted_at IS NULL AND {}", scope.sql("c"));
        let from = from.as_str();
        let owner: Option<i64> = None;
        let with_owner = query;
        let group = |col: &str| {
            format!(
                "SELECT COALESCE({col}, '') AS key, COUNT(*) AS customers, {revenue} AS revenue_cents, \
                 AVG(k.p_alive) AS mean_p_alive, SUM(k.clv_cents) AS clv_cents FROM {from} GROUP BY COALESCE({col}, '') ORDER BY 1",
                revenue = self.db.engine().clamp_bigint(&self.db.engine().sum_wide("k.trailing_spend_cents"))
            )
        };
        let churn = |col: &str| {
            format!(
                "SELECT COALESCE({col}, '') AS key, COUNT(*) AS customers, \
                 CAST(SUM(CASE WHEN k.churn = 'absolute' THEN 1 ELSE 0 END) AS BIGINT) AS absolute, \
                 CAST(SUM(CASE WHEN k.churn = 'relative' THEN 1 ELSE 0 END) AS BIGINT) AS relative \
                 FROM {from} WHERE k.purchase_days > 0 GROUP BY COALESCE({col}, '') ORDER BY 1"
            )
        };
        let mut r = self.db.reader();
        let rfm_classes: Vec<GroupStat> = r.fetch_all(with_owner(group("k.rfm_class"))).await?;
        let abcd_tiers: Vec<GroupStat> = r.fetch_all(with_owner(group("k.abcd_tier"))).await?;
        let lifecycle: Vec<GroupStat> = r.fetch_all(with_owner(group("k.lifecycle"))).await?;
        let churn_by_tier: Vec<ChurnStat> = r.fetch_all(with_owner(churn("k.abcd_tier"))).await?;
        let churn_by_rfm_class: Vec<ChurnStat> = r.fetch_all(with_owner(churn("k.rfm_class"))).await?;
        let (scored_customers,): (i64,) = r.fetch_one(with_owner(format!("SELECT COUNT(*) FROM {from}"))).await?;
        let p_rows: Vec<(i64, i64)> = r
            .fetch_all(with_owner(format!(
                "SELECT {} AS b, COUNT(*) FROM {from} WHERE k.p_alive IS NOT NULL GROUP BY 1 ORDER BY 1",
                self.db.engine().floor_int("CASE WHEN k.p_alive >= 1.0 THEN 9 WHEN k.p_alive < 0 THEN 0 ELSE k.p_alive * 10 END")
            )))
            .await?;
        let p_alive_histogram = (0..10)
            .map(|b| Bucket {
                lower: f64::from(b) / 10.0,
                upper: f64::from(b + 1) / 10.0,
                customers: p_rows.iter().filter(|r| r.0 == i64::from(b)).map(|r| r.1).sum(),
            })
            .collect();
        let clv_histogram = self.clv_histogram(from, owner).await?;
        // By key as bytes on every engine (PostgreSQL's ORDER BY follows the collation), as
        // overview_of orders them.
        let groups = |mut g: Vec<GroupStat>, keep_none: bool| {
            g.retain(|g| keep_none || !g.key.is_empty());
            g.sort_by(|a, b| a.key.cmp(&b.key));
            g
        };
        let churns = |mut g: Vec<ChurnStat>| {
            g.retain(|g| !g.key.is_empty());
            g.sort_by(|a, b| a.key.cmp(&b.key));
            g
        };
        let (rfm_classes, abcd_tiers, lifecycle) = (groups(rfm_classes, false), groups(abcd_tiers, false), groups(lifecycle, true));
        let (churn_by_tier, churn_by_rfm_class) = (churns(churn_by_tier), churns(churn_by_rfm_class));
        Ok(Overview {
            run: None,
            scored_customers,
            rfm_classes,
            abcd_tiers,
            lifecycle,
            churn_by_tier,
            churn_by_rfm_class,
            p_alive_histogram,
            clv_histogram,
        })
    }

    /// CLV histogram in yuan: 20 equal buckets from 0 to the 99th percentile (the long tail
    /// above it goes in the last bucket, so one whale does not flatten the chart).
    async fn clv_histogram(&self, from: &str, owner: Option<i64>) -> Result<Vec<Bucket>> {
        let bind = |q: crate::db::Query| match owner {
            Some(o) => q.bind(o),
            None => q,
        };
        let mut r = self.db.reader();
        let (n,): (i64,) = r.fetch_one(bind(query(format!("SELECT COUNT(*) FROM {from} WHERE k.clv_cents IS NOT NULL")))).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let offset = ((n as f64) * 0.99).floor() as i64;
        let offset = offset.min(n - 1);
        let p = match owner {
            Some(_) => "$2",
            None => "$1",
        };
        let (p99,): (f64,) = r
            .fetch_one(
                bind(query(format!(
                    "SELECT k.clv_cents FROM {from} WHERE k.clv_cents IS NOT NULL ORDER BY k.clv_cents LIMIT 1 OFFSET {p}"
                )))
                .bind(offset),
            )
            .await?;
        let (width, buckets) = clv_scale(p99);
        let rows: Vec<(i64, i64)> = r
            .fetch_all(
                bind(query(format!(
                    "SELECT {b} AS b, COUNT(*) FROM {from} WHERE k.clv_cents IS NOT NULL GROUP BY 1 ORDER BY 1",
                    b = self.db.engine().floor_int(&format!(
                        "CASE WHEN k.clv_cents / 100.0 / {p} >= {last} THEN {last} WHEN k.clv_cents < 0 THEN 0 ELSE k.clv_cents / 100.0 / {p} END",
                        last = buckets - 1
                    ))
                )))
                .bind(width),
            )
            .await?;
        Ok((0..buckets)
            .map(|b| Bucket {
                lower: b as f64 * width,
                upper: (b + 1) as f64 * width,
                customers: rows.iter().filter(|r| r.0 == b).map(|r| r.1).sum(),
            })
            .collect())
    }
}

/// A round bucket width (1, 2 or 5 × 10ⁿ) at or above `raw`.
fn nice_width(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|w| *w >= raw).unwrap_or(10.0 * mag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_widths() {
        assert_eq!(nice_width(3.2), 5.0);
        assert_eq!(nice_width(0.07), 0.1);
        assert_eq!(nice_width(120.0), 200.0);
        assert_eq!(nice_width(f64::NAN), 1.0);
    }

    #[test]
    fn buckets_as_the_sql_counts_them() {
        assert_eq!(p_alive_bucket(1.0), 9);
        assert_eq!(p_alive_bucket(0.999), 9);
        assert_eq!(p_alive_bucket(0.1), 1);
        assert_eq!(p_alive_bucket(-0.5), 0);
        // 101 CLVs of 0..=100 yuan: the 99th percentile is 99 yuan, buckets of 5 yuan.
        let clvs: Vec<f64> = (0..=100).map(|y| f64::from(y) * 100.0).collect();
        assert_eq!(clv_buckets(&clvs), Some((5.0, 20)));
        assert_eq!(clv_bucket(10_000.0, 5.0, 20), 19, "the tail goes in the last bucket");
        assert_eq!(clv_bucket(-300.0, 5.0, 20), 0);
        assert_eq!(clv_bucket(1_250.0, 5.0, 20), 2);
        assert_eq!(clv_buckets(&[]), None);
    }
}
