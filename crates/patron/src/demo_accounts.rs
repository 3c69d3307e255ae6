//! The demo's account management (issue 19 §1–§5): up to a dozen B2B organisations with owners
//! get an account team, a contact cadence of 30 days and a year of calls and visits by the team
//! (a third of them no longer called for two to four months: overdue), the client's people with
//! our ties, quarterly relationship reviews (one account falling, one rising, the rest steady),
//! joint account plans for the first three, and fulfilment chains for their recent orders with
//! some deliveries late.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use patron_store::accounts::relationship::TieInput;
use patron_store::accounts::reviews::{NewReview, ReviewScores};
use patron_store::accounts::team::{TeamInput, TeamMemberInput};
use patron_store::contacts::NewContact;
use patron_store::db::query;
use patron_store::fulfilment::NewStep;
use patron_store::interactions::NewInteraction;
use patron_store::plans::{NewKpi, NewPlan};
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo's account management made.
pub struct AccountsDemo {
    /// Accounts with a team.
    pub accounts: usize,
    /// Contacts (calls and visits) recorded.
    pub contacts: usize,
    /// Reviews recorded.
    pub reviews: usize,
    /// Fulfilment steps recorded.
    pub steps: usize,
}

const PEOPLE: &[(&str, &str, &str)] = &[
    ("王建华", "采购总监", "钓鱼、普洱茶"),
    ("陈静", "财务经理", "马拉松"),
    ("刘洋", "总经理", "高尔夫、书法"),
    ("赵敏", "行政主管", "烘焙"),
];

/// Seeds the accounts of the demo (see the module).
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<AccountsDemo> {
    let actor = Actor::cli();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6163_636f);
    let accounts: Vec<(i64, i64)> = store
        .db
        .reader()
        .fetch_all(query(
            "SELECT id, owner_id FROM customers WHERE kind = 'organisation' AND owner_id IS NOT NULL AND deleted_at IS NULL ORDER BY id LIMIT 12",
        ))
        .await?;
    let agents: Vec<i64> =
        store.users().await?.into_iter().filter(|u| u.role == patron_store::users::Role::Agent && u.active).map(|u| u.id).collect();
    let (mut contacts, mut reviews, mut steps) = (0, 0, 0);
    let at = |t: DateTime<Utc>| store.clone().with_clock(Arc::new(FixedClock::new(t)));
    for (n, (id, owner)) in accounts.iter().copied().enumerate() {
        // The team: the owner manages the account, a colleague serves it.
        let mut members = vec![TeamMemberInput { user_id: owner, role: "account_manager".into() }];
        if let Some(other) =
            agents.iter().copied().find(|u| *u != owner && (u + n as i64) % 2 == 0).or(agents.iter().copied().find(|u| *u != owner))
        {
            members.push(TeamMemberInput { user_id: other, role: "service".into() });
        }
        store.set_account_team(&actor, id, TeamInput { members }).await.context("demo team")?;
        let mut tx = store.db.begin().await?;
        tx.execute(query("UPDATE customers SET contact_cadence_days = 30 WHERE id = $1").bind(id)).await?;
        tx.commit().await?;
        // A year of calls and visits every 20–35 days; a third stopped two to four months ago.
        let stop = if n % 3 == 2 { now - Duration::days(rng.gen_range(60..120)) } else { now - Duration::days(rng.gen_range(1..15)) };
        let mut t = now - Duration::days(365);
        let mut batch = Vec::new();
        while t < stop {
            let kind = if rng.gen_bool(0.3) { "visit" } else { "call" };
            let i: NewInteraction = serde_json::from_value(serde_json::json!({
                "customer_id": id, "kind": kind, "channel": "phone", "occurred_at": t, "external_id": format!("DEMO-ACCT-{id}-{}", batch.len()),
            }))
            .context("demo contact")?;
            batch.push(i);
            t += Duration::days(rng.gen_range(20..36));
        }
        contacts += batch.len();
        store.create_interactions(&actor, batch).await.context("demo contacts")?;
        // The client's people and our ties to them (single-threaded for every fourth account).
        let ties = if n % 4 == 3 { 1 } else { 2 };
        for (k, (name, role, interests)) in PEOPLE.iter().take(ties + 1).enumerate() {
            let c = NewContact {
                external_id: None,
                name: (*name).into(),
                role: Some((*role).into()),
                mobile: None,
                email: None,
                interests: Some((*interests).into()),
                notes: None,
            };
            let c = store.create_contact(&actor, id, c).await.context("demo person")?;
            if k < ties {
                let tie = TieInput {
                    contact_id: c.id,
                    user_id: owner,
                    strength: 2 + (k as i64 + n as i64) % 4,
                    shared_interests: Some(interests.split('、').next().unwrap_or(interests).to_owned()),
                    last_contact_at: Some(stop.min(now)),
                };
                store.set_tie(&actor, id, tie).await.context("demo tie")?;
            }
        }
        // Quarterly reviews: the first account falling, the second rising, the others steady.
        for q in 0..4_i64 {
            let s = match n {
                0 => 5 - q,
                1 => 2 + q,
                _ => 4,
            };
            let scores = ReviewScores { responsiveness: s, price: 4, delivery: s, obligations: 4, complaints: s, contract: 4 };
            let note = match n {
                0 => Some("交付多次延迟，对方采购开始接触其他供应商".to_owned()),
                1 => Some("联合计划落地后，投诉明显减少".to_owned()),
                _ => None,
            };
            let r = NewReview { scores, sentiment: s, notes: None, note };
            at(now - Duration::days(300 - 90 * q)).create_review(&actor, id, r).await.context("demo review")?;
            reviews += 1;
        }
        if n < 3 {
            let plan = NewPlan {
                goals: "共同把交付周期缩短到 5 天，投诉 48 小时内解决".into(),
                expectations_ours: "提前一个月提供季度需求预测".into(),
                expectations_theirs: "准时交付、专人对接、每季度复盘".into(),
                kpis: vec![
                    NewKpi { name: "准时交付率".into(), target: 98.0, kind: "on_time_delivery".into() },
                    NewKpi { name: "投诉解决时长".into(), target: 48.0, kind: "complaint_resolution_hours".into() },
                    NewKpi { name: "满意度".into(), target: 4.5, kind: "satisfaction".into() },
                ],
                owner_ids: Some(vec![owner]),
                review_on: Some((now + Duration::days(90)).with_timezone(&store.config.business_tz).date_naive()),
                window_days: None,
                scorecard_days: None,
            };
            store.create_plan(&actor, id, &plan).await.context("demo plan")?;
        }
        // Fulfilment chains for the recent orders: delivered a day late now and then.
        let orders: Vec<(i64, DateTime<Utc>)> = store
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, ordered_at FROM orders WHERE customer_id = $1 AND status = 'completed' AND ordered_at < $2 \
                     ORDER BY ordered_at DESC LIMIT 4",
                )
                .bind(id)
                .bind(now - Duration::days(10)),
            )
            .await?;
        for (k, (order, placed)) in orders.into_iter().enumerate() {
            let late = (k + n) % 3 == 0;
            let day = |t: DateTime<Utc>| t.with_timezone(&store.config.business_tz).date_naive().to_string();
            for (step, after_h, promise_h) in
                [("accepted", 2, None), ("shipped", 48, Some(60)), ("delivered", if late { 120 } else { 90 }, Some(96))]
            {
                let input = NewStep {
                    step: step.into(),
                    at: Some(placed + Duration::hours(after_h)),
                    promised_at: promise_h.map(|h| day(placed + Duration::hours(h))),
                    note: None,
                };
                store.record_fulfilment(&actor, order, &input).await.context("demo fulfilment")?;
                steps += 1;
            }
        }
    }
    Ok(AccountsDemo { accounts: accounts.len(), contacts, reviews, steps })
}
