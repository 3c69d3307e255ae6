//! `/api/v1/segments`: saved and built-in rule-based segments, evaluated live — definitions
//! (CRUD for saved ones; built-ins are read-only), counts, a preview of an unsaved rule,
//! members and CSV export. Agents count and preview within their own portfolio.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use patron_store::access::masking::Surface;
use patron_store::segments::{rule_fields, FieldInfo, NewSegment, Segment, SegmentMember, SegmentPatch, BUILTIN_PREFIX};
use patron_store::users::Actor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/segments", get(list).post(create))
        .route("/segments/preview", post(preview))
        .route("/segments/fields", get(fields))
        .route("/segments/{key}", get(get_one).put(update).delete(delete))
        .route("/segments/{key}/members", get(members))
        .route("/segments/{key}/export", get(export))
        .route("/segments/{key}/sizes", get(sizes))
}

/// Members shown by a preview.
pub const PREVIEW_MEMBERS: i64 = 20;

/// A segment with its live size for the caller (an agent's portfolio only).
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentWithCount {
    /// The definition.
    #[serde(flatten)]
    pub segment: Segment,
    /// Customers in it now (`null` in lists unless `counts=true`).
    pub count: Option<i64>,
}

/// List options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Also count each segment's members (one query per segment).
    pub counts: Option<bool>,
    /// `builtin`, `saved` or both (default).
    pub kind: Option<String>,
}

/// The built-in segments followed by the saved ones (oldest first).
#[utoipa::path(get, path = "/api/v1/segments", tag = "segments", params(ListParams),
    responses((status = 200, body = Vec<SegmentWithCount>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<ListParams>) -> ApiResult<Json<Vec<SegmentWithCount>>> {
    // Definitions are not personal data: every role may read them.
    let (builtin, saved) = match p.kind.as_deref() {
        None | Some("") => (true, true),
        Some("builtin") => (true, false),
        Some("saved") => (false, true),
        Some(_) => return Err(ApiError::bad_request("kind", "kind must be builtin or saved")),
    };
    let mut all = Vec::new();
    if builtin {
        all.extend(patron_store::segments::builtin_segments());
    }
    if saved {
        all.extend(state.store.segments().await?);
    }
    let mut out = Vec::with_capacity(all.len());
    for segment in all {
        let count = if p.counts.unwrap_or(false) { Some(state.store.segment_count(&actor, &segment.rule).await?) } else { None };
        out.push(SegmentWithCount { segment, count });
    }
    Ok(Json(out))
}

/// The fields of the filter language, with types, allowed values and operators.
#[utoipa::path(get, path = "/api/v1/segments/fields", tag = "segments",
    responses((status = 200, body = Vec<FieldInfo>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn fields(Auth(_actor): Auth) -> ApiResult<Json<Vec<FieldInfo>>> {
    Ok(Json(rule_fields()))
}

/// Saves a new segment (managers and admins). The rule is checked first: a problem is 422 on
/// field `rule` with its position; a taken name is 409.
#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = NewSegment,
    responses((status = 201, body = SegmentWithCount), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(input): Json<NewSegment>,
) -> ApiResult<(StatusCode, Json<SegmentWithCount>)> {
    let segment = state.store.create_segment(&actor, input).await?;
    let count = Some(state.store.segment_count(&actor, &segment.rule).await?);
    Ok((StatusCode::CREATED, Json(SegmentWithCount { segment, count })))
}

/// A segment by key (a saved segment's id, or a built-in key such as
/// `builtin:rfm:important_win_back`) with its live count.
#[utoipa::path(get, path = "/api/v1/segments/{key}", tag = "segments", params(("key" = String, Path, description = "saved segment id or built-in key")),
    responses((status = 200, body = SegmentWithCount), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, Auth(actor): Auth, Path(key): Path<String>) -> ApiResult<Json<SegmentWithCount>> {
    let segment = state.store.segment(&key).await?;
    let count = Some(state.store.segment_count(&actor, &segment.rule).await?);
    Ok(Json(SegmentWithCount { segment, count }))
}

/// The id of a saved segment from a path key; built-ins are read-only (409).
fn saved_id(key: &str) -> ApiResult<i64> {
    let key = key.trim();
    if key.starts_with(BUILTIN_PREFIX) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            "built-in segments cannot be changed or deleted; save the rule as a new segment instead",
        ));
    }
    key.parse().map_err(|_| ApiError::not_found("segment"))
}

/// Changes a saved segment (managers and admins); fields left out stay. Built-ins: 409.
#[utoipa::path(put, path = "/api/v1/segments/{key}", tag = "segments", params(("key" = String, Path, description = "saved segment id")), request_body = SegmentPatch,
    responses((status = 200, body = SegmentWithCount), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    Json(patch): Json<SegmentPatch>,
) -> ApiResult<Json<SegmentWithCount>> {
    let id = saved_id(&key)?;
    let segment = state.store.update_segment(&actor, id, patch).await?;
    let count = Some(state.store.segment_count(&actor, &segment.rule).await?);
    Ok(Json(SegmentWithCount { segment, count }))
}

/// Deletes a saved segment (managers and admins). Built-ins: 409.
#[utoipa::path(delete, path = "/api/v1/segments/{key}", tag = "segments", params(("key" = String, Path, description = "saved segment id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Auth(actor): Auth, Path(key): Path<String>) -> ApiResult<StatusCode> {
    let id = saved_id(&key)?;
    state.store.delete_segment(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rule to try out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The rule, e.g. `rfm_class = "重要挽留" and p_alive < 0.5 and city in ("上海", "杭州")`.
    pub rule: String,
    /// Members to return, 0–1000 (default 20).
    pub limit: Option<i64>,
}

/// A segment's live size and its first members (id order).
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentMembers {
    /// Customers matching now (an agent's portfolio only).
    pub count: i64,
    /// The first members (mobiles masked except for admins).
    pub members: Vec<SegmentMember>,
}

fn check_limit(limit: Option<i64>, default: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(l) if (0..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request("limit", "limit must be between 0 and 1000")),
    }
}

/// Counts and members of `rule` for `actor` (one pass over the matches on SQLite), as
/// stored: the caller masks them for the role (`super::masking`).
pub async fn evaluate(state: &AppState, actor: &Actor, rule: &str, limit: i64) -> ApiResult<SegmentMembers> {
    let (count, members) = state.store.segment_members(actor, rule, limit).await?;
    Ok(SegmentMembers { count, members })
}

/// Evaluates an unsaved rule: its live count and first members. Every role may preview (agents
/// within their portfolio). A rule problem is 422 on field `rule`, its message starting with
/// the 1-based column (`column 24: expected a value after "<", found end of rule`).
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "segments", request_body = PreviewRequest,
    responses((status = 200, body = SegmentMembers), (status = 400, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<PreviewRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = check_limit(req.limit, PREVIEW_MEMBERS)?;
    let m = evaluate(&state, &actor, &req.rule, limit).await?;
    super::masking::masked(&state, &actor, Surface::List, &m).await
}

/// Paging of members.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MembersParams {
    /// Members to return, 0–1000 (default 100).
    pub limit: Option<i64>,
}

/// A segment's live count and first members.
#[utoipa::path(get, path = "/api/v1/segments/{key}/members", tag = "segments", params(("key" = String, Path, description = "saved segment id or built-in key"), MembersParams),
    responses((status = 200, body = SegmentMembers), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn members(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    Query(p): Query<MembersParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = check_limit(p.limit, 100)?;
    let segment = state.store.segment(&key).await?;
    let m = evaluate(&state, &actor, &segment.rule, limit).await?;
    super::masking::masked(&state, &actor, Surface::List, &m).await
}

/// A file name made of the key's letters and digits (`builtin:rfm:x` → `segment-builtin-rfm-x.csv`).
pub fn export_file_name(key: &str) -> String {
    let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(80).collect();
    format!("segment-{safe}.csv")
}

/// Writes a rule's members as customer CSV (the import format) into a download response.
pub async fn csv_response(state: &AppState, actor: &Actor, rule: &str, file_name: &str, raw: bool) -> ApiResult<Response> {
    let mut body = Vec::new();
    state.store.export_segment(actor, rule, &mut body, raw).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"segment.csv\""));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}

/// How to write an export.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Values as stored, for machines: without it, a value that starts with `=`, `+`, `-`, `@`, a
    /// tab or a carriage return gets a leading apostrophe so a spreadsheet does not run it as a
    /// formula (the importer takes the apostrophe off again).
    pub raw: Option<bool>,
}

/// The segment's members as customer CSV in the import format (header + one row per member),
/// with full contact details: managers and admins only; audited.
#[utoipa::path(get, path = "/api/v1/segments/{key}/export", tag = "segments", params(("key" = String, Path, description = "saved segment id or built-in key"), ExportParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    crate::error::Query(p): crate::error::Query<ExportParams>,
) -> ApiResult<Response> {
    // The file carries unmasked mobiles and emails, so it is for the roles that run campaigns.
    let segment = state.store.segment(&key).await?;
    csv_response(&state, &actor, &segment.rule, &export_file_name(&segment.key), p.raw.unwrap_or(false)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_builtins_are_read_only_and_others_must_be_ids() {
        assert_eq!(saved_id("builtin:rfm:important_win_back").err().map(|e| e.status), Some(StatusCode::CONFLICT));
        assert_eq!(saved_id("abc").err().map(|e| e.status), Some(StatusCode::NOT_FOUND));
        assert_eq!(saved_id(" 42 ").ok(), Some(42));
        assert_eq!(export_file_name("builtin:rfm:important_win_back"), "segment-builtin-rfm-important_win_back.csv");
        assert_eq!(export_file_name("7\"; x"), "segment-7---x.csv");
    }
}

/// A saved segment's size over the whole base at each analysis run since it was saved (rules
/// over the analysis only; empty for others and for built-ins), oldest first. Needs
/// `all_customers` (the sizes count every customer).
#[utoipa::path(get, path = "/api/v1/segments/{key}/sizes", tag = "segments", params(("key" = String, Path, description = "saved segment id or built-in key")),
    responses((status = 200, body = Vec<patron_store::history::SegmentSize>), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn sizes(
    State(state): State<AppState>,
    _auth: Auth,
    Path(key): Path<String>,
) -> ApiResult<Json<Vec<patron_store::history::SegmentSize>>> {
    Ok(Json(state.store.segment_sizes(&key).await?))
}
