//! What a message may say about its customer: the template variables (`name`, `salutation`,
//! `last_purchase`, `favourite_category`, `tier`, `manager_name`, `points`, `unsubscribe_url`),
//! read for one customer, and the polite salutation (王先生 / 李女士).

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::{Result, StoreError};

/// The customer's last completed purchase.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LastPurchase {
    /// Business day of the order (`2026-06-28`).
    pub date: NaiveDate,
    /// Its store, when known.
    pub store: Option<String>,
    /// The product of its first line, when known.
    pub product: Option<String>,
}

/// The variables a template is rendered with, for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PersonalVariables {
    /// The customer's name.
    pub name: String,
    /// 王先生 / 李女士 from the surname and gender; the full name when the gender is unknown.
    pub salutation: String,
    /// The last completed purchase (none when there is none).
    pub last_purchase: Option<LastPurchase>,
    /// The category the customer spent most on.
    pub favourite_category: Option<String>,
    /// ABCD value tier of the latest analysis.
    pub tier: Option<String>,
    /// The account manager's name.
    pub manager_name: Option<String>,
    /// The loyalty balance (none when the customer is not a member).
    pub points: Option<i64>,
    /// The message's unsubscribe link.
    pub unsubscribe_url: String,
}

/// The variables templates may use; anything else is an unknown variable.
pub const VARIABLES: &[&str] =
    &["name", "salutation", "last_purchase", "favourite_category", "tier", "manager_name", "points", "unsubscribe_url"];

/// The variables that make a message personal (all but the unsubscribe link).
pub const PERSONAL_VARIABLES: &[&str] = &["name", "salutation", "last_purchase", "favourite_category", "tier", "manager_name", "points"];

/// Two-character surnames (复姓) common enough to matter in a salutation.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "端木",
    "独孤", "南宫", "西门",
];

/// A polite salutation: the surname and 先生 (male) or 女士 (female) for a Chinese name, Mr/Ms and
/// the last word for a Latin one, and the full name when the gender is unknown or the name is an
/// organisation's.
pub fn salutation(name: &str, gender: Option<&str>) -> String {
    let name = name.trim();
    let title_cn = match gender {
        Some("male") => "先生",
        Some("female") => "女士",
        _ => return name.to_owned(),
    };
    let han = name.chars().next().is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    if han {
        let surname = COMPOUND_SURNAMES.iter().find(|s| name.starts_with(**s) && name.chars().count() > 2).map(|s| (*s).to_owned());
        let surname = surname.unwrap_or_else(|| name.chars().take(1).collect());
        return format!("{surname}{title_cn}");
    }
    let last = name.split_whitespace().last().unwrap_or(name);
    let title = if gender == Some("male") { "Mr" } else { "Ms" };
    format!("{title} {last}")
}

/// Sample variables (the lint renders with them to measure an SMS, and previews fall back on
/// nothing: a preview is always of a real customer).
pub fn sample(unsubscribe_url: &str) -> PersonalVariables {
    PersonalVariables {
        name: "王小明".into(),
        salutation: "王先生".into(),
        last_purchase: Some(LastPurchase {
            date: NaiveDate::from_ymd_opt(2026, 6, 28).unwrap_or_default(),
            store: Some("静安店".into()),
            product: Some("招牌红烧肉".into()),
        }),
        favourite_category: Some("热菜".into()),
        tier: Some("A".into()),
        manager_name: Some("张经理".into()),
        points: Some(1280),
        unsubscribe_url: unsubscribe_url.to_owned(),
    }
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct Who {
    id: i64,
    name: String,
    gender: Option<String>,
    manager_name: Option<String>,
    tier: Option<String>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct Last {
    customer_id: i64,
    id: i64,
    ordered_at: chrono::DateTime<chrono::Utc>,
    store: Option<String>,
}

/// Which of the variables that cost a query of their own a template uses (a sender reads only
/// those: a message that says only `salutation` needs no look at the orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Wanted {
    /// `last_purchase`.
    pub last_purchase: bool,
    /// `favourite_category`.
    pub favourite_category: bool,
    /// `points`.
    pub points: bool,
}

impl Wanted {
    /// Every variable.
    pub const ALL: Wanted = Wanted { last_purchase: true, favourite_category: true, points: true };

    /// What either of two templates uses.
    pub fn or(self, other: Wanted) -> Wanted {
        Wanted {
            last_purchase: self.last_purchase || other.last_purchase,
            favourite_category: self.favourite_category || other.favourite_category,
            points: self.points || other.points,
        }
    }
}

/// Reads a live customer's variables in `tx` (`unsubscribe_url` as given).
pub(crate) async fn read(tx: &mut Tx, customer_id: i64, tz: chrono_tz::Tz, unsubscribe_url: &str) -> Result<PersonalVariables> {
    let mut vars = read_many(tx, &[customer_id], tz, Wanted::ALL).await?;
    let mut v = vars.remove(&customer_id).ok_or(StoreError::NotFound("customer"))?;
    v.unsubscribe_url = unsubscribe_url.to_owned();
    Ok(v)
}

/// Reads the variables of many live customers in `tx`, a handful of statements whatever their
/// number (a sender's batch), those `wanted` does not ask for left empty and `unsubscribe_url`
/// empty (it is the message's, not the customer's). A customer erased or unknown is absent.
pub(crate) async fn read_many(
    tx: &mut Tx,
    customer_ids: &[i64],
    tz: chrono_tz::Tz,
    wanted: Wanted,
) -> Result<HashMap<i64, PersonalVariables>> {
    let mut out = HashMap::with_capacity(customer_ids.len());
    if customer_ids.is_empty() {
        return Ok(out);
    }
    let engine = tx.engine();
    let ids = serde_json::json!(customer_ids);
    let who: Vec<Who> = tx
        .fetch_all(
            query(format!(
                "SELECT c.id, c.name, c.gender, u.name AS manager_name, s.abcd_tier AS tier FROM customers c \
                 LEFT JOIN users u ON u.id = c.owner_id LEFT JOIN customer_scores s ON s.customer_id = c.id \
                 WHERE c.id IN ({}) AND c.deleted_at IS NULL",
                engine.json_ints(1)
            ))
            .bind(ids.clone()),
        )
        .await?;
    for w in who {
        out.insert(
            w.id,
            PersonalVariables {
                salutation: salutation(&w.name, w.gender.as_deref()),
                name: w.name,
                last_purchase: None,
                favourite_category: None,
                tier: w.tier,
                manager_name: w.manager_name,
                points: None,
                unsubscribe_url: String::new(),
            },
        );
    }
    if wanted.last_purchase {
        // Each customer's latest completed order (one window over their orders), then the
        // product of its first line.
        let last: Vec<Last> = tx
            .fetch_all(
                query(format!(
                    "SELECT customer_id, id, ordered_at, store FROM (SELECT o.customer_id, o.id, o.ordered_at, o.store, \
                     ROW_NUMBER() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at DESC, o.id DESC) AS rn \
                     FROM orders o WHERE o.customer_id IN ({}) AND o.status = 'completed') x WHERE rn = 1",
                    engine.json_ints(1)
                ))
                .bind(ids.clone()),
            )
            .await?;
        let order_ids: Vec<i64> = last.iter().map(|l| l.id).collect();
        let mut products: HashMap<(i64, i64), String> = HashMap::new();
        if !order_ids.is_empty() {
            let lines: Vec<(i64, i64, String)> = tx
                .fetch_all(
                    query(format!(
                        "SELECT l.customer_id, l.order_id, p.name FROM order_lines l JOIN products p ON p.id = l.product_id \
                         WHERE l.customer_id IN ({}) AND l.order_id IN ({}) ORDER BY l.customer_id, l.order_id, l.line_no",
                        engine.json_ints(1),
                        engine.json_ints(2)
                    ))
                    .bind(ids.clone())
                    .bind(serde_json::json!(order_ids)),
                )
                .await?;
            for (customer_id, order_id, name) in lines {
                products.entry((customer_id, order_id)).or_insert(name);
            }
        }
        for l in last {
            if let Some(v) = out.get_mut(&l.customer_id) {
                v.last_purchase = Some(LastPurchase {
                    date: l.ordered_at.with_timezone(&tz).date_naive(),
                    store: l.store,
                    product: products.remove(&(l.customer_id, l.id)),
                });
            }
        }
    }
    if wanted.favourite_category {
        // Spend per customer and category; the largest wins, ties to the first name.
        let spend: Vec<(i64, String, i64)> = tx
            .fetch_all(
                query(format!(
                    "SELECT l.customer_id, k.name, {} FROM order_lines l \
                     JOIN orders o ON o.customer_id = l.customer_id AND o.id = l.order_id JOIN categories k ON k.id = l.category_id \
                     WHERE l.customer_id IN ({}) AND o.status = 'completed' GROUP BY l.customer_id, k.name",
                    engine.clamp_bigint(&engine.sum_wide("l.quantity * l.unit_price_cents")),
                    engine.json_ints(1)
                ))
                .bind(ids.clone()),
            )
            .await?;
        let mut best: HashMap<i64, (String, i64)> = HashMap::new();
        for (customer_id, name, cents) in spend {
            let better = match best.get(&customer_id) {
                None => true,
                Some((n, c)) => cents > *c || (cents == *c && name < *n),
            };
            if better {
                best.insert(customer_id, (name, cents));
            }
        }
        for (customer_id, (name, _)) in best {
            if let Some(v) = out.get_mut(&customer_id) {
                v.favourite_category = Some(name);
            }
        }
    }
    if wanted.points {
        // A member's balance: the lots' remaining points less the debt (what the ledger sums
        // to); none for a customer who is not a member or whose membership is closed.
        let balances: Vec<(i64, i64)> = tx
            .fetch_all(
                query(format!(
                    "SELECT m.customer_id, {} - m.debt FROM loyalty_members m LEFT JOIN loyalty_lots l ON l.customer_id = m.customer_id \
                     WHERE m.customer_id IN ({}) AND m.status <> 'closed' GROUP BY m.customer_id, m.debt",
                    engine.clamp_bigint(&engine.sum_wide("l.remaining")),
                    engine.json_ints(1)
                ))
                .bind(ids),
            )
            .await?;
        for (customer_id, points) in balances {
            if let Some(v) = out.get_mut(&customer_id) {
                v.points = Some(points);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salutations() {
        assert_eq!(salutation("王小明", Some("male")), "王先生");
        assert_eq!(salutation("李雪梅", Some("female")), "李女士");
        assert_eq!(salutation("欧阳娜娜", Some("female")), "欧阳女士");
        assert_eq!(salutation("张伟", Some("unknown")), "张伟");
        assert_eq!(salutation("张伟", None), "张伟");
        assert_eq!(salutation("Anna Smith", Some("female")), "Ms Smith");
    }
}
