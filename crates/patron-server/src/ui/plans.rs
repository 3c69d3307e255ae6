//! The account plan pages (issue 19 §4): the organisation's plan with its KPIs' targets and
//! actuals, earlier plans, and a form for a new one (`/ui/customers/{id}/plans`); and the
//! customer-facing scorecard `/p/plan/{token}` (no login, mobile first, zh-CN/en, rate-limited
//! by the caller), which shows the shared KPIs, targets and actuals and nothing else.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use chrono::NaiveDate;
use minijinja::{context, Value};
use patron_store::access::Permission;
use patron_store::plans::{NewKpi, NewPlan, KPI_KINDS};
use serde::Deserialize;

use super::fulfilment::labels;
use super::{error_page, render};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// Rows of KPIs on the form.
const KPI_ROWS: usize = 3;

/// Routes of the staff page.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/customers/{id}/plans", get(page).post(create))
}

/// The public scorecard route (the caller adds the rate limit).
pub fn public_router() -> Router<AppState> {
    Router::new().route("/p/plan/{token}", get(scorecard))
}

async fn plan_page(state: &AppState, user: &UiUser, id: i64, extra: Value, status: StatusCode) -> Response {
    let ctx = async {
        check_customer_access(state, &user.actor, id).await?;
        let customer = state.store.customer(id).await?;
        let plans = state.store.plans(id).await?;
        let kinds: Vec<&str> = KPI_KINDS.to_vec();
        let rows: Vec<usize> = (0..KPI_ROWS).collect();
        Ok::<_, ApiError>(
            context! { section => "customers", cid => id, customer_name => customer.name, is_org => customer.kind == "organisation",
            plans, kinds, rows, may_write => user.actor.can(Permission::CustomersWrite), f => labels(user.lang), ..extra },
        )
    }
    .await;
    match ctx {
        Ok(ctx) => {
            let mut res = render(state, "plans.html", user.lang, Some(user), ctx);
            if res.status() == StatusCode::OK {
                *res.status_mut() = status;
            }
            res
        }
        Err(e) => error_page(state, user, e),
    }
}

async fn page(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    plan_page(&state, &user, id, context! {}, StatusCode::OK).await
}

/// The plan form: free texts and up to three KPI rows (`kpi_name_N`, `kpi_kind_N`,
/// `kpi_target_N`); rows without a name are left out.
async fn create(
    State(state): State<AppState>,
    user: UiUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
    let res = async {
        user.check_csrf(&get("csrf"))?;
        permit(&user.actor, Permission::CustomersWrite)?;
        check_customer_access(&state, &user.actor, id).await?;
        let mut kpis = Vec::new();
        for i in 0..KPI_ROWS {
            let name = get(&format!("kpi_name_{i}"));
            if name.is_empty() {
                continue;
            }
            let target = get(&format!("kpi_target_{i}"))
                .parse::<f64>()
                .map_err(|_| ApiError::bad_request("kpis", format!("KPI {}: the target must be a number", i + 1)))?;
            kpis.push(NewKpi { name, target, kind: get(&format!("kpi_kind_{i}")) });
        }
        let review_on = match get("review_on").as_str() {
            "" => None,
            v => Some(NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| ApiError::bad_request("review_on", "not a day"))?),
        };
        let plan = NewPlan {
            goals: get("goals"),
            expectations_ours: get("expectations_ours"),
            expectations_theirs: get("expectations_theirs"),
            kpis,
            owner_ids: None,
            review_on,
            window_days: None,
            scorecard_days: None,
        };
        let (_, token) = state.store.create_plan(&user.actor, id, &plan).await?;
        Ok::<_, ApiError>(format!("{}/p/plan/{token}", crate::api::tickets::public_base(&state, &headers)))
    }
    .await;
    match res {
        Ok(url) => plan_page(&state, &user, id, context! { scorecard_url => url }, StatusCode::CREATED).await,
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN && e.status != StatusCode::NOT_FOUND => {
            plan_page(&state, &user, id, context! { error => e.message }, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct LangParam {
    lang: Option<String>,
}

/// The customer's scorecard; any link that does not work (unknown, forged, expired,
/// superseded) is the same 404 page.
async fn scorecard(State(state): State<AppState>, jar: CookieJar, Path(token): Path<String>, Query(p): Query<LangParam>) -> Response {
    let lang = match p.lang.as_deref().and_then(Lang::from_code) {
        Some(l) => l,
        None => Lang::from_jar(&jar),
    };
    match state.store.plan_scorecard(&token).await {
        Ok(card) => render(&state, "public_plan.html", lang, None, context! { card, f => labels(lang) }),
        Err(patron_store::StoreError::NotFound(_)) => {
            let mut res = render(&state, "public_plan.html", lang, None, context! { card => None::<()>, f => labels(lang) });
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
        Err(e) => axum::response::IntoResponse::into_response(ApiError::from(e)),
    }
}
