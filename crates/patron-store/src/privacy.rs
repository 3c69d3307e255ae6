//! A person's rights over their data (DESIGN.md C20; China's PIPL, the GDPR): a copy of
//! everything patron holds on a customer, and erasure.
//!
//! Erasure pseudonymises rather than deletes the rows the books depend on: the customer row
//! stays (hidden, name replaced by `erased #id`, every contact detail, demographic and custom
//! attribute cleared) so that orders, their lines and revenue figures keep adding up, and so that
//! a later re-import of the source system's file cannot bring the person back (the external id
//! stays, and a deleted customer's row is refused). Free text that may describe the person goes:
//! note bodies, interaction payloads, tags, the people of an organisation, and the old and new
//! values in the profile history. Consent records stay as they are: they are the proof of what
//! the person agreed to, and hold no contact detail.

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::contacts::Contact;
use crate::customers::{record_change, Change, Customer};
use crate::db::query;
use crate::interactions::Interaction;
use crate::notes::Note;
use crate::orders::Order;
use crate::page::all_pages;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Everything patron holds on one customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonalData {
    /// When this copy was made (UTC).
    pub exported_at: chrono::DateTime<Utc>,
    /// Profile, tags, consents, owner and referrer.
    pub customer: Customer,
    /// People of an organisation.
    pub contacts: Vec<Contact>,
    /// Every order with its lines, newest first.
    pub orders: Vec<Order>,
    /// Every interaction, newest first.
    pub interactions: Vec<Interaction>,
    /// Notes, newest first.
    pub notes: Vec<Note>,
    /// The profile's change history, newest first.
    pub changes: Vec<Change>,
}

/// Rows read per page while collecting a copy.
const PAGE: i64 = 500;

impl Store {
    /// A copy of everything patron holds on a live customer. The read is audited.
    pub async fn personal_data(&self, actor: &Actor, customer_id: i64) -> Result<PersonalData> {
        let customer = self.customer(customer_id).await?;
        let contacts = self.contacts(customer_id).await?;
        let orders = all_pages(|cursor| async move { self.customer_orders(customer_id, cursor.as_deref(), PAGE).await }).await?;
        let interactions =
            all_pages(|cursor| async move { self.customer_interactions(customer_id, cursor.as_deref(), PAGE).await }).await?;
        let notes: Vec<Note> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, customer_id, author, body, created_at FROM notes WHERE customer_id = $1 ORDER BY created_at DESC, id DESC",
                )
                .bind(customer_id),
            )
            .await?;
        let changes = self.customer_changes(customer_id, i64::MAX).await?;
        self.audit(&actor.key, "export_personal_data", "customer", Some(customer_id.to_string()), None).await?;
        Ok(PersonalData { exported_at: self.now(), customer, contacts, orders, interactions, notes, changes })
    }

    /// Erases a live customer's personal data in one transaction (see the module docs). The
    /// customer disappears from every list and read; orders and figures stay.
    pub async fn erase_customer(&self, actor: &Actor, customer_id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let erased = tx
            .execute(
                query(
                    "UPDATE customers SET name = $1, mobile = NULL, email = NULL, wechat_id = NULL, gender = NULL, birthday = NULL, \
                     city = NULL, attributes = $2, deleted_at = $3, updated_at = $3 WHERE id = $4 AND deleted_at IS NULL",
                )
                .bind(format!("erased #{customer_id}"))
                .bind(serde_json::json!({}))
                .bind(now)
                .bind(customer_id),
            )
            .await?;
        if erased == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        for sql in [
            "DELETE FROM customer_tags WHERE customer_id = $1",
            "DELETE FROM customer_scores WHERE customer_id = $1",
            "UPDATE notes SET body = '' WHERE customer_id = $1",
            "UPDATE interactions SET payload = NULL WHERE customer_id = $1",
            "UPDATE customer_changes SET old_value = NULL, new_value = NULL WHERE customer_id = $1",
            // What the customer said in tickets and surveys; the counts stay for the reports.
            "UPDATE tickets SET body = '' WHERE customer_id = $1",
            "UPDATE ticket_comments SET body = '' WHERE customer_id = $1",
            "UPDATE survey_answers SET comment = NULL, answers = '{}' WHERE customer_id = $1",
            "DELETE FROM churn_reasons WHERE customer_id = $1",
            "UPDATE public_links SET used_at = COALESCE(used_at, expires_at) WHERE customer_id = $1",
            // Account plans' scorecard links stop working, fulfilment notes go (issue 19 §4, §5).
            "UPDATE fulfilment_steps SET note = NULL WHERE customer_id = $1",
            "UPDATE account_plans SET superseded_at = COALESCE(superseded_at, created_at) WHERE customer_id = $1",
            // What the customer looked at on the web, and the link that would add more (issue 19 §8).
            "DELETE FROM web_customer_views WHERE customer_id = $1",
            "DELETE FROM web_visitor_links WHERE customer_id = $1",
            "DELETE FROM web_events WHERE customer_id = $1",
        ] {
            tx.execute(query(sql).bind(customer_id)).await?;
        }
        tx.execute(
            query(
                "UPDATE contacts SET name = $1, role = NULL, mobile = NULL, email = NULL, interests = NULL, notes = NULL, updated_at = $2 \
                 WHERE customer_id = $3",
            )
            .bind("erased")
            .bind(now)
            .bind(customer_id),
        )
        .await?;
        crate::loyalty::membership::on_erasure(&mut tx, customer_id, &actor.key, now).await?;
        record_change(&mut tx, customer_id, now, &actor.key, "erased", None, None).await?;
        audit::record(&mut tx, now, &actor.key, "erase", "customer", Some(customer_id.to_string()), None).await?;
        tx.commit().await
    }
}
