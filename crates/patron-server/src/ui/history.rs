//! The "how the base is changing" part of the analytics dashboard (issue 18 §2, §3): the ABCD
//! migration Sankey between the two latest runs (each flow opens its customers as a segment),
//! the cohort heat map and cumulative revenue per customer, the monthly trends; and the size
//! series of a saved segment. Drawn by `assets/history.js` from JSON the page carries.

use minijinja::Value;
use patron_store::cohorts::{CohortReport, TrendReport};
use patron_store::history::{Dimension, Migration};
use patron_store::users::Actor;
use serde::Serialize;

use super::analytics::script_json;
use crate::i18n::{key_label, Lang};
use crate::AppState;

#[derive(Serialize)]
struct Node {
    name: String,
}

#[derive(Serialize)]
struct Link {
    source: String,
    target: String,
    value: i64,
    revenue: f64,
    /// The segment builder with the rule of this flow (none for customers gone since).
    url: Option<String>,
}

#[derive(Serialize)]
struct Sankey {
    nodes: Vec<Node>,
    links: Vec<Link>,
}

#[derive(Serialize)]
struct CohortRow {
    cohort: String,
    customers: i64,
    /// Share of the cohort buying in month k (0–1).
    share: Vec<f64>,
    /// Cumulative revenue per customer up to month k (yuan).
    cumulative: Vec<f64>,
}

#[derive(Serialize)]
struct Trends {
    months: Vec<String>,
    new_customers: Vec<i64>,
    active_customers: Vec<i64>,
    repeat_customers: Vec<i64>,
    orders: Vec<i64>,
    revenue: Vec<f64>,
    /// Percent; null where no run is as of the month.
    churn_rate: Vec<Option<f64>>,
}

#[derive(Serialize)]
struct History {
    labels: std::collections::BTreeMap<&'static str, &'static str>,
    sankey: Option<Sankey>,
    cohorts: Vec<CohortRow>,
    trends: Trends,
}

/// The segment rule of one flow (`previous_abcd_tier = "A" and abcd_tier = "B"`); `None` for
/// customers not scored in the later run (gone: no live segment holds them).
pub fn flow_rule(from: Option<&str>, to: Option<&str>) -> Option<String> {
    let side = |field: &str, v: Option<&str>| match v {
        Some(t) if t != "none" => format!("{field} = \"{t}\""),
        _ => format!("{field} is null"),
    };
    to?;
    Some(format!("{} and {}", side("previous_abcd_tier", from), side("abcd_tier", to)))
}

fn sankey(m: &Migration, lang: Lang) -> Option<Sankey> {
    if m.cells.is_empty() {
        return None;
    }
    let (before, now, missing) = match lang {
        Lang::Zh => ("上次", "本次", "未评分"),
        Lang::En => ("before", "now", "not scored"),
    };
    let name = |v: Option<&str>, side: &str| {
        let label = match v {
            None => missing.to_owned(),
            Some("none") => key_label(lang, "tier", "none"),
            Some(t) => key_label(lang, "tier", t),
        };
        format!("{label} · {side}")
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut add = |n: String| {
        if !nodes.iter().any(|x| x.name == n) {
            nodes.push(Node { name: n });
        }
    };
    let order = ["A", "B", "C", "D", "none"];
    for side in [before, now] {
        for v in order.iter().map(|k| Some(*k)).chain([None]) {
            let present = m.cells.iter().any(|c| (if side == before { c.from.as_deref() } else { c.to.as_deref() }) == v);
            if present {
                add(name(v, side));
            }
        }
    }
    let links = m
        .cells
        .iter()
        .map(|c| Link {
            source: name(c.from.as_deref(), before),
            target: name(c.to.as_deref(), now),
            value: c.customers,
            revenue: c.revenue_cents as f64 / 100.0,
            url: flow_rule(c.from.as_deref(), c.to.as_deref()).map(|r| format!("/ui/segments?rule={}", super::percent_encode(&r))),
        })
        .collect();
    Some(Sankey { nodes, links })
}

fn cohort_rows(r: &CohortReport) -> Vec<CohortRow> {
    r.cohorts
        .iter()
        .map(|c| {
            let n = c.customers.max(1) as f64;
            let mut total = 0i64;
            CohortRow {
                cohort: c.cohort.clone(),
                customers: c.customers,
                share: c.active.iter().map(|a| if c.customers > 0 { *a as f64 / n } else { 0.0 }).collect(),
                cumulative: c
                    .revenue_cents
                    .iter()
                    .map(|r| {
                        total = total.saturating_add(*r);
                        if c.customers > 0 {
                            total as f64 / 100.0 / n
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

fn trends(t: &TrendReport) -> Trends {
    Trends {
        months: t.months.iter().map(|m| m.month.clone()).collect(),
        new_customers: t.months.iter().map(|m| m.new_customers).collect(),
        active_customers: t.months.iter().map(|m| m.active_customers).collect(),
        repeat_customers: t.months.iter().map(|m| m.repeat_customers).collect(),
        orders: t.months.iter().map(|m| m.orders).collect(),
        revenue: t.months.iter().map(|m| m.revenue_cents as f64 / 100.0).collect(),
        churn_rate: t.months.iter().map(|m| m.churn_rate.map(|r| (r * 1000.0).round() / 10.0)).collect(),
    }
}

/// The labels `assets/history.js` needs.
fn labels(lang: Lang) -> std::collections::BTreeMap<&'static str, &'static str> {
    let all = crate::i18n::labels(lang);
    [
        "customers_n",
        "new_customers",
        "active_customers",
        "repeat_customers",
        "orders_n",
        "revenue_yuan",
        "churn_rate",
        "months_since_first",
        "cohort",
        "share_active",
        "revenue_per_customer",
    ]
    .into_iter()
    .map(|k| (k, all.get(k).copied().unwrap_or(k)))
    .collect()
}

/// The dashboard's history JSON for what `actor` sees (cohorts of the last 24 months, trends of
/// the last 12); `None` when none of
/// it can be read (the rest of the dashboard still shows).
pub async fn dashboard_data(state: &AppState, actor: &Actor, lang: Lang) -> Option<Value> {
    let migration = state.store.migration(actor, None, None, Dimension::AbcdTier).await.ok();
    // Two years of cohorts: an established base has few new cohorts in the last 12 months.
    let last = state.store.cohorts(actor, None, None).await.ok()?.last_month;
    let last = patron_store::cohorts::parse_month(&last, "to").ok()?;
    let from = patron_store::cohorts::month_label((last - 23).max(0));
    let to = patron_store::cohorts::month_label(last);
    let cohorts = state.store.cohorts(actor, Some(&from), Some(&to)).await.ok()?;
    let trend = state.store.trends(actor, None, None).await.ok()?;
    let data = History {
        labels: labels(lang),
        sankey: migration.as_ref().and_then(|m| sankey(m, lang)),
        cohorts: cohort_rows(&cohorts),
        trends: trends(&trend),
    };
    Some(script_json(&data))
}

#[derive(Serialize)]
struct SizePoint {
    run_id: i64,
    as_of: String,
    customers: i64,
}

/// A saved segment's size at each run, as an inline SVG line (no script needed): the points,
/// and the polyline in a 300 × 60 box. `None` with fewer than one measurement.
pub async fn segment_sizes(state: &AppState, key: &str) -> Option<Value> {
    let sizes = state.store.segment_sizes(key).await.ok()?;
    if sizes.is_empty() {
        return None;
    }
    let max = sizes.iter().map(|s| s.customers).max().unwrap_or(0).max(1) as f64;
    let step = if sizes.len() > 1 { 290.0 / (sizes.len() - 1) as f64 } else { 0.0 };
    let points: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{:.1},{:.1}", 5.0 + step * i as f64, 55.0 - 50.0 * s.customers as f64 / max))
        .collect();
    let list: Vec<SizePoint> = sizes
        .iter()
        .map(|s| SizePoint { run_id: s.run_id, as_of: s.as_of.map(|d| d.to_string()).unwrap_or_default(), customers: s.customers })
        .collect();
    Some(minijinja::context! { points => points.join(" "), sizes => Value::from_serialize(&list) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_become_rules() {
        assert_eq!(flow_rule(Some("A"), Some("B")).as_deref(), Some(r#"previous_abcd_tier = "A" and abcd_tier = "B""#));
        assert_eq!(flow_rule(None, Some("none")).as_deref(), Some("previous_abcd_tier is null and abcd_tier is null"));
        assert_eq!(flow_rule(Some("none"), Some("C")).as_deref(), Some(r#"previous_abcd_tier is null and abcd_tier = "C""#));
        assert_eq!(flow_rule(Some("A"), None), None);
        for r in [flow_rule(Some("A"), Some("B")), flow_rule(None, Some("none"))].into_iter().flatten() {
            assert!(patron_store::segments::check_rule(&r).is_ok(), "{r}");
        }
    }
}
