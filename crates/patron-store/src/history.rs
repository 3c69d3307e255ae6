//! Score history (issue 18 §2): a compact snapshot of every customer's scores for the last N
//! analysis runs, the runs list, the migration matrix between two runs (how many of one run's A
//! customers are B customers in another), and each saved segment's size at each run.
//!
//! The snapshot is written by the analysis run in its own transaction from the scores it holds in
//! memory, the same values it has just written to `customer_scores` (the binary COPY on
//! PostgreSQL and Citus, prepared inserts on SQLite); the run then deletes the snapshots older
//! than the last N runs (setting [`HistorySettings::runs`]). Tier, class, stage and churn are
//! stored as small codes ([`ABCD_CODES`] …) so that a row stays about 40 bytes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use patron_analytics::AnalyticsOutput;

use crate::analytics::day_date;
use crate::db::{query, Arg, ColType, Stage, Tx};
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The settings key of [`HistorySettings`].
pub const HISTORY: &str = "analytics_history";

/// How much score history the analysis runs keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Runs whose per-customer snapshot is kept (2–120, default 24); each run deletes older ones.
    #[schema(minimum = 2, maximum = 120)]
    pub runs: u32,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings { runs: 24 }
    }
}

impl HistorySettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if !(2..=120).contains(&self.runs) {
            return Err(StoreError::invalid("runs", "keep the snapshots of 2 to 120 runs"));
        }
        Ok(())
    }
}

/// ABCD tiers by code (code = position + 1; 0 = scored without a tier). Never reorder: stored.
pub const ABCD_CODES: &[&str] = &["A", "B", "C", "D"];
/// RFM value classes by code (position + 1; 0 = scored without a class). Never reorder: stored.
pub const RFM_CODES: &[&str] = &[
    "important_value",
    "important_retain",
    "important_develop",
    "important_win_back",
    "general_value",
    "general_retain",
    "general_develop",
    "general_win_back",
];
/// Lifecycle stages by code (position + 1). Never reorder: stored.
pub const LIFECYCLE_CODES: &[&str] = &["prospect", "new", "active", "loyal", "at_risk", "churned", "won_back"];
/// Churn statuses by code (code = position). Never reorder: stored.
pub const CHURN_CODES: &[&str] = &["none", "relative", "absolute"];

/// `CASE col WHEN 'key' THEN code … ELSE 0 END` for codes counted from `first`.
pub(crate) fn code_case(col: &str, codes: &[&str], first: usize) -> String {
    let whens: Vec<String> = codes.iter().enumerate().map(|(i, k)| format!("WHEN '{k}' THEN {}", i + first)).collect();
    // BIGINT on both engines, so that it reads back as an i64 (PostgreSQL's literals are int4).
    format!("CAST(CASE {col} {} ELSE 0 END AS BIGINT)", whens.join(" "))
}

/// The key of a code counted from 1 (`None` for 0 or an unknown code).
pub(crate) fn key_of(codes: &[&'static str], code: i64) -> Option<&'static str> {
    usize::try_from(code).ok().and_then(|c| c.checked_sub(1)).and_then(|i| codes.get(i).copied())
}

/// What the migration matrix groups customers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// ABCD value tier.
    AbcdTier,
    /// RFM value class.
    RfmClass,
    /// Lifecycle stage.
    Lifecycle,
}

impl Dimension {
    /// The dimension named `s` (`abcd_tier`, `rfm_class`, `lifecycle`).
    pub fn parse(s: &str) -> Option<Dimension> {
        match s {
            "abcd_tier" => Some(Dimension::AbcdTier),
            "rfm_class" => Some(Dimension::RfmClass),
            "lifecycle" => Some(Dimension::Lifecycle),
            _ => None,
        }
    }
    /// Its name.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::AbcdTier => "abcd_tier",
            Dimension::RfmClass => "rfm_class",
            Dimension::Lifecycle => "lifecycle",
        }
    }
    fn codes(self) -> &'static [&'static str] {
        match self {
            Dimension::AbcdTier => ABCD_CODES,
            Dimension::RfmClass => RFM_CODES,
            Dimension::Lifecycle => LIFECYCLE_CODES,
        }
    }
    /// The value of a snapshot code: the key, or `none` for a customer scored without one.
    fn value(self, code: i64) -> String {
        key_of(self.codes(), code).unwrap_or("none").to_owned()
    }
}

/// An analysis run as the runs list shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunInfo {
    /// Run id.
    pub id: i64,
    /// As-of date.
    pub as_of: Option<NaiveDate>,
    /// When the run was stored.
    pub created_at: DateTime<Utc>,
    /// Customers scored.
    pub customers: i64,
    /// Whether the run's per-customer snapshot is kept (migration matrices need it).
    pub history: bool,
}

/// One cell of the migration matrix.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MigrationCell {
    /// The value in `from_run` (`none`: scored without one; null: not scored in that run).
    pub from: Option<String>,
    /// The value in `to_run` (likewise).
    pub to: Option<String>,
    /// Customers.
    pub customers: i64,
    /// Their trailing 12 months' spend as of `to_run` (cents; 0 for those not scored in it).
    pub revenue_cents: i64,
}

/// How customers moved between the values of a dimension from one run to another.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Migration {
    /// The earlier run (as asked; any order works).
    pub from_run: i64,
    /// The later run.
    pub to_run: i64,
    /// `abcd_tier`, `rfm_class` or `lifecycle`.
    pub dimension: Dimension,
    /// Non-empty cells, by `from` then `to` (not scored first, then the values in their order).
    pub cells: Vec<MigrationCell>,
}

/// A saved segment's size at one run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentSize {
    /// The run.
    pub run_id: i64,
    /// Its as-of date.
    pub as_of: Option<NaiveDate>,
    /// Customers matching the rule after the run.
    pub customers: i64,
}

/// Marks the runs beyond the last `keep` (counting run `run_id`, just inserted with its snapshot
/// count) as having no snapshot any more; returns the oldest run kept. Called before the run
/// writes customer rows: on Citus a reference table that distributed tables refer to cannot be
/// changed after a parallel write to them in the same transaction.
pub(crate) async fn retire_snapshots(tx: &mut Tx, keep: u32) -> Result<Option<i64>> {
    let cutoff: Option<(i64,)> = tx
        .fetch_optional(
            query("SELECT id FROM analytics_runs WHERE snapshot_customers IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET $1")
                .bind(i64::from(keep.max(1)) - 1),
        )
        .await?;
    if let Some((cutoff,)) = cutoff {
        tx.execute(
            query("UPDATE analytics_runs SET snapshot_customers = NULL WHERE id < $1 AND snapshot_customers IS NOT NULL").bind(cutoff),
        )
        .await?;
    }
    Ok(cutoff.map(|c| c.0))
}

/// The snapshot's table, written by the run from the scores it holds in memory (the binary
/// COPY on PostgreSQL, prepared inserts on SQLite).
static SNAPSHOT_TABLE: Stage = Stage {
    name: "score_snapshots",
    columns: &[
        ("customer_id", ColType::Int),
        ("run_id", ColType::Int),
        ("trailing_spend_cents", ColType::Int),
        ("clv_cents", ColType::Int),
        ("p_alive", ColType::Real),
        ("abcd_tier", ColType::SmallInt),
        ("rfm_class", ColType::SmallInt),
        ("lifecycle", ColType::SmallInt),
        ("churn", ColType::SmallInt),
    ],
};

/// One customer's snapshot row: the values the run stores in `customer_scores`, narrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotRow<'a> {
    /// The customer.
    pub customer_id: i64,
    /// Spend over the trailing window.
    pub trailing_spend_cents: i64,
    /// Lifetime value (as stored in the scores: finite or none).
    pub clv_cents: Option<f64>,
    /// P(alive) (finite or none).
    pub p_alive: Option<f64>,
    /// Keys as stored in the scores.
    pub abcd_tier: Option<&'a str>,
    /// RFM class key.
    pub rfm_class: Option<&'a str>,
    /// Lifecycle stage key.
    pub lifecycle: &'a str,
    /// Churn status key.
    pub churn: &'a str,
}

impl SnapshotRow<'_> {
    /// The row's values in [`SNAPSHOT_TABLE`]'s columns for run `run_id`.
    fn args(&self, run_id: i64) -> Vec<Arg> {
        const LIMIT: f64 = 9.0e18;
        let clv = self.clv_cents.map(|v| {
            if v >= LIMIT {
                LIMIT as i64
            } else if v <= -LIMIT {
                -LIMIT as i64
            } else {
                v.round() as i64
            }
        });
        vec![
            Arg::I64(Some(self.customer_id)),
            Arg::I64(Some(run_id)),
            Arg::I64(Some(self.trailing_spend_cents)),
            Arg::I64(clv),
            // PostgreSQL keeps the snapshot's P(alive) as REAL, which cannot hold a long-gone
            // customer's 1e-60 (an underflow there): such a value is stored as 0.
            Arg::F64(self.p_alive.map(|p| if p < 1e-30 { 0.0 } else { p })),
            Arg::I64(Some(code_of(ABCD_CODES, self.abcd_tier, 1))),
            Arg::I64(Some(code_of(RFM_CODES, self.rfm_class, 1))),
            Arg::I64(Some(code_of(LIFECYCLE_CODES, Some(self.lifecycle), 1))),
            Arg::I64(Some(code_of(CHURN_CODES, Some(self.churn), 0))),
        ]
    }
}

/// Writes the snapshot of run `run_id`, `n` rows that `row(i)` gives, and deletes the snapshots
/// of runs before `cutoff`.
///
/// From memory rather than by `INSERT … SELECT` from the scores just written: at 1 M customers
/// PostgreSQL read the million wide rows back and matched each code's text (3.7–4.4 s on a
/// slow VM), where the COPY of the narrow rows took 1.7–2.0 s in the same rounds. SQLite took
/// about as long either way (0.9–1.6 s), so both engines take the one path.
pub(crate) async fn write_snapshot<'a>(
    tx: &mut Tx,
    run_id: i64,
    n: usize,
    row: impl Fn(usize) -> SnapshotRow<'a> + Send + Sync,
    cutoff: Option<i64>,
) -> Result<()> {
    const CHUNK: usize = 20_000;
    let mut starts = (0..n).step_by(CHUNK);
    SNAPSHOT_TABLE
        .fill_chunks(tx, || {
            let start = starts.next()?;
            Some((start..(start + CHUNK).min(n)).map(|i| row(i).args(run_id)).collect())
        })
        .await?;
    if let Some(cutoff) = cutoff {
        tx.execute(query("DELETE FROM score_snapshots WHERE run_id < $1").bind(cutoff)).await?;
    }
    Ok(())
}

/// A customer's values in the scores before a run: churn, lifecycle, tier, class codes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Before {
    pub churn: u8,
    pub lifecycle: u8,
    pub abcd_tier: u8,
    pub rfm_class: u8,
}

/// Reads every customer's current (soon previous) codes, compactly: from the snapshot of the
/// run whose rows `customer_scores` holds when that run kept one (a million narrow rows by their
/// key's first column, the codes already made), else from `customer_scores` itself (a database
/// whose scores predate the snapshots, migration 0026). The two agree for every live customer:
/// the snapshot is written from those very rows in the run's transaction, and the only changes
/// to the scores between runs delete the rows of customers erased or merged away, who are no
/// longer live and so not looked up.
pub(crate) async fn read_before(tx: &mut Tx) -> Result<Standing> {
    // Every row names the same run: each run rewrites them all.
    let scored: Option<(i64,)> = tx.fetch_optional(query("SELECT run_id FROM customer_scores LIMIT 1")).await?;
    let snapshot: Option<(i64,)> = match scored {
        Some((run_id,)) => {
            tx.fetch_optional(query("SELECT id FROM analytics_runs WHERE id = $1 AND snapshot_customers IS NOT NULL").bind(run_id)).await?
        }
        None => None,
    };
    let rows: Vec<(i64, i64, i64, i64, i64)> = match snapshot {
        Some((run_id,)) => {
            tx.scan_all(
                query(
                    "SELECT customer_id, CAST(churn AS BIGINT), CAST(lifecycle AS BIGINT), CAST(abcd_tier AS BIGINT), \
                     CAST(rfm_class AS BIGINT) FROM score_snapshots WHERE run_id = $1",
                )
                .bind(run_id),
            )
            .await?
        }
        None => {
            tx.scan_all(query(format!(
                "SELECT customer_id, {}, {}, {}, {} FROM customer_scores",
                code_case("churn", CHURN_CODES, 0),
                code_case("lifecycle", LIFECYCLE_CODES, 1),
                code_case("abcd_tier", ABCD_CODES, 1),
                code_case("rfm_class", RFM_CODES, 1),
            )))
            .await?
        }
    };
    let byte = |v: i64| u8::try_from(v).unwrap_or(0);
    Ok(Standing {
        snapshot_run: snapshot.map(|(run_id,)| run_id),
        codes: rows
            .into_iter()
            .map(|(id, ch, l, t, r)| (id, Before { churn: byte(ch), lifecycle: byte(l), abcd_tier: byte(t), rfm_class: byte(r) }))
            .collect(),
    })
}

/// Where everyone stood before a run ([`read_before`]): each customer's codes, and the run whose
/// snapshot they were read from (`None`: read from the scores themselves).
#[derive(Debug, Default)]
pub(crate) struct Standing {
    pub snapshot_run: Option<i64>,
    pub codes: HashMap<i64, Before>,
}

impl Standing {
    /// The snapshot rows of run `run_id` as [`migration_cells`] takes them (customer, tier,
    /// class and stage codes, by customer), when these codes are that snapshot: read at the
    /// start of the run's save, they need not be read again.
    fn snapshot_rows(&self, run_id: i64) -> Option<Vec<(i64, i64, i64, i64)>> {
        if self.snapshot_run != Some(run_id) {
            return None;
        }
        let mut rows: Vec<(i64, i64, i64, i64)> =
            self.codes.iter().map(|(&id, b)| (id, i64::from(b.abcd_tier), i64::from(b.rfm_class), i64::from(b.lifecycle))).collect();
        rows.sort_unstable_by_key(|r| r.0);
        Some(rows)
    }
}

/// The code of a key among `codes` counted from `first` (0 for none or an unknown key), as
/// [`code_case`] stores it.
fn code_of(codes: &[&str], key: Option<&str>, first: usize) -> i64 {
    key.and_then(|k| codes.iter().position(|c| *c == k)).map_or(0, |i| (i + first) as i64)
}

/// A migration matrix: (from code, to code) (`None`: not scored in that run) → customers and
/// their revenue in the later run.
type Cells = std::collections::BTreeMap<(Option<i64>, Option<i64>), (i64, i128)>;

/// One dimension's cells as stored: (from code, to code) → customers and revenue.
type StoredCells = Vec<((Option<i64>, Option<i64>), (i64, i64))>;

/// The matrices (ABCD tier, RFM class, lifecycle) between an earlier run's snapshot rows
/// (`earlier`: customer, tier, class and stage codes, by customer) and a run's customers
/// (ascending) and output, with the revenue counted as the snapshot query counts it: the later
/// run's trailing spend, no lower than 0 for a customer in both runs (the larger of it and the
/// earlier row's 0), 0 for one no longer scored.
fn migration_cells(earlier: &[(i64, i64, i64, i64)], customer_ids: &[i64], output: &AnalyticsOutput) -> [StoredCells; 3] {
    let k = &output.scores;
    let later = |c: usize| {
        [
            code_of(ABCD_CODES, k.abcd.tier[c].map(|t| t.key()), 1),
            code_of(RFM_CODES, k.rfm.class[c].map(|v| v.key()), 1),
            code_of(LIFECYCLE_CODES, Some(k.lifecycle.stage[c].key()), 1),
        ]
    };
    let mut cells: [Cells; 3] = Default::default();
    let mut add = |from: Option<[i64; 3]>, to: Option<[i64; 3]>, revenue: i64| {
        for (d, m) in cells.iter_mut().enumerate() {
            let cell = m.entry((from.map(|f| f[d]), to.map(|t| t[d]))).or_default();
            cell.0 += 1;
            cell.1 += i128::from(revenue);
        }
    };
    let (mut i, mut c) = (0, 0);
    while i < earlier.len() || c < customer_ids.len() {
        let e = earlier.get(i).map(|r| r.0);
        let l = customer_ids.get(c).copied();
        let spend = |c: usize| output.summaries.trailing_spend_cents[c];
        match (e, l) {
            (Some(a), Some(b)) if a == b => {
                let r = earlier[i];
                add(Some([r.1, r.2, r.3]), Some(later(c)), spend(c).max(0));
                (i, c) = (i + 1, c + 1);
            }
            (Some(a), Some(b)) if a < b => {
                let r = earlier[i];
                add(Some([r.1, r.2, r.3]), None, 0);
                i += 1;
            }
            (Some(_), None) => {
                let r = earlier[i];
                add(Some([r.1, r.2, r.3]), None, 0);
                i += 1;
            }
            _ => {
                add(None, Some(later(c)), spend(c));
                c += 1;
            }
        }
    }
    let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    cells.map(|m| m.into_iter().map(|(key, (n, revenue))| (key, (n, clamp(revenue)))).collect())
}

impl Store {
    /// The score-history settings.
    pub async fn history_settings(&self) -> Result<HistorySettings> {
        self.setting(HISTORY).await
    }

    /// Replaces the score-history settings (audited); the next run applies them.
    pub async fn set_history_settings(&self, actor: &Actor, s: &HistorySettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, HISTORY, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// Every analysis run, newest first.
    pub async fn analysis_runs(&self) -> Result<Vec<RunInfo>> {
        type Row = (i64, i64, DateTime<Utc>, i64, Option<i64>);
        let rows: Vec<Row> = self
            .db
            .reader()
            .fetch_all(query("SELECT id, as_of_day, finished_at, customers, snapshot_customers FROM analytics_runs ORDER BY id DESC"))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, day, at, customers, snap)| RunInfo {
                id,
                as_of: i32::try_from(day).ok().and_then(day_date),
                created_at: at,
                customers,
                history: snap.is_some(),
            })
            .collect())
    }

    /// Checks that run `id` exists and still has its snapshot; `field` names it in the error.
    async fn history_run(&self, id: i64, field: &str) -> Result<i64> {
        let row: Option<(Option<i64>,)> =
            self.db.reader().fetch_optional(query("SELECT snapshot_customers FROM analytics_runs WHERE id = $1").bind(id)).await?;
        match row {
            None => Err(StoreError::invalid(field, format!("there is no analysis run {id}"))),
            Some((None,)) => {
                let keep = self.history_settings().await?.runs;
                Err(StoreError::invalid(
                    field,
                    format!("analysis run {id} has no score snapshot (runs keep one since score history exists, and only the last {keep} are kept)"),
                ))
            }
            Some((Some(_),)) => Ok(id),
        }
    }

    /// The migration matrix between two runs over `dimension`, for the customers `actor` sees.
    /// Without runs named: the two latest runs with a snapshot (404 when there are fewer).
    pub async fn migration(&self, actor: &Actor, from_run: Option<i64>, to_run: Option<i64>, dimension: Dimension) -> Result<Migration> {
        let to_run = match to_run {
            Some(id) => self.history_run(id, "to_run").await?,
            None => {
                let latest: Option<(i64,)> = self
                    .db
                    .reader()
                    .fetch_optional(query("SELECT id FROM analytics_runs WHERE snapshot_customers IS NOT NULL ORDER BY id DESC LIMIT 1"))
                    .await?;
                latest.ok_or(StoreError::NotFound("analysis run with a score snapshot"))?.0
            }
        };
        let from_run = match from_run {
            Some(id) => self.history_run(id, "from_run").await?,
            None => {
                let before: Option<(i64,)> = self
                    .db
                    .reader()
                    .fetch_optional(
                        query("SELECT id FROM analytics_runs WHERE snapshot_customers IS NOT NULL AND id < $1 ORDER BY id DESC LIMIT 1")
                            .bind(to_run),
                    )
                    .await?;
                before.ok_or(StoreError::NotFound("analysis run with a score snapshot before to_run"))?.0
            }
        };
        let scope = crate::access::CustomerScope::of(actor);
        // The whole base's matrix of a run against the run before it is stored by the run
        // (`record_migrations`); anything else is counted from the snapshots.
        let mut rows: Vec<(Option<i64>, Option<i64>, i64, i64)> = Vec::new();
        let mut stored = false;
        if scope.is_all() {
            rows = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT from_code, to_code, customers, revenue_cents FROM run_migrations \
                         WHERE to_run = $1 AND from_run = $2 AND dimension = $3",
                    )
                    .bind(to_run)
                    .bind(from_run)
                    .bind(dimension.key()),
                )
                .await?;
            // A stored matrix always has a cell (the run's own customers); none: not stored.
            stored = !rows.is_empty();
        }
        if !stored {
            rows = self.count_migration(scope, from_run, to_run, dimension).await?;
        }
        rows.sort_by_key(|r| (r.0.unwrap_or(-1), r.1.unwrap_or(-1)));
        let cells = rows
            .into_iter()
            .map(|(f, t, customers, revenue_cents)| MigrationCell {
                from: f.map(|c| dimension.value(c)),
                to: t.map(|c| dimension.value(c)),
                customers,
                revenue_cents,
            })
            .collect();
        Ok(Migration { from_run, to_run, dimension, cells })
    }

    /// The matrix's cells (from code, to code, customers, revenue) counted from the snapshots.
    async fn count_migration(
        &self,
        scope: crate::access::CustomerScope,
        from_run: i64,
        to_run: i64,
        dimension: Dimension,
    ) -> Result<Vec<(Option<i64>, Option<i64>, i64, i64)>> {
        let col = dimension.key();
        let engine = self.db.engine();
        let scope = scope.sql_for("customer_id");
        let revenue = engine.clamp_bigint(&engine.sum_wide("rev"));
        // One row per customer (grouped by the distribution column, so Citus does it on the
        // shards), then the cells.
        self.db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT f, t, COUNT(*), {revenue} FROM (\
                       SELECT customer_id, CAST(MAX(CASE WHEN run_id = $1 THEN {col} END) AS BIGINT) AS f, \
                       CAST(MAX(CASE WHEN run_id = $2 THEN {col} END) AS BIGINT) AS t, \
                       MAX(CASE WHEN run_id = $2 THEN trailing_spend_cents ELSE 0 END) AS rev \
                       FROM score_snapshots WHERE run_id IN ($1, $2) AND {scope} GROUP BY customer_id) x \
                     GROUP BY f, t"
                ))
                .bind(from_run)
                .bind(to_run),
            )
            .await
    }

    /// Stores the whole base's matrices of run `run_id` (whose customers and scores are
    /// `customer_ids` and `output`, just saved) against the run with a snapshot before it, for
    /// every dimension: the dashboard's default, read without touching the snapshots (counting
    /// 2 M snapshot rows on each view would take seconds at 1 M customers). The earlier run's
    /// codes are read from its snapshot once, this run's taken from `output`: the cells
    /// [`Store::migration`] counts from the two snapshots.
    pub(crate) async fn record_migrations(
        &self,
        run_id: i64,
        customer_ids: &[i64],
        output: &AnalyticsOutput,
        standing: &Standing,
    ) -> Result<()> {
        let before: Option<(i64,)> = self
            .db
            .reader()
            .fetch_optional(
                query("SELECT id FROM analytics_runs WHERE snapshot_customers IS NOT NULL AND id < $1 ORDER BY id DESC LIMIT 1")
                    .bind(run_id),
            )
            .await?;
        let Some((from_run,)) = before else { return Ok(()) };
        // The run before is, but for a run without a snapshot in between, the one whose snapshot
        // the save read where everyone stood from (1 M rows: 0.2-0.4 s to read again).
        let earlier: Vec<(i64, i64, i64, i64)> = match standing.snapshot_rows(from_run) {
            Some(rows) => rows,
            None => {
                self.db
                    .scan_all(
                        query(
                            "SELECT customer_id, CAST(abcd_tier AS BIGINT), CAST(rfm_class AS BIGINT), CAST(lifecycle AS BIGINT) \
                             FROM score_snapshots WHERE run_id = $1 ORDER BY customer_id",
                        )
                        .bind(from_run),
                    )
                    .await?
            }
        };
        let all = migration_cells(&earlier, customer_ids, output);
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM run_migrations WHERE to_run = $1").bind(run_id)).await?;
        for (dim, rows) in [Dimension::AbcdTier, Dimension::RfmClass, Dimension::Lifecycle].into_iter().zip(all) {
            for ((f, t), (customers, revenue)) in rows {
                tx.execute(
                    query(
                        "INSERT INTO run_migrations (to_run, from_run, dimension, from_code, to_code, customers, revenue_cents) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(run_id)
                    .bind(from_run)
                    .bind(dim.key())
                    .bind(f)
                    .bind(t)
                    .bind(customers)
                    .bind(revenue),
                )
                .await?;
            }
        }
        tx.commit().await
    }

    /// Records the size of every saved segment whose rule reads the analysis at run `run_id`
    /// (over every live customer). A rule that no longer parses is skipped.
    pub(crate) async fn record_segment_sizes(&self, run_id: i64) -> Result<()> {
        let actor = Actor::cli();
        let mut sizes: Vec<(i64, i64)> = Vec::new();
        for s in self.segments().await? {
            let Some(id) = s.id else { continue };
            let Ok(rule) = crate::segments::parse_rule(&s.rule) else { continue };
            if !rule.uses_scores() {
                continue;
            }
            sizes.push((id, self.segment_count(&actor, &s.rule).await?));
        }
        if sizes.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        for (segment_id, n) in sizes {
            tx.execute(
                query(
                    "INSERT INTO segment_sizes (segment_id, run_id, customers) VALUES ($1, $2, $3) \
                     ON CONFLICT (segment_id, run_id) DO UPDATE SET customers = excluded.customers",
                )
                .bind(segment_id)
                .bind(run_id)
                .bind(n),
            )
            .await?;
        }
        tx.commit().await
    }

    /// A saved segment's size at each run it was measured (oldest first; 404 for an unknown segment).
    pub async fn segment_sizes(&self, key: &str) -> Result<Vec<SegmentSize>> {
        let seg = self.segment(key).await?;
        let Some(id) = seg.id else { return Ok(Vec::new()) };
        let rows: Vec<(i64, i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT z.run_id, r.as_of_day, z.customers FROM segment_sizes z JOIN analytics_runs r ON r.id = z.run_id \
                     WHERE z.segment_id = $1 ORDER BY z.run_id",
                )
                .bind(id),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(run_id, day, customers)| SegmentSize { run_id, as_of: i32::try_from(day).ok().and_then(day_date), customers })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_cover_the_analytics_keys() {
        for t in patron_analytics::abcd::Tier::ALL {
            assert!(ABCD_CODES.contains(&t.key()), "{}", t.key());
        }
        for c in patron_analytics::rfm::RfmClass::ALL {
            assert!(RFM_CODES.contains(&c.key()), "{}", c.key());
        }
        for s in patron_analytics::lifecycle::LifecycleStage::ALL {
            assert!(LIFECYCLE_CODES.contains(&s.key()), "{}", s.key());
        }
        assert_eq!(key_of(ABCD_CODES, 2), Some("B"));
        assert_eq!(key_of(ABCD_CODES, 0), None);
        assert_eq!(key_of(ABCD_CODES, 9), None);
        assert_eq!(Dimension::AbcdTier.value(0), "none");
        assert_eq!(code_case("x", &["a", "b"], 1), "CAST(CASE x WHEN 'a' THEN 1 WHEN 'b' THEN 2 ELSE 0 END AS BIGINT)");
    }
}
