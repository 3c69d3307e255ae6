//! The demo's web analytics (issue 19 §8, §10): a site — the demo shop, which `patron demo`
//! serves on the port after patron's — with page categories, 30 days of page views and clicks
//! (referrers, UTM campaigns, one of them patron's own SMS campaign), and some visitors who
//! logged in on the shop and were identified, so their customers have web interests and
//! page views on their timelines. The shop's pages load the real snippet: opening them counts
//! real page views, and its "log in" page calls `patron.identify` with a token patron issued.

use anyhow::Result;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use patron_store::db::query;
use patron_store::users::Actor;
use patron_store::web::{CategoryRule, Hit, HitKind, NewSite, View, WebSettings};
use patron_store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo made.
pub struct DemoWeb {
    /// The shop's site id.
    pub site_id: i64,
    /// Page views over the 30 days.
    pub pageviews: usize,
    /// Customers identified on the shop.
    pub identified: usize,
}

/// The shop's pages: (path, title, weight).
const PAGES: &[(&str, &str, u32)] = &[
    ("/", "首页", 30),
    ("/menu/hotpot", "菜单 · 火锅", 18),
    ("/menu/tea", "菜单 · 茶饮", 10),
    ("/wine/red", "酒水 · 红酒", 6),
    ("/wine/baijiu", "酒水 · 白酒", 5),
    ("/events/tasting", "活动 · 品鉴会", 6),
    ("/membership", "会员俱乐部", 8),
    ("/stores", "门店", 9),
];

/// Referring sites of a visit's first page (None: typed in or a bookmark).
const REFERRERS: &[Option<&str>] =
    &[None, None, None, Some("https://www.baidu.com/s?wd=火锅"), Some("https://weibo.com/"), Some("https://www.dianping.com/shop/1")];

fn pick_page(rng: &mut StdRng) -> (&'static str, &'static str) {
    let total: u32 = PAGES.iter().map(|p| p.2).sum();
    let mut n = rng.gen_range(0..total);
    for (path, title, w) in PAGES {
        if n < *w {
            return (path, title);
        }
        n -= w;
    }
    ("/", "首页")
}

fn random_visitor(rng: &mut StdRng) -> String {
    (0..32).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect()
}

/// Makes the shop's site and settings and 30 days of its traffic.
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>, shop_origin: &str) -> Result<DemoWeb> {
    let actor = Actor::cli();
    let site = store.create_web_site(&actor, &NewSite { name: "演示商城".into(), origin: shop_origin.into(), cookie_mode: false }).await?;
    let rule = |pattern: &str, category: &str| CategoryRule { pattern: pattern.into(), category: category.into() };
    let settings = WebSettings {
        categories: vec![rule("/menu/*", "菜单"), rule("/wine/*", "酒水"), rule("/events/*", "活动"), rule("/membership", "会员")],
        ..Default::default()
    };
    store.set_web_settings(&actor, &settings).await?;
    let campaign: Option<(String,)> = store.db.reader().fetch_optional(query("SELECT name FROM campaigns ORDER BY id")).await?;
    let campaigns: Vec<String> = campaign.map(|c| c.0).into_iter().chain(["autumn-menu".to_owned()]).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x3EB);
    let mut hits = Vec::new();
    // (visitor, time of its last view) of visitors who may log in later.
    let mut loyal = Vec::new();
    for days_ago in (0..30).rev() {
        let day = now - Duration::days(days_ago);
        let weekend = matches!(day.with_timezone(&store.config.business_tz).weekday(), Weekday::Sat | Weekday::Sun);
        let visitors = rng.gen_range(40..90) * if weekend { 2 } else { 1 };
        for _ in 0..visitors {
            let visitor = random_visitor(&mut rng);
            let mut at = day - Duration::minutes(rng.gen_range(0..12 * 60));
            let first_referrer = REFERRERS[rng.gen_range(0..REFERRERS.len())];
            let utm = (rng.gen_range(0..100) < 12).then(|| campaigns[rng.gen_range(0..campaigns.len())].clone());
            for n in 0..rng.gen_range(1..6) {
                let (path, title) = pick_page(&mut rng);
                let (url, referrer_host, utm_campaign) = if n == 0 {
                    let q = utm.as_deref().map(|u| format!("?utm_source=sms&utm_campaign={u}")).unwrap_or_default();
                    (
                        format!("{shop_origin}{path}{q}"),
                        first_referrer.and_then(patron_store::web::parse_url).map(|u| host(&u.0)),
                        utm.clone(),
                    )
                } else {
                    (format!("{shop_origin}{path}"), None, None)
                };
                let view = View {
                    kind: "pageview",
                    path: path.into(),
                    url,
                    title: Some(title.into()),
                    referrer_host,
                    utm_source: utm_campaign.as_ref().map(|_| "sms".to_owned()),
                    utm_campaign,
                    category: settings.category_of(path),
                    ..Default::default()
                };
                hits.push(Hit { site_id: site.id, visitor: visitor.clone(), at: at.min(now), what: HitKind::View(Box::new(view)) });
                if path.starts_with("/menu/") && rng.gen_range(0..100) < 15 {
                    let click = View {
                        kind: "click",
                        path: path.into(),
                        url: format!("{shop_origin}{path}"),
                        event_name: Some("book-table".into()),
                        ..Default::default()
                    };
                    hits.push(Hit { site_id: site.id, visitor: visitor.clone(), at: at.min(now), what: HitKind::View(Box::new(click)) });
                }
                at += Duration::seconds(rng.gen_range(20..240));
            }
            if rng.gen_range(0..100) < 3 {
                loyal.push((visitor, at));
            }
        }
    }
    let pageviews = hits.iter().filter(|h| matches!(&h.what, HitKind::View(v) if v.kind == "pageview")).count();
    for chunk in hits.chunks(2_000) {
        store.store_web_hits(chunk).await?;
    }
    // Some visitors log in: the shop identifies them, their views become their customers'.
    let customers: Vec<(i64,)> = store
        .db
        .reader()
        .fetch_all(
            query("SELECT id FROM customers WHERE deleted_at IS NULL AND email IS NOT NULL ORDER BY id LIMIT $1").bind(loyal.len() as i64),
        )
        .await?;
    let identifies: Vec<Hit> = loyal
        .iter()
        .zip(&customers)
        .map(|((visitor, at), (customer_id,))| Hit {
            site_id: site.id,
            visitor: visitor.clone(),
            at: (*at + Duration::minutes(1)).min(now),
            what: HitKind::Identify(*customer_id),
        })
        .collect();
    store.store_web_hits(&identifies).await?;
    store.run_web_jobs().await?;
    Ok(DemoWeb { site_id: site.id, pageviews, identified: identifies.len() })
}

/// `https://www.baidu.com` → `www.baidu.com`.
fn host(origin: &str) -> String {
    origin.split_once("://").map_or(origin, |(_, h)| h).to_owned()
}

/// What the shop's pages need.
#[derive(Clone)]
struct Shop {
    store: Store,
    patron: String,
    site_id: i64,
}

/// The demo shop: a few pages that load patron's snippet, and a "log in" page that identifies
/// the browser as a demo customer.
pub fn shop_router(store: Store, patron_base: &str, site_id: i64) -> Router {
    let shop = Shop { store, patron: patron_base.trim_end_matches('/').to_owned(), site_id };
    let mut r = Router::new();
    for (path, _, _) in PAGES {
        r = r.route(path, get(page));
    }
    r.route("/login", get(login)).with_state(shop)
}

fn layout(shop: &Shop, title: &str, body: &str, after: &str) -> Html<String> {
    let nav: String = PAGES.iter().map(|(p, t, _)| format!("<a href=\"{p}\">{t}</a> ")).collect();
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · 演示商城</title>\
         <script src=\"{patron}/js/p.js\" data-site=\"{site}\" defer></script>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:1em auto;padding:0 1em}}nav a{{margin-right:.6em}}</style></head>\
         <body><nav>{nav}<a href=\"/login\">登录</a></nav><h1>{title}</h1>{body}\
         <p style=\"color:#666;font-size:small\">这是 patron 演示用的网站：每次打开页面都会计入 patron 的“网站分析”（{patron}/ui/web）。\
         This is patron's demo shop: every page you open is counted in patron's web analytics.</p>{after}</body></html>",
        patron = shop.patron,
        site = shop.site_id,
    ))
}

async fn page(State(shop): State<Shop>, uri: axum::http::Uri) -> Html<String> {
    let title = PAGES.iter().find(|p| p.0 == uri.path()).map_or("演示商城", |p| p.1);
    let body = if uri.path().starts_with("/menu/") {
        "<p>今日推荐，欢迎订座。</p><button data-patron-event=\"book-table\">订座</button>"
    } else {
        "<p>欢迎光临。</p>"
    };
    layout(&shop, title, body, "")
}

/// Logs the browser in as the first demo customer with an e-mail: the shop's server asks patron
/// for an identity token and the page hands it to `patron.identify`.
async fn login(State(shop): State<Shop>) -> Html<String> {
    let customer: Result<Option<(i64, String)>, _> = shop
        .store
        .db
        .reader()
        .fetch_optional(query("SELECT id, name FROM customers WHERE deleted_at IS NULL AND email IS NOT NULL ORDER BY id"))
        .await;
    let Ok(Some((id, name))) = customer else {
        return layout(&shop, "登录", "<p>演示数据里没有客户。</p>", "");
    };
    match shop.store.issue_identity_token(&Actor::cli(), id).await {
        Ok(token) => {
            let body = format!(
                "<p>你已作为 <b>{}</b> 登录。这个浏览器此前 30 天和以后的浏览都会出现在该客户的 360 页面：\
                 <a href=\"{patron}/ui/customers/{id}\">{patron}/ui/customers/{id}</a></p>",
                html_escape(&name),
                patron = shop.patron
            );
            let after = format!(
                "<script>addEventListener('load',function(){{window.patron&&patron.identify({})}})</script>",
                serde_json::Value::String(token.token)
            );
            layout(&shop, "登录", &body, &after)
        }
        Err(_) => layout(&shop, "登录", "<p>patron 暂时无法签发身份令牌。</p>", ""),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
