//! Compiles a checked rule to a SQL condition over `customers c` (and, when the rule uses them,
//! `customer_summaries s` and `customer_scores k`), with every user value bound as `$n`.
//!
//! Every condition compiles to SQL that is TRUE or FALSE, never NULL: a comparison on a missing
//! value is guarded by `IS NOT NULL`, and set tests use `IN`/`EXISTS`. So `not` is the exact
//! complement of what it negates, on both engines, and index-friendly `col = $n` terms stay visible
//! to the planner (a guarded `k.rfm_class IS NOT NULL AND k.rfm_class = $1` lets SQLite turn the
//! LEFT JOIN into an inner join driven by the `customer_scores_rfm` index).

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use super::fields::{CTest, Checked, Kind, Leaf, Table, Val};
use crate::db::Arg;
use crate::Engine;

/// What compiling needs to know besides the rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub engine: Engine,
    /// Business time zone (calendar days of timestamps).
    pub tz: chrono_tz::Tz,
    /// Today's day number in the business time zone.
    pub today: i64,
    /// The statement selects one customer by id (`c.id = $n`, a journey's check of one
    /// customer): sets are probed by key, never listed ([`Builder::has_member`]).
    pub one: bool,
}

/// A compiled rule: a condition to AND into a `WHERE`, its arguments, and the joins it needs.
#[derive(Debug, Clone)]
pub(crate) struct SqlCondition {
    /// The condition (parenthesised), using placeholders from the requested first number on.
    pub sql: String,
    /// Arguments for those placeholders, in order.
    pub args: Vec<Arg>,
    /// The condition reads `s.*` (join `customer_summaries s`).
    pub summaries: bool,
    /// The condition reads `k.*` (join `customer_scores k`).
    pub scores: bool,
    /// PostgreSQL: the sets tested under `or` or `not`, each a LEFT JOIN of its member ids
    /// (`sm1`, `sm2` …; [`Builder::has_member`]).
    pub sets: Vec<String>,
}

impl SqlCondition {
    /// `customers c` with the LEFT JOINs this condition needs.
    pub fn tables(&self) -> String {
        let mut from = String::from("customers c");
        if self.summaries {
            from.push_str(" LEFT JOIN customer_summaries s ON s.customer_id = c.id");
        }
        if self.scores {
            from.push_str(" LEFT JOIN customer_scores k ON k.customer_id = c.id");
        }
        for set in &self.sets {
            from.push(' ');
            from.push_str(set);
        }
        from
    }
}

pub(crate) fn compile(rule: &Checked, ctx: &Ctx, first_param: usize) -> SqlCondition {
    let mut b = Builder { ctx, args: Vec::new(), next: first_param.max(1), summaries_joined: false, conjunct: true, sets: Vec::new() };
    let sql = b.expr(rule);
    SqlCondition { sql: format!("({sql})"), args: b.args, summaries: b.summaries_joined, scores: rule.uses(Table::Scores), sets: b.sets }
}

/// `%text%` for LIKE with `\` escaping, lower-cased for ASCII like the `LOWER()` of the column
/// (SQLite's LOWER folds ASCII only, so ASCII is what both engines agree on).
pub(crate) fn like_contains(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(ch.to_ascii_lowercase());
    }
    p.push('%');
    p
}

struct Builder<'a> {
    ctx: &'a Ctx,
    args: Vec<Arg>,
    next: usize,
    /// A test reads `s.*` through the join of `customer_summaries s`.
    summaries_joined: bool,
    /// The test being compiled is one of the rule's top-level `and` terms (under no `or` or
    /// `not`): a row failing it is out whatever the other terms say.
    conjunct: bool,
    /// The LEFT JOINs of member sets ([`SqlCondition::sets`]).
    sets: Vec<String>,
}

impl Builder<'_> {
    fn bind(&mut self, a: Arg) -> String {
        let n = self.next;
        self.next += 1;
        self.args.push(a);
        format!("${n}")
    }

    fn val(&mut self, v: &Val) -> String {
        self.bind(match v {
            Val::Text(s) => Arg::Text(Some(s.clone())),
            Val::Int(i) => Arg::I64(Some(*i)),
            Val::Float(x) => Arg::F64(Some(*x)),
            Val::Date(d) => Arg::Date(Some(*d)),
            Val::Bool(b) => Arg::Bool(Some(*b)),
        })
    }

    fn list(&mut self, vs: &[Val]) -> String {
        vs.iter().map(|v| self.val(v)).collect::<Vec<_>>().join(", ")
    }

    fn expr(&mut self, e: &Checked) -> String {
        match e {
            Checked::And(v) => v.iter().map(|x| format!("({})", self.expr(x))).collect::<Vec<_>>().join(" AND "),
            Checked::Or(v) => {
                let outer = std::mem::replace(&mut self.conjunct, false);
                let sql = v.iter().map(|x| format!("({})", self.expr(x))).collect::<Vec<_>>().join(" OR ");
                self.conjunct = outer;
                sql
            }
            Checked::Not(x) => {
                let outer = std::mem::replace(&mut self.conjunct, false);
                let sql = format!("NOT ({})", self.expr(x));
                self.conjunct = outer;
                sql
            }
            Checked::Leaf(l) => self.leaf(l),
        }
    }

    fn leaf(&mut self, l: &Leaf) -> String {
        if l.field.table == Table::Summaries {
            return self.summary(l);
        }
        self.leaf_sql(l)
    }

    /// A test of the live order totals. Over many customers, a set like the tags: the customers
    /// whose summary passes (or, where a customer without orders passes, those whose summary
    /// fails), rather than a join of every customer's summary that each one's test reads. At
    /// 1 M customers, `tag = "下午茶" or spend >= 5000` counted in 1.30–1.53 s on PostgreSQL with
    /// the join and 0.83–0.96 s so (5 runs each, interleaved); 0.62 → 0.38 s on SQLite.
    ///
    /// SQLite joins the summary for a top-level `and` term: there its planner looks a summary up
    /// only for the customers the other terms let through, where a set lists every match first
    /// (`abcd_tier in ("A", "B") and days_since_last_purchase > 90`: 0.49 s joined, 0.58–0.69 s
    /// listing 900,000 buyers). PostgreSQL makes such a term a semi-join, as fast as the join
    /// (0.80 against 0.86 s). One customer's check joins the summary by key.
    fn summary(&mut self, l: &Leaf) -> String {
        let joined = self.ctx.one || (self.ctx.engine == Engine::Sqlite && self.conjunct);
        let Some(without_orders) = (!joined).then(|| passes_without_orders(l)).flatten() else {
            self.summaries_joined = true;
            return self.leaf_sql(l);
        };
        const ANY: &str = "SELECT 1 FROM customer_summaries s WHERE s.customer_id = c.id";
        const IDS: &str = "s.customer_id FROM customer_summaries s WHERE";
        let test = self.leaf_sql(l);
        if without_orders {
            format!("NOT ({})", self.has_member(ANY, IDS, &format!("NOT ({test})"), true))
        } else {
            self.has_member(ANY, IDS, &format!("({test})"), true)
        }
    }

    fn leaf_sql(&mut self, l: &Leaf) -> String {
        let f = l.field;
        match f.kind {
            Kind::Tag => self.set_member(
                "customer_tags t WHERE t.customer_id = c.id",
                "t.customer_id FROM customer_tags t WHERE",
                "t.tag",
                true,
                &l.test,
            ),
            // Many page views per category.
            Kind::WebInterest => self.set_member(
                "web_customer_views w WHERE w.customer_id = c.id AND w.category IS NOT NULL",
                "w.customer_id FROM web_customer_views w WHERE",
                "w.category",
                false,
                &l.test,
            ),
            Kind::Consent(channel) => self.consent(channel, &l.test),
            Kind::Owner => self.owner(&l.test),
            Kind::Instant => self.instant(f.sql, &l.test),
            Kind::DaysSince => self.days_since(f.sql, &l.test),
            Kind::DaysOverdue => {
                let e = self.days_overdue_expr();
                self.scalar(&e, true, &l.test)
            }
            Kind::Attr => {
                let n = self.next;
                let (e, arg) = self.ctx.engine.json_text(f.sql, n, l.key.as_deref().unwrap_or(""));
                self.bind(arg);
                self.scalar(&e, true, &l.test)
            }
            Kind::Money(true) => {
                // A REAL cents column: compare with a float so PostgreSQL needs no cross-type operator.
                let test = match &l.test {
                    CTest::Cmp(op, v) => CTest::Cmp(*op, to_float(v)),
                    CTest::In(neg, vs) => CTest::In(*neg, vs.iter().map(to_float).collect()),
                    t => t.clone(),
                };
                self.scalar(f.sql, f.nullable, &test)
            }
            _ => self.scalar(f.sql, f.nullable, &l.test),
        }
    }

    /// A plain column or expression `e`.
    fn scalar(&mut self, e: &str, nullable: bool, t: &CTest) -> String {
        let guard = |s: String| if nullable { format!("{e} IS NOT NULL AND {s}") } else { s };
        match t {
            CTest::Cmp(op, v) => {
                let p = self.val(v);
                guard(format!("{e} {} {p}", op.sql()))
            }
            CTest::In(neg, vs) => {
                let l = self.list(vs);
                guard(format!("{e} {}IN ({l})", if *neg { "NOT " } else { "" }))
            }
            CTest::Null(neg) => format!("{e} IS {}NULL", if *neg { "NOT " } else { "" }),
            CTest::Contains(neg, s) => {
                let p = self.bind(Arg::Text(Some(like_contains(s))));
                let like = format!("{} LIKE {p} ESCAPE '\\'", self.ctx.engine.like_lower(e));
                guard(if *neg { format!("NOT ({like})") } else { like })
            }
        }
    }

    /// Tags and web interests are sets: `=`/`in` mean "has", `!=`/`not in` "has not", `is null`
    /// "has none". `rows` is the member table correlated with `c`, `ids` selects customer ids
    /// from it (followed by a condition), `col` the member column; `unique` says a customer has
    /// at most one row per value of `col` (the tags' key).
    fn set_member(&mut self, rows: &str, ids: &str, col: &str, unique: bool, t: &CTest) -> String {
        let any = format!("SELECT 1 FROM {rows}");
        // (the members' condition, whether a customer may match by several rows, whether the
        // test is "has" rather than "has not")
        let (cond, unique, has) = match t {
            CTest::Cmp(op, v) => {
                let p = self.val(v);
                (format!("{col} = {p}"), unique, !matches!(op, super::filter::CmpOp::Ne))
            }
            CTest::In(neg, vs) => {
                let l = self.list(vs);
                (format!("{col} IN ({l})"), unique && vs.len() == 1, !*neg)
            }
            CTest::Null(neg) => (format!("{col} IS NOT NULL"), false, *neg),
            CTest::Contains(neg, s) => {
                let p = self.bind(Arg::Text(Some(like_contains(s))));
                (format!("{} LIKE {p} ESCAPE '\\'", self.ctx.engine.like_lower(col)), false, !*neg)
            }
        };
        if let Some(test) = self.joined_set(ids, &cond, unique, has) {
            return test;
        }
        match (t, has) {
            (CTest::Null(_), true) => format!("EXISTS ({any})"),
            (CTest::Null(_), false) => format!("NOT EXISTS ({any})"),
            (CTest::Contains(..), true) => format!("EXISTS ({any} AND {cond})"),
            (_, true) => self.has_member(&any, ids, &cond, unique),
            (_, false) => format!("NOT EXISTS ({any} AND {cond})"),
        }
    }

    /// PostgreSQL, a test under `or` or `not` over many customers: "has a member matching
    /// `cond`" (or, `has` false, "has none") as a LEFT JOIN of the matching members' ids
    /// ([`SqlCondition::sets`]) and a test of the joined id. `unique`: a customer matches by one
    /// row at most, else the ids are made distinct so the join adds no rows. `None` where the
    /// test stays in the condition.
    ///
    /// PostgreSQL cannot join a set under OR or NOT: it tests `EXISTS` row by row, by a hashed
    /// subplan or a probe of the member key for each customer, and a plan with a subplan in its
    /// filter is not run in parallel workers. It also chooses between hash and probe for all
    /// the rows it expects, without the `LIMIT` of a preview's first members: that statement
    /// built the whole hash (a quarter of a million tags) to return 20 ids. Joined, a count is a
    /// parallel hash join and the first members a merge join in id order. At 1 M customers,
    /// `tag = "下午茶" or spend >= 5000`: count 0.60 → 0.48 s, first 20 members 0.24 s → 0.1 ms
    /// (psql, AMD EPYC VM).
    fn joined_set(&mut self, ids: &str, cond: &str, unique: bool, has: bool) -> Option<String> {
        if self.ctx.engine != Engine::Postgres || self.ctx.one || self.conjunct {
            return None;
        }
        let n = self.sets.len() + 1;
        let distinct = if unique { "" } else { "DISTINCT " };
        self.sets.push(format!("LEFT JOIN (SELECT {distinct}{ids} {cond}) sm{n} ON sm{n}.customer_id = c.id"));
        Some(format!("sm{n}.customer_id IS {}NULL", if has { "NOT " } else { "" }))
    }

    /// "Has a member matching `cond`" (`unique` as [`Builder::joined_set`]). SQLite:
    /// `c.id IN (…)`, which lets the planner start from the member index. PostgreSQL: under `or`
    /// or `not`, a joined set ([`Builder::joined_set`]); as a top-level `and` term, `EXISTS`,
    /// which it joins as a semi-join. An `IN` there is hashed only when it fits, and otherwise
    /// rescans every member for every customer: `tag = "下午茶" or spend >= 5000` at 1 M
    /// customers (324,000 tagged) ran for minutes instead of ~2 s.
    ///
    /// One customer's check (`Ctx::one`): `EXISTS` on both engines. SQLite lists an `IN`'s
    /// members even for one customer: a check of `consent.sms = true` took 1.4 s at 1 M
    /// customers so, against a probe of the key.
    fn has_member(&mut self, any: &str, ids: &str, cond: &str, unique: bool) -> String {
        if let Some(test) = self.joined_set(ids, cond, unique, true) {
            return test;
        }
        match self.ctx.engine {
            Engine::Sqlite if !self.ctx.one => format!("c.id IN (SELECT {ids} {cond})"),
            _ => format!("EXISTS ({any} AND {cond})"),
        }
    }

    /// Consent on a channel: true, false, or NULL when never recorded. `channel` comes from the
    /// catalog, never from the rule. Under `or` or `not`, tested as membership
    /// ([`Builder::has_member`]): on SQLite the channel's rows listed once rather than a probe of
    /// the consents' key per customer (`not (…) and not consent.sms = false` over a million
    /// customers 0.99 → 0.58 s in the sqlite3 shell). A top-level `and` term is probed, as the
    /// order totals are joined ([`Builder::summary`]): listing the 800,000 customers who said yes
    /// to SMS costs ~0.3 s whatever the other terms, which a narrow rule would pay for a few
    /// (`tag = "企业团餐" and consent.sms = true`, 20,815 tagged: 0.29–0.40 s listed, 0.09 s
    /// probed).
    fn consent(&mut self, channel: &str, t: &CTest) -> String {
        let on_channel = format!("cc.channel = '{channel}'");
        match t {
            CTest::Cmp(op, v) => {
                let p = self.val(v);
                self.consent_member(&format!("{on_channel} AND cc.granted {} {p}", op.sql()))
            }
            CTest::Null(true) => self.consent_member(&on_channel),
            CTest::Null(false) => format!("NOT ({})", self.consent_member(&on_channel)),
            // The checker allows only =, != and is null on consent.
            CTest::In(..) | CTest::Contains(..) => "1 = 0".into(),
        }
    }

    /// "Has a consent row matching `cond`" ([`Builder::consent`]); one row per customer and
    /// channel (the key).
    fn consent_member(&mut self, cond: &str) -> String {
        const ANY: &str = "SELECT 1 FROM customer_consents cc WHERE cc.customer_id = c.id";
        const IDS: &str = "cc.customer_id FROM customer_consents cc WHERE";
        if self.ctx.engine == Engine::Sqlite && self.conjunct {
            format!("EXISTS ({ANY} AND {cond})")
        } else {
            self.has_member(ANY, IDS, cond, true)
        }
    }

    /// The owner's login email (NULL without an owner). Equality goes through `c.owner_id` so the
    /// owner index applies.
    fn owner(&mut self, t: &CTest) -> String {
        const IDS: &str = "SELECT u.id FROM users u WHERE u.email";
        match t {
            CTest::Cmp(op, v) => {
                let p = self.val(v);
                let not = if matches!(op, super::filter::CmpOp::Ne) { "NOT " } else { "" };
                format!("c.owner_id IS NOT NULL AND c.owner_id {not}IN ({IDS} = {p})")
            }
            CTest::In(neg, vs) => {
                let l = self.list(vs);
                format!("c.owner_id IS NOT NULL AND c.owner_id {}IN ({IDS} IN ({l}))", if *neg { "NOT " } else { "" })
            }
            CTest::Null(neg) => format!("c.owner_id IS {}NULL", if *neg { "NOT " } else { "" }),
            CTest::Contains(neg, s) => {
                let p = self.bind(Arg::Text(Some(like_contains(s))));
                format!(
                    "c.owner_id IS NOT NULL AND {}EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner_id AND {} LIKE {p} ESCAPE '\\')",
                    if *neg { "NOT " } else { "" },
                    self.ctx.engine.like_lower("u.email")
                )
            }
        }
    }

    /// Start of a business calendar day as a UTC instant.
    fn day_start(&self, d: NaiveDate) -> DateTime<Utc> {
        let local = d.and_time(NaiveTime::MIN);
        match self.ctx.tz.from_local_datetime(&local).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // Midnight skipped by a DST change: the day starts at the first instant that exists.
            None => self
                .ctx
                .tz
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
        }
    }

    /// `[start, end)` of the business day `d`, bound.
    fn day_range(&mut self, d: NaiveDate) -> (String, String) {
        let start = self.day_start(d);
        let end = d.succ_opt().map(|n| self.day_start(n)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        (self.bind(Arg::Time(Some(start))), self.bind(Arg::Time(Some(end))))
    }

    /// A timestamp compared by business calendar day: `created_at = "2025-01-31"` is the whole day.
    fn instant(&mut self, e: &str, t: &CTest) -> String {
        use super::filter::CmpOp::*;
        let date = |v: &Val| match v {
            Val::Date(d) => *d,
            // The checker gives dates for date fields; an epoch day keeps this total.
            _ => NaiveDate::default(),
        };
        match t {
            CTest::Cmp(op, v) => {
                let (a, b) = self.day_range(date(v));
                match op {
                    Eq => format!("{e} >= {a} AND {e} < {b}"),
                    Ne => format!("({e} < {a} OR {e} >= {b})"),
                    Lt => format!("{e} < {a}"),
                    Le => format!("{e} < {b}"),
                    Gt => format!("{e} >= {b}"),
                    Ge => format!("{e} >= {a}"),
                }
            }
            CTest::In(neg, vs) => {
                let ranges: Vec<String> = vs
                    .iter()
                    .map(|v| {
                        let (a, b) = self.day_range(date(v));
                        format!("({e} >= {a} AND {e} < {b})")
                    })
                    .collect();
                let any = ranges.join(" OR ");
                if *neg {
                    format!("{e} IS NOT NULL AND NOT ({any})")
                } else {
                    format!("({any})")
                }
            }
            CTest::Null(neg) => format!("{e} IS {}NULL", if *neg { "NOT " } else { "" }),
            CTest::Contains(..) => "1 = 0".into(),
        }
    }

    /// `today − day_column op n`, rewritten as `day_column op' today − n` so no arithmetic runs
    /// per row.
    fn days_since(&mut self, col: &str, t: &CTest) -> String {
        let today = self.ctx.today;
        let shift = |v: &Val| match v {
            Val::Int(n) => Val::Int(today.saturating_sub(*n)),
            Val::Float(x) => Val::Float(today as f64 - x),
            other => other.clone(),
        };
        let t = match t {
            CTest::Cmp(op, v) => CTest::Cmp(op.flipped(), shift(v)),
            CTest::In(neg, vs) => CTest::In(*neg, vs.iter().map(shift).collect()),
            other => other.clone(),
        };
        self.scalar(col, true, &t)
    }
}

impl Builder<'_> {
    /// `days_overdue` of `c` as the cadence list computes it (`accounts::cadence`): today minus
    /// the due day, which is the business day of the last meaningful contact (or of the
    /// customer's creation) plus the cadence days (the customer's own, else the tier's policy);
    /// NULL for an account that is not managed. The meaningful kinds are read from the stored
    /// settings (the defaults when none are stored).
    fn days_overdue_expr(&self) -> String {
        use crate::accounts::cadence::MANAGED;
        let kinds_default =
            crate::accounts::AccountSettings::default().meaningful_kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
        let stored = match self.ctx.engine {
            Engine::Sqlite => "SELECT j.value FROM settings st, json_each(st.value, '$.meaningful_kinds') j WHERE st.key = 'accounts'",
            Engine::Postgres => {
                "SELECT jsonb_array_elements_text(st.value -> 'meaningful_kinds') FROM settings st WHERE st.key = 'accounts'"
            }
        };
        let kinds = format!(
            "(CASE WHEN EXISTS (SELECT 1 FROM settings st WHERE st.key = 'accounts') THEN i.kind IN ({stored}) ELSE i.kind IN ({kinds_default}) END)"
        );
        let last = format!(
            "(SELECT MAX(i.occurred_at) FROM interactions i WHERE i.customer_id = c.id AND {kinds} AND (i.user_id IS NULL \
             OR i.user_id = c.owner_id OR EXISTS (SELECT 1 FROM account_team t WHERE t.customer_id = c.id AND t.user_id = i.user_id)))"
        );
        let start = format!("COALESCE({last}, c.created_at)");
        let day = match self.ctx.engine {
            Engine::Postgres => {
                format!("(CAST(CAST(({start}) AT TIME ZONE '{}' AS DATE) - DATE '1970-01-01' AS BIGINT))", self.ctx.tz.name())
            }
            Engine::Sqlite => {
                // SQLite knows no time zones: the business zone's offset today (exact for zones
                // without daylight saving, such as Asia/Shanghai).
                let noon = NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|d| d.checked_add_signed(chrono::Duration::days(self.ctx.today)))
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
                    .map(|t| Utc.from_utc_datetime(&t))
                    .unwrap_or_default();
                let offset = chrono::Offset::fix(&self.ctx.tz.offset_from_utc_datetime(&noon.naive_utc())).local_minus_utc();
                format!("((CAST(strftime('%s', {start}) AS INTEGER) + {offset}) / 86400)")
            }
        };
        // Each tier's policy as its own uncorrelated subquery (Citus plans those once; a
        // reference table correlated with the customer row it does not push down).
        let policies = crate::service::policies::TIERS
            .iter()
            .filter(|t| **t != "default")
            .map(|t| {
                format!(
                    "WHEN '{t}' THEN COALESCE((SELECT p.contact_cadence_days FROM service_policies p WHERE p.tier = '{t}'), {})",
                    crate::service::policies::default_policy(t).contact_cadence_days
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let fallback = format!(
            "COALESCE((SELECT p.contact_cadence_days FROM service_policies p WHERE p.tier = 'default'), {})",
            crate::service::policies::default_policy("default").contact_cadence_days
        );
        let tier = "(SELECT sk.abcd_tier FROM customer_scores sk WHERE sk.customer_id = c.id)";
        let cadence = format!("COALESCE(c.contact_cadence_days, CASE {tier} {policies} ELSE {fallback} END)");
        format!("(CASE WHEN {MANAGED} THEN {} - ({day} + {cadence}) END)", self.ctx.today)
    }
}

fn to_float(v: &Val) -> Val {
    match v {
        Val::Int(i) => Val::Float(*i as f64),
        other => other.clone(),
    }
}

/// Whether a customer without orders (no summary row) passes the test `l` of an order total, or
/// `None` when that is not known here (the test then reads the joined summary). The totals
/// (`COALESCE(s.…, 0)`, not nullable) are 0 then; the days (nullable) are NULL, which passes
/// `is null` only, comparisons being guarded.
fn passes_without_orders(l: &Leaf) -> Option<bool> {
    use super::filter::CmpOp;
    if l.field.nullable {
        return Some(matches!(l.test, CTest::Null(false)));
    }
    let number = |v: &Val| match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(x) => Some(*x),
        _ => None,
    };
    match &l.test {
        CTest::Null(negated) => Some(*negated),
        CTest::Cmp(op, v) => {
            let v = number(v)?;
            Some(match op {
                CmpOp::Eq => 0.0 == v,
                CmpOp::Ne => 0.0 != v,
                CmpOp::Lt => 0.0 < v,
                CmpOp::Le => 0.0 <= v,
                CmpOp::Gt => 0.0 > v,
                CmpOp::Ge => 0.0 >= v,
            })
        }
        CTest::In(negated, vs) => {
            let numbers = vs.iter().map(number).collect::<Option<Vec<f64>>>()?;
            Some(numbers.contains(&0.0) != *negated)
        }
        CTest::Contains(..) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a%b_c\\D"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_contains("上海"), "%上海%");
    }
}
