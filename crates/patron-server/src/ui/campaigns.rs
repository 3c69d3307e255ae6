//! `/ui/campaigns`: the campaign list, the wizard (segment → channel → template → holdout →
//! schedule → review with the counts a launch would give → launch) and the report page (groups,
//! the lift with its interval, and an inline SVG chart of cumulative conversion by day).

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDateTime, TimeZone, Utc};
use minijinja::context;
use patron_store::access::Permission;
use patron_store::engagement::campaigns::{CampaignChannel, NewCampaign};
use patron_store::engagement::report::CampaignReport;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{permit, UiUser};
use crate::error::{ApiError, Form, Path};
use crate::AppState;

/// Routes of the campaign pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/campaigns", get(list).post(create))
        .route("/ui/campaigns/new", get(wizard))
        .route("/ui/campaigns/{id}", get(detail))
        .route("/ui/campaigns/{id}/launch", post(launch))
        .route("/ui/campaigns/{id}/report", get(report))
}

#[derive(Deserialize)]
struct WizardForm {
    csrf: String,
    name: String,
    /// A saved or built-in segment's key, or empty for `rule`.
    #[serde(default)]
    segment_key: String,
    #[serde(default)]
    rule: String,
    channel: String,
    template_id: String,
    holdout_percent: String,
    #[serde(default)]
    conversion_window_days: String,
    /// `YYYY-MM-DDTHH:MM`, business time; empty: at launch.
    #[serde(default)]
    send_at: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CampaignsRead)?;
        Ok::<_, ApiError>(context! { section => "campaigns", campaigns => state.store.campaigns().await?,
        can_write => user.actor.can(Permission::CampaignsWrite) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "campaigns.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn wizard_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CampaignsWrite)?;
        let mut segments = state.store.segments().await?;
        segments.extend(patron_store::segments::builtin_segments());
        let templates: Vec<_> =
            state.store.templates().await?.into_iter().filter(|t| t.purpose == patron_store::engagement::Purpose::Marketing).collect();
        Ok::<_, ApiError>(context! { section => "campaigns", segments, templates, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "campaign_new.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn wizard(State(state): State<AppState>, user: UiUser) -> Response {
    wizard_page(&state, &user, context! {}).await
}

fn parse_form(state: &AppState, f: &WizardForm) -> Result<NewCampaign, ApiError> {
    let segment = if f.segment_key.trim().is_empty() { f.rule.trim().to_owned() } else { f.segment_key.trim().to_owned() };
    let channel: CampaignChannel = serde_json::from_value(serde_json::Value::String(f.channel.clone()))
        .map_err(|_| ApiError::bad_request("channel", "choose a channel"))?;
    let template_id = f.template_id.trim().parse().map_err(|_| ApiError::bad_request("template_id", "choose a template"))?;
    let holdout_percent: f64 =
        f.holdout_percent.trim().parse().map_err(|_| ApiError::bad_request("holdout_percent", "a number from 0 to 90"))?;
    let conversion_window_days = match f.conversion_window_days.trim() {
        "" => 7,
        d => d.parse().map_err(|_| ApiError::bad_request("conversion_window_days", "a number of days from 1 to 365"))?,
    };
    let send_at = match f.send_at.trim() {
        "" => None,
        s => {
            let local =
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").map_err(|_| ApiError::bad_request("send_at", "a date and time"))?;
            let at = state
                .store
                .config
                .business_tz
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| ApiError::bad_request("send_at", "not a time of the calendar"))?;
            Some(at.with_timezone(&Utc))
        }
    };
    Ok(NewCampaign { name: f.name.clone(), segment, channel, template_id, holdout_percent, conversion_window_days, send_at })
}

async fn create(State(state): State<AppState>, user: UiUser, Form(f): Form<WizardForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = permit(&user.actor, Permission::CampaignsWrite) {
        return error_page(&state, &user, e);
    }
    let created = match parse_form(&state, &f) {
        Ok(c) => state.store.create_campaign(&user.actor, c).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match created {
        Ok(c) => Redirect::to(&format!("/ui/campaigns/{}", c.id)).into_response(),
        Err(e) if e.status.is_client_error() => {
            let form = context! { name => f.name, segment_key => f.segment_key, rule => f.rule, channel => f.channel,
            template_id => f.template_id, holdout_percent => f.holdout_percent, conversion_window_days => f.conversion_window_days,
            send_at => f.send_at };
            wizard_page(&state, &user, context! { error => e.message, form }).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

async fn detail(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CampaignsRead)?;
        let campaign = state.store.campaign(id).await?;
        let template = state.store.template(campaign.template_id).await.ok();
        // The review: what a launch would give now (nothing is written).
        let preview = if campaign.status == "draft" { Some(state.store.campaign_launch_preview(&user.actor, id).await?) } else { None };
        Ok::<_, ApiError>(context! { section => "campaigns", campaign, template, preview,
        can_launch => user.actor.can(Permission::CampaignsLaunch) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "campaign.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn launch(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CampaignsLaunch)?;
        state.store.launch_campaign(&user.actor, id).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/campaigns/{id}")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

/// The chart: cumulative conversion by day of both groups as two polylines in a 600×240 box.
fn chart(r: &CampaignReport) -> minijinja::Value {
    let (w, h, pad) = (600.0, 240.0, 36.0);
    let days = r.by_day.len().max(1) as f64;
    let top = r.by_day.iter().map(|p| p.treated.max(p.control)).fold(0.0_f64, f64::max).max(0.01) * 1.1;
    let x = |d: f64| pad + (w - 2.0 * pad) * if days > 1.0 { (d - 1.0) / (days - 1.0) } else { 0.5 };
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / top;
    let line = |f: &dyn Fn(&patron_store::engagement::report::DayPoint) -> f64| {
        r.by_day.iter().map(|p| format!("{:.1},{:.1}", x(p.day as f64), y(f(p)))).collect::<Vec<_>>().join(" ")
    };
    let ticks: Vec<minijinja::Value> = r.by_day.iter().map(|p| context! { x => format!("{:.1}", x(p.day as f64)), day => p.day }).collect();
    context! {
        width => w, height => h, base => h - pad, left => pad, right => w - pad,
        treated => line(&|p| p.treated), control => line(&|p| p.control),
        top_label => format!("{:.1}%", top * 100.0), top_y => format!("{:.1}", y(top)), ticks,
    }
}

async fn report(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CampaignsRead)?;
        let campaign = state.store.campaign(id).await?;
        let report = state.store.campaign_report(id).await?;
        let chart = chart(&report);
        let pct = |v: f64| format!("{:.1}", v * 100.0);
        let lift = report.lift.as_ref().map(|l| {
            context! {
                diff => pct(l.conversion_difference.estimate), low => pct(l.conversion_difference.low), high => pct(l.conversion_difference.high),
                relative => l.relative_lift.map(|r| format!("{:+.0}%", r * 100.0)),
                revenue => l.revenue_per_recipient_difference_cents.map(|e| context! {
                    estimate => e.estimate.round() as i64, low => e.low.round() as i64, high => e.high.round() as i64 }),
                incremental_orders => format!("{:.1}", l.incremental_orders), incremental_revenue => l.incremental_revenue_cents,
            }
        });
        let rates = context! {
            treated_conversion => pct(report.treated.conversion_rate), control_conversion => pct(report.control.conversion_rate),
            treated_response => pct(report.treated.response_rate), control_response => pct(report.control.response_rate),
        };
        Ok::<_, ApiError>(context! { section => "campaigns", campaign, report, chart, lift, rates })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "campaign_report.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}
