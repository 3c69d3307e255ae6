//! The field catalog of the segment language (names in the domain's words, where each comes
//! from, its type and allowed values) and the type checker that turns a syntax tree into a
//! checked rule with typed values.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::filter::{CmpOp, Cond, Expr, Literal, RuleError, Test, Value};

/// Which table a field is read from; the compiler joins only the tables a rule uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `customers c`.
    Customers,
    /// `customer_summaries s` (live order totals).
    Summaries,
    /// `customer_scores k` (results of the latest analysis).
    Scores,
}

/// One allowed value of a choice field: the stored key and its Chinese label.
#[derive(Debug, Clone, Copy)]
pub struct EnumValue {
    /// Stored key (`important_win_back`).
    pub key: &'static str,
    /// Chinese label (`重要挽留`).
    pub zh: &'static str,
    /// Other spellings accepted in rules.
    pub aliases: &'static [&'static str],
}

const fn ev(key: &'static str, zh: &'static str) -> EnumValue {
    EnumValue { key, zh, aliases: &[] }
}

/// Customer kinds.
pub const KINDS: &[EnumValue] = &[
    EnumValue { key: "person", zh: "个人", aliases: &["individual"] },
    EnumValue { key: "organisation", zh: "企业", aliases: &["organization", "company", "公司", "机构"] },
];
/// Genders.
pub const GENDERS: &[EnumValue] = &[ev("male", "男"), ev("female", "女"), ev("unknown", "未知")];
/// The 8 RFM value classes.
pub const RFM_CLASSES: &[EnumValue] = &[
    ev("important_value", "重要价值"),
    ev("important_retain", "重要保持"),
    ev("important_develop", "重要发展"),
    ev("important_win_back", "重要挽留"),
    ev("general_value", "一般价值"),
    ev("general_retain", "一般保持"),
    ev("general_develop", "一般发展"),
    ev("general_win_back", "一般挽留"),
];
/// ABCD value tiers.
pub const ABCD_TIERS: &[EnumValue] = &[
    EnumValue { key: "A", zh: "A类", aliases: &["A级", "A类客户"] },
    EnumValue { key: "B", zh: "B类", aliases: &["B级", "B类客户"] },
    EnumValue { key: "C", zh: "C类", aliases: &["C级", "C类客户"] },
    EnumValue { key: "D", zh: "D类", aliases: &["D级", "D类客户"] },
];
/// Lifecycle stages.
pub const LIFECYCLE_STAGES: &[EnumValue] = &[
    ev("prospect", "潜在客户"),
    ev("new", "新客户"),
    ev("active", "活跃客户"),
    ev("loyal", "忠诚客户"),
    ev("at_risk", "流失风险"),
    ev("churned", "已流失"),
    ev("won_back", "已挽回"),
];
/// Churn statuses.
pub const CHURN_STATUSES: &[EnumValue] =
    &[EnumValue { key: "none", zh: "未流失", aliases: &["not_churned"] }, ev("relative", "相对流失"), ev("absolute", "绝对流失")];
/// The 8 situations of the loyalty matrix.
pub const LOYALTY_SITUATIONS: &[EnumValue] = &[
    ev("true_loyalty_rising", "真正忠诚（上升）"),
    ev("true_loyalty_falling", "真正忠诚（下降）"),
    ev("latent_loyalty_rising", "潜在忠诚（上升）"),
    ev("latent_loyalty_falling", "潜在忠诚（下降）"),
    ev("inertia_loyalty_rising", "惰性忠诚（上升）"),
    ev("inertia_loyalty_falling", "惰性忠诚（下降）"),
    ev("no_loyalty_rising", "不忠诚（上升）"),
    ev("no_loyalty_falling", "不忠诚（下降）"),
];

/// Next best actions (issue 12 §7), in priority order.
pub const NEXT_ACTIONS: &[EnumValue] = &[
    EnumValue { key: "win_back", zh: "挽回", aliases: &["winback"] },
    ev("retain", "维系"),
    EnumValue { key: "review", zh: "回顾合作关系", aliases: &["review_relationship"] },
    EnumValue { key: "referral", zh: "邀请推荐", aliases: &["ask_referral"] },
    ev("nurture", "培育"),
    EnumValue { key: "upsell", zh: "推荐品类", aliases: &["upsell_category"] },
    EnumValue { key: "none", zh: "无", aliases: &[] },
];
/// Message channels (the calibrated preferred channel, issue 12 §5).
pub const CHANNELS: &[EnumValue] = &[
    EnumValue { key: "email", zh: "邮件", aliases: &["e-mail"] },
    EnumValue { key: "sms", zh: "短信", aliases: &[] },
    EnumValue { key: "wechat", zh: "微信", aliases: &[] },
    EnumValue { key: "mail", zh: "直邮", aliases: &["direct_mail"] },
];

/// How a field is stored and therefore which operators and values apply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Text compared exactly (`contains` ignores ASCII case).
    Text,
    /// One of a fixed set of keys.
    Choice(&'static [EnumValue]),
    /// Integer.
    Int,
    /// Real number.
    Float,
    /// Money: written in yuan, stored in cents (`true`: a REAL column).
    Money(bool),
    /// A day number column (days since 1970-01-01 in the business time zone), written as a date.
    Day,
    /// A calendar date column.
    Date,
    /// A UTC timestamp, compared by business calendar day.
    Instant,
    /// Days from a day-number column to today (business time zone).
    DaysSince,
    /// Days a managed account's next contact is overdue (issue 19 §2; negative: days left).
    DaysOverdue,
    /// Membership in `customer_tags`.
    Tag,
    /// A category of the customer's stitched web page views (issue 19 §8).
    WebInterest,
    /// A custom attribute `attr.KEY` (text).
    Attr,
    /// Consent on one channel (true, false, or never recorded).
    Consent(&'static str),
    /// The owner's login email.
    Owner,
}

/// A field of the language.
#[derive(Debug)]
pub struct Field {
    /// Name in rules.
    pub name: &'static str,
    pub(crate) kind: Kind,
    /// SQL expression over `c`, `s` or `k` (unused by the kinds compiled specially).
    pub(crate) sql: &'static str,
    pub(crate) table: Table,
    /// Whether the expression can be NULL (then comparisons get an `IS NOT NULL` guard).
    pub(crate) nullable: bool,
    /// Description (English).
    pub en: &'static str,
    /// Description (Chinese).
    pub zh: &'static str,
}

const fn f(name: &'static str, kind: Kind, sql: &'static str, table: Table, nullable: bool, en: &'static str, zh: &'static str) -> Field {
    Field { name, kind, sql, table, nullable, en, zh }
}

use Kind::*;
use Table::{Customers as C, Scores as K, Summaries as S};

/// Every field, in the order the documentation lists them.
pub static FIELDS: &[Field] = &[
    // Profile.
    f("id", Int, "c.id", C, false, "patron's customer id", "客户编号"),
    f("external_id", Text, "c.external_id", C, true, "id in the source system", "外部编号"),
    f("name", Text, "c.name", C, false, "name", "姓名/名称"),
    f("kind", Choice(KINDS), "c.kind", C, false, "person or organisation", "客户类型"),
    f("gender", Choice(GENDERS), "c.gender", C, true, "gender", "性别"),
    f("city", Text, "c.city", C, true, "city", "城市"),
    f("mobile", Text, "c.mobile", C, true, "mobile number", "手机号"),
    f("email", Text, "c.email", C, true, "email", "邮箱"),
    f("wechat_id", Text, "c.wechat_id", C, true, "WeChat id", "微信号"),
    f("birthday", Date, "c.birthday", C, true, "birthday", "生日"),
    f("created_at", Instant, "c.created_at", C, false, "day the customer was created", "创建日期"),
    f("updated_at", Instant, "c.updated_at", C, false, "day the profile last changed", "最后修改日期"),
    f("owner", Owner, "c.owner_id", C, true, "account manager's login email", "客户经理（登录邮箱）"),
    f("owner_id", Int, "c.owner_id", C, true, "account manager's user id", "客户经理编号"),
    f("referrer_id", Int, "c.referrer_id", C, true, "id of the customer who referred this one", "推荐人客户编号"),
    f("tag", Tag, "", C, false, "has a tag", "标签"),
    f(
        "web_interests",
        WebInterest,
        "",
        C,
        false,
        "a category of the customer's web page views (docs/web-analytics.md)",
        "网站浏览兴趣（页面类别）",
    ),
    f("attr", Attr, "c.attributes", C, true, "custom attribute attr.NAME (text)", "自定义属性 attr.名称（文本）"),
    f("consent.sms", Consent("sms"), "", C, true, "consent to SMS", "短信许可"),
    f("consent.email", Consent("email"), "", C, true, "consent to email", "邮件许可"),
    f("consent.wechat", Consent("wechat"), "", C, true, "consent to WeChat messages", "微信许可"),
    f("consent.phone", Consent("phone"), "", C, true, "consent to phone calls", "电话许可"),
    f("consent.mail", Consent("mail"), "", C, true, "consent to direct mail", "邮寄许可"),
    // Live order totals (completed orders, all time).
    f("order_count", Int, "COALESCE(s.order_count, 0)", S, false, "completed orders", "订单数"),
    f("spend", Money(false), "COALESCE(s.spend_cents, 0)", S, false, "total spend (yuan)", "累计消费（元）"),
    f(
        "repeat_spend",
        Money(false),
        "COALESCE(s.repeat_spend_cents, 0)",
        S,
        false,
        "spend on repeat purchase days (yuan)",
        "复购消费（元）",
    ),
    f("purchase_days", Int, "COALESCE(s.purchase_days, 0)", S, false, "distinct purchase days", "购买天数"),
    f("first_purchase_date", Day, "s.first_purchase_day", S, true, "day of the first purchase", "首次购买日期"),
    f("last_purchase_date", Day, "s.last_purchase_day", S, true, "day of the last purchase", "最近购买日期"),
    f("days_since_last_purchase", DaysSince, "s.last_purchase_day", S, true, "days from the last purchase to today", "距最近购买天数"),
    // Contact cadence (issue 19 §2): managed accounts only.
    f(
        "days_overdue",
        DaysOverdue,
        "",
        C,
        true,
        "days the next contact of a managed account is overdue (negative: days left)",
        "逾期未联系天数（负数为剩余天数，仅限客户经理负责的客户）",
    ),
    // Latest analysis.
    f("x", Int, "k.x", K, true, "repeat purchase days (BTYD x)", "重复购买天数 x"),
    f("t_x", Int, "k.t_x", K, true, "days from first to last purchase day", "首末购买间隔天数 t_x"),
    f("age_days", Int, "k.age_days", K, true, "days from first purchase to the analysis day (T)", "客户年龄（天）T"),
    f("recency_days", Int, "k.recency_days", K, true, "RFM R: days since the last purchase at the analysis", "RFM 最近购买距今天数"),
    f("frequency", Int, "k.frequency", K, true, "RFM F: orders in the RFM window", "RFM 频次（窗口内订单数）"),
    f("monetary", Money(false), "k.monetary_cents", K, true, "RFM M: spend in the RFM window (yuan)", "RFM 金额（元）"),
    f("trailing_spend", Money(false), "k.trailing_spend_cents", K, true, "spend in the trailing 12 months (yuan)", "近 12 个月消费（元）"),
    f("m", Money(true), "k.m_cents", K, true, "mean spend of a repeat purchase day (yuan)", "复购日平均消费（元）"),
    f("median_gap_days", Float, "k.median_gap_days", K, true, "median days between purchase days", "购买间隔中位数（天）"),
    f("rfm_r", Int, "k.rfm_r", K, true, "RFM R score 1–5", "R 分 1–5"),
    f("rfm_f", Int, "k.rfm_f", K, true, "RFM F score 1–5", "F 分 1–5"),
    f("rfm_m", Int, "k.rfm_m", K, true, "RFM M score 1–5", "M 分 1–5"),
    f("rfm_class", Choice(RFM_CLASSES), "k.rfm_class", K, true, "RFM value class", "RFM 价值分类"),
    f("abcd_tier", Choice(ABCD_TIERS), "k.abcd_tier", K, true, "ABCD value tier", "ABCD 价值等级"),
    f("lifecycle", Choice(LIFECYCLE_STAGES), "k.lifecycle", K, true, "lifecycle stage", "生命周期阶段"),
    f("churn", Choice(CHURN_STATUSES), "k.churn", K, true, "churn status", "流失状态"),
    // The run before the latest (issue 18 §2): "A customers who became B" is
    // `previous_abcd_tier = "A" and abcd_tier = "B"`; null when not scored then.
    f(
        "previous_abcd_tier",
        Choice(ABCD_TIERS),
        "k.previous_abcd_tier",
        K,
        true,
        "ABCD value tier in the analysis run before the latest",
        "上一次分析的 ABCD 价值等级",
    ),
    f(
        "previous_rfm_class",
        Choice(RFM_CLASSES),
        "k.previous_rfm_class",
        K,
        true,
        "RFM value class in the analysis run before the latest",
        "上一次分析的 RFM 价值分类",
    ),
    f(
        "previous_lifecycle",
        Choice(LIFECYCLE_STAGES),
        "k.previous_lifecycle",
        K,
        true,
        "lifecycle stage in the analysis run before the latest",
        "上一次分析的生命周期阶段",
    ),
    f(
        "churn_threshold_days",
        Float,
        "k.churn_threshold_days",
        K,
        true,
        "days without purchase that mean absolute churn",
        "绝对流失阈值（天）",
    ),
    f("p_alive", Float, "k.p_alive", K, true, "probability the customer is still active (0–1)", "存活概率 P(alive)"),
    f("expected_purchases", Float, "k.expected_purchases", K, true, "expected purchases in the horizon", "预期购买次数"),
    f("expected_order_value", Money(true), "k.expected_order_value_cents", K, true, "expected order value (yuan)", "预期客单价（元）"),
    f("clv", Money(true), "k.clv_cents", K, true, "customer lifetime value (yuan)", "客户终身价值（元）"),
    f("loyalty_index", Float, "k.loyalty_index", K, true, "loyalty index 0–100", "忠诚度指数 0–100"),
    f("loyalty_situation", Choice(LOYALTY_SITUATIONS), "k.loyalty_situation", K, true, "loyalty matrix situation", "忠诚矩阵情形"),
    f(
        "margin",
        Money(false),
        "k.margin_cents",
        K,
        true,
        "margin of the spend in the cost-to-serve period (yuan)",
        "毛利（元，服务成本期间）",
    ),
    f("cost_to_serve", Money(false), "k.cost_to_serve_cents", K, true, "cost to serve in the period (yuan)", "服务成本（元）"),
    f("profit", Money(false), "k.profit_cents", K, true, "margin − cost to serve (yuan)", "利润 = 毛利 − 服务成本（元）"),
    // Next best action and channel calibration (latest analysis; issue 12 §7, §5).
    f("next_action", Choice(NEXT_ACTIONS), "k.next_action", K, true, "next best action", "下一步最佳行动"),
    f("next_action_category_id", Int, "k.next_action_category_id", K, true, "category an upsell suggests (category id)", "推荐品类编号"),
    f(
        "preferred_channel",
        Choice(CHANNELS),
        "k.preferred_channel",
        K,
        true,
        "consented channel with the highest response rate",
        "偏好渠道（响应率最高的许可渠道）",
    ),
    f("response_rate_email", Float, "k.response_rate_email", K, true, "e-mail response rate (posterior mean 0–1)", "邮件响应率"),
    f("response_rate_sms", Float, "k.response_rate_sms", K, true, "SMS response rate (posterior mean 0–1)", "短信响应率"),
    f("response_rate_wechat", Float, "k.response_rate_wechat", K, true, "WeChat response rate (posterior mean 0–1)", "微信响应率"),
    f("response_rate_mail", Float, "k.response_rate_mail", K, true, "direct-mail response rate (posterior mean 0–1)", "直邮响应率"),
];

/// Common other names, so an unknown field gets a useful suggestion.
const HINTS: &[(&str, &str)] = &[
    ("tags", "tag"),
    ("spend_cents", "spend"),
    ("clv_cents", "clv"),
    ("monetary_cents", "monetary"),
    ("trailing_spend_cents", "trailing_spend"),
    ("expected_order_value_cents", "expected_order_value"),
    ("m_cents", "m"),
    ("rfm", "rfm_class"),
    ("tier", "abcd_tier"),
    ("nba", "next_action"),
    ("next_best_action", "next_action"),
    ("channel", "preferred_channel"),
    ("abcd", "abcd_tier"),
    ("stage", "lifecycle"),
    ("lifecycle_stage", "lifecycle"),
    ("owner_email", "owner"),
    ("first_purchase_day", "first_purchase_date"),
    ("last_purchase_day", "last_purchase_date"),
    ("loyalty", "loyalty_index"),
    ("phone", "mobile"),
    ("wechat", "wechat_id"),
    ("customer_id", "external_id"),
    ("orders", "order_count"),
    ("recency", "recency_days"),
    ("created", "created_at"),
    ("城市", "city"),
    ("标签", "tag"),
    ("姓名", "name"),
    ("性别", "gender"),
];

/// A field as the UI and the documentation list it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldInfo {
    /// Name in rules (`attr` is written `attr.NAME`).
    pub name: String,
    /// `text`, `choice`, `integer`, `number`, `money`, `date`, `boolean`, `tag`, `attribute` or `user`.
    pub r#type: String,
    /// `profile`, `orders` (live totals) or `analysis` (latest analysis run).
    pub source: String,
    /// What it is (English).
    pub description_en: String,
    /// What it is (Chinese).
    pub description_zh: String,
    /// Allowed values of a choice field: key and Chinese label.
    pub values: Vec<(String, String)>,
    /// Operators that apply.
    pub operators: Vec<String>,
}

const ORDERED: &[&str] = &["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null"];
const TEXTUAL: &[&str] = &["=", "!=", "in", "not in", "contains", "is null"];
const CHOICE: &[&str] = &["=", "!=", "in", "not in", "is null"];
const BOOLEAN: &[&str] = &["=", "!=", "is null"];

impl Field {
    fn type_name(&self) -> &'static str {
        match self.kind {
            Text => "text",
            Choice(_) => "choice",
            Int | DaysSince | DaysOverdue => "integer",
            Float => "number",
            Money(_) => "money",
            Day | Date | Instant => "date",
            Tag => "tag",
            WebInterest => "web interest",
            Attr => "attribute",
            Consent(_) => "boolean",
            Owner => "user",
        }
    }

    fn operators(&self) -> &'static [&'static str] {
        match self.kind {
            Text | Tag | WebInterest | Attr | Owner => TEXTUAL,
            Choice(_) => CHOICE,
            Consent(_) => BOOLEAN,
            Int | Float | Money(_) | Day | Date | Instant | DaysSince | DaysOverdue => ORDERED,
        }
    }

    /// The catalog entry as listed to users.
    pub fn info(&self) -> FieldInfo {
        FieldInfo {
            name: self.name.into(),
            r#type: self.type_name().into(),
            source: match self.table {
                Table::Customers => "profile",
                Table::Summaries => "orders",
                Table::Scores => "analysis",
            }
            .into(),
            description_en: self.en.into(),
            description_zh: self.zh.into(),
            values: match self.kind {
                Choice(vs) => vs.iter().map(|v| (v.key.to_owned(), v.zh.to_owned())).collect(),
                _ => Vec::new(),
            },
            operators: self.operators().iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A value after type checking, in the unit of the column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    Bool(bool),
}

/// A test after type checking.
#[derive(Debug, Clone)]
pub(crate) enum CTest {
    Cmp(CmpOp, Val),
    In(bool, Vec<Val>),
    Null(bool),
    /// Negated, and the text looked for.
    Contains(bool, String),
}

/// A condition on a known field.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub field: &'static Field,
    /// The attribute name of `attr.NAME`.
    pub key: Option<String>,
    pub test: CTest,
}

/// A checked expression.
#[derive(Debug, Clone)]
pub(crate) enum Checked {
    And(Vec<Checked>),
    Or(Vec<Checked>),
    Not(Box<Checked>),
    Leaf(Leaf),
}

impl Checked {
    pub(crate) fn uses(&self, t: Table) -> bool {
        match self {
            Checked::And(v) | Checked::Or(v) => v.iter().any(|e| e.uses(t)),
            Checked::Not(e) => e.uses(t),
            Checked::Leaf(l) => l.field.table == t,
        }
    }
}

/// Looks a field up by its name as written (lower-cased) and key.
fn lookup(c: &Cond) -> Result<&'static Field, RuleError> {
    let shown = match &c.key {
        Some(k) => format!("{}.{k}", c.field),
        None => c.field.clone(),
    };
    let name = match (c.field.as_str(), &c.key) {
        ("attr", None) => return Err(RuleError::at(c.column, "write a custom attribute as attr.NAME (for example attr.level = \"gold\")")),
        ("attr", Some(_)) => "attr".to_owned(),
        ("consent", Some(k)) => format!("consent.{}", k.to_lowercase()),
        ("consent", None) => {
            return Err(RuleError::at(c.column, "write consent.sms, consent.email, consent.wechat, consent.phone or consent.mail"))
        }
        (_, _) => shown.to_lowercase(),
    };
    if let Some(field) = FIELDS.iter().find(|f| f.name == name) {
        return Ok(field);
    }
    if c.key.is_some() && FIELDS.iter().any(|f| f.name == c.field) {
        return Err(RuleError::at(c.column, format!("{} has no parts; write it without \".{}\"", c.field, c.key.as_deref().unwrap_or(""))));
    }
    let mut msg = format!("unknown field \"{shown}\"");
    match suggest(&name) {
        Some(s) => {
            let money = FIELDS.iter().any(|f| f.name == s && matches!(f.kind, Money(_)));
            msg.push_str(&format!("; did you mean \"{s}\"?"));
            if money && name.ends_with("_cents") {
                msg.push_str(" (money fields are written in yuan)");
            }
        }
        None => msg.push_str("; see the list of fields in the segment language reference"),
    }
    Err(RuleError::at(c.column, msg))
}

/// The closest field name, if any is close enough to be a likely typo.
fn suggest(name: &str) -> Option<&'static str> {
    if let Some((_, to)) = HINTS.iter().find(|(from, _)| *from == name) {
        return Some(to);
    }
    let (best, dist) = FIELDS.iter().map(|f| f.name).map(|n| (n, levenshtein(name, n))).min_by_key(|(_, d)| *d)?;
    let limit = (name.chars().count() / 3).max(2);
    (dist <= limit).then_some(best)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Folds the spellings of a choice value together: case, spaces, `_`, `-` and brackets.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '(' | ')' | '（' | '）' | '·'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key of a choice value written as its key, its Chinese label or an alias.
pub fn resolve_choice(values: &[EnumValue], written: &str) -> Option<&'static str> {
    let w = fold(written);
    values.iter().find(|v| fold(v.key) == w || fold(v.zh) == w || v.aliases.iter().any(|a| fold(a) == w)).map(|v| v.key)
}

fn choices(values: &[EnumValue]) -> String {
    values.iter().map(|v| format!("{} ({})", v.key, v.zh)).collect::<Vec<_>>().join(", ")
}

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn day_number(d: NaiveDate) -> i64 {
    d.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

/// Checks the whole tree against the catalog.
pub(crate) fn check(e: &Expr) -> Result<Checked, RuleError> {
    Ok(match e {
        Expr::And(v) => Checked::And(v.iter().map(check).collect::<Result<_, _>>()?),
        Expr::Or(v) => Checked::Or(v.iter().map(check).collect::<Result<_, _>>()?),
        Expr::Not(x) => Checked::Not(Box::new(check(x)?)),
        Expr::Cond(c) => Checked::Leaf(check_cond(c)?),
    })
}

fn op_name(t: &Test) -> String {
    match t {
        Test::Compare(op, _) => format!("\"{}\"", op.symbol()),
        Test::In { negated: false, .. } => "in".into(),
        Test::In { negated: true, .. } => "not in".into(),
        Test::Null { negated: false } => "is null".into(),
        Test::Null { negated: true } => "is not null".into(),
        Test::Contains { negated: false, .. } => "contains".into(),
        Test::Contains { negated: true, .. } => "not contains".into(),
    }
}

fn check_cond(c: &Cond) -> Result<Leaf, RuleError> {
    let field = lookup(c)?;
    let shown = match (&field.kind, &c.key) {
        (Attr, Some(k)) => format!("attr.{k}"),
        _ => field.name.to_owned(),
    };
    let key = match (&field.kind, &c.key) {
        (Attr, Some(k)) => {
            if k.contains(['"', '\\']) || k.chars().any(char::is_control) || k.chars().count() > 100 {
                return Err(RuleError::at(
                    c.column,
                    "an attribute name must be at most 100 characters without quotes, backslashes or control characters",
                ));
            }
            Some(k.clone())
        }
        _ => None,
    };
    // Which operators apply to this kind of field.
    let op = op_name(&c.test);
    let allowed = field.operators();
    let op_key = op.trim_matches('"').replace("is not null", "is null").replace("not contains", "contains");
    if !allowed.contains(&op_key.as_str()) {
        let what = match field.kind {
            Text | Attr | Owner | Tag | WebInterest => "text",
            Choice(_) => "a choice",
            Consent(_) => "true or false",
            _ => "a number or date",
        };
        return Err(RuleError::at(c.op_column, format!("{op} does not apply to {shown} ({what}); use {}", allowed.join(", "))));
    }
    let test = match &c.test {
        Test::Compare(o, lit) => CTest::Cmp(*o, value(field, &shown, lit)?),
        Test::In { negated, values } => CTest::In(*negated, values.iter().map(|l| value(field, &shown, l)).collect::<Result<_, _>>()?),
        Test::Null { negated } => CTest::Null(*negated),
        Test::Contains { negated, value: lit } => match &lit.value {
            Value::Text(s) => CTest::Contains(*negated, s.clone()),
            other => {
                return Err(RuleError::at(lit.column, format!("contains needs text in quotes, found {}", other.describe())));
            }
        },
    };
    Ok(Leaf { field, key, test })
}

/// Converts one literal to the unit of `field`'s column, or says what was expected.
fn value(field: &Field, shown: &str, lit: &Literal) -> Result<Val, RuleError> {
    let at = lit.column;
    let mismatch = |expected: &str| {
        let hint = match &lit.value {
            Value::Number(n) if expected.starts_with("text") => format!("; put it in quotes: \"{n}\""),
            Value::Text(s) if expected.starts_with("a number") || expected.starts_with("an amount") => {
                format!("; write it without quotes: {s}")
            }
            _ => String::new(),
        };
        RuleError::at(at, format!("{shown} takes {expected}, found {}{hint}", lit.value.describe()))
    };
    match field.kind {
        Text | Attr | Tag | WebInterest | Owner => match &lit.value {
            Value::Text(s) => Ok(Val::Text(match field.kind {
                // Tags are stored trimmed and owners' emails lower-cased.
                Tag | WebInterest => s.trim().to_owned(),
                Owner => s.trim().to_lowercase(),
                _ => s.clone(),
            })),
            _ => Err(mismatch("text in quotes")),
        },
        Choice(values) => match &lit.value {
            Value::Text(s) => resolve_choice(values, s)
                .map(|k| Val::Text(k.to_owned()))
                .ok_or_else(|| RuleError::at(at, format!("{s:?} is not a value of {shown}; use one of: {}", choices(values)))),
            Value::Number(n) => resolve_choice(values, n)
                .map(|k| Val::Text(k.to_owned()))
                .ok_or_else(|| RuleError::at(at, format!("{n} is not a value of {shown}; use one of: {}", choices(values)))),
            _ => Err(mismatch(&format!("one of: {}", choices(values)))),
        },
        Int | DaysSince | DaysOverdue => match &lit.value {
            Value::Number(n) => number(n, at),
            _ => Err(mismatch("a number")),
        },
        Float => match &lit.value {
            Value::Number(n) => match number(n, at)? {
                Val::Int(i) => Ok(Val::Float(i as f64)),
                v => Ok(v),
            },
            _ => Err(mismatch("a number")),
        },
        Money(_) => match &lit.value {
            Value::Number(n) => crate::values::parse_money(n)
                .map(Val::Int)
                .map_err(|e| RuleError::at(at, format!("{shown} is an amount in yuan (at most 2 decimals, e.g. 99.50): {e}"))),
            _ => Err(mismatch("an amount in yuan (e.g. 1000 or 99.50)")),
        },
        Day | Date | Instant => match &lit.value {
            Value::Text(s) => {
                let d = crate::values::parse_date(s)
                    .ok()
                    // Four-digit years only: SQLite compares stored dates and times as text.
                    .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
                    .ok_or_else(|| RuleError::at(at, format!("{s:?} is not a date; write dates as \"YYYY-MM-DD\"")))?;
                Ok(match field.kind {
                    Day => Val::Int(day_number(d)),
                    _ => Val::Date(d),
                })
            }
            _ => Err(RuleError::at(at, format!("{shown} takes a date in quotes such as \"2025-01-31\", found {}", lit.value.describe()))),
        },
        Consent(_) => match &lit.value {
            Value::Bool(b) => Ok(Val::Bool(*b)),
            _ => Err(mismatch("true or false")),
        },
    }
}

fn number(n: &str, at: usize) -> Result<Val, RuleError> {
    if !n.contains('.') {
        return n.parse::<i64>().map(Val::Int).map_err(|_| RuleError::at(at, format!("the number {n} is too large")));
    }
    match n.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Val::Float(v)),
        _ => Err(RuleError::at(at, format!("{n} is not a usable number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique_and_money_is_in_cents() {
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
        for f in FIELDS {
            if matches!(f.kind, Money(_)) {
                assert!(f.sql.contains("_cents"), "{}", f.name);
            }
        }
    }

    #[test]
    fn choices_accept_key_label_and_spellings() {
        assert_eq!(resolve_choice(RFM_CLASSES, "重要挽留"), Some("important_win_back"));
        assert_eq!(resolve_choice(RFM_CLASSES, "Important-Win-Back"), Some("important_win_back"));
        assert_eq!(resolve_choice(RFM_CLASSES, "important win back"), Some("important_win_back"));
        assert_eq!(resolve_choice(ABCD_TIERS, "a"), Some("A"));
        assert_eq!(resolve_choice(ABCD_TIERS, "B级"), Some("B"));
        assert_eq!(resolve_choice(LIFECYCLE_STAGES, "流失风险"), Some("at_risk"));
        assert_eq!(resolve_choice(LOYALTY_SITUATIONS, "真正忠诚(上升)"), Some("true_loyalty_rising"));
        assert_eq!(resolve_choice(LOYALTY_SITUATIONS, "真正忠诚上升"), Some("true_loyalty_rising"));
        assert_eq!(resolve_choice(CHURN_STATUSES, "绝对流失"), Some("absolute"));
        assert_eq!(resolve_choice(KINDS, "公司"), Some("organisation"));
        assert_eq!(resolve_choice(RFM_CLASSES, "重要挽回"), None);
    }

    #[test]
    fn labels_match_the_analytics_crate() {
        for c in patron_analytics::rfm::RfmClass::ALL {
            assert_eq!(resolve_choice(RFM_CLASSES, c.label_zh()), Some(c.key()));
        }
        for s in patron_analytics::lifecycle::LifecycleStage::ALL {
            assert_eq!(resolve_choice(LIFECYCLE_STAGES, s.label_zh()), Some(s.key()));
        }
        for t in patron_analytics::abcd::Tier::ALL {
            assert_eq!(resolve_choice(ABCD_TIERS, t.key()), Some(t.key()));
        }
    }

    #[test]
    fn suggestions_for_typos() {
        assert_eq!(suggest("clvv"), Some("clv"));
        assert_eq!(suggest("rfm_clas"), Some("rfm_class"));
        assert_eq!(suggest("spend_cents"), Some("spend"));
        assert_eq!(suggest("palive"), Some("p_alive"));
        assert_eq!(suggest("zzzzzzzzzz"), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
