//! Account teams and portfolios (issue 19 §1): who works on an account in which role, and
//! moving accounts from one owner to another with a kept history and a handover note.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::check_user;
use crate::access::{CustomerScope, Permission};
use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, events, Result, Store, StoreError};

/// Most members on one team.
pub const MAX_MEMBERS: usize = 50;

/// One member of an account team.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct TeamMember {
    /// The user.
    pub user_id: i64,
    /// The user's name.
    pub user_name: String,
    /// Their role on the account (`account_manager`, `service`, `technical`,
    /// `executive_sponsor` or a free role).
    pub role: String,
    /// When they joined the team.
    pub added_at: DateTime<Utc>,
}

/// A customer's account team.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountTeam {
    /// The customer.
    pub customer_id: i64,
    /// The owner (who the portfolio counts the account for).
    pub owner_id: Option<i64>,
    /// The members, account manager first.
    pub members: Vec<TeamMember>,
}

/// One member as written.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMemberInput {
    /// An active user.
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// A role: lower-case letters, digits and `_`, 1–50 characters.
    #[schema(min_length = 1, max_length = 50, pattern = "^[a-z][a-z0-9_]{0,49}$")]
    pub role: String,
}

/// The whole team as written by `PUT /customers/{id}/team`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    /// The members (at most 50; each user once; at most one `account_manager`).
    #[schema(max_items = 50)]
    pub members: Vec<TeamMemberInput>,
}

/// A reassignment of accounts from one user to another.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassignment {
    /// The current owner.
    #[schema(minimum = 1)]
    pub from_user_id: i64,
    /// The new owner (an active user).
    #[schema(minimum = 1)]
    pub to_user_id: i64,
    /// The customers to move (each owned by `from_user_id`); or give `segment`.
    #[schema(max_items = 10000)]
    pub customer_ids: Option<Vec<i64>>,
    /// A segment (id or key): its members owned by `from_user_id` move.
    #[schema(max_length = 100)]
    pub segment: Option<String>,
    /// The handover note the new owner sees on the 360 (at most 4000 characters).
    #[schema(max_length = 4000)]
    pub note: Option<String>,
}

/// What a reassignment did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReassignReport {
    /// Accounts moved.
    pub moved: usize,
    /// Their ids.
    pub customer_ids: Vec<i64>,
}

/// One past change of owner.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ReassignmentRecord {
    /// Id.
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The previous owner.
    pub from_user_id: Option<i64>,
    /// The new owner.
    pub to_user_id: i64,
    /// The handover note.
    pub note: Option<String>,
    /// Who moved it (`user:<id>` …).
    pub by_actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

fn check_role(field: &str, role: &str) -> Result<String> {
    let r = role.trim();
    let ok = !r.is_empty()
        && r.len() <= 50
        && r.starts_with(|c: char| c.is_ascii_lowercase())
        && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(StoreError::invalid(field, "a role is 1 to 50 lower-case letters, digits or _, starting with a letter"));
    }
    Ok(r.to_owned())
}

async fn live_owner(tx: &mut Tx, customer_id: i64) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> =
        tx.fetch_optional(query("SELECT owner_id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id)).await?;
    row.map(|r| r.0).ok_or(StoreError::NotFound("customer"))
}

impl Store {
    /// A customer's account team.
    pub async fn account_team(&self, customer_id: i64) -> Result<AccountTeam> {
        let mut tx = self.db.begin().await?;
        let owner_id = live_owner(&mut tx, customer_id).await?;
        let members: Vec<TeamMember> = tx
            .fetch_all(
                query(
                    "SELECT t.user_id, u.name AS user_name, t.role, t.added_at FROM account_team t JOIN users u ON u.id = t.user_id \
                     WHERE t.customer_id = $1 ORDER BY CASE WHEN t.role = 'account_manager' THEN 0 ELSE 1 END, t.role, t.user_id",
                )
                .bind(customer_id),
            )
            .await?;
        tx.commit().await?;
        Ok(AccountTeam { customer_id, owner_id, members })
    }

    /// Replaces a customer's account team (audited): users active, each once, at most one
    /// account manager. Members who stay keep their joining time.
    pub async fn set_account_team(&self, actor: &Actor, customer_id: i64, input: TeamInput) -> Result<AccountTeam> {
        if input.members.len() > MAX_MEMBERS {
            return Err(StoreError::invalid("members", format!("at most {MAX_MEMBERS} members")));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        live_owner(&mut tx, customer_id).await?;
        let mut seen = std::collections::HashSet::new();
        let mut members = Vec::with_capacity(input.members.len());
        for (i, m) in input.members.iter().enumerate() {
            let role = check_role(&format!("members[{i}].role"), &m.role)?;
            check_user(&mut tx, &format!("members[{i}].user_id"), m.user_id).await?;
            if !seen.insert(m.user_id) {
                return Err(StoreError::invalid(format!("members[{i}].user_id"), format!("user {} is on the team twice", m.user_id)));
            }
            members.push((m.user_id, role));
        }
        if members.iter().filter(|(_, r)| r == "account_manager").count() > 1 {
            return Err(StoreError::invalid("members", "at most one account_manager"));
        }
        let old: Vec<(i64, String, DateTime<Utc>)> =
            tx.fetch_all(query("SELECT user_id, role, added_at FROM account_team WHERE customer_id = $1").bind(customer_id)).await?;
        tx.execute(query("DELETE FROM account_team WHERE customer_id = $1").bind(customer_id)).await?;
        for (user_id, role) in &members {
            let added = old.iter().find(|o| o.0 == *user_id).map(|o| o.2).unwrap_or(now);
            tx.execute(
                query("INSERT INTO account_team (customer_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)")
                    .bind(customer_id)
                    .bind(*user_id)
                    .bind(role.clone())
                    .bind(added),
            )
            .await?;
        }
        let detail = members.iter().map(|(u, r)| format!("{u}:{r}")).collect::<Vec<_>>().join(" ");
        audit::record(&mut tx, now, &actor.key, "update", "account_team", Some(customer_id.to_string()), Some(detail)).await?;
        tx.commit().await?;
        self.account_team(customer_id).await
    }

    /// Moves accounts from one owner to another in one transaction (managers: `all_customers`):
    /// the owner changes, an `account_manager` seat held by the previous owner passes to the
    /// new one, and each move is kept with its note. A listed customer not owned by
    /// `from_user_id` refuses the whole request; nothing is written then.
    pub async fn reassign_portfolio(&self, actor: &Actor, r: Reassignment) -> Result<ReassignReport> {
        if !actor.permissions.has(Permission::AllCustomers) {
            return Err(StoreError::Forbidden("reassigning accounts needs the all_customers permission".into()));
        }
        if r.from_user_id == r.to_user_id {
            return Err(StoreError::invalid("to_user_id", "the new owner is the current owner"));
        }
        let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if note.as_ref().is_some_and(|n| n.chars().count() > 4000) {
            return Err(StoreError::invalid("note", "at most 4000 characters"));
        }
        let ids: Vec<i64> = match (&r.customer_ids, &r.segment) {
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > 10_000 {
                    return Err(StoreError::invalid("customer_ids", "give 1 to 10,000 customers"));
                }
                let mut v = ids.clone();
                v.sort_unstable();
                v.dedup();
                v
            }
            (None, Some(seg)) => {
                let segment = self.segment(seg.trim()).await.map_err(|e| match e {
                    StoreError::NotFound(_) => StoreError::invalid("segment", format!("no segment {seg:?}")),
                    e => e,
                })?;
                self.segment_customer_ids(actor, &segment.rule).await?
            }
            _ => return Err(StoreError::invalid("customer_ids", "give either customer_ids or segment")),
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // Unknown users are refused before anything is written (the former owner may be disabled).
        let known: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1").bind(r.from_user_id)).await?;
        if known.is_none() {
            return Err(StoreError::invalid("from_user_id", format!("no user {}", r.from_user_id)));
        }
        check_user(&mut tx, "to_user_id", r.to_user_id).await?;
        let lock = self.db.engine().row_lock();
        let mut moved = Vec::new();
        for id in ids {
            let row: Option<(Option<i64>,)> = tx
                .fetch_optional(query(format!("SELECT owner_id FROM customers WHERE id = $1 AND deleted_at IS NULL{lock}")).bind(id))
                .await?;
            let owner = match row {
                Some((o,)) => o,
                None if r.segment.is_some() => continue,
                None => return Err(StoreError::invalid("customer_ids", format!("no customer {id}"))),
            };
            if owner != Some(r.from_user_id) {
                if r.segment.is_some() {
                    continue;
                }
                return Err(StoreError::invalid("customer_ids", format!("customer {id} is not owned by user {}", r.from_user_id)));
            }
            tx.execute(query("UPDATE customers SET owner_id = $1, updated_at = $2 WHERE id = $3").bind(r.to_user_id).bind(now).bind(id))
                .await?;
            // The former owner's account-manager seat passes to the new owner.
            let seat: Option<(i64,)> = tx
                .fetch_optional(
                    query("SELECT user_id FROM account_team WHERE customer_id = $1 AND user_id = $2 AND role = 'account_manager'")
                        .bind(id)
                        .bind(r.from_user_id),
                )
                .await?;
            if seat.is_some() {
                tx.execute(
                    query("DELETE FROM account_team WHERE customer_id = $1 AND user_id IN ($2, $3)")
                        .bind(id)
                        .bind(r.from_user_id)
                        .bind(r.to_user_id),
                )
                .await?;
                tx.execute(
                    query("INSERT INTO account_team (customer_id, user_id, role, added_at) VALUES ($1, $2, 'account_manager', $3)")
                        .bind(id)
                        .bind(r.to_user_id)
                        .bind(now),
                )
                .await?;
            }
            tx.execute(
                query(
                    "INSERT INTO portfolio_reassignments (customer_id, from_user_id, to_user_id, note, by_actor, at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(r.from_user_id)
                .bind(r.to_user_id)
                .bind(note.clone())
                .bind(actor.key.clone())
                .bind(now),
            )
            .await?;
            events::append(
                &mut tx,
                id,
                "customer.reassigned",
                None,
                serde_json::json!({"from_user_id": r.from_user_id, "to_user_id": r.to_user_id}),
                now,
            )
            .await?;
            moved.push(id);
        }
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "reassign",
            "portfolio",
            None,
            Some(format!("from={} to={} customers={}", r.from_user_id, r.to_user_id, moved.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(ReassignReport { moved: moved.len(), customer_ids: moved })
    }

    /// A customer's changes of owner, newest first.
    pub async fn reassignments(&self, customer_id: i64) -> Result<Vec<ReassignmentRecord>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, customer_id, from_user_id, to_user_id, note, by_actor, at FROM portfolio_reassignments \
                     WHERE customer_id = $1 ORDER BY at DESC, id DESC LIMIT 200",
                )
                .bind(customer_id),
            )
            .await
    }

    /// The handover note for the current owner: the latest reassignment to them, when it has a note.
    pub async fn handover(&self, customer_id: i64) -> Result<Option<ReassignmentRecord>> {
        let owner: Option<(Option<i64>,)> =
            self.db.reader().fetch_optional(query("SELECT owner_id FROM customers WHERE id = $1").bind(customer_id)).await?;
        let Some((Some(owner),)) = owner else { return Ok(None) };
        let last = self.reassignments(customer_id).await?.into_iter().next();
        Ok(last.filter(|r| r.to_user_id == owner && r.note.is_some()))
    }

    /// The customer ids of a user's portfolio that `actor` sees: owned by the user or with the
    /// user on the team.
    pub(crate) async fn portfolio_ids(&self, actor: &Actor, user_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = self
            .db
            .reader()
            .fetch_all(query(format!(
                "SELECT c.id FROM customers c WHERE c.deleted_at IS NULL AND (c.owner_id = {user_id} OR EXISTS \
                 (SELECT 1 FROM account_team t WHERE t.customer_id = c.id AND t.user_id = {user_id})) AND {} ORDER BY c.id LIMIT 10000",
                CustomerScope::of(actor).sql("c")
            )))
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
