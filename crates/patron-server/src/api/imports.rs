//! `POST /api/v1/imports`: the same importer as `patron import`, over multipart upload.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use patron_store::import::{Encoding, ImportKind, ImportOptions, ImportReport};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorDetail, Json, Multipart};
use crate::AppState;

/// Routes of this module.
pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new().route("/imports", post(create).layer(DefaultBodyLimit::max(max_upload_bytes)))
}

/// Multipart form of an import.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// `customers`, `contacts`, `orders`, `interactions`, `tickets` or `fulfilment`.
    kind: String,
    /// The file (CSV or JSON lines).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `utf-8` or `gb18030` (default: detect).
    encoding: Option<String>,
    /// `true` to load valid rows even if some are rejected (default `false`).
    skip_invalid: Option<bool>,
    /// `true` to validate only (default `false`).
    dry_run: Option<bool>,
    /// `SOURCE=FIELD` header mapping; repeat the part for several.
    map: Option<String>,
}

/// An import whose rows were rejected and that wrote nothing.
#[derive(Serialize, ToSchema)]
pub struct RejectedImport {
    /// Why nothing was written.
    pub error: ErrorDetail,
    /// The full report with every rejected row.
    pub report: ImportReport,
}

/// Imports a file. Answers 200 with the report when it was written (or on a dry run), 422 with
/// the error envelope plus the report when rows were rejected and nothing was written, and 422
/// (field `file`) for a file that cannot be read at all. A form field that is missing, unknown
/// or not one of its values is a 400.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 200, body = ImportReport), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = RejectedImport, description = "Rows were rejected and nothing was written (the report is attached), or the file cannot be read (`error` only, field `file`).")))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Multipart(multipart): Multipart) -> ApiResult<Response> {
    let (opts, file) = read_form(multipart).await?;
    let report = state.store.import(&actor, Box::new(std::io::Cursor::new(file)), &opts, &|_| {}).await?;
    state.metrics.import_rows(&report);
    Ok(report_response(report, opts.dry_run))
}

/// 200 with the report, or 422 with the envelope and the report when nothing was written.
pub fn report_response(report: ImportReport, dry_run: bool) -> Response {
    if report.committed || dry_run {
        Json(report).into_response()
    } else {
        let error = ErrorDetail {
            code: "rows_rejected".into(),
            message: format!(
                "{} of {} rows were rejected; nothing was written (send skip_invalid=true to load the valid rows)",
                report.rejected, report.rows_read
            ),
            field: None,
        };
        (StatusCode::UNPROCESSABLE_ENTITY, Json(RejectedImport { error, report })).into_response()
    }
}

/// A multipart body that could not be read: 413 when it is over the upload limit, 400 else.
fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "invalid_multipart" };
    ApiError::new(status, code, e.body_text())
}

/// Reads the multipart fields into import options and the file bytes.
pub async fn read_form(mut multipart: axum::extract::Multipart) -> ApiResult<(ImportOptions, Vec<u8>)> {
    let bad = |field: &str, m: String| ApiError::bad_request(field, m);
    let mut kind: Option<ImportKind> = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut encoding: Option<Encoding> = None;
    let mut skip_invalid = false;
    let mut dry_run = false;
    let mut mappings = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("upload.csv").to_owned();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            file = Some((file_name, bytes.to_vec()));
            continue;
        }
        let text = field.text().await.map_err(multipart_error)?;
        crate::api::contract::check_form_text("ImportForm", &name, &text)?;
        // The API's booleans are JSON Schema's: `true` or `false`.
        let flag = |t: &str| match t {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(&name, format!("{name} must be true or false, not {t:?}"))),
        };
        match name.as_str() {
            "kind" => kind = Some(text.trim().parse().map_err(|e: patron_store::StoreError| bad("kind", e.to_string()))?),
            "encoding" if !text.trim().is_empty() => {
                encoding = Some(text.trim().parse().map_err(|e: patron_store::StoreError| bad("encoding", e.to_string()))?)
            }
            "encoding" => {}
            "skip_invalid" => skip_invalid = flag(&text)?,
            "dry_run" => dry_run = flag(&text)?,
            "map" if !text.trim().is_empty() => {
                let (src, dst) = text.split_once('=').ok_or_else(|| bad("map", "map must be SOURCE=FIELD".into()))?;
                mappings.push((src.trim().to_owned(), dst.trim().to_owned()));
            }
            "map" => {}
            other => return Err(bad(other, format!("unknown form field {other:?}"))),
        }
    }
    let kind =
        kind.ok_or_else(|| bad("kind", "kind is required (customers, contacts, orders, interactions, tickets or fulfilment)".into()))?;
    let (file_name, bytes) = file.ok_or_else(|| bad("file", "file is required".into()))?;
    let mut opts = ImportOptions::new(kind, file_name);
    opts.encoding = encoding;
    opts.skip_invalid = skip_invalid;
    opts.dry_run = dry_run;
    opts.mappings = mappings;
    Ok((opts, bytes))
}
