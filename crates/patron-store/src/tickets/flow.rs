//! The closed loop: `new → acknowledged → in_progress ⇄ waiting_on_customer → resolved →
//! confirmed`, and `resolved → reopened → in_progress`. The first acknowledgement or public
//! reply meets the first response; the resolution clock stands while the ticket waits on the
//! customer; a complaint is resolved only with a root cause from the settings' list; a resolution
//! sends the customer a single-use confirmation link, and their answer confirms or reopens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_len, clean, clocks, locked_ticket, ticket_row, Attachment, Ticket, TicketRow};
use crate::db::{query, Tx};
use crate::events;
use crate::links::{self, LinkKind};
use crate::users::Actor;
use crate::{audit, settings, Result, Store, StoreError};

/// A move of a ticket to another state.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The state to move to.
    pub to: String,
    /// Root cause (required to resolve a complaint; one of the settings' `root_causes`).
    pub root_cause: Option<String>,
    /// A note kept as an internal comment (required to confirm on the customer's behalf).
    pub note: Option<String>,
}

/// A comment or reply.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// Text (1–20,000 characters).
    pub body: String,
    /// A reply the customer sees (true) or an internal note (false, the default).
    #[serde(default)]
    pub public: bool,
    /// Attachments' metadata (at most 20).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A ticket after a change, and the confirmation link's token when the change resolved it
/// (shown once: only its digest is stored).
#[derive(Debug, Clone)]
pub struct TicketChange {
    /// The ticket as it is now.
    pub ticket: Ticket,
    /// The token of the customer's confirmation link, when just resolved.
    pub confirmation_token: Option<String>,
}

/// The customer's answer on the confirmation page.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationAnswer {
    /// Solved (true: confirm) or not (false: reopen).
    pub confirmed: bool,
    /// What the customer adds (up to 2,000 characters).
    pub comment: Option<String>,
}

/// What the confirmation page shows: nothing about the customer beyond the ticket's subject.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfirmationView {
    /// The ticket's subject.
    pub subject: String,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The link works until then.
    pub expires_at: DateTime<Utc>,
}

/// The moves allowed from a state.
pub fn allowed_moves(from: &str) -> &'static [&'static str] {
    match from {
        "new" => &["acknowledged"],
        "acknowledged" => &["in_progress"],
        "in_progress" => &["waiting_on_customer", "resolved"],
        "waiting_on_customer" => &["in_progress"],
        "resolved" => &["confirmed", "reopened"],
        "reopened" => &["in_progress"],
        _ => &[],
    }
}

/// Sets the first response if not yet met (an acknowledgement or the first public reply).
async fn meet_first_response(tx: &mut Tx, t: &TicketRow, now: DateTime<Utc>) -> Result<()> {
    if t.first_responded_at.is_none() {
        tx.execute(
            query("UPDATE tickets SET first_responded_at = $1 WHERE customer_id = $2 AND id = $3").bind(now).bind(t.customer_id).bind(t.id),
        )
        .await?;
    }
    Ok(())
}

/// Adds a comment in `tx`.
pub(crate) async fn add_comment(
    tx: &mut Tx,
    t: &TicketRow,
    author: &str,
    public: bool,
    body: &str,
    attachments: &[Attachment],
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO ticket_comments (customer_id, ticket_id, author, public, body, attachments, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.customer_id)
        .bind(t.id)
        .bind(author)
        .bind(public)
        .bind(body)
        .bind(serde_json::json!(attachments))
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Moves `t` to `to` in `tx`, with the clocks, the event and (on resolve) the confirmation link;
/// the caller has checked the move is allowed. `by` is who moved it (an actor key, `customer`,
/// `timeout`).
pub(crate) async fn apply(
    tx: &mut Tx,
    store: &Store,
    t: &TicketRow,
    to: &str,
    root_cause: Option<&str>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let key = (t.customer_id, t.id);
    let set = |sql: &str| query(format!("UPDATE tickets SET {sql}, status = $1, updated_at = $2 WHERE customer_id = $3 AND id = $4"));
    let bind = |q: crate::db::Query| q.bind(to).bind(now).bind(key.0).bind(key.1);
    let mut token = None;
    let mut payload = serde_json::json!({"from": t.status, "to": to, "by": by, "kind": t.kind});
    match to {
        "acknowledged" => {
            tx.execute(bind(set("first_responded_at = COALESCE(first_responded_at, $5)")).bind(now)).await?;
        }
        "waiting_on_customer" => {
            tx.execute(bind(set("paused_at = $5")).bind(now)).await?;
        }
        "in_progress" if t.paused_at.is_some() => {
            // The clock stood while waiting: the working time that was left then is left now.
            let cal = clocks(tx).await?;
            let tz = store.config.business_tz;
            let paused_at = t.paused_at.unwrap_or(now);
            let left = cal.minutes_between(&tz, paused_at, t.resolution_due_at, t.business_hours);
            let due = if t.resolution_due_at <= paused_at { t.resolution_due_at } else { cal.add(&tz, now, left, t.business_hours) };
            tx.execute(bind(set("paused_at = NULL, resolution_due_at = $5")).bind(due)).await?;
            payload["resolution_due_at"] = serde_json::json!(due);
        }
        "in_progress" => {
            tx.execute(bind(set("paused_at = NULL"))).await?;
        }
        "resolved" => {
            tx.execute(bind(set("resolved_at = $5, root_cause = COALESCE($6, root_cause), paused_at = NULL")).bind(now).bind(root_cause))
                .await?;
            let days = settings::get_in::<settings::ServiceSettings>(tx, settings::SERVICE).await?.confirmation_days;
            token = Some(links::create(tx, LinkKind::Confirmation, t.customer_id, t.id, now, days).await?);
            payload["root_cause"] = serde_json::json!(root_cause.or(t.root_cause.as_deref()));
        }
        "confirmed" => {
            tx.execute(bind(set("confirmed_at = $5, confirmed_by = $6")).bind(now).bind(confirmed_by(by))).await?;
            expire_links(tx, t, now).await?;
        }
        "reopened" => {
            // A new resolution clock from now, on the policy the ticket opened under; a breach of
            // the first one stays recorded.
            let cal = clocks(tx).await?;
            let due = cal.add(&store.config.business_tz, now, t.resolution_minutes, t.business_hours);
            tx.execute(
                bind(set("resolved_at = NULL, reopened_count = reopened_count + 1, resolution_due_at = $5, resolution_warned_at = NULL"))
                    .bind(due),
            )
            .await?;
            expire_links(tx, t, now).await?;
            payload["resolution_due_at"] = serde_json::json!(due);
        }
        other => return Err(StoreError::Internal(format!("no transition to {other}"))),
    }
    events::append(tx, t.customer_id, &format!("ticket.{to}"), Some(t.id), payload, now).await?;
    Ok(token)
}

fn confirmed_by(by: &str) -> &str {
    match by {
        "customer" | "timeout" => by,
        _ => "staff",
    }
}

/// Makes the ticket's outstanding confirmation links unusable (answered or superseded).
async fn expire_links(tx: &mut Tx, t: &TicketRow, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        query(
            "UPDATE public_links SET used_at = $1 WHERE kind = 'confirmation' AND customer_id = $2 AND subject_id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(t.customer_id)
        .bind(t.id),
    )
    .await?;
    Ok(())
}

impl Store {
    /// Moves a ticket to another state. A move not allowed from where the ticket is answers
    /// [`StoreError::State`] naming the allowed ones.
    pub async fn transition_ticket(&self, actor: &Actor, id: i64, tr: Transition) -> Result<TicketChange> {
        let to = tr.to.trim().to_owned();
        super::one_of("to", &to, &super::STATUSES)?;
        let note = clean(tr.note);
        if let Some(n) = &note {
            check_len("note", n, 20_000)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let t = locked_ticket(&mut tx, id).await?;
        let allowed = allowed_moves(&t.status);
        if !allowed.contains(&to.as_str()) {
            let list = if allowed.is_empty() { "none: it is closed".to_owned() } else { allowed.join(", ") };
            return Err(StoreError::State(format!("ticket #{id} is {}; it cannot move to {to}; allowed: {list}", t.status)));
        }
        let root_cause = clean(tr.root_cause);
        if to == "resolved" {
            let causes = settings::get_in::<settings::ServiceSettings>(&mut tx, settings::SERVICE).await?.root_causes;
            match &root_cause {
                Some(c) if !causes.contains(c) => {
                    return Err(StoreError::invalid("root_cause", format!("root_cause must be one of {}", causes.join(", "))));
                }
                None if t.kind == "complaint" && t.root_cause.is_none() => {
                    return Err(StoreError::invalid("root_cause", "a complaint is resolved with its root cause"));
                }
                _ => {}
            }
        } else if root_cause.is_some() {
            return Err(StoreError::invalid("root_cause", "a root cause is given when resolving"));
        }
        if to == "confirmed" && note.is_none() {
            return Err(StoreError::invalid("note", "say how the customer confirmed (the customer confirms through their link otherwise)"));
        }
        if let Some(n) = &note {
            add_comment(&mut tx, &t, &actor.key, false, n, &[], now).await?;
        }
        let token = apply(&mut tx, self, &t, &to, root_cause.as_deref(), &actor.key, now).await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "transition",
            "ticket",
            Some(id.to_string()),
            Some(format!("customer={} {} → {to}", t.customer_id, t.status)),
        )
        .await?;
        let row = ticket_row(&mut tx, t.customer_id, id).await?;
        tx.commit().await?;
        Ok(TicketChange { ticket: row.into_ticket(now), confirmation_token: token })
    }

    /// Adds an internal comment or a public reply; the first public reply meets the first response
    /// (and acknowledges a new ticket).
    pub async fn comment_ticket(&self, actor: &Actor, id: i64, c: NewComment) -> Result<Ticket> {
        let body = c.body.trim().to_owned();
        if body.is_empty() {
            return Err(StoreError::invalid("body", "a comment needs text"));
        }
        check_len("body", &body, 20_000)?;
        if c.attachments.len() > 20 {
            return Err(StoreError::invalid("attachments", "at most 20 attachments"));
        }
        for (i, a) in c.attachments.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(StoreError::invalid(format!("attachments[{i}].name"), "an attachment needs a name"));
            }
            check_len(&format!("attachments[{i}].name"), &a.name, 255)?;
            if a.size_bytes.is_some_and(|s| s < 0) {
                return Err(StoreError::invalid(format!("attachments[{i}].size_bytes"), "must not be negative"));
            }
            for (field, v) in [("content_type", &a.content_type), ("url", &a.url)] {
                if let Some(v) = v {
                    check_len(&format!("attachments[{i}].{field}"), v, 2000)?;
                }
            }
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let t = locked_ticket(&mut tx, id).await?;
        if t.status == "confirmed" {
            return Err(StoreError::State(format!("ticket #{id} is confirmed and closed; open a new ticket")));
        }
        add_comment(&mut tx, &t, &actor.key, c.public, &body, &c.attachments, now).await?;
        if c.public {
            if t.status == "new" {
                apply(&mut tx, self, &t, "acknowledged", None, &actor.key, now).await?;
            } else {
                meet_first_response(&mut tx, &t, now).await?;
            }
            events::append(&mut tx, t.customer_id, "ticket.replied", Some(id), serde_json::json!({"by": actor.key}), now).await?;
        }
        let row = ticket_row(&mut tx, t.customer_id, id).await?;
        tx.commit().await?;
        Ok(row.into_ticket(now))
    }

    /// Assigns a ticket (to nobody with `None`).
    pub async fn assign_ticket(&self, actor: &Actor, id: i64, assignee_id: Option<i64>, department: Option<String>) -> Result<Ticket> {
        let department = clean(department);
        if let Some(d) = &department {
            check_len("department", d, 100)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let t = locked_ticket(&mut tx, id).await?;
        if let Some(a) = assignee_id {
            super::check_user(&mut tx, "assignee_id", a).await?;
        }
        tx.execute(
            query("UPDATE tickets SET assignee_id = $1, department = COALESCE($2, department), updated_at = $3 WHERE customer_id = $4 AND id = $5")
                .bind(assignee_id)
                .bind(department.clone())
                .bind(now)
                .bind(t.customer_id)
                .bind(id),
        )
        .await?;
        let payload = serde_json::json!({"from": t.assignee_id, "to": assignee_id, "department": department, "by": actor.key});
        events::append(&mut tx, t.customer_id, "ticket.assigned", Some(id), payload, now).await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "assign",
            "ticket",
            Some(id.to_string()),
            Some(format!("customer={} assignee={assignee_id:?}", t.customer_id)),
        )
        .await?;
        let row = ticket_row(&mut tx, t.customer_id, id).await?;
        tx.commit().await?;
        Ok(row.into_ticket(now))
    }

    /// What the customer's confirmation page shows for a token.
    pub async fn confirmation_view(&self, token: &str) -> Result<ConfirmationView> {
        let link = self.public_link(LinkKind::Confirmation, token).await?;
        let row: Option<(String, Option<DateTime<Utc>>)> = self
            .db
            .reader()
            .fetch_optional(
                query("SELECT subject, resolved_at FROM tickets WHERE customer_id = $1 AND id = $2")
                    .bind(link.customer_id)
                    .bind(link.subject_id),
            )
            .await?;
        let (subject, resolved_at) = row.ok_or(StoreError::NotFound("link"))?;
        Ok(ConfirmationView { subject, resolved_at, expires_at: link.expires_at })
    }

    /// The customer's answer through their confirmation link: confirm, or reopen with their
    /// comment kept. The link is used once.
    pub async fn answer_confirmation(&self, token: &str, answer: ConfirmationAnswer) -> Result<Ticket> {
        let comment = clean(answer.comment);
        if let Some(c) = &comment {
            check_len("comment", c, 2000)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let link = links::usable(&mut tx, LinkKind::Confirmation, token, now).await?;
        let t = locked_ticket(&mut tx, link.subject_id).await?;
        if t.customer_id != link.customer_id || t.status != "resolved" {
            return Err(StoreError::State("this ticket is no longer waiting for your confirmation".into()));
        }
        if let Some(c) = &comment {
            add_comment(&mut tx, &t, "customer", true, c, &[], now).await?;
        }
        let to = if answer.confirmed { "confirmed" } else { "reopened" };
        apply(&mut tx, self, &t, to, None, "customer", now).await?;
        links::mark_used(&mut tx, &link, token, now).await?;
        let row = ticket_row(&mut tx, t.customer_id, t.id).await?;
        tx.commit().await?;
        Ok(row.into_ticket(now))
    }
}
