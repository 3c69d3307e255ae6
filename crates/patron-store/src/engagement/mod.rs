//! Engagement (issue 12; DESIGN.md C11): message templates with a personalisation lint, the one
//! outbox of messages to customers (written before anything is sent, claimed and sent once),
//! and the settings that bound marketing (global control group, frequency caps, quiet hours).
//!
//! The channels themselves (SMTP, webhooks, files) are the server's; the store decides what is
//! due, renders it for its customer, and records what happened.

pub mod calibrated;
pub mod calibration;
pub mod campaigns;
pub mod outbox;
pub mod personal;
pub mod report;
pub mod templates;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The settings key of [`EngagementSettings`].
pub const ENGAGEMENT: &str = "engagement";

/// A channel a message goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail (subject, text and HTML).
    Email,
    /// SMS (text).
    Sms,
    /// WeChat (text).
    Wechat,
    /// Direct mail (a CSV of recipients and their addresses).
    Mail,
}

impl Channel {
    /// The stored name (also the consent channel).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Wechat => "wechat",
            Channel::Mail => "mail",
        }
    }
    /// From the stored name.
    pub fn parse(s: &str) -> Result<Channel> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            "wechat" => Ok(Channel::Wechat),
            "mail" => Ok(Channel::Mail),
            other => Err(StoreError::Internal(format!("unknown channel {other:?}"))),
        }
    }
    /// Every channel.
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Wechat, Channel::Mail];
}

/// What a message is for: marketing is bounded by consent, caps, the global control group and
/// holdouts and carries an unsubscribe link; transactional messages (survey invitations, ticket
/// confirmations) are exempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Campaigns and journeys.
    Marketing,
    /// Messages the customer's own business with us calls for.
    Transactional,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Transactional => "transactional",
        }
    }
    /// From the stored name.
    pub fn parse(s: &str) -> Result<Purpose> {
        match s {
            "marketing" => Ok(Purpose::Marketing),
            "transactional" => Ok(Purpose::Transactional),
            other => Err(StoreError::Internal(format!("unknown purpose {other:?}"))),
        }
    }
}

/// How marketing is bounded (settings key `engagement`; admins change it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngagementSettings {
    /// Share of all customers (percent) held out of every marketing message, by a hash of the
    /// customer id and `global_control_salt`.
    pub global_control_percent: f64,
    /// The salt of the global control group (changing it draws a new group).
    pub global_control_salt: String,
    /// At most this many marketing messages per customer in any 7 days (across campaigns and journeys).
    pub cap_7_days: i64,
    /// At most this many in any 30 days.
    pub cap_30_days: i64,
    /// Quiet hours for SMS and WeChat, business time (`21:00`): no message from this time …
    pub quiet_start: NaiveTime,
    /// … until this time (`09:00`); the send waits.
    pub quiet_end: NaiveTime,
    /// Messages per second per channel, at send time.
    pub rate_per_second: f64,
    /// Sending attempts before a message counts as failed.
    pub max_attempts: i64,
    /// Greetings the personalisation lint refuses (in the text or as a fallback value);
    /// compared without regard to case.
    pub generic_greetings: Vec<String>,
}

/// The generic greetings the lint refuses unless the settings say otherwise.
pub const DEFAULT_GENERIC_GREETINGS: &[&str] = &[
    "尊敬的客户",
    "尊敬的会员",
    "尊敬的用户",
    "尊敬的顾客",
    "亲爱的用户",
    "亲爱的顾客",
    "亲爱的客户",
    "亲爱的会员",
    "各位顾客",
    "各位会员",
    "Dear customer",
    "Dear valued customer",
    "Dear member",
    "Dear valued member",
    "Dear user",
    "Dear client",
    "Dear sir or madam",
    "Dear sir/madam",
    "To whom it may concern",
];

impl Default for EngagementSettings {
    fn default() -> Self {
        EngagementSettings {
            global_control_percent: 5.0,
            global_control_salt: "patron-global-control".into(),
            cap_7_days: 2,
            cap_30_days: 6,
            quiet_start: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
            quiet_end: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            rate_per_second: 50.0,
            max_attempts: 6,
            generic_greetings: DEFAULT_GENERIC_GREETINGS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl EngagementSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=50.0).contains(&self.global_control_percent) {
            return Err(StoreError::invalid("global_control_percent", "must be 0 to 50"));
        }
        if self.global_control_salt.is_empty() || self.global_control_salt.chars().count() > 200 || self.global_control_salt.contains('\0')
        {
            return Err(StoreError::invalid("global_control_salt", "1 to 200 characters"));
        }
        if !(0..=1000).contains(&self.cap_7_days) || !(0..=1000).contains(&self.cap_30_days) {
            return Err(StoreError::invalid("cap_7_days", "caps must be 0 to 1000"));
        }
        if !(self.rate_per_second.is_finite() && self.rate_per_second > 0.0 && self.rate_per_second <= 100_000.0) {
            return Err(StoreError::invalid("rate_per_second", "must be above 0 and at most 100000"));
        }
        if !(1..=50).contains(&self.max_attempts) {
            return Err(StoreError::invalid("max_attempts", "must be 1 to 50"));
        }
        if self.generic_greetings.len() > 500 || self.generic_greetings.iter().any(|g| g.trim().is_empty() || g.chars().count() > 100) {
            return Err(StoreError::invalid("generic_greetings", "at most 500 entries of 1 to 100 characters"));
        }
        Ok(())
    }

    /// Whether a customer is in the global control group: the first 8 bytes of
    /// SHA-256(salt ":" id) as a fraction of 2⁶⁴, below the share. Stable for a salt.
    pub fn in_global_control(&self, customer_id: i64) -> bool {
        let h = Sha256::digest(format!("{}:{customer_id}", self.global_control_salt).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        let x = u64::from_be_bytes(b) as f64 / 18_446_744_073_709_551_616.0;
        x < self.global_control_percent / 100.0
    }

    /// When an SMS or WeChat message may go out: `now` outside quiet hours, else the end of the
    /// quiet hours (business time `tz`).
    pub fn next_allowed(&self, now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
        if self.quiet_start == self.quiet_end {
            return now;
        }
        let local = now.with_timezone(&tz);
        let t = local.time();
        let quiet = if self.quiet_start > self.quiet_end {
            t >= self.quiet_start || t < self.quiet_end
        } else {
            t >= self.quiet_start && t < self.quiet_end
        };
        if !quiet {
            return now;
        }
        let day = if t >= self.quiet_end { local.date_naive() + Duration::days(1) } else { local.date_naive() };
        let end = day.and_time(self.quiet_end);
        // A gap (daylight saving) at the end of quiet hours: an hour later is allowed.
        tz.from_local_datetime(&end)
            .earliest()
            .or_else(|| tz.from_local_datetime(&(end + Duration::hours(1))).earliest())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now)
    }
}

impl Store {
    /// The engagement settings.
    pub async fn engagement_settings(&self) -> Result<EngagementSettings> {
        self.setting(ENGAGEMENT).await
    }

    /// Replaces the engagement settings (admin; audited).
    pub async fn set_engagement_settings(&self, actor: &Actor, s: &EngagementSettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, ENGAGEMENT, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wait_for_the_morning() {
        let s = EngagementSettings::default();
        let tz = chrono_tz::Asia::Shanghai;
        // 22:30 in Shanghai is 14:30 UTC; the next allowed time is 09:00 next day = 01:00 UTC.
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 14, 30, 0).unwrap();
        assert_eq!(s.next_allowed(at, tz), Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap());
        // 03:00 Shanghai (19:00 UTC the day before) waits for 09:00 the same day.
        let at = Utc.with_ymd_and_hms(2026, 6, 29, 19, 0, 0).unwrap();
        assert_eq!(s.next_allowed(at, tz), Utc.with_ymd_and_hms(2026, 6, 30, 1, 0, 0).unwrap());
        // 12:00 Shanghai is allowed.
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 4, 0, 0).unwrap();
        assert_eq!(s.next_allowed(at, tz), at);
    }

    #[test]
    fn the_global_control_is_about_its_share() {
        let s = EngagementSettings::default();
        let n = (1..=20_000).filter(|id| s.in_global_control(*id)).count();
        assert!((800..1200).contains(&n), "{n} of 20000 in a 5% group");
        let none = EngagementSettings { global_control_percent: 0.0, ..Default::default() };
        assert!(!(1..=1000).any(|id| none.in_global_control(id)));
    }
}
