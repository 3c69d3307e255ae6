//! Next best action (issue 12 §7, DESIGN.md C18): one recommended action per customer, chosen
//! by a fixed priority order — the first rule that applies wins:
//!
//! 1. **win_back** — churned (absolute churn) and valuable: ABCD tier A or B, or an RFM class
//!    of high monetary value (`important_*`; a churned customer's CLV, and so its tier, has
//!    fallen, while the spend they had says what is at stake);
//! 2. **retain** — at risk (relative churn or a low P(alive)) and of high value: tier A or B
//!    (ranked by CLV unless configured otherwise);
//! 3. **review** — an organisation not contacted within its tier's cadence (the days since the
//!    last call, visit or reply — or since it was created — exceed the cadence);
//! 4. **referral** — a loyal promoter: latest NPS ≥ 9 and loyal (lifecycle `loyal` or a
//!    true-loyalty situation of the loyalty matrix);
//! 5. **nurture** — a new customer (one purchase day);
//! 6. **upsell** — an active, loyal or won-back customer for whom a category with lift > 1
//!    exists ([`crate::basket`]);
//! 7. **none** — nothing applies (prospects, churned or at-risk customers of low value, …).
//!
//! Losing value comes before growing it; a relationship overdue for a visit before any
//! marketing; a referral is asked only of those who said they would recommend.

use serde::Serialize;

use crate::abcd::Tier;
use crate::basket::Upsell;
use crate::lifecycle::LifecycleStage;
use crate::loyalty::{LoyaltySituation, LoyaltyType};
use crate::rfm::RfmClass;

/// The recommended action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Win a churned, valuable customer back.
    WinBack,
    /// Keep an at-risk customer of high value.
    Retain,
    /// Review the relationship with an organisation not contacted within its cadence.
    Review,
    /// Ask a loyal promoter for a referral.
    Referral,
    /// Nurture a new customer.
    Nurture,
    /// Suggest a category.
    Upsell,
    /// Nothing to do.
    None,
}

impl Action {
    /// Every action, in priority order.
    pub const ALL: [Action; 7] =
        [Action::WinBack, Action::Retain, Action::Review, Action::Referral, Action::Nurture, Action::Upsell, Action::None];

    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Action::WinBack => "win_back",
            Action::Retain => "retain",
            Action::Review => "review",
            Action::Referral => "referral",
            Action::Nurture => "nurture",
            Action::Upsell => "upsell",
            Action::None => "none",
        }
    }

    /// The action of a stored key.
    pub fn parse(key: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.key() == key)
    }
}

/// NPS at or above which a customer is a promoter.
pub const PROMOTER_NPS: u8 = 9;

/// What the rules look at for one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionInput {
    /// Lifecycle stage of the analysis.
    pub stage: LifecycleStage,
    /// ABCD tier.
    pub tier: Option<Tier>,
    /// RFM class.
    pub rfm_class: Option<RfmClass>,
    /// Latest NPS answer (0–10).
    pub latest_nps: Option<u8>,
    /// Loyalty-matrix situation.
    pub loyalty_situation: Option<LoyaltySituation>,
    /// For an organisation: (days since the last contact — or since it was created, when never
    /// contacted —, the tier's cadence in days). `None` for a person.
    pub contact: Option<(i64, i64)>,
    /// The category to suggest, if any.
    pub upsell: Option<Upsell>,
}

/// Whether the tier is A or B.
fn top_tier(t: Option<Tier>) -> bool {
    matches!(t, Some(Tier::A | Tier::B))
}

/// Whether the RFM class is one of high monetary value.
fn high_monetary(c: Option<RfmClass>) -> bool {
    matches!(c, Some(RfmClass::ImportantValue | RfmClass::ImportantRetain | RfmClass::ImportantDevelop | RfmClass::ImportantWinBack))
}

/// The one action for a customer (see the module documentation for the order).
pub fn next_action(i: &ActionInput) -> Action {
    use LifecycleStage as S;
    if i.stage == S::Churned && (top_tier(i.tier) || high_monetary(i.rfm_class)) {
        return Action::WinBack;
    }
    if i.stage == S::AtRisk && top_tier(i.tier) {
        return Action::Retain;
    }
    if let Some((days, cadence)) = i.contact {
        if days > cadence {
            return Action::Review;
        }
    }
    let loyal = i.stage == S::Loyal || i.loyalty_situation.is_some_and(|l| l.kind == LoyaltyType::TrueLoyalty);
    let promoter = i.latest_nps.is_some_and(|n| n >= PROMOTER_NPS);
    if promoter && loyal && !matches!(i.stage, S::Churned | S::AtRisk | S::Prospect) {
        return Action::Referral;
    }
    if i.stage == S::New {
        return Action::Nurture;
    }
    if matches!(i.stage, S::Active | S::Loyal | S::WonBack) && i.upsell.is_some() {
        return Action::Upsell;
    }
    Action::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(stage: LifecycleStage) -> ActionInput {
        ActionInput { stage, tier: None, rfm_class: None, latest_nps: None, loyalty_situation: None, contact: None, upsell: None }
    }

    const UP: Upsell = Upsell { category: 3, because_of: 1, lift: 1.5, both: 4 };

    #[test]
    fn each_rule_and_the_priority_order() {
        use LifecycleStage as S;
        let win = ActionInput { tier: Some(Tier::B), ..base(S::Churned) };
        assert_eq!(next_action(&win), Action::WinBack);
        // Valuable by the spend they had, though the tier fell to D.
        let win2 = ActionInput { tier: Some(Tier::D), rfm_class: Some(RfmClass::ImportantWinBack), ..base(S::Churned) };
        assert_eq!(next_action(&win2), Action::WinBack);
        // Churned and of little value: nothing (not an upsell either).
        let cheap = ActionInput { tier: Some(Tier::D), rfm_class: Some(RfmClass::GeneralWinBack), upsell: Some(UP), ..base(S::Churned) };
        assert_eq!(next_action(&cheap), Action::None);
        assert_eq!(next_action(&ActionInput { tier: Some(Tier::A), ..base(S::AtRisk) }), Action::Retain);
        assert_eq!(next_action(&ActionInput { tier: Some(Tier::C), upsell: Some(UP), ..base(S::AtRisk) }), Action::None);
        // Win back beats review; review beats referral, nurture and upsell.
        assert_eq!(next_action(&ActionInput { contact: Some((400, 30)), ..win }), Action::WinBack);
        let org = ActionInput { contact: Some((31, 30)), latest_nps: Some(10), upsell: Some(UP), ..base(S::Loyal) };
        assert_eq!(next_action(&org), Action::Review);
        // Within the cadence (the day itself included): the next rule.
        assert_eq!(next_action(&ActionInput { contact: Some((30, 30)), ..org }), Action::Referral);
        // A promoter who is not loyal: no referral.
        assert_eq!(next_action(&ActionInput { latest_nps: Some(9), upsell: Some(UP), ..base(S::Active) }), Action::Upsell);
        assert_eq!(
            next_action(&ActionInput {
                latest_nps: Some(9),
                loyalty_situation: Some(LoyaltySituation { kind: LoyaltyType::TrueLoyalty, rising: false }),
                ..base(S::Active)
            }),
            Action::Referral
        );
        assert_eq!(next_action(&ActionInput { latest_nps: Some(8), ..base(S::Loyal) }), Action::None);
        assert_eq!(next_action(&ActionInput { upsell: Some(UP), ..base(S::New) }), Action::Nurture);
        assert_eq!(next_action(&ActionInput { upsell: Some(UP), ..base(S::WonBack) }), Action::Upsell);
        assert_eq!(next_action(&ActionInput { upsell: Some(UP), ..base(S::Prospect) }), Action::None);
        assert_eq!(next_action(&base(S::Active)), Action::None);
    }

    #[test]
    fn keys_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.key()), Some(a));
        }
        assert_eq!(Action::parse("call"), None);
    }
}
