//! The demo's loyalty club: a running programme (1 point per yuan, double points on the 8th —
//! 会员日 — a week's pending period, expiry at the end of the 12th month, 银卡/金卡/黑金 on
//! points earned in 12 months, referral rewards) set before the orders are imported, so the
//! import earns three years of history; then a rewards catalogue and a year of redemptions,
//! fulfilments, expiries, tier reviews and referral rewards made through the store on a demo
//! clock, month by month.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use patron_store::db::query;
use patron_store::loyalty::ledger::{AdjustmentRequest, RedemptionRequest};
use patron_store::loyalty::rewards::{FulfilmentUpdate, RewardInput};
use patron_store::loyalty::{BonusPeriod, EarnRule, LoyaltyProgram, TierDef};
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo's year of loyalty made.
pub struct LoyaltyDemo {
    /// Members.
    pub members: i64,
    /// Redemptions made.
    pub redemptions: u64,
    /// Lots expired.
    pub expired_lots: u64,
    /// Tier changes of the reviews.
    pub tier_changes: usize,
}

/// Sets the demo programme (before the orders are imported) and the demo's cost-to-serve rates.
pub async fn programme(store: &Store) -> Result<()> {
    let tier = |name: &str, min: i64, multiplier: f64, benefits: &[&str]| TierDef {
        name: name.into(),
        min_points_earned: min,
        multiplier,
        benefits: benefits.iter().map(|b| (*b).to_owned()).collect(),
    };
    let p = LoyaltyProgram {
        enabled: true,
        point_value_cents: 1,
        earn_rules: vec![
            EarnRule { points_per_yuan: 1.0, category: None, channel: None, store: None, multiplier: None },
            EarnRule { points_per_yuan: 1.0, category: None, channel: Some("外卖".into()), store: None, multiplier: Some(0.5) },
        ],
        bonus_periods: vec![BonusPeriod { name: "会员日".into(), from: None, to: None, day_of_month: Some(8), multiplier: 2.0 }],
        pending_days: 7,
        expiry_months: 12,
        expiry_end_of_month: true,
        qualifying_months: 12,
        tiers: vec![
            tier("银卡", 800, 1.0, &["生日礼"]),
            tier("金卡", 3000, 1.2, &["生日礼", "优先排队"]),
            tier("黑金", 8000, 1.5, &["生日礼", "优先排队", "专属客服"]),
        ],
        downgrade_grace_days: 90,
        auto_enrol: true,
        referral_points: 300,
        referral_cap_per_month: 5,
    };
    store.set_loyalty_program(&Actor::cli(), &p).await?;
    // Cost to serve at a restaurant chain's rates: a ticket costs ¥25 plus ¥1.5 a handling
    // minute; SMS ¥0.05, WeChat and email next to nothing, a letter ¥3; margins by category
    // (drinks and bakery high, gift cards and catering low) instead of one flat rate.
    let margins =
        [("火锅", 0.32), ("中餐", 0.30), ("茶饮", 0.62), ("烘焙", 0.55), ("外卖", 0.18), ("礼品卡", 0.05), ("零售", 0.40), ("团餐", 0.22)];
    let costs = patron_store::cost_to_serve::CostSettings {
        ticket_cents: 2_500,
        handling_minute_cents: 150,
        message_cents: [("sms", 5), ("wechat", 1), ("email", 1), ("mail", 300)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        margin_rate: 0.3,
        category_margin_rates: margins.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..Default::default()
    };
    store.set_cost_settings(&Actor::cli(), &costs).await?;
    Ok(())
}

/// The catalogue and a year of the programme running, month by month up to `now`.
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<LoyaltyDemo> {
    let cli = Actor::cli();
    let reward = |name: &str, points: i64, stock: Option<i64>, cost: i64, tiers: &[&str]| RewardInput {
        name: name.into(),
        points,
        stock,
        cost_cents: cost,
        active_from: None,
        active_to: None,
        tiers: tiers.iter().map(|t| (*t).to_owned()).collect(),
        image_url: None,
    };
    let mut rewards = Vec::new();
    for r in [
        reward("酸梅汤一扎", 300, None, 600, &[]),
        reward("招牌毛肚一份", 800, None, 2200, &[]),
        reward("50元代金券", 2500, None, 5000, &[]),
        reward("定制火锅底料礼盒", 4000, Some(200), 6800, &["金卡", "黑金"]),
        reward("双人套餐", 9000, Some(50), 16800, &["黑金"]),
    ] {
        rewards.push(store.create_reward(&cli, r).await?);
    }
    let clock = Arc::new(FixedClock::new(now - Duration::days(365)));
    let s = store.clone().with_clock(clock.clone());
    let mut rng = StdRng::seed_from_u64(seed ^ 0x10a17);
    let members: Vec<(i64,)> = store.db.reader().fetch_all(query("SELECT customer_id FROM loyalty_members ORDER BY customer_id")).await?;
    let (mut redemptions, mut expired_lots, mut tier_changes) = (0u64, 0u64, 0usize);
    for month in 0..=12 {
        let at = now - Duration::days(365) + Duration::days(month * 30);
        clock.set(at.min(now));
        expired_lots += s.expire_due_lots().await?.0;
        tier_changes += s.review_tiers().await?.len();
        s.run_referrals().await?;
        // About one member in twelve redeems each month, the most expensive reward they can.
        let chosen: Vec<i64> = members.iter().filter(|_| rng.gen_bool(1.0 / 12.0)).map(|m| m.0).collect();
        for c in chosen {
            let Ok(choice) = s.rewards(Some(c)).await else { continue };
            let Some(r) = choice.last() else { continue };
            let key = format!("demo-{month}-{c}");
            let req = RedemptionRequest { points: None, reward_id: Some(r.id), idempotency_key: key };
            let Ok((red, _)) = s.redeem_points(&cli, c, req).await else { continue };
            redemptions += 1;
            let status = if rng.gen_bool(0.05) { "cancelled" } else { "handed_over" };
            if month < 12 || rng.gen_bool(0.5) {
                s.fulfil_redemption(&cli, c, red.id, FulfilmentUpdate { status: status.into() }).await?;
            }
        }
        // A goodwill adjustment now and then (a complaint's make-good).
        if let Some(&(c,)) = members.get(rng.gen_range(0..members.len().max(1))) {
            let a = AdjustmentRequest { points: 200, reason: "投诉补偿".into(), idempotency_key: Some(format!("demo-adjust-{month}")) };
            let _ = s.adjust_points(&cli, c, a).await;
        }
    }
    // The service demo's scheduler runs expired and reviewed too: count what the ledger holds.
    let (expired,): (i64,) = store.db.reader().fetch_one(query("SELECT COUNT(*) FROM loyalty_entries WHERE kind = 'expire'")).await?;
    let (changes,): (i64,) = store.db.reader().fetch_one(query("SELECT COUNT(*) FROM loyalty_tier_changes")).await?;
    expired_lots = expired_lots.max(expired as u64);
    tier_changes = tier_changes.max(changes as usize);
    Ok(LoyaltyDemo { members: members.len() as i64, redemptions, expired_lots, tier_changes })
}
