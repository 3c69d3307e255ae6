//! The people of an organisation: name, role, contact details, interests and notes (what an
//! account manager needs to know about the customer's people).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::users::Actor;
use crate::values;
use crate::{audit, Result, Store, StoreError};

/// A person at an organisation customer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Contact {
    /// Id.
    pub id: i64,
    /// The organisation.
    pub customer_id: i64,
    /// Id in the source system.
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// Role (e.g. 采购, 行政经理).
    pub role: Option<String>,
    /// Mobile.
    pub mobile: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Interests (e.g. 高尔夫, 茶艺).
    pub interests: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A new contact person.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// Id in the source system.
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Option<String>,
    /// Mobile.
    pub mobile: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Interests.
    pub interests: Option<String>,
    /// Notes.
    pub notes: Option<String>,
}

/// The people of a customer, by name, read on `c`.
pub(crate) async fn read_contacts(c: &mut crate::db::ReadConn, customer_id: i64) -> Result<Vec<Contact>> {
    c.fetch_all(query(format!("SELECT {CONTACT_COLS} FROM contacts WHERE customer_id = $1 ORDER BY name, id")).bind(customer_id)).await
}

const CONTACT_COLS: &str = "id, customer_id, external_id, name, role, mobile, email, interests, notes, created_at, updated_at";

impl Store {
    /// The people of a customer, by name.
    pub async fn contacts(&self, customer_id: i64) -> Result<Vec<Contact>> {
        read_contacts(&mut self.db.read_conn().await?, customer_id).await
    }

    /// Adds a person to an organisation customer.
    pub async fn create_contact(&self, actor: &Actor, customer_id: i64, c: NewContact) -> Result<Contact> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::invalid("name", "name must not be empty"));
        }
        let mobile = c
            .mobile
            .filter(|m| !m.trim().is_empty())
            .map(|m| values::parse_mobile(&m))
            .transpose()
            .map_err(|m| StoreError::invalid("mobile", m))?;
        let email = c
            .email
            .filter(|m| !m.trim().is_empty())
            .map(|m| values::parse_email(&m))
            .transpose()
            .map_err(|m| StoreError::invalid("email", m))?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let kind: Option<(String,)> =
            tx.fetch_optional(query("SELECT kind FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id)).await?;
        match kind {
            None => return Err(StoreError::NotFound("customer")),
            Some((k,)) if k != "organisation" => {
                return Err(StoreError::invalid("customer_id", "contact people belong to organisation customers"))
            }
            Some(_) => {}
        }
        let contact: Contact = tx
            .fetch_one(
                query(format!(
                    "INSERT INTO contacts (customer_id, external_id, name, role, mobile, email, interests, notes, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {CONTACT_COLS}"
                ))
                .bind(customer_id)
                .bind(c.external_id.filter(|s| !s.trim().is_empty()))
                .bind(name)
                .bind(c.role)
                .bind(mobile)
                .bind(email)
                .bind(c.interests)
                .bind(c.notes)
                .bind(now),
            )
            .await?;
        if let Some(ext) = &contact.external_id {
            crate::keys::claim(&mut tx, crate::keys::CONTACTS, ext, customer_id, Some(contact.id)).await?;
        }
        audit::record(&mut tx, now, &actor.key, "create", "contact", Some(contact.id.to_string()), Some(format!("customer={customer_id}")))
            .await?;
        tx.commit().await?;
        Ok(contact)
    }
}
