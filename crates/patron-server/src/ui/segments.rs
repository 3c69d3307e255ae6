//! The segments page (`/ui/segments`): built-in and saved segments with live counts, and the
//! segment builder — a rule box that previews the live count and first members as one types
//! (htmx), shows a rule problem with its position, saves the rule and exports it as CSV.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};
use patron_store::access::masking::{FieldMask, Surface};
use patron_store::segments::{builtin_segments, check_rule, rule_fields, NewSegment, Segment, SegmentMember};
use patron_store::users::Role;
use patron_store::StoreError;
use serde::Deserialize;

use super::{error_page, percent_encode, render, CsrfForm};
use crate::api::segments::{csv_response, evaluate, export_file_name, PREVIEW_MEMBERS};
use crate::auth::{require, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::{key_label, yuan, Lang};
use crate::AppState;

/// Routes of the segments page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/segments", get(page).post(save))
        .route("/ui/segments/preview", post(preview))
        .route("/ui/segments/export", get(export))
        .route("/ui/segments/{id}/delete", post(delete))
}

/// Rules shown as examples in the help box (each one is checked by a test).
pub const EXAMPLES: &[&str] = &[
    r#"rfm_class = "重要挽留" and p_alive < 0.5 and city in ("上海", "杭州")"#,
    r#"abcd_tier in ("A", "B") and churn = "relative""#,
    r#"lifecycle = "new" and days_since_last_purchase > 30"#,
    r#"clv > 1000 and consent.sms = true"#,
    r#"tag = "VIP" or spend >= 5000"#,
];

#[derive(Deserialize, Default)]
struct PageQuery {
    key: Option<String>,
    rule: Option<String>,
    saved: Option<String>,
}

/// A segment as the list shows it, in the page's language.
fn list_item(s: &Segment, count: Option<i64>, lang: Lang) -> Value {
    let name = match (&s.name_zh, lang) {
        (Some(zh), Lang::Zh) => zh.clone(),
        _ => s.name.clone(),
    };
    context! {
        key => s.key.clone(),
        id => s.id,
        builtin => s.builtin,
        name,
        description => s.description.clone(),
        rule => s.rule.clone(),
        rule_q => percent_encode(&s.rule),
        key_q => percent_encode(&s.key),
        dom_id => s.key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect::<String>(),
        count,
    }
}

/// What the builder needs besides the list: the rule box, the save form, the help.
struct Builder {
    rule: String,
    name: String,
    description: String,
    error: Option<String>,
    field: Option<String>,
    saved: bool,
    /// A saved segment's size at each analysis run (issue 18 §2), when one was opened.
    sizes: Option<Value>,
}

async fn render_page(state: &AppState, user: &UiUser, b: Builder, status: StatusCode) -> Response {
    let lang = user.lang;
    let mut saved_segments = match state.store.segments().await {
        Ok(s) => s,
        Err(e) => return error_page(state, user, e.into()),
    };
    let mut all = builtin_segments();
    all.append(&mut saved_segments);
    // Live counts on every load: one COUNT per segment, fine at the demo's size. A saved rule the
    // language no longer accepts shows "—" instead of failing the page.
    let mut builtin = Vec::new();
    let mut saved = Vec::new();
    for s in &all {
        let count = state.store.segment_count(&user.actor, &s.rule).await.ok();
        if s.builtin {
            builtin.push(list_item(s, count, lang));
        } else {
            saved.push(list_item(s, count, lang));
        }
    }
    let fields: Vec<Value> = rule_fields()
        .into_iter()
        .map(|f| {
            let values: Vec<String> =
                f.values.iter().map(|(k, zh)| if lang == Lang::Zh { format!("{k}（{zh}）") } else { k.clone() }).collect();
            context! {
                name => if f.r#type == "attribute" { format!("{}.NAME", f.name) } else { f.name.clone() },
                kind => f.r#type,
                description => if lang == Lang::Zh { f.description_zh } else { f.description_en },
                values => values.join(", "),
            }
        })
        .collect();
    let mut res = render(
        state,
        "segments.html",
        lang,
        Some(user),
        context! {
            builtin, saved, fields,
            examples => EXAMPLES,
            rule => b.rule, name => b.name, description => b.description,
            error => b.error, field => b.field, saved_flash => b.saved, sizes => b.sizes,
            can_edit => user.actor.role >= Role::Manager,
            preview_limit => PREVIEW_MEMBERS,
        },
    );
    *res.status_mut() = status;
    res
}

async fn page(State(state): State<AppState>, user: UiUser, Query(q): Query<PageQuery>) -> Response {
    // Definitions are readable by every role; counts are the caller's portfolio for agents.
    if let Err(e) = require(&user.actor, Role::Agent, "read segments") {
        return error_page(&state, &user, e);
    }
    let rule = match (&q.key, &q.rule) {
        (Some(key), _) if !key.trim().is_empty() => match state.store.segment(key).await {
            Ok(s) => s.rule,
            Err(e) => return error_page(&state, &user, e.into()),
        },
        (_, Some(rule)) => rule.clone(),
        _ => String::new(),
    };
    // Sizes at past runs count the whole base: shown to those who see every customer.
    let sizes = match q.key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) if patron_store::access::CustomerScope::of(&user.actor).is_all() => super::history::segment_sizes(&state, key).await,
        _ => None,
    };
    let b = Builder { rule, name: String::new(), description: String::new(), error: None, field: None, saved: q.saved.is_some(), sizes };
    render_page(&state, &user, b, StatusCode::OK).await
}

#[derive(Deserialize)]
struct PreviewForm {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    csrf: String,
}

/// The live preview (an htmx fragment). Always 200, so htmx swaps it in, including when the
/// rule has a problem: then the fragment shows the message and a caret under the position.
async fn preview(State(state): State<AppState>, user: UiUser, headers: HeaderMap, Form(f): Form<PreviewForm>) -> Response {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or(f.csrf);
    if let Err(e) = user.check_csrf(&sent) {
        return e.into_response();
    }
    if let Err(e) = require(&user.actor, Role::Agent, "preview segments") {
        return e.into_response();
    }
    let rule = f.rule.trim();
    let lang = user.lang;
    if rule.is_empty() {
        return render(&state, "segment_preview.html", lang, Some(&user), context! { empty => true });
    }
    if let Err(e) = check_rule(rule) {
        let ctx = context! { error => e.message.clone(), column => e.column, snippet => e.snippet(rule) };
        return render(&state, "segment_preview.html", lang, Some(&user), ctx);
    }
    let mask = match state.store.field_mask(&user.actor, Surface::List).await {
        Ok(m) => m,
        Err(e) => return render(&state, "segment_preview.html", lang, Some(&user), context! { error => e.to_string() }),
    };
    match evaluate(&state, &user.actor, rule, PREVIEW_MEMBERS).await {
        Ok(m) => {
            let members: Vec<Value> = m.members.iter().map(|x| member_row(x, lang, &mask)).collect();
            let ctx = context! {
                count => m.count, members,
                export => (user.actor.role >= Role::Manager).then(|| format!("/ui/segments/export?rule={}", percent_encode(rule))),
            };
            render(&state, "segment_preview.html", lang, Some(&user), ctx)
        }
        Err(e) => {
            let message = if e.status.is_server_error() { String::new() } else { e.message };
            render(&state, "segment_preview.html", lang, Some(&user), context! { error => message })
        }
    }
}

fn member_row(m: &SegmentMember, lang: Lang, mask: &FieldMask) -> Value {
    context! {
        id => m.id,
        name => m.name.clone(),
        external_id => m.external_id.clone(),
        city => m.city.clone(),
        rfm_class => m.rfm_class.as_deref().map(|k| key_label(lang, "rfm", k)),
        abcd_tier => m.abcd_tier.clone(),
        lifecycle => m.lifecycle.as_deref().map(|k| key_label(lang, "life", k)),
        p_alive => m.p_alive.map(|p| format!("{p:.2}")),
        clv => m.clv_cents.and_then(|c| mask.money(c)).map(yuan),
        spend => mask.money(m.spend_cents).map(yuan),
        last_purchase => m.last_purchase_date.map(|d| d.to_string()),
    }
}

#[derive(Deserialize)]
struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rule: String,
}

async fn save(State(state): State<AppState>, user: UiUser, Form(f): Form<SaveForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = require(&user.actor, Role::Manager, "save segments") {
        return error_page(&state, &user, e);
    }
    let input = NewSegment { name: f.name.clone(), description: Some(f.description.clone()), rule: f.rule.clone() };
    match state.store.create_segment(&user.actor, input).await {
        Ok(s) => Redirect::to(&format!("/ui/segments?key={}&saved=1#segment-list", percent_encode(&s.key))).into_response(),
        Err(e @ (StoreError::Invalid { .. } | StoreError::Conflict(_))) => {
            let e = ApiError::from(e);
            let b = Builder {
                rule: f.rule,
                name: f.name,
                description: f.description,
                error: Some(e.message),
                field: e.field,
                saved: false,
                sizes: None,
            };
            render_page(&state, &user, b, e.status).await
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

async fn delete(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = require(&user.actor, Role::Manager, "delete segments") {
        return error_page(&state, &user, e);
    }
    match state.store.delete_segment(&user.actor, id).await {
        Ok(()) => Redirect::to("/ui/segments#segment-list").into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

#[derive(Deserialize)]
struct ExportQuery {
    key: Option<String>,
    rule: Option<String>,
}

/// CSV of a saved or built-in segment (`?key=`) or of the builder's rule (`?rule=`).
async fn export(State(state): State<AppState>, user: UiUser, Query(q): Query<ExportQuery>) -> Response {
    // Full contact details: the same roles as the API's export.
    if let Err(e) = require(&user.actor, Role::Manager, "export segments") {
        return error_page(&state, &user, e);
    }
    let (rule, file) = match (q.key.filter(|k| !k.trim().is_empty()), q.rule) {
        (Some(key), _) => match state.store.segment(&key).await {
            Ok(s) => (s.rule, export_file_name(&s.key)),
            Err(e) => return error_page(&state, &user, e.into()),
        },
        (None, Some(rule)) => (rule, "segment.csv".to_owned()),
        (None, None) => return error_page(&state, &user, ApiError::bad_request("rule", "choose a segment or write a rule")),
    };
    match csv_response(&state, &user.actor, &rule, &file, false).await {
        Ok(r) => r,
        Err(e) => error_page(&state, &user, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_examples_are_valid_rules() {
        for r in EXAMPLES {
            if let Err(e) = check_rule(r) {
                panic!("{r}: {e}");
            }
        }
    }
}
