//! `/api/v1/audit`: the audit log for administrators (issue 14 §3, the audit viewer): filtered by
//! actor, customer, action and time, paged newest first, and exported as CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use patron_store::audit::{AuditEntry, AuditFilter};
use patron_store::page::Page;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list)).route("/audit/export", get(export))
}

/// Which audit entries: every given filter must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// The actor exactly: `user:<id>`, `token:<id>` or `cli`.
    #[param(max_length = 100, pattern = "^(user:[0-9]+|token:[0-9]+|cli)$")]
    pub actor: Option<String>,
    /// A user's entries (the same as `actor=user:<id>`).
    #[param(minimum = 1)]
    pub actor_id: Option<i64>,
    /// The customer an entry is about.
    #[param(minimum = 1)]
    pub customer_id: Option<i64>,
    /// The action exactly (`read`, `create`, `update`, `delete`, `import`, `export`, `login_failed` …).
    #[param(max_length = 100, pattern = "^[a-z_]+$")]
    pub action: Option<String>,
    /// At or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^(?:[0-9a-f]{2})+$", max_length = 2048)]
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The audit filters of the export (the list's, without paging), plus `raw`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportParams {
    /// The actor exactly: `user:<id>`, `token:<id>` or `cli`.
    #[param(max_length = 100, pattern = "^(user:[0-9]+|token:[0-9]+|cli)$")]
    pub actor: Option<String>,
    /// A user's entries (the same as `actor=user:<id>`).
    #[param(minimum = 1)]
    pub actor_id: Option<i64>,
    /// The customer an entry is about.
    #[param(minimum = 1)]
    pub customer_id: Option<i64>,
    /// The action exactly.
    #[param(max_length = 100, pattern = "^[a-z_]+$")]
    pub action: Option<String>,
    /// At or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    /// Values as stored: no apostrophe before a would-be spreadsheet formula.
    pub raw: Option<bool>,
}

/// The store's filter from the query; `actor` and `actor_id` must agree when both are given.
pub fn filter(
    actor: Option<String>,
    actor_id: Option<i64>,
    customer_id: Option<i64>,
    action: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<AuditFilter, ApiError> {
    let by_id = actor_id.map(|id| format!("user:{id}"));
    let actor = match (actor, by_id) {
        (Some(a), Some(b)) if a != b => return Err(ApiError::bad_request("actor_id", "actor and actor_id name different actors")),
        (a, b) => a.or(b),
    };
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(ApiError::bad_request("to", "to must be after from"));
        }
    }
    Ok(AuditFilter { actor, customer_id, action, from, to })
}

/// A page of the audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Auth(_actor): Auth, Query(p): Query<AuditParams>) -> ApiResult<Json<Page<AuditEntry>>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "limit must be between 1 and 1000"));
    }
    let f = filter(p.actor, p.actor_id, p.customer_id, p.action, p.from, p.to)?;
    let page = state.store.audit_page(&f, p.cursor.as_deref(), limit).await.map_err(query_error)?;
    Ok(Json(page))
}

/// Every entry the filters select as CSV, newest first (admin; the export is audited). Columns:
/// id, at, actor, action, entity, entity_id, customer_id, detail.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditExportParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<AuditExportParams>) -> ApiResult<Response> {
    let f = filter(p.actor, p.actor_id, p.customer_id, p.action, p.from, p.to)?;
    let body = state.store.audit_csv(&actor.key, &f, p.raw.unwrap_or(false)).await.map_err(query_error)?;
    Ok(csv_download(body))
}

/// A CSV body as a download named `audit.csv`.
pub fn csv_download(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\"")], body)
        .into_response()
}

/// A store refusal of a query value is the query's 400, naming it.
fn query_error(e: patron_store::StoreError) -> ApiError {
    match e {
        patron_store::StoreError::Invalid { field: Some(f), message } => ApiError::bad_request(&f, message),
        other => other.into(),
    }
}
