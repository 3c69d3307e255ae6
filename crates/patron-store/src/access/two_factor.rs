//! Two-factor login (issue 21 §4): TOTP codes (RFC 6238: HMAC-SHA1, 30-second steps, 6
//! digits), recovery codes, the per-role policy that makes it mandatory, and the login challenge
//! that sits between a right password and the session.
//!
//! Time comes from the store's clock, so tests move it. A code is accepted for its own step and
//! the steps either side (a phone's clock a little off, a code typed as it turned over), never
//! two steps away, and never twice: the step of the last code used is kept.
//!
//! The TOTP key must be readable to check codes, so it is stored as is; it is never logged, never
//! in an error message, and leaves the store only in the enrolment answer. Recovery codes are
//! random (50 bits) and stored as SHA-256 digests like session ids.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use utoipa::ToSchema;

use crate::db::query;
use crate::users::{digest, new_secret, Actor, Role, User};
use crate::{audit, Result, Store, StoreError};

/// Seconds per TOTP step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes a login challenge takes before it ends (the password must be given again).
pub const CHALLENGE_ATTEMPTS: i32 = 5;
/// How long a login challenge waits for its code.
pub const CHALLENGE_MINUTES: i64 = 10;
/// The settings key of [`TwoFactorPolicy`].
pub const POLICY: &str = "two_factor";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (case-insensitive, spaces and padding ignored); `None` on a stray character.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !matches!(c, b' ' | b'=' | b'-')) {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The HOTP value (RFC 4226) of `key` at `counter`, as `DIGITS` digits.
pub fn hotp(key: &[u8], counter: u64) -> String {
    // HMAC accepts a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let bin =
        (u32::from(h[offset] & 0x7f) << 24) | (u32::from(h[offset + 1]) << 16) | (u32::from(h[offset + 2]) << 8) | u32::from(h[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// The TOTP step of an instant.
pub fn step_at(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(STEP_SECONDS)
}

/// The code for `secret` (base32) at instant `t`; `None` for an unreadable secret.
pub fn code_at(secret: &str, t: DateTime<Utc>) -> Option<String> {
    let key = base32_decode(secret)?;
    Some(hotp(&key, step_at(t) as u64))
}

/// The step within one of `now`'s whose code `code` is, if any.
fn matching_step(key: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let now_step = step_at(now);
    [now_step, now_step - 1, now_step + 1]
        .into_iter()
        .find(|&s| s >= 0 && constant_time_eq(hotp(key, s as u64).as_bytes(), code.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `otpauth://` address an authenticator app reads from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// A recovery code as typed: lower case, without spaces and dashes.
fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

fn new_recovery_code() -> String {
    let mut bytes = [0u8; 7];
    OsRng.fill_bytes(&mut bytes);
    let s = base32_encode(&bytes).to_lowercase();
    format!("{}-{}", &s[..5], &s[5..10])
}

/// Which roles must log in with two factors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TwoFactorPolicy {
    /// Role names (built-in or custom) whose users must use a second factor: a user of such a
    /// role without one enrols at the next login before the session starts.
    pub required_roles: Vec<String>,
}

/// A user's two-factor state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TwoFactorStatus {
    /// An authenticator is enrolled and confirmed.
    pub enabled: bool,
    /// The user's role requires it.
    pub required: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// What a second factor was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code.
    Code,
    /// A recovery code (now used up).
    RecoveryCode,
}

/// Why a login is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// A code from the enrolled authenticator.
    Code,
    /// The role requires two factors and the user must enrol first.
    Enrol,
}

impl ChallengePurpose {
    fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Code => "totp",
            ChallengePurpose::Enrol => "enrol",
        }
    }
}

/// A login waiting for its second step.
#[derive(Debug, Clone)]
pub struct LoginChallenge {
    /// Who gave the right password.
    pub user: User,
    /// What is due.
    pub purpose: ChallengePurpose,
}

/// A started enrolment: the key to put into the authenticator (shown once, with its QR code).
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The key, base32.
    pub secret: String,
    /// The `otpauth://` address (the QR code's content).
    pub uri: String,
}

impl Store {
    /// The two-factor policy.
    pub async fn two_factor_policy(&self) -> Result<TwoFactorPolicy> {
        self.setting(POLICY).await
    }

    /// Replaces the two-factor policy (audited). Every role named must exist.
    pub async fn set_two_factor_policy(&self, actor: &Actor, p: &TwoFactorPolicy) -> Result<TwoFactorPolicy> {
        let mut roles: Vec<String> = Vec::new();
        for r in &p.required_roles {
            let r = r.trim();
            if r.parse::<Role>().is_err() {
                let found: Option<(String,)> =
                    self.db.reader().fetch_optional(query("SELECT name FROM roles WHERE name = $1").bind(r)).await?;
                if found.is_none() {
                    return Err(StoreError::invalid("required_roles", format!("no role named {r:?}")));
                }
            }
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_owned());
            }
        }
        let p = TwoFactorPolicy { required_roles: roles };
        self.put_setting(actor, POLICY, serde_json::to_value(&p).map_err(|e| StoreError::Internal(e.to_string()))?).await?;
        Ok(p)
    }

    /// Whether `user`'s role must log in with two factors.
    pub async fn two_factor_required(&self, user: &User) -> Result<bool> {
        Ok(self.two_factor_policy().await?.required_roles.contains(&user.role_name))
    }

    /// Whether `user_id` has a confirmed authenticator.
    pub async fn two_factor_enabled(&self, user_id: i64) -> Result<bool> {
        let row: Option<(i64,)> = self
            .db
            .reader()
            .fetch_optional(query("SELECT user_id FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL").bind(user_id))
            .await?;
        Ok(row.is_some())
    }

    /// Ids of the users with a confirmed authenticator.
    pub async fn two_factor_user_ids(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> =
            self.db.reader().fetch_all(query("SELECT user_id FROM user_totp WHERE confirmed_at IS NOT NULL ORDER BY user_id")).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// A user's two-factor state.
    pub async fn two_factor_status(&self, user: &User) -> Result<TwoFactorStatus> {
        let (left,): (i64,) = self
            .db
            .reader()
            .fetch_one(query("SELECT COUNT(*) FROM user_recovery_codes WHERE user_id = $1 AND used_at IS NULL").bind(user.id))
            .await?;
        Ok(TwoFactorStatus {
            enabled: self.two_factor_enabled(user.id).await?,
            required: self.two_factor_required(user).await?,
            recovery_codes_left: left,
        })
    }

    /// Starts (or restarts) enrolment: a new key, not in force until [`Store::confirm_totp`].
    /// Refused (409) while an authenticator is confirmed: it must be turned off first.
    pub async fn start_totp_enrolment(&self, user: &User, issuer: &str) -> Result<Enrolment> {
        if self.two_factor_enabled(user.id).await? {
            return Err(StoreError::Conflict("two-factor login is on already; turn it off before enrolling again".into()));
        }
        let mut key = [0u8; 20];
        OsRng.fill_bytes(&mut key);
        let secret = base32_encode(&key);
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            query(
                "INSERT INTO user_totp (user_id, secret, confirmed_at, last_step, created_at) VALUES ($1, $2, NULL, 0, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed_at = NULL, last_step = 0, created_at = excluded.created_at",
            )
            .bind(user.id)
            .bind(&secret)
            .bind(now),
        )
        .await?;
        tx.commit().await?;
        Ok(Enrolment { uri: otpauth_uri(issuer, &user.email, &secret), secret })
    }

    /// The enrolment in progress (key not yet confirmed), to show its QR code again.
    pub async fn pending_enrolment(&self, user: &User, issuer: &str) -> Result<Option<Enrolment>> {
        let row: Option<(String,)> = self
            .db
            .reader()
            .fetch_optional(query("SELECT secret FROM user_totp WHERE user_id = $1 AND confirmed_at IS NULL").bind(user.id))
            .await?;
        Ok(row.map(|(secret,)| Enrolment { uri: otpauth_uri(issuer, &user.email, &secret), secret }))
    }

    /// Confirms enrolment with a code from the authenticator: two-factor login is on from now.
    /// Returns the new recovery codes, the only time they are shown (earlier ones are void).
    pub async fn confirm_totp(&self, actor_key: &str, user_id: i64, code: &str) -> Result<Vec<String>> {
        let code = code.trim();
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(String,)> =
            tx.fetch_optional(query("SELECT secret FROM user_totp WHERE user_id = $1 AND confirmed_at IS NULL").bind(user_id)).await?;
        let Some((secret,)) = row else {
            return Err(StoreError::State("no enrolment is in progress; start one first".into()));
        };
        let key = base32_decode(&secret).ok_or_else(|| StoreError::Internal("stored TOTP key unreadable".into()))?;
        let Some(step) = matching_step(&key, code, now) else {
            return Err(StoreError::invalid("code", "that code is not right; check the authenticator's time and try the current code"));
        };
        tx.execute(query("UPDATE user_totp SET confirmed_at = $1, last_step = $2 WHERE user_id = $3").bind(now).bind(step).bind(user_id))
            .await?;
        let codes = replace_recovery_codes(&mut tx, user_id).await?;
        audit::record(&mut tx, now, actor_key, "enable_two_factor", "user", Some(user_id.to_string()), None).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Checks a second factor of `user_id` at the clock's now: a TOTP code (not used before) or
    /// an unused recovery code, which is used up. `None`: refused.
    pub async fn verify_second_factor(&self, user_id: i64, code: &str) -> Result<Option<SecondFactor>> {
        let now = self.now();
        let code = code.trim();
        if code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            let row: Option<(String, i64)> = self
                .db
                .reader()
                .fetch_optional(
                    query("SELECT secret, last_step FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL").bind(user_id),
                )
                .await?;
            let Some((secret, last)) = row else { return Ok(None) };
            let key = base32_decode(&secret).ok_or_else(|| StoreError::Internal("stored TOTP key unreadable".into()))?;
            let Some(step) = matching_step(&key, code, now) else { return Ok(None) };
            if step <= last {
                return Ok(None);
            }
            // Only one request can move the step forward: a code replayed concurrently fails here.
            let mut tx = self.db.begin().await?;
            let n = tx
                .execute(query("UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND last_step < $1").bind(step).bind(user_id))
                .await?;
            tx.commit().await?;
            return Ok((n == 1).then_some(SecondFactor::Code));
        }
        let normal = normalise_recovery(code);
        if normal.len() != 10 {
            return Ok(None);
        }
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query("UPDATE user_recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
                    .bind(now)
                    .bind(user_id)
                    .bind(digest(&normal)),
            )
            .await?;
        if n == 1 {
            audit::record(&mut tx, now, &format!("user:{user_id}"), "use_recovery_code", "user", Some(user_id.to_string()), None).await?;
        }
        tx.commit().await?;
        Ok((n == 1).then_some(SecondFactor::RecoveryCode))
    }

    /// New recovery codes (the old ones stop working); shown once. Needs two-factor login on.
    pub async fn regenerate_recovery_codes(&self, actor_key: &str, user_id: i64) -> Result<Vec<String>> {
        if !self.two_factor_enabled(user_id).await? {
            return Err(StoreError::State("two-factor login is off".into()));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let codes = replace_recovery_codes(&mut tx, user_id).await?;
        audit::record(&mut tx, now, actor_key, "new_recovery_codes", "user", Some(user_id.to_string()), None).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Turns two-factor login off for `user_id` (the user, or an administrator for a lost
    /// phone); audited. A user whose role requires it enrols again at the next login.
    pub async fn disable_two_factor(&self, actor: &Actor, user_id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1").bind(user_id)).await?;
        if found.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        tx.execute(query("DELETE FROM user_totp WHERE user_id = $1").bind(user_id)).await?;
        tx.execute(query("DELETE FROM user_recovery_codes WHERE user_id = $1").bind(user_id)).await?;
        audit::record(&mut tx, now, &actor.key, "disable_two_factor", "user", Some(user_id.to_string()), None).await?;
        tx.commit().await
    }

    /// Opens a login challenge for `user` after a right password; returns its secret (for a
    /// short-lived cookie).
    pub async fn create_login_challenge(&self, user: &User, purpose: ChallengePurpose) -> Result<String> {
        let secret = new_secret("l_");
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM login_challenges WHERE expires_at < $1 OR user_id = $2").bind(now).bind(user.id)).await?;
        tx.execute(
            query("INSERT INTO login_challenges (token_hash, user_id, purpose, attempts, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5)")
                .bind(digest(&secret))
                .bind(user.id)
                .bind(purpose.as_str())
                .bind(now)
                .bind(now + Duration::minutes(CHALLENGE_MINUTES)),
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// The live challenge for a cookie secret (an expired one, or one of a deactivated user: none).
    pub async fn login_challenge(&self, secret: &str) -> Result<Option<LoginChallenge>> {
        let row: Option<(i64, String)> = self
            .db
            .reader()
            .fetch_optional(
                query("SELECT user_id, purpose FROM login_challenges WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3")
                    .bind(digest(secret))
                    .bind(self.now())
                    .bind(CHALLENGE_ATTEMPTS),
            )
            .await?;
        let Some((user_id, purpose)) = row else { return Ok(None) };
        let user = self.user(user_id).await?;
        if !user.active {
            return Ok(None);
        }
        let purpose = if purpose == "enrol" { ChallengePurpose::Enrol } else { ChallengePurpose::Code };
        Ok(Some(LoginChallenge { user, purpose }))
    }

    /// Counts a wrong code against the challenge; true when it has no attempts left (it is over).
    pub async fn login_challenge_failed(&self, secret: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let row: Option<(i32,)> = tx
            .fetch_optional(
                query("UPDATE login_challenges SET attempts = attempts + 1 WHERE token_hash = $1 RETURNING attempts").bind(digest(secret)),
            )
            .await?;
        let over = row.is_none_or(|(a,)| a >= CHALLENGE_ATTEMPTS);
        if over {
            tx.execute(query("DELETE FROM login_challenges WHERE token_hash = $1").bind(digest(secret))).await?;
        }
        tx.commit().await?;
        Ok(over)
    }

    /// Ends a challenge (its step passed, or the user gave up).
    pub async fn end_login_challenge(&self, secret: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM login_challenges WHERE token_hash = $1").bind(digest(secret))).await?;
        tx.commit().await
    }
}

async fn replace_recovery_codes(tx: &mut crate::db::Tx, user_id: i64) -> Result<Vec<String>> {
    tx.execute(query("DELETE FROM user_recovery_codes WHERE user_id = $1").bind(user_id)).await?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let c = new_recovery_code();
        if codes.contains(&c) {
            continue;
        }
        tx.execute(
            query("INSERT INTO user_recovery_codes (user_id, code_hash, used_at) VALUES ($1, $2, NULL)")
                .bind(user_id)
                .bind(digest(&normalise_recovery(&c))),
        )
        .await?;
        codes.push(c);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1, key "12345678901234567890", last 6 of the 8 digits.
        let key = b"12345678901234567890";
        for (t, want) in [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924"), (2000000000, "279037")] {
            let at = Utc.timestamp_opt(t, 0).single().unwrap();
            assert_eq!(hotp(key, step_at(at) as u64), want, "t={t}");
        }
        assert_eq!(code_at(&base32_encode(key), Utc.timestamp_opt(59, 0).single().unwrap()).as_deref(), Some("287082"));
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        for n in 0..40u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base32_decode(&base32_encode(&v)).unwrap(), v);
        }
        assert!(base32_decode("MZ1").is_none());
    }

    #[test]
    fn window_is_one_step_either_side() {
        let key = b"12345678901234567890";
        let now = Utc.timestamp_opt(1_700_000_000, 0).single().unwrap();
        let s = step_at(now);
        for (d, ok) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = hotp(key, (s + d) as u64);
            assert_eq!(matching_step(key, &code, now).is_some(), ok, "step {d}");
        }
    }

    #[test]
    fn recovery_codes_normalise() {
        let c = new_recovery_code();
        assert_eq!(c.len(), 11);
        assert_eq!(normalise_recovery(&c.to_uppercase().replace('-', " ")), normalise_recovery(&c));
        assert!(otpauth_uri("patron", "a b@x.com", "ABC").starts_with("otpauth://totp/patron:a%20b@x.com?secret=ABC&issuer=patron"));
    }
}
