//! Customers (persons and organisations): profile, contacts, consent, tags, owner, referrer, the
//! change history of every field, soft delete, and listing with filters and keyset pagination.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{query, Engine, Query, ReadConn, Tx};
use crate::users::Actor;
use crate::values;
use crate::{audit, Result, Store, StoreError};

/// Consent to be contacted on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Consent {
    /// `sms`, `email`, `wechat`, `phone` or `mail`.
    pub channel: String,
    /// Whether contact is allowed.
    pub granted: bool,
    /// When the consent was recorded (UTC).
    pub recorded_at: DateTime<Utc>,
    /// Where it came from (`api`, `import`, `ui`, …).
    pub source: String,
}

/// A short reference to another row (owner, referrer).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Ref {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// A customer's profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    /// patron's id.
    pub id: i64,
    /// The id in the source system (unique).
    pub external_id: Option<String>,
    /// `person` or `organisation`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Mainland mobile, 11 digits.
    pub mobile: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// WeChat id.
    pub wechat_id: Option<String>,
    /// `male`, `female` or `unknown`.
    pub gender: Option<String>,
    /// Birthday.
    pub birthday: Option<NaiveDate>,
    /// City.
    pub city: Option<String>,
    /// Custom attributes (a JSON object of text values).
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Consent per channel.
    pub consents: Vec<Consent>,
    /// Account manager.
    pub owner: Option<Ref>,
    /// Customer who referred this one.
    pub referrer: Option<Ref>,
    /// Home unit (the store or branch the customer belongs to; scopes who sees it).
    pub home_unit_id: Option<i64>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct CustomerRow {
    id: i64,
    external_id: Option<String>,
    kind: String,
    name: String,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    gender: Option<String>,
    birthday: Option<NaiveDate>,
    city: Option<String>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    attributes: sqlx::types::Json<serde_json::Value>,
    owner_id: Option<i64>,
    owner_name: Option<String>,
    referrer_id: Option<i64>,
    home_unit_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A customer row as stored (live or not), for code that compares or merges profiles.
#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct StoredCustomer {
    pub id: i64,
    pub external_id: Option<String>,
    pub kind: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub wechat_id: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub city: Option<String>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    pub attributes: sqlx::types::Json<serde_json::Value>,
    pub owner_id: Option<i64>,
    pub referrer_id: Option<i64>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub merged_into: Option<i64>,
    pub home_unit_id: Option<i64>,
}

/// The columns of [`StoredCustomer`], for `SELECT {STORED_CUSTOMER_COLUMNS} FROM customers …`.
pub(crate) const STORED_CUSTOMER_COLUMNS: &str =
    "id, external_id, kind, name, mobile, email, wechat_id, gender, birthday, city, attributes, \
     owner_id, referrer_id, deleted_at, merged_into, home_unit_id";

/// Resolving a customer named by a file or a request by external id: the customer itself when
/// live, or the one a merged duplicate was merged into. Select [`RESOLVED_CUSTOMER_ID`] from
/// `customers` where [`RESOLVABLE_CUSTOMER`] holds.
pub(crate) const RESOLVED_CUSTOMER_ID: &str = "COALESCE(merged_into, id)";
/// See [`RESOLVED_CUSTOMER_ID`].
pub(crate) const RESOLVABLE_CUSTOMER: &str = "(deleted_at IS NULL OR merged_into IS NOT NULL)";

/// The referrer's name is read by a second query (by its id): the referrer is another
/// customer, in another shard on Citus, where a join of `customers` to itself is refused.
const CUSTOMER_SELECT: &str = "SELECT c.id, c.external_id, c.kind, c.name, c.mobile, c.email, c.wechat_id, c.gender, \
     c.birthday, c.city, c.attributes, c.owner_id, u.name AS owner_name, c.referrer_id, \
     c.home_unit_id, c.created_at, c.updated_at \
     FROM customers c LEFT JOIN users u ON u.id = c.owner_id";

/// Input for a new customer. Optional fields may be left out.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Id in the source system; unique.
    pub external_id: Option<String>,
    /// `person` (default) or `organisation`.
    pub kind: Option<String>,
    /// Name (required).
    pub name: String,
    /// Mainland mobile.
    pub mobile: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// WeChat id.
    pub wechat_id: Option<String>,
    /// `male`, `female` or `unknown`.
    pub gender: Option<String>,
    /// Birthday.
    pub birthday: Option<NaiveDate>,
    /// City.
    pub city: Option<String>,
    /// Custom attributes: a JSON object.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Consent per channel (`{"sms": true}`).
    #[serde(default)]
    pub consents: BTreeMap<String, bool>,
    /// Owner (user id).
    pub owner_id: Option<i64>,
    /// Referrer (customer id).
    pub referrer_id: Option<i64>,
    /// Home unit (unit id); by default the unit of the first order's store.
    pub home_unit_id: Option<i64>,
}

/// A change to a customer: fields left out stay as they are; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    /// New external id.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// New kind.
    pub kind: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New mobile (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    /// New email (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// New WeChat id (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub wechat_id: Option<Option<String>>,
    /// New gender (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub gender: Option<Option<String>>,
    /// New birthday (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub birthday: Option<Option<NaiveDate>>,
    /// New city (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    /// Attributes to set (a value of null removes that attribute).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// The full new tag list.
    pub tags: Option<Vec<String>>,
    /// Consents to record.
    pub consents: Option<BTreeMap<String, bool>>,
    /// New owner (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub owner_id: Option<Option<i64>>,
    /// New referrer (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub referrer_id: Option<Option<i64>>,
    /// New home unit (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub home_unit_id: Option<Option<i64>>,
    /// Days between meaningful contacts for this customer, 1–3650 (null: the tier's policy).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3650)]
    pub contact_cadence_days: Option<Option<i64>>,
}

/// Distinguishes a missing field (outer None) from an explicit null (Some(None)).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One recorded change of one field.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Change {
    /// Id.
    pub id: i64,
    /// When (UTC).
    pub changed_at: DateTime<Utc>,
    /// Who (`user:<id>`, `token:<id>`, `cli`, `import:<id>`).
    pub actor: String,
    /// Which field (`mobile`, `tags`, `consent.sms`, `attr.NAME`, `created`, `deleted`).
    pub field: String,
    /// Value before.
    pub old_value: Option<String>,
    /// Value after.
    pub new_value: Option<String>,
}

/// Order totals of a customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OrderStats {
    /// Completed orders.
    pub order_count: i64,
    /// Spend over completed orders, minor units.
    pub spend_cents: i64,
    /// First completed order.
    pub first_order_at: Option<DateTime<Utc>>,
    /// Last completed order.
    pub last_order_at: Option<DateTime<Utc>>,
}

/// A row in a customer list.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct CustomerListItem {
    /// Id.
    pub id: i64,
    /// External id.
    pub external_id: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Mobile (masked for roles that do not need it).
    pub mobile: Option<String>,
    /// Email (masked for roles that do not need it).
    pub email: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Owner id.
    pub owner_id: Option<i64>,
    /// Owner name.
    pub owner_name: Option<String>,
    /// Completed orders.
    pub order_count: i64,
    /// Spend, minor units.
    pub spend_cents: i64,
    /// Last completed order.
    pub last_order_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// Sort orders for customer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
pub enum CustomerSort {
    /// Oldest id first.
    #[default]
    #[serde(rename = "id")]
    Id,
    /// Newest id first.
    #[serde(rename = "-id")]
    IdDesc,
    /// By name.
    #[serde(rename = "name")]
    Name,
    /// By name, descending.
    #[serde(rename = "-name")]
    NameDesc,
    /// Least recently changed first.
    #[serde(rename = "updated_at")]
    UpdatedAt,
    /// Most recently changed first.
    #[serde(rename = "-updated_at")]
    UpdatedAtDesc,
}

impl CustomerSort {
    /// The column sorted by; names by code point on every engine (see [`Engine::code_point_order`]).
    fn column(self, engine: Engine) -> String {
        match self {
            CustomerSort::Id | CustomerSort::IdDesc => "c.id".into(),
            CustomerSort::Name | CustomerSort::NameDesc => engine.code_point_order("c.name"),
            CustomerSort::UpdatedAt | CustomerSort::UpdatedAtDesc => "c.updated_at".into(),
        }
    }
    fn descending(self) -> bool {
        matches!(self, CustomerSort::IdDesc | CustomerSort::NameDesc | CustomerSort::UpdatedAtDesc)
    }
    fn key(self) -> &'static str {
        match self {
            CustomerSort::Id => "id",
            CustomerSort::IdDesc => "-id",
            CustomerSort::Name => "name",
            CustomerSort::NameDesc => "-name",
            CustomerSort::UpdatedAt => "updated_at",
            CustomerSort::UpdatedAtDesc => "-updated_at",
        }
    }
}

/// Filters for customer lists and exports.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Search: a WeChat id or external id, exactly; a complete mobile number or email address,
    /// exactly; three characters or more, anywhere in the name, mobile or email (any case); one
    /// or two characters, the start of the name (see `search_condition`).
    pub q: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Owned by this user.
    pub owner_id: Option<i64>,
    /// In this city.
    pub city: Option<String>,
    /// `person` or `organisation`.
    pub kind: Option<String>,
    /// Home unit (that unit only, not its subtree).
    pub home_unit_id: Option<i64>,
    /// Whose scope (crate::access) the customers must be in; `None`: every customer (the
    /// command line and internal jobs). Every list for a caller sets it.
    pub scope: Option<crate::access::CustomerScope>,
}

pub use crate::page::Page;

/// Position after the last row of a page: the sort key, its value and the id.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: String,
    v: Option<String>,
    i: i64,
}

fn encode_cursor(c: &Cursor) -> String {
    crate::page::encode_cursor(c)
}

fn decode_cursor(s: &str, sort: CustomerSort) -> Result<Cursor> {
    let c: Cursor = crate::page::decode_cursor(s)?;
    if c.s != sort.key() {
        return Err(StoreError::invalid("cursor", "the cursor belongs to a different sort order"));
    }
    Ok(c)
}

/// Checked, normalised values of a customer's own columns.
struct Fields {
    external_id: Option<String>,
    kind: String,
    name: String,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    gender: Option<String>,
    birthday: Option<NaiveDate>,
    city: Option<String>,
    owner_id: Option<i64>,
    referrer_id: Option<i64>,
    home_unit_id: Option<i64>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn check<T>(field: &str, r: std::result::Result<T, String>) -> Result<T> {
    r.map_err(|m| StoreError::invalid(field, m))
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(StoreError::invalid("name", "name must not be empty"));
    }
    if n.chars().count() > 200 {
        return Err(StoreError::invalid("name", "name is longer than 200 characters"));
    }
    Ok(n.to_owned())
}

fn check_tags(tags: &[String]) -> Result<Vec<String>> {
    // The count first: 100,000 tags are refused before they are trimmed and sorted.
    if tags.len() > 10 * values::MAX_TAGS {
        return Err(StoreError::invalid("tags", format!("at most {} tags per customer ({} given)", values::MAX_TAGS, tags.len())));
    }
    let mut out: Vec<String> = tags.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    out.sort();
    out.dedup();
    values::check_tags(&out).map_err(|m| StoreError::invalid("tags", m))?;
    Ok(out)
}

fn check_consents(c: &BTreeMap<String, bool>) -> Result<()> {
    for ch in c.keys() {
        if !values::CONSENT_CHANNELS.contains(&ch.as_str()) {
            return Err(StoreError::invalid(
                "consents",
                format!("unknown channel {ch:?} (one of {})", values::CONSENT_CHANNELS.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_attributes(v: &serde_json::Value) -> Result<()> {
    let Some(map) = v.as_object() else {
        return Err(StoreError::invalid("attributes", "attributes must be a JSON object"));
    };
    values::check_attributes(map).map_err(|m| StoreError::invalid("attributes", m))
}

fn opt_str<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

/// Masks a mobile or email for roles that do not need to see it ("138****8000", "l***@qq.com").
pub fn mask(value: &str) -> String {
    if let Some((local, domain)) = value.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 7 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else {
        "****".into()
    }
}

impl Store {
    /// Creates a customer with its tags and consents, in one transaction.
    pub async fn create_customer(&self, actor: &Actor, input: NewCustomer) -> Result<Customer> {
        let f = Fields {
            external_id: non_empty(input.external_id),
            kind: match input.kind.as_deref() {
                Some(k) => check("kind", values::parse_kind(k))?.to_owned(),
                None => "person".into(),
            },
            name: check_name(&input.name)?,
            mobile: non_empty(input.mobile).map(|m| check("mobile", values::parse_mobile(&m))).transpose()?,
            email: non_empty(input.email).map(|m| check("email", values::parse_email(&m))).transpose()?,
            wechat_id: non_empty(input.wechat_id),
            gender: non_empty(input.gender).map(|g| check("gender", values::parse_gender(&g)).map(str::to_owned)).transpose()?,
            birthday: input.birthday,
            city: non_empty(input.city),
            owner_id: input.owner_id,
            referrer_id: input.referrer_id,
            home_unit_id: input.home_unit_id,
        };
        let attributes = input.attributes.unwrap_or_else(|| serde_json::json!({}));
        check_attributes(&attributes)?;
        let tags = check_tags(&input.tags)?;
        check_consents(&input.consents)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        check_referrer(&mut tx, f.referrer_id).await?;
        crate::access::units::check_unit(&mut tx, f.home_unit_id, "home_unit_id").await?;
        let id = insert_customer(&mut tx, &f, attributes, now).await?;
        set_customer_key(&mut tx, id, None, f.external_id.as_deref()).await?;
        set_tags(&mut tx, id, &tags).await?;
        for (channel, granted) in &input.consents {
            upsert_consent(&mut tx, id, channel, *granted, now, "api").await?;
        }
        record_change(&mut tx, id, now, &actor.key, "created", None, Some(f.name.clone())).await?;
        audit::record(&mut tx, now, &actor.key, "create", "customer", Some(id.to_string()), None).await?;
        crate::events::append(&mut tx, id, "customer.created", None, serde_json::json!({"by": actor.key}), now).await?;
        tx.commit().await?;
        self.customer(id).await
    }

    /// One customer's profile (404 when missing or deleted).
    pub async fn customer(&self, id: i64) -> Result<Customer> {
        read_profile(&mut self.db.read_conn().await?, id).await
    }

    /// What a customer's 360 shows, read on one connection ([`crate::db::ReadConn`]): the
    /// profile (404 when missing or deleted), completed-order totals, the people, the `orders`
    /// latest orders with their lines and the latest scores.
    pub async fn customer_360(&self, id: i64, orders: i64) -> Result<Profile360> {
        let mut c = self.db.read_conn().await?;
        let customer = read_profile(&mut c, id).await?;
        let stats = read_order_stats(&mut c, id).await?;
        let contacts = crate::contacts::read_contacts(&mut c, id).await?;
        let recent_orders = crate::orders::read_customer_orders(&mut c, id, None, orders).await?.items;
        let scores = crate::analytics::read_scores(&mut c, id).await?;
        Ok(Profile360 { customer, stats, contacts, recent_orders, scores })
    }

    /// The owner of a live customer (None when unowned); NotFound when missing or deleted.
    pub async fn customer_owner(&self, id: i64) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            self.db.reader().fetch_optional(query("SELECT owner_id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(id)).await?;
        row.map(|r| r.0).ok_or(StoreError::NotFound("customer"))
    }

    /// Completed-order totals of one customer.
    pub async fn order_stats(&self, customer_id: i64) -> Result<OrderStats> {
        read_order_stats(&mut self.db.read_conn().await?, customer_id).await
    }

    /// The field history of a customer, newest first.
    pub async fn customer_changes(&self, customer_id: i64, limit: i64) -> Result<Vec<Change>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, changed_at, actor, field, old_value, new_value FROM customer_changes \
                     WHERE customer_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(customer_id)
                .bind(limit),
            )
            .await
    }

    /// Applies a patch; every changed field is written to the history with old and new value.
    /// Returns the updated profile. A patch that changes nothing writes nothing.
    pub async fn update_customer(&self, actor: &Actor, id: i64, patch: CustomerPatch) -> Result<Customer> {
        // Read-modify-write under the customer's row lock: two concurrent patches (of different
        // attributes, say) then apply one after the other, each on the other's result, and the
        // history's old values chain. The profile is read in the transaction once the lock is
        // held (on PostgreSQL a new statement sees what the previous holder committed; on SQLite
        // a read through the pool could wait for a connection that writers queued for the lock
        // all hold).
        let mut tx = self.db.begin().await?;
        let cur = locked_profile(&mut tx, id).await?;
        let now = self.now();
        let mut f = Fields {
            external_id: cur.external_id.clone(),
            kind: cur.kind.clone(),
            name: cur.name.clone(),
            mobile: cur.mobile.clone(),
            email: cur.email.clone(),
            wechat_id: cur.wechat_id.clone(),
            gender: cur.gender.clone(),
            birthday: cur.birthday,
            city: cur.city.clone(),
            owner_id: cur.owner.as_ref().map(|r| r.id),
            referrer_id: cur.referrer.as_ref().map(|r| r.id),
            home_unit_id: cur.home_unit_id,
        };
        if let Some(v) = patch.external_id {
            f.external_id = non_empty(v);
        }
        if let Some(v) = patch.kind {
            f.kind = check("kind", values::parse_kind(&v))?.to_owned();
        }
        if let Some(v) = patch.name {
            f.name = check_name(&v)?;
        }
        if let Some(v) = patch.mobile {
            f.mobile = non_empty(v).map(|m| check("mobile", values::parse_mobile(&m))).transpose()?;
        }
        if let Some(v) = patch.email {
            f.email = non_empty(v).map(|m| check("email", values::parse_email(&m))).transpose()?;
        }
        if let Some(v) = patch.wechat_id {
            f.wechat_id = non_empty(v);
        }
        if let Some(v) = patch.gender {
            f.gender = non_empty(v).map(|g| check("gender", values::parse_gender(&g)).map(str::to_owned)).transpose()?;
        }
        if let Some(v) = patch.birthday {
            f.birthday = v;
        }
        if let Some(v) = patch.city {
            f.city = non_empty(v);
        }
        if let Some(v) = patch.owner_id {
            f.owner_id = v;
        }
        if let Some(v) = patch.referrer_id {
            if v == Some(id) {
                return Err(StoreError::invalid("referrer_id", "a customer cannot refer themselves"));
            }
            f.referrer_id = v;
        }
        if let Some(v) = patch.home_unit_id {
            f.home_unit_id = v;
        }
        let mut attributes = cur.attributes.clone();
        if let Some(set) = &patch.attributes {
            if let Some(obj) = attributes.as_object_mut() {
                for (k, v) in set {
                    if v.is_null() {
                        obj.remove(k);
                    } else {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if patch.attributes.is_some() {
            // The patch's attributes with those the customer has: the whole within its caps.
            check_attributes(&attributes)?;
        }
        let tags = patch.tags.as_deref().map(check_tags).transpose()?;
        if let Some(c) = &patch.consents {
            check_consents(c)?;
        }
        // Issue 19 §2: the customer's own contact cadence (null: the tier's policy).
        let (cur_cadence,): (Option<i64>,) =
            tx.fetch_one(query("SELECT contact_cadence_days FROM customers WHERE id = $1").bind(id)).await?;
        let new_cadence = match patch.contact_cadence_days {
            Some(Some(d)) if !(1..=3650).contains(&d) => {
                return Err(StoreError::invalid("contact_cadence_days", "must be 1 to 3650 days, or null"))
            }
            Some(v) => v,
            None => cur_cadence,
        };

        let mut changes: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        let mut diff = |field: &str, old: Option<String>, new: Option<String>| {
            if old != new {
                changes.push((field.to_owned(), old, new));
            }
        };
        diff("external_id", cur.external_id.clone(), f.external_id.clone());
        diff("kind", Some(cur.kind.clone()), Some(f.kind.clone()));
        diff("name", Some(cur.name.clone()), Some(f.name.clone()));
        diff("mobile", cur.mobile.clone(), f.mobile.clone());
        diff("email", cur.email.clone(), f.email.clone());
        diff("wechat_id", cur.wechat_id.clone(), f.wechat_id.clone());
        diff("gender", cur.gender.clone(), f.gender.clone());
        diff("birthday", opt_str(&cur.birthday), opt_str(&f.birthday));
        diff("city", cur.city.clone(), f.city.clone());
        diff("owner_id", opt_str(&cur.owner.as_ref().map(|r| r.id)), opt_str(&f.owner_id));
        diff("referrer_id", opt_str(&cur.referrer.as_ref().map(|r| r.id)), opt_str(&f.referrer_id));
        diff("home_unit_id", opt_str(&cur.home_unit_id), opt_str(&f.home_unit_id));
        diff("contact_cadence_days", opt_str(&cur_cadence), opt_str(&new_cadence));
        if let (Some(old), Some(new)) = (cur.attributes.as_object(), attributes.as_object()) {
            let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for k in keys {
                let s = |v: Option<&serde_json::Value>| v.map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                diff(&format!("attr.{k}"), s(old.get(k)), s(new.get(k)));
            }
        }
        if let Some(t) = &tags {
            diff("tags", Some(cur.tags.join(";")), Some(t.join(";")));
        }
        if let Some(c) = &patch.consents {
            for (channel, granted) in c {
                let old = cur.consents.iter().find(|x| &x.channel == channel).map(|x| x.granted.to_string());
                diff(&format!("consent.{channel}"), old, Some(granted.to_string()));
            }
        }
        if changes.is_empty() {
            tx.rollback().await?;
            return Ok(cur);
        }

        if f.referrer_id != cur.referrer.as_ref().map(|r| r.id) {
            check_referrer(&mut tx, f.referrer_id).await?;
        }
        if f.home_unit_id != cur.home_unit_id {
            crate::access::units::check_unit(&mut tx, f.home_unit_id, "home_unit_id").await?;
        }
        if f.external_id != cur.external_id {
            set_customer_key(&mut tx, id, cur.external_id.as_deref(), f.external_id.as_deref()).await?;
        }
        // updated_at moves on any change, so the row is always rewritten.
        {
            tx.execute(
                query(
                    "UPDATE customers SET external_id = $1, kind = $2, name = $3, mobile = $4, email = $5, wechat_id = $6, \
                     gender = $7, birthday = $8, city = $9, owner_id = $10, referrer_id = $11, attributes = $12, updated_at = $13, \
                     home_unit_id = $15 WHERE id = $14",
                )
                .bind(f.external_id.clone())
                .bind(f.kind.clone())
                .bind(f.name.clone())
                .bind(f.mobile.clone())
                .bind(f.email.clone())
                .bind(f.wechat_id.clone())
                .bind(f.gender.clone())
                .bind(f.birthday)
                .bind(f.city.clone())
                .bind(f.owner_id)
                .bind(f.referrer_id)
                .bind(attributes)
                .bind(now)
                .bind(id)
                .bind(f.home_unit_id),
            )
            .await?;
        }
        if new_cadence != cur_cadence {
            tx.execute(query("UPDATE customers SET contact_cadence_days = $1 WHERE id = $2").bind(new_cadence).bind(id)).await?;
        }
        if f.referrer_id.is_some() && f.referrer_id != cur.referrer.as_ref().map(|r| r.id) {
            // A referrer named after the first order: the referral is decided on that order.
            crate::loyalty::referrals::queue(&mut tx, id).await?;
        }
        if let Some(t) = &tags {
            set_tags(&mut tx, id, t).await?;
        }
        if let Some(c) = &patch.consents {
            for (channel, granted) in c {
                upsert_consent(&mut tx, id, channel, *granted, now, "api").await?;
            }
        }
        let fields: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        let detail = fields.join(",");
        for (field, old, new) in changes {
            record_change(&mut tx, id, now, &actor.key, &field, old, new).await?;
        }
        audit::record(&mut tx, now, &actor.key, "update", "customer", Some(id.to_string()), Some(detail.clone())).await?;
        // The names of the fields, never their values: the event log feeds webhooks, and a
        // receiver that needs the new values reads the customer through the API.
        let mut changed: Vec<&str> = detail.split(',').filter(|f| !f.is_empty()).collect();
        if tags.is_some() && !changed.contains(&"tags") {
            changed.push("tags");
        }
        if patch.consents.as_ref().is_some_and(|c| !c.is_empty()) && !changed.contains(&"consents") {
            changed.push("consents");
        }
        if !changed.is_empty() {
            let payload = serde_json::json!({"fields": changed, "by": actor.key});
            crate::events::append(&mut tx, id, "customer.updated", None, payload, now).await?;
        }
        tx.commit().await?;
        self.customer(id).await
    }

    /// Soft-deletes a customer: hidden from lists and reads, every record kept.
    pub async fn delete_customer(&self, actor: &Actor, id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(query("UPDATE customers SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL").bind(now).bind(id))
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        record_change(&mut tx, id, now, &actor.key, "deleted", None, Some(now.to_rfc3339())).await?;
        audit::record(&mut tx, now, &actor.key, "delete", "customer", Some(id.to_string()), None).await?;
        crate::events::append(&mut tx, id, "customer.deleted", None, serde_json::json!({"by": actor.key}), now).await?;
        tx.commit().await
    }

    /// A page of customers matching `filter`, in `sort` order, after `cursor`.
    pub async fn list_customers(
        &self,
        filter: &CustomerFilter,
        sort: CustomerSort,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<CustomerListItem>> {
        let limit = limit.clamp(1, 1000);
        // Order totals from the summaries kept current on every order write: aggregating the
        // orders here made every page read all of them (1.2 s a page at 1 M orders on SQLite).
        let engine = self.db.engine();
        let mut q = filtered_customers(
            engine,
            "SELECT c.id, c.external_id, c.kind, c.name, c.mobile, c.email, c.city, c.owner_id, u.name AS owner_name, \
             COALESCE(s.order_count, 0) AS order_count, COALESCE(s.spend_cents, 0) AS spend_cents, s.last_ordered_at AS last_order_at, \
             c.created_at, c.updated_at \
             FROM customers c LEFT JOIN users u ON u.id = c.owner_id \
             LEFT JOIN customer_summaries s ON s.customer_id = c.id",
            filter,
        );
        let col = sort.column(engine);
        let desc = sort.descending();
        let cmp = if desc { "<" } else { ">" };
        let mut sql = q.0;
        if let Some(c) = cursor {
            let c = decode_cursor(c, sort)?;
            let n = q.1.arg_count();
            match sort {
                CustomerSort::Id | CustomerSort::IdDesc => {
                    sql.push_str(&format!(" AND c.id {cmp} ${}", n + 1));
                    q.1.push(c.i);
                }
                CustomerSort::Name | CustomerSort::NameDesc => {
                    sql.push_str(&format!(" AND ({col}, c.id) {cmp} (${}, ${})", n + 1, n + 2));
                    q.1.push(c.v.unwrap_or_default());
                    q.1.push(c.i);
                }
                CustomerSort::UpdatedAt | CustomerSort::UpdatedAtDesc => {
                    let t =
                        c.v.as_deref()
                            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                            .ok_or_else(|| StoreError::invalid("cursor", "invalid cursor"))?
                            .with_timezone(&Utc);
                    sql.push_str(&format!(" AND (c.updated_at, c.id) {cmp} (${}, ${})", n + 1, n + 2));
                    q.1.push(t);
                    q.1.push(c.i);
                }
            }
        }
        let dir = if desc { "DESC" } else { "ASC" };
        if col == "c.id" && filter.q.as_deref().map(str::trim).is_some_and(by_part_of_name) {
            // The matches of part of a name, found through the trigram or the name index, then
            // sorted. PostgreSQL cannot estimate how many names contain a text (`%王浩文%`: 9,600
            // guessed, 22 found at 1 M) or start with two characters (`谢涵`: 9,400 guessed, 107
            // found), and on a guess of thousands it walks the id index for a page's worth, which
            // for a rare name is most customers: 0.47 s and 0.13 s alone, up to 2 s under load,
            // against 11 ms and 4 ms; the commonest three characters of an email (`com`, most
            // customers) cost 0.25 s this way. One character (a surname) keeps the walk: a page
            // of 李 comes within a few thousand rows.
            sql.push_str(&format!(" ORDER BY {} {dir}", engine.sort_without_index("c.id")));
        } else if col == "c.id" {
            sql.push_str(&format!(" ORDER BY c.id {dir}"));
        } else {
            sql.push_str(&format!(" ORDER BY {col} {dir}, c.id {dir}"));
        }
        sql.push_str(&format!(" LIMIT {}", limit + 1));
        let mut query = searched(query(sql), filter);
        for a in rebind(q.1) {
            query.push(a);
        }
        let mut items: Vec<CustomerListItem> = self.db.reader().fetch_all(query).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| {
                let v = match sort {
                    CustomerSort::Id | CustomerSort::IdDesc => None,
                    CustomerSort::Name | CustomerSort::NameDesc => Some(last.name.clone()),
                    CustomerSort::UpdatedAt | CustomerSort::UpdatedAtDesc => Some(last.updated_at.to_rfc3339()),
                };
                encode_cursor(&Cursor { s: sort.key().into(), v, i: last.id })
            })
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Counts customers matching `filter`.
    pub async fn count_customers(&self, filter: &CustomerFilter) -> Result<i64> {
        let (sql, q) = filtered_customers(self.db.engine(), "SELECT COUNT(*) FROM customers c", filter);
        let mut query = searched(query(sql), filter);
        for a in rebind(q) {
            query.push(a);
        }
        let (n,): (i64,) = self.db.reader().fetch_one(query).await?;
        Ok(n)
    }

    /// Distinct cities and tags on file (for filter menus).
    pub async fn customer_facets(&self) -> Result<(Vec<String>, Vec<String>)> {
        let cities: Vec<(String,)> = self
            .db
            .reader()
            // From the city index alone (a city whose customers were all deleted may stay listed
            // and finds nobody; checking each row for deletion read the whole table).
            .fetch_all(query("SELECT DISTINCT city FROM customers WHERE city IS NOT NULL ORDER BY city LIMIT 500"))
            .await?;
        let tags: Vec<(String,)> =
            self.db.reader().fetch_all(query("SELECT DISTINCT tag FROM customer_tags ORDER BY tag LIMIT 500")).await?;
        Ok((cities.into_iter().map(|c| c.0).collect(), tags.into_iter().map(|t| t.0).collect()))
    }
}

/// Appends the WHERE clause for `filter` to `select`; returns SQL and the bound arguments.
fn filtered_customers(engine: Engine, select: &str, filter: &CustomerFilter) -> (String, Query) {
    let mut sql = format!("{select} WHERE c.deleted_at IS NULL");
    let mut q = query("");
    let next = |q: &mut Query, a: crate::db::Arg| {
        q.push(a);
        q.arg_count()
    };
    if let Some(text) = filter.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let condition = search_condition(engine, text, &mut q);
        sql.push_str(&format!(" AND {condition}"));
    }
    if let Some(tag) = &filter.tag {
        let i = next(&mut q, tag.clone().into());
        sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM customer_tags t WHERE t.customer_id = c.id AND t.tag = ${i})"));
    }
    if let Some(owner) = filter.owner_id {
        let i = next(&mut q, owner.into());
        sql.push_str(&format!(" AND c.owner_id = ${i}"));
    }
    if let Some(city) = &filter.city {
        let i = next(&mut q, city.clone().into());
        sql.push_str(&format!(" AND c.city = ${i}"));
    }
    if let Some(kind) = &filter.kind {
        let i = next(&mut q, kind.clone().into());
        sql.push_str(&format!(" AND c.kind = ${i}"));
    }
    if let Some(unit) = filter.home_unit_id {
        let i = next(&mut q, unit.into());
        sql.push_str(&format!(" AND c.home_unit_id = ${i}"));
    }
    if let Some(scope) = filter.scope {
        sql.push_str(&format!(" AND {}", scope.sql("c")));
    }
    (sql, q)
}

/// The condition of the list's free-text search `text` (trimmed, not empty), each branch
/// answered by an index (issue 15 §2; a `LIKE '%…%'` over every customer took 0.6 s a page at
/// 1 M customers):
/// - the WeChat id or external id equal to it, always;
/// - a complete mobile number (as the store normalises one: `+86 138-0013-8000` too): that
///   mobile, exactly;
/// - a complete email address: that address, exactly (emails are stored in lower case);
/// - otherwise, three characters or more: a substring of the name, mobile or email, in any
///   case ([`Engine::customer_substring`], a trigram index);
/// - one or two characters (a surname, a short name): names starting with them, as typed (a
///   trigram index cannot look up fewer than three).
fn search_condition(engine: Engine, text: &str, q: &mut Query) -> String {
    let next = |q: &mut Query, a: crate::db::Arg| {
        q.push(a);
        q.arg_count()
    };
    let exact = next(q, text.to_owned().into());
    let mut any = vec![format!("c.wechat_id = ${exact}"), format!("c.external_id = ${exact}")];
    if let Ok(mobile) = values::parse_mobile(text) {
        let i = next(q, mobile.into());
        any.push(format!("c.mobile = ${i}"));
    } else if let Some(email) = text.contains('@').then(|| values::parse_email(text).ok()).flatten() {
        let i = next(q, email.into());
        any.push(format!("c.email = ${i}"));
    } else if text.chars().count() >= 3 {
        let (condition, arg) = engine.customer_substring("c", text, q.arg_count() + 1);
        q.push(arg);
        any.push(condition);
    } else {
        let from = next(q, text.to_owned().into());
        let to = next(q, format!("{text}\u{10FFFF}").into());
        let name = engine.code_point_order("c.name");
        // Two characters (a short name, 冯怡): `deleted_at IS NULL` again inside the arm, so that
        // SQLite may take the partial name index for it (it does for one arm of an OR only when
        // the arm implies the index's condition); without it a rare name scanned every customer
        // in id order, 110 ms at 1 M. One character (a surname, 李): left to the scan in id
        // order, which meets a page of a common surname within a few thousand rows, where the
        // index would gather and sort all of its tens of thousands (280 ms).
        let live = if text.chars().count() == 2 { "c.deleted_at IS NULL AND " } else { "" };
        any.push(format!("({live}{name} >= ${from} AND {name} < ${to})"));
    }
    format!("({})", any.join(" OR "))
}

/// Whether the search `text` (trimmed) is looked up by part of a name ([`search_condition`]):
/// two characters or more (a name prefix, or from three a substring of names, mobiles and
/// emails), not a complete mobile or email address.
fn by_part_of_name(text: &str) -> bool {
    text.chars().count() >= 2 && values::parse_mobile(text).is_err() && !(text.contains('@') && values::parse_email(text).is_ok())
}

/// A list statement with a free-text search is planned for its text at every call (a rare name
/// and a common surname want different plans; see [`Query::planned_per_call`]); the other
/// filters are served by one plan whatever their values (an index starting with the column,
/// then the id), which is worth keeping prepared: planning each page of a city cost 28% of the
/// list's throughput on PostgreSQL.
fn searched(q: Query, filter: &CustomerFilter) -> Query {
    if filter.q.as_deref().is_some_and(|t| !t.trim().is_empty()) {
        q.planned_per_call()
    } else {
        q
    }
}

fn rebind(q: Query) -> Vec<crate::db::Arg> {
    q.into_args()
}

async fn insert_customer(tx: &mut Tx, f: &Fields, attributes: serde_json::Value, now: DateTime<Utc>) -> Result<i64> {
    let (id,): (i64,) = tx
        .fetch_one(
            query(
                "INSERT INTO customers (external_id, kind, name, mobile, email, wechat_id, gender, birthday, city, attributes, \
                 owner_id, referrer_id, created_at, updated_at, home_unit_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING id",
            )
            .bind(f.external_id.clone())
            .bind(f.kind.clone())
            .bind(f.name.clone())
            .bind(f.mobile.clone())
            .bind(f.email.clone())
            .bind(f.wechat_id.clone())
            .bind(f.gender.clone())
            .bind(f.birthday)
            .bind(f.city.clone())
            .bind(attributes)
            .bind(f.owner_id)
            .bind(f.referrer_id)
            .bind(now)
            .bind(f.home_unit_id),
        )
        .await?;
    Ok(id)
}

/// The three reads of a profile: the row (with the owner's name), tags, consents. The
/// referrer's name is a read of its own (by its id).
fn profile_queries(id: i64) -> [Query; 3] {
    [
        query(format!("{CUSTOMER_SELECT} WHERE c.id = $1 AND c.deleted_at IS NULL")).bind(id),
        query("SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag").bind(id),
        query("SELECT channel, granted, recorded_at, source FROM customer_consents WHERE customer_id = $1 ORDER BY channel").bind(id),
    ]
}

/// A profile from the results of [`profile_queries`].
fn assemble_profile(row: CustomerRow, referrer_name: Option<String>, tags: Vec<(String,)>, consents: Vec<Consent>) -> Customer {
    Customer {
        id: row.id,
        external_id: row.external_id,
        kind: row.kind,
        name: row.name,
        mobile: row.mobile,
        email: row.email,
        wechat_id: row.wechat_id,
        gender: row.gender,
        birthday: row.birthday,
        city: row.city,
        attributes: row.attributes.0,
        tags: tags.into_iter().map(|t| t.0).collect(),
        consents,
        owner: row.owner_id.map(|id| Ref { id, name: row.owner_name.unwrap_or_default() }),
        referrer: row.referrer_id.map(|id| Ref { id, name: referrer_name.unwrap_or_default() }),
        home_unit_id: row.home_unit_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A live customer's profile (NotFound when missing or deleted), read on `c`.
async fn read_profile(c: &mut ReadConn, id: i64) -> Result<Customer> {
    let [row, tags, consents] = profile_queries(id);
    let row: CustomerRow = c.fetch_optional(row).await?.ok_or(StoreError::NotFound("customer"))?;
    let referrer_name = match row.referrer_id {
        Some(r) => c.fetch_optional::<(String,)>(query("SELECT name FROM customers WHERE id = $1").bind(r)).await?.map(|n| n.0),
        None => None,
    };
    Ok(assemble_profile(row, referrer_name, c.fetch_all(tags).await?, c.fetch_all(consents).await?))
}

/// Completed-order totals of one customer, read on `c`.
async fn read_order_stats(c: &mut ReadConn, customer_id: i64) -> Result<OrderStats> {
    // The counts, spend and last order are the customer's summary, kept current with every
    // order write and the same figures segments and the analysis read. Aggregating the orders
    // here instead read every one of them on each 360: 348 requests/s for customers with 5,000
    // orders against 6,600 for customers with ten. The first order is the first completed one
    // along the (customer, time) index, which usually stops at the first entry.
    let Some(s) = crate::analytics::read_summary(c, customer_id).await? else { return Ok(OrderStats::default()) };
    let first: Option<(DateTime<Utc>,)> = c
        .fetch_optional(
            query(
                "SELECT ordered_at FROM orders WHERE customer_id = $1 AND status = 'completed' AND ordered_day IS NOT NULL \
                 ORDER BY ordered_at LIMIT 1",
            )
            .bind(customer_id),
        )
        .await?;
    Ok(OrderStats {
        order_count: s.order_count,
        spend_cents: s.spend_cents,
        first_order_at: first.map(|f| f.0),
        last_order_at: s.last_ordered_at,
    })
}

/// What a customer's 360 shows ([`Store::customer_360`]).
#[derive(Debug, Clone)]
pub struct Profile360 {
    /// The profile.
    pub customer: Customer,
    /// Completed-order totals.
    pub stats: OrderStats,
    /// The people (of an organisation).
    pub contacts: Vec<crate::contacts::Contact>,
    /// The latest orders, newest first, with their lines.
    pub recent_orders: Vec<crate::orders::Order>,
    /// The latest analysis run's scores (none before the first).
    pub scores: Option<crate::analytics::ScoreRow>,
}

/// A live customer's profile read in `tx`, after locking the row (see [`lock_customers`]).
/// NotFound when missing or deleted.
async fn locked_profile(tx: &mut Tx, id: i64) -> Result<Customer> {
    if lock_customers(tx, &[id]).await?.is_some() {
        return Err(StoreError::NotFound("customer"));
    }
    let [row, tags, consents] = profile_queries(id);
    let row: CustomerRow = tx.fetch_optional(row).await?.ok_or(StoreError::NotFound("customer"))?;
    let referrer_name = match row.referrer_id {
        Some(r) => tx.fetch_optional::<(String,)>(query("SELECT name FROM customers WHERE id = $1").bind(r)).await?.map(|n| n.0),
        None => None,
    };
    Ok(assemble_profile(row, referrer_name, tx.fetch_all(tags).await?, tx.fetch_all(consents).await?))
}

/// The live customer an order or interaction names, by patron id or by external id (a merged
/// duplicate's external id resolves to the customer it was merged into). Errors name the field
/// after `prefix` (`orders[2].customer_id`).
pub(crate) async fn resolve_customer(tx: &mut Tx, id: Option<i64>, external_id: Option<&str>, prefix: &str) -> Result<i64> {
    let external_id = external_id.map(str::trim).filter(|s| !s.is_empty());
    match (id, external_id) {
        (Some(id), _) => {
            let found: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(id)).await?;
            Ok(found.ok_or_else(|| StoreError::invalid(format!("{prefix}customer_id"), format!("no customer with id {id}")))?.0)
        }
        (None, Some(ext)) => crate::orders::customer_by_external_id(tx, ext)
            .await?
            .ok_or_else(|| StoreError::invalid(format!("{prefix}customer_external_id"), format!("no customer with external id {ext:?}"))),
        (None, None) => Err(StoreError::invalid(format!("{prefix}customer_id"), "customer_id or customer_external_id is required")),
    }
}

/// Locks live customers' rows until the transaction ends, so that writes which read and then
/// change what belongs to a customer (the orders' summary, an order looked up by external id
/// before it is inserted, attributes, tags) take turns instead of overwriting or refusing each
/// other. Rows are locked one at a time in id order: two batches naming the same customers in
/// another order then wait for each other instead of deadlocking, and each lock is a statement
/// on one customer's row (a single shard where customers are distributed). Returns the first
/// id that is missing or deleted by now, if any.
pub(crate) async fn lock_customers(tx: &mut Tx, ids: &[i64]) -> Result<Option<i64>> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let sql = format!("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL{}", tx.engine().row_lock());
    for id in sorted {
        let found: Option<(i64,)> = tx.fetch_optional(query(sql.clone()).bind(id)).await?;
        if found.is_none() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// A referrer must be a customer on file (deleted or not, as a foreign key would have it): the
/// store checks it, because on Citus the two may live in different shards.
pub(crate) async fn check_referrer(tx: &mut Tx, referrer_id: Option<i64>) -> Result<()> {
    let Some(r) = referrer_id else { return Ok(()) };
    let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1").bind(r)).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Reference(format!("referrer_id: no customer with id {r}"))),
    }
}

/// Moves customer `id`'s entry in the key table that keeps external ids unique from `old` to
/// `new` (either may be absent). A taken id is a conflict on `external_id`.
pub(crate) async fn set_customer_key(tx: &mut Tx, id: i64, old: Option<&str>, new: Option<&str>) -> Result<()> {
    if let Some(old) = old {
        tx.execute(query("DELETE FROM customer_keys WHERE external_id = $1 AND customer_id = $2").bind(old).bind(id)).await?;
    }
    if let Some(new) = new {
        crate::keys::claim(tx, crate::keys::CUSTOMERS, new, id, None).await?;
    }
    Ok(())
}

/// Replaces a customer's tags.
pub(crate) async fn set_tags(tx: &mut Tx, customer_id: i64, tags: &[String]) -> Result<()> {
    tx.execute(query("DELETE FROM customer_tags WHERE customer_id = $1").bind(customer_id)).await?;
    for tag in tags {
        tx.execute(query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)").bind(customer_id).bind(tag)).await?;
    }
    Ok(())
}

/// Records consent on one channel.
pub(crate) async fn upsert_consent(
    tx: &mut Tx,
    customer_id: i64,
    channel: &str,
    granted: bool,
    now: DateTime<Utc>,
    source: &str,
) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO customer_consents (customer_id, channel, granted, recorded_at, source) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id, channel) DO UPDATE SET granted = excluded.granted, recorded_at = excluded.recorded_at, \
             source = excluded.source",
        )
        .bind(customer_id)
        .bind(channel)
        .bind(granted)
        .bind(now)
        .bind(source),
    )
    .await?;
    Ok(())
}

/// Writes one history row.
pub(crate) async fn record_change(
    tx: &mut Tx,
    customer_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    field: &str,
    old: Option<String>,
    new: Option<String>,
) -> Result<()> {
    tx.execute(
        query("INSERT INTO customer_changes (customer_id, changed_at, actor, field, old_value, new_value) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(customer_id)
            .bind(at)
            .bind(actor)
            .bind(field)
            .bind(old)
            .bind(new),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_contacts() {
        assert_eq!(mask("13800138000"), "138****8000");
        assert_eq!(mask("lilei@qq.com"), "l***@qq.com");
        assert_eq!(mask("123"), "****");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { s: "name".into(), v: Some("王伟".into()), i: 7 };
        let enc = encode_cursor(&c);
        let back = decode_cursor(&enc, CustomerSort::Name).unwrap();
        assert_eq!((back.v.as_deref(), back.i), (Some("王伟"), 7));
        assert!(decode_cursor(&enc, CustomerSort::Id).is_err());
        assert!(decode_cursor("zz", CustomerSort::Id).is_err());
        assert!(decode_cursor("abc", CustomerSort::Id).is_err());
    }
}
