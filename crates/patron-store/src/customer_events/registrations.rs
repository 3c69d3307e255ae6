//! Registrations: by the invitee on the public page (`/p/e/{token}`), by staff, or at the door
//! (a walk-in checked in); cancellation; check-in of attendance. Each change writes its domain
//! event (`customer_event.registered`, `.cancelled`, `.attended`) in its transaction and shows
//! on the customer's timeline (kind `event`, read from this table by `crate::timeline`).
//!
//! Registration closes when the event starts; a cancelled event takes none. Over capacity a
//! registration is refused (409) — see the seat rule in the module above. A check-in needs the
//! event to have started (up to an hour before) and a live customer; one not registered is
//! registered as a walk-in, taking a seat whatever the capacity (they are there).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{event_in, invitations::link_expiry, EventRow};
use crate::access::CustomerScope;
use crate::customers::lock_customers;
use crate::db::{query, Tx};
use crate::users::{digest, Actor};
use crate::{audit, events, Result, Store, StoreError};

/// A registration, as the event's page lists it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Registration {
    /// The event.
    pub event_id: i64,
    /// The customer.
    pub customer_id: i64,
    /// Their name.
    pub name: String,
    /// `registered` or `cancelled`.
    pub status: String,
    /// `link` (the invitee on the public page), `staff` or `walk_in`.
    pub source: String,
    /// When they registered (last).
    pub registered_at: DateTime<Utc>,
    /// When they cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When they were checked in.
    pub attended_at: Option<DateTime<Utc>>,
    /// Who checked them in.
    pub checked_in_by: Option<String>,
    /// Whether they were invited.
    pub invited: bool,
}

/// The invitee's own registration on the public page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicRegistration {
    /// `registered` or `cancelled`.
    pub status: String,
    /// When.
    pub registered_at: DateTime<Utc>,
    /// Checked in.
    pub attended: bool,
}

/// What the public page shows: the event and the invitee's own registration, nothing else.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicEvent {
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Description.
    pub description: String,
    /// Start (UTC).
    pub starts_at: DateTime<Utc>,
    /// End (UTC).
    pub ends_at: DateTime<Utc>,
    /// Place.
    pub place: Option<String>,
    /// The meeting link: only once registered.
    pub link: Option<String>,
    /// The event is cancelled.
    pub cancelled: bool,
    /// No seat is left.
    pub full: bool,
    /// The invitee's registration.
    pub registration: Option<PublicRegistration>,
    /// Registration is open (scheduled, not started, a seat left or theirs already).
    pub can_register: bool,
    /// The invitee may cancel (registered, not started, not checked in).
    pub can_cancel: bool,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct RegRow {
    status: String,
    registered_at: DateTime<Utc>,
    attended_at: Option<DateTime<Utc>>,
}

async fn registration_in(tx: &mut Tx, event_id: i64, customer_id: i64) -> Result<Option<RegRow>> {
    tx.fetch_optional(
        query("SELECT status, registered_at, attended_at FROM customer_event_registrations WHERE customer_id = $1 AND event_id = $2")
            .bind(customer_id)
            .bind(event_id),
    )
    .await
}

/// Takes a seat: false when none is left (or `force`: a walk-in takes one anyway).
async fn take_seat(tx: &mut Tx, event_id: i64, force: bool) -> Result<bool> {
    let sql = if force {
        "UPDATE customer_events SET seats_taken = seats_taken + 1 WHERE id = $1"
    } else {
        "UPDATE customer_events SET seats_taken = seats_taken + 1 WHERE id = $1 AND seats_taken < capacity"
    };
    Ok(tx.execute(query(sql).bind(event_id)).await? > 0)
}

/// Gives a seat back.
pub(crate) async fn free_seat(tx: &mut Tx, event_id: i64) -> Result<()> {
    tx.execute(query("UPDATE customer_events SET seats_taken = seats_taken - 1 WHERE id = $1 AND seats_taken > 0").bind(event_id)).await?;
    Ok(())
}

/// How a registration comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Link,
    Staff,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Link => "link",
            Source::Staff => "staff",
        }
    }
}

/// Registers a live, locked customer in `tx`; true when a registration was made now (false:
/// registered already). The customer's row must be locked by the caller.
async fn register_in(tx: &mut Tx, e: &EventRow, customer_id: i64, source: Source, actor: &str, now: DateTime<Utc>) -> Result<bool> {
    if e.status != "scheduled" {
        return Err(StoreError::State("the event is cancelled".into()));
    }
    if e.starts_at <= now {
        return Err(StoreError::State("the event has started: registration is closed".into()));
    }
    let current = registration_in(tx, e.id, customer_id).await?;
    if current.as_ref().is_some_and(|r| r.status == "registered") {
        return Ok(false);
    }
    if !take_seat(tx, e.id, false).await? {
        return Err(StoreError::State("the event is full".into()));
    }
    tx.execute(
        query(
            "INSERT INTO customer_event_registrations (customer_id, event_id, status, source, registered_at) VALUES ($1, $2, 'registered', $3, $4) \
             ON CONFLICT (customer_id, event_id) DO UPDATE SET status = 'registered', source = $3, registered_at = $4, cancelled_at = NULL",
        )
        .bind(customer_id)
        .bind(e.id)
        .bind(source.as_str())
        .bind(now),
    )
    .await?;
    events::append(
        tx,
        customer_id,
        "customer_event.registered",
        Some(e.id),
        serde_json::json!({"source": source.as_str(), "by": actor}),
        now,
    )
    .await?;
    Ok(true)
}

/// Cancels a locked customer's registration in `tx`; true when cancelled now.
async fn cancel_in(tx: &mut Tx, e: &EventRow, customer_id: i64, actor: &str, now: DateTime<Utc>) -> Result<bool> {
    let Some(current) = registration_in(tx, e.id, customer_id).await? else {
        return Err(StoreError::NotFound("registration"));
    };
    if current.status != "registered" {
        return Ok(false);
    }
    if current.attended_at.is_some() {
        return Err(StoreError::State("checked in already: the registration stays".into()));
    }
    if e.starts_at <= now {
        return Err(StoreError::State("the event has started: the registration stays".into()));
    }
    free_seat(tx, e.id).await?;
    tx.execute(
        query(
            "UPDATE customer_event_registrations SET status = 'cancelled', cancelled_at = $1 WHERE customer_id = $2 AND event_id = $3 \
             AND status = 'registered'",
        )
        .bind(now)
        .bind(customer_id)
        .bind(e.id),
    )
    .await?;
    events::append(tx, customer_id, "customer_event.cancelled", Some(e.id), serde_json::json!({"by": actor}), now).await?;
    Ok(true)
}

/// The customer behind an event link (the one a merged customer was merged into), with the
/// event; NotFound for an unknown, forged or expired link, or an erased customer.
async fn link_in(tx: &mut Tx, token: &str, now: DateTime<Utc>) -> Result<(i64, EventRow)> {
    let gone = || StoreError::NotFound("event link");
    if !(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(gone());
    }
    let found: Option<(i64, i64)> = tx
        .fetch_optional(query("SELECT customer_id, event_id FROM customer_event_tokens WHERE token_hash = $1").bind(digest(token)))
        .await?;
    let (customer_id, event_id) = found.ok_or_else(gone)?;
    let e = match event_in(tx, event_id).await {
        Ok(e) => e,
        Err(StoreError::NotFound(_)) => return Err(gone()),
        Err(err) => return Err(err),
    };
    if link_expiry(&e) <= now {
        return Err(gone());
    }
    let who: Option<(Option<chrono::DateTime<Utc>>, Option<i64>)> =
        tx.fetch_optional(query("SELECT deleted_at, merged_into FROM customers WHERE id = $1").bind(customer_id)).await?;
    let customer = match who {
        Some((None, _)) => customer_id,
        Some((Some(_), Some(into))) => into,
        _ => return Err(gone()),
    };
    Ok((customer, e))
}

fn public_view(e: &EventRow, reg: Option<RegRow>, now: DateTime<Utc>) -> PublicEvent {
    let registered = reg.as_ref().is_some_and(|r| r.status == "registered");
    let open = e.status == "scheduled" && e.starts_at > now;
    PublicEvent {
        title: e.title.clone(),
        kind: e.kind.clone(),
        description: e.description.clone(),
        starts_at: e.starts_at,
        ends_at: e.ends_at,
        place: e.place.clone(),
        link: if registered { e.link.clone() } else { None },
        cancelled: e.status == "cancelled",
        full: e.seats_taken >= e.capacity,
        can_register: open && !registered && e.seats_taken < e.capacity,
        can_cancel: open && registered && reg.as_ref().is_some_and(|r| r.attended_at.is_none()),
        registration: reg.map(|r| PublicRegistration {
            status: r.status,
            registered_at: r.registered_at,
            attended: r.attended_at.is_some(),
        }),
    }
}

impl Store {
    /// The public page behind a link: the event and the invitee's own registration.
    pub async fn public_customer_event(&self, token: &str) -> Result<PublicEvent> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (customer_id, e) = link_in(&mut tx, token, now).await?;
        let reg = registration_in(&mut tx, e.id, customer_id).await?;
        tx.rollback().await?;
        Ok(public_view(&e, reg, now))
    }

    /// The invitee registers (or cancels, `register` false) through their link; answers the page
    /// as it is after. Registering twice or cancelling what is not registered changes nothing.
    pub async fn public_customer_event_answer(&self, token: &str, register: bool) -> Result<PublicEvent> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (customer_id, _) = link_in(&mut tx, token, now).await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("event link"));
        }
        // Read again after the customer's lock: the seat count is the locked row's below.
        let (_, e) = link_in(&mut tx, token, now).await?;
        let key = format!("customer:{customer_id}");
        if register {
            register_in(&mut tx, &e, customer_id, Source::Link, &key, now).await?;
        } else {
            match cancel_in(&mut tx, &e, customer_id, &key, now).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        let e = event_in(&mut tx, e.id).await?;
        let reg = registration_in(&mut tx, e.id, customer_id).await?;
        tx.commit().await?;
        Ok(public_view(&e, reg, now))
    }

    /// Staff register a customer (in the caller's scope; audited): 409 when full, closed or
    /// cancelled; registered already changes nothing.
    pub async fn register_for_customer_event(&self, actor: &Actor, event_id: i64, customer_id: i64) -> Result<Registration> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        let e = event_in(&mut tx, event_id).await?;
        if register_in(&mut tx, &e, customer_id, Source::Staff, &actor.key, now).await? {
            audit::record(
                &mut tx,
                now,
                &actor.key,
                "register",
                "customer_event",
                Some(event_id.to_string()),
                Some(format!("customer={customer_id}")),
            )
            .await?;
        }
        tx.commit().await?;
        self.registration(actor, event_id, customer_id).await
    }

    /// Staff cancel a customer's registration (audited): 404 when there is none, 409 once the
    /// event has started or the customer was checked in.
    pub async fn cancel_customer_event_registration(&self, actor: &Actor, event_id: i64, customer_id: i64) -> Result<Registration> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        let e = event_in(&mut tx, event_id).await?;
        if cancel_in(&mut tx, &e, customer_id, &actor.key, now).await? {
            audit::record(
                &mut tx,
                now,
                &actor.key,
                "cancel",
                "customer_event",
                Some(event_id.to_string()),
                Some(format!("customer={customer_id}")),
            )
            .await?;
        }
        tx.commit().await?;
        self.registration(actor, event_id, customer_id).await
    }

    /// Checks a customer in (audited; once: again changes nothing). From an hour before the
    /// start to a day after the end; a customer not registered becomes a walk-in.
    pub async fn check_in_customer_event(&self, actor: &Actor, event_id: i64, customer_id: i64) -> Result<Registration> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        let e = event_in(&mut tx, event_id).await?;
        if e.status != "scheduled" {
            return Err(StoreError::State("the event is cancelled".into()));
        }
        if now < e.starts_at - Duration::hours(1) || now > e.ends_at + Duration::days(1) {
            return Err(StoreError::State("check-in is open from an hour before the start to a day after the end".into()));
        }
        let current = registration_in(&mut tx, event_id, customer_id).await?;
        if current.as_ref().is_some_and(|r| r.attended_at.is_some()) {
            tx.rollback().await?;
            return self.registration(actor, event_id, customer_id).await;
        }
        let walk_in = current.as_ref().is_none_or(|r| r.status != "registered");
        if walk_in {
            take_seat(&mut tx, event_id, true).await?;
            tx.execute(
                query(
                    "INSERT INTO customer_event_registrations (customer_id, event_id, status, source, registered_at, attended_at, checked_in_by) \
                     VALUES ($1, $2, 'registered', 'walk_in', $3, $3, $4) ON CONFLICT (customer_id, event_id) DO UPDATE SET \
                     status = 'registered', source = 'walk_in', registered_at = $3, cancelled_at = NULL, attended_at = $3, checked_in_by = $4",
                )
                .bind(customer_id)
                .bind(event_id)
                .bind(now)
                .bind(actor.key.as_str()),
            )
            .await?;
        } else {
            tx.execute(
                query(
                    "UPDATE customer_event_registrations SET attended_at = $1, checked_in_by = $2 WHERE customer_id = $3 AND event_id = $4",
                )
                .bind(now)
                .bind(actor.key.as_str())
                .bind(customer_id)
                .bind(event_id),
            )
            .await?;
        }
        events::append(
            &mut tx,
            customer_id,
            "customer_event.attended",
            Some(event_id),
            serde_json::json!({"walk_in": walk_in, "by": actor.key}),
            now,
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "check_in",
            "customer_event",
            Some(event_id.to_string()),
            Some(format!("customer={customer_id}")),
        )
        .await?;
        tx.commit().await?;
        self.registration(actor, event_id, customer_id).await
    }

    async fn registration(&self, actor: &Actor, event_id: i64, customer_id: i64) -> Result<Registration> {
        let rows = self.registrations_where(actor, event_id, Some(customer_id)).await?;
        rows.into_iter().next().ok_or(StoreError::NotFound("registration"))
    }

    /// An event's registrations, cancelled ones included, of customers in the caller's scope
    /// (at most 5,000, by registration time).
    pub async fn customer_event_registrations(&self, actor: &Actor, event_id: i64) -> Result<Vec<Registration>> {
        self.customer_event(event_id).await?;
        self.registrations_where(actor, event_id, None).await
    }

    async fn registrations_where(&self, actor: &Actor, event_id: i64, customer_id: Option<i64>) -> Result<Vec<Registration>> {
        let mut q = query(format!(
            "SELECT r.event_id, r.customer_id, c.name, r.status, r.source, r.registered_at, r.cancelled_at, r.attended_at, r.checked_in_by, \
             CASE WHEN i.customer_id IS NULL THEN FALSE ELSE TRUE END AS invited \
             FROM customer_event_registrations r JOIN customers c ON c.id = r.customer_id \
             LEFT JOIN customer_event_invitations i ON i.customer_id = r.customer_id AND i.event_id = r.event_id \
             WHERE r.event_id = $1 AND c.deleted_at IS NULL AND {}{} ORDER BY r.registered_at, r.customer_id LIMIT 5000",
            CustomerScope::of(actor).sql("c"),
            if customer_id.is_some() { " AND r.customer_id = $2" } else { "" }
        ))
        .bind(event_id);
        if let Some(c) = customer_id {
            q = q.bind(c);
        }
        self.db.reader().fetch_all(q).await
    }
}

/// A merge moves the duplicate's invitations and registrations to the customer kept (in the
/// merge's transaction; see `crate::duplicates`). Where both have one for the same event, the
/// kept customer's stays, taking the other's attendance, and a seat held twice is given back.
pub(crate) async fn on_merge(tx: &mut Tx, from: i64, to: i64) -> Result<()> {
    let invitations: Vec<(i64, String, Option<String>, DateTime<Utc>)> = tx
        .fetch_all(query("SELECT event_id, channel, tier, invited_at FROM customer_event_invitations WHERE customer_id = $1").bind(from))
        .await?;
    for (event_id, channel, tier, at) in invitations {
        tx.execute(
            query(
                "INSERT INTO customer_event_invitations (customer_id, event_id, channel, tier, invited_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (customer_id, event_id) DO NOTHING",
            )
            .bind(to)
            .bind(event_id)
            .bind(channel)
            .bind(tier)
            .bind(at),
        )
        .await?;
    }
    tx.execute(query("DELETE FROM customer_event_invitations WHERE customer_id = $1").bind(from)).await?;
    type Row = (i64, String, String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
    let regs: Vec<Row> = tx
        .fetch_all(
            query(
                "SELECT event_id, status, source, registered_at, cancelled_at, attended_at, checked_in_by \
                 FROM customer_event_registrations WHERE customer_id = $1",
            )
            .bind(from),
        )
        .await?;
    for (event_id, status, source, registered_at, cancelled_at, attended_at, checked_in_by) in regs {
        let kept = registration_in(tx, event_id, to).await?;
        match kept {
            None => {
                tx.execute(
                    query(
                        "INSERT INTO customer_event_registrations (customer_id, event_id, status, source, registered_at, cancelled_at, \
                         attended_at, checked_in_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(to)
                    .bind(event_id)
                    .bind(status)
                    .bind(source)
                    .bind(registered_at)
                    .bind(cancelled_at)
                    .bind(attended_at)
                    .bind(checked_in_by),
                )
                .await?;
            }
            Some(k) => {
                let both_hold = k.status == "registered" && status == "registered";
                if k.status != "registered" && status == "registered" {
                    // The duplicate's seat passes to the kept customer.
                    tx.execute(
                        query(
                            "UPDATE customer_event_registrations SET status = 'registered', cancelled_at = NULL, registered_at = $1 \
                             WHERE customer_id = $2 AND event_id = $3",
                        )
                        .bind(registered_at)
                        .bind(to)
                        .bind(event_id),
                    )
                    .await?;
                }
                if k.attended_at.is_none() && attended_at.is_some() {
                    tx.execute(
                        query(
                            "UPDATE customer_event_registrations SET attended_at = $1, checked_in_by = $2 WHERE customer_id = $3 AND event_id = $4",
                        )
                        .bind(attended_at)
                        .bind(checked_in_by)
                        .bind(to)
                        .bind(event_id),
                    )
                    .await?;
                }
                if both_hold {
                    free_seat(tx, event_id).await?;
                }
            }
        }
    }
    tx.execute(query("DELETE FROM customer_event_registrations WHERE customer_id = $1").bind(from)).await?;
    Ok(())
}
