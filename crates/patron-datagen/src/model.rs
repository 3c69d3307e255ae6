//! Generated records (the in-memory form of the CSV rows).

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime};

/// `C0000001` for index 0 (1-based, at least 7 digits).
pub fn customer_id(index: u64) -> String {
    format!("C{:07}", index + 1)
}

/// `O000000001` for the first order of a file (1-based, at least 9 digits).
pub fn order_id(seq: u64) -> String {
    format!("O{:09}", seq)
}

/// `I000000001` for the first interaction of a file (1-based, at least 9 digits).
pub fn interaction_id(seq: u64) -> String {
    format!("I{:09}", seq)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerKind {
    Person,
    Organisation,
}

impl CustomerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerKind::Person => "person",
            CustomerKind::Organisation => "organisation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Completed,
    Refunded,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Completed => "completed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// The hidden truth about a customer (not written to the import files; see
/// [`crate::GeneratorConfig::write_truth`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// A prospect never purchases.
    pub prospect: bool,
    /// Purchase rate while active, per day.
    pub lambda: f64,
    /// Dropout probability after each repeat purchase.
    pub dropout: f64,
    /// Gamma-Gamma spend rate ν (mean order value is `p / ν` yuan).
    pub nu: f64,
    /// Still active at the end of the period (always true for prospects and one-time buyers).
    pub alive_at_end: bool,
    /// Time of the first purchase (`None` for prospects).
    pub first_purchase_at: Option<NaiveDateTime>,
    /// Effective (seasonality-adjusted) days from the first purchase to the end of the period;
    /// `ModelParams::expected_repeat_purchases` of this is the expected number of repeat purchases.
    pub effective_age_days: f64,
    /// Number of purchases of the process (= completed orders).
    pub purchases: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// 0-based index; the customer id is [`customer_id`]`(index)`.
    pub index: u64,
    pub kind: CustomerKind,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub wechat_id: Option<String>,
    /// `None` for organisations.
    pub gender: Option<Gender>,
    pub birthday: Option<NaiveDate>,
    pub city: &'static str,
    pub tags: Vec<&'static str>,
    /// Index into [`crate::GeneratorConfig::owners`].
    pub owner: Option<usize>,
    /// Index of the referring customer (always lower than `index`).
    pub referrer: Option<u64>,
    pub consent_sms: bool,
    pub consent_email: bool,
    pub consent_wechat: bool,
    pub created_at: NaiveDateTime,
    pub truth: Truth,
}

/// A person of an organisation (contacts.csv).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// `C0000042-1`: the organisation's id and the contact's number.
    pub contact_id: String,
    pub customer_index: u64,
    pub name: String,
    pub role: &'static str,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// `;`-separated.
    pub interests: String,
    pub notes: &'static str,
}

/// One order (orders.csv). The order id is assigned when writing (sequential in file order).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub customer_index: u64,
    pub ordered_at: NaiveDateTime,
    /// Paid, after discount, in cents (CNY).
    pub amount_cents: i64,
    pub discount_cents: i64,
    pub channel: &'static str,
    pub store: &'static str,
    pub status: OrderStatus,
    pub category: &'static str,
    pub product: &'static str,
    pub quantity: u32,
    pub promo: bool,
}

/// One interaction (interactions.csv). The id is assigned when writing.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub customer_index: u64,
    pub kind: &'static str,
    pub occurred_at: NaiveDateTime,
    pub channel: &'static str,
    pub payload: Cow<'static, str>,
}

/// The records of a contiguous range of customers, in output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    pub customers: Vec<Customer>,
    pub contacts: Vec<Contact>,
    pub orders: Vec<Order>,
    pub interactions: Vec<Interaction>,
}

/// A demo account manager (a user to create before importing with owners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountManager {
    pub email: String,
    pub display_name: String,
}
