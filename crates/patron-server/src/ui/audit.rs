//! `/ui/audit`: the audit viewer for administrators (issue 14 §3): filter by actor, customer,
//! action and days, page back through the log, export what is selected as CSV.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{NaiveTime, TimeZone, Utc};
use minijinja::context;
use patron_store::audit::AuditFilter;
use patron_store::users::Role;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::UiUser;
use crate::error::{ApiError, Query};
use crate::AppState;

/// Routes of the audit viewer.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/audit", get(page)).route("/ui/audit/export", get(export))
}

/// The filter form as the browser sends it: every field text, empty for "any".
#[derive(Debug, Default, Deserialize)]
struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    action: String,
    /// First day (YYYY-MM-DD, business time zone), inclusive.
    #[serde(default)]
    from: String,
    /// Last day, inclusive.
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

impl AuditForm {
    /// The store's filter; a bad value is a 400 naming the field.
    fn filter(&self, tz: patron_store::BusinessTz) -> Result<AuditFilter, ApiError> {
        let text = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        let customer_id = match text(&self.customer_id) {
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::bad_request("customer_id", "a customer id is a number"))?,
            ),
            None => None,
        };
        let day = |field: &str, v: &str, next: bool| -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
            let Some(v) = text(v) else { return Ok(None) };
            let d = patron_store::values::parse_date(&v).map_err(|m| ApiError::bad_request(field, m))?;
            let d = if next { d.succ_opt().unwrap_or(d) } else { d };
            Ok(tz.from_local_datetime(&d.and_time(NaiveTime::MIN)).earliest().map(|t| t.with_timezone(&Utc)))
        };
        crate::api::audit::filter(
            text(&self.actor),
            None,
            customer_id,
            text(&self.action),
            day("from", &self.from, false)?,
            day("to", &self.to, true)?,
        )
    }

    /// The query string of the filters (for the export link and the next page).
    fn query(&self) -> String {
        let pairs =
            [("actor", &self.actor), ("customer_id", &self.customer_id), ("action", &self.action), ("from", &self.from), ("to", &self.to)];
        serde_urlencoded::to_string(pairs.iter().filter(|(_, v)| !v.trim().is_empty()).collect::<Vec<_>>()).unwrap_or_default()
    }
}

fn admin_only(user: &UiUser) -> Result<(), ApiError> {
    if user.actor.role >= Role::Admin {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only administrators read the audit log"))
    }
}

async fn page(State(state): State<AppState>, user: UiUser, Query(f): Query<AuditForm>) -> Response {
    if let Err(e) = admin_only(&user) {
        return error_page(&state, &user, e);
    }
    let filter = match f.filter(state.store.config.business_tz) {
        Ok(filter) => filter,
        Err(e) => return error_page(&state, &user, e),
    };
    let cursor = Some(f.cursor.trim()).filter(|c| !c.is_empty());
    match state.store.audit_page(&filter, cursor, 100).await {
        Ok(p) => {
            let query = f.query();
            let next = p.next_cursor.map(|c| if query.is_empty() { format!("cursor={c}") } else { format!("{query}&cursor={c}") });
            let ctx = context! { section => "audit", items => p.items, next, query, form => context! {
                actor => f.actor, customer_id => f.customer_id, action => f.action, from => f.from, to => f.to,
            } };
            render(&state, "audit.html", user.lang, Some(&user), ctx)
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

async fn export(State(state): State<AppState>, user: UiUser, Query(f): Query<AuditForm>) -> Response {
    if let Err(e) = admin_only(&user) {
        return error_page(&state, &user, e);
    }
    let filter = match f.filter(state.store.config.business_tz) {
        Ok(filter) => filter,
        Err(e) => return error_page(&state, &user, e),
    };
    match state.store.audit_csv(&user.actor.key, &filter, false).await {
        Ok(body) => crate::api::audit::csv_download(body),
        Err(e) => error_page(&state, &user, e.into()),
    }
}
