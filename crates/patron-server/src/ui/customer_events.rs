//! The customer-event pages (issue 19 §6, §10): the list with a form for a new event
//! (`/ui/customer-events`); the event's page (`/ui/customer-events/{id}`) with its counts, the
//! invitation form, the registrations with a check-in button each, registering a customer by
//! hand, the post-event survey and the report; and the invitee's page `/p/e/{token}` (no login,
//! mobile first, zh-CN/en, rate-limited by the caller) that shows the event and the invitee's
//! own registration and nothing else. Labels of these pages live here ([`labels`]), passed as `f`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use minijinja::{context, Value};
use patron_store::access::Permission;
use patron_store::customer_events::{CustomerEventPatch, EventSurveyRequest, InviteRequest, NewCustomerEvent, KINDS};
use patron_store::engagement::campaigns::CampaignChannel;
use patron_store::StoreError;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{check_customer_access, permit, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::Lang;
use crate::AppState;

/// (key, 中文, English): the labels of the customer-event pages.
const LABELS: &[(&str, &str, &str)] = &[
    ("events", "客户活动", "Customer events"),
    ("new_event", "新建活动", "New event"),
    ("title", "主题", "Title"),
    ("kind", "类型", "Kind"),
    ("k_seminar", "研讨会", "Seminar"),
    ("k_forum", "论坛", "Forum"),
    ("k_club", "俱乐部活动", "Club activity"),
    ("k_other", "其他", "Other"),
    ("description", "介绍", "Description"),
    ("starts_at", "开始", "Starts"),
    ("ends_at", "结束", "Ends"),
    ("when", "时间", "When"),
    ("place", "地点", "Place"),
    ("link", "线上链接", "Online link"),
    ("capacity", "名额", "Seats"),
    ("seats_taken", "已占名额", "Seats taken"),
    ("status", "状态", "Status"),
    ("s_scheduled", "已排期", "Scheduled"),
    ("s_cancelled", "已取消", "Cancelled"),
    ("invited", "已邀请", "Invited"),
    ("registered", "已报名", "Registered"),
    ("attended", "已签到", "Attended"),
    ("create", "创建", "Create"),
    ("none", "暂无活动", "No events yet"),
    ("invite", "邀请客户", "Invite customers"),
    ("segment", "客户分群", "Segment"),
    ("or_rule", "或规则", "or a rule"),
    ("channel", "渠道", "Channel"),
    ("c_email", "邮件", "E-mail"),
    ("c_sms", "短信", "SMS"),
    ("c_wechat", "微信", "WeChat"),
    ("c_mail", "直邮", "Direct mail"),
    ("c_preferred", "客户偏好渠道", "Preferred channel"),
    ("send_invitations", "发送邀请", "Send invitations"),
    ("invite_note", "同意与频次上限生效；每位客户只邀请一次，重复发送不会重复邀请。", "Consent and frequency caps apply; each customer is invited once, running it again invites nobody twice."),
    ("invite_done", "邀请结果", "Invitation result"),
    ("audience", "分群人数", "Audience"),
    ("invited_now", "本次邀请", "Invited now"),
    ("already_invited", "此前已邀请", "Invited before"),
    ("no_consent", "未同意", "No consent"),
    ("capped", "超出频次", "Capped"),
    ("global_control", "全局对照组", "Global control"),
    ("registrations", "报名名单", "Registrations"),
    ("customer", "客户", "Customer"),
    ("source", "来源", "Source"),
    ("src_link", "邀请链接", "Invitation link"),
    ("src_staff", "员工登记", "Staff"),
    ("src_walk_in", "现场签到", "Walk-in"),
    ("r_registered", "已报名", "Registered"),
    ("r_cancelled", "已取消", "Cancelled"),
    ("check_in", "签到", "Check in"),
    ("checked_in", "已签到", "Checked in"),
    ("cancel_registration", "取消报名", "Cancel"),
    ("no_registrations", "暂无报名", "No registrations yet"),
    ("register_customer", "登记报名（客户编号）", "Register a customer (id)"),
    ("register", "报名", "Register"),
    ("walk_in_note", "未报名的客户签到时按现场签到登记。", "A customer not registered is checked in as a walk-in."),
    ("survey", "活动后调查", "Post-event survey"),
    ("choose_survey", "选择调查", "Choose a survey"),
    ("send_survey", "发送给签到客户", "Send to the attendees"),
    ("survey_sent", "调查已发送", "Survey sent"),
    ("survey_result", "调查发送结果", "Survey result"),
    ("attendees", "签到客户", "Attendees"),
    ("sent", "已发送", "Sent"),
    ("skipped", "跳过", "Skipped"),
    ("report", "活动效果", "Report"),
    ("report_note", "签到客户与同价值层级、受邀未到场客户在活动后 90 天的消费与留存（有完成订单）对比；区间方法同营销活动。到场是客户自选，差异描述两组，不证明因果。",
        "Attendees against invitees of the same value tiers who did not attend: spend and retention (a completed order) in the 90 days after the event; intervals as for campaigns. Attending is chosen: the difference describes the groups, it does not prove cause."),
    ("invitations_sent", "邀请已送达", "Invitations sent"),
    ("walk_ins", "现场签到（未受邀）", "Walk-ins (not invited)"),
    ("group", "组", "Group"),
    ("g_attendees", "到场的受邀客户", "Invitees who attended"),
    ("g_comparison", "未到场的可比受邀客户", "Comparable invitees who did not attend"),
    ("retained", "留存", "Retained"),
    ("orders", "订单", "Orders"),
    ("spend", "消费", "Spend"),
    ("spend_per", "人均消费", "Spend per customer"),
    ("retention_diff", "留存率差", "Retention difference"),
    ("spend_diff", "人均消费差", "Spend difference"),
    ("too_few", "样本太少，无法判断（每组至少", "Too few to tell (at least"),
    ("too_few_end", "人）", "per group)"),
    ("window_open", "90 天观察期尚未结束，数字仍会变化。", "The 90-day window is still open: the numbers may change."),
    ("tiers", "价值层级", "Tiers"),
    ("save", "保存", "Save"),
    ("back", "返回活动列表", "All events"),
    ("language", "English", "中文"),
    ("public_register", "我要报名", "Register"),
    ("public_cancel", "取消报名", "Cancel my registration"),
    ("public_registered", "您已报名，期待与您相见。", "You are registered. We look forward to seeing you."),
    ("public_cancelled", "您已取消报名。", "Your registration is cancelled."),
    ("public_attended", "感谢您的参与！", "Thank you for coming!"),
    ("public_full", "名额已满。", "The event is full."),
    ("public_closed", "报名已截止。", "Registration is closed."),
    ("public_event_cancelled", "活动已取消，给您带来不便，敬请谅解。", "The event has been cancelled. We apologise for the inconvenience."),
    ("public_gone", "链接无效或已过期", "This link is not valid or has expired"),
    ("public_gone_text", "如需帮助，请联系您的客户经理。", "Please contact your account manager if you need help."),
];

/// The labels in `lang`.
pub(crate) fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::En { *en } else { *zh })).collect()
}

/// Routes of the staff pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/customer-events", get(list).post(create))
        .route("/ui/customer-events/{id}", get(page))
        .route("/ui/customer-events/{id}/invite", post(invite))
        .route("/ui/customer-events/{id}/register", post(register))
        .route("/ui/customer-events/{id}/check-in/{customer_id}", post(check_in))
        .route("/ui/customer-events/{id}/survey", post(survey))
}

/// The invitee's page (the caller adds the rate limit).
pub fn public_router() -> Router<AppState> {
    Router::new().route("/p/e/{token}", get(public_page).post(public_answer))
}

/// `YYYY-MM-DDTHH:MM` in the business time zone.
fn local_time(state: &AppState, field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    let local = NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%dT%H:%M").map_err(|_| ApiError::bad_request(field, "a date and time"))?;
    state
        .store
        .config
        .business_tz
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::bad_request(field, "not a time of the calendar"))
}

async fn list_page(state: &AppState, user: &UiUser, extra: Value, status: StatusCode) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CustomersRead)?;
        let events = state.store.customer_events().await?;
        Ok::<_, ApiError>(context! { section => "customer_events", events, kinds => KINDS.to_vec(),
        can_write => user.actor.can(Permission::CampaignsWrite), f => labels(user.lang), ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => {
            let mut res = render(state, "customer_events.html", user.lang, Some(user), ctx);
            if res.status() == StatusCode::OK {
                *res.status_mut() = status;
            }
            res
        }
        Err(e) => error_page(state, user, e),
    }
}

async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    list_page(&state, &user, context! {}, StatusCode::OK).await
}

#[derive(Deserialize)]
struct EventForm {
    csrf: String,
    title: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    description: String,
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    place: String,
    #[serde(default)]
    link: String,
    capacity: String,
}

async fn create(State(state): State<AppState>, user: UiUser, Form(f): Form<EventForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CampaignsWrite)?;
        let capacity = f.capacity.trim().parse().map_err(|_| ApiError::bad_request("capacity", "a number of seats"))?;
        let opt = |v: &str| Some(v.trim().to_owned()).filter(|s| !s.is_empty());
        let e = NewCustomerEvent {
            title: f.title.clone(),
            kind: opt(&f.kind),
            description: opt(&f.description),
            starts_at: local_time(&state, "starts_at", &f.starts_at)?,
            ends_at: Some(local_time(&state, "ends_at", &f.ends_at)?),
            place: opt(&f.place),
            link: opt(&f.link),
            capacity,
            survey_id: None,
        };
        Ok::<_, ApiError>(state.store.create_customer_event(&user.actor, e).await?)
    }
    .await;
    match res {
        Ok(e) => Redirect::to(&format!("/ui/customer-events/{}", e.id)).into_response(),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN => {
            list_page(&state, &user, context! { error => e.message }, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

/// Percent with one decimal.
fn pct(v: f64) -> String {
    format!("{:.1}", v * 100.0)
}

async fn event_page(state: &AppState, user: &UiUser, id: i64, extra: Value, status: StatusCode) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::CustomersRead)?;
        let event = state.store.customer_event(id).await?;
        let registrations = state.store.customer_event_registrations(&user.actor, id).await?;
        let may_report = user.actor.can(Permission::CampaignsRead) && user.actor.can(Permission::AllCustomers);
        let report = if may_report { Some(state.store.customer_event_report(id).await?) } else { None };
        let rates = report.as_ref().map(|r| {
            context! {
                attendees => pct(r.attendees.retention_rate), comparison => pct(r.comparison.retention_rate),
                retention => r.retention_difference.map(|d| context! { estimate => pct(d.estimate), low => pct(d.low), high => pct(d.high) }),
            }
        });
        let may_invite = user.actor.can(Permission::CampaignsLaunch);
        let mut segments = Vec::new();
        if may_invite {
            segments = state.store.segments().await?;
            segments.extend(patron_store::segments::builtin_segments());
        }
        let surveys = if user.actor.can(Permission::SurveysManage) { state.store.surveys().await? } else { Vec::new() };
        Ok::<_, ApiError>(context! { section => "customer_events", event, registrations, report, rates, segments, surveys,
            may_invite, may_write => user.actor.can(Permission::CustomersWrite), may_survey => user.actor.can(Permission::SurveysManage),
            channels => ["email", "sms", "wechat", "mail", "preferred"], f => labels(user.lang), ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => {
            let mut res = render(state, "customer_event.html", user.lang, Some(user), ctx);
            if res.status() == StatusCode::OK {
                *res.status_mut() = status;
            }
            res
        }
        Err(e) => error_page(state, user, e),
    }
}

async fn page(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    event_page(&state, &user, id, context! {}, StatusCode::OK).await
}

/// A form's outcome: the event's page with what was done, or with the refusal.
async fn after(state: &AppState, user: &UiUser, id: i64, res: Result<Value, ApiError>) -> Response {
    match res {
        Ok(extra) => event_page(state, user, id, extra, StatusCode::OK).await,
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN && e.status != StatusCode::NOT_FOUND => {
            let status = e.status;
            event_page(state, user, id, context! { error => e.message }, status).await
        }
        Err(e) => error_page(state, user, e),
    }
}

#[derive(Deserialize)]
struct InviteForm {
    csrf: String,
    #[serde(default)]
    segment_key: String,
    #[serde(default)]
    rule: String,
    channel: String,
}

async fn invite(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<InviteForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CampaignsLaunch)?;
        let segment = if f.segment_key.trim().is_empty() { f.rule.trim().to_owned() } else { f.segment_key.trim().to_owned() };
        let channel: CampaignChannel = serde_json::from_value(serde_json::Value::String(f.channel.clone()))
            .map_err(|_| ApiError::bad_request("channel", "choose a channel"))?;
        let outcome = state.store.invite_to_customer_event(&user.actor, id, InviteRequest { segment, channel: Some(channel) }).await?;
        Ok::<_, ApiError>(context! { invited => outcome })
    }
    .await;
    after(&state, &user, id, res).await
}

#[derive(Deserialize)]
struct RegisterForm {
    csrf: String,
    customer_id: String,
}

async fn register(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<RegisterForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CustomersWrite)?;
        let customer_id: i64 = f.customer_id.trim().parse().map_err(|_| ApiError::bad_request("customer_id", "a customer's id"))?;
        check_customer_access(&state, &user.actor, customer_id)
            .await
            .map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("no customer {customer_id}")))?;
        state.store.register_for_customer_event(&user.actor, id, customer_id).await?;
        Ok::<_, ApiError>(context! {})
    }
    .await;
    after(&state, &user, id, res).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn check_in(
    State(state): State<AppState>,
    user: UiUser,
    Path((id, customer_id)): Path<(i64, i64)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::CustomersWrite)?;
        check_customer_access(&state, &user.actor, customer_id).await?;
        state.store.check_in_customer_event(&user.actor, id, customer_id).await?;
        Ok::<_, ApiError>(context! {})
    }
    .await;
    match res {
        // Back to the list, at the row (a door list is long).
        Ok(_) => Redirect::to(&format!("/ui/customer-events/{id}#reg-{customer_id}")).into_response(),
        Err(e) => after(&state, &user, id, Err(e)).await,
    }
}

#[derive(Deserialize)]
struct SurveyForm {
    csrf: String,
    #[serde(default)]
    survey_id: String,
    channel: String,
}

async fn survey(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<SurveyForm>) -> Response {
    let res = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::SurveysManage)?;
        if !f.survey_id.trim().is_empty() {
            permit(&user.actor, Permission::CampaignsWrite)?;
            let survey_id = f.survey_id.trim().parse().map_err(|_| ApiError::bad_request("survey_id", "choose a survey"))?;
            state
                .store
                .update_customer_event(&user.actor, id, CustomerEventPatch { survey_id: Some(survey_id), ..Default::default() })
                .await?;
        }
        let channel = serde_json::from_value(serde_json::Value::String(f.channel.clone()))
            .map_err(|_| ApiError::bad_request("channel", "choose a channel"))?;
        let outcome = state.store.send_customer_event_survey(&user.actor, id, EventSurveyRequest { channel: Some(channel) }).await?;
        Ok::<_, ApiError>(context! { survey_outcome => outcome })
    }
    .await;
    after(&state, &user, id, res).await
}

#[derive(Deserialize)]
struct LangParam {
    lang: Option<String>,
}

fn lang_of(p: &LangParam, jar: &CookieJar) -> Lang {
    match p.lang.as_deref().and_then(Lang::from_code) {
        Some(l) => l,
        None => Lang::from_jar(jar),
    }
}

fn public_render(
    state: &AppState,
    lang: Lang,
    token: &str,
    view: Result<patron_store::customer_events::PublicEvent, StoreError>,
    notice: Option<&str>,
) -> Response {
    let f = labels(lang);
    match view {
        Ok(event) => render(state, "public_event.html", lang, None, context! { event, token, notice, f, lang_code => lang.code() }),
        // Unknown, forged, expired: the same page, telling nothing.
        Err(StoreError::NotFound(_)) => {
            let mut res = render(state, "public_event.html", lang, None, context! { event => None::<()>, f });
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn public_page(State(state): State<AppState>, jar: CookieJar, Path(token): Path<String>, Query(p): Query<LangParam>) -> Response {
    let lang = lang_of(&p, &jar);
    let view = state.store.public_customer_event(&token).await;
    public_render(&state, lang, &token, view, None)
}

#[derive(Deserialize)]
struct AnswerForm {
    action: String,
}

/// Register or cancel (a POST: mail scanners fetch every link, and a GET changes nothing).
async fn public_answer(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
    Query(p): Query<LangParam>,
    Form(f): Form<AnswerForm>,
) -> Response {
    let lang = lang_of(&p, &jar);
    let register = match f.action.as_str() {
        "register" => true,
        "cancel" => false,
        _ => return (StatusCode::BAD_REQUEST, "action must be register or cancel").into_response(),
    };
    match state.store.public_customer_event_answer(&token, register).await {
        Ok(view) => public_render(&state, lang, &token, Ok(view), None),
        // Full, closed, cancelled: the page as it is, saying why.
        Err(StoreError::State(_)) => {
            let view = state.store.public_customer_event(&token).await;
            let mut res = public_render(&state, lang, &token, view, Some("refused"));
            if res.status() == StatusCode::OK {
                *res.status_mut() = StatusCode::CONFLICT;
            }
            res
        }
        Err(e) => public_render(&state, lang, &token, Err(e), None),
    }
}
