//! The web analytics pages (issue 19 §8, §10): `/ui/web?from=&to=&site_id=` shows visitors and
//! page views per day as a chart, top pages, referrers, UTM campaigns (linked to patron's
//! campaign of that name) and clicked events; the sites with their snippet; and, for users who
//! may change settings, forms to add a site and to edit retention and page categories. The
//! 360 loads `/ui/customers/{id}/web`: the customer's interests. Labels live here
//! ([`labels`]), passed to the templates as `w`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{Duration, NaiveDate};
use minijinja::context;
use patron_store::access::Permission;
use patron_store::web::{CategoryRule, NewSite, WebOverview, WebSettings};
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// (key, 中文, English): the labels of the web analytics pages.
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "网站分析", "Web analytics"),
    ("nav", "网站分析", "Web"),
    ("from", "从", "From"),
    ("to", "到", "To"),
    ("site", "网站", "Site"),
    ("all_sites", "全部网站", "All sites"),
    ("show", "查看", "Show"),
    ("visitors", "访客（按日累计）", "Visitors (summed over days)"),
    ("pageviews", "浏览量", "Page views"),
    ("per_day", "每日访客与浏览量", "Visitors and page views per day"),
    ("top_pages", "热门页面", "Top pages"),
    ("referrers", "来源", "Referrers"),
    ("campaigns", "UTM 活动", "UTM campaigns"),
    ("events", "点击事件", "Clicked events"),
    ("page", "页面", "Page"),
    ("referrer", "来源网站", "Referring site"),
    ("utm_campaign", "utm_campaign", "utm_campaign"),
    ("campaign", "patron 营销活动", "patron campaign"),
    ("event", "事件", "Event"),
    ("views", "浏览", "Views"),
    ("clicks", "点击", "Clicks"),
    ("no_data", "暂无数据", "No data"),
    ("sites", "网站与代码", "Sites and snippet"),
    ("sites_help", "把代码放进网站每个页面的 <head>。不使用 Cookie（除非开启 Cookie 模式）；浏览器开启“请勿跟踪”或 GPC 时不收集。", "Put the snippet in the <head> of every page of the site. No cookies (unless cookie mode is on); nothing is collected when the browser sends Do-Not-Track or GPC."),
    ("site_name", "名称", "Name"),
    ("origin", "网址（协议+域名）", "Origin (scheme + host)"),
    ("cookie_mode", "Cookie 模式（第一方访客标识）", "Cookie mode (a first-party visitor id)"),
    ("snippet", "代码", "Snippet"),
    ("add_site", "添加网站", "Add a site"),
    ("add", "添加", "Add"),
    ("no_sites", "还没有网站：添加一个，然后把代码放到它的页面里。", "No site yet: add one, then put its snippet in its pages."),
    ("settings", "设置", "Settings"),
    ("raw_retention", "原始事件保留天数", "Days raw events are kept"),
    ("customer_retention", "客户浏览记录保留天数", "Days a customer's page views are kept"),
    ("categories", "页面分类（每行：路径模式 => 分类）", "Page categories (one per line: pattern => category)"),
    ("categories_help", "* 匹配任意字符；不含 * 时按前缀匹配；第一条匹配的规则生效。分类即客户的网站兴趣（细分字段 web_interests）。", "* matches any run of characters; without * the pattern is a prefix; the first matching rule wins. Categories are the customers' web interests (segment field web_interests)."),
    ("save", "保存", "Save"),
    ("saved", "已保存", "Saved"),
    ("interests", "网站兴趣", "Web interests"),
    ("interests_empty", "暂无：客户在网站登录后（identify）其浏览才归到客户名下。", "None yet: page views belong to a customer once the site identifies them after a login."),
    ("interests_help", "按页面分类统计的浏览量", "Page views by page category"),
];

/// The labels in `lang`.
pub(crate) fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::En { *en } else { *zh })).collect()
}

/// Routes of the web analytics pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/web", get(dashboard))
        .route("/ui/web/sites", post(add_site))
        .route("/ui/web/settings", post(save_settings))
        .route("/ui/customers/{id}/web", get(interests))
}

/// The dashboard's range and site, as a form sends them (empty fields are defaults).
#[derive(Debug, Default, Deserialize)]
struct Params {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    site_id: String,
    #[serde(default)]
    saved: Option<String>,
}

/// (from, to, site) of the dashboard: the last 30 business days and every site by default.
fn range(state: &AppState, p: &Params) -> Result<(NaiveDate, NaiveDate, Option<i64>), ApiError> {
    let day = |field: &'static str, v: &str| -> Result<Option<NaiveDate>, ApiError> {
        match v.trim() {
            "" => Ok(None),
            v => NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Some).map_err(|_| ApiError::bad_request(field, "a day is YYYY-MM-DD")),
        }
    };
    let today = state.store.now().with_timezone(&state.store.config.business_tz).date_naive();
    let to = day("to", &p.to)?.unwrap_or(today);
    let from = day("from", &p.from)?.unwrap_or(to - Duration::days(29));
    if to < from {
        return Err(ApiError::bad_request("to", "to must not be before from"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::bad_request("from", "the range is at most 367 days"));
    }
    let site = match p.site_id.trim() {
        "" => None,
        s => Some(s.parse::<i64>().map_err(|_| ApiError::bad_request("site_id", "a site id is a number"))?),
    };
    Ok((from, to, site))
}

/// The per-day chart: a bar of page views and a dot of visitors a day, on one scale.
fn chart(o: &WebOverview) -> minijinja::Value {
    let (w, h, pad) = (640.0_f64, 220.0_f64, 36.0_f64);
    let n = o.days.len().max(1) as f64;
    let top = o.days.iter().map(|d| d.pageviews.max(d.visitors)).max().unwrap_or(0).max(1) as f64;
    let slot = (w - 2.0 * pad) / n;
    let y = |v: i64| h - pad - (h - 2.0 * pad) * v as f64 / top;
    let days: Vec<minijinja::Value> = o
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let x = pad + slot * i as f64;
            context! {
                day => d.day.to_string(), pageviews => d.pageviews, visitors => d.visitors,
                x => format!("{:.1}", x + slot * 0.15), width => format!("{:.1}", (slot * 0.7).max(1.0)),
                y => format!("{:.1}", y(d.pageviews)), height => format!("{:.1}", h - pad - y(d.pageviews)),
                cx => format!("{:.1}", x + slot / 2.0), cy => format!("{:.1}", y(d.visitors)),
            }
        })
        .collect();
    let visitors_line = days
        .iter()
        .map(|d| format!("{},{}", d.get_attr("cx").unwrap_or_default(), d.get_attr("cy").unwrap_or_default()))
        .collect::<Vec<_>>();
    // A label every week or so, the last day always.
    let every = (o.days.len() / 6).max(1);
    let ticks: Vec<minijinja::Value> = o
        .days
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i + 1 == o.days.len())
        .map(|(i, d)| context! { x => format!("{:.1}", pad + slot * (i as f64 + 0.5)), label => d.day.format("%m-%d").to_string() })
        .collect();
    context! {
        width => w, height => h, base => h - pad, left => pad, right => w - pad, top_y => format!("{:.1}", y(top as i64)),
        top_label => top as i64, days, visitors_line => visitors_line.join(" "), ticks,
    }
}

async fn dashboard(State(state): State<AppState>, user: UiUser, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::AnalyticsRead)?;
        let (from, to, site_id) = range(&state, &p)?;
        let overview = state.store.web_overview(from, to, site_id).await?;
        let sites = state.store.web_sites().await?;
        let settings = state.store.web_settings().await?;
        let categories = settings.categories.iter().map(|r| format!("{} => {}", r.pattern, r.category)).collect::<Vec<_>>().join("\n");
        let chart = chart(&overview);
        let base = crate::api::tickets::public_base(&state, &headers);
        let sites: Vec<minijinja::Value> = sites
            .iter()
            .map(|s| {
                let cookie = if s.cookie_mode { " data-cookie" } else { "" };
                context! {
                    id => s.id, name => s.name.clone(), origin => s.origin.clone(), cookie_mode => s.cookie_mode,
                    snippet => format!("<script src=\"{base}/js/p.js\" data-site=\"{}\"{cookie} defer></script>", s.id),
                }
            })
            .collect();
        Ok::<_, ApiError>(context! {
            section => "web", from => from.to_string(), to => to.to_string(), site_id, overview, chart, sites, settings, categories,
            may_admin => user.actor.can(Permission::SettingsAdmin), saved => p.saved.is_some(), w => labels(user.lang),
        })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "web.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct SiteForm {
    csrf: String,
    name: String,
    origin: String,
    #[serde(default)]
    cookie_mode: Option<String>,
}

/// Adds a site; back to the dashboard, or the error page with the reason.
async fn add_site(State(state): State<AppState>, user: UiUser, Form(f): Form<SiteForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::SettingsAdmin)?;
        let site = NewSite { name: f.name, origin: f.origin.trim().to_owned(), cookie_mode: f.cookie_mode.is_some() };
        state.store.create_web_site(&user.actor, &site).await?;
        state.collector.forget();
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/ui/web").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: String,
    raw_retention_days: String,
    customer_retention_days: String,
    #[serde(default)]
    categories: String,
}

/// `pattern => category` lines (blank lines skipped) as rules; a line without `=>` is refused
/// with its number.
fn category_rules(text: &str) -> Result<Vec<CategoryRule>, ApiError> {
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((pattern, category)) = line.split_once("=>") else {
            return Err(ApiError::bad_request("categories", format!("line {}: write pattern => category", n + 1)));
        };
        rules.push(CategoryRule { pattern: pattern.trim().to_owned(), category: category.trim().to_owned() });
    }
    Ok(rules)
}

/// Saves retention and page categories (audited); back to the dashboard.
async fn save_settings(State(state): State<AppState>, user: UiUser, Form(f): Form<SettingsForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::SettingsAdmin)?;
        let days = |field: &'static str, v: &str| {
            v.trim().parse::<i64>().map_err(|_| ApiError::bad_request(field, "a number of days from 1 to 3650"))
        };
        let settings = WebSettings {
            raw_retention_days: days("raw_retention_days", &f.raw_retention_days)?,
            customer_retention_days: days("customer_retention_days", &f.customer_retention_days)?,
            categories: category_rules(&f.categories)?,
        };
        state.store.set_web_settings(&user.actor, &settings).await?;
        state.collector.forget();
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/ui/web?saved=1").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

/// The 360's web interests card: page views by category, as SVG bars (the CSP allows no inline
/// style).
async fn interests(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        check_customer_access(&state, &user.actor, id).await?;
        let rows = state.store.web_interests(id).await?;
        let top = rows.iter().map(|r| r.views).max().unwrap_or(1).max(1) as f64;
        let rows: Vec<minijinja::Value> = rows
            .iter()
            .map(
                |r| context! { category => r.category.clone(), views => r.views, width => (190.0 * r.views as f64 / top).round().max(1.0) },
            )
            .collect();
        Ok::<_, ApiError>(context! { cid => id, rows, w => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "web_interests.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[cfg(test)]
mod tests {
    use super::category_rules;

    #[test]
    fn category_lines_become_rules_and_a_bad_line_is_named() {
        let rules = category_rules("/menu/* => 菜单\n\n  */wine* =>  酒水 \n").map_err(|e| e.message).unwrap_or_default();
        let pairs: Vec<(String, String)> = rules.into_iter().map(|r| (r.pattern, r.category)).collect();
        assert_eq!(pairs, vec![("/menu/*".to_owned(), "菜单".to_owned()), ("*/wine*".to_owned(), "酒水".to_owned())]);
        let err = category_rules("/a => b\n/menu 菜单").err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
    }
}
