//! Users, roles, API tokens and login sessions. Passwords are argon2 hashes; API tokens and session
//! ids are stored only as SHA-256 digests, so a copy of the database does not let anyone log in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::{Permission, Permissions};
use crate::db::query;
use crate::{audit, Result, Store, StoreError};

/// What a user may do. Admins everything; managers all customers; agents their own portfolio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Frontline staff and account managers: their own customers and tickets.
    Agent,
    /// CRM/marketing managers: every customer, segments, campaigns, imports.
    Manager,
    /// Administrators: users, tokens, settings, everything else.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Agent => "agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "manager" => Ok(Role::Manager),
            "agent" => Ok(Role::Agent),
            _ => Err(StoreError::invalid("role", format!("role must be admin, manager or agent, not {s:?}"))),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account (never carries the password hash out of this module).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// The built-in role, or for a custom role the highest built-in level its permissions
    /// contain (what code comparing levels sees).
    pub role: Role,
    /// The role's name: `admin`, `manager`, `agent` or a custom role's.
    pub role_name: String,
    /// What the role allows.
    pub permissions: Permissions,
    /// Not deactivated.
    pub active: bool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    custom_role: Option<String>,
    custom_permissions: Option<String>,
    password_hash: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
}

impl UserRow {
    fn into_user(self) -> Result<User> {
        let (role, role_name, permissions) = resolve_role(&self.role, self.custom_role, self.custom_permissions.as_deref())?;
        Ok(User { id: self.id, email: self.email, name: self.name, role, role_name, permissions, active: self.disabled_at.is_none() })
    }
}

/// The level, name and permissions of a stored role: the built-in one, or the custom role when
/// set (a custom role deleted since grants nothing).
fn resolve_role(builtin: &str, custom: Option<String>, custom_permissions: Option<&str>) -> Result<(Role, String, Permissions)> {
    match custom {
        Some(name) => {
            let perms = custom_permissions.map(Permissions::from_stored).unwrap_or_default();
            Ok((Role::level_of(perms), name, perms))
        }
        None => {
            let role: Role = builtin.parse()?;
            Ok((role, role.as_str().to_owned(), role.permissions()))
        }
    }
}

/// Who did something, for the audit log and change history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `user:<id>`, `token:<id>` or `cli`.
    pub key: String,
    /// Role level in force (a custom role's: the highest built-in level its permissions contain).
    pub role: Role,
    /// The user id: the scope is the user's units and portfolio (None for tokens without a user
    /// and the CLI).
    pub user_id: Option<i64>,
    /// What the caller may do (see [`crate::access`]).
    #[serde(skip)]
    pub permissions: Permissions,
    /// The role's name: a built-in role's or the custom role's (what the masking settings are
    /// keyed by).
    #[serde(skip)]
    pub role_name: String,
}

impl Actor {
    /// An actor with a built-in role's permissions.
    pub fn new(key: impl Into<String>, role: Role, user_id: Option<i64>) -> Actor {
        Actor { key: key.into(), role, user_id, permissions: role.permissions(), role_name: role.as_str().to_owned() }
    }
    /// The command line, acting as an administrator on the operator's behalf.
    pub fn cli() -> Actor {
        Actor::new("cli", Role::Admin, None)
    }
    /// A logged-in user.
    pub fn user(u: &User) -> Actor {
        Actor {
            key: format!("user:{}", u.id),
            role: u.role,
            user_id: Some(u.id),
            permissions: u.permissions,
            role_name: u.role_name.clone(),
        }
    }
    /// Whether the caller has permission `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.has(p)
    }
}

/// A login session as the web UI sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: User,
    /// The CSRF token every form must send back.
    pub csrf_token: String,
}

/// An API token as listed (never the secret).
#[derive(serde::Deserialize, Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiTokenInfo {
    /// Id.
    pub id: i64,
    /// Name given at creation.
    pub name: String,
    /// Role the token acts with.
    pub role: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// `read_write`, or `read_only` (GET only: any other method is refused with 403).
    pub scope: String,
}

/// How a new API token may be used (issue 14 §3).
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Reads only (GET and HEAD).
    pub read_only: bool,
    /// A custom role to act with instead of the built-in one (`--role NAME`).
    pub custom_role: Option<String>,
}

/// The caller a bearer token stands for, and what the token allows.
#[derive(Debug, Clone)]
pub struct TokenActor {
    /// The actor.
    pub actor: Actor,
    /// The token may only read.
    pub read_only: bool,
}

/// Random secret, hex encoded, with a recognisable prefix.
pub(crate) fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let mut s = String::with_capacity(prefix.len() + 64);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// SHA-256 of a secret, hex encoded (what is stored).
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Internal(format!("argon2: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false)
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

const USER_COLS: &str = "u.id, u.email, u.name, u.role, u.custom_role, r.permissions AS custom_permissions, u.password_hash, u.disabled_at";
/// `FROM` for [`USER_COLS`].
const USER_FROM: &str = "users u LEFT JOIN roles r ON r.name = u.custom_role";

impl Store {
    /// Creates a user. The password, when given, must have at least [`MIN_PASSWORD_LEN`] characters.
    pub async fn create_user(&self, email: &str, name: &str, role: Role, password: Option<&str>) -> Result<User> {
        let email = crate::values::parse_email(email).map_err(|m| StoreError::invalid("email", m))?;
        let hash = match password {
            Some(p) if p.chars().count() < MIN_PASSWORD_LEN => {
                return Err(StoreError::invalid("password", format!("at least {MIN_PASSWORD_LEN} characters")))
            }
            Some(p) => Some(hash_password(p)?),
            None => None,
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query("INSERT INTO users (email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                    .bind(&email)
                    .bind(name)
                    .bind(role.as_str())
                    .bind(hash)
                    .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, "cli", "create", "user", Some(id.to_string()), Some(format!("role={role}"))).await?;
        tx.commit().await?;
        Ok(User {
            id,
            email,
            name: name.to_owned(),
            role,
            role_name: role.as_str().to_owned(),
            permissions: role.permissions(),
            active: true,
        })
    }

    /// Sets a user's password.
    pub async fn set_password(&self, user_id: i64, password: &str) -> Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(StoreError::invalid("password", format!("at least {MIN_PASSWORD_LEN} characters")));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx.execute(query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash_password(password)?).bind(user_id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        audit::record(&mut tx, now, "cli", "update", "user", Some(user_id.to_string()), Some("password".into())).await?;
        tx.commit().await
    }

    /// Sets (or clears) a user's manager: SLA breaches of the user's tickets escalate to them.
    pub async fn set_user_manager(&self, actor: &Actor, user_id: i64, manager_id: Option<i64>) -> Result<()> {
        if manager_id == Some(user_id) {
            return Err(StoreError::invalid("manager_id", "a user cannot be their own manager"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if let Some(m) = manager_id {
            let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1").bind(m)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("manager_id", format!("no user with id {m}")));
            }
        }
        let n = tx.execute(query("UPDATE users SET manager_id = $1 WHERE id = $2").bind(manager_id).bind(user_id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        audit::record(&mut tx, now, &actor.key, "update", "user", Some(user_id.to_string()), Some(format!("manager={manager_id:?}")))
            .await?;
        tx.commit().await
    }

    /// All users, by email.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = self.db.reader().fetch_all(query(format!("SELECT {USER_COLS} FROM {USER_FROM} ORDER BY u.email"))).await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    /// One user by id.
    pub async fn user(&self, id: i64) -> Result<User> {
        let row: Option<UserRow> =
            self.db.reader().fetch_optional(query(format!("SELECT {USER_COLS} FROM {USER_FROM} WHERE u.id = $1")).bind(id)).await?;
        row.ok_or(StoreError::NotFound("user"))?.into_user()
    }

    /// One user by email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = self
            .db
            .reader()
            .fetch_optional(query(format!("SELECT {USER_COLS} FROM {USER_FROM} WHERE u.email = $1")).bind(email.trim().to_lowercase()))
            .await?;
        row.map(UserRow::into_user).transpose()
    }

    /// Checks a login. Returns the user when email and password match an enabled account.
    /// Verification runs even for unknown emails so timing does not reveal which emails exist.
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = self
            .db
            .reader()
            .fetch_optional(query(format!("SELECT {USER_COLS} FROM {USER_FROM} WHERE u.email = $1")).bind(email.trim().to_lowercase()))
            .await?;
        // A real hash to verify against for unknown users, made once.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        match row {
            Some(r) if r.disabled_at.is_none() => {
                let ok = r.password_hash.as_deref().map(|h| verify_password(password, h)).unwrap_or(false);
                if ok {
                    Ok(Some(r.into_user()?))
                } else {
                    Ok(None)
                }
            }
            _ => {
                let dummy = DUMMY.get_or_init(|| hash_password("patron-dummy-password").unwrap_or_default());
                let _ = verify_password(password, dummy);
                Ok(None)
            }
        }
    }

    /// Starts a session for `user`; returns the session secret (for the cookie) and the CSRF token.
    pub async fn create_session(&self, user: &User, ttl: Duration) -> Result<(String, String)> {
        let secret = new_secret("s_");
        let csrf = new_secret("c_");
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(digest(&secret))
                .bind(user.id)
                .bind(&csrf)
                .bind(now)
                .bind(now + ttl),
        )
        .await?;
        // Housekeeping: expired sessions are useless; removing them here keeps the table small.
        tx.execute(query("DELETE FROM sessions WHERE expires_at < $1").bind(now)).await?;
        audit::record(&mut tx, now, &format!("user:{}", user.id), "login", "user", Some(user.id.to_string()), None).await?;
        tx.commit().await?;
        Ok((secret, csrf))
    }

    /// The live session for a cookie secret.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            csrf_token: String,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let row: Option<Row> = self
            .db
            .reader()
            .fetch_optional(
                query(format!(
                    "SELECT s.csrf_token, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN roles r ON r.name = u.custom_role \
                     WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
                ))
                .bind(digest(secret))
                .bind(self.now()),
            )
            .await?;
        match row {
            Some(r) => Ok(Some(Session { csrf_token: r.csrf_token, user: r.user.into_user()? })),
            None => Ok(None),
        }
    }

    /// Ends a session.
    pub async fn delete_session(&self, secret: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM sessions WHERE token_hash = $1").bind(digest(secret))).await?;
        tx.commit().await
    }

    /// Creates an API token; returns its info and the secret, which is shown once and never stored.
    pub async fn create_token(&self, name: &str, role: Role, user_id: Option<i64>) -> Result<(ApiTokenInfo, String)> {
        self.create_token_with(name, role, user_id, TokenOptions::default()).await
    }

    /// [`Store::create_token`] with an expiry and a scope.
    pub async fn create_token_with(
        &self,
        name: &str,
        role: Role,
        user_id: Option<i64>,
        opts: TokenOptions,
    ) -> Result<(ApiTokenInfo, String)> {
        if name.trim().is_empty() {
            return Err(StoreError::invalid("name", "a token needs a name"));
        }
        if opts.expires_at.is_some_and(|t| t <= self.now()) {
            return Err(StoreError::invalid("expires_at", "a token must expire in the future"));
        }
        let scope = if opts.read_only { "read_only" } else { "read_write" };
        let secret = new_secret("pat_");
        let prefix: String = secret.chars().take(10).collect();
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let custom = match &opts.custom_role {
            Some(name) => stored_role(&mut tx, name.trim()).await?.1,
            None => None,
        };
        let info: ApiTokenInfo = tx
            .fetch_one(
                query(
                    "INSERT INTO api_tokens (name, role, user_id, token_hash, prefix, created_at, expires_at, scope, custom_role) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id, name, role, prefix, created_at, last_used_at, expires_at, scope",
                )
                .bind(name.trim())
                .bind(role.as_str())
                .bind(user_id)
                .bind(digest(&secret))
                .bind(&prefix)
                .bind(now)
                .bind(opts.expires_at.map(crate::clock::truncate_micros))
                .bind(scope)
                .bind(custom.clone()),
            )
            .await?;
        let expiry = opts.expires_at.map(|t| format!(" expires_at={}", t.to_rfc3339())).unwrap_or_default();
        audit::record(
            &mut tx,
            now,
            "cli",
            "create",
            "api_token",
            Some(info.id.to_string()),
            Some(format!("role={role} scope={scope}{expiry}")),
        )
        .await?;
        tx.commit().await?;
        Ok((info, secret))
    }

    /// Resolves a bearer token to the actor it stands for (a revoked or expired token to none).
    pub async fn actor_for_token(&self, secret: &str) -> Result<Option<Actor>> {
        Ok(self.token_actor(secret).await?.map(|t| t.actor))
    }

    /// Resolves a bearer token to the actor it stands for and its scope; a revoked or expired
    /// token to none.
    pub async fn token_actor(&self, secret: &str) -> Result<Option<TokenActor>> {
        #[derive(sqlx::FromRow, serde::Deserialize)]
        struct Row {
            id: i64,
            role: String,
            custom_role: Option<String>,
            custom_permissions: Option<String>,
            user_id: Option<i64>,
            scope: String,
        }
        // A token of a deactivated user stops at once, as the user's sessions do. Every API
        // request reads it: a direct read on SQLite ([`crate::db::ReadConn`]).
        let row: Option<Row> = self
            .db
            .read_conn()
            .await?
            .fetch_optional(
                query(
                    "SELECT t.id, t.role, t.custom_role, r.permissions AS custom_permissions, t.user_id, t.scope \
                     FROM api_tokens t LEFT JOIN roles r ON r.name = t.custom_role LEFT JOIN users u ON u.id = t.user_id \
                     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
                     AND u.disabled_at IS NULL",
                )
                .bind(digest(secret))
                .bind(self.now()),
            )
            .await?;
        match row {
            Some(r) => {
                let (role, role_name, permissions) = resolve_role(&r.role, r.custom_role, r.custom_permissions.as_deref())?;
                Ok(Some(TokenActor {
                    actor: Actor { key: format!("token:{}", r.id), role, user_id: r.user_id, permissions, role_name },
                    read_only: r.scope == "read_only",
                }))
            }
            None => Ok(None),
        }
    }

    /// Lists API tokens (never their secrets).
    pub async fn tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        self.db
            .reader()
            .fetch_all(query(
                "SELECT id, name, role, prefix, created_at, last_used_at, expires_at, scope FROM api_tokens WHERE revoked_at IS NULL ORDER BY id",
            ))
            .await
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx.execute(query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now).bind(id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("api token"));
        }
        audit::record(&mut tx, now, "cli", "revoke", "api_token", Some(id.to_string()), None).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn secrets_are_random_and_digests_stable() {
        let a = new_secret("pat_");
        assert!(a.starts_with("pat_") && a.len() == 68);
        assert_ne!(a, new_secret("pat_"));
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

/// A user as administrators see it: the account with its units.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    /// Id.
    pub id: i64,
    /// Login email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role name (built-in or custom).
    pub role: String,
    /// Units the user belongs to.
    pub unit_ids: Vec<i64>,
    /// Not deactivated.
    pub active: bool,
    /// Logs in with a second factor (TOTP).
    pub two_factor: bool,
}

/// A new user, from the API.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role name: admin, manager, agent or a custom role.
    pub role: String,
    /// Units the user belongs to.
    #[serde(default)]
    pub unit_ids: Vec<i64>,
    /// Initial password (at least 10 characters); without one the user cannot log in until an
    /// administrator sets one.
    pub password: Option<String>,
}

/// A change to a user: fields left out stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New role name.
    pub role: Option<String>,
    /// The full new unit list.
    pub unit_ids: Option<Vec<i64>>,
    /// `false` deactivates: the user's sessions end and tokens stop at once.
    pub active: Option<bool>,
    /// New display name.
    pub name: Option<String>,
}

/// The stored form of a role name: (built-in column, custom role column).
async fn stored_role(tx: &mut crate::db::Tx, name: &str) -> Result<(Role, Option<String>)> {
    if let Ok(r) = name.parse::<Role>() {
        return Ok((r, None));
    }
    let found: Option<(String,)> = tx.fetch_optional(query("SELECT name FROM roles WHERE name = $1").bind(name)).await?;
    match found {
        // The built-in column keeps its CHECK: a custom role's users are stored as agents,
        // and the custom role decides what they may do.
        Some((n,)) => Ok((Role::Agent, Some(n))),
        None => Err(StoreError::invalid("role", format!("no role named {name:?} (admin, manager, agent or a custom role)"))),
    }
}

impl Store {
    /// Every user with its units, by email.
    pub async fn user_infos(&self) -> Result<Vec<UserInfo>> {
        let users = self.users().await?;
        let links: Vec<(i64, i64)> = self.db.reader().fetch_all(query("SELECT user_id, unit_id FROM user_units ORDER BY unit_id")).await?;
        let two_factor = self.two_factor_user_ids().await?;
        Ok(users
            .into_iter()
            .map(|u| UserInfo {
                unit_ids: links.iter().filter(|l| l.0 == u.id).map(|l| l.1).collect(),
                id: u.id,
                email: u.email,
                name: u.name,
                role: u.role_name,
                active: u.active,
                two_factor: two_factor.contains(&u.id),
            })
            .collect())
    }

    /// One user with its units.
    pub async fn user_info(&self, id: i64) -> Result<UserInfo> {
        let u = self.user(id).await?;
        let unit_ids = self.user_unit_ids(id).await?;
        let two_factor = self.two_factor_enabled(id).await?;
        Ok(UserInfo { id: u.id, email: u.email, name: u.name, role: u.role_name, unit_ids, active: u.active, two_factor })
    }

    /// Creates a user with a built-in or custom role and units, in one transaction (audited).
    pub async fn create_user_as(&self, actor: &Actor, input: &NewUser) -> Result<UserInfo> {
        let email = crate::values::parse_email(&input.email).map_err(|m| StoreError::invalid("email", m))?;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::invalid("name", "a name is 1 to 200 characters"));
        }
        let hash = match input.password.as_deref() {
            Some(p) if p.chars().count() < MIN_PASSWORD_LEN => {
                return Err(StoreError::invalid("password", format!("at least {MIN_PASSWORD_LEN} characters")))
            }
            Some(p) => Some(hash_password(p)?),
            None => None,
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (role, custom) = stored_role(&mut tx, input.role.trim()).await?;
        let taken: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE email = $1").bind(&email)).await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a user with email {email} exists")));
        }
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO users (email, name, role, custom_role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&email)
                .bind(name)
                .bind(role.as_str())
                .bind(custom.clone())
                .bind(hash)
                .bind(now),
            )
            .await?;
        crate::access::units::set_user_units_in(&mut tx, id, &input.unit_ids).await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "create",
            "user",
            Some(id.to_string()),
            Some(format!("role={} units={:?}", input.role.trim(), input.unit_ids)),
        )
        .await?;
        tx.commit().await?;
        self.user_info(id).await
    }

    /// Changes a user's role, units, name or activity (audited). Deactivation ends the user's
    /// sessions and revokes its API tokens in the same transaction: they stop at once.
    pub async fn update_user(&self, actor: &Actor, id: i64, patch: &UserPatch) -> Result<UserInfo> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1").bind(id)).await?;
        if found.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let mut detail = Vec::new();
        if let Some(r) = &patch.role {
            let (role, custom) = stored_role(&mut tx, r.trim()).await?;
            tx.execute(query("UPDATE users SET role = $1, custom_role = $2 WHERE id = $3").bind(role.as_str()).bind(custom).bind(id))
                .await?;
            detail.push(format!("role={}", r.trim()));
        }
        if let Some(n) = &patch.name {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 200 {
                return Err(StoreError::invalid("name", "a name is 1 to 200 characters"));
            }
            tx.execute(query("UPDATE users SET name = $1 WHERE id = $2").bind(n).bind(id)).await?;
            detail.push("name".into());
        }
        if let Some(units) = &patch.unit_ids {
            crate::access::units::set_user_units_in(&mut tx, id, units).await?;
            detail.push(format!("units={units:?}"));
        }
        match patch.active {
            Some(false) => {
                if Some(id) == actor.user_id {
                    return Err(StoreError::invalid("active", "you cannot deactivate yourself"));
                }
                tx.execute(query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL").bind(now).bind(id)).await?;
                tx.execute(query("DELETE FROM sessions WHERE user_id = $1").bind(id)).await?;
                tx.execute(query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL").bind(now).bind(id))
                    .await?;
                detail.push("deactivated".into());
            }
            Some(true) => {
                tx.execute(query("UPDATE users SET disabled_at = NULL WHERE id = $1").bind(id)).await?;
                detail.push("activated".into());
            }
            None => {}
        }
        audit::record(&mut tx, now, &actor.key, "update", "user", Some(id.to_string()), Some(detail.join(" "))).await?;
        tx.commit().await?;
        self.user_info(id).await
    }

    /// Sets a user's password on an administrator's behalf and ends the user's sessions (audited).
    pub async fn reset_password(&self, actor: &Actor, id: i64, password: &str) -> Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(StoreError::invalid("password", format!("at least {MIN_PASSWORD_LEN} characters")));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx.execute(query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash_password(password)?).bind(id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        tx.execute(query("DELETE FROM sessions WHERE user_id = $1").bind(id)).await?;
        audit::record(&mut tx, now, &actor.key, "update", "user", Some(id.to_string()), Some("password reset".into())).await?;
        tx.commit().await
    }
}
