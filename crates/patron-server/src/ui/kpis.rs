//! The account-manager KPI dashboard (issue 19 §7, §10): `/ui/kpis?month=YYYY-MM&trend=KPI` shows
//! each manager's numbers of the month (each a link to the customers behind it) and a trend
//! chart of one KPI over the six months up to the month, a line per manager;
//! `/ui/kpis/{user_id}?month=&kpi=` lists the customers behind one number. Labels of these pages
//! live here ([`labels`]), passed to the templates as `k`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, NaiveDate};
use minijinja::context;
use patron_store::access::Permission;
use patron_store::accounts::kpis::{parse_month, AmKpiRow, KPIS};
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{permit, UiUser};
use crate::error::{ApiError, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// (key, 中文, English): the labels of the KPI pages.
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "客户经理考核", "Account-manager KPIs"),
    ("nav", "客户经理考核", "AM KPIs"),
    ("month", "月份", "Month"),
    ("show", "查看", "Show"),
    ("manager", "客户经理", "Account manager"),
    ("customers", "客户数（月初）", "Customers (at month start)"),
    ("average_customer_value", "平均客户价值（近12月消费）", "Average customer value (12-month spend)"),
    ("prospect_conversion", "潜在客户转化率", "Prospect conversion"),
    ("valuable_customer_churn", "重要客户（A/B）流失率", "Valuable-customer (A/B) churn"),
    ("data_accuracy", "资料准确率", "Data accuracy"),
    ("cadence_adherence", "按期联系率", "Cadence adherence"),
    ("review_coverage", "关系评估覆盖率", "Review coverage"),
    ("satisfaction", "满意度（是否倾听，1–5）", "Satisfaction (did we listen, 1–5)"),
    ("on_time_rate", "准时交付率", "On-time delivery"),
    ("trend", "趋势（近6个月）", "Trend (last 6 months)"),
    ("trend_of", "趋势指标", "Trend of"),
    ("no_data", "暂无数据", "No data"),
    ("behind", "指标背后的客户", "The customers behind the number"),
    ("customer", "客户", "Customer"),
    ("value", "近12月消费", "12-month spend"),
    ("prospect", "月初潜在客户", "Prospect at start"),
    ("converted", "本月首购", "First purchase in month"),
    ("tier_at_start", "月初等级", "Tier at start"),
    ("became_churned", "本月流失", "Churned in month"),
    ("data_problems", "资料问题", "Data problems"),
    ("contacts", "到期联系（按期/到期）", "Contacts due (on time / due)"),
    ("review_current", "评估未逾期", "Review not overdue"),
    ("answers", "回答数", "Answers"),
    ("deliveries", "交付（准时/有承诺）", "Deliveries (on time / promised)"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
    ("p_mobile", "手机", "mobile"),
    ("p_email", "邮箱", "e-mail"),
    ("p_consent", "授权", "consent"),
    ("p_stale", "超过12个月未更新", "not updated in 12 months"),
    ("back", "← 返回考核", "← Back to the KPIs"),
];

/// The labels in `lang`.
pub(crate) fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::En { *en } else { *zh })).collect()
}

/// Routes of the KPI pages.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/kpis", get(dashboard)).route("/ui/kpis/{user_id}", get(customers))
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    month: Option<String>,
    trend: Option<String>,
    kpi: Option<String>,
}

/// The KPIs a trend can show (ratios and the value).
const TRENDS: [&str; 8] = [
    "average_customer_value",
    "prospect_conversion",
    "valuable_customer_churn",
    "data_accuracy",
    "cadence_adherence",
    "review_coverage",
    "satisfaction",
    "on_time_rate",
];

fn month_of(state: &AppState, m: Option<&str>) -> Result<NaiveDate, ApiError> {
    let today = state.store.now().with_timezone(&state.store.config.business_tz).date_naive();
    let this = today.with_day(1).unwrap_or(today);
    match m.map(str::trim).filter(|m| !m.is_empty()) {
        None => Ok(this),
        Some(m) => {
            let first = parse_month(m).map_err(|_| ApiError::bad_request("month", "a month is YYYY-MM"))?;
            if first > today {
                return Err(ApiError::bad_request("month", "the month has not begun"));
            }
            Ok(first)
        }
    }
}

fn months_back(first: NaiveDate, n: u32) -> NaiveDate {
    let total = first.year() * 12 + first.month0() as i32 - n as i32;
    NaiveDate::from_ymd_opt(total.div_euclid(12), total.rem_euclid(12) as u32 + 1, 1).unwrap_or(first)
}

fn value_of(r: &AmKpiRow, kpi: &str) -> Option<f64> {
    match kpi {
        "average_customer_value" => r.average_customer_value_cents.map(|v| v as f64 / 100.0),
        "prospect_conversion" => r.prospect_conversion,
        "valuable_customer_churn" => r.valuable_customer_churn,
        "data_accuracy" => r.data_accuracy,
        "cadence_adherence" => r.cadence_adherence,
        "review_coverage" => r.review_coverage,
        "satisfaction" => r.satisfaction,
        _ => r.on_time_rate,
    }
}

/// How a value shows in the table and the chart's scale.
fn shown(kpi: &str, v: Option<f64>) -> String {
    match (kpi, v) {
        (_, None) => "—".into(),
        ("average_customer_value", Some(v)) => format!("¥{v:.2}"),
        ("satisfaction", Some(v)) => format!("{v:.2}"),
        (_, Some(v)) => format!("{:.1}%", v * 100.0),
    }
}

const COLOURS: [&str; 8] = ["#2563eb", "#c0392b", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777"];

async fn dashboard(State(state): State<AppState>, user: UiUser, Query(p): Query<Params>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::AnalyticsRead)?;
        let first = month_of(&state, p.month.as_deref())?;
        let month = first.format("%Y-%m").to_string();
        let trend = p.trend.as_deref().filter(|t| TRENDS.contains(t)).unwrap_or("cadence_adherence").to_owned();
        let report = state.store.account_manager_kpis(&user.actor, &month).await?;
        let rows: Vec<minijinja::Value> = report
            .rows
            .iter()
            .map(|r| {
                let cells: Vec<minijinja::Value> =
                    TRENDS.iter().map(|k| context! { kpi => *k, text => shown(k, value_of(r, k)) }).collect();
                context! { user_id => r.user_id, name => r.user_name.clone(), customers => r.customers, cells }
            })
            .collect();
        // The trend: six months up to the chosen one, one line per manager of those months.
        let months: Vec<NaiveDate> = (0..6).rev().map(|i| months_back(first, i)).collect();
        let mut series: BTreeMap<i64, (String, Vec<Option<f64>>)> = BTreeMap::new();
        for (i, m) in months.iter().enumerate() {
            let r = state.store.account_manager_kpis(&user.actor, &m.format("%Y-%m").to_string()).await?;
            for row in &r.rows {
                let e = series.entry(row.user_id).or_insert_with(|| (row.user_name.clone(), vec![None; months.len()]));
                e.1[i] = value_of(row, &trend);
            }
        }
        let (w, h, pad) = (600.0_f64, 240.0_f64, 40.0_f64);
        let top = series.values().flat_map(|s| s.1.iter().flatten().copied()).fold(0.0_f64, f64::max);
        let top = match trend.as_str() {
            "satisfaction" => 5.0,
            "average_customer_value" => (top * 1.1).max(1.0),
            _ => 1.0,
        };
        let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (months.len() - 1).max(1) as f64;
        let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / top).clamp(0.0, 1.0);
        let lines: Vec<minijinja::Value> = series
            .iter()
            .enumerate()
            .map(|(n, (uid, (name, vals)))| {
                let points = vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                    .collect::<Vec<_>>()
                    .join(" ");
                let dots: Vec<minijinja::Value> = vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| {
                        v.map(|v| context! { x => format!("{:.1}", x(i)), y => format!("{:.1}", y(v)), text => shown(&trend, Some(v)) })
                    })
                    .collect();
                context! { user_id => *uid, name => name.clone(), colour => COLOURS[n % COLOURS.len()], points, dots }
            })
            .collect();
        let ticks: Vec<minijinja::Value> = months
            .iter()
            .enumerate()
            .map(|(i, m)| context! { x => format!("{:.1}", x(i)), label => m.format("%Y-%m").to_string() })
            .collect();
        let chart = context! { width => w, height => h, base => h - pad, left => pad, right => w - pad, top_y => format!("{:.1}", y(top)),
        top_label => shown(&trend, Some(top)), lines, ticks };
        Ok::<_, ApiError>(context! { section => "kpis", month, report_to => report.to.to_string(), rows, kpis => TRENDS, trend, chart,
        k => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "kpis.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn customers(State(state): State<AppState>, user: UiUser, Path(user_id): Path<i64>, Query(p): Query<Params>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::AnalyticsRead)?;
        let first = month_of(&state, p.month.as_deref())?;
        let month = first.format("%Y-%m").to_string();
        let kpi = p.kpi.as_deref().filter(|k| KPIS.contains(k)).unwrap_or("customers").to_owned();
        let rows = state.store.account_manager_kpi_customers(&user.actor, user_id, &month, Some(&kpi)).await?;
        let name = state
            .store
            .account_manager_kpis(&user.actor, &month)
            .await?
            .rows
            .into_iter()
            .find(|r| r.user_id == user_id)
            .map(|r| r.user_name);
        let rows: Vec<minijinja::Value> = rows
            .into_iter()
            .map(|c| {
                context! {
                    customer_id => c.customer_id, name => c.name, value => crate::i18n::yuan(c.value_cents),
                    prospect => c.prospect_at_start, converted => c.converted, tier => c.tier_at_start,
                    became_churned => c.became_churned, problems => c.data_problems,
                    contacts => format!("{} / {}", c.contacts_on_time, c.contacts_due), review_current => c.review_current,
                    answers => c.answers, satisfaction => c.satisfaction.map(|s| format!("{s:.2}")),
                    deliveries => format!("{} / {}", c.on_time, c.delivered),
                }
            })
            .collect();
        Ok::<_, ApiError>(context! { section => "kpis", month, kpi, user_id, manager => name, rows, k => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "kpi_customers.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}
