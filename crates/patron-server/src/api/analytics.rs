//! `/api/v1/analytics` and `/api/v1/customers/{id}/scores`: the dashboard aggregates, analysis
//! runs (read the latest, start a new one) and one customer's scores with a plain-words reason.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use patron_analytics::{AnalyticsConfig, TimeUnit};
use patron_store::analytics::{day_date, AnalysisRun, Overview, ScoreRow};
use patron_store::cohorts::{CohortReport, TrendReport};
use patron_store::cost_to_serve::{CostSettings, CostToServeReport};
use patron_store::history::{Dimension, HistorySettings, Migration, RunInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::i18n::{yuan_f, Lang};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics/overview", get(overview))
        .route("/analytics/runs/latest", get(latest_run))
        .route("/analytics/runs", get(list_runs).post(create_run))
        .route("/analytics/migration", get(migration))
        .route("/analytics/cohorts", get(cohorts))
        .route("/analytics/trends", get(trends))
        .route("/analytics/history/settings", get(history_settings).put(put_history_settings))
        .route("/customers/{id}/scores", get(customer_scores))
        .route("/analytics/cost-to-serve", get(cost_to_serve))
        .route("/analytics/cost-to-serve/settings", get(cost_settings).put(put_cost_settings))
}

/// Whose figures to add to the cost-to-serve report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Also this customer's own figures.
    pub customer_id: Option<i64>,
}

/// Cost to serve from the latest analysis (issue 13 §7): margin, cost and profit by ABCD tier
/// and cell of the profitability matrix (high/low value × high/low cost to serve, split at the
/// medians), with counts and revenue; with `customer_id`, that customer's figures too (404
/// outside the caller's scope).
#[utoipa::path(get, path = "/api/v1/analytics/cost-to-serve", tag = "analytics", params(CostParams),
    responses((status = 200, body = CostToServeReport), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn cost_to_serve(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<CostParams>,
) -> ApiResult<Json<CostToServeReport>> {
    if let Some(id) = p.customer_id {
        check_customer_access(&state, &actor, id).await?;
    }
    Ok(Json(state.store.cost_to_serve_report(p.customer_id).await?))
}

/// The cost-to-serve rates: period, ticket and handling-minute costs, message costs by channel,
/// margin rates.
#[utoipa::path(get, path = "/api/v1/analytics/cost-to-serve/settings", tag = "analytics",
    responses((status = 200, body = CostSettings), (status = 403, body = crate::error::ErrorBody)))]
pub async fn cost_settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<CostSettings>> {
    Ok(Json(state.store.cost_settings().await?))
}

/// Replaces the cost-to-serve rates (audited); the next analysis run uses them.
#[utoipa::path(put, path = "/api/v1/analytics/cost-to-serve/settings", tag = "analytics", request_body = CostSettings,
    responses((status = 200, body = CostSettings), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_cost_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<CostSettings>,
) -> ApiResult<Json<CostSettings>> {
    Ok(Json(state.store.set_cost_settings(&actor, &s).await?))
}

/// The dashboard aggregates: RFM classes, ABCD tiers, lifecycle, churn by tier and by RFM
/// class, P(alive) and CLV histograms, and the latest run. Agents get their own portfolio.
#[utoipa::path(get, path = "/api/v1/analytics/overview", tag = "analytics",
    responses((status = 200, body = Overview), (status = 401, body = crate::error::ErrorBody)))]
pub async fn overview(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Overview>> {
    // Every role may look; the store narrows an agent to their portfolio.
    Ok(Json(state.store.analytics_overview(&actor).await?))
}

/// The latest analysis run: as-of date, fitted parameters and the fit report.
#[utoipa::path(get, path = "/api/v1/analytics/runs/latest", tag = "analytics",
    responses((status = 200, body = AnalysisRun), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn latest_run(State(state): State<AppState>, Auth(_actor): Auth) -> ApiResult<Json<AnalysisRun>> {
    // Parameters and tier totals describe the whole base, not any one customer: every role may read them.
    state.store.latest_run().await?.map(Json).ok_or_else(|| ApiError::not_found("analysis run"))
}

/// Every analysis run, newest first: id, as-of date, when it was stored, customers scored, and
/// whether its per-customer score snapshot is kept (the migration matrix needs one).
#[utoipa::path(get, path = "/api/v1/analytics/runs", tag = "analytics",
    responses((status = 200, body = Vec<RunInfo>), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_runs(State(state): State<AppState>, Auth(_actor): Auth) -> ApiResult<Json<Vec<RunInfo>>> {
    // Runs describe the whole base, as the latest run does: every role may list them.
    Ok(Json(state.store.analysis_runs().await?))
}

/// Which runs and dimension the migration matrix compares.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MigrationParams {
    /// The earlier run (default: the run with a snapshot before `to_run`).
    pub from_run: Option<i64>,
    /// The later run (default: the latest run with a snapshot).
    pub to_run: Option<i64>,
    /// `abcd_tier` (default), `rfm_class` or `lifecycle`.
    pub dimension: Option<String>,
}

/// How customers moved between the tiers (classes, stages) of two analysis runs: one cell per
/// (from, to) pair with the customers and their trailing spend as of `to_run`; `null` for a
/// customer not scored in that run, `none` for one scored without a value. Agents: their
/// portfolio. 422 (with the field) for a run that does not exist or whose snapshot is no longer
/// kept; 404 without two runs with snapshots when the runs are not named.
#[utoipa::path(get, path = "/api/v1/analytics/migration", tag = "analytics", params(MigrationParams),
    responses((status = 200, body = Migration), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn migration(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<MigrationParams>) -> ApiResult<Json<Migration>> {
    let dimension = match p.dimension.as_deref() {
        None | Some("") => Dimension::AbcdTier,
        Some(d) => {
            Dimension::parse(d).ok_or_else(|| ApiError::bad_request("dimension", "dimension must be abcd_tier, rfm_class or lifecycle"))?
        }
    };
    Ok(Json(state.store.migration(&actor, p.from_run, p.to_run, dimension).await?))
}

/// A range of months.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthParams {
    /// First month, `YYYY-MM` (default: 11 months before `to`).
    pub from: Option<String>,
    /// Last month, `YYYY-MM` (default: the current month, or the latest run's).
    pub to: Option<String>,
}

/// Cohorts by the month (business time zone) of the customers' first completed order: their
/// size, and per month since how many of them bought (`active`) and what they spent. For the
/// whole base precomputed by the latest analysis run (source `run`); for a narrower scope (an
/// agent's portfolio) and before the first run computed live (source `live`). 422 with the
/// field for a malformed month or `from` after `to`.
#[utoipa::path(get, path = "/api/v1/analytics/cohorts", tag = "analytics", params(MonthParams),
    responses((status = 200, body = CohortReport), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn cohorts(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<MonthParams>) -> ApiResult<Json<CohortReport>> {
    Ok(Json(state.store.cohorts(&actor, p.from.as_deref(), p.to.as_deref()).await?))
}

/// Monthly trends: new, active and repeat customers, orders and revenue, and where an analysis
/// run is as of a day in the month, its A and B customers, how many of them churned and the
/// churn rate. Sources as for cohorts. 422 with the field for a malformed month or `from` after `to`.
#[utoipa::path(get, path = "/api/v1/analytics/trends", tag = "analytics", params(MonthParams),
    responses((status = 200, body = TrendReport), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn trends(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<MonthParams>) -> ApiResult<Json<TrendReport>> {
    Ok(Json(state.store.trends(&actor, p.from.as_deref(), p.to.as_deref()).await?))
}

/// How many runs keep their per-customer score snapshot.
#[utoipa::path(get, path = "/api/v1/analytics/history/settings", tag = "analytics",
    responses((status = 200, body = HistorySettings), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn history_settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<HistorySettings>> {
    Ok(Json(state.store.history_settings().await?))
}

/// Replaces the score-history settings (audited); the next run deletes the snapshots beyond them.
#[utoipa::path(put, path = "/api/v1/analytics/history/settings", tag = "analytics", request_body = HistorySettings,
    responses((status = 200, body = HistorySettings), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_history_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<HistorySettings>,
) -> ApiResult<Json<HistorySettings>> {
    state.store.set_history_settings(&actor, &s).await?;
    Ok(Json(state.store.history_settings().await?))
}

/// Settings of a new analysis run; everything is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The date the analysis is as of (`YYYY-MM-DD`; default today in the business time zone).
    #[schema(value_type = Option<String>, format = Date, example = "2026-06-30")]
    pub as_of: Option<String>,
    /// Time unit of the BG/NBD model: `days` (default) or `weeks`.
    pub time_unit: Option<String>,
    /// Horizon of "expected purchases" in days, 1–3650 (default 90).
    pub horizon_days: Option<u32>,
    /// CLV horizon in months of 30 days, 1–1200 (default 12).
    pub clv_months: Option<u32>,
    /// Monthly discount rate of the CLV, in [0, 1) (default 0.01).
    pub monthly_discount: Option<f64>,
}

/// Default horizon of "expected purchases" (the same as `patron analyze` and the demo).
pub const DEFAULT_HORIZON_DAYS: u32 = 90;

/// Today in the business time zone, by the store's clock (fixed in tests).
pub fn business_today(state: &AppState) -> NaiveDate {
    state.store.now().with_timezone(&state.store.config.business_tz).date_naive()
}

/// The as-of date and pipeline configuration a run request describes (DESIGN §4 defaults otherwise).
pub fn run_settings(req: &RunRequest, today: NaiveDate) -> ApiResult<(NaiveDate, AnalyticsConfig)> {
    let invalid = |field: &str, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).field(field);
    let as_of = match req.as_of.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => today,
        Some(s) => {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid("as_of", format!("as_of must be a date YYYY-MM-DD, not {s:?}")))?
        }
    };
    // Orders after today do not exist yet; an as-of date in the future would count every
    // customer as silent until then and call them churned.
    if as_of > today {
        return Err(invalid("as_of", format!("as_of {as_of} is after today ({today})")));
    }
    if as_of < NaiveDate::from_ymd_opt(1970, 1, 2).unwrap_or(NaiveDate::MIN) {
        return Err(invalid("as_of", "as_of must be after 1970-01-01".into()));
    }
    let mut config = AnalyticsConfig::default();
    config.model.time_unit = match req.time_unit.as_deref() {
        None | Some("days") => TimeUnit::Days,
        Some("weeks") => TimeUnit::Weeks,
        Some(other) => return Err(invalid("time_unit", format!("time_unit must be days or weeks, not {other:?}"))),
    };
    let horizon = req.horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
    if !(1..=3650).contains(&horizon) {
        return Err(invalid("horizon_days", "horizon_days must be between 1 and 3650".into()));
    }
    config.model.horizon_days = horizon;
    let months = req.clv_months.unwrap_or(config.model.clv_months);
    if !(1..=1200).contains(&months) {
        return Err(invalid("clv_months", "clv_months must be between 1 and 1200".into()));
    }
    config.model.clv_months = months;
    let d = req.monthly_discount.unwrap_or(config.model.monthly_discount);
    if !(d.is_finite() && (0.0..1.0).contains(&d)) {
        return Err(invalid("monthly_discount", "monthly_discount must be a monthly rate in [0, 1), e.g. 0.01".into()));
    }
    config.model.monthly_discount = d;
    Ok((as_of, config))
}

/// Runs the analysis (summaries, RFM, ABCD, lifecycle, churn, BG/NBD, Gamma-Gamma, CLV, loyalty)
/// over the whole base as of a date, stores every customer's scores and returns the run.
/// Managers and admins only.
#[utoipa::path(post, path = "/api/v1/analytics/runs", tag = "analytics", request_body = RunRequest,
    responses((status = 201, body = AnalysisRun), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_run(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<RunRequest>,
) -> ApiResult<(StatusCode, Json<AnalysisRun>)> {
    let (as_of, config) = run_settings(&req, business_today(&state))?;
    let run = start_run(&state, &actor, as_of, &config).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Runs the analysis and reads back the run it stored (shared with the dashboard's button).
pub async fn start_run(
    state: &AppState,
    actor: &patron_store::users::Actor,
    as_of: NaiveDate,
    config: &AnalyticsConfig,
) -> ApiResult<AnalysisRun> {
    let (run_id, _) = state.store.run_analysis(actor, as_of, config).await?;
    match state.store.latest_run().await? {
        Some(run) if run.id >= run_id => Ok(run),
        _ => Err(patron_store::StoreError::Internal(format!("analysis run {run_id} was stored but cannot be read back")).into()),
    }
}

/// Language of the plain-words reason.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LangParams {
    /// `zh` (default) or `en`.
    pub lang: Option<String>,
}

impl LangParams {
    /// The language asked for; 400 for an unknown one.
    pub fn lang(&self) -> ApiResult<Lang> {
        match self.lang.as_deref() {
            None | Some("") => Ok(Lang::Zh),
            Some(code) => Lang::from_code(code).ok_or_else(|| ApiError::bad_request("lang", "lang must be zh or en")),
        }
    }
}

/// One customer's latest scores, dates spelled out, and why in plain words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerScores {
    /// The stored scores row (day numbers count days since 1970-01-01 in the business time zone).
    #[serde(flatten)]
    pub scores: ScoreRow,
    /// The date the scores are as of.
    pub as_of: Option<NaiveDate>,
    /// Date of the last purchase up to `as_of`.
    pub last_purchase_date: Option<NaiveDate>,
    /// Days from the last purchase to `as_of`.
    pub days_since_last_purchase: Option<i64>,
    /// What the scores say, in plain words, in the requested language.
    pub reason: String,
}

impl CustomerScores {
    /// Wraps a scores row with its dates and reason.
    pub fn new(scores: ScoreRow, lang: Lang) -> Self {
        let date = |d: i64| i32::try_from(d).ok().and_then(day_date);
        CustomerScores {
            as_of: date(scores.as_of_day),
            last_purchase_date: scores.last_purchase_day.and_then(date),
            days_since_last_purchase: days_since_last_purchase(&scores),
            reason: reason(&scores, lang),
            scores,
        }
    }
}

/// Reads a customer's scores with the reason (`None` before the customer was first analysed).
pub async fn scores_of(state: &AppState, customer_id: i64, lang: Lang) -> ApiResult<Option<CustomerScores>> {
    Ok(state.store.customer_scores(customer_id).await?.map(|s| CustomerScores::new(s, lang)))
}

/// A customer's latest scores and a plain-words reason (`?lang=en` for English). 404 when the
/// customer has not been analysed yet. Agents: their own portfolio only.
#[utoipa::path(get, path = "/api/v1/customers/{id}/scores", tag = "analytics", params(("id" = i64, Path, description = "customer id"), LangParams),
    responses((status = 200, body = CustomerScores), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn customer_scores(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(q): Query<LangParams>,
) -> ApiResult<Json<CustomerScores>> {
    let lang = q.lang()?;
    check_customer_access(&state, &actor, id).await?;
    scores_of(&state, id, lang).await?.map(Json).ok_or_else(|| ApiError::not_found("scores (the customer has not been analysed yet)"))
}

// ---- the plain-words reason ----------------------------------------------------------------

/// Days from the last purchase day to the as-of day.
pub fn days_since_last_purchase(s: &ScoreRow) -> Option<i64> {
    s.last_purchase_day.map(|d| (s.as_of_day - d).max(0)).or(s.recency_days)
}

/// A number of days as words people use ("1 day", "20 days"); fractional gaps are rounded.
fn days_en(n: f64) -> String {
    let r = whole_days(n);
    if r == 1 {
        "1 day".into()
    } else {
        format!("{r} days")
    }
}

fn whole_days(n: f64) -> i64 {
    n.round().max(0.0) as i64
}

/// Why a customer scores as they do, in one sentence of plain words.
///
/// Covers, in this order: prospects (no purchase), P(alive) with the silence since the last
/// purchase against the customer's usual gap (or "only one purchase so far" when there is no
/// gap yet), absolute churn (silent longer than the threshold), relative churn (still buying but
/// spending fell), a return after churn, and high value (tier A, with the CLV).
pub fn reason(s: &ScoreRow, lang: Lang) -> String {
    let en = lang == Lang::En;
    let Some(since) = days_since_last_purchase(s).filter(|_| s.purchase_days > 0) else {
        return if en {
            "No purchase yet: a prospect. Nothing to predict until the first order.".into()
        } else {
            "尚未购买：潜在客户，首次下单后才能预测。".into()
        };
    };
    let mut parts: Vec<String> = Vec::new();
    let last = match (since, en) {
        (0, true) => "last purchase today".to_owned(),
        (0, false) => "上次购买就在今天".to_owned(),
        (d, true) => format!("last purchase {} ago", days_en(d as f64)),
        (d, false) => format!("上次购买在 {d} 天前"),
    };
    parts.push(last);
    match s.median_gap_days.filter(|g| g.is_finite() && *g > 0.0 && s.purchase_days >= 2) {
        Some(gap) => {
            parts.push(if en {
                format!("usually buys every {}", days_en(gap))
            } else {
                format!("通常每 {} 天购买一次", whole_days(gap))
            });
            // Say how overdue only when it is clearly overdue (twice the usual gap or more).
            let ratio = since as f64 / gap;
            if ratio >= 2.0 && s.churn != "absolute" {
                parts.push(if en {
                    format!("now {ratio:.0}× longer than usual")
                } else {
                    format!("已是平时间隔的 {ratio:.0} 倍")
                });
            }
        }
        None => parts.push(if en {
            "only one purchase so far, so there is no usual gap yet".into()
        } else {
            "目前只购买过一次，尚无固定的购买间隔".into()
        }),
    }
    let threshold = s.churn_threshold_days.filter(|t| t.is_finite() && *t > 0.0);
    match (s.churn.as_str(), threshold) {
        ("absolute", Some(t)) => parts.push(if en {
            format!("silent longer than the churn threshold of {}: churned", days_en(t))
        } else {
            format!("沉默已超过 {} 天的流失阈值：已流失", whole_days(t))
        }),
        ("absolute", None) => parts.push(if en { "silent too long: churned".into() } else { "沉默时间过长：已流失".into() }),
        ("relative", _) => parts.push(if en {
            "still buying, but spending fell to less than half of the usual level (relative churn)".into()
        } else {
            "仍在购买，但近期消费已不足以往的一半（相对流失）".into()
        }),
        _ => {}
    }
    match s.lifecycle.as_str() {
        "won_back" => parts.push(if en { "came back after having churned".into() } else { "曾经流失，现已回来".into() }),
        "loyal" => parts.push(if en { "a loyal customer".into() } else { "忠诚客户".into() }),
        "at_risk" if s.churn == "none" => parts.push(if en { "likely to be slipping away".into() } else { "有流失风险".into() }),
        _ => {}
    }
    if s.abcd_tier.as_deref() == Some("A") {
        parts.push(match (s.clv_cents.filter(|c| c.is_finite() && *c > 0.0), en) {
            (Some(clv), true) => format!("high value (tier A), expected lifetime value {}", yuan_f(clv)),
            (Some(clv), false) => format!("高价值客户（A 级），预计终身价值 {}", yuan_f(clv)),
            (None, true) => "high value (tier A)".into(),
            (None, false) => "高价值客户（A 级）".into(),
        });
    }
    let body = if en { parts.join(", ") } else { parts.join("，") };
    match (s.p_alive.filter(|p| p.is_finite()), en) {
        (Some(p), true) => format!("P(alive) {p:.2}: {body}"),
        (Some(p), false) => format!("存活概率 {p:.2}：{body}"),
        (None, true) => {
            let mut c = body.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
        (None, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ScoreRow {
        ScoreRow {
            customer_id: 1,
            run_id: 1,
            as_of_day: 20_000,
            model_version: "t".into(),
            purchase_days: 5,
            first_purchase_day: Some(19_700),
            last_purchase_day: Some(19_858),
            x: 4,
            t_x: 158,
            age_days: 300,
            m_cents: 5000.0,
            order_count: 5,
            spend_cents: 25_000,
            trailing_spend_cents: 25_000,
            median_gap_days: Some(20.0),
            recency_days: Some(142),
            frequency: 5,
            monetary_cents: 25_000,
            rfm_r: Some(2),
            rfm_f: Some(3),
            rfm_m: Some(3),
            rfm_class: Some("general_retain".into()),
            abcd_tier: Some("B".into()),
            lifecycle: "at_risk".into(),
            churn: "none".into(),
            churn_threshold_days: Some(180.0),
            p_alive: Some(0.3149),
            expected_purchases: Some(0.4),
            expected_order_value_cents: Some(5100.0),
            clv_cents: Some(12_345.0),
            loyalty_index: Some(40.0),
            loyalty_situation: None,
            cts_revenue_cents: None,
            margin_cents: None,
            cost_to_serve_cents: None,
            profit_cents: None,
            cts_quadrant: None,
        }
    }

    #[test]
    fn the_example_in_both_languages() {
        let s = row();
        let en = reason(&s, Lang::En);
        assert!(en.starts_with("P(alive) 0.31: last purchase 142 days ago, usually buys every 20 days"), "{en}");
        assert!(en.contains("7× longer than usual") && en.contains("slipping away"), "{en}");
        let zh = reason(&s, Lang::Zh);
        assert!(zh.starts_with("存活概率 0.31：上次购买在 142 天前，通常每 20 天购买一次"), "{zh}");
        assert!(zh.contains("流失风险"), "{zh}");
    }

    #[test]
    fn prospects_have_no_purchase() {
        let mut s = row();
        s.purchase_days = 0;
        s.first_purchase_day = None;
        s.last_purchase_day = None;
        s.recency_days = None;
        s.p_alive = None;
        s.lifecycle = "prospect".into();
        assert!(reason(&s, Lang::En).starts_with("No purchase yet: a prospect"));
        assert!(reason(&s, Lang::Zh).starts_with("尚未购买：潜在客户"));
    }

    #[test]
    fn one_purchase_has_no_usual_gap() {
        let mut s = row();
        s.purchase_days = 1;
        s.x = 0;
        s.median_gap_days = None;
        s.last_purchase_day = Some(19_999);
        s.p_alive = Some(1.0);
        s.lifecycle = "new".into();
        let en = reason(&s, Lang::En);
        assert_eq!(en, "P(alive) 1.00: last purchase 1 day ago, only one purchase so far, so there is no usual gap yet");
        let zh = reason(&s, Lang::Zh);
        assert_eq!(zh, "存活概率 1.00：上次购买在 1 天前，目前只购买过一次，尚无固定的购买间隔");
    }

    #[test]
    fn absolute_and_relative_churn() {
        let mut s = row();
        s.churn = "absolute".into();
        s.lifecycle = "churned".into();
        s.last_purchase_day = Some(19_700);
        s.p_alive = Some(0.05);
        let en = reason(&s, Lang::En);
        assert!(
            en.contains("last purchase 300 days ago") && en.contains("silent longer than the churn threshold of 180 days: churned"),
            "{en}"
        );
        assert!(!en.contains("longer than usual"), "one way of saying it is enough: {en}");
        assert!(reason(&s, Lang::Zh).contains("沉默已超过 180 天的流失阈值：已流失"));

        let mut s = row();
        s.churn = "relative".into();
        s.last_purchase_day = Some(19_995);
        let en = reason(&s, Lang::En);
        assert!(en.contains("last purchase 5 days ago") && en.contains("spending fell"), "{en}");
        assert!(reason(&s, Lang::Zh).contains("相对流失"));
    }

    #[test]
    fn high_value_names_the_clv() {
        let mut s = row();
        s.abcd_tier = Some("A".into());
        s.clv_cents = Some(123_456.0);
        s.lifecycle = "loyal".into();
        s.last_purchase_day = Some(19_990);
        let en = reason(&s, Lang::En);
        assert!(en.ends_with("a loyal customer, high value (tier A), expected lifetime value ¥1,234.56"), "{en}");
        assert!(reason(&s, Lang::Zh).contains("高价值客户（A 级），预计终身价值 ¥1,234.56"));
    }

    #[test]
    fn without_a_model_the_sentence_still_reads() {
        let mut s = row();
        s.p_alive = None;
        s.last_purchase_day = Some(20_000);
        assert!(reason(&s, Lang::En).starts_with("Last purchase today, usually buys every 20 days"));
        assert!(reason(&s, Lang::Zh).starts_with("上次购买就在今天，通常每 20 天购买一次"));
    }

    #[test]
    fn run_settings_validate_every_field() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default();
        let (d, c) = run_settings(&RunRequest::default(), today).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d, today);
        assert_eq!(c.model.horizon_days, DEFAULT_HORIZON_DAYS);
        let req = RunRequest { as_of: Some("2026-01-31".into()), time_unit: Some("weeks".into()), ..Default::default() };
        let (d, c) = run_settings(&req, today).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.to_string(), c.model.time_unit), ("2026-01-31".to_owned(), TimeUnit::Weeks));
        for (req, field) in [
            (RunRequest { as_of: Some("2026-07-01".into()), ..Default::default() }, "as_of"),
            (RunRequest { as_of: Some("30/06/2026".into()), ..Default::default() }, "as_of"),
            (RunRequest { time_unit: Some("months".into()), ..Default::default() }, "time_unit"),
            (RunRequest { horizon_days: Some(0), ..Default::default() }, "horizon_days"),
            (RunRequest { clv_months: Some(0), ..Default::default() }, "clv_months"),
            (RunRequest { monthly_discount: Some(1.5), ..Default::default() }, "monthly_discount"),
        ] {
            let e = run_settings(&req, today).err().unwrap_or_else(|| panic!("{req:?} accepted"));
            assert_eq!((e.status, e.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)));
        }
    }
}
