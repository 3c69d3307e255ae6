//! The demo's campaign: three weeks ago an SMS campaign went to repeat customers with a 20%
//! holdout, through the real store API on a demo clock — created, launched, sent through the
//! file adapter — and its recipients answered: some opened or replied, and more of them than
//! of the holdout came back to buy within the week, so the report shows a lift with its
//! interval. A draft e-mail campaign waits in the wizard's review step.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use patron_server::delivery::Delivery;
use patron_store::engagement::campaigns::{CampaignChannel, NewCampaign};
use patron_store::engagement::templates::NewTemplate;
use patron_store::engagement::{Channel, EngagementSettings, Purpose};
use patron_store::interactions::NewInteraction;
use patron_store::orders::NewOrder;
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo made.
pub struct DemoCampaigns {
    /// Messages sent.
    pub sent: u64,
    /// The holdout.
    pub holdout: i64,
    /// Orders of recipients and holdout members in the window.
    pub orders: usize,
}

async fn template(s: &Store, t: NewTemplate) -> Result<i64> {
    match s.create_template(&Actor::cli(), t).await? {
        Ok(created) => Ok(created.template.id),
        Err(lint) => anyhow::bail!("the demo template was refused by the lint: {:?}", lint.errors),
    }
}

/// Makes the campaigns (before the second analysis run).
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<DemoCampaigns> {
    let tz = store.config.business_tz;
    // 10:00 business time, 21 days ago: outside the SMS quiet hours.
    let day = (now - Duration::days(21)).with_timezone(&tz).date_naive();
    let t0 = tz
        .from_local_datetime(&day.and_hms_opt(10, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now - Duration::days(21));
    let clock = Arc::new(FixedClock::new(t0));
    let s = store.clone().with_clock(clock.clone());
    let mut rng = StdRng::seed_from_u64(seed ^ 0xCA4_A16);
    let actor = Actor::cli();

    let sms = template(
        &s,
        NewTemplate {
            name: "老客回店礼".into(),
            channel: Channel::Sms,
            purpose: Purpose::Marketing,
            subject: None,
            body_text: "{{ salutation }}，好久不见！本周到店出示短信，锅底半价。回T退订".into(),
            body_html: None,
        },
    )
    .await?;
    let email = template(
        &s,
        NewTemplate {
            name: "秋季新菜".into(),
            channel: Channel::Email,
            purpose: Purpose::Marketing,
            subject: Some("{{ salutation }}，秋季新菜上市".into()),
            body_text: "{{ salutation }}，秋季新菜上市，欢迎品尝：https://demo.patron.local/menu 退订：{{ unsubscribe_url }}".into(),
            body_html: None,
        },
    )
    .await?;
    let campaign = s
        .create_campaign(
            &actor,
            NewCampaign {
                name: "老客回店礼（短信）".into(),
                segment: "order_count >= 3".into(),
                channel: CampaignChannel::Sms,
                template_id: sms,
                holdout_percent: 20.0,
                conversion_window_days: 7,
                send_at: None,
            },
        )
        .await?;
    let launched = s.launch_campaign(&actor, campaign.id).await?;

    // Sent through the file adapter, at a rate the demo does not have to wait for.
    let settings = s.engagement_settings().await?;
    s.set_engagement_settings(&actor, &EngagementSettings { rate_per_second: 100_000.0, ..settings.clone() }).await?;
    let dir = tempfile::tempdir().context("creating the demo's outbox folder")?;
    let delivery = Delivery::files(dir.path().to_owned(), "http://localhost:8080");
    let mut sent = 0;
    loop {
        let r = delivery.send_due(&s, 5000).await?;
        sent += r.sent;
        if r.sent + r.skipped + r.failed + r.retrying == 0 {
            break;
        }
    }
    s.set_engagement_settings(&actor, &settings).await?;

    // Answers: recipients reply or click now and then; 14% of recipients and 8% of the holdout
    // buy within the week (the recipients a little sooner).
    let rows: Vec<(i64, String, Option<String>)> =
        s.db.reader()
            .fetch_all(
                patron_store::db::query("SELECT customer_id, status, reason FROM outbox WHERE campaign_id = $1 ORDER BY customer_id")
                    .bind(campaign.id),
            )
            .await?;
    let (mut orders, mut touches) = (Vec::new(), Vec::new());
    for (customer_id, status, reason) in rows {
        let control = reason.as_deref() == Some("holdout");
        if !control && status != "sent" {
            continue;
        }
        if !control && rng.gen::<f64>() < 0.18 {
            touches.push(NewInteraction {
                external_id: Some(format!("demo-campaign-{}-{customer_id}", campaign.id)),
                customer_id: Some(customer_id),
                customer_external_id: None,
                kind: if rng.gen::<f64>() < 0.3 { "reply".into() } else { "click".into() },
                channel: Some("sms".into()),
                occurred_at: t0 + Duration::minutes(rng.gen_range(5..48 * 60)),
                payload: None,
            });
        }
        let p = if control { 0.08 } else { 0.14 };
        if rng.gen::<f64>() < p {
            let hours = if control { rng.gen_range(6..7 * 24) } else { rng.gen_range(2..5 * 24) };
            orders.push(NewOrder {
                external_id: Some(format!("demo-campaign-{}-{customer_id}", campaign.id)),
                customer_id: Some(customer_id),
                ordered_at: t0 + Duration::hours(hours),
                store: Some("上海徐汇店".into()),
                total_cents: Some(rng.gen_range(120..480) * 100),
                ..Default::default()
            });
        }
    }
    let n_orders = orders.len();
    for chunk in orders.chunks(500) {
        store.create_orders(&actor, chunk.to_vec()).await?;
    }
    for chunk in touches.chunks(500) {
        store.create_interactions(&actor, chunk.to_vec()).await?;
    }

    // A draft for the wizard's review step.
    clock.set(now);
    s.create_campaign(
        &actor,
        NewCampaign {
            name: "秋季新菜（邮件）".into(),
            segment: "builtin:abcd:a".into(),
            channel: CampaignChannel::Email,
            template_id: email,
            holdout_percent: 10.0,
            conversion_window_days: 14,
            send_at: None,
        },
    )
    .await?;
    Ok(DemoCampaigns { sent, holdout: launched.counts.holdout, orders: n_orders })
}
