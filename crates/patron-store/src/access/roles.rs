//! Roles: the built-in `admin`, `manager` and `agent` (fixed permission sets, see
//! [`Role::permissions`]) and custom roles administrators compose from the catalogue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Permissions;
use crate::db::query;
use crate::users::{Actor, Role};
use crate::{audit, Result, Store, StoreError};

/// A role as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// Permission names, in catalogue order.
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
    /// One of admin, manager, agent (not changeable).
    pub builtin: bool,
    /// Last changed (custom roles).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A custom role's definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// Name (letters, digits, `_` and `-`; not a built-in role's).
    pub name: String,
    /// Permission names from the catalogue.
    pub permissions: Vec<String>,
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 50 || !n.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(StoreError::invalid("name", "a role name is 1 to 50 letters, digits, '_' or '-'"));
    }
    if n.parse::<Role>().is_ok() {
        // The name is taken (by a built-in role): the same answer as for a custom role's name.
        return Err(StoreError::Conflict(format!("{n:?} is a built-in role")));
    }
    Ok(n.to_owned())
}

impl Store {
    /// The built-in roles, then the custom ones by name.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        let mut out: Vec<RoleInfo> = [Role::Admin, Role::Manager, Role::Agent]
            .into_iter()
            .map(|r| RoleInfo { name: r.as_str().into(), permissions: r.permissions(), builtin: true, updated_at: None })
            .collect();
        let rows: Vec<(String, String, DateTime<Utc>)> =
            self.db.reader().fetch_all(query("SELECT name, permissions, updated_at FROM roles ORDER BY name")).await?;
        out.extend(rows.into_iter().map(|(name, p, at)| RoleInfo {
            name,
            permissions: Permissions::from_stored(&p),
            builtin: false,
            updated_at: Some(at),
        }));
        Ok(out)
    }

    /// One role by name.
    pub async fn role(&self, name: &str) -> Result<RoleInfo> {
        self.roles().await?.into_iter().find(|r| r.name == name).ok_or(StoreError::NotFound("role"))
    }

    /// Creates a custom role (audited); a taken name is a conflict.
    pub async fn create_role(&self, actor: &Actor, input: &RoleInput) -> Result<RoleInfo> {
        let name = check_name(&input.name)?;
        let perms = Permissions::parse_names(&input.permissions, "permissions")?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let taken: Option<(String,)> = tx.fetch_optional(query("SELECT name FROM roles WHERE name = $1").bind(&name)).await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a role named {name:?} exists")));
        }
        tx.execute(
            query("INSERT INTO roles (name, permissions, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(&name)
                .bind(perms.stored())
                .bind(now),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "create", "role", Some(name.clone()), Some(perms.stored())).await?;
        tx.commit().await?;
        Ok(RoleInfo { name, permissions: perms, builtin: false, updated_at: Some(now) })
    }

    /// Replaces a custom role's permissions (audited); users and tokens with the role get them
    /// at their next request. Built-in roles cannot change.
    pub async fn update_role(&self, actor: &Actor, name: &str, permissions: &[String]) -> Result<RoleInfo> {
        if name.parse::<Role>().is_ok() {
            return Err(StoreError::State(format!("{name:?} is a built-in role and cannot change; compose a custom role")));
        }
        let perms = Permissions::parse_names(permissions, "permissions")?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(query("UPDATE roles SET permissions = $1, updated_at = $2 WHERE name = $3").bind(perms.stored()).bind(now).bind(name))
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("role"));
        }
        audit::record(&mut tx, now, &actor.key, "update", "role", Some(name.to_owned()), Some(perms.stored())).await?;
        tx.commit().await?;
        Ok(RoleInfo { name: name.to_owned(), permissions: perms, builtin: false, updated_at: Some(now) })
    }
}
