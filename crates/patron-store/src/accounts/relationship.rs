//! Relationship stage and people map (issue 19 §3): where the relationship stands
//! (`acquaintance` 初识, `breakthrough` 突破, `consolidation` 巩固, `partnership` 伙伴) with its
//! history and guidance; the client's people with our ties to them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_user, STAGES};
use crate::db::query;
use crate::users::Actor;
use crate::{audit, events, Result, Store, StoreError};

/// A stage change.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StageChange {
    /// The stage entered.
    pub stage: String,
    /// Why.
    pub reason: Option<String>,
    /// Who (`user:<id>` …).
    pub by_actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A customer's relationship stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Relationship {
    /// The customer.
    pub customer_id: i64,
    /// The current stage (null: not set yet).
    pub stage: Option<String>,
    /// What to do at this stage (the settings' guidance).
    pub guidance: Option<String>,
    /// The changes, newest first.
    pub history: Vec<StageChange>,
}

/// A stage to set.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    /// `acquaintance`, `breakthrough`, `consolidation` or `partnership`.
    #[schema(pattern = "^(acquaintance|breakthrough|consolidation|partnership)$")]
    pub stage: String,
    /// Why (1–2000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// One of our users' tie to one of the client's people.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Tie {
    /// The client's person (a contact id).
    pub contact_id: i64,
    /// Our user.
    pub user_id: i64,
    /// Our user's name.
    pub user_name: String,
    /// How strong (1 weak – 5 strong).
    pub strength: i64,
    /// What we share with them (interests, background).
    pub shared_interests: Option<String>,
    /// The last contact between them.
    pub last_contact_at: Option<DateTime<Utc>>,
}

/// A tie as written.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TieInput {
    /// The client's person (a contact of this customer).
    #[schema(minimum = 1)]
    pub contact_id: i64,
    /// Our user (active).
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub strength: i64,
    /// What we share with them (at most 500 characters).
    #[schema(max_length = 500)]
    pub shared_interests: Option<String>,
    /// The last contact between them (not in the future).
    pub last_contact_at: Option<DateTime<Utc>>,
}

/// One of the client's people with our ties to them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Person {
    /// The contact.
    pub contact_id: i64,
    /// Name.
    pub name: String,
    /// Their role at the client.
    pub role: Option<String>,
    /// Their interests.
    pub interests: Option<String>,
    /// Our ties to them.
    pub ties: Vec<Tie>,
}

/// The people map of an account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeopleMap {
    /// The customer.
    pub customer_id: i64,
    /// The client's people.
    pub people: Vec<Person>,
    /// How many ties there are.
    pub ties: usize,
    /// Only one tie (or none) holds the relationship: one person leaving loses the account.
    pub single_threaded: bool,
}

fn guidance(settings: &super::AccountSettings, stage: Option<&str>) -> Option<String> {
    stage.and_then(|s| settings.stage_guidance.get(s).cloned()).filter(|g| !g.trim().is_empty())
}

impl Store {
    /// A customer's relationship stage with its history.
    pub async fn relationship(&self, customer_id: i64) -> Result<Relationship> {
        let row: Option<(Option<String>,)> = self
            .db
            .reader()
            .fetch_optional(query("SELECT relationship_stage FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id))
            .await?;
        let stage = row.ok_or(StoreError::NotFound("customer"))?.0;
        let history: Vec<StageChange> = self
            .db
            .reader()
            .fetch_all(
                query("SELECT stage, reason, by_actor, at FROM relationship_stages WHERE customer_id = $1 ORDER BY at DESC, id DESC LIMIT 200")
                    .bind(customer_id),
            )
            .await?;
        let settings = self.account_settings().await?;
        Ok(Relationship { customer_id, guidance: guidance(&settings, stage.as_deref()), stage, history })
    }

    /// Sets the stage (kept in the history with who, when and why; audited; an event).
    pub async fn set_relationship_stage(&self, actor: &Actor, customer_id: i64, input: StageInput) -> Result<Relationship> {
        let stage = input.stage.trim().to_lowercase();
        if !STAGES.contains(&stage.as_str()) {
            return Err(StoreError::invalid("stage", format!("stage must be one of {}", STAGES.join(", "))));
        }
        let reason = input.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(StoreError::invalid("reason", "1 to 2000 characters"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query("UPDATE customers SET relationship_stage = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL")
                    .bind(stage.clone())
                    .bind(now)
                    .bind(customer_id),
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        tx.execute(
            query("INSERT INTO relationship_stages (customer_id, stage, reason, by_actor, at) VALUES ($1, $2, $3, $4, $5)")
                .bind(customer_id)
                .bind(stage.clone())
                .bind(reason)
                .bind(actor.key.clone())
                .bind(now),
        )
        .await?;
        events::append(&mut tx, customer_id, "relationship.stage_changed", None, serde_json::json!({"stage": stage}), now).await?;
        audit::record(&mut tx, now, &actor.key, "update", "relationship_stage", Some(customer_id.to_string()), Some(stage)).await?;
        tx.commit().await?;
        self.relationship(customer_id).await
    }

    /// The people map: the customer's contacts with our ties to them.
    pub async fn people_map(&self, customer_id: i64) -> Result<PeopleMap> {
        let contacts: Vec<(i64, String, Option<String>, Option<String>)> = self
            .db
            .reader()
            .fetch_all(query("SELECT id, name, role, interests FROM contacts WHERE customer_id = $1 ORDER BY id").bind(customer_id))
            .await?;
        let ties: Vec<Tie> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT t.contact_id, t.user_id, u.name AS user_name, t.strength, t.shared_interests, t.last_contact_at \
                     FROM contact_ties t JOIN users u ON u.id = t.user_id WHERE t.customer_id = $1 ORDER BY t.contact_id, t.strength DESC, t.user_id",
                )
                .bind(customer_id),
            )
            .await?;
        let n = ties.len();
        let people = contacts
            .into_iter()
            .map(|(contact_id, name, role, interests)| Person {
                contact_id,
                name,
                role,
                interests,
                ties: ties.iter().filter(|t| t.contact_id == contact_id).cloned().collect(),
            })
            .collect();
        Ok(PeopleMap { customer_id, people, ties: n, single_threaded: n <= 1 })
    }

    /// Records (or changes) a tie between one of our users and one of the client's people.
    pub async fn set_tie(&self, actor: &Actor, customer_id: i64, t: TieInput) -> Result<PeopleMap> {
        if !(1..=5).contains(&t.strength) {
            return Err(StoreError::invalid("strength", "must be 1 to 5"));
        }
        let shared = t.shared_interests.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        if shared.as_ref().is_some_and(|s| s.chars().count() > 500) {
            return Err(StoreError::invalid("shared_interests", "at most 500 characters"));
        }
        let now = self.now();
        if t.last_contact_at.is_some_and(|at| at > now) {
            return Err(StoreError::invalid("last_contact_at", "must not be in the future"));
        }
        let mut tx = self.db.begin().await?;
        let contact: Option<(i64,)> = tx
            .fetch_optional(query("SELECT id FROM contacts WHERE customer_id = $1 AND id = $2").bind(customer_id).bind(t.contact_id))
            .await?;
        if contact.is_none() {
            return Err(StoreError::invalid("contact_id", format!("no contact {} of this customer", t.contact_id)));
        }
        check_user(&mut tx, "user_id", t.user_id).await?;
        tx.execute(
            query(
                "INSERT INTO contact_ties (customer_id, contact_id, user_id, strength, shared_interests, last_contact_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (customer_id, contact_id, user_id) DO UPDATE SET \
                 strength = excluded.strength, shared_interests = excluded.shared_interests, \
                 last_contact_at = COALESCE(excluded.last_contact_at, contact_ties.last_contact_at), updated_at = excluded.updated_at",
            )
            .bind(customer_id)
            .bind(t.contact_id)
            .bind(t.user_id)
            .bind(t.strength)
            .bind(shared)
            .bind(t.last_contact_at)
            .bind(now),
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "update",
            "contact_tie",
            Some(customer_id.to_string()),
            Some(format!("contact={} user={}", t.contact_id, t.user_id)),
        )
        .await?;
        tx.commit().await?;
        self.people_map(customer_id).await
    }
}
