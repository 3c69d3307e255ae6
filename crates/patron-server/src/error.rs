//! The one place where failures become HTTP responses: status + `{"error":{"code","message","field"}}`.
//! Extractor wrappers make axum's own rejections (bad JSON, wrong types, huge bodies, bad path or
//! query values) use the same envelope. A 500 never carries its detail to the client.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use patron_store::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`not_found`, `invalid`, `conflict`, …).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
    /// Field at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }
    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// 401.
    pub fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid credentials (send Authorization: Bearer <token>)")
    }
    /// 403.
    pub fn forbidden(what: &str) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("your role may not {what}"))
    }
    /// 404.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    /// 400 for a bad value.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).field(field)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", conflict_message(&m)),
            StoreError::Reference(m) => {
                tracing::debug!(detail = %m, "foreign key violation");
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_reference", "a referenced record (owner, referrer, customer …) does not exist")
            }
            StoreError::Invalid { field, message } => {
                // A cursor is part of the request line (400); a value in a body is unprocessable (422).
                let status = if field.as_deref() == Some("cursor") { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
                ApiError { status, code: "invalid", message, field }
            }
            StoreError::File(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_file", m).field("file"),
            StoreError::Busy(m) => {
                tracing::warn!(detail = %m, "database busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the database is busy with another write (an import, perhaps); nothing was changed, try again shortly",
                )
            }
            other => {
                // Logged for operators (no PII: store errors carry ids and SQL states, not values);
                // the client learns only that it failed.
                tracing::error!(error = %other, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// Database messages name constraints; say which unique value is taken in plain words.
fn conflict_message(db_message: &str) -> String {
    let m = db_message.to_lowercase();
    let what = ["external_id", "email", "name"].into_iter().find(|k| m.contains(k));
    match what {
        Some(k) => format!("{k} is already taken"),
        None if db_message.contains(':') && !m.contains("unique") => db_message.to_owned(),
        None => "a unique value is already taken".into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message, field: self.field } };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_json",
    };
    // serde's message names the path and what was expected ("name: invalid type: integer, expected a string").
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::UNPROCESSABLE_ENTITY } else { status };
    let mut e = ApiError::new(status, code, r.body_text());
    if let JsonRejection::JsonDataError(d) = &r {
        let text = d.body_text();
        if let Some(field) = text.split(": ").nth(1).filter(|f| !f.contains(' ')) {
            e = e.field(field.to_owned());
        }
    }
    e
}

/// The parameter a query-string rejection is about: serde_urlencoded's message names it first
/// ("…: limit: invalid digit found in string") or quotes it ("…: unknown field `sortt`, expected …").
fn query_field(text: &str) -> Option<String> {
    let detail = text.split(": ").nth(1)?;
    if !detail.is_empty() && !detail.contains(' ') {
        return Some(detail.to_owned());
    }
    let quoted = detail.strip_prefix("unknown field `")?;
    quoted.split('`').next().filter(|f| !f.is_empty()).map(str::to_owned)
}

/// `Json` whose rejections use the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state).await.map(|j| Json(j.0)).map_err(json_rejection)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections use the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| {
                let text = r.body_text();
                let e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", text.clone());
                match query_field(&text) {
                    Some(f) => e.field(f),
                    None => e,
                }
            })
    }
}

/// `Path` whose rejections use the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r: PathRejection| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))
    }
}

/// `Form` whose rejections use the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|f| Form(f.0))
            .map_err(|r: FormRejection| ApiError::new(r.status(), "invalid_form", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_database_is_a_503_to_retry_without_its_detail() {
        let res = ApiError::from(StoreError::Busy("database is locked".into())).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["error"]["code"], "busy");
        assert!(!v["error"]["message"].as_str().unwrap_or_default().contains("locked"));
    }
}
