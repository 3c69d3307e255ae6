//! Customer events (issue 19 §6): seminars, forums and club activities with a date, a place or a
//! link and a capacity; invitations to a segment through the outbox (consent, the global control
//! group and the frequency caps apply; once per customer and event, whatever reruns);
//! registration on a public page (`/p/e/{token}`) and by staff, refused over capacity; check-in
//! of attendance; a post-event survey sent to the attendees through the outbox; registrations
//! and attendance on the customer's timeline (kind `event`); and a report of invited,
//! registered and attended with the attendees' spend and retention over the next 90 days against
//! comparable invitees who did not attend ([`report`]).
//!
//! The word `events` is the domain-event log's (`crate::events`): these are `customer_events`.
//! Definitions are a small table of their own (a reference table on Citus); invitations and
//! registrations are the customer's data (keyed by customer, one shard on Citus); the links'
//! token digests are found by the digest alone (distributed by it, like the plans' scorecard
//! links).
//!
//! Seats: `customer_events.seats_taken` counts the registrations holding a seat. A registration
//! takes one by a conditional UPDATE (`seats_taken < capacity`) after its customer's row lock, so
//! two registrations for the last seat pass one after the other and the second is refused (409).
//! Lock order everywhere: the customer's row, then the event's.

pub mod invitations;
pub mod registrations;
pub mod report;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

pub use invitations::{EventSurveyOutcome, EventSurveyRequest, InvitationOutcome, InviteRequest};
pub use registrations::{PublicEvent, PublicRegistration, Registration};
pub use report::{CustomerEventReport, ReportGroup};

/// Event kinds.
pub const KINDS: [&str; 4] = ["seminar", "forum", "club", "other"];

/// The outbox occasion of an event's invitations (one message per customer and channel).
pub fn invitation_key(event_id: i64) -> String {
    format!("customer_event:{event_id}")
}

/// An event with its counts now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerEvent {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// `seminar`, `forum`, `club` or `other`.
    pub kind: String,
    /// What it is about (shown on the invitation page).
    pub description: String,
    /// When it starts (UTC).
    pub starts_at: DateTime<Utc>,
    /// When it ends (UTC).
    pub ends_at: DateTime<Utc>,
    /// Where it takes place.
    pub place: Option<String>,
    /// The online meeting's link (shown to registered invitees only).
    pub link: Option<String>,
    /// Seats.
    pub capacity: i64,
    /// Seats taken (registrations holding one; walk-ins may take it past the capacity).
    pub seats_taken: i64,
    /// `scheduled` or `cancelled`.
    pub status: String,
    /// The post-event survey.
    pub survey_id: Option<i64>,
    /// When the post-event survey was first sent to the attendees.
    pub survey_sent_at: Option<DateTime<Utc>>,
    /// Customers invited.
    pub invited: i64,
    /// Registrations holding a seat now.
    pub registered: i64,
    /// Attendees checked in.
    pub attended: i64,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct EventRow {
    pub id: i64,
    pub title: String,
    pub kind: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub place: Option<String>,
    pub link: Option<String>,
    pub capacity: i64,
    pub seats_taken: i64,
    pub status: String,
    pub survey_id: Option<i64>,
    pub survey_sent_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const EVENT_SELECT: &str = "SELECT id, title, kind, description, starts_at, ends_at, place, link, capacity, seats_taken, \
     status, survey_id, survey_sent_at, created_by, created_at, updated_at FROM customer_events";

impl EventRow {
    fn into_event(self, invited: i64, registered: i64, attended: i64) -> CustomerEvent {
        CustomerEvent {
            id: self.id,
            title: self.title,
            kind: self.kind,
            description: self.description,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            place: self.place,
            link: self.link,
            capacity: self.capacity,
            seats_taken: self.seats_taken,
            status: self.status,
            survey_id: self.survey_id,
            survey_sent_at: self.survey_sent_at,
            invited,
            registered,
            attended,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An event in `tx` (NotFound when there is none).
pub(crate) async fn event_in(tx: &mut Tx, id: i64) -> Result<EventRow> {
    tx.fetch_optional(query(format!("{EVENT_SELECT} WHERE id = $1")).bind(id)).await?.ok_or(StoreError::NotFound("customer event"))
}

/// A new event.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomerEvent {
    /// Title (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// `seminar` (the default), `forum`, `club` or `other`.
    pub kind: Option<String>,
    /// What it is about (up to 10,000 characters).
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// When it starts (UTC; from the year 2000 to five years ahead).
    pub starts_at: DateTime<Utc>,
    /// When it ends (after it starts, at most 31 days later; default two hours after the start).
    pub ends_at: Option<DateTime<Utc>>,
    /// Where (up to 500 characters); a place or a link (or both) is needed.
    #[schema(max_length = 500)]
    pub place: Option<String>,
    /// The online meeting's link (`http://` or `https://`, up to 2,000 characters).
    #[schema(max_length = 2000)]
    pub link: Option<String>,
    /// Seats (1–100,000).
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: i64,
    /// The post-event survey (a survey that exists).
    #[schema(minimum = 1)]
    pub survey_id: Option<i64>,
}

/// A change to an event: the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerEventPatch {
    /// Title (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// `seminar`, `forum`, `club` or `other`.
    pub kind: Option<String>,
    /// Description (up to 10,000 characters).
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// Start (UTC).
    pub starts_at: Option<DateTime<Utc>>,
    /// End (UTC).
    pub ends_at: Option<DateTime<Utc>>,
    /// Place (up to 500 characters; empty clears it).
    #[schema(max_length = 500)]
    pub place: Option<String>,
    /// Link (empty clears it).
    #[schema(max_length = 2000)]
    pub link: Option<String>,
    /// Seats (1–100,000; not below the seats taken).
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: Option<i64>,
    /// `scheduled` or `cancelled` (a cancelled event takes no registration; its page says so).
    pub status: Option<String>,
    /// The post-event survey.
    #[schema(minimum = 1)]
    pub survey_id: Option<i64>,
}

/// The fields of an event as they will be stored, checked.
struct Checked {
    title: String,
    kind: String,
    description: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    place: Option<String>,
    link: Option<String>,
    capacity: i64,
}

fn check(c: Checked, now: DateTime<Utc>) -> Result<Checked> {
    let title = c.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 || title.contains('\0') {
        return Err(StoreError::invalid("title", "1 to 200 characters"));
    }
    if !KINDS.contains(&c.kind.as_str()) {
        return Err(StoreError::invalid("kind", format!("kind must be one of {}", KINDS.join(", "))));
    }
    if c.description.chars().count() > 10_000 || c.description.contains('\0') {
        return Err(StoreError::invalid("description", "at most 10,000 characters"));
    }
    let year2000 = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    if c.starts_at < year2000 || c.starts_at > now + Duration::days(5 * 366) {
        return Err(StoreError::invalid("starts_at", "from the year 2000 to five years ahead"));
    }
    if c.ends_at <= c.starts_at || c.ends_at > c.starts_at + Duration::days(31) {
        return Err(StoreError::invalid("ends_at", "after the start, at most 31 days later"));
    }
    let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let place = clean(c.place);
    if place.as_ref().is_some_and(|p| p.chars().count() > 500 || p.contains('\0')) {
        return Err(StoreError::invalid("place", "at most 500 characters"));
    }
    let link = clean(c.link);
    if let Some(l) = &link {
        let rest = l.strip_prefix("https://").or_else(|| l.strip_prefix("http://")).unwrap_or_default();
        let ok = !rest.is_empty()
            && l.chars().count() <= 2000
            && !l.chars().any(|ch| ch.is_whitespace() || ch.is_control() || ch == '"' || ch == '<' || ch == '>');
        if !ok {
            return Err(StoreError::invalid("link", "an http:// or https:// address without spaces, up to 2,000 characters"));
        }
    }
    if place.is_none() && link.is_none() {
        return Err(StoreError::invalid("place", "give a place or a link"));
    }
    if !(1..=100_000).contains(&c.capacity) {
        return Err(StoreError::invalid("capacity", "1 to 100,000 seats"));
    }
    Ok(Checked {
        title,
        kind: c.kind,
        description: c.description.trim().to_owned(),
        starts_at: c.starts_at,
        ends_at: c.ends_at,
        place,
        link,
        capacity: c.capacity,
    })
}

impl Store {
    async fn check_survey(&self, survey_id: Option<i64>) -> Result<()> {
        if let Some(id) = survey_id {
            match self.survey(id).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Err(StoreError::invalid("survey_id", format!("no survey {id}"))),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes an event (audited).
    pub async fn create_customer_event(&self, actor: &Actor, e: NewCustomerEvent) -> Result<CustomerEvent> {
        let now = self.now();
        let c = check(
            Checked {
                title: e.title,
                kind: e.kind.unwrap_or_else(|| "seminar".into()),
                description: e.description.unwrap_or_default(),
                starts_at: e.starts_at,
                ends_at: e.ends_at.unwrap_or(e.starts_at + Duration::hours(2)),
                place: e.place,
                link: e.link,
                capacity: e.capacity,
            },
            now,
        )?;
        self.check_survey(e.survey_id).await?;
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO customer_events (title, kind, description, starts_at, ends_at, place, link, capacity, seats_taken, status, \
                     survey_id, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 'scheduled', $9, $10, $11, $11) \
                     RETURNING id",
                )
                .bind(c.title)
                .bind(c.kind)
                .bind(c.description)
                .bind(c.starts_at)
                .bind(c.ends_at)
                .bind(c.place)
                .bind(c.link)
                .bind(c.capacity)
                .bind(e.survey_id)
                .bind(actor.key.as_str())
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "customer_event", Some(id.to_string()), None).await?;
        tx.commit().await?;
        self.customer_event(id).await
    }

    /// Changes an event (audited). The capacity may not go below the seats taken.
    pub async fn update_customer_event(&self, actor: &Actor, id: i64, p: CustomerEventPatch) -> Result<CustomerEvent> {
        let now = self.now();
        if let Some(s) = &p.status {
            if s != "scheduled" && s != "cancelled" {
                return Err(StoreError::invalid("status", "scheduled or cancelled"));
            }
        }
        self.check_survey(p.survey_id).await?;
        let mut tx = self.db.begin().await?;
        // The row first, locked (by the UPDATE): a registration taking a seat meanwhile waits.
        let n = tx.execute(query("UPDATE customer_events SET updated_at = $1 WHERE id = $2").bind(now).bind(id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("customer event"));
        }
        let row = event_in(&mut tx, id).await?;
        let c = check(
            Checked {
                title: p.title.unwrap_or(row.title),
                kind: p.kind.unwrap_or(row.kind),
                description: p.description.unwrap_or(row.description),
                starts_at: p.starts_at.unwrap_or(row.starts_at),
                ends_at: p.ends_at.unwrap_or(row.ends_at),
                place: match p.place {
                    Some(v) => Some(v),
                    None => row.place,
                },
                link: match p.link {
                    Some(v) => Some(v),
                    None => row.link,
                },
                capacity: p.capacity.unwrap_or(row.capacity),
            },
            // Dates of an event made earlier are judged from its own time, not only today's.
            now.max(row.created_at),
        )?;
        if c.capacity < row.seats_taken && p.capacity.is_some() {
            return Err(StoreError::invalid("capacity", format!("{} seats are taken already", row.seats_taken)));
        }
        tx.execute(
            query(
                "UPDATE customer_events SET title = $1, kind = $2, description = $3, starts_at = $4, ends_at = $5, place = $6, link = $7, \
                 capacity = $8, status = $9, survey_id = $10 WHERE id = $11",
            )
            .bind(c.title)
            .bind(c.kind)
            .bind(c.description)
            .bind(c.starts_at)
            .bind(c.ends_at)
            .bind(c.place)
            .bind(c.link)
            .bind(c.capacity)
            .bind(p.status.unwrap_or(row.status))
            .bind(p.survey_id.or(row.survey_id))
            .bind(id),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "update", "customer_event", Some(id.to_string()), None).await?;
        tx.commit().await?;
        self.customer_event(id).await
    }

    /// An event with its counts.
    pub async fn customer_event(&self, id: i64) -> Result<CustomerEvent> {
        let row: Option<EventRow> = self.db.reader().fetch_optional(query(format!("{EVENT_SELECT} WHERE id = $1")).bind(id)).await?;
        let row = row.ok_or(StoreError::NotFound("customer event"))?;
        let (invited,): (i64,) =
            self.db.reader().fetch_one(query("SELECT COUNT(*) FROM customer_event_invitations WHERE event_id = $1").bind(id)).await?;
        let (registered, attended): (i64, i64) = self
            .db
            .reader()
            .fetch_one(
                query(
                    "SELECT COALESCE(SUM(CASE WHEN status = 'registered' THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN attended_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
                     FROM customer_event_registrations WHERE event_id = $1",
                )
                .bind(id),
            )
            .await?;
        Ok(row.into_event(invited, registered, attended))
    }

    /// Events, the latest start first (at most 500), with their counts.
    pub async fn customer_events(&self) -> Result<Vec<CustomerEvent>> {
        let rows: Vec<EventRow> =
            self.db.reader().fetch_all(query(format!("{EVENT_SELECT} ORDER BY starts_at DESC, id DESC LIMIT 500"))).await?;
        let invited: Vec<(i64, i64)> =
            self.db.reader().fetch_all(query("SELECT event_id, COUNT(*) FROM customer_event_invitations GROUP BY event_id")).await?;
        let regs: Vec<(i64, i64, i64)> = self
            .db
            .reader()
            .fetch_all(query(
                "SELECT event_id, COALESCE(SUM(CASE WHEN status = 'registered' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN attended_at IS NOT NULL THEN 1 ELSE 0 END), 0) FROM customer_event_registrations GROUP BY event_id",
            ))
            .await?;
        let inv: std::collections::HashMap<i64, i64> = invited.into_iter().collect();
        let reg: std::collections::HashMap<i64, (i64, i64)> = regs.into_iter().map(|(e, r, a)| (e, (r, a))).collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let id = r.id;
                let (registered, attended) = reg.get(&id).copied().unwrap_or((0, 0));
                r.into_event(inv.get(&id).copied().unwrap_or(0), registered, attended)
            })
            .collect())
    }
}
