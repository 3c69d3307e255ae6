//! Seasonality as a change of clock.
//!
//! The purchase intensity of every customer is `λ · s(t)`, where `s(t)` is a piecewise-constant
//! multiplier per hour: `s = weekday(d) · annual(d) · intraday(h) / norm(year)`.
//! - `intraday(h)`: lunch (11–13 h) and dinner (17–20 h) peaks, an afternoon-tea bump, near zero at
//!   night; normalised to mean 1 over the 24 hours.
//! - `weekday(d)`: Friday 1.15, Saturday 1.4, Sunday 1.3, Monday–Thursday 0.85–0.95.
//! - `annual(d)`: ×1.6 in the two weeks before Chinese New Year (banquets, gift cards), ×1.2 in the
//!   New Year week, ×1.15 in July–August (tea season), ×1.3 in Golden Week (1–7 Oct), ×1.3 on
//!   Valentine's day, 520 and Double 11, ×1.2 from 20 to 31 December.
//! - `norm(year)`: the mean of `weekday · annual` over the calendar year, so the mean of `s` over
//!   every calendar year is exactly 1.
//!
//! With `S(t) = ∫₀ᵗ s(u) du` ("effective days"), a Poisson process with rate `λ·s(t)` is a
//! homogeneous Poisson process with rate `λ` in effective time. The generator draws purchase gaps
//! in effective days and maps them back with `S⁻¹` — exact thinning-free sampling of the
//! modulated process, and the BG/NBD expectations hold with `T` replaced by `S(end) − S(first)`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

const INTRADAY: [f64; 24] =
    [0.15, 0.08, 0.05, 0.03, 0.03, 0.05, 0.2, 0.6, 1.0, 0.8, 0.9, 2.2, 3.2, 2.0, 1.0, 1.2, 1.1, 1.3, 2.8, 3.0, 1.8, 1.0, 0.6, 0.3];

fn chinese_new_year(year: i32) -> NaiveDate {
    const CNY: [(u32, u32); 21] = [
        (2, 19),
        (2, 8),
        (1, 28),
        (2, 16),
        (2, 5),
        (1, 25),
        (2, 12),
        (2, 1),
        (1, 22),
        (2, 10),
        (1, 29),
        (2, 17),
        (2, 6),
        (1, 26),
        (2, 13),
        (2, 3),
        (1, 23),
        (2, 11),
        (1, 31),
        (2, 19),
        (2, 8),
    ];
    let (m, d) = usize::try_from(year - 2015).ok().and_then(|i| CNY.get(i).copied()).unwrap_or((2, 5));
    NaiveDate::from_ymd_opt(year, m, d).unwrap_or(NaiveDate::MIN)
}

fn day_weight(d: NaiveDate) -> f64 {
    let weekday = match d.weekday() {
        Weekday::Mon | Weekday::Tue => 0.85,
        Weekday::Wed => 0.9,
        Weekday::Thu => 0.95,
        Weekday::Fri => 1.15,
        Weekday::Sat => 1.4,
        Weekday::Sun => 1.3,
    };
    let cny = chinese_new_year(d.year());
    let since_cny = (d - cny).num_days();
    let (m, day) = (d.month(), d.day());
    let mut annual = 1.0;
    if (-14..0).contains(&since_cny) {
        annual *= 1.6;
    } else if (0..7).contains(&since_cny) {
        annual *= 1.2;
    }
    if m == 7 || m == 8 {
        annual *= 1.15;
    }
    if (m == 10 && day <= 7) || (m, day) == (2, 14) || (m, day) == (5, 20) || (m, day) == (11, 11) {
        annual *= 1.3;
    }
    if m == 12 && day >= 20 {
        annual *= 1.2;
    }
    weekday * annual
}

fn year_norm(year: i32) -> f64 {
    let (Some(mut d), Some(next)) = (NaiveDate::from_ymd_opt(year, 1, 1), NaiveDate::from_ymd_opt(year + 1, 1, 1)) else {
        return 1.0;
    };
    let (mut sum, mut n) = (0.0, 0u32);
    while d < next {
        sum += day_weight(d);
        n += 1;
        d = d.succ_opt().unwrap_or(next);
    }
    sum / f64::from(n)
}

/// Hourly seasonal clock over `[start 00:00, end + 1 day)`. Every day has the same intraday
/// shape scaled by its day weight, so the tables are per day (small enough to stay in cache).
pub(crate) struct Clock {
    start: NaiveDateTime,
    /// the calendar days of the period
    days: Vec<NaiveDate>,
    /// effective days per calendar day (`weekday · annual / norm(year)`)
    day_w: Vec<f64>,
    /// cumulative effective days at the start of each day (len = days + 1)
    day_cum: Vec<f64>,
    /// share of a day's weight in each hour, and its cumulative sum (len 25, ends at 1)
    hour_w: [f64; 24],
    hour_cum: [f64; 25],
    /// `hour_guess[b]`: the hour in which the share `b / 64` of a day's weight is reached
    hour_guess: [u8; 65],
    /// `guess[k]`: the day in which `k` effective days have elapsed
    guess: Vec<u32>,
}

impl Clock {
    pub fn new(start: NaiveDate, end: NaiveDate) -> Clock {
        let intraday_sum = INTRADAY.iter().sum::<f64>();
        let mut hour_w = [0.0; 24];
        let mut hour_cum = [0.0; 25];
        for h in 0..24 {
            hour_w[h] = INTRADAY[h] / intraday_sum;
            hour_cum[h + 1] = hour_cum[h] + hour_w[h];
        }
        hour_cum[24] = 1.0;
        let mut hour_guess = [0u8; 65];
        for (b, g) in hour_guess.iter_mut().enumerate() {
            let x = b as f64 / 64.0;
            *g = (0..23).find(|&h| hour_cum[h + 1] > x).unwrap_or(23) as u8;
        }
        let (mut days, mut day_w, mut day_cum) = (Vec::new(), Vec::new(), vec![0.0]);
        let mut norm_year = (start.year(), year_norm(start.year()));
        let mut d = start;
        while d <= end {
            if d.year() != norm_year.0 {
                norm_year = (d.year(), year_norm(d.year()));
            }
            let dw = day_weight(d) / norm_year.1;
            days.push(d);
            day_w.push(dw);
            day_cum.push(day_cum[day_cum.len() - 1] + dw);
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        let total = day_cum[day_cum.len() - 1];
        let mut guess = Vec::with_capacity(total as usize + 2);
        let mut k = 0usize;
        for g in 0..=(total as usize + 1) {
            while k + 1 < days.len() && day_cum[k + 1] <= g as f64 {
                k += 1;
            }
            guess.push(k as u32);
        }
        Clock { start: start.and_time(NaiveTime::MIN), days, day_w, day_cum, hour_w, hour_cum, hour_guess, guess }
    }

    pub fn start(&self) -> NaiveDateTime {
        self.start
    }

    /// Length of the period in calendar hours.
    pub fn hours(&self) -> f64 {
        self.days.len() as f64 * 24.0
    }

    /// Total effective days of the period.
    pub fn total_effective_days(&self) -> f64 {
        self.day_cum[self.day_cum.len() - 1]
    }

    /// The multiplier `s` at `hours` calendar hours after the start.
    #[cfg(test)]
    pub fn multiplier(&self, hours: f64) -> f64 {
        let h = (hours as usize).min(self.days.len() * 24 - 1);
        self.day_w[h / 24] * self.hour_w[h % 24] * 24.0
    }

    /// `S(t)`: effective days elapsed at `hours` calendar hours after the start.
    pub fn effective_days(&self, hours: f64) -> f64 {
        let hours = hours.clamp(0.0, self.hours());
        let h = (hours as usize).min(self.days.len() * 24 - 1);
        let (d, hh) = (h / 24, h % 24);
        self.day_cum[d] + self.day_w[d] * (self.hour_cum[hh] + (hours - h as f64) * self.hour_w[hh])
    }

    /// `S⁻¹(τ)`: calendar hours after the start at which `tau` effective days have elapsed.
    pub fn hours_at(&self, tau: f64) -> f64 {
        let tau = tau.max(0.0);
        let last = self.days.len() - 1;
        let mut d = self.guess.get(tau as usize).map_or(last, |&g| g as usize);
        while d < last && self.day_cum[d + 1] <= tau {
            d += 1;
        }
        let x = ((tau - self.day_cum[d]) / self.day_w[d]).clamp(0.0, 1.0);
        let mut h = usize::from(self.hour_guess[(x * 64.0) as usize]);
        while h < 23 && self.hour_cum[h + 1] <= x {
            h += 1;
        }
        let frac = ((x - self.hour_cum[h]) / self.hour_w[h]).clamp(0.0, 1.0);
        ((d * 24 + h) as f64 + frac).min(self.hours())
    }

    /// The date-time `hours` calendar hours after the start, truncated to the second and kept
    /// inside the period.
    pub fn datetime(&self, hours: f64) -> NaiveDateTime {
        let max = self.days.len() as i64 * 86_400 - 1;
        let secs = ((hours * 3600.0) as i64).clamp(0, max);
        let time = NaiveTime::from_num_seconds_from_midnight_opt((secs % 86_400) as u32, 0).unwrap_or(NaiveTime::MIN);
        NaiveDateTime::new(self.days[(secs / 86_400) as usize], time)
    }

    /// Calendar hours from the start to `t` (may be negative or beyond the period).
    pub fn hours_since_start(&self, t: NaiveDateTime) -> f64 {
        (t - self.start).num_seconds() as f64 / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yearly_mean_is_one_and_inverse_round_trips() {
        let c = Clock::new(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2025, 12, 31).unwrap());
        assert!((c.total_effective_days() - 731.0).abs() < 1e-6, "{}", c.total_effective_days());
        for tau in [0.0, 0.01, 13.7, 200.5, 730.99] {
            let h = c.hours_at(tau);
            assert!((c.effective_days(h) - tau).abs() < 1e-6);
        }
        // Saturday dinner is busier than Tuesday 4 a.m.
        let sat = c.hours_since_start(NaiveDate::from_ymd_opt(2024, 3, 9).unwrap().and_hms_opt(19, 0, 0).unwrap());
        let tue = c.hours_since_start(NaiveDate::from_ymd_opt(2024, 3, 12).unwrap().and_hms_opt(4, 0, 0).unwrap());
        assert!(c.multiplier(sat) > 20.0 * c.multiplier(tue));
    }
}
