//! Cost to serve (DESIGN.md C19, issue 13 §7): what a customer costs in a period — tickets (a
//! cost per ticket and per handling minute), compensations, messages sent (a unit cost per
//! channel) and rewards redeemed (their cost) — against the margin their spend earned (spend ×
//! a margin rate per category); profit = margin − cost. The profitability matrix of Shapiro,
//! Rangan, Moriarty and Ross ("Manage customers for profits (not just sales)", HBR 1987) puts
//! each customer in one of four cells by value (margin) and cost to serve, each split at its
//! median: carriage trade (high, high), passive (high value, low cost), aggressive (low value,
//! high cost), bargain basement (low, low). Pure: the store gathers the inputs.

use serde::Serialize;

/// One customer's figures for the period, minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CustomerCost {
    /// Completed orders' value in the period.
    pub revenue_cents: i64,
    /// Revenue × the margin rate of each line's category.
    pub margin_cents: i64,
    /// Tickets: per ticket plus per handling minute.
    pub ticket_cents: i64,
    /// Compensations granted.
    pub compensation_cents: i64,
    /// Messages sent, at their channel's unit cost.
    pub message_cents: i64,
    /// Rewards redeemed (not cancelled), at their cost.
    pub reward_cents: i64,
}

impl CustomerCost {
    /// The cost to serve: tickets, compensations, messages and rewards.
    pub fn cost_cents(&self) -> i64 {
        self.ticket_cents.saturating_add(self.compensation_cents).saturating_add(self.message_cents).saturating_add(self.reward_cents)
    }

    /// Margin less the cost to serve.
    pub fn profit_cents(&self) -> i64 {
        self.margin_cents.saturating_sub(self.cost_cents())
    }
}

/// A cell of the profitability matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Quadrant {
    /// High value, high cost to serve.
    CarriageTrade,
    /// High value, low cost.
    Passive,
    /// Low value, high cost.
    Aggressive,
    /// Low value, low cost.
    BargainBasement,
}

impl Quadrant {
    /// All four, high value first.
    pub const ALL: [Quadrant; 4] = [Quadrant::CarriageTrade, Quadrant::Passive, Quadrant::Aggressive, Quadrant::BargainBasement];

    /// The stored key.
    pub fn key(self) -> &'static str {
        match self {
            Quadrant::CarriageTrade => "carriage_trade",
            Quadrant::Passive => "passive",
            Quadrant::Aggressive => "aggressive",
            Quadrant::BargainBasement => "bargain_basement",
        }
    }

    /// Whether the cell is the high-value half.
    pub fn high_value(self) -> bool {
        matches!(self, Quadrant::CarriageTrade | Quadrant::Passive)
    }

    /// Whether the cell is the high-cost half.
    pub fn high_cost(self) -> bool {
        matches!(self, Quadrant::CarriageTrade | Quadrant::Aggressive)
    }
}

/// Where the matrix splits: a customer is high value above `margin_cents` and high cost above
/// `cost_cents` (strictly, so that with most customers at zero cost, zero is low).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Median margin.
    pub margin_cents: i64,
    /// Median cost to serve.
    pub cost_cents: i64,
}

/// The lower median (0 of nothing).
pub fn median(values: &mut [i64]) -> i64 {
    if values.is_empty() {
        return 0;
    }
    let mid = (values.len() - 1) / 2;
    *values.select_nth_unstable(mid).1
}

/// The medians of margin and cost over `customers`.
pub fn thresholds(customers: &[CustomerCost]) -> Thresholds {
    let mut m: Vec<i64> = customers.iter().map(|c| c.margin_cents).collect();
    let mut k: Vec<i64> = customers.iter().map(|c| c.cost_cents()).collect();
    Thresholds { margin_cents: median(&mut m), cost_cents: median(&mut k) }
}

/// The cell of a customer.
pub fn quadrant(c: &CustomerCost, t: &Thresholds) -> Quadrant {
    match (c.margin_cents > t.margin_cents, c.cost_cents() > t.cost_cents) {
        (true, true) => Quadrant::CarriageTrade,
        (true, false) => Quadrant::Passive,
        (false, true) => Quadrant::Aggressive,
        (false, false) => Quadrant::BargainBasement,
    }
}

/// An order's margin: its value spread over its lines by their list value, each share times its
/// category's rate (`rate(None)` for lines without a category and for orders without lines),
/// rounded to the cent.
pub fn order_margin(total_cents: i64, lines: &[(Option<&str>, i64)], rate: impl Fn(Option<&str>) -> f64) -> i64 {
    let list: i64 = lines.iter().map(|l| l.1.max(0)).sum();
    let m = if list <= 0 {
        total_cents as f64 * rate(None)
    } else {
        lines.iter().map(|(cat, v)| total_cents as f64 * (*v).max(0) as f64 / list as f64 * rate(*cat)).sum()
    };
    m.round() as i64
}

/// A ticket's cost: the per-ticket cost plus its handling minutes, capped, at the per-minute cost.
pub fn ticket_cost(handling_minutes: i64, per_ticket_cents: i64, per_minute_cents: i64, cap_minutes: i64) -> i64 {
    per_ticket_cents.saturating_add(handling_minutes.clamp(0, cap_minutes.max(0)).saturating_mul(per_minute_cents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profit_is_margin_less_every_cost() {
        let c = CustomerCost {
            revenue_cents: 100_000,
            margin_cents: 30_000,
            ticket_cents: 5_000,
            compensation_cents: 2_000,
            message_cents: 15,
            reward_cents: 1_200,
        };
        assert_eq!((c.cost_cents(), c.profit_cents()), (8_215, 21_785));
    }

    #[test]
    fn margins_follow_the_lines_categories() {
        let rate = |c: Option<&str>| match c {
            Some("蛋糕") => 0.5,
            Some("饮品") => 0.7,
            _ => 0.3,
        };
        // ¥90 paid for ¥100 of list value: ¥60 of cake and ¥40 of drinks → 54×0.5 + 36×0.7.
        assert_eq!(order_margin(9_000, &[(Some("蛋糕"), 6_000), (Some("饮品"), 4_000)], rate), 2_700 + 2_520);
        assert_eq!(order_margin(9_000, &[], rate), 2_700, "no lines: the default rate");
        assert_eq!(ticket_cost(30, 2_000, 50, 60), 3_500);
        assert_eq!(ticket_cost(600, 2_000, 50, 60), 5_000, "capped");
    }

    #[test]
    fn the_matrix_splits_at_the_medians() {
        let c = |margin: i64, cost: i64| CustomerCost { margin_cents: margin, ticket_cents: cost, ..Default::default() };
        let all = [c(100, 0), c(500, 50), c(300, 0), c(50, 80), c(800, 0)];
        let t = thresholds(&all);
        assert_eq!(t, Thresholds { margin_cents: 300, cost_cents: 0 });
        let q: Vec<&str> = all.iter().map(|x| quadrant(x, &t).key()).collect();
        assert_eq!(q, vec!["bargain_basement", "carriage_trade", "bargain_basement", "aggressive", "passive"]);
        assert_eq!(median(&mut []), 0);
    }
}
