//! The demo's journeys and tasks (issue 12 §6): the three built-in journeys enabled, reading the
//! events of the last 40 days (new customers' first orders, churn found by the analysis,
//! confirmed complaints), so that entries, queued messages on each customer's preferred channel
//! and call tasks for the account managers exist; and a few tasks made by hand.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use patron_store::customers::NewCustomer;
use patron_store::db::query;
use patron_store::orders::NewOrder;
use patron_store::tasks::NewTask;
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo's journeys made.
pub struct JourneysDemo {
    /// Entries into the built-in journeys.
    pub entered: u64,
    /// Messages queued by them.
    pub messages: u64,
    /// Tasks made (by the journeys and by hand).
    pub tasks: u64,
}

const SURNAMES: &[&str] = &["林", "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯"];
const GIVEN: &[&str] = &["晓雯", "子涵", "浩然", "雨桐", "俊杰", "思远", "佳怡", "志强", "欣怡", "建国", "梦瑶", "文博"];

/// Enables the built-in journeys over the last 40 days of events, adds new customers' first
/// orders for the nurture journey, runs the journeys once and makes a few tasks by hand.
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<JourneysDemo> {
    let actor = Actor::cli();
    store.ensure_builtin_journeys().await?;
    let since = now - Duration::days(40);
    // The journeys read the events from 40 days ago on (a journey made today would start at the
    // newest event).
    let mut tx = store.db.begin().await?;
    tx.execute(
        query(
            "UPDATE journeys SET event_cursor = COALESCE((SELECT MIN(id) - 1 FROM events WHERE occurred_at >= $1), \
             (SELECT MAX(id) FROM events), 0) WHERE builtin IS NOT NULL",
        )
        .bind(since),
    )
    .await?;
    tx.commit().await?;
    for j in store.journeys().await? {
        if j.builtin.is_some() {
            store.set_journey_enabled(&actor, j.id, true).await?;
        }
    }
    // New customers over the last five weeks, each with a first order, on a demo clock.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6a6f_7572);
    let owners: Vec<i64> = store.users().await?.into_iter().filter(|u| u.role == patron_store::users::Role::Agent).map(|u| u.id).collect();
    for i in 0..24 {
        let at = since + Duration::hours(rng.gen_range(0..(38 * 24)));
        let s = store.clone().with_clock(Arc::new(FixedClock::new(at)));
        let name = format!("{}{}", SURNAMES[i % SURNAMES.len()], GIVEN[rng.gen_range(0..GIVEN.len())]);
        let gender = if rng.gen_bool(0.5) { "female" } else { "male" };
        let customer: NewCustomer = serde_json::from_value(serde_json::json!({
            "name": name, "gender": gender, "mobile": format!("1370000{:04}", 1000 + i), "city": "上海",
            "owner_id": owners.get(i % owners.len().max(1)).copied(),
            "consents": {"sms": true, "wechat": rng.gen_bool(0.5), "email": rng.gen_bool(0.3)}
        }))
        .context("demo customer")?;
        let c = s.create_customer(&actor, customer).await?;
        let order: NewOrder = serde_json::from_value(serde_json::json!({
            "customer_id": c.id, "external_id": format!("DEMO-NEW-{i}"), "ordered_at": at, "store": "静安店", "status": "completed",
            "lines": [{"product": "招牌红烧肉", "category": "热菜", "quantity": 1, "unit_price_cents": 6800}]
        }))
        .context("demo order")?;
        s.create_orders(&actor, vec![order]).await?;
    }
    let report = store.run_journeys().await?;
    // A few tasks by hand for the account managers.
    let mut tasks = report.tasks;
    for (i, owner) in owners.iter().take(4).enumerate() {
        let title = ["整理本月 A 级客户回访名单", "确认年会包间预订", "跟进企业团餐报价", "复盘上周投诉"][i];
        let due = (now + Duration::days(i as i64 + 1)).with_timezone(&store.config.business_tz).date_naive();
        let t = NewTask { title: title.into(), customer_id: None, assignee_id: Some(*owner), due_on: Some(due) };
        store.create_task(&actor, t).await?;
        tasks += 1;
    }
    Ok(JourneysDemo { entered: report.entered, messages: report.messages, tasks })
}
