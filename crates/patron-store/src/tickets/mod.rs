//! Tickets (DESIGN.md C9): complaints, inquiries, suggestions and praise from any channel, with
//! the SLA clocks of the customer's tier policy, a closed loop that ends only when the customer
//! confirms (or a confirmation period passes), root causes, comments, compensation within the
//! tier's authority, and every state change as a domain event in the same transaction.
//!
//! A ticket belongs to its customer: it is keyed (customer_id, id) and every write finds the
//! customer first and locks the ticket's row by both (one shard on Citus).

pub mod compensations;
pub mod flow;
pub mod sla;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::calendar::BusinessCalendar;
use crate::db::{query, Query, Tx};
use crate::events::{self, Event, EventFilter};
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::service::policies::{customer_tier, policy_in};
use crate::users::{Actor, Role};
use crate::{audit, settings, Result, Store, StoreError};

pub use compensations::{Compensation, CompensationKind, NewCompensation};
pub use flow::{NewComment, TicketChange, Transition};

/// Ticket kinds.
pub const KINDS: [&str; 4] = ["complaint", "inquiry", "suggestion", "praise"];
/// Intake channels.
pub const CHANNELS: [&str; 7] = ["phone", "store", "wechat", "email", "web", "survey", "api"];
/// Ticket states.
pub const STATUSES: [&str; 7] = ["new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "confirmed", "reopened"];

/// Where a ticket's SLA clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// Not due yet (or standing while waiting on the customer).
    Pending,
    /// Done in time.
    Met,
    /// Late.
    Breached,
}

/// Both clocks of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Sla {
    /// First response (an acknowledgement or a public reply).
    pub first_response: SlaState,
    /// Resolution.
    pub resolution: SlaState,
}

/// A breach of one of the clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Breach {
    /// `first_response` or `resolution`.
    pub kind: String,
    /// When the due time passed.
    pub at: DateTime<Utc>,
}

/// A ticket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ticket {
    /// Id.
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The customer's name.
    pub customer_name: String,
    /// `complaint`, `inquiry`, `suggestion` or `praise`.
    pub kind: String,
    /// Where it came in: `phone`, `store`, `wechat`, `email`, `web`, `survey`, `api`.
    pub channel: String,
    /// Subject.
    pub subject: String,
    /// What the customer said.
    pub body: String,
    /// Category at intake.
    pub category: Option<String>,
    /// Root cause, given when resolved.
    pub root_cause: Option<String>,
    /// `new`, `acknowledged`, `in_progress`, `waiting_on_customer`, `resolved`, `confirmed`, `reopened`.
    pub status: String,
    /// Store concerned.
    pub store: Option<String>,
    /// Assigned user.
    pub assignee_id: Option<i64>,
    /// Department handling it.
    pub department: Option<String>,
    /// The customer's value tier when it opened (its policy set the clocks).
    pub tier: String,
    /// Whether the clocks count working time.
    pub business_hours: bool,
    /// The policy's minutes to the first response.
    pub first_response_minutes: i64,
    /// The policy's minutes to resolution.
    pub resolution_minutes: i64,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// First response due.
    pub first_response_due_at: DateTime<Utc>,
    /// First responded.
    pub first_responded_at: Option<DateTime<Utc>>,
    /// Resolution due (moves on by the time spent waiting on the customer).
    pub resolution_due_at: DateTime<Utc>,
    /// Since when the resolution clock stands (waiting on the customer).
    pub paused_at: Option<DateTime<Utc>>,
    /// Resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// `customer`, `timeout` or `staff`.
    pub confirmed_by: Option<String>,
    /// How often the customer reopened it.
    pub reopened_count: i64,
    /// Where the clocks stand now.
    pub sla: Sla,
    /// Breaches recorded.
    pub breaches: Vec<Breach>,
    /// Who opened it (`user:<id>`, `token:<id>`, `survey`, `import:<id>`).
    pub created_by: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The order it is about (one of the customer's), when named.
    pub order_id: Option<i64>,
}

/// A ticket with its comments, compensations and event history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketDetail {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Comments and replies, oldest first.
    pub comments: Vec<Comment>,
    /// Compensations, oldest first.
    pub compensations: Vec<Compensation>,
    /// Its events, oldest first.
    pub history: Vec<Event>,
}

/// A comment (internal) or reply (public) on a ticket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    /// Id.
    pub id: i64,
    /// `user:<id>`, `token:<id>` or `customer`.
    pub author: String,
    /// Seen by the customer.
    pub public: bool,
    /// Text.
    pub body: String,
    /// Attachments' metadata.
    pub attachments: Vec<Attachment>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An attachment's metadata (the file itself lives where the link points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// Size in bytes.
    #[schema(minimum = 0)]
    pub size_bytes: Option<i64>,
    /// Where the file is.
    pub url: Option<String>,
}

/// A new ticket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// The customer.
    pub customer_id: i64,
    /// `complaint`, `inquiry`, `suggestion` or `praise`.
    pub kind: String,
    /// `phone`, `store`, `wechat`, `email`, `web`, `survey` or `api`.
    pub channel: String,
    /// Subject (1–200 characters).
    pub subject: String,
    /// What the customer said (up to 20,000 characters).
    #[serde(default)]
    pub body: String,
    /// Category at intake.
    pub category: Option<String>,
    /// Assigned user.
    pub assignee_id: Option<i64>,
    /// Department.
    pub department: Option<String>,
    /// Store concerned (default: the store of the customer's latest order).
    pub store: Option<String>,
    /// When it was opened, for history from another helpdesk (managers and admins; not in the
    /// future). Due times count from it.
    pub opened_at: Option<DateTime<Utc>>,
    /// The order it is about: one of the customer's orders (issue 19 §5).
    #[serde(default)]
    pub order_id: Option<i64>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct TicketRow {
    pub id: i64,
    pub customer_id: i64,
    pub customer_name: String,
    pub kind: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub category: Option<String>,
    pub root_cause: Option<String>,
    pub status: String,
    pub store: Option<String>,
    pub assignee_id: Option<i64>,
    pub department: Option<String>,
    pub tier: String,
    pub business_hours: bool,
    pub first_response_minutes: i64,
    pub resolution_minutes: i64,
    pub opened_at: DateTime<Utc>,
    pub first_response_due_at: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub resolution_due_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub reopened_count: i64,
    pub first_response_breached_at: Option<DateTime<Utc>>,
    pub resolution_breached_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub order_id: Option<i64>,
}

/// The columns of [`TicketRow`], on `tickets t` (the customer's name from `customers c`, joined
/// on the distribution column).
pub(crate) const TICKET_COLUMNS: &str = "t.id, t.customer_id, c.name AS customer_name, t.kind, t.channel, t.subject, t.body, \
     t.category, t.root_cause, t.status, t.store, t.assignee_id, t.department, t.tier, t.business_hours, t.first_response_minutes, \
     t.resolution_minutes, t.opened_at, t.first_response_due_at, t.first_responded_at, t.resolution_due_at, t.paused_at, \
     t.resolved_at, t.confirmed_at, t.confirmed_by, t.reopened_count, t.first_response_breached_at, t.resolution_breached_at, t.created_by, t.updated_at, t.order_id";

pub(crate) const TICKET_FROM: &str = "FROM tickets t JOIN customers c ON c.id = t.customer_id";

impl TicketRow {
    /// The ticket as the API shows it, its clocks read at `now`.
    pub(crate) fn into_ticket(self, now: DateTime<Utc>) -> Ticket {
        let first_response = match (self.first_responded_at, self.first_response_breached_at) {
            (Some(at), _) if at <= self.first_response_due_at => SlaState::Met,
            (Some(_), _) | (None, Some(_)) => SlaState::Breached,
            (None, None) if now > self.first_response_due_at => SlaState::Breached,
            (None, None) => SlaState::Pending,
        };
        let resolution = if self.resolution_breached_at.is_some() {
            SlaState::Breached
        } else if let Some(at) = self.resolved_at {
            if at <= self.resolution_due_at {
                SlaState::Met
            } else {
                SlaState::Breached
            }
        } else if self.status == "confirmed" {
            SlaState::Met
        } else if self.paused_at.is_none() && now > self.resolution_due_at {
            SlaState::Breached
        } else {
            SlaState::Pending
        };
        let mut breaches = Vec::new();
        if let Some(at) = self.first_response_breached_at {
            breaches.push(Breach { kind: "first_response".into(), at });
        }
        if let Some(at) = self.resolution_breached_at {
            breaches.push(Breach { kind: "resolution".into(), at });
        }
        Ticket {
            order_id: self.order_id,
            id: self.id,
            customer_id: self.customer_id,
            customer_name: self.customer_name,
            kind: self.kind,
            channel: self.channel,
            subject: self.subject,
            body: self.body,
            category: self.category,
            root_cause: self.root_cause,
            status: self.status,
            store: self.store,
            assignee_id: self.assignee_id,
            department: self.department,
            tier: self.tier,
            business_hours: self.business_hours,
            first_response_minutes: self.first_response_minutes,
            resolution_minutes: self.resolution_minutes,
            opened_at: self.opened_at,
            first_response_due_at: self.first_response_due_at,
            first_responded_at: self.first_responded_at,
            resolution_due_at: self.resolution_due_at,
            paused_at: self.paused_at,
            resolved_at: self.resolved_at,
            confirmed_at: self.confirmed_at,
            confirmed_by: self.confirmed_by,
            reopened_count: self.reopened_count,
            sla: Sla { first_response, resolution },
            breaches,
            created_by: self.created_by,
            updated_at: self.updated_at,
        }
    }
}

/// The customer a ticket belongs to (tickets are found by id alone from the API; every other
/// statement then names the customer too).
pub(crate) async fn ticket_customer(tx: &mut Tx, id: i64) -> Result<i64> {
    let row: Option<(i64,)> = tx.fetch_optional(query("SELECT customer_id FROM tickets WHERE id = $1").bind(id)).await?;
    Ok(row.ok_or(StoreError::NotFound("ticket"))?.0)
}

/// A ticket's row, locked for the rest of `tx` (SQLite: the transaction holds the write lock).
pub(crate) async fn locked_ticket(tx: &mut Tx, id: i64) -> Result<TicketRow> {
    let customer_id = ticket_customer(tx, id).await?;
    let lock = tx.engine().row_lock();
    // The row is locked alone (a lock over a join would take the customer's row too).
    tx.fetch_optional::<(i64,)>(
        query(format!("SELECT id FROM tickets WHERE customer_id = $1 AND id = $2{lock}")).bind(customer_id).bind(id),
    )
    .await?
    .ok_or(StoreError::NotFound("ticket"))?;
    tx.fetch_one(query(format!("SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.customer_id = $1 AND t.id = $2")).bind(customer_id).bind(id))
        .await
}

/// The calendar and time zone the clocks count in.
pub(crate) async fn clocks(tx: &mut Tx) -> Result<BusinessCalendar> {
    settings::get_in(tx, settings::CALENDAR).await
}

/// Text cleaned of surrounding space; empty is none.
pub(crate) fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Checks a free-text value's length in characters.
pub(crate) fn check_len(field: &str, v: &str, max: usize) -> Result<()> {
    if v.chars().count() > max {
        return Err(StoreError::invalid(field, format!("at most {max} characters")));
    }
    if v.contains('\0') {
        return Err(StoreError::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

pub(crate) fn one_of(field: &str, v: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(StoreError::invalid(field, format!("{field} must be one of {}", allowed.join(", "))))
    }
}

/// Checks that a user exists and is active (an assignee).
pub(crate) async fn check_user(tx: &mut Tx, field: &str, id: i64) -> Result<()> {
    let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL").bind(id)).await?;
    found.map(|_| ()).ok_or_else(|| StoreError::invalid(field, format!("no active user with id {id}")))
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// A state, or `open` (not resolved or confirmed).
    pub status: Option<String>,
    /// A kind.
    pub kind: Option<String>,
    /// Assigned to this user.
    pub assignee_id: Option<i64>,
    /// One customer's.
    pub customer_id: Option<i64>,
    /// With (true) or without (false) a breach recorded.
    pub breached: Option<bool>,
    /// Open with a due time (first response if not yet met, else resolution) before this.
    pub due_before: Option<DateTime<Utc>>,
    /// Assigned to this user or to the users who report to them (a manager's team).
    pub team_of: Option<i64>,
}

/// How to order a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketSort {
    /// Newest first.
    #[default]
    Newest,
    /// Soonest resolution due time first (the inbox).
    Due,
}

/// The due time that matters now: the first response until it is met, then the resolution.
const NEXT_DUE: &str = "CASE WHEN t.first_responded_at IS NULL THEN t.first_response_due_at ELSE t.resolution_due_at END";

impl Store {
    /// Opens a ticket with the clocks of the customer's tier policy; `ticket.opened` is recorded
    /// with it.
    pub async fn create_ticket(&self, actor: &Actor, t: NewTicket) -> Result<Ticket> {
        one_of("kind", &t.kind, &KINDS)?;
        one_of("channel", &t.channel, &CHANNELS)?;
        let subject = t.subject.trim().to_owned();
        if subject.is_empty() {
            return Err(StoreError::invalid("subject", "a ticket needs a subject"));
        }
        check_len("subject", &subject, 200)?;
        check_len("body", &t.body, 20_000)?;
        let category = clean(t.category);
        let department = clean(t.department);
        let store = clean(t.store);
        for (field, v) in [("category", &category), ("department", &department), ("store", &store)] {
            if let Some(v) = v {
                check_len(field, v, 100)?;
            }
        }
        let now = self.now();
        let opened_at = match t.opened_at {
            Some(at) if actor.role < Role::Manager => {
                return Err(StoreError::invalid("opened_at", format!("only managers and admins may backdate a ticket (to {at})")));
            }
            Some(at) if at > now + Duration::minutes(5) => return Err(StoreError::invalid("opened_at", "must not be in the future")),
            Some(at) => crate::clock::truncate_micros(at),
            None => now,
        };
        let mut tx = self.db.begin().await?;
        if crate::customers::lock_customers(&mut tx, &[t.customer_id]).await?.is_some() {
            return Err(StoreError::invalid("customer_id", format!("no customer with id {}", t.customer_id)));
        }
        if let Some(a) = t.assignee_id {
            check_user(&mut tx, "assignee_id", a).await?;
        }
        if let Some(o) = t.order_id {
            let found: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM orders WHERE customer_id = $1 AND id = $2").bind(t.customer_id).bind(o)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("order_id", format!("no order {o} of this customer")));
            }
        }
        let id = open_in(
            &mut tx,
            self,
            Opening {
                customer_id: t.customer_id,
                kind: &t.kind,
                channel: &t.channel,
                subject: &subject,
                body: &t.body,
                category: category.as_deref(),
                store: store.as_deref(),
                assignee_id: t.assignee_id,
                department: department.as_deref(),
                opened_at,
                by: &actor.key,
            },
            now,
        )
        .await?;
        if let Some(o) = t.order_id {
            tx.execute(query("UPDATE tickets SET order_id = $1 WHERE customer_id = $2 AND id = $3").bind(o).bind(t.customer_id).bind(id))
                .await?;
        }
        let row = ticket_row(&mut tx, t.customer_id, id).await?;
        tx.commit().await?;
        Ok(row.into_ticket(now))
    }

    /// One ticket with its comments, compensations and history.
    pub async fn ticket(&self, id: i64) -> Result<TicketDetail> {
        let mut r = self.db.reader();
        let row: TicketRow = r
            .fetch_optional(query(format!("SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.id = $1")).bind(id))
            .await?
            .ok_or(StoreError::NotFound("ticket"))?;
        let customer_id = row.customer_id;
        let comments: Vec<CommentRow> = r
            .fetch_all(
                query(
                    "SELECT id, author, public, body, attachments, created_at FROM ticket_comments \
                     WHERE customer_id = $1 AND ticket_id = $2 ORDER BY id",
                )
                .bind(customer_id)
                .bind(id),
            )
            .await?;
        let compensations = compensations::of_ticket(&mut r, customer_id, id).await?;
        let history = self.ticket_history(customer_id, id).await?;
        Ok(TicketDetail {
            ticket: row.into_ticket(self.now()),
            comments: comments.into_iter().map(Comment::from).collect(),
            compensations,
            history,
        })
    }

    /// The events of one ticket (and of its compensations), oldest first.
    async fn ticket_history(&self, customer_id: i64, id: i64) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.events(&EventFilter { kind: None, customer_id: Some(customer_id), subject_id: Some(id), after }, 1000).await?;
            let last = page.last().map(|e| e.id);
            let full = page.len() == 1000;
            out.extend(page.into_iter().filter(|e| e.kind.starts_with("ticket.") || e.kind.starts_with("compensation.")));
            match (full, last) {
                (true, Some(l)) => after = Some(l),
                _ => return Ok(out),
            }
        }
    }

    /// A page of tickets. Agents see the tickets assigned to them and those of their customers.
    pub async fn tickets(
        &self,
        actor: &Actor,
        filter: &TicketFilter,
        sort: TicketSort,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<Ticket>> {
        let limit = limit.clamp(1, 500);
        let mut sql = format!("SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE true");
        let mut q = query(String::new());
        let bind = |q: &mut Query, v: crate::db::Arg| {
            q.push(v);
            format!("${}", q.arg_count())
        };
        if let Some(s) = &filter.status {
            if s == "open" {
                sql.push_str(" AND t.status NOT IN ('resolved', 'confirmed')");
            } else {
                one_of("status", s, &STATUSES)?;
                let p = bind(&mut q, s.clone().into());
                sql.push_str(&format!(" AND t.status = {p}"));
            }
        }
        if let Some(k) = &filter.kind {
            one_of("kind", k, &KINDS)?;
            let p = bind(&mut q, k.clone().into());
            sql.push_str(&format!(" AND t.kind = {p}"));
        }
        if let Some(a) = filter.assignee_id {
            let p = bind(&mut q, a.into());
            sql.push_str(&format!(" AND t.assignee_id = {p}"));
        }
        if let Some(c) = filter.customer_id {
            let p = bind(&mut q, c.into());
            sql.push_str(&format!(" AND t.customer_id = {p}"));
        }
        if let Some(m) = filter.team_of {
            let p = bind(&mut q, m.into());
            sql.push_str(&format!(" AND t.assignee_id IN (SELECT id FROM users WHERE id = {p} OR manager_id = {p})"));
        }
        match filter.breached {
            Some(true) => sql.push_str(" AND (t.first_response_breached_at IS NOT NULL OR t.resolution_breached_at IS NOT NULL)"),
            Some(false) => sql.push_str(" AND t.first_response_breached_at IS NULL AND t.resolution_breached_at IS NULL"),
            None => {}
        }
        if let Some(before) = filter.due_before {
            let p = bind(&mut q, before.into());
            sql.push_str(&format!(" AND t.status NOT IN ('resolved', 'confirmed') AND {NEXT_DUE} < {p}"));
        }
        // The caller's scope (crate::access), plus the tickets assigned to the caller.
        let scope = crate::access::CustomerScope::of(actor);
        if !scope.is_all() {
            let u = bind(&mut q, actor.user_id.unwrap_or(-1).into());
            sql.push_str(&format!(" AND (t.assignee_id = {u} OR {})", scope.sql("c")));
        }
        match (sort, cursor) {
            (TicketSort::Newest, Some(c)) => {
                let (id,): (i64,) = decode_cursor(c)?;
                let p = bind(&mut q, id.into());
                sql.push_str(&format!(" AND t.id < {p}"));
            }
            (TicketSort::Due, Some(c)) => {
                let (due, id): (DateTime<Utc>, i64) = decode_cursor(c)?;
                let (pd, pi) = (bind(&mut q, due.into()), bind(&mut q, id.into()));
                sql.push_str(&format!(" AND ({NEXT_DUE} > {pd} OR ({NEXT_DUE} = {pd} AND t.id > {pi}))"));
            }
            _ => {}
        }
        let p = bind(&mut q, (limit + 1).into());
        match sort {
            TicketSort::Newest => sql.push_str(&format!(" ORDER BY t.id DESC LIMIT {p}")),
            TicketSort::Due => sql.push_str(&format!(" ORDER BY {NEXT_DUE}, t.id LIMIT {p}")),
        }
        let mut full = query(sql);
        for a in q.into_args() {
            full.push(a);
        }
        let mut rows: Vec<TicketRow> = self.db.reader().fetch_all(full).await?;
        let now = self.now();
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| match sort {
                TicketSort::Newest => encode_cursor(&(r.id,)),
                TicketSort::Due => {
                    encode_cursor(&(if r.first_responded_at.is_none() { r.first_response_due_at } else { r.resolution_due_at }, r.id))
                }
            })
        } else {
            None
        };
        Ok(Page { items: rows.into_iter().map(|r| r.into_ticket(now)).collect(), next_cursor })
    }

    /// Whether `actor` may see and work `ticket`: when it is assigned to them or its customer is
    /// in their scope (crate::access).
    pub async fn may_work_ticket(&self, actor: &Actor, ticket: &Ticket) -> Result<bool> {
        if actor.user_id.is_some() && ticket.assignee_id == actor.user_id {
            return Ok(true);
        }
        self.customer_in_scope(actor, ticket.customer_id).await
    }
}

/// A ticket to open, checked by the caller.
pub(crate) struct Opening<'a> {
    pub customer_id: i64,
    pub kind: &'a str,
    pub channel: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub category: Option<&'a str>,
    pub store: Option<&'a str>,
    pub assignee_id: Option<i64>,
    pub department: Option<&'a str>,
    pub opened_at: DateTime<Utc>,
    /// An actor key, or `survey`.
    pub by: &'a str,
}

/// Opens a ticket in `tx` (the customer's row locked by the caller) with the clocks of the
/// customer's tier policy, its `ticket.opened` event and audit entry; returns its id.
pub(crate) async fn open_in(tx: &mut Tx, st: &Store, o: Opening<'_>, now: DateTime<Utc>) -> Result<i64> {
    let store = match o.store {
        Some(s) => Some(s.to_owned()),
        None => tx
            .fetch_optional::<(Option<String>,)>(
                query("SELECT store FROM orders WHERE customer_id = $1 AND store IS NOT NULL ORDER BY ordered_at DESC LIMIT 1")
                    .bind(o.customer_id),
            )
            .await?
            .and_then(|r| r.0),
    };
    let tier = customer_tier(tx, o.customer_id).await?;
    let policy = policy_in(tx, &tier).await?;
    let cal = clocks(tx).await?;
    let tz = st.config.business_tz;
    let first_due = cal.add(&tz, o.opened_at, policy.first_response_minutes, policy.business_hours);
    let resolution_due = cal.add(&tz, o.opened_at, policy.resolution_minutes, policy.business_hours);
    let (id,): (i64,) = tx
        .fetch_one(
            query(
                "INSERT INTO tickets (customer_id, kind, channel, subject, body, category, status, store, assignee_id, department, \
                 tier, business_hours, first_response_minutes, resolution_minutes, opened_at, first_response_due_at, \
                 resolution_due_at, created_by, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
            )
            .bind(o.customer_id)
            .bind(o.kind)
            .bind(o.channel)
            .bind(o.subject)
            .bind(o.body)
            .bind(o.category)
            .bind(store)
            .bind(o.assignee_id)
            .bind(o.department)
            .bind(tier.clone())
            .bind(policy.business_hours)
            .bind(policy.first_response_minutes)
            .bind(policy.resolution_minutes)
            .bind(o.opened_at)
            .bind(first_due)
            .bind(resolution_due)
            .bind(o.by)
            .bind(now),
        )
        .await?;
    let payload = serde_json::json!({"kind": o.kind, "channel": o.channel, "tier": tier, "category": o.category,
        "assignee_id": o.assignee_id, "first_response_due_at": first_due, "resolution_due_at": resolution_due, "by": o.by});
    events::append(tx, o.customer_id, "ticket.opened", Some(id), payload, o.opened_at).await?;
    audit::record(tx, now, o.by, "create", "ticket", Some(id.to_string()), Some(format!("customer={}", o.customer_id))).await?;
    Ok(id)
}

/// A ticket's row read in `tx` by its customer and id.
pub(crate) async fn ticket_row(tx: &mut Tx, customer_id: i64, id: i64) -> Result<TicketRow> {
    tx.fetch_one(query(format!("SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.customer_id = $1 AND t.id = $2")).bind(customer_id).bind(id))
        .await
}

#[derive(sqlx::FromRow)]
struct CommentRow {
    id: i64,
    author: String,
    public: bool,
    body: String,
    attachments: Json<Vec<Attachment>>,
    created_at: DateTime<Utc>,
}

impl From<CommentRow> for Comment {
    fn from(r: CommentRow) -> Self {
        Comment { id: r.id, author: r.author, public: r.public, body: r.body, attachments: r.attachments.0, created_at: r.created_at }
    }
}
