//! `/ui/accounts` ("My accounts", issue 19 §1): the caller's portfolio with tier, CLV,
//! P(alive), next contact due, open tickets, relationship stage and health, sortable by any
//! column (`?sort=...&desc=1`); and the overdue contacts of the caller (`/ui/accounts?overdue=1`).
//! `/ui/accounts/overdue` (§2, §10): every overdue contact the caller sees, by account manager
//! and tier. `/ui/customers/{id}/relationship` (§3, §10): the people map with its editor, the
//! review form and the health trend chart. Labels of these pages live here ([`labels`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use patron_store::access::Permission;
use patron_store::accounts::cadence::CadenceFilter;
use patron_store::accounts::relationship::TieInput;
use patron_store::accounts::reviews::{NewReview, ReviewScores};
use patron_store::accounts::PortfolioRow;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// (key, 中文, English): the labels of the overdue and relationship pages.
const LABELS: &[(&str, &str, &str)] = &[
    ("overdue_title", "逾期未联系的客户", "Overdue contacts"),
    ("manager", "客户经理", "Account manager"),
    ("tier", "等级", "Tier"),
    ("all", "全部", "All"),
    ("show", "查看", "Show"),
    ("account", "客户", "Account"),
    ("last_contact", "上次有效联系", "Last meaningful contact"),
    ("due", "应联系日", "Due"),
    ("days_overdue", "逾期天数", "Days overdue"),
    ("clv", "CLV", "CLV"),
    ("none", "没有逾期的联系", "No overdue contacts"),
    ("relationship", "关系经营", "Relationship"),
    ("people", "客户关系图", "People map"),
    ("single_threaded", "单线联系：只有一条关系纽带，一人离开就可能失去客户", "Single-threaded: one tie holds the account"),
    ("person", "客户方人员", "Their person"),
    ("role", "职务", "Role"),
    ("interests", "兴趣", "Interests"),
    ("ties", "我方关系", "Our ties"),
    ("our_user", "我方人员", "Our user"),
    ("strength", "关系强度（1–5）", "Strength (1–5)"),
    ("shared", "共同点", "What we share"),
    ("last_contact_on", "最近联系日", "Last contact (day)"),
    ("save_tie", "保存关系", "Save the tie"),
    ("no_people", "还没有联系人", "No contacts yet"),
    ("review", "关系评估", "Relationship review"),
    ("q_responsiveness", "对客户关切的响应", "Responsiveness to their concerns"),
    ("q_price", "价格有竞争力且物有所值", "Price competitive and fair for the value"),
    ("q_delivery", "按时交付", "On-time delivery"),
    ("q_obligations", "其他承诺的履行", "Other obligations kept"),
    ("q_complaints", "投诉解决快且好", "Complaints resolved quickly and well"),
    ("q_contract", "合同条款合理", "Contract terms reasonable"),
    ("q_sentiment", "总体感受", "Overall sentiment"),
    ("note", "备注", "Note"),
    ("save_review", "提交评估", "Record the review"),
    ("trend", "健康度趋势", "Health score trend"),
    ("health", "健康度", "Health"),
    ("when", "日期", "Date"),
    ("no_reviews", "还没有评估", "No reviews yet"),
];

/// The labels in `lang`.
pub(crate) fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::En { *en } else { *zh })).collect()
}

/// Routes of the accounts pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/accounts", get(accounts))
        .route("/ui/accounts/overdue", get(overdue))
        .route("/ui/customers/{id}/relationship", get(relationship))
        .route("/ui/customers/{id}/relationship/ties", axum::routing::post(save_tie))
        .route("/ui/customers/{id}/relationship/reviews", axum::routing::post(save_review))
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    sort: Option<String>,
    desc: Option<u8>,
    overdue: Option<u8>,
}

/// The columns the page sorts by.
const SORTS: [&str; 8] = ["name", "tier", "clv", "p_alive", "next_contact_due", "open_tickets", "stage", "health"];

fn sort_rows(rows: &mut [PortfolioRow], key: &str, desc: bool) {
    let stage_rank = |s: &Option<String>| s.as_deref().and_then(|s| patron_store::accounts::STAGES.iter().position(|x| *x == s));
    rows.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "tier" => a.tier.cmp(&b.tier),
            "clv" => a.clv_cents.cmp(&b.clv_cents),
            "p_alive" => a.p_alive.partial_cmp(&b.p_alive).unwrap_or(std::cmp::Ordering::Equal),
            "open_tickets" => a.open_tickets.cmp(&b.open_tickets),
            "stage" => stage_rank(&a.relationship_stage).cmp(&stage_rank(&b.relationship_stage)),
            "health" => a.health_score.partial_cmp(&b.health_score).unwrap_or(std::cmp::Ordering::Equal),
            _ => a.next_contact_due.cmp(&b.next_contact_due),
        };
        let o = if desc { o.reverse() } else { o };
        o.then(a.customer_id.cmp(&b.customer_id))
    });
}

async fn accounts(State(state): State<AppState>, user: UiUser, Query(p): Query<Params>) -> Response {
    let sort = p.sort.as_deref().filter(|s| SORTS.contains(s)).unwrap_or("next_contact_due").to_owned();
    let desc = p.desc.unwrap_or(0) == 1;
    let overdue = p.overdue.unwrap_or(0) == 1;
    let ctx = async {
        let Some(me) = user.actor.user_id else {
            return Ok::<_, ApiError>(context! { section => "accounts", rows => Vec::<PortfolioRow>::new() });
        };
        let mut rows = state.store.portfolio(&user.actor, me).await?;
        if overdue {
            rows.retain(|r| r.days_overdue > 0);
        }
        sort_rows(&mut rows, &sort, desc);
        let view: Vec<minijinja::Value> = rows
            .iter()
            .map(|r| {
                context! {
                    customer_id => r.customer_id, name => r.name.clone(), tier => r.tier.clone(),
                    clv => r.clv_cents.map(crate::i18n::yuan), p_alive => r.p_alive.map(|p| format!("{:.0}%", p * 100.0)),
                    next_contact_due => r.next_contact_due.to_string(), days_overdue => r.days_overdue,
                    open_tickets => r.open_tickets, stage => r.relationship_stage.clone(),
                    health => r.health_score.map(|h| format!("{h:.0}")),
                }
            })
            .collect();
        Ok(context! { section => "accounts", rows => view, sort => sort, desc => desc, overdue => overdue, sorts => SORTS })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "accounts.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct OverdueParams {
    user_id: Option<String>,
    tier: Option<String>,
}

/// Every overdue contact the caller sees, filtered by account manager and tier.
async fn overdue(State(state): State<AppState>, user: UiUser, Query(p): Query<OverdueParams>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CustomersRead)?;
        let user_id = match p.user_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::bad_request("user_id", "not a user id"))?),
            None => None,
        };
        let tier = p.tier.clone().filter(|t| !t.trim().is_empty());
        if let Some(t) = &tier {
            if !patron_store::service::policies::TIERS.contains(&t.as_str()) {
                return Err(ApiError::bad_request("tier", "tier must be A, B, C, D or default"));
            }
        }
        let rows = state.store.cadence_overdue(&user.actor, &CadenceFilter { user_id, tier: tier.clone() }).await?;
        let users: BTreeMap<i64, String> = state.store.users().await?.into_iter().map(|u| (u.id, u.name)).collect();
        let view: Vec<minijinja::Value> = rows
            .iter()
            .map(|r| {
                context! {
                    customer_id => r.customer_id, name => r.name.clone(), tier => r.tier.clone(),
                    manager => r.account_manager_id.and_then(|u| users.get(&u).cloned()),
                    last_contact => r.last_contact_at.map(|t| t.with_timezone(&state.store.config.business_tz).date_naive().to_string()),
                    due => r.next_contact_due.to_string(), days_overdue => r.days_overdue,
                    clv => r.clv_cents.map(crate::i18n::yuan),
                }
            })
            .collect();
        let managers: Vec<minijinja::Value> = users.iter().map(|(id, name)| context! { id => *id, name => name.clone() }).collect();
        Ok::<_, ApiError>(
            context! { section => "accounts", rows => view, managers, user_id, tier, tiers => patron_store::service::policies::TIERS,
            a => labels(user.lang) },
        )
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "accounts_overdue.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

/// The relationship page: people map (with its editor), the review form, the health trend.
async fn relationship(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        check_customer_access(&state, &user.actor, id).await?;
        let customer = state.store.customer(id).await?;
        let map = state.store.people_map(id).await?;
        let reviews = state.store.reviews(id).await?;
        let users: Vec<minijinja::Value> =
            state.store.users().await?.into_iter().filter(|u| u.active).map(|u| context! { id => u.id, name => u.name }).collect();
        // The trend: health scores oldest first, a polyline in a 600×200 box (0–100).
        let (w, h, pad) = (600.0_f64, 200.0_f64, 30.0_f64);
        let pts: Vec<&patron_store::accounts::reviews::Review> = reviews.iter().rev().collect();
        let x = |i: usize| pad + (w - 2.0 * pad) * if pts.len() > 1 { i as f64 / (pts.len() - 1) as f64 } else { 0.5 };
        let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / 100.0).clamp(0.0, 1.0);
        let tz = state.store.config.business_tz;
        let dots: Vec<minijinja::Value> = pts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                context! { x => format!("{:.1}", x(i)), y => format!("{:.1}", y(r.health_score)), score => format!("{:.1}", r.health_score),
                day => r.created_at.with_timezone(&tz).date_naive().to_string() }
            })
            .collect();
        let points = pts.iter().enumerate().map(|(i, r)| format!("{:.1},{:.1}", x(i), y(r.health_score))).collect::<Vec<_>>().join(" ");
        let chart = context! { width => w, height => h, base => h - pad, left => pad, right => w - pad, top => y(100.0), mid => y(50.0), points, dots };
        let may_write = user.actor.can(Permission::CustomersWrite);
        let questions = ["responsiveness", "price", "delivery", "obligations", "complaints", "contract", "sentiment"];
        Ok::<_, ApiError>(context! { section => "accounts", cid => id, name => customer.name, map, reviews, users, chart, may_write, questions,
            a => labels(user.lang) })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "relationship.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct TieForm {
    csrf: String,
    contact_id: i64,
    user_id: i64,
    strength: i64,
    #[serde(default)]
    shared_interests: String,
    #[serde(default)]
    last_contact_on: String,
}

/// Records a tie from the people-map editor; back to the page, or the error page with the reason.
async fn save_tie(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<TieForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CustomersWrite)?;
        check_customer_access(&state, &user.actor, id).await?;
        let tz = state.store.config.business_tz;
        let last_contact_at = match f.last_contact_on.trim() {
            "" => None,
            v => Some(
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
                    .and_then(|t| chrono::TimeZone::from_local_datetime(&tz, &t).earliest())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map(|t| t.min(state.store.now()))
                    .ok_or_else(|| ApiError::bad_request("last_contact_at", "not a day"))?,
            ),
        };
        let shared = Some(f.shared_interests.trim().to_owned()).filter(|s| !s.is_empty());
        let t = TieInput { contact_id: f.contact_id, user_id: f.user_id, strength: f.strength, shared_interests: shared, last_contact_at };
        state.store.set_tie(&user.actor, id, t).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}/relationship#people")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct ReviewForm {
    csrf: String,
    responsiveness: i64,
    price: i64,
    delivery: i64,
    obligations: i64,
    complaints: i64,
    contract: i64,
    sentiment: i64,
    #[serde(default)]
    note: String,
}

/// Records a review from the form; back to the page (the trend shows it).
async fn save_review(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<ReviewForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CustomersWrite)?;
        check_customer_access(&state, &user.actor, id).await?;
        let scores = ReviewScores {
            responsiveness: f.responsiveness,
            price: f.price,
            delivery: f.delivery,
            obligations: f.obligations,
            complaints: f.complaints,
            contract: f.contract,
        };
        let note = Some(f.note.trim().to_owned()).filter(|n| !n.is_empty());
        state.store.create_review(&user.actor, id, NewReview { scores, sentiment: f.sentiment, notes: None, note }).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}/relationship#reviews")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}
