//! Field masking by role (issue 14 §3): which roles see personal data (mobile, e-mail, WeChat
//! id, birthday) and money (spend, CLV, order totals) in full, masked or not at all. One setting
//! (`masking`, keyed by role name), one [`FieldMask`] per caller, and one set of rules here that
//! every surface applies: the API's customer, order and segment responses, the web UI's pages,
//! the CSV exports and segment previews.
//!
//! What "masked" means: personal text keeps its shape ("138****8000", "l***@qq.com"); a birthday
//! cannot be half a date, so it is withheld; money is rounded to the nearest ¥100 (10,000 minor
//! units), enough to see a customer's order of magnitude and no more. "Hidden" is `null` (an empty
//! cell in a file).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Permission;
use crate::customers::mask;
use crate::users::{Actor, Role};
use crate::{Result, Store, StoreError};

/// The settings key.
pub const SETTINGS: &str = "masking";

/// The personal fields, by the names every surface gives them.
pub const PERSONAL_FIELDS: &[&str] = &["mobile", "email", "wechat_id", "birthday"];

/// A customer's money, by the names every surface gives it: spend, order totals and discounts,
/// the model's value figures.
pub const MONEY_FIELDS: &[&str] = &[
    "spend_cents",
    "trailing_spend_cents",
    "total_cents",
    "discount_cents",
    "m_cents",
    "monetary_cents",
    "expected_order_value_cents",
    "clv_cents",
    "margin_cents",
    "cost_to_serve_cents",
    "profit_cents",
];

/// Masked money is rounded to this many minor units (¥100).
pub const MONEY_STEP_CENTS: i64 = 10_000;

/// How much of a kind of field a role sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// As stored.
    Full,
    /// Its shape (personal data) or its order of magnitude (money).
    Masked,
    /// Not at all (`null`).
    Hidden,
}

/// What one role sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMasking {
    /// Mobile, e-mail, WeChat id, birthday.
    pub personal: Visibility,
    /// Spend, order totals, CLV and the other value figures of a customer.
    pub money: Visibility,
}

/// Where data is shown: what a role without a rule sees differs between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Many customers at once: lists, duplicates, segment members and previews.
    List,
    /// One customer's profile (the audited 360, its orders and people) and exports.
    Profile,
}

/// The masking settings: a rule per role name (built-in or custom), applied on every surface.
/// A role without a rule keeps patron's default: money in full; personal data in full on a
/// profile and in exports, and in lists only when the role holds `contact_details.read`
/// (masked otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaskingSettings {
    /// Role name → what it sees.
    pub roles: BTreeMap<String, RoleMasking>,
}

/// What one caller sees: the rule of its role, applied by every surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMask {
    /// Personal data.
    pub personal: Visibility,
    /// Money.
    pub money: Visibility,
}

impl FieldMask {
    /// Everything in full (the command line, the system's own work).
    pub const FULL: FieldMask = FieldMask { personal: Visibility::Full, money: Visibility::Full };

    /// The mask of `actor` on `surface` under `settings`.
    pub fn of(settings: &MaskingSettings, actor: &Actor, surface: Surface) -> FieldMask {
        match settings.roles.get(&actor.role_name) {
            Some(r) => FieldMask { personal: r.personal, money: r.money },
            None if surface == Surface::List && !actor.can(Permission::ContactDetailsRead) => {
                FieldMask { personal: Visibility::Masked, money: Visibility::Full }
            }
            None => FieldMask::FULL,
        }
    }

    /// Whether nothing is masked.
    pub fn is_full(&self) -> bool {
        *self == FieldMask::FULL
    }

    /// A personal text value (mobile, e-mail, WeChat id) as this caller sees it.
    pub fn personal_text(&self, v: Option<String>) -> Option<String> {
        match self.personal {
            Visibility::Full => v,
            Visibility::Masked => v.map(|s| mask(&s)),
            Visibility::Hidden => None,
        }
    }

    /// A birthday as this caller sees it (withheld unless in full: half a date is not a date).
    pub fn birthday<T>(&self, v: Option<T>) -> Option<T> {
        match self.personal {
            Visibility::Full => v,
            _ => None,
        }
    }

    /// An amount of money (minor units) as this caller sees it.
    pub fn money(&self, cents: i64) -> Option<i64> {
        match self.money {
            Visibility::Full => Some(cents),
            Visibility::Masked => Some(round_to_step(cents)),
            Visibility::Hidden => None,
        }
    }

    /// A value in a customer's change history (`field` as the history names it) as this caller
    /// sees it: the history must not show what the profile masks.
    pub fn change_value(&self, field: &str, v: Option<String>) -> Option<String> {
        match field {
            "birthday" => self.birthday(v),
            f if PERSONAL_FIELDS.contains(&f) => self.personal_text(v),
            _ => v,
        }
    }

    /// A timeline entry as this caller sees it: amounts as money, and a change of a personal
    /// field ("old → new (actor)") with both values masked.
    pub fn timeline_entry(&self, e: &mut crate::timeline::TimelineEntry) {
        if self.is_full() {
            return;
        }
        e.amount_cents = e.amount_cents.and_then(|c| self.money(c));
        if e.kind != "change" || !PERSONAL_FIELDS.contains(&e.title.as_str()) || self.personal == Visibility::Full {
            return;
        }
        let Some(detail) = e.detail.take() else { return };
        let (values, actor) = detail.rsplit_once(" (").unwrap_or((detail.as_str(), ""));
        let (old, new) = values.split_once(" → ").unwrap_or((values, ""));
        let shown = |v: &str| match v {
            "∅" | "" => "∅".to_owned(),
            v => self.change_value(&e.title, Some(v.to_owned())).unwrap_or_else(|| "•••".into()),
        };
        let actor = if actor.is_empty() { String::new() } else { format!(" ({actor}") };
        e.detail = Some(format!("{} → {}{actor}", shown(old), shown(new)));
    }

    /// Applies the mask to a JSON document in place: every object member named in
    /// [`PERSONAL_FIELDS`] or [`MONEY_FIELDS`], at any depth. The API and the UI pass their
    /// customer, order and segment documents through here, so a new field of one of those names
    /// is masked wherever it appears.
    pub fn apply_json(&self, v: &mut Value) {
        if self.is_full() {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, field) in map.iter_mut() {
                    if PERSONAL_FIELDS.contains(&k.as_str()) {
                        *field = match (self.personal, k.as_str(), &*field) {
                            (Visibility::Full, _, _) => continue,
                            (_, _, Value::Null) => Value::Null,
                            (Visibility::Masked, "birthday", _) | (Visibility::Hidden, _, _) => Value::Null,
                            (Visibility::Masked, _, Value::String(s)) => Value::String(mask(s)),
                            (Visibility::Masked, _, _) => Value::Null,
                        };
                    } else if MONEY_FIELDS.contains(&k.as_str()) {
                        *field = match (self.money, &*field) {
                            (Visibility::Full, _) => continue,
                            (_, Value::Null) => Value::Null,
                            (Visibility::Hidden, _) => Value::Null,
                            (Visibility::Masked, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                                (Some(i), _) => Value::from(round_to_step(i)),
                                (None, Some(f)) if f.is_finite() => Value::from(round_to_step(f.round() as i64)),
                                _ => Value::Null,
                            },
                            (Visibility::Masked, _) => Value::Null,
                        };
                    } else {
                        self.apply_json(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply_json(i)),
            _ => {}
        }
    }
}

/// `cents` rounded to the nearest [`MONEY_STEP_CENTS`] (halves away from zero).
fn round_to_step(cents: i64) -> i64 {
    let step = MONEY_STEP_CENTS;
    let r = cents.rem_euclid(step);
    let down = cents - r;
    if r * 2 >= step {
        // Near i64::MAX rounding up has no room: the step below is the nearest that fits.
        down.checked_add(step).unwrap_or(down)
    } else {
        down
    }
}

impl MaskingSettings {
    /// Checks the rules name roles that exist (`custom`: the custom roles' names).
    pub fn validate(&self, custom: &[String]) -> Result<()> {
        if self.roles.len() > 200 {
            return Err(StoreError::invalid("roles", "at most 200 roles"));
        }
        for name in self.roles.keys() {
            if name.parse::<Role>().is_err() && !custom.iter().any(|c| c == name) {
                return Err(StoreError::invalid("roles", format!("no role named {name:?}")));
            }
        }
        Ok(())
    }
}

impl Store {
    /// The masking settings.
    pub async fn masking_settings(&self) -> Result<MaskingSettings> {
        self.setting(SETTINGS).await
    }

    /// Replaces the masking settings (audited).
    pub async fn set_masking_settings(&self, actor: &Actor, s: &MaskingSettings) -> Result<()> {
        let custom: Vec<String> = self.roles().await?.into_iter().filter(|r| !r.builtin).map(|r| r.name).collect();
        s.validate(&custom)?;
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// What `actor` sees of personal data and money on `surface`.
    pub async fn field_mask(&self, actor: &Actor, surface: Surface) -> Result<FieldMask> {
        Ok(FieldMask::of(&self.masking_settings().await?, actor, surface))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor::new("t", role, None)
    }

    #[test]
    fn money_rounds_to_the_nearest_hundred_yuan() {
        assert_eq!(round_to_step(0), 0);
        assert_eq!(round_to_step(4_999), 0);
        assert_eq!(round_to_step(5_000), 10_000);
        assert_eq!(round_to_step(123_456), 120_000);
        assert_eq!(round_to_step(-4_999), 0);
        assert_eq!(round_to_step(-5_001), -10_000);
        assert_eq!(round_to_step(i64::MAX), i64::MAX - i64::MAX.rem_euclid(MONEY_STEP_CENTS));
    }

    #[test]
    fn roles_without_a_rule_keep_the_permission_default() {
        let s = MaskingSettings::default();
        assert!(FieldMask::of(&s, &actor(Role::Admin), Surface::List).is_full());
        assert!(!Role::Agent.permissions().has(Permission::ContactDetailsRead));
        let agent = FieldMask::of(&s, &actor(Role::Agent), Surface::List);
        assert_eq!(agent, FieldMask { personal: Visibility::Masked, money: Visibility::Full });
        assert!(FieldMask::of(&s, &actor(Role::Agent), Surface::Profile).is_full());
    }

    #[test]
    fn json_is_masked_at_any_depth() {
        let mut s = MaskingSettings::default();
        s.roles.insert("agent".into(), RoleMasking { personal: Visibility::Masked, money: Visibility::Hidden });
        let m = FieldMask::of(&s, &actor(Role::Agent), Surface::Profile);
        let mut v = serde_json::json!({
            "customer": {"name": "李勇", "mobile": "13800138000", "email": "li@example.com", "wechat_id": null, "birthday": "1990-05-12"},
            "stats": {"order_count": 3, "spend_cents": 123_456},
            "recent_orders": [{"total_cents": 5_000, "lines": [{"unit_price_cents": 100}]}],
            "scores": {"scores": {"clv_cents": 1234.5}}
        });
        m.apply_json(&mut v);
        assert_eq!(v["customer"]["mobile"], "138****8000");
        assert_eq!(v["customer"]["email"], "l***@example.com");
        assert_eq!(v["customer"]["birthday"], Value::Null);
        assert_eq!(v["customer"]["name"], "李勇");
        assert_eq!(v["stats"]["spend_cents"], Value::Null);
        assert_eq!(v["stats"]["order_count"], 3);
        assert_eq!(v["recent_orders"][0]["total_cents"], Value::Null);
        assert_eq!(v["recent_orders"][0]["lines"][0]["unit_price_cents"], 100);
        assert_eq!(v["scores"]["scores"]["clv_cents"], Value::Null);

        s.roles.insert("agent".into(), RoleMasking { personal: Visibility::Hidden, money: Visibility::Masked });
        let m = FieldMask::of(&s, &actor(Role::Agent), Surface::Profile);
        let mut v = serde_json::json!({"mobile": "13800138000", "spend_cents": 123_456, "clv_cents": 15_000.4});
        m.apply_json(&mut v);
        assert_eq!(v, serde_json::json!({"mobile": null, "spend_cents": 120_000, "clv_cents": 20_000}));
    }

    #[test]
    fn rules_must_name_roles_that_exist() {
        let mut s = MaskingSettings::default();
        s.roles.insert("manager".into(), RoleMasking { personal: Visibility::Full, money: Visibility::Masked });
        assert!(s.validate(&[]).is_ok());
        s.roles.insert("客服".into(), RoleMasking { personal: Visibility::Masked, money: Visibility::Hidden });
        assert!(s.validate(&[]).is_err());
        assert!(s.validate(&["客服".into()]).is_ok());
    }
}
