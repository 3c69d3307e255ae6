//! Access (issue 21): the permission catalogue, the built-in roles as permission sets, and the
//! one customer scope predicate every customer-reading query composes.
//!
//! A caller sees a customer when the customer's home unit is in the subtree of one of the
//! caller's units, or the caller owns the customer, or the caller's role has
//! [`Permission::AllCustomers`]. Outside the scope a customer does not exist: queries compose
//! [`CustomerScope::sql`] into their WHERE clause, so it is neither listed, counted nor found.

pub mod masking;
pub mod roles;
pub mod sso;
pub mod two_factor;
pub mod units;

use serde::{Deserialize, Serialize};

use crate::users::{Actor, Role};
use crate::{Result, StoreError};

macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $desc:literal;)*) => {
        /// One permission of the fixed catalogue (docs/access.md lists them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($(#[$doc])* $variant,)*
        }
        impl Permission {
            /// Every permission, in catalogue order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];
            /// The permission's name (`customers.read`).
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }
            /// What it allows, in words.
            pub fn description(self) -> &'static str {
                match self { $(Permission::$variant => $desc,)* }
            }
        }
    };
}

catalogue! {
    /// Read customers in scope: lists, search, the 360 and its sub-resources.
    CustomersRead = "customers.read", "read customers in scope (lists, search, the 360, orders, interactions, timeline)";
    /// Create and change customers in scope, record orders, interactions, notes and contacts.
    CustomersWrite = "customers.write", "create and change customers in scope; record orders, interactions, notes, contacts";
    /// Delete customers.
    CustomersDelete = "customers.delete", "delete customers in scope";
    /// Export customers (segment exports).
    CustomersExport = "customers.export", "export customers in scope as CSV (segment exports)";
    /// Find and merge duplicates.
    CustomersMerge = "customers.merge", "find and merge duplicate customers in scope";
    /// Export a customer's personal data.
    PersonalDataRead = "personal_data.read", "export a customer's personal data (subject access request)";
    /// Erase a customer's personal data.
    PersonalDataErase = "personal_data.erase", "erase a customer's personal data";
    /// See mobiles and e-mails unmasked in lists.
    ContactDetailsRead = "contact_details.read", "see mobiles and e-mails unmasked in lists and segment members";
    /// Every customer, whatever its unit or owner.
    AllCustomers = "all_customers", "see every customer, whatever its home unit or owner";
    /// Read dashboards and scores (in scope).
    AnalyticsRead = "analytics.read", "read dashboards and customer scores (aggregates over the scope)";
    /// Run the analysis.
    AnalyticsRun = "analytics.run", "run the analysis";
    /// Read segments, preview them, list members.
    SegmentsRead = "segments.read", "read segments, preview them and list their members (in scope)";
    /// Create, change and delete segments.
    SegmentsWrite = "segments.write", "create, change and delete segments";
    /// Run imports.
    ImportsRun = "imports.run", "import customers, orders and interactions (rows outside the scope are rejected)";
    /// Read and work tickets.
    TicketsRead = "tickets.read", "read tickets of customers in scope";
    /// Open, comment on, take and move tickets.
    TicketsWrite = "tickets.write", "open, comment on, take and move tickets of customers in scope";
    /// Assign tickets to anyone, close any.
    TicketsManage = "tickets.manage", "assign tickets to anyone and act on tickets not one's own";
    /// Decide on compensation above one's own authority.
    CompensationApprove = "compensation.approve", "approve or refuse compensation";
    /// Service reports.
    ServiceReports = "service.reports", "read service reports (complaint rate, Pareto, KPIs)";
    /// Define surveys and invite.
    SurveysManage = "surveys.manage", "create and change surveys, invite customers, read results";
    /// Read the event stream.
    EventsRead = "events.read", "read the domain event stream";
    /// Read and export the audit log.
    AuditRead = "audit.read", "read and export the audit log";
    /// Administer users, roles and units.
    UsersAdmin = "users.admin", "administer users, roles, units and API tokens";
    /// Change settings, policies and the calendar.
    SettingsAdmin = "settings.admin", "change settings, service policies and the business calendar";
    /// Enrol members, redeem points and rewards for them, hand rewards over.
    LoyaltyRedeem = "loyalty.redeem", "enrol members in scope, redeem their points and rewards, hand rewards over";
    /// Adjust a member's points by hand (with a reason).
    LoyaltyAdjust = "loyalty.adjust", "adjust a member's points by hand, with a reason";
    /// Change the loyalty programme and the rewards catalogue.
    LoyaltyAdmin = "loyalty.admin", "change the loyalty programme and the rewards catalogue";
    /// The programme's reports: liability, breakage, referrals.
    LoyaltyReports = "loyalty.reports", "read the loyalty liability, breakage and referral reports";
    /// Write message templates.
    TemplatesWrite = "templates.write", "create and change message templates";
    /// Make, enable and disable journeys; read their reports.
    JourneysManage = "journeys.manage", "make, enable and disable journeys and read their reports";
    /// Manage webhooks (they see every customer's events).
    WebhooksManage = "webhooks.manage", "manage webhooks and read their delivery logs (every customer's events)";
    /// Read campaigns and their reports (lift, global control group).
    CampaignsRead = "campaigns.read", "read campaigns, their response, conversion and lift reports, and the global control report";
    /// Create campaigns.
    CampaignsWrite = "campaigns.write", "create campaigns (drafts)";
    /// Launch campaigns (queue their messages).
    CampaignsLaunch = "campaigns.launch", "launch campaigns: queue their messages to the audience";
}

impl Permission {
    /// The permission named `s`.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions (a bit per catalogue entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u64);

impl Permissions {
    /// No permission.
    pub const NONE: Permissions = Permissions(0);

    fn bit(p: Permission) -> u64 {
        1u64 << (p as u32)
    }
    /// A set of these permissions.
    pub fn of(ps: &[Permission]) -> Permissions {
        Permissions(ps.iter().fold(0, |acc, p| acc | Permissions::bit(*p)))
    }
    /// Every permission in the catalogue.
    pub fn all() -> Permissions {
        Permissions::of(Permission::ALL)
    }
    /// Whether `p` is in the set.
    pub fn has(self, p: Permission) -> bool {
        self.0 & Permissions::bit(p) != 0
    }
    /// Whether every permission of `other` is in the set.
    pub fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }
    /// The permissions, in catalogue order.
    pub fn list(self) -> Vec<Permission> {
        Permission::ALL.iter().copied().filter(|p| self.has(*p)).collect()
    }
    /// The names, in catalogue order.
    pub fn names(self) -> Vec<&'static str> {
        self.list().into_iter().map(Permission::as_str).collect()
    }
    /// Parses names; an unknown name is refused on `field`.
    pub fn parse_names<S: AsRef<str>>(names: &[S], field: &str) -> Result<Permissions> {
        let mut out = Vec::new();
        for n in names {
            let n = n.as_ref().trim();
            out.push(
                Permission::parse(n).ok_or_else(|| StoreError::invalid(field, format!("unknown permission {n:?} (see docs/access.md)")))?,
            );
        }
        Ok(Permissions::of(&out))
    }
    /// The stored form: names separated by spaces.
    pub(crate) fn stored(self) -> String {
        self.names().join(" ")
    }
    /// Reads the stored form (names no longer in the catalogue are dropped).
    pub(crate) fn from_stored(s: &str) -> Permissions {
        Permissions::of(&s.split_whitespace().filter_map(Permission::parse).collect::<Vec<_>>())
    }
}

impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Permissions::parse_names(&names, "permissions").map_err(serde::de::Error::custom)
    }
}

impl Role {
    /// The built-in role's permission set: what agents, managers and admins could do before
    /// custom roles (each set contains the one below it).
    pub fn permissions(self) -> Permissions {
        use Permission::*;
        let agent = [CustomersRead, CustomersWrite, AnalyticsRead, SegmentsRead, TicketsRead, TicketsWrite, LoyaltyRedeem];
        let manager = [
            CustomersDelete,
            CustomersExport,
            CustomersMerge,
            PersonalDataRead,
            AllCustomers,
            AnalyticsRun,
            SegmentsWrite,
            ImportsRun,
            TicketsManage,
            CompensationApprove,
            ServiceReports,
            SurveysManage,
            EventsRead,
            LoyaltyAdjust,
            LoyaltyAdmin,
            LoyaltyReports,
            TemplatesWrite,
            JourneysManage,
            CampaignsRead,
            CampaignsWrite,
            CampaignsLaunch,
        ];
        match self {
            Role::Agent => Permissions::of(&agent),
            Role::Manager => Permissions::of(&[&agent[..], &manager[..]].concat()),
            Role::Admin => Permissions::all(),
        }
    }

    /// The highest built-in role whose permissions `perms` contains (agent when none): the level
    /// a custom role counts as where code still compares levels.
    pub fn level_of(perms: Permissions) -> Role {
        [Role::Admin, Role::Manager].into_iter().find(|r| perms.contains(r.permissions())).unwrap_or(Role::Agent)
    }
}

/// Which customers a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerScope {
    /// Every customer (`all_customers`).
    All,
    /// Those of the user's units' subtrees, those the user owns and those whose account team
    /// the user is on; `None`: a caller with no
    /// user (a token without one) sees no customer.
    Limited(Option<i64>),
}

impl CustomerScope {
    /// The scope of `actor`.
    pub fn of(actor: &Actor) -> CustomerScope {
        if actor.permissions.has(Permission::AllCustomers) {
            CustomerScope::All
        } else {
            CustomerScope::Limited(actor.user_id)
        }
    }

    /// The predicate on the customers row aliased `c` (`customers c`): `1 = 1` for every
    /// customer. It binds nothing (the user id is a number the server resolved, written inline),
    /// so it composes into any statement whatever its placeholders. On Citus the subquery reads
    /// reference tables only and is planned once per statement.
    pub fn sql(self, c: &str) -> String {
        match self {
            CustomerScope::All => "1 = 1".into(),
            CustomerScope::Limited(None) => "1 = 0".into(),
            CustomerScope::Limited(Some(u)) => format!(
                "({c}.owner_id = {u} OR {c}.home_unit_id IN (SELECT p.descendant_id FROM unit_paths p \
                 JOIN user_units uu ON uu.unit_id = p.ancestor_id WHERE uu.user_id = {u}) \
                 OR EXISTS (SELECT 1 FROM account_team atm WHERE atm.customer_id = {c}.id AND atm.user_id = {u}))"
            ),
        }
    }

    /// The predicate on a table's `customer_id` column (`t.customer_id`), for queries that do
    /// not read `customers` themselves.
    pub fn sql_for(self, customer_id: &str) -> String {
        match self {
            CustomerScope::All => "1 = 1".into(),
            _ => format!("{customer_id} IN (SELECT sc.id FROM customers sc WHERE {})", self.sql("sc")),
        }
    }

    /// Whether the scope is every customer.
    pub fn is_all(self) -> bool {
        self == CustomerScope::All
    }
}

impl crate::Store {
    /// Whether `actor` sees live customer `id` (false when missing or deleted too).
    pub async fn customer_in_scope(&self, actor: &Actor, id: i64) -> Result<bool> {
        let sql =
            format!("SELECT c.id FROM customers c WHERE c.id = $1 AND c.deleted_at IS NULL AND {}", CustomerScope::of(actor).sql("c"));
        let found: Option<(i64,)> = self.db.reader().fetch_optional(crate::db::query(sql).bind(id)).await?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sets_nest_and_levels_round_trip() {
        assert!(Role::Manager.permissions().contains(Role::Agent.permissions()));
        assert!(Role::Admin.permissions().contains(Role::Manager.permissions()));
        for r in [Role::Agent, Role::Manager, Role::Admin] {
            assert_eq!(Role::level_of(r.permissions()), r);
        }
        assert!(!Role::Agent.permissions().has(Permission::AllCustomers));
        assert!(Permission::ALL.len() < 64);
        let p = Permissions::of(&[Permission::CustomersRead, Permission::UsersAdmin]);
        assert_eq!(Permissions::from_stored(&p.stored()), p);
        assert!(Permissions::parse_names(&["nope"], "permissions").is_err());
    }
}
