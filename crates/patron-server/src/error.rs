//! The one place where failures become HTTP responses: status + `{"error":{"code","message","field"}}`.
//! Extractor wrappers make axum's own rejections (bad JSON, wrong types, huge bodies, bad path or
//! query values, multipart without a boundary) use the same envelope, and hold bodies and query
//! strings to the OpenAPI document (`api::contract`); `limits` answers oversized request lines
//! and headers in it too. A 500 never carries its detail to the client.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
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
            StoreError::State(m) => ApiError::new(StatusCode::CONFLICT, "invalid_state", m),
            StoreError::Gone(m) => ApiError::new(StatusCode::GONE, "gone", m),
            StoreError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            StoreError::Reference(m) => {
                tracing::debug!(detail = %m, "foreign key violation");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_reference",
                    "a referenced record (owner, referrer, customer …) does not exist",
                )
            }
            StoreError::Invalid { field, message } => {
                // A cursor is part of the request line (400); a value in a body is unprocessable (422).
                let status = if field.as_deref() == Some("cursor") { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
                ApiError { status, code: "invalid", message, field }
            }
            StoreError::File(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_file", m).field("file"),
            StoreError::Busy(m) => busy(&m),
            StoreError::TimedOut(m) => {
                tracing::warn!(detail = %m, "statement timed out");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "this took longer than the database allows and was stopped; nothing was changed: narrow it \
                     (a segment rule, a filter) or try again when the server is less busy",
                )
            }
            // Every connection stayed taken past the pool's wait: as busy as a held lock.
            StoreError::Database(sqlx::Error::PoolTimedOut) => busy("connection pool timed out"),
            other => {
                // Logged for operators (no PII: store errors carry ids and SQL states, not values);
                // the client learns only that it failed.
                tracing::error!(error = %other, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// 503 with `Retry-After`: nothing was changed, try again.
fn busy(detail: &str) -> ApiError {
    tracing::warn!(detail = %detail, "database busy");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the database is busy with another write (an import, perhaps); nothing was changed, try again shortly",
    )
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
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
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
    ApiError::new(status, code, r.body_text())
}

/// Reads numbers the way JSON Schema does: a number with a zero fraction (`151.0`, `1.51e2`) is
/// an integer, so a field of integer type takes it. (serde_json reads such numbers as floats,
/// which serde then refuses for an integer field.)
pub fn integral_floats_as_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                // 2⁶³ is exactly representable; every float below it with no fraction fits an i64.
                if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Deserializes a checked JSON value into `T`; an error names the field (`prefix` + the path
/// within the value, e.g. `orders[1].ordered_at`).
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value, prefix: &str) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_owned(),
            (_, true) => a.to_owned(),
            _ if b.starts_with('[') => format!("{a}{b}"),
            _ => format!("{a}.{b}"),
        };
        let mut field = join(prefix, if path == "." { "" } else { &path });
        // A missing field is reported at its parent; name the field itself.
        if let Some(name) = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            field = join(&field, name);
        }
        let message = if field.is_empty() { inner } else { format!("{field}: {inner}") };
        let e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json", message);
        if field.is_empty() {
            e
        } else {
            e.field(field)
        }
    })
}

/// `Json` whose rejections use the error envelope, and whose body is held to the operation's
/// schema in the OpenAPI document before it is read into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let method = req.method().clone();
        let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let axum::Json(mut value) = axum::Json::<serde_json::Value>::from_request(req, state).await.map_err(json_rejection)?;
        integral_floats_as_integers(&mut value);
        crate::api::contract::check_body(&method, matched.as_deref(), &value)?;
        from_json(value, "").map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections use the error envelope, held to the operation's parameters in the
/// OpenAPI document (unknown names, enums, ranges; `151.0` is the integer 151).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let matched = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let query = crate::api::contract::check_query(&parts.method, matched.as_deref(), parts.uri.query().unwrap_or_default())?;
        serde_urlencoded::from_str::<T>(&query).map(Query).map_err(|e| {
            let text = format!("invalid query string: {e}");
            let err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", text.clone());
            match query_field(&text) {
                Some(f) => err.field(f),
                None => err,
            }
        })
    }
}

/// The parameter a query-string error names (`unknown field `sortt``, `duplicate field `limit``).
fn query_field(text: &str) -> Option<String> {
    let quoted = text.split_once(" field `")?.1;
    quoted.split('`').next().filter(|f| !f.is_empty()).map(str::to_owned)
}

/// `Multipart` whose rejections use the error envelope: 415 for a body that is not
/// multipart/form-data, 400 for one without a usable boundary.
pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        if !content_type.starts_with("multipart/form-data") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the import as multipart/form-data",
            ));
        }
        axum::extract::Multipart::from_request(req, state).await.map(Multipart).map_err(|r: MultipartRejection| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_multipart",
                format!("{} (multipart/form-data needs a boundary parameter)", r.body_text()),
            )
        })
    }
}

/// Longest request target (path and query) answered, bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest header section answered, bytes (names, values and their separators).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Answers a request target or header section over the limits with 414 or 431 in the envelope.
/// (Past hyper's own limits — a target over 64 KiB, more than 100 headers, a head over about
/// 400 KiB — the connection layer answers the bare status itself before any handler runs.)
pub async fn limits(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or_default();
    if target > MAX_URI_BYTES {
        return ApiError::new(StatusCode::URI_TOO_LONG, "uri_too_long", format!("the request target is longer than {MAX_URI_BYTES} bytes"))
            .into_response();
    }
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if headers > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers are larger than {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// `Path` whose rejections use the error envelope, its values held to the operation's path
/// parameters in the OpenAPI document (an integer id may be written `124.0`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))?;
        let matched = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let params: Vec<(String, String)> = raw.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        match crate::api::contract::check_path(&parts.method, matched.as_deref(), &params)? {
            Some(value) => serde_json::from_value(value)
                .map(Path)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", format!("invalid path: {e}"))),
            None => axum::extract::Path::<T>::from_request_parts(parts, state)
                .await
                .map(|p| Path(p.0))
                .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())),
        }
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
        use sqlx::{ConnectOptions, Connection};
        // The error of a real lock, not one built by hand: while one connection holds a SQLite
        // file's write lock, another's write fails at once (no busy wait) with SQLITE_BUSY,
        // which the store reads as busy and the API answers as 503 with Retry-After.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = opts.connect().await.expect("first connection");
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut holder).await.expect("table");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("write lock");
        let mut other = opts.connect().await.expect("second connection");
        let locked = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut other).await.expect_err("the file is locked");
        let store_error = StoreError::from(locked);
        assert!(matches!(store_error, StoreError::Busy(_)), "{store_error:?}");
        let res = ApiError::from(store_error).into_response();
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
        other.close().await.expect("close");
        holder.close().await.expect("close");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["error"]["code"], "busy");
        assert!(!v["error"]["message"].as_str().unwrap_or_default().contains("locked"));
    }

    #[tokio::test]
    async fn a_statement_past_its_time_limit_is_a_503_that_says_so() {
        use sqlx::{Connection, PgConnection};
        // What a segment count past its limit gets (patron_store::db::ScanReader): the server
        // stops the statement (57014), the store says timed out, the API 503 with Retry-After.
        let mut conn = PgConnection::connect(&patron_store::testing::pg_admin_url()).await.expect("PostgreSQL (PATRON_TEST_PG_URL)");
        sqlx::query("SET statement_timeout = '50ms'").execute(&mut conn).await.expect("a time limit");
        let err = sqlx::query("SELECT pg_sleep(5)").execute(&mut conn).await.expect_err("stopped at the limit");
        conn.close().await.expect("close");
        let store_error = StoreError::from(err);
        assert!(matches!(store_error, StoreError::TimedOut(_)), "{store_error:?}");
        let res = ApiError::from(store_error).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["error"]["code"], "timeout");
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains("narrow it"));
    }

    #[test]
    fn a_pool_that_stays_taken_is_busy_too() {
        let e = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!((e.status, e.code), (StatusCode::SERVICE_UNAVAILABLE, "busy"));
    }

    #[test]
    fn numbers_with_a_zero_fraction_become_integers() {
        let mut v = serde_json::json!({"a": 151.0, "b": [1.5, -0.0, 1e3], "c": 9.3e18, "d": "151.0"});
        integral_floats_as_integers(&mut v);
        assert_eq!(v, serde_json::json!({"a": 151, "b": [1.5, 0, 1000], "c": 9.3e18, "d": "151.0"}));
    }

    #[test]
    fn serde_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Line {
            qty: i64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Order {
            at: String,
            lines: Vec<Line>,
        }
        let field = |v: serde_json::Value, prefix: &str| from_json::<Order>(v, prefix).err().and_then(|e| e.field);
        assert_eq!(field(serde_json::json!({"at": 5, "lines": []}), ""), Some("at".into()));
        assert_eq!(field(serde_json::json!({"lines": []}), ""), Some("at".into()));
        assert_eq!(field(serde_json::json!({"at": "x", "lines": [{"qty": "1"}]}), "orders[2]"), Some("orders[2].lines[0].qty".into()));
        assert_eq!(field(serde_json::json!({"at": "x", "lines": [{}]}), ""), Some("lines[0].qty".into()));
    }
}
