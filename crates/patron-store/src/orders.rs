//! Orders with their lines, created one at a time or in batches, idempotent by external id, and
//! the product/category catalogue they refer to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::customers::{lock_customers, resolve_customer};
use crate::db::{query, ReadConn, Tx};
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::users::Actor;
use crate::values;
use crate::{audit, Result, Store, StoreError};

/// An order line.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrderLine {
    /// Position in the order, from 1.
    pub line_no: i64,
    /// Product name.
    pub product: Option<String>,
    /// Category name.
    pub category: Option<String>,
    /// Quantity.
    pub quantity: i64,
    /// List price per unit, minor units.
    pub unit_price_cents: i64,
    /// Bought on promotion.
    pub promo: bool,
}

/// An order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    /// patron's id.
    pub id: i64,
    /// Id in the source system.
    pub external_id: Option<String>,
    /// Customer.
    pub customer_id: i64,
    /// When ordered (UTC).
    pub ordered_at: DateTime<Utc>,
    /// Sales channel.
    pub channel: Option<String>,
    /// Store.
    pub store: Option<String>,
    /// Currency code.
    pub currency: String,
    /// Amount paid, minor units.
    pub total_cents: i64,
    /// Discount granted, minor units.
    pub discount_cents: i64,
    /// `completed`, `cancelled`, `refunded` or `pending`.
    pub status: String,
    /// Lines.
    pub lines: Vec<OrderLine>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct OrderRow {
    id: i64,
    external_id: Option<String>,
    customer_id: i64,
    ordered_at: DateTime<Utc>,
    channel: Option<String>,
    store: Option<String>,
    currency: String,
    total_cents: i64,
    discount_cents: i64,
    status: String,
}

/// A line of a new order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderLine {
    /// Product name (added to the catalogue if new).
    pub product: Option<String>,
    /// Category name (added to the catalogue if new).
    pub category: Option<String>,
    /// Quantity (default 1).
    pub quantity: Option<i64>,
    /// List price per unit, minor units.
    pub unit_price_cents: i64,
    /// Bought on promotion.
    #[serde(default)]
    pub promo: bool,
}

/// A new order. Give the customer by `customer_id` or `customer_external_id`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// Id in the source system; sending the same id again updates that order instead of adding one.
    pub external_id: Option<String>,
    /// patron customer id.
    pub customer_id: Option<i64>,
    /// Customer's external id.
    pub customer_external_id: Option<String>,
    /// When ordered.
    pub ordered_at: DateTime<Utc>,
    /// Sales channel.
    pub channel: Option<String>,
    /// Store.
    pub store: Option<String>,
    /// Currency (default CNY).
    pub currency: Option<String>,
    /// Amount paid, minor units; default: sum of the lines less the discount.
    pub total_cents: Option<i64>,
    /// Discount, minor units (default 0).
    pub discount_cents: Option<i64>,
    /// Status (default completed).
    pub status: Option<String>,
    /// Lines.
    #[serde(default)]
    pub lines: Vec<NewOrderLine>,
}

/// The outcome for one order of a create request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Upserted {
    /// patron's id.
    pub id: i64,
    /// External id, when given.
    pub external_id: Option<String>,
    /// True when added, false when an existing row with the same external id was updated.
    pub created: bool,
}

/// Caches catalogue ids by name for one transaction, adding unknown names. Looked up twice per
/// imported order, so hashed with foldhash rather than SipHash.
#[derive(Default)]
pub(crate) struct Catalog {
    categories: foldhash::HashMap<String, i64>,
    products: foldhash::HashMap<String, i64>,
}

impl Catalog {
    /// The ids of a category and product name already resolved by this catalogue, without a
    /// query; `None` when either name is new (then call [`Catalog::resolve`]).
    pub(crate) fn cached(&self, category: Option<&str>, product: Option<&str>) -> Option<(Option<i64>, Option<i64>)> {
        let category_id = match category {
            Some(c) => Some(*self.categories.get(c)?),
            None => None,
        };
        let product_id = match product {
            Some(p) => Some(*self.products.get(p)?),
            None => None,
        };
        Some((category_id, product_id))
    }

    /// The next catalogue row to add (or find) before [`Catalog::cached`] can answer for these
    /// names: the category first, then the product (which takes the category's id).
    fn next_upsert<'n>(&self, category: Option<&'n str>, product: Option<&'n str>) -> Option<Upsert<'n>> {
        if let Some(c) = category.filter(|c| !self.categories.contains_key(*c)) {
            return Some(Upsert { sql: CATEGORY_UPSERT, name: c, category: None });
        }
        let p = product.filter(|p| !self.products.contains_key(*p))?;
        Some(Upsert { sql: PRODUCT_UPSERT, name: p, category: Some(category.and_then(|c| self.categories.get(c).copied())) })
    }

    /// Keeps the id an [`Upsert`] returned.
    fn learn(&mut self, u: &Upsert<'_>, id: i64) {
        let names = if u.category.is_some() { &mut self.products } else { &mut self.categories };
        names.insert(u.name.to_owned(), id);
    }

    /// The cache's answer once every name is in it.
    fn looked_up(&self, category: Option<&str>, product: Option<&str>) -> Result<(Option<i64>, Option<i64>)> {
        self.cached(category, product).ok_or_else(|| StoreError::Internal("a catalogue name was not added".into()))
    }

    /// Ids for a category and product name (each optional), creating catalogue rows as needed.
    pub(crate) async fn resolve(
        &mut self,
        tx: &mut Tx,
        category: Option<&str>,
        product: Option<&str>,
    ) -> Result<(Option<i64>, Option<i64>)> {
        while let Some(u) = self.next_upsert(category, product) {
            let mut q = query(u.sql).bind(u.name);
            if let Some(category_id) = u.category {
                q = q.bind(category_id);
            }
            let (id,): (i64,) = tx.fetch_one(q).await?;
            self.learn(&u, id);
        }
        self.looked_up(category, product)
    }

    /// [`Catalog::resolve`] through the SQLite C API, on a transaction's connection already
    /// taken for a bulk load.
    pub(crate) fn resolve_raw(
        &mut self,
        raw: &crate::db::SqliteRaw<'_>,
        category: Option<&str>,
        product: Option<&str>,
    ) -> Result<(Option<i64>, Option<i64>)> {
        while let Some(u) = self.next_upsert(category, product) {
            let mut st = raw.prepare(u.sql)?;
            st.text(1, Some(u.name))?;
            if let Some(category_id) = u.category {
                st.int(2, category_id)?;
            }
            if !st.step()? {
                return Err(StoreError::Internal("a catalogue upsert returned no id".into()));
            }
            self.learn(&u, st.column_int(0));
        }
        self.looked_up(category, product)
    }
}

/// A catalogue name to add or find ([`CATEGORY_UPSERT`] or [`PRODUCT_UPSERT`]).
struct Upsert<'n> {
    sql: &'static str,
    name: &'n str,
    /// Products: their category's id (`$2`); `None` for a category.
    category: Option<Option<i64>>,
}

/// Adds a category by name (or finds it), returning its id.
const CATEGORY_UPSERT: &str =
    "INSERT INTO categories (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id";
/// Adds a product by name with its category (or finds it, keeping a category it has), returning
/// its id.
const PRODUCT_UPSERT: &str = "INSERT INTO products (name, category_id) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET category_id = COALESCE(products.category_id, excluded.category_id) RETURNING id";

/// Looks up a live customer's id by external id (or the customer a merged one lives on): in
/// the key table, then the customer itself — two single-shard reads on Citus, where a search of
/// `customers` by external id would visit every shard.
pub(crate) async fn customer_by_external_id(tx: &mut Tx, external_id: &str) -> Result<Option<i64>> {
    let Some((customer_id, _)) = crate::keys::lookup(tx, crate::keys::CUSTOMERS, external_id).await? else { return Ok(None) };
    let row: Option<(i64,)> = tx
        .fetch_optional(
            query(format!(
                "SELECT {} FROM customers WHERE id = $1 AND {}",
                crate::customers::RESOLVED_CUSTOMER_ID,
                crate::customers::RESOLVABLE_CUSTOMER
            ))
            .bind(customer_id),
        )
        .await?;
    Ok(row.map(|r| r.0))
}

fn field_err(prefix: &str, field: &str, message: impl Into<String>) -> StoreError {
    StoreError::invalid(format!("{prefix}{field}"), message)
}

impl Store {
    /// Creates or updates (by external id) a batch of orders in one transaction: all or nothing.
    /// Errors name the field as `orders[i].field`.
    pub async fn create_orders(&self, actor: &Actor, orders: Vec<NewOrder>) -> Result<Vec<Upserted>> {
        if orders.is_empty() {
            return Err(StoreError::invalid("orders", "no orders given"));
        }
        if orders.len() > 10_000 {
            return Err(StoreError::invalid("orders", "at most 10,000 orders per request; use the import for more"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let batch = orders.len() > 1;
        let prefix = |i: usize| if batch { format!("orders[{i}].") } else { String::new() };
        let mut customers = Vec::with_capacity(orders.len());
        for (i, o) in orders.iter().enumerate() {
            values::check_order_time(o.ordered_at, now).map_err(|m| field_err(&prefix(i), "ordered_at", m))?;
        }
        for (i, o) in orders.iter().enumerate() {
            customers.push(resolve_customer(&mut tx, o.customer_id, o.customer_external_id.as_deref(), &prefix(i)).await?);
        }
        // The customers' rows are locked before their orders are looked up and their summaries
        // recomputed: concurrent requests for one customer (a chain's tills, a client's retry of
        // the same order) then take turns, so each sees the others' orders and none is refused.
        if let Some(gone) = lock_customers(&mut tx, &customers).await? {
            let i = customers.iter().position(|&c| c == gone).unwrap_or(0);
            return Err(field_err(&prefix(i), "customer_id", format!("customer {gone} was deleted meanwhile")));
        }
        let mut catalog = Catalog::default();
        // Points are earned and reversed in this transaction, with the orders (issue 13).
        let loyalty = crate::loyalty::program_in(&mut tx).await?;
        let mut out = Vec::with_capacity(orders.len());
        let mut recount = Vec::new();
        for (i, (o, &customer_id)) in orders.into_iter().zip(&customers).enumerate() {
            let payload = serde_json::json!({"status": o.status.as_deref().map_or(Ok("completed"), values::parse_order_status).ok(), "store": o.store.clone(),
                "channel": o.channel.clone(), "ordered_at": o.ordered_at, "external_id": o.external_id.clone()});
            let (done, completed) = upsert_order(&mut tx, &mut catalog, o, customer_id, &prefix(i), self.config.business_tz).await?;
            // A new completed order is added to its customer's summary; a changed order (its
            // status, total or day) has the aggregation recompute the customer's at the end. A
            // new order of another status changes no summary.
            match completed {
                Some(c) if done.created && !recount.contains(&customer_id) => {
                    crate::analytics::add_to_summary(&mut tx, now, customer_id, &c).await?;
                }
                _ if !done.created => recount.push(customer_id),
                _ => {}
            }
            // A new order is a domain event (surveys after an order, journeys, webhooks read it).
            // Bulk imports of history record none: they are the past, not something to act on.
            if done.created {
                crate::events::append(&mut tx, customer_id, "order.created", Some(done.id), payload, now).await?;
            }
            crate::loyalty::earning::sync_order(&mut tx, &loyalty, self.config.business_tz, customer_id, done.id, &actor.key, now).await?;
            out.push(done);
        }
        recount.sort_unstable();
        recount.dedup();
        crate::analytics::refresh_customers(&mut tx, now, &recount).await?;
        customers.sort_unstable();
        customers.dedup();
        crate::access::units::assign_home_units(&mut tx, now, &actor.key, &customers).await?;
        let detail = format!("orders={}", out.len());
        let entity_id = if out.len() == 1 { Some(out[0].id.to_string()) } else { None };
        audit::record(&mut tx, now, &actor.key, "upsert", "order", entity_id, Some(detail)).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One order with its lines.
    pub async fn order(&self, id: i64) -> Result<Order> {
        let mut c = self.db.read_conn().await?;
        let row: Option<OrderRow> = c.fetch_optional(query(format!("{ORDER_SELECT} WHERE id = $1")).bind(id)).await?;
        let row = row.ok_or(StoreError::NotFound("order"))?;
        let mut v = attach_lines(&mut c, vec![row]).await?;
        v.pop().ok_or(StoreError::NotFound("order"))
    }

    /// A customer's orders, newest first.
    pub async fn customer_orders(&self, customer_id: i64, cursor: Option<&str>, limit: i64) -> Result<Page<Order>> {
        read_customer_orders(&mut self.db.read_conn().await?, customer_id, cursor, limit).await
    }
}

/// A customer's orders, newest first, read on `c`.
pub(crate) async fn read_customer_orders(c: &mut ReadConn, customer_id: i64, cursor: Option<&str>, limit: i64) -> Result<Page<Order>> {
    let limit = limit.clamp(1, 500);
    let mut q = query(format!(
        "{ORDER_SELECT} WHERE customer_id = $1 {} ORDER BY ordered_at DESC, id DESC LIMIT $2",
        if cursor.is_some() { "AND (ordered_at, id) < ($3, $4)" } else { "" }
    ))
    .bind(customer_id)
    .bind(limit + 1);
    if let Some(cur) = cursor {
        let (at, id): (DateTime<Utc>, i64) = decode_cursor(cur)?;
        q = q.bind(at).bind(id);
    }
    let mut rows: Vec<OrderRow> = c.fetch_all(q).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&(r.ordered_at, r.id)))
    } else {
        None
    };
    Ok(Page { items: attach_lines(c, rows).await?, next_cursor })
}

/// The orders of `rows` with their lines (one statement per customer), read on `c`.
async fn attach_lines(c: &mut ReadConn, rows: Vec<OrderRow>) -> Result<Vec<Order>> {
    /// order_id, then an [`OrderLine`]'s columns.
    type LineOfOrder = (i64, i64, Option<String>, Option<String>, i64, i64, bool);
    // The lines of one customer's orders in one query: a query per order made the ten latest
    // orders of a 360 ten round trips (each a hop to a worker on Citus).
    let mut customers: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
    customers.sort_unstable();
    customers.dedup();
    let mut lines: std::collections::HashMap<(i64, i64), Vec<OrderLine>> = std::collections::HashMap::new();
    for customer_id in customers {
        let ids: Vec<i64> = rows.iter().filter(|r| r.customer_id == customer_id).map(|r| r.id).collect();
        // The order ids as parameters, one each: PostgreSQL then looks each order's lines up by
        // the key. With the ids in one JSON parameter, its generic plan (after five runs of the
        // prepared statement) read all of the customer's lines and kept the ten orders' by a
        // hash: 4 ms for a customer with 5,000 orders, which made their 360 60 % of others'.
        let in_list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let mut q = query(format!(
            "SELECT l.order_id, l.line_no, p.name AS product, c.name AS category, l.quantity, l.unit_price_cents, l.promo \
             FROM order_lines l LEFT JOIN products p ON p.id = l.product_id LEFT JOIN categories c ON c.id = l.category_id \
             WHERE l.customer_id = $1 AND l.order_id IN ({}) ORDER BY l.order_id, l.line_no",
            in_list.join(", ")
        ))
        .bind(customer_id);
        for id in ids {
            q.push(id);
        }
        let found: Vec<LineOfOrder> = c.fetch_all(q).await?;
        for (order_id, line_no, product, category, quantity, unit_price_cents, promo) in found {
            lines.entry((customer_id, order_id)).or_default().push(OrderLine {
                line_no,
                product,
                category,
                quantity,
                unit_price_cents,
                promo,
            });
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| Order {
            lines: lines.remove(&(r.customer_id, r.id)).unwrap_or_default(),
            id: r.id,
            external_id: r.external_id,
            customer_id: r.customer_id,
            ordered_at: r.ordered_at,
            channel: r.channel,
            store: r.store,
            currency: r.currency,
            total_cents: r.total_cents,
            discount_cents: r.discount_cents,
            status: r.status,
        })
        .collect())
}

const ORDER_SELECT: &str =
    "SELECT id, external_id, customer_id, ordered_at, channel, store, currency, total_cents, discount_cents, status FROM orders";

fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Writes one order of `customer_id` (resolved and locked by the caller, who refreshes the
/// customer's summary). Returns what was written and, for a completed order, the figures its
/// customer's summary counts.
async fn upsert_order(
    tx: &mut Tx,
    catalog: &mut Catalog,
    o: NewOrder,
    customer_id: i64,
    prefix: &str,
    tz: chrono_tz::Tz,
) -> Result<(Upserted, Option<crate::analytics::CompletedOrder>)> {
    let ordered_day = crate::analytics::business_day(o.ordered_at, tz);
    let currency = match o.currency {
        Some(c) => values::parse_currency(&c).map_err(|m| field_err(prefix, "currency", m))?,
        None => "CNY".into(),
    };
    let status = match o.status {
        Some(s) => values::parse_order_status(&s).map_err(|m| field_err(prefix, "status", m))?,
        None => "completed",
    };
    let discount = o.discount_cents.unwrap_or(0);
    if discount < 0 {
        return Err(field_err(prefix, "discount_cents", "must not be negative"));
    }
    let mut lines_total: i64 = 0;
    for (j, l) in o.lines.iter().enumerate() {
        let q = l.quantity.unwrap_or(1);
        if q < 1 {
            return Err(field_err(prefix, &format!("lines[{j}].quantity"), "must be at least 1"));
        }
        if l.unit_price_cents < 0 {
            return Err(field_err(prefix, &format!("lines[{j}].unit_price_cents"), "must not be negative"));
        }
        lines_total = q
            .checked_mul(l.unit_price_cents)
            .and_then(|v| v.checked_add(lines_total))
            .ok_or_else(|| field_err(prefix, &format!("lines[{j}]"), "amount too large"))?;
    }
    let total = match o.total_cents {
        Some(t) => t,
        None if !o.lines.is_empty() => lines_total - discount,
        None => return Err(field_err(prefix, "total_cents", "total_cents is required for an order without lines")),
    };
    if total < 0 {
        return Err(field_err(prefix, "total_cents", "must not be negative (record refunds with status refunded)"));
    }
    // Bounded, as given or as the lines add up, so that no sum of stored orders (a customer's
    // summary, a tier's revenue) can overflow.
    if total > values::MAX_CENTS || discount > values::MAX_CENTS {
        let field = if o.total_cents.is_some() || discount > values::MAX_CENTS { "total_cents" } else { "lines" };
        return Err(field_err(prefix, field, values::too_much_money()));
    }
    let external_id = clean(o.external_id);
    let existing: Option<(i64, i64)> = match &external_id {
        Some(ext) => crate::keys::find(tx, crate::keys::ORDERS, ext, customer_id).await?,
        None => None,
    };
    let (id, created) = match existing {
        Some((owner, id)) => {
            if owner != customer_id {
                return Err(StoreError::Conflict(format!(
                    "{prefix}external_id: order {:?} belongs to another customer",
                    external_id.as_deref().unwrap_or_default()
                )));
            }
            tx.execute(
                query(
                    "UPDATE orders SET ordered_at = $1, channel = $2, store = $3, currency = $4, total_cents = $5, discount_cents = $6, \
                     status = $7, ordered_day = $10 WHERE customer_id = $8 AND id = $9",
                )
                .bind(o.ordered_at)
                .bind(clean(o.channel))
                .bind(clean(o.store))
                .bind(currency)
                .bind(total)
                .bind(discount)
                .bind(status)
                .bind(customer_id)
                .bind(id)
                .bind(ordered_day),
            )
            .await?;
            tx.execute(query("DELETE FROM order_lines WHERE customer_id = $1 AND order_id = $2").bind(customer_id).bind(id)).await?;
            (id, false)
        }
        None => {
            let (id,): (i64,) = tx
                .fetch_one(
                    query(
                        "INSERT INTO orders (customer_id, external_id, ordered_at, channel, store, currency, total_cents, discount_cents, status, ordered_day) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(customer_id)
                    .bind(external_id.clone())
                    .bind(o.ordered_at)
                    .bind(clean(o.channel))
                    .bind(clean(o.store))
                    .bind(currency)
                    .bind(total)
                    .bind(discount)
                    .bind(status)
                    .bind(ordered_day),
                )
                .await?;
            if let Some(ext) = &external_id {
                crate::keys::claim(tx, crate::keys::ORDERS, ext, customer_id, Some(id)).await?;
            }
            (id, true)
        }
    };
    for (j, l) in o.lines.into_iter().enumerate() {
        let (category_id, product_id) = catalog.resolve(tx, clean(l.category).as_deref(), clean(l.product).as_deref()).await?;
        tx.execute(
            query(
                "INSERT INTO order_lines (customer_id, order_id, line_no, product_id, category_id, quantity, unit_price_cents, promo) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(customer_id)
            .bind(id)
            .bind(j as i64 + 1)
            .bind(product_id)
            .bind(category_id)
            .bind(l.quantity.unwrap_or(1))
            .bind(l.unit_price_cents)
            .bind(l.promo),
        )
        .await?;
    }
    let completed = (status == "completed").then_some(crate::analytics::CompletedOrder {
        id,
        day: i64::from(ordered_day),
        cents: total,
        at: o.ordered_at,
    });
    Ok((Upserted { id, external_id, created }, completed))
}
