//! The service loop in the web UI: the tickets inbox (mine, open, breached, due soon), the
//! ticket page (its clocks, the conversation, the moves the ticket allows as buttons, root cause,
//! compensation with the tier's authority shown, approvals), a new ticket from the customer 360,
//! the notification bell, and the service dashboard (Pareto chart, complaint rate, KPIs).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use minijinja::context;
use patron_store::service::reports::{parse_month, Period};
use patron_store::tickets::flow::allowed_moves;
use patron_store::tickets::{
    CompensationKind, NewComment, NewCompensation, NewTicket, TicketFilter, TicketSort, Transition, CHANNELS, KINDS,
};
use patron_store::users::Role;
use serde::Deserialize;

use super::analytics::script_json;
use super::{error_page, render};
use crate::auth::{check_customer_access, require, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::labels;
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/tickets", get(inbox).post(create))
        .route("/ui/tickets/new", get(new_page))
        .route("/ui/tickets/{id}", get(page))
        .route("/ui/tickets/{id}/transition", post(transition))
        .route("/ui/tickets/{id}/comment", post(comment))
        .route("/ui/tickets/{id}/compensate", post(compensate))
        .route("/ui/tickets/{id}/compensations/{cid}/decision", post(decide))
        .route("/ui/tickets/{id}/take", post(take))
        .route("/ui/notifications", get(notifications))
        .route("/ui/notifications/bell", get(bell))
        .route("/ui/notifications/{id}/read", post(mark_read))
        .route("/ui/service", get(dashboard))
}

const VIEWS: [&str; 6] = ["mine", "team", "open", "due", "breached", "all"];

#[derive(Deserialize)]
struct InboxQuery {
    view: Option<String>,
    cursor: Option<String>,
}

async fn inbox(State(state): State<AppState>, user: UiUser, Query(q): Query<InboxQuery>) -> Response {
    let view = q.view.filter(|v| VIEWS.contains(&v.as_str())).unwrap_or_else(|| "mine".into());
    let open = Some("open".to_owned());
    let now = state.store.now();
    let (filter, sort) = match view.as_str() {
        "mine" => {
            (TicketFilter { status: open, assignee_id: Some(user.actor.user_id.unwrap_or(-1)), ..Default::default() }, TicketSort::Due)
        }
        "team" => (TicketFilter { status: open, team_of: Some(user.actor.user_id.unwrap_or(-1)), ..Default::default() }, TicketSort::Due),
        "open" => (TicketFilter { status: open, ..Default::default() }, TicketSort::Due),
        "due" => (TicketFilter { due_before: Some(now + Duration::hours(4)), ..Default::default() }, TicketSort::Due),
        "breached" => (TicketFilter { status: open, breached: Some(true), ..Default::default() }, TicketSort::Due),
        _ => (TicketFilter::default(), TicketSort::Newest),
    };
    let found = async {
        Ok::<_, patron_store::StoreError>((
            state.store.tickets(&user.actor, &filter, sort, q.cursor.as_deref(), 50).await?,
            state.store.praise_feed(5).await?,
        ))
    };
    match found.await {
        Ok((page, praise)) => render(
            &state,
            "tickets.html",
            user.lang,
            Some(&user),
            context! { tickets => page.items, next => page.next_cursor, view, views => VIEWS, praise },
        ),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

/// The ticket page's context; `link` is a confirmation link just made, `error` a refusal to show.
async fn page_context(state: &AppState, user: &UiUser, id: i64) -> Result<minijinja::Value, ApiError> {
    let d = state.store.ticket(id).await?;
    if !state.store.may_work_ticket(&user.actor, &d.ticket).await? {
        // Outside the scope the ticket does not exist (404), as its customer.
        return Err(ApiError::not_found("ticket"));
    }
    let assignee = match d.ticket.assignee_id {
        Some(a) => state.store.user(a).await.ok().map(|u| u.name),
        None => None,
    };
    let authority = state.store.service_policy(&d.ticket.tier).await?.compensation_authority_cents;
    let root_causes = state.store.service_settings().await?.root_causes;
    let moves = allowed_moves(&d.ticket.status);
    let can_take = user.actor.role == Role::Agent && d.ticket.assignee_id.is_none();
    let can_decide = user.actor.role >= Role::Manager;
    Ok(context! { k => d.ticket, comments => d.comments, compensations => d.compensations, history => d.history, assignee,
    authority, root_causes, moves, can_take, can_decide })
}

async fn show(state: &AppState, user: &UiUser, id: i64, extra: minijinja::Value) -> Response {
    match page_context(state, user, id).await {
        Ok(ctx) => render(state, "ticket.html", user.lang, Some(user), context! { ..extra, ..ctx }),
        Err(e) => error_page(state, user, e),
    }
}

async fn page(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    show(&state, &user, id, context! {}).await
}

/// Checks the form's CSRF token and that the user may work the ticket.
async fn guard(state: &AppState, user: &UiUser, id: i64, csrf: &str) -> Result<(), ApiError> {
    user.check_csrf(csrf)?;
    let d = state.store.ticket(id).await?;
    if state.store.may_work_ticket(&user.actor, &d.ticket).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("ticket"))
    }
}

/// After a change: the ticket page again, or the page with the refusal shown.
async fn after(state: &AppState, user: &UiUser, id: i64, result: Result<Option<String>, ApiError>) -> Response {
    match result {
        Ok(None) => Redirect::to(&format!("/ui/tickets/{id}")).into_response(),
        Ok(Some(link)) => show(state, user, id, context! { link }).await,
        Err(e) if e.status.is_client_error() && e.status != axum::http::StatusCode::FORBIDDEN => {
            show(state, user, id, context! { error => e.message }).await
        }
        Err(e) => error_page(state, user, e),
    }
}

#[derive(Deserialize)]
struct TransitionForm {
    csrf: String,
    to: String,
    root_cause: Option<String>,
    note: Option<String>,
}

async fn transition(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(f): Form<TransitionForm>,
) -> Response {
    let result = async {
        guard(&state, &user, id, &f.csrf).await?;
        let tr = Transition { to: f.to, root_cause: f.root_cause.filter(|c| !c.is_empty()), note: f.note.filter(|n| !n.trim().is_empty()) };
        let change = state.store.transition_ticket(&user.actor, id, tr).await?;
        Ok(change.confirmation_token.map(|t| format!("{}/p/confirm/{t}", crate::api::tickets::public_base(&state, &headers))))
    }
    .await;
    after(&state, &user, id, result).await
}

#[derive(Deserialize)]
struct CommentForm {
    csrf: String,
    body: String,
    public: Option<String>,
}

async fn comment(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CommentForm>) -> Response {
    let result = async {
        guard(&state, &user, id, &f.csrf).await?;
        let c = NewComment { body: f.body, public: f.public.as_deref() == Some("true"), attachments: vec![] };
        state.store.comment_ticket(&user.actor, id, c).await?;
        Ok(None)
    }
    .await;
    after(&state, &user, id, result).await
}

#[derive(Deserialize)]
struct CompensateForm {
    csrf: String,
    kind: String,
    amount: String,
    reason: String,
}

async fn compensate(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CompensateForm>) -> Response {
    let result = async {
        guard(&state, &user, id, &f.csrf).await?;
        let kind = match f.kind.as_str() {
            "refund" => CompensationKind::Refund,
            "gift" => CompensationKind::Gift,
            "points" => CompensationKind::Points,
            _ => CompensationKind::Voucher,
        };
        let amount_cents = patron_store::values::parse_money(&f.amount)
            .map_err(|m| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid", m).field("amount"))?;
        state.store.compensate(&user.actor, id, NewCompensation { amount_cents, kind, reason: f.reason }).await?;
        Ok(None)
    }
    .await;
    after(&state, &user, id, result).await
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    approve: String,
}

async fn decide(State(state): State<AppState>, user: UiUser, Path((id, cid)): Path<(i64, i64)>, Form(f): Form<DecisionForm>) -> Response {
    let result = async {
        guard(&state, &user, id, &f.csrf).await?;
        require(&user.actor, Role::Manager, "decide on compensation")?;
        state.store.decide_compensation(&user.actor, id, cid, f.approve == "true").await?;
        Ok(None)
    }
    .await;
    after(&state, &user, id, result).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn take(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let result = async {
        guard(&state, &user, id, &f.csrf).await?;
        state.store.assign_ticket(&user.actor, id, user.actor.user_id, None).await?;
        Ok(None)
    }
    .await;
    after(&state, &user, id, result).await
}

#[derive(Deserialize)]
struct NewQuery {
    customer_id: i64,
}

async fn new_page(State(state): State<AppState>, user: UiUser, Query(q): Query<NewQuery>) -> Response {
    new_form(&state, &user, q.customer_id, None).await
}

async fn new_form(state: &AppState, user: &UiUser, customer_id: i64, error: Option<String>) -> Response {
    let ctx = async {
        check_customer_access(state, &user.actor, customer_id).await?;
        let customer = state.store.customer(customer_id).await?;
        let root_causes = state.store.service_settings().await?.root_causes;
        Ok::<_, ApiError>(context! { customer => context! { id => customer.id, name => customer.name }, kinds => KINDS,
        channels => CHANNELS, root_causes, error })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "ticket_new.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

#[derive(Deserialize)]
struct NewTicketForm {
    csrf: String,
    customer_id: i64,
    kind: String,
    channel: String,
    category: Option<String>,
    subject: String,
    body: Option<String>,
}

async fn create(State(state): State<AppState>, user: UiUser, Form(f): Form<NewTicketForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = check_customer_access(&state, &user.actor, f.customer_id).await {
        return error_page(&state, &user, e);
    }
    let t = NewTicket {
        customer_id: f.customer_id,
        kind: f.kind,
        channel: f.channel,
        subject: f.subject,
        body: f.body.unwrap_or_default(),
        category: f.category.filter(|c| !c.is_empty()),
        // A ticket an agent opens is theirs to work.
        assignee_id: if user.actor.role == Role::Agent { user.actor.user_id } else { None },
        department: None,
        store: None,
        opened_at: None,
        order_id: None,
    };
    match state.store.create_ticket(&user.actor, t).await {
        Ok(t) => Redirect::to(&format!("/ui/tickets/{}", t.id)).into_response(),
        Err(e) => new_form(&state, &user, f.customer_id, Some(ApiError::from(e).message)).await,
    }
}

async fn notifications(State(state): State<AppState>, user: UiUser) -> Response {
    match state.store.notifications(&user.actor, false, 100).await {
        Ok(items) => render(&state, "notifications.html", user.lang, Some(&user), context! { items }),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

/// The bell's unread count (an htmx fragment the header loads).
async fn bell(State(state): State<AppState>, user: UiUser) -> Response {
    let n = state.store.unread_notifications(&user.actor).await.unwrap_or(0);
    let label = labels(user.lang).get("notifications").copied().unwrap_or("notifications");
    let html = if n > 0 { format!("{label} <b class=\"count\" id=\"bell-count\">{n}</b>") } else { label.to_owned() };
    axum::response::Html(html).into_response()
}

#[derive(Deserialize)]
struct ReadForm {
    csrf: String,
}

async fn mark_read(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<ReadForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    match state.store.mark_notification_read(&user.actor, id).await {
        Ok(()) => Redirect::to("/ui/notifications").into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

async fn dashboard(State(state): State<AppState>, user: UiUser) -> Response {
    let ctx = async {
        require(&user.actor, Role::Manager, "see service reports")?;
        let tz = state.store.config.business_tz;
        let today = state.store.now().with_timezone(&tz).date_naive();
        let period = Period::days(&tz, today - Duration::days(89), today)?;
        let pareto = state.store.pareto("complaint", period).await?;
        let rates = state.store.complaint_rates(period).await?;
        let month = parse_month(&today.format("%Y-%m").to_string())?;
        let kpis = state.store.service_kpis(month).await?;
        let churn = state.store.churn_reason_report("tier").await?;
        let t = labels(user.lang);
        let mut segments: Vec<String> = churn.cells.iter().map(|c| c.segment.clone()).collect();
        segments.dedup();
        let series: Vec<serde_json::Value> = churn
            .reasons
            .iter()
            .map(|r| {
                let data: Vec<u64> = segments
                    .iter()
                    .map(|g| churn.cells.iter().filter(|c| &c.segment == g && &c.reason == r).map(|c| c.customers).sum())
                    .collect();
                let name = if r == "(unknown)" { t.get("unknown_reason").map(|s| (*s).to_owned()).unwrap_or_default() } else { r.clone() };
                serde_json::json!({ "name": name, "data": data })
            })
            .collect();
        let churn_chart = script_json(&serde_json::json!({ "segments": segments, "series": series }));
        let chart = script_json(&serde_json::json!({
            "labels": { "count": t.get("count"), "cumulative": t.get("cumulative") },
            "categories": pareto.categories.iter().map(|c| c.category.clone()).collect::<Vec<_>>(),
            "counts": pareto.categories.iter().map(|c| c.count).collect::<Vec<_>>(),
            "cumulative": pareto.categories.iter().map(|c| (c.cumulative_share * 1000.0).round() / 10.0).collect::<Vec<_>>(),
            "vital": pareto.categories.iter().map(|c| c.vital_few).collect::<Vec<_>>(),
        }));
        Ok::<_, ApiError>(context! { pareto, rates, kpis, chart, churn, churn_chart })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "service.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}
