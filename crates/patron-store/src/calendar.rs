//! The business calendar: working hours per weekday, holidays and make-up working days, in the
//! business time zone, and working-time arithmetic over it (SLA clocks that count only the time
//! the service desk works). Pure: no database here; the calendar is stored as a setting.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Result, StoreError};

/// Opening hours of one day, local time: `["09:00", "18:00"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "[String; 2]", into = "[String; 2]")]
pub struct Hours {
    /// Opens.
    pub open: NaiveTime,
    /// Closes (after `open`, same day).
    pub close: NaiveTime,
}

impl TryFrom<[String; 2]> for Hours {
    type Error = String;
    fn try_from([open, close]: [String; 2]) -> std::result::Result<Self, String> {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?} is not a time of day (HH:MM)"));
        let (open, close) = (t(&open)?, t(&close)?);
        if close <= open {
            return Err(format!("closing time {close} must be after opening time {open}"));
        }
        Ok(Hours { open, close })
    }
}

impl From<Hours> for [String; 2] {
    fn from(h: Hours) -> Self {
        [h.open.format("%H:%M").to_string(), h.close.format("%H:%M").to_string()]
    }
}

fn hours(open: u32, close: u32) -> Option<Hours> {
    Some(Hours { open: NaiveTime::from_hms_opt(open, 0, 0)?, close: NaiveTime::from_hms_opt(close, 0, 0)? })
}

/// When the service desk works. Days in `holidays` are off whatever the weekday; days in
/// `workdays` (the make-up working days of mainland China's holiday arrangements, often a
/// Saturday or Sunday) work with Monday's hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessCalendar {
    /// Hours per weekday, Monday first (seven entries; `null` = closed).
    #[schema(value_type = Vec<Option<Vec<String>>>, example = json!([["09:00","18:00"],["09:00","18:00"],["09:00","18:00"],["09:00","18:00"],["09:00","18:00"],null,null]))]
    pub weekdays: Vec<Option<Hours>>,
    /// Days off (public holidays), `YYYY-MM-DD`.
    pub holidays: Vec<NaiveDate>,
    /// Make-up working days, `YYYY-MM-DD`.
    pub workdays: Vec<NaiveDate>,
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn days(y: i32, m: u32, from: u32, to: u32) -> impl Iterator<Item = NaiveDate> {
    (from..=to).map(move |d| ymd(y, m, d))
}

impl Default for BusinessCalendar {
    /// Monday to Friday 09:00–18:00, with mainland China's public holidays: 2026 as the State
    /// Council arranged them (国办发明电〔2025〕7号: days off and the make-up working days), and
    /// for 2027 the statutory days only (元旦, 除夕 to 初三, 清明, 5-1 and 5-2, 端午, 中秋,
    /// 10-1 to 10-3) until its arrangement is published and entered (the list is editable).
    fn default() -> Self {
        let mut holidays: Vec<NaiveDate> = Vec::new();
        // 2026
        holidays.extend(days(2026, 1, 1, 3));
        holidays.extend(days(2026, 2, 15, 23));
        holidays.extend(days(2026, 4, 4, 6));
        holidays.extend(days(2026, 5, 1, 5));
        holidays.extend(days(2026, 6, 19, 21));
        holidays.extend(days(2026, 9, 25, 27));
        holidays.extend(days(2026, 10, 1, 7));
        // 2027, statutory days
        holidays.push(ymd(2027, 1, 1));
        holidays.extend(days(2027, 2, 5, 8));
        holidays.push(ymd(2027, 4, 5));
        holidays.extend(days(2027, 5, 1, 2));
        holidays.push(ymd(2027, 6, 9));
        holidays.push(ymd(2027, 9, 15));
        holidays.extend(days(2027, 10, 1, 3));
        let workdays = vec![ymd(2026, 1, 4), ymd(2026, 2, 14), ymd(2026, 2, 28), ymd(2026, 5, 9), ymd(2026, 9, 20), ymd(2026, 10, 10)];
        let office = hours(9, 18);
        BusinessCalendar { weekdays: vec![office, office, office, office, office, None, None], holidays, workdays }
    }
}

/// Days searched for working time before giving up: a calendar that works at all finds some
/// within a week or two; this bounds the loops for one that (after validation) cannot happen.
const HORIZON_DAYS: i64 = 3 * 366;

impl BusinessCalendar {
    /// Checks the calendar can be used: seven weekdays, at least one of them working.
    pub fn validate(&self) -> Result<()> {
        if self.weekdays.len() != 7 {
            return Err(StoreError::invalid("weekdays", "give seven entries, Monday first (null for a closed day)"));
        }
        if self.weekdays.iter().all(Option::is_none) {
            return Err(StoreError::invalid("weekdays", "at least one weekday must have working hours"));
        }
        if self.holidays.len() + self.workdays.len() > 10_000 {
            return Err(StoreError::invalid("holidays", "at most 10,000 holidays and working days"));
        }
        Ok(())
    }

    /// The working hours of a local date, if it is a working day.
    pub fn hours_on(&self, day: NaiveDate) -> Option<Hours> {
        if self.holidays.contains(&day) {
            return None;
        }
        if self.workdays.contains(&day) {
            return self.weekdays.first().copied().flatten().or_else(|| self.weekdays.iter().flatten().next().copied());
        }
        self.weekdays.get(day.weekday().num_days_from_monday() as usize).copied().flatten()
    }

    /// The working interval of a local date in UTC, if it is a working day.
    fn interval<Z: TimeZone>(&self, tz: &Z, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let h = self.hours_on(day)?;
        let at = |t: NaiveTime| tz.from_local_datetime(&day.and_time(t)).earliest().map(|d| d.with_timezone(&Utc));
        Some((at(h.open)?, at(h.close)?))
    }

    /// The instant `minutes` of working time after `start` (a start outside working hours counts
    /// from the next opening). Around the clock (`working_hours` false) it is plain minutes.
    pub fn add<Z: TimeZone>(&self, tz: &Z, start: DateTime<Utc>, minutes: i64, working_hours: bool) -> DateTime<Utc> {
        if !working_hours || minutes <= 0 {
            return start + Duration::minutes(minutes.max(0));
        }
        let mut left = Duration::minutes(minutes);
        let mut day = start.with_timezone(tz).date_naive();
        for _ in 0..HORIZON_DAYS {
            if let Some((open, close)) = self.interval(tz, day) {
                let from = open.max(start);
                if from < close {
                    let available = close - from;
                    if available >= left {
                        return from + left;
                    }
                    left -= available;
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        start + Duration::minutes(minutes)
    }

    /// Working minutes from `a` to `b` (0 when `b` is not after `a`); plain minutes around the
    /// clock.
    pub fn minutes_between<Z: TimeZone>(&self, tz: &Z, a: DateTime<Utc>, b: DateTime<Utc>, working_hours: bool) -> i64 {
        if b <= a {
            return 0;
        }
        if !working_hours {
            return (b - a).num_minutes();
        }
        let mut total = Duration::zero();
        let mut day = a.with_timezone(tz).date_naive();
        let last = b.with_timezone(tz).date_naive();
        while day <= last {
            if let Some((open, close)) = self.interval(tz, day) {
                let (from, to) = (open.max(a), close.min(b));
                if from < to {
                    total += to - from;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        total.num_minutes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    /// A Shanghai local time as UTC.
    fn sh(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn working_minutes_skip_nights_weekends_and_holidays() {
        let cal = BusinessCalendar::default();
        // Friday 2026-06-05 17:00 + 120 working minutes: 1 h on Friday, 1 h on Monday.
        assert_eq!(cal.add(&Shanghai, sh(2026, 6, 5, 17, 0), 120, true), sh(2026, 6, 8, 10, 0));
        // Before opening counts from opening.
        assert_eq!(cal.add(&Shanghai, sh(2026, 6, 8, 7, 30), 30, true), sh(2026, 6, 8, 9, 30));
        // Around the clock: plain minutes.
        assert_eq!(cal.add(&Shanghai, sh(2026, 6, 5, 17, 0), 120, false), sh(2026, 6, 5, 19, 0));
        // Dragon Boat festival (Fri 2026-06-19 to Sun 06-21): Thursday 17:30 + 60 → Monday 09:30.
        assert_eq!(cal.add(&Shanghai, sh(2026, 6, 18, 17, 30), 60, true), sh(2026, 6, 22, 9, 30));
        // A make-up working Saturday (2026-02-28) works with Monday's hours.
        assert_eq!(cal.add(&Shanghai, sh(2026, 2, 27, 17, 0), 120, true), sh(2026, 2, 28, 10, 0));
        // Spring Festival: Friday 2026-02-13 17:00 + 2 h → Saturday 02-14 (a make-up day) 10:00;
        // + 11 h → after the 9 days off, Tuesday 02-24 10:00.
        assert_eq!(cal.add(&Shanghai, sh(2026, 2, 13, 17, 0), 120, true), sh(2026, 2, 14, 10, 0));
        assert_eq!(cal.add(&Shanghai, sh(2026, 2, 13, 17, 0), 11 * 60, true), sh(2026, 2, 24, 10, 0));
    }

    #[test]
    fn minutes_between_is_the_inverse_of_add() {
        let cal = BusinessCalendar::default();
        assert_eq!(cal.minutes_between(&Shanghai, sh(2026, 6, 5, 17, 0), sh(2026, 6, 8, 10, 0), true), 120);
        assert_eq!(cal.minutes_between(&Shanghai, sh(2026, 6, 6, 10, 0), sh(2026, 6, 7, 23, 0), true), 0, "a weekend");
        assert_eq!(cal.minutes_between(&Shanghai, sh(2026, 6, 8, 10, 0), sh(2026, 6, 5, 17, 0), true), 0);
        for start in [sh(2026, 6, 5, 8, 0), sh(2026, 6, 5, 12, 34), sh(2026, 9, 30, 17, 59), sh(2026, 12, 31, 23, 0)] {
            for minutes in [1, 59, 540, 541, 3000, 20_000] {
                let end = cal.add(&Shanghai, start, minutes, true);
                assert_eq!(cal.minutes_between(&Shanghai, start, end, true), minutes, "{start} + {minutes}");
            }
        }
    }

    #[test]
    fn calendars_validate_and_round_trip_as_json() {
        let cal = BusinessCalendar::default();
        cal.validate().unwrap();
        let json = serde_json::to_value(&cal).unwrap();
        assert_eq!(json["weekdays"][0], serde_json::json!(["09:00", "18:00"]));
        assert_eq!(json["weekdays"][6], serde_json::Value::Null);
        let back: BusinessCalendar = serde_json::from_value(json).unwrap();
        assert_eq!(back, cal);
        let bad: std::result::Result<BusinessCalendar, _> =
            serde_json::from_value(serde_json::json!({"weekdays": [["18:00", "09:00"]], "holidays": [], "workdays": []}));
        assert!(bad.unwrap_err().to_string().contains("must be after"));
        let closed = BusinessCalendar { weekdays: vec![None; 7], ..cal.clone() };
        assert!(closed.validate().is_err());
        let short = BusinessCalendar { weekdays: vec![None; 3], ..cal };
        assert!(short.validate().is_err());
    }
}
