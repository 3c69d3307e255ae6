//! The fulfilment pages (issue 19 §5, §10): the order chains as a timeline on the customer 360
//! (a fragment the 360 loads, `/ui/customers/{id}/fulfilment`, with a form to record a step)
//! and the on-time delivery chart (`/ui/fulfilment`): by month and by account manager. Labels
//! of these pages live here ([`labels`]), passed to the templates as `f`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use minijinja::context;
use patron_store::access::Permission;
use patron_store::fulfilment::NewStep;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// (key, 中文, English): the labels of the fulfilment and plan pages.
const LABELS: &[(&str, &str, &str)] = &[
    ("fulfilment", "履约进度", "Fulfilment"),
    ("on_time", "准时交付", "On-time delivery"),
    ("on_time_rate", "准时交付率", "On-time delivery rate"),
    ("by_month", "按月", "By month"),
    ("by_manager", "按客户经理", "By account manager"),
    ("by_customer", "按客户", "By customer"),
    ("delivered", "已交付（有承诺日期）", "Delivered (with a promise)"),
    ("on_time_count", "准时", "On time"),
    ("rate", "比率", "Rate"),
    ("overall", "总体", "Overall"),
    ("unassigned", "未分配", "Unassigned"),
    ("from", "从", "From"),
    ("to", "到", "To"),
    ("show", "查看", "Show"),
    ("no_chain", "暂无履约记录", "No fulfilment recorded yet"),
    ("order", "订单", "Order"),
    ("step", "环节", "Step"),
    ("promised", "承诺", "Promised"),
    ("done_at", "完成", "Done"),
    ("late", "延迟", "Late"),
    ("late_min", "延迟（分钟）", "Late (minutes)"),
    ("pending", "待完成", "Pending"),
    ("note", "备注", "Note"),
    ("record_step", "记录环节", "Record a step"),
    ("record", "记录", "Record"),
    ("s_accepted", "接受", "Accepted"),
    ("s_dispatched", "派发", "Dispatched"),
    ("s_produced", "生产", "Produced"),
    ("s_tested", "检测", "Tested"),
    ("s_packed", "包装", "Packed"),
    ("s_shipped", "运输", "Shipped"),
    ("s_delivered", "交付", "Delivered"),
    ("s_installed", "安装", "Installed"),
    ("s_invoiced", "发票", "Invoiced"),
    ("s_serviced", "维修", "Serviced"),
    ("no_data", "暂无数据", "No data"),
    ("plans", "客户计划", "Account plans"),
    ("plan", "客户计划", "Account plan"),
    ("plan_current", "当前计划", "Current plan"),
    ("plan_history", "历史计划", "Earlier plans"),
    ("plan_new", "新建计划（将替换当前计划）", "New plan (replaces the current one)"),
    ("goals", "共同目标", "Shared goals"),
    ("exp_ours", "我方对客户的期望", "What we expect of them"),
    ("exp_theirs", "客户对我方的期望", "What they expect of us"),
    ("kpis", "共同指标", "Shared KPIs"),
    ("kpi_name", "指标名称", "KPI"),
    ("kpi_kind", "类型", "Kind"),
    ("target", "目标", "Target"),
    ("actual", "实际", "Actual"),
    ("met", "达成", "Met"),
    ("not_met", "未达成", "Not met"),
    ("review_on", "复盘日期", "Review date"),
    ("create_plan", "保存计划", "Save the plan"),
    ("scorecard", "客户记分卡", "Customer scorecard"),
    ("scorecard_link", "记分卡链接（仅显示一次，请复制发送给客户）", "Scorecard link (shown once: copy it to the customer)"),
    ("scorecard_expires", "链接有效期至", "Link works until"),
    ("window", "统计周期（天）", "Window (days)"),
    ("as_of", "截至", "As of"),
    ("k_on_time_delivery", "准时交付率（%）", "On-time delivery (%)"),
    ("k_complaint_resolution_hours", "投诉解决时长（小时）", "Complaint resolution (hours)"),
    ("k_satisfaction", "满意度（1–5）", "Satisfaction (1–5)"),
    ("at_least", "不低于", "at least"),
    ("at_most", "不高于", "at most"),
    ("scorecard_intro", "我们共同商定的指标与实际表现", "The measures we agreed together and how we are doing"),
    ("scorecard_gone", "链接无效或已过期", "This link is unknown or has expired"),
    ("language", "English", "中文"),
];

/// The labels in `lang`.
pub(crate) fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::En { *en } else { *zh })).collect()
}

/// Routes of the fulfilment pages.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/customers/{id}/fulfilment", get(card).post(record)).route("/ui/fulfilment", get(on_time_page))
}

/// The 360's fulfilment card: the chains of the customer's latest orders as a timeline.
async fn card(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        check_customer_access(&state, &user.actor, id).await?;
        let chains = state.store.customer_fulfilment(id, 10).await?;
        let orders = state.store.customer_orders(id, None, 20).await?.items;
        let orders: Vec<_> = orders
            .iter()
            .filter(|o| o.status != "cancelled")
            .map(|o| context! { id => o.id, external_id => o.external_id.clone(), ordered_at => o.ordered_at.to_rfc3339() })
            .collect();
        let steps = state.store.fulfilment_settings().await?.steps;
        let may_write = user.actor.can(Permission::CustomersWrite);
        Ok::<_, ApiError>(context! { cid => id, chains, orders, steps, may_write, f => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "fulfilment_card.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct StepForm {
    csrf: String,
    order_id: i64,
    step: String,
    #[serde(default)]
    at: String,
    #[serde(default)]
    promised_on: String,
    #[serde(default)]
    note: String,
}

/// Records a step from the 360's form; back to the 360, or the error page with the reason.
async fn record(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<StepForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CustomersWrite)?;
        check_customer_access(&state, &user.actor, id).await?;
        if state.store.order_customer(f.order_id).await? != id {
            return Err(ApiError::not_found("order"));
        }
        let tz = state.store.config.business_tz;
        // `datetime-local` is a local time of the business time zone.
        let at = match f.at.trim() {
            "" => None,
            v => Some(
                NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
                    .ok()
                    .and_then(|n| tz.from_local_datetime(&n).earliest())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| ApiError::bad_request("at", "not a time"))?,
            ),
        };
        let promised_at = match f.promised_on.trim() {
            "" => None,
            v => Some(NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| ApiError::bad_request("promised_at", "not a day"))?.to_string()),
        };
        let note = Some(f.note.trim().to_owned()).filter(|n| !n.is_empty());
        let input = NewStep { step: f.step.clone(), at, promised_at, note };
        state.store.record_fulfilment(&user.actor, f.order_id, &input).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}#fulfilment")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct PeriodQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// The on-time delivery chart: by month (bars) and by account manager (table).
async fn on_time_page(State(state): State<AppState>, user: UiUser, Query(q): Query<PeriodQuery>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::AnalyticsRead)?;
        let tz = state.store.config.business_tz;
        let to = q.to.unwrap_or_else(|| state.store.now().with_timezone(&tz).date_naive());
        let from = q.from.unwrap_or_else(|| to - chrono::Duration::days(364));
        let period = crate::api::service::period(&state, Some(from), Some(to))?;
        let months = state.store.on_time(&user.actor, period, "month").await?;
        let managers = state.store.on_time(&user.actor, period, "account_manager").await?;
        // Bars of the SVG chart (attributes, not styles: the pages' CSP allows no inline style).
        let bars: Vec<_> = months
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let pct = r.rate.unwrap_or(0.0) * 100.0;
                context! { y => i * 24, width => format!("{pct:.1}"), label => r.key.clone(), text => format!("{pct:.1}% ({}/{})", r.on_time, r.delivered) }
            })
            .collect();
        let height = months.rows.len().max(1) * 24;
        Ok::<_, ApiError>(context! { section => "fulfilment", from => from.to_string(), to => to.to_string(), months, managers, bars, height,
            f => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "fulfilment.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}
