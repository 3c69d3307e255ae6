//! What a message may say about its customer: the template variables (`name`, `salutation`,
//! `last_purchase`, `favourite_category`, `tier`, `manager_name`, `points`, `unsubscribe_url`),
//! read for one customer, and the polite salutation (王先生 / 李女士).

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
    /// Loyalty points (none until the loyalty club exists).
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
        points: None,
        unsubscribe_url: unsubscribe_url.to_owned(),
    }
}

#[derive(sqlx::FromRow)]
struct Who {
    name: String,
    gender: Option<String>,
    manager_name: Option<String>,
    tier: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Last {
    ordered_at: chrono::DateTime<chrono::Utc>,
    store: Option<String>,
    product: Option<String>,
}

/// Which of the variables that cost a query of their own a template uses (a sender reads only
/// those: a message that says only `salutation` needs no look at the orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// `last_purchase`.
    pub last_purchase: bool,
    /// `favourite_category`.
    pub favourite_category: bool,
}

impl Wanted {
    /// Every variable.
    pub const ALL: Wanted = Wanted { last_purchase: true, favourite_category: true };
}

/// Reads a live customer's variables in `tx` (`unsubscribe_url` as given).
pub(crate) async fn read(tx: &mut Tx, customer_id: i64, tz: chrono_tz::Tz, unsubscribe_url: &str) -> Result<PersonalVariables> {
    read_wanted(tx, customer_id, tz, unsubscribe_url, Wanted::ALL).await
}

/// Reads a live customer's variables in `tx`, those a template does not use left empty.
pub(crate) async fn read_wanted(
    tx: &mut Tx,
    customer_id: i64,
    tz: chrono_tz::Tz,
    unsubscribe_url: &str,
    wanted: Wanted,
) -> Result<PersonalVariables> {
    let who: Option<Who> = tx
        .fetch_optional(
            query(
                "SELECT c.name, c.gender, u.name AS manager_name, s.abcd_tier AS tier FROM customers c \
                 LEFT JOIN users u ON u.id = c.owner_id LEFT JOIN customer_scores s ON s.customer_id = c.id \
                 WHERE c.id = $1 AND c.deleted_at IS NULL",
            )
            .bind(customer_id),
        )
        .await?;
    let who = who.ok_or(StoreError::NotFound("customer"))?;
    let last: Option<Last> = if !wanted.last_purchase {
        None
    } else {
        tx.fetch_optional(
            query(
                "SELECT o.ordered_at, o.store, (SELECT p.name FROM order_lines l JOIN products p ON p.id = l.product_id \
                 WHERE l.customer_id = o.customer_id AND l.order_id = o.id ORDER BY l.line_no LIMIT 1) AS product \
                 FROM orders o WHERE o.customer_id = $1 AND o.status = 'completed' ORDER BY o.ordered_at DESC, o.id DESC LIMIT 1",
            )
            .bind(customer_id),
        )
        .await?
    };
    let favourite: Option<(String,)> = if !wanted.favourite_category {
        None
    } else {
        tx.fetch_optional(
            query(
                "SELECT k.name FROM order_lines l JOIN orders o ON o.customer_id = l.customer_id AND o.id = l.order_id \
                 JOIN categories k ON k.id = l.category_id \
                 WHERE l.customer_id = $1 AND o.status = 'completed' \
                 GROUP BY k.name ORDER BY SUM(l.quantity * l.unit_price_cents) DESC, k.name LIMIT 1",
            )
            .bind(customer_id),
        )
        .await?
    };
    Ok(PersonalVariables {
        salutation: salutation(&who.name, who.gender.as_deref()),
        name: who.name,
        last_purchase: last.map(|l| LastPurchase {
            date: l.ordered_at.with_timezone(&tz).date_naive(),
            store: l.store,
            product: l.product,
        }),
        favourite_category: favourite.map(|f| f.0),
        tier: who.tier,
        manager_name: who.manager_name,
        points: None,
        unsubscribe_url: unsubscribe_url.to_owned(),
    })
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
