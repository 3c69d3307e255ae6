//! The loyalty club's pages (issue 13 §8): the member card of the customer 360 (tier with the
//! progress to the next, balance, next expiry, ledger; redeem a reward from the catalogue and
//! adjust points with a reason, each offered only with its permission), the programme's settings,
//! the rewards catalogue, the liability dashboard with its chart, and the referral report.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use minijinja::{context, Value};
use patron_store::access::Permission;
use patron_store::loyalty::ledger::{AdjustmentRequest, RedemptionRequest};
use patron_store::loyalty::rewards::RewardInput;
use patron_store::loyalty::{EarnRule, LoyaltyProgram, TierDef};
use serde::{Deserialize, Serialize};

use super::{error_page, render, CsrfForm};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path};
use crate::AppState;

/// Routes of the loyalty pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/customers/{id}/loyalty/enrol", post(enrol))
        .route("/ui/customers/{id}/loyalty/redeem", post(redeem))
        .route("/ui/customers/{id}/loyalty/adjust", post(adjust))
        .route("/ui/loyalty", get(programme_page).post(save_programme))
        .route("/ui/loyalty/rewards", get(rewards_page).post(create_reward))
        .route("/ui/loyalty/liability", get(liability_page))
        .route("/ui/loyalty/referrals", get(referrals_page))
        .route("/ui/loyalty/cost-to-serve", get(cost_page))
}

/// A fresh key for a form, so that the same form sent twice (a double click, a retry after a
/// lost answer) redeems or adjusts once: the store answers a repeated key with the first result.
fn form_key(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("ui-{prefix}:{nanos:x}-{:x}-{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed), rand_u64())
}

/// 64 random-enough bits without a dependency: the hash of a fresh `RandomState`.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// The member card of the customer 360: `None` when the customer is not a member (with whether
/// the viewer may enrol them), else the member with the tier progress in percent, the latest
/// ledger entries, what the member may redeem now and which forms the viewer may use.
pub(super) async fn member_card(state: &AppState, user: &UiUser, id: i64) -> Result<Value, ApiError> {
    let can_redeem = user.actor.can(Permission::LoyaltyRedeem);
    let can_adjust = user.actor.can(Permission::LoyaltyAdjust);
    let program = state.store.loyalty_program().await?;
    let member = match state.store.loyalty_member(id).await {
        Ok(m) => m,
        Err(patron_store::StoreError::NotFound(_)) => {
            return Ok(context! { member => None::<()>, enabled => program.enabled, can_enrol => can_redeem && program.enabled });
        }
        Err(e) => return Err(e.into()),
    };
    // Progress from the current tier's threshold (or 0) to the next one's.
    let floor = member.tier.as_deref().and_then(|t| program.tiers.iter().find(|d| d.name == t)).map_or(0, |d| d.min_points_earned);
    let progress = member.next_tier.as_ref().map(|n| {
        let span = (i128::from(n.min_points_earned) - i128::from(floor)).max(1);
        ((i128::from(member.earned_in_period) - i128::from(floor)).clamp(0, span) * 100 / span).clamp(0, 100) as i64
    });
    let ledger = state.store.loyalty_ledger(id, None, 15).await?.items;
    let rewards = if can_redeem && member.status == "active" { state.store.rewards(Some(id)).await? } else { Vec::new() };
    let benefits = member.tier.as_deref().and_then(|t| program.tiers.iter().find(|d| d.name == t)).map(|d| d.benefits.clone());
    Ok(context! {
        member, progress, ledger, rewards, benefits, can_redeem, can_adjust,
        enabled => program.enabled,
        redeem_key => form_key("redeem"),
        adjust_key => form_key("adjust"),
    })
}

#[derive(Deserialize)]
struct RedeemForm {
    csrf: String,
    reward_id: i64,
    key: String,
}

#[derive(Deserialize)]
struct AdjustForm {
    csrf: String,
    points: String,
    reason: String,
    key: String,
}

/// The customer 360 again, with the loyalty card's message (an error with the status, or a
/// confirmation after a redirect).
async fn back_with_error(state: &AppState, user: &UiUser, id: i64, e: ApiError) -> Response {
    if e.status.is_server_error() || e.status == StatusCode::NOT_FOUND || e.status == StatusCode::FORBIDDEN {
        return error_page(state, user, e);
    }
    super::customer_page(state, user, id, context! { loyalty_error => e.message }, e.status).await
}

async fn enrol(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::LoyaltyRedeem)?;
        check_customer_access(&state, &user.actor, id).await?;
        state.store.enrol_member(&user.actor, id).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}#loyalty")).into_response(),
        Err(e) => back_with_error(&state, &user, id, e).await,
    }
}

async fn redeem(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<RedeemForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::LoyaltyRedeem)?;
        check_customer_access(&state, &user.actor, id).await?;
        let r = RedemptionRequest { points: None, reward_id: Some(f.reward_id), idempotency_key: f.key.clone() };
        state.store.redeem_points(&user.actor, id, r).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}?loyalty=redeemed#loyalty")).into_response(),
        Err(e) => back_with_error(&state, &user, id, e).await,
    }
}

async fn adjust(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<AdjustForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::LoyaltyAdjust)?;
        check_customer_access(&state, &user.actor, id).await?;
        let points: i64 = f.points.trim().parse().map_err(|_| ApiError::bad_request("points", "a whole number of points"))?;
        let a = AdjustmentRequest { points, reason: f.reason.clone(), idempotency_key: Some(f.key.clone()) };
        state.store.adjust_points(&user.actor, id, a).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}?loyalty=adjusted#loyalty")).into_response(),
        Err(e) => back_with_error(&state, &user, id, e).await,
    }
}

// ---- the programme ---------------------------------------------------------------------------

/// Earn rules as the settings form shows them: `points per yuan | category | channel | store | multiplier`.
fn rules_text(rules: &[EarnRule]) -> String {
    rules
        .iter()
        .map(|r| {
            let o = |v: &Option<String>| v.clone().unwrap_or_default();
            format!(
                "{} | {} | {} | {} | {}",
                r.points_per_yuan,
                o(&r.category),
                o(&r.channel),
                o(&r.store),
                r.multiplier.map(|m| m.to_string()).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tiers as the form shows them: `name | points earned | multiplier | benefit, benefit`.
fn tiers_text(tiers: &[TierDef]) -> String {
    tiers
        .iter()
        .map(|t| format!("{} | {} | {} | {}", t.name, t.min_points_earned, t.multiplier, t.benefits.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cells(line: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = line.split('|').map(|c| c.trim().to_owned()).collect();
    v.resize(n.max(v.len()), String::new());
    v
}

fn number<T: std::str::FromStr>(v: &str, field: &str, what: &str) -> Result<T, ApiError> {
    v.trim().parse().map_err(|_| ApiError::bad_request(field, format!("{what}: not a number: {v:?}")))
}

fn parse_rules(text: &str) -> Result<Vec<EarnRule>, ApiError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let c = cells(line, 5);
        let field = format!("earn_rules[{i}]");
        let opt = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
        out.push(EarnRule {
            points_per_yuan: number(&c[0], &field, "points per yuan")?,
            category: opt(&c[1]),
            channel: opt(&c[2]),
            store: opt(&c[3]),
            multiplier: if c[4].is_empty() { None } else { Some(number(&c[4], &field, "multiplier")?) },
        });
    }
    Ok(out)
}

fn parse_tiers(text: &str) -> Result<Vec<TierDef>, ApiError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let c = cells(line, 4);
        let field = format!("tiers[{i}]");
        out.push(TierDef {
            name: c[0].clone(),
            min_points_earned: number(&c[1], &field, "points earned")?,
            multiplier: if c[2].is_empty() { 1.0 } else { number(&c[2], &field, "multiplier")? },
            benefits: c[3].split([',', '，', '、']).map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

#[derive(Deserialize, Serialize, Default)]
struct ProgrammeForm {
    #[serde(default)]
    csrf: String,
    enabled: Option<String>,
    point_value_cents: String,
    pending_days: String,
    expiry_months: String,
    expiry_end_of_month: Option<String>,
    qualifying_months: String,
    downgrade_grace_days: String,
    auto_enrol: Option<String>,
    referral_points: String,
    referral_cap_per_month: String,
    #[serde(default)]
    earn_rules: String,
    #[serde(default)]
    tiers: String,
}

impl ProgrammeForm {
    fn of(p: &LoyaltyProgram) -> ProgrammeForm {
        let on = |b: bool| b.then(|| "on".to_owned());
        ProgrammeForm {
            csrf: String::new(),
            enabled: on(p.enabled),
            point_value_cents: p.point_value_cents.to_string(),
            pending_days: p.pending_days.to_string(),
            expiry_months: p.expiry_months.to_string(),
            expiry_end_of_month: on(p.expiry_end_of_month),
            qualifying_months: p.qualifying_months.to_string(),
            downgrade_grace_days: p.downgrade_grace_days.to_string(),
            auto_enrol: on(p.auto_enrol),
            referral_points: p.referral_points.to_string(),
            referral_cap_per_month: p.referral_cap_per_month.to_string(),
            earn_rules: rules_text(&p.earn_rules),
            tiers: tiers_text(&p.tiers),
        }
    }

    /// The programme this form describes (bonus periods kept from `current`).
    fn programme(&self, current: &LoyaltyProgram) -> Result<LoyaltyProgram, ApiError> {
        Ok(LoyaltyProgram {
            enabled: self.enabled.is_some(),
            point_value_cents: number(&self.point_value_cents, "point_value_cents", "point value")?,
            earn_rules: parse_rules(&self.earn_rules)?,
            bonus_periods: current.bonus_periods.clone(),
            pending_days: number(&self.pending_days, "pending_days", "pending days")?,
            expiry_months: number(&self.expiry_months, "expiry_months", "expiry months")?,
            expiry_end_of_month: self.expiry_end_of_month.is_some(),
            qualifying_months: number(&self.qualifying_months, "qualifying_months", "qualifying months")?,
            tiers: parse_tiers(&self.tiers)?,
            downgrade_grace_days: number(&self.downgrade_grace_days, "downgrade_grace_days", "grace days")?,
            auto_enrol: self.auto_enrol.is_some(),
            referral_points: number(&self.referral_points, "referral_points", "referral points")?,
            referral_cap_per_month: number(&self.referral_cap_per_month, "referral_cap_per_month", "referral cap")?,
        })
    }
}

fn programme_view(state: &AppState, user: &UiUser, p: &LoyaltyProgram, form: &ProgrammeForm, extra: Value) -> Response {
    let can_edit = user.actor.can(Permission::LoyaltyAdmin);
    render(
        state,
        "loyalty.html",
        user.lang,
        Some(user),
        context! { section => "loyalty", page => "programme", form, can_edit, bonus_periods => p.bonus_periods.clone(), ..extra },
    )
}

async fn programme_page(
    State(state): State<AppState>,
    user: UiUser,
    axum::extract::Query(q): axum::extract::Query<SavedQuery>,
) -> Response {
    match state.store.loyalty_program().await {
        Ok(p) => programme_view(&state, &user, &p, &ProgrammeForm::of(&p), context! { saved => q.saved.is_some() }),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    saved: Option<String>,
}

async fn save_programme(State(state): State<AppState>, user: UiUser, Form(f): Form<ProgrammeForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf).and_then(|_| permit(&user.actor, Permission::LoyaltyAdmin)) {
        return error_page(&state, &user, e);
    }
    let current = match state.store.loyalty_program().await {
        Ok(p) => p,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    let saved = match f.programme(&current) {
        Ok(p) => state.store.set_loyalty_program(&user.actor, &p).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Redirect::to("/ui/loyalty?saved=1").into_response(),
        Err(e) if e.status.is_client_error() => {
            let mut res = programme_view(&state, &user, &current, &f, context! { error => e.message, field => e.field });
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            res
        }
        Err(e) => error_page(&state, &user, e),
    }
}

// ---- the rewards catalogue ---------------------------------------------------------------------

#[derive(Deserialize, Serialize, Default)]
struct RewardForm {
    #[serde(default)]
    csrf: String,
    name: String,
    points: String,
    #[serde(default)]
    stock: String,
    #[serde(default)]
    cost_yuan: String,
    #[serde(default)]
    active_from: String,
    #[serde(default)]
    active_to: String,
    #[serde(default)]
    tiers: String,
    #[serde(default)]
    image_url: String,
}

/// A business day's start (`from`) or the start of the day after (`to`, so the day is included).
fn day_bound(state: &AppState, v: &str, field: &str, end: bool) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| ApiError::bad_request(field, "a date like 2026-12-31"))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    let tz = state.store.config.business_tz;
    Ok(d.and_hms_opt(0, 0, 0).and_then(|t| tz.from_local_datetime(&t).earliest()).map(|t| t.with_timezone(&Utc)))
}

impl RewardForm {
    fn input(&self, state: &AppState) -> Result<RewardInput, ApiError> {
        let stock = if self.stock.trim().is_empty() { None } else { Some(number(&self.stock, "stock", "stock")?) };
        let cost_cents = if self.cost_yuan.trim().is_empty() {
            0
        } else {
            patron_store::values::parse_money(self.cost_yuan.trim()).map_err(|m| ApiError::bad_request("cost_cents", m))?
        };
        Ok(RewardInput {
            name: self.name.trim().to_owned(),
            points: number(&self.points, "points", "points")?,
            stock,
            cost_cents,
            active_from: day_bound(state, &self.active_from, "active_from", false)?,
            active_to: day_bound(state, &self.active_to, "active_to", true)?,
            tiers: self.tiers.split([',', '，', '、']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            image_url: Some(self.image_url.trim().to_owned()).filter(|u| !u.is_empty()),
        })
    }
}

async fn rewards_view(state: &AppState, user: &UiUser, extra: Value) -> Response {
    match state.store.rewards(None).await {
        Ok(rewards) => {
            let can_edit = user.actor.can(Permission::LoyaltyAdmin);
            render(
                state,
                "loyalty.html",
                user.lang,
                Some(user),
                context! { section => "loyalty", page => "rewards", rewards, can_edit, ..extra },
            )
        }
        Err(e) => error_page(state, user, e.into()),
    }
}

async fn rewards_page(State(state): State<AppState>, user: UiUser) -> Response {
    rewards_view(&state, &user, context! { form => RewardForm::default() }).await
}

async fn create_reward(State(state): State<AppState>, user: UiUser, Form(f): Form<RewardForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf).and_then(|_| permit(&user.actor, Permission::LoyaltyAdmin)) {
        return error_page(&state, &user, e);
    }
    let created = match f.input(&state) {
        Ok(r) => state.store.create_reward(&user.actor, r).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => Redirect::to("/ui/loyalty/rewards").into_response(),
        Err(e) if e.status.is_client_error() => {
            let mut res = rewards_view(&state, &user, context! { form => f, error => e.message, field => e.field }).await;
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            res
        }
        Err(e) => error_page(&state, &user, e),
    }
}

// ---- reports -----------------------------------------------------------------------------------

/// One bar of an inline SVG chart: its label, value and geometry (the page draws `<rect>`s; no
/// script needed).
#[derive(Serialize)]
pub(super) struct Bar {
    label: String,
    value: i64,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

/// Chart width and plot height of the inline bar charts, in SVG units.
pub(super) const CHART_W: i64 = 720;
pub(super) const CHART_H: i64 = 200;

/// Bars of `values` scaled to the tallest (negative values drawn as zero height).
pub(super) fn bars(values: &[(String, i64)]) -> Vec<Bar> {
    let max = values.iter().map(|v| v.1).max().unwrap_or(0).max(1);
    let n = values.len().max(1) as i64;
    let slot = CHART_W / n;
    let w = (slot * 7 / 10).clamp(2, 80);
    values
        .iter()
        .enumerate()
        .map(|(i, (label, v))| {
            let h = (*v).max(0) * CHART_H / max;
            Bar { label: label.clone(), value: *v, x: i as i64 * slot + (slot - w) / 2, y: CHART_H - h, w, h }
        })
        .collect()
}

/// Whole-base reports: the permission and every customer in scope.
fn report_access(user: &UiUser) -> Result<(), ApiError> {
    permit(&user.actor, Permission::LoyaltyReports)?;
    permit(&user.actor, Permission::AllCustomers)
}

async fn liability_page(State(state): State<AppState>, user: UiUser) -> Response {
    let page = async {
        report_access(&user)?;
        let l = state.store.loyalty_liability(None).await?;
        let chart = bars(&l.by_expiry_month.iter().map(|m| (m.month.clone(), m.points)).collect::<Vec<_>>());
        let breakage_pct = format!("{:.1}%", l.breakage_rate * 100.0);
        Ok::<_, ApiError>(
            context! { section => "loyalty", page => "liability", l, chart, breakage_pct, chart_w => CHART_W, chart_h => CHART_H },
        )
    }
    .await;
    match page {
        Ok(ctx) => render(&state, "loyalty.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn referrals_page(State(state): State<AppState>, user: UiUser) -> Response {
    let page = async {
        report_access(&user)?;
        let stats = state.store.referral_stats().await?;
        let groups: Vec<Value> = stats
            .groups
            .iter()
            .map(|g| {
                context! {
                    group => g.group.clone(),
                    customers => g.customers,
                    p_alive => g.mean_p_alive.map(|v| format!("{:.1}%", v * 100.0)),
                    spend => g.mean_spend_cents.map(crate::i18n::yuan_f),
                    loyalty => g.mean_loyalty_index.map(|v| format!("{v:.1}")),
                }
            })
            .collect();
        Ok::<_, ApiError>(context! { section => "loyalty", page => "referrals", groups, stats })
    }
    .await;
    match page {
        Ok(ctx) => render(&state, "loyalty.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

// ---- cost to serve -------------------------------------------------------------------------------

/// The cost-to-serve card of the customer 360: margin against cost from the latest analysis,
/// drawn as two bars; `None` before an analysis or when nothing happened in the period.
pub(super) async fn cost_card(state: &AppState, id: i64) -> Result<Option<Value>, ApiError> {
    let Some(s) = state.store.customer_scores(id).await? else { return Ok(None) };
    let (Some(margin), Some(cost), Some(profit), Some(q)) = (s.margin_cents, s.cost_to_serve_cents, s.profit_cents, s.cts_quadrant.clone())
    else {
        return Ok(None);
    };
    let max = margin.max(cost).max(1);
    // In i128: a stored amount may be as large as i64 allows.
    let width = |v: i64| (i128::from(v.max(0)) * 300 / i128::from(max)) as i64;
    Ok(Some(context! {
        revenue => s.cts_revenue_cents.unwrap_or(0), margin, cost, profit, quadrant => q,
        margin_w => width(margin), cost_w => width(cost),
    }))
}

/// One cell of the matrix as drawn: its place in the 2 × 2 grid and its figures.
#[derive(Serialize)]
struct MatrixCell {
    key: &'static str,
    x: i64,
    y: i64,
    customers: i64,
    revenue: i64,
    margin: i64,
    cost: i64,
    profit: i64,
    /// Circle radius, by the cell's share of the customers.
    r: i64,
}

async fn cost_page(State(state): State<AppState>, user: UiUser) -> Response {
    let page = async {
        permit(&user.actor, Permission::AnalyticsRead)?;
        permit(&user.actor, Permission::AllCustomers)?;
        let report = state.store.cost_to_serve_report(None).await?;
        let total: i64 = report.quadrants.iter().map(|q| q.customers).sum::<i64>().max(1);
        // High value on top, high cost on the right (Shapiro et al.'s matrix).
        let matrix: Vec<MatrixCell> = patron_analytics::cost_to_serve::Quadrant::ALL
            .iter()
            .map(|q| {
                let c = report.quadrants.iter().find(|c| c.quadrant == q.key());
                let n = c.map_or(0, |c| c.customers);
                MatrixCell {
                    key: q.key(),
                    x: if q.high_cost() { 360 } else { 0 },
                    y: if q.high_value() { 0 } else { 180 },
                    customers: n,
                    revenue: c.map_or(0, |c| c.revenue_cents),
                    margin: c.map_or(0, |c| c.margin_cents),
                    cost: c.map_or(0, |c| c.cost_cents),
                    profit: c.map_or(0, |c| c.profit_cents),
                    r: if n == 0 { 0 } else { 8 + 60 * n / total },
                }
            })
            .collect();
        let any = report.quadrants.iter().any(|q| q.customers > 0);
        Ok::<_, ApiError>(context! { section => "loyalty", page => "cost", report, matrix, any })
    }
    .await;
    match page {
        Ok(ctx) => render(&state, "loyalty.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_rules_read_back_what_the_form_shows() {
        let tiers = vec![
            TierDef { name: "银卡".into(), min_points_earned: 1000, multiplier: 1.0, benefits: vec![] },
            TierDef {
                name: "金卡".into(), min_points_earned: 5000, multiplier: 1.5, benefits: vec!["优先服务".into(), "生日礼".into()]
            },
        ];
        assert_eq!(parse_tiers(&tiers_text(&tiers)).ok(), Some(tiers));
        let rules = vec![
            EarnRule { points_per_yuan: 1.0, category: None, channel: None, store: None, multiplier: None },
            EarnRule {
                points_per_yuan: 2.0,
                category: Some("烘焙".into()),
                channel: Some("wechat".into()),
                store: None,
                multiplier: Some(1.5),
            },
        ];
        assert_eq!(parse_rules(&rules_text(&rules)).ok(), Some(rules));
        assert_eq!(parse_tiers("金卡 | lots").err().and_then(|e| e.field), Some("tiers[0]".to_owned()));
    }

    /// Every page of the club renders in both languages (template errors show only at render).
    #[test]
    fn pages_render_in_both_languages() {
        use crate::i18n::{labels, Lang};
        let env = crate::ui::templates(patron_store::StoreConfig::default().business_tz);
        let member = context! { customer_id => 1, member_no => "M1", status => "active", balance => 180, pending => 0, spendable => 180, debt => 0,
        tier => "银卡", earned_in_period => 300, next_tier => context! { name => "金卡", min_points_earned => 1000, points_to_go => 700 },
        next_expiry => context! { at => "2027-06-30T00:00:00Z", points => 180 } };
        let card = context! { member, progress => 30, ledger => vec![context! { created_at => "2026-06-30T00:00:00Z", kind => "redeem", points => -120, source => "x", reason => None::<String> }],
        rewards => vec![context! { id => 1, name => "咖啡券", points => 120, stock => 4 }], benefits => vec!["优先服务"], can_redeem => true, can_adjust => true,
        redeem_key => "k", adjust_key => "a" };
        let c = context! { id => 1, name => "n", tags => Vec::<String>::new(), attributes => context! {} };
        let cost =
            context! { revenue => 100, margin => 30, cost => 50, profit => -20, quadrant => "aggressive", margin_w => 180, cost_w => 300 };
        let cell = context! { abcd_tier => "A", quadrant => "passive", customers => 1, revenue_cents => 1, margin_cents => 1, cost_cents => 0, profit_cents => 1 };
        let matrix: Vec<Value> = ["carriage_trade", "passive", "aggressive", "bargain_basement"]
            .iter()
            .map(|k| context! { key => *k, x => 0, y => 0, customers => 1, revenue => 1, margin => 1, cost => 1, profit => -1, r => 10 })
            .collect();
        let l = context! { outstanding => 1, spendable => 1, pending => 0, outstanding_value_cents => 1, breakage_base_points => 0, expected_liability_cents => 1,
        by_issue_month => vec![context! { month => "2026-06", issued => 1, redeemed => 0, expired => 0, reversed => 0, outstanding => 1 }] };
        let cases: Vec<(&str, Value)> = vec![
            (
                "customer.html",
                context! { c => c.clone(), stats => context! { order_count => 0 }, loyalty => card, cost, loyalty_done => "redeemed" },
            ),
            (
                "customer.html",
                context! { c, stats => context! { order_count => 0 }, loyalty => context! { member => None::<()>, can_enrol => true }, loyalty_error => "e" },
            ),
            (
                "loyalty.html",
                context! { page => "programme", form => ProgrammeForm::default(), can_edit => true, saved => true, error => "e", field => "tiers[0]",
                bonus_periods => vec![context! { name => "会员日", day_of_month => 8, multiplier => 2.0 }] },
            ),
            (
                "loyalty.html",
                context! { page => "rewards", rewards => vec![context! { name => "r", points => 1, stock => None::<i64>, cost_cents => 1, tiers => vec!["金卡"] }],
                can_edit => true, form => RewardForm::default() },
            ),
            (
                "loyalty.html",
                context! { page => "liability", l, chart => bars(&[("2026-07".into(), 5)]), breakage_pct => "1.0%", chart_w => CHART_W, chart_h => CHART_H },
            ),
            (
                "loyalty.html",
                context! { page => "referrals", stats => context! { paid => 1, refused => 0, reversed => 0 },
                groups => vec![context! { group => "referred", customers => 2, p_alive => "50.0%", spend => "¥1.00", loyalty => "40.0" }] },
            ),
            (
                "loyalty.html",
                context! { page => "cost", any => true, matrix, report => context! { as_of => "2026-06-30", period_from => "2025-07-01",
                margin_threshold_cents => 1, cost_threshold_cents => 0, cells => vec![cell] } },
            ),
            ("loyalty.html", context! { page => "cost", any => false }),
        ];
        for lang in [Lang::Zh, Lang::En] {
            for (name, ctx) in &cases {
                let common =
                    context! { t => labels(lang), lang => lang.tag(), user => context! { name => "u", role => "manager" }, csrf => "c" };
                let out = env.get_template(name).and_then(|t| t.render(context! { ..ctx.clone(), ..common }));
                match out {
                    Ok(html) => assert!(!html.contains("lc_") && !html.contains("cts_"), "{name}: a label without a translation"),
                    Err(e) => panic!("{name}: {e:#}"),
                }
            }
        }
    }

    #[test]
    fn bars_scale_to_the_tallest() {
        let b = bars(&[("a".into(), 50), ("b".into(), 100), ("c".into(), -5)]);
        assert_eq!(b.iter().map(|b| b.h).collect::<Vec<_>>(), vec![CHART_H / 2, CHART_H, 0]);
        assert!(b.windows(2).all(|w| w[0].x + w[0].w <= w[1].x));
    }
}
