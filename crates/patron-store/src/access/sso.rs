//! Single sign-on with OpenID Connect (issue 21 §4): the provider's settings, the logins on their
//! way through the provider (state, PKCE verifier, nonce), and the user a verified ID token
//! stands for, matched by the provider's subject, then by e-mail, else created with the default
//! role and unit. The protocol itself (discovery, token exchange, signature) is the server's.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::users::{digest, Actor, Role, User};
use crate::{audit, Result, Store, StoreError};

/// The settings key of [`SsoSettings`].
pub const SETTINGS: &str = "sso";
/// How long a login may take at the provider.
pub const LOGIN_MINUTES: i64 = 10;

/// The provider, as stored (the client secret included: it never leaves the store through the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SsoSettings {
    /// The login page offers single sign-on.
    pub enabled: bool,
    /// The provider's issuer (its discovery document is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// patron's client id at the provider.
    pub client_id: String,
    /// patron's client secret at the provider.
    pub client_secret: String,
    /// Role of users created at their first login.
    pub default_role: String,
    /// Unit of users created at their first login.
    pub default_unit_id: Option<i64>,
    /// Create a user at the first login of an unknown e-mail (else only existing users log in).
    pub create_users: bool,
}

impl Default for SsoSettings {
    fn default() -> Self {
        SsoSettings {
            enabled: false,
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            default_role: "agent".into(),
            default_unit_id: None,
            create_users: true,
        }
    }
}

/// The provider's settings as the API shows them: the client secret only as set or not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoSettingsView {
    /// The login page offers single sign-on.
    pub enabled: bool,
    /// The provider's issuer URL.
    pub issuer: String,
    /// patron's client id at the provider.
    pub client_id: String,
    /// A client secret is stored (it is never shown).
    pub client_secret_set: bool,
    /// Role of users created at their first login.
    pub default_role: String,
    /// Unit of users created at their first login.
    pub default_unit_id: Option<i64>,
    /// Create a user at the first login of an unknown e-mail.
    pub create_users: bool,
}

/// New provider settings; a `client_secret` left out keeps the stored one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoSettingsInput {
    /// The login page offers single sign-on.
    pub enabled: bool,
    /// The provider's issuer URL (`https://…`; `http://` only for a provider on this machine).
    pub issuer: String,
    /// patron's client id at the provider.
    pub client_id: String,
    /// patron's client secret at the provider (left out: unchanged).
    pub client_secret: Option<String>,
    /// Role of users created at their first login (default `agent`).
    #[serde(default = "default_role")]
    pub default_role: String,
    /// Unit of users created at their first login.
    pub default_unit_id: Option<i64>,
    /// Create a user at the first login of an unknown e-mail (default true).
    #[serde(default = "yes")]
    pub create_users: bool,
}

fn default_role() -> String {
    "agent".into()
}
fn yes() -> bool {
    true
}

impl SsoSettings {
    fn view(&self) -> SsoSettingsView {
        SsoSettingsView {
            enabled: self.enabled,
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret_set: !self.client_secret.is_empty(),
            default_role: self.default_role.clone(),
            default_unit_id: self.default_unit_id,
            create_users: self.create_users,
        }
    }
}

/// Whether `issuer` is an address patron will talk to: https, or http on the loopback.
fn issuer_ok(issuer: &str) -> bool {
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) || issuer.len() > 500 {
        return false;
    }
    let rest = if let Some(r) = issuer.strip_prefix("https://") {
        r
    } else if let Some(r) = issuer.strip_prefix("http://") {
        let host = r.split(['/', ':']).next().unwrap_or("");
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return false;
        }
        r
    } else {
        return false;
    };
    !rest.is_empty() && !rest.starts_with('/')
}

impl Store {
    /// The provider's settings, as stored.
    pub async fn sso_settings(&self) -> Result<SsoSettings> {
        self.setting(SETTINGS).await
    }

    /// The provider's settings as the API shows them.
    pub async fn sso_settings_view(&self) -> Result<SsoSettingsView> {
        Ok(self.sso_settings().await?.view())
    }

    /// Replaces the provider's settings (audited; the secret never in the audit).
    pub async fn set_sso_settings(&self, actor: &Actor, input: &SsoSettingsInput) -> Result<SsoSettingsView> {
        let old = self.sso_settings().await?;
        let issuer = input.issuer.trim().trim_end_matches('/').to_owned();
        let client_id = input.client_id.trim().to_owned();
        let client_secret = match &input.client_secret {
            Some(s) => s.trim().to_owned(),
            None => old.client_secret.clone(),
        };
        // An empty issuer is allowed only while single sign-on is off.
        if (!issuer.is_empty() || input.enabled) && !issuer_ok(&issuer) {
            return Err(StoreError::invalid("issuer", "an https:// address (http:// only for 127.0.0.1 or localhost)"));
        }
        if client_id.chars().count() > 500 {
            return Err(StoreError::invalid("client_id", "at most 500 characters"));
        }
        if client_secret.chars().count() > 500 {
            return Err(StoreError::invalid("client_secret", "at most 500 characters"));
        }
        if input.enabled && client_id.is_empty() {
            return Err(StoreError::invalid("client_id", "single sign-on needs the client id"));
        }
        let role = input.default_role.trim();
        if role.parse::<Role>().is_err() {
            let found: Option<(String,)> =
                self.db.reader().fetch_optional(query("SELECT name FROM roles WHERE name = $1").bind(role)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("default_role", format!("no role named {role:?}")));
            }
        }
        if let Some(u) = input.default_unit_id {
            let found: Option<(i64,)> = self.db.reader().fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(u)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("default_unit_id", format!("no unit with id {u}")));
            }
        }
        let s = SsoSettings {
            enabled: input.enabled,
            issuer,
            client_id,
            client_secret,
            default_role: role.to_owned(),
            default_unit_id: input.default_unit_id,
            create_users: input.create_users,
        };
        self.put_setting(actor, SETTINGS, serde_json::to_value(&s).map_err(|e| StoreError::Internal(e.to_string()))?).await?;
        Ok(s.view())
    }

    /// Remembers a login sent to the provider: its `state` (as a digest), PKCE verifier and nonce.
    pub async fn create_oidc_login(&self, state: &str, code_verifier: &str, nonce: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM oidc_logins WHERE expires_at < $1").bind(now)).await?;
        tx.execute(
            query("INSERT INTO oidc_logins (state_hash, code_verifier, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(digest(state))
                .bind(code_verifier)
                .bind(nonce)
                .bind(now)
                .bind(now + Duration::minutes(LOGIN_MINUTES)),
        )
        .await?;
        tx.commit().await
    }

    /// Takes the login a `state` came back with (once): its PKCE verifier and nonce.
    pub async fn take_oidc_login(&self, state: &str) -> Result<Option<(String, String)>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(String, String)> = tx
            .fetch_optional(
                query("DELETE FROM oidc_logins WHERE state_hash = $1 AND expires_at > $2 RETURNING code_verifier, nonce")
                    .bind(digest(state))
                    .bind(now),
            )
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The user a verified ID token stands for: the one that logged in with this subject before,
    /// else the one with this e-mail (which is linked to the subject), else a new user with the
    /// default role and unit (when the settings allow). A deactivated user is refused (403).
    pub async fn sso_user(&self, issuer: &str, subject: &str, email: &str, name: Option<&str>) -> Result<User> {
        let settings = self.sso_settings().await?;
        let key = format!("{issuer} {subject}");
        let by_subject: Option<(i64,)> =
            self.db.reader().fetch_optional(query("SELECT id FROM users WHERE oidc_subject = $1").bind(&key)).await?;
        let now = self.now();
        let id = match by_subject {
            Some((id,)) => id,
            None => match self.user_by_email(email).await? {
                Some(u) => {
                    let mut tx = self.db.begin().await?;
                    tx.execute(query("UPDATE users SET oidc_subject = $1 WHERE id = $2").bind(&key).bind(u.id)).await?;
                    audit::record(&mut tx, now, "sso", "link_sso", "user", Some(u.id.to_string()), None).await?;
                    tx.commit().await?;
                    u.id
                }
                None if settings.create_users => {
                    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(email);
                    let input = crate::users::NewUser {
                        email: email.to_owned(),
                        name: name.chars().take(200).collect(),
                        role: settings.default_role.clone(),
                        unit_ids: settings.default_unit_id.into_iter().collect(),
                        password: None,
                    };
                    let created = self.create_user_as(&Actor::new("sso", Role::Admin, None), &input).await?;
                    let mut tx = self.db.begin().await?;
                    tx.execute(query("UPDATE users SET oidc_subject = $1 WHERE id = $2").bind(&key).bind(created.id)).await?;
                    tx.commit().await?;
                    created.id
                }
                None => return Err(StoreError::Forbidden("no patron user has this e-mail; ask an administrator to add you".into())),
            },
        };
        let user = self.user(id).await?;
        if !user.active {
            return Err(StoreError::Forbidden("this user is deactivated".into()));
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::issuer_ok;

    #[test]
    fn issuers_are_https_or_loopback() {
        assert!(issuer_ok("https://login.example.com"));
        assert!(issuer_ok("https://login.example.com/realms/x"));
        assert!(issuer_ok("http://127.0.0.1:8080"));
        assert!(issuer_ok("http://localhost/x"));
        assert!(!issuer_ok("http://example.com"));
        assert!(!issuer_ok("ftp://x"));
        assert!(!issuer_ok("https://"));
        assert!(!issuer_ok("https://a b"));
    }
}
