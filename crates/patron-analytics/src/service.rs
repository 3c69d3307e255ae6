//! Service-loop statistics (DESIGN.md §4): the Pareto of complaint causes, NPS and CSAT, and
//! the median of durations.

use serde::{Deserialize, Serialize};

/// One cause in a Pareto table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoRow {
    /// The cause.
    pub category: String,
    /// How many.
    pub count: u64,
    /// Its share of all (0–1).
    pub share: f64,
    /// The share of this cause and every more frequent one (0–1).
    pub cumulative_share: f64,
    /// In the vital few: the shortest prefix whose cumulative share reaches the cut (80%).
    pub vital_few: bool,
}

/// Causes by count, descending (ties by name, so the table is stable), with shares, cumulative
/// shares and the vital few: the shortest prefix whose cumulative share reaches `cut` (0.8).
/// Causes with a zero count are left out.
pub fn pareto(counts: impl IntoIterator<Item = (String, u64)>, cut: f64) -> Vec<ParetoRow> {
    let mut rows: Vec<(String, u64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let mut cumulative = 0u64;
    let mut reached = false;
    rows.into_iter()
        .map(|(category, count)| {
            cumulative += count;
            let share = count as f64 / total as f64;
            let cumulative_share = cumulative as f64 / total as f64;
            // Counted in integers so that 4 of 5 reaches 80% exactly.
            let vital_few = !reached;
            reached = reached || cumulative as f64 >= cut * total as f64 - 1e-9 * total as f64;
            ParetoRow { category, count, share, cumulative_share, vital_few }
        })
        .collect()
}

/// Net Promoter Score of 0–10 answers: (promoters 9–10 − detractors 0–6) / answers × 100;
/// `None` without answers.
pub fn nps(scores: &[u8]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let promoters = scores.iter().filter(|&&s| s >= 9).count() as f64;
    let detractors = scores.iter().filter(|&&s| s <= 6).count() as f64;
    Some((promoters - detractors) / scores.len() as f64 * 100.0)
}

/// CSAT of 1–5 answers: the mean and the share of 4–5; `None` without answers.
pub fn csat(scores: &[u8]) -> Option<(f64, f64)> {
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let satisfied = scores.iter().filter(|&&s| s >= 4).count() as f64 / n;
    Some((mean, satisfied))
}

/// The median (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &mut [i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] as f64 } else { (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
    }

    #[test]
    fn pareto_marks_the_shortest_prefix_reaching_80_percent() {
        // 50 + 30 = 80 of 100: exactly the cut, so two causes are the vital few.
        let rows = pareto(counts(&[("收费错误", 5), ("上菜慢", 50), ("菜品质量", 30), ("服务态度", 15), ("其他", 0)]), 0.8);
        let names: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
        assert_eq!(names, ["上菜慢", "菜品质量", "服务态度", "收费错误"], "by count, zero left out");
        let vital: Vec<bool> = rows.iter().map(|r| r.vital_few).collect();
        assert_eq!(vital, [true, true, false, false]);
        assert!((rows[1].cumulative_share - 0.8).abs() < 1e-12);
        assert!((rows[3].cumulative_share - 1.0).abs() < 1e-12);
        assert!((rows[2].share - 0.15).abs() < 1e-12);
        // 79 of 100 after two: the third is needed too.
        let rows = pareto(counts(&[("a", 50), ("b", 29), ("c", 21)]), 0.8);
        assert_eq!(rows.iter().filter(|r| r.vital_few).count(), 3);
        // One cause is all of it; ties are ordered by name.
        assert!(pareto(counts(&[("x", 3)]), 0.8)[0].vital_few);
        let tie = pareto(counts(&[("乙", 2), ("甲", 2)]), 0.8);
        assert_eq!((tie[0].category.as_str(), tie[0].vital_few, tie[1].vital_few), ("乙", true, true));
        assert!(pareto(Vec::new(), 0.8).is_empty());
    }

    #[test]
    fn nps_csat_and_median_follow_their_definitions() {
        // 3 promoters, 2 passives, 5 detractors of 10: (3 − 5) / 10 × 100 = −20.
        assert_eq!(nps(&[10, 9, 9, 8, 7, 6, 5, 0, 3, 1]), Some(-20.0));
        assert_eq!(nps(&[]), None);
        assert_eq!(csat(&[5, 4, 3, 1]), Some((3.25, 0.5)));
        assert_eq!(median(&mut [5, 1, 3]), Some(3.0));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
