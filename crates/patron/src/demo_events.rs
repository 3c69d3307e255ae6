//! The demo's customer events (issue 19 §6): two past events, through the real store API on a
//! demo clock — a members' tasting seminar two months ago and a forum three weeks ago. Each was
//! made two weeks before it, its invitations went out to a segment through the outbox (sent by
//! the file adapter), some invitees registered (by their account manager), most of them came
//! and were checked in, a few walked in; the seminar's survey went to its attendees.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use patron_server::delivery::Delivery;
use patron_store::customer_events::{CustomerEventPatch, EventSurveyRequest, InviteRequest, NewCustomerEvent};
use patron_store::engagement::campaigns::CampaignChannel;
use patron_store::engagement::EngagementSettings;
use patron_store::surveys::NewSurvey;
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the demo made.
pub struct DemoEvents {
    /// Invitations over both events.
    pub invited: i64,
    /// Registrations.
    pub registered: usize,
    /// Check-ins.
    pub attended: usize,
}

/// `days` ago at `hour`:00 business time.
fn at(store: &Store, now: DateTime<Utc>, days: i64, hour: u32) -> DateTime<Utc> {
    let tz = store.config.business_tz;
    let day = (now - Duration::days(days)).with_timezone(&tz).date_naive();
    tz.from_local_datetime(&day.and_hms_opt(hour, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now - Duration::days(days))
}

/// Sends what is due in the outbox through the file adapter (at a rate the demo need not wait for).
async fn send_all(s: &Store) -> Result<()> {
    let actor = Actor::cli();
    let settings = s.engagement_settings().await?;
    s.set_engagement_settings(&actor, &EngagementSettings { rate_per_second: 100_000.0, ..settings.clone() }).await?;
    let dir = tempfile::tempdir().context("creating the demo's outbox folder")?;
    let delivery = Delivery::files(dir.path().to_owned(), "http://localhost:8080");
    loop {
        let r = delivery.send_due(s, 5000).await?;
        if r.sent + r.skipped + r.failed + r.retrying == 0 {
            break;
        }
    }
    s.set_engagement_settings(&actor, &settings).await?;
    Ok(())
}

/// One past event: made and invited 14 days before, registrations over the next days, check-in
/// at the door.
struct Plan<'a> {
    event: NewCustomerEvent,
    segment: &'a str,
    channel: CampaignChannel,
    register_share: f64,
    attend_share: f64,
    walk_ins: usize,
}

/// Makes the two events (after the campaigns, before the second analysis run).
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<DemoEvents> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x000E_7E17);
    let actor = Actor::cli();
    let clock = Arc::new(FixedClock::new(now));
    let s = store.clone().with_clock(clock.clone());
    let mut out = DemoEvents { invited: 0, registered: 0, attended: 0 };

    let seminar_at = at(store, now, 60, 14);
    let forum_at = at(store, now, 21, 9);
    let plans = [
        Plan {
            event: NewCustomerEvent {
                title: "会员秋季新品品鉴会".into(),
                kind: Some("seminar".into()),
                description: Some("主厨现场讲解秋季新菜，品鉴并交流口味建议。".into()),
                starts_at: seminar_at,
                ends_at: Some(seminar_at + Duration::minutes(150)),
                place: Some("上海徐汇店 二楼包间".into()),
                link: None,
                capacity: 40,
                survey_id: None,
            },
            segment: "order_count >= 3",
            channel: CampaignChannel::Preferred,
            register_share: 0.25,
            attend_share: 0.8,
            walk_ins: 2,
        },
        Plan {
            event: NewCustomerEvent {
                title: "企业客户年度论坛".into(),
                kind: Some("forum".into()),
                description: Some("年度合作回顾、新一年的服务承诺与客户交流。".into()),
                starts_at: forum_at,
                ends_at: Some(forum_at + Duration::hours(8)),
                place: Some("上海国际会议中心".into()),
                link: Some("https://meeting.demo.patron.local/forum".into()),
                capacity: 120,
                survey_id: None,
            },
            segment: "builtin:abcd:a",
            channel: CampaignChannel::Email,
            register_share: 0.3,
            attend_share: 0.7,
            walk_ins: 1,
        },
    ];
    let mut first = None;
    for p in plans {
        let starts = p.event.starts_at;
        clock.set(starts - Duration::days(14));
        let event = s.create_customer_event(&actor, p.event).await?;
        first.get_or_insert(event.id);
        let outcome =
            s.invite_to_customer_event(&actor, event.id, InviteRequest { segment: p.segment.into(), channel: Some(p.channel) }).await?;
        out.invited += outcome.invited;
        send_all(&s).await?;
        let invitees: Vec<(i64,)> =
            s.db.reader()
                .fetch_all(
                    patron_store::db::query("SELECT customer_id FROM customer_event_invitations WHERE event_id = $1 ORDER BY customer_id")
                        .bind(event.id),
                )
                .await?;
        // Registrations over the days before, until the seats run out.
        let mut registered = Vec::new();
        for (customer_id,) in &invitees {
            if rng.gen::<f64>() >= p.register_share {
                continue;
            }
            clock.set(starts - Duration::days(rng.gen_range(1..13)) - Duration::hours(rng.gen_range(0..12)));
            match s.register_for_customer_event(&actor, event.id, *customer_id).await {
                Ok(_) => registered.push(*customer_id),
                Err(patron_store::StoreError::State(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
        out.registered += registered.len();
        // At the door.
        for customer_id in &registered {
            if rng.gen::<f64>() < p.attend_share {
                clock.set(starts - Duration::minutes(rng.gen_range(0..40)));
                s.check_in_customer_event(&actor, event.id, *customer_id).await?;
                out.attended += 1;
            }
        }
        let walk_ins: Vec<&(i64,)> = invitees.iter().filter(|(c,)| !registered.contains(c)).take(p.walk_ins).collect();
        for (customer_id,) in walk_ins {
            clock.set(starts + Duration::minutes(rng.gen_range(5..30)));
            s.check_in_customer_event(&actor, event.id, *customer_id).await?;
            out.attended += 1;
        }
    }
    // The seminar's survey, the day after it.
    if let Some(id) = first {
        clock.set(seminar_at + Duration::days(1));
        let survey = s
            .create_survey(
                &actor,
                NewSurvey {
                    name: "品鉴会满意度".into(),
                    kind: "csat".into(),
                    questions: None,
                    ask_switch: false,
                    trigger: None,
                    recontact_days: Some(0),
                    expires_days: 14,
                },
            )
            .await?;
        s.update_customer_event(&actor, id, CustomerEventPatch { survey_id: Some(survey.id), ..Default::default() }).await?;
        s.send_customer_event_survey(&actor, id, EventSurveyRequest { channel: None }).await?;
        send_all(&s).await?;
    }
    Ok(out)
}
