//! The demo's service loop: a year of tickets with realistic causes whose distribution has a
//! clear vital few, worked by the account managers through the real store API on a demo clock
//! (so due times, first responses, breaches and their escalations, resolutions, confirmations
//! and reopenings are what the product itself records), plus a few open tickets for the inbox.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use patron_store::db::query;
use patron_store::tickets::flow::ConfirmationAnswer;
use patron_store::tickets::{CompensationKind, NewComment, NewCompensation, NewTicket, Transition};
use patron_store::users::{Actor, Role};
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Complaint causes and their weights: 上菜慢 and 菜品质量 make most of them.
const CAUSES: [(&str, u32); 7] =
    [("上菜慢", 34), ("菜品质量", 24), ("外卖延迟", 15), ("服务态度", 10), ("收费错误", 7), ("环境卫生", 6), ("预订问题", 4)];

const SUBJECTS: [(&str, &str); 7] = [
    ("上菜慢", "等了四十分钟还没上菜"),
    ("菜品质量", "锅底味道不对，肉不新鲜"),
    ("外卖延迟", "外卖晚到一个小时，汤都凉了"),
    ("服务态度", "服务员态度冷淡，叫了几次没人理"),
    ("收费错误", "账单多收了一份毛肚"),
    ("环境卫生", "餐桌没擦干净"),
    ("预订问题", "订好的包间被安排给别人"),
];

fn pick<'a>(rng: &mut StdRng, weighted: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = weighted.iter().map(|w| w.1).sum();
    let mut x = rng.gen_range(0..total);
    for (v, w) in weighted {
        if x < *w {
            return v;
        }
        x -= w;
    }
    weighted[0].0
}

/// What the demo made.
pub struct DemoService {
    /// Tickets opened.
    pub tickets: usize,
    /// Breaches the scheduler recorded.
    pub breaches: u64,
}

/// Opens and works `n` tickets over the year before `now`, in time order.
pub async fn seed(store: &Store, n: usize, seed: u64, now: DateTime<Utc>) -> Result<DemoService> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005e_41ce);
    let cli = Actor::cli();
    // A service manager the account managers report to: breaches escalate to them.
    let boss = match store.user_by_email("service@demo.patron.local").await? {
        Some(u) => u,
        None => store.create_user("service@demo.patron.local", "服务经理 刘敏", Role::Manager, None).await?,
    };
    let agents: Vec<(i64, String)> =
        store.db.reader().fetch_all(query("SELECT id, name FROM users WHERE role = 'agent' AND disabled_at IS NULL ORDER BY id")).await?;
    for (id, _) in &agents {
        store.set_user_manager(&cli, *id, Some(boss.id)).await?;
    }
    let customers: Vec<(i64, Option<i64>)> =
        store.db.reader().fetch_all(query("SELECT id, owner_id FROM customers WHERE deleted_at IS NULL ORDER BY id")).await?;
    if customers.is_empty() || agents.is_empty() {
        return Ok(DemoService { tickets: 0, breaches: 0 });
    }
    let clock = Arc::new(FixedClock::new(now));
    let s = store.clone().with_clock(clock.clone());
    let mut opened: Vec<DateTime<Utc>> = (0..n).map(|_| now - Duration::minutes(rng.gen_range(30..365 * 24 * 60))).collect();
    opened.sort();
    let mut breaches = 0;
    for at in opened {
        let (customer_id, owner) = customers[rng.gen_range(0..customers.len())];
        let assignee = owner.unwrap_or(agents[rng.gen_range(0..agents.len())].0);
        let agent = Actor::new(format!("user:{assignee}"), Role::Agent, Some(assignee));
        let roll: f64 = rng.gen();
        let (kind, channel) = match roll {
            r if r < 0.70 => ("complaint", ["store", "phone", "wechat", "web"][rng.gen_range(0..4)]),
            r if r < 0.82 => ("inquiry", ["phone", "wechat", "web"][rng.gen_range(0..3)]),
            r if r < 0.90 => ("suggestion", ["wechat", "web", "store"][rng.gen_range(0..3)]),
            _ => ("praise", ["store", "wechat"][rng.gen_range(0..2)]),
        };
        let cause = pick(&mut rng, &CAUSES);
        let (subject, body) = match kind {
            "complaint" => (cause.to_owned(), SUBJECTS.iter().find(|(c, _)| *c == cause).map(|s| s.1).unwrap_or_default().to_owned()),
            "inquiry" => ("营业时间和停车".to_owned(), "请问周末几点开门，有停车位吗？".to_owned()),
            "suggestion" => ("建议增加儿童座椅".to_owned(), "带小孩来吃饭不太方便".to_owned()),
            _ => ("表扬服务员".to_owned(), "今天的服务员很贴心，主动帮忙照顾老人".to_owned()),
        };
        clock.set(at);
        let t = s
            .create_ticket(
                &cli,
                NewTicket {
                    customer_id,
                    kind: kind.into(),
                    channel: channel.into(),
                    subject,
                    body,
                    category: (kind == "complaint").then(|| cause.to_owned()),
                    assignee_id: Some(assignee),
                    department: Some(if cause == "外卖延迟" { "外卖部" } else { "门店" }.into()),
                    store: None,
                    opened_at: None,
                    order_id: None,
                },
            )
            .await?;
        // Most tickets are answered in time; some are late, and the scheduler records the breach.
        let late = rng.gen_bool(0.15);
        let answer_at = if late {
            let due = t.first_response_due_at + Duration::minutes(1);
            if due >= now {
                continue; // still waiting: an open, breached ticket for the inbox
            }
            clock.set(due);
            breaches += s.run_due_jobs().await?.sla.breaches;
            due + Duration::minutes(rng.gen_range(5..240))
        } else {
            at + Duration::minutes(rng.gen_range(3..(t.first_response_minutes.max(4))))
        };
        if answer_at >= now {
            continue;
        }
        clock.set(answer_at);
        let reply = NewComment {
            body: "您好，非常抱歉给您带来不便，我们正在处理。".into(), public: true, attachments: vec![]
        };
        s.comment_ticket(&agent, t.id, reply).await?;
        let work_at = answer_at + Duration::minutes(rng.gen_range(10..600));
        if work_at >= now {
            continue;
        }
        clock.set(work_at);
        s.transition_ticket(&agent, t.id, to("in_progress", None)).await?;
        if kind == "complaint" && rng.gen_bool(0.25) {
            let amount = [1000, 2000, 3000, 5000, 8800][rng.gen_range(0..5)];
            let c = NewCompensation { amount_cents: amount, kind: CompensationKind::Voucher, reason: "致歉代金券".into() };
            s.compensate(&agent, t.id, c).await?;
        }
        let resolve_at = work_at + Duration::minutes(rng.gen_range(30..(t.resolution_minutes.max(31) * 2)));
        if resolve_at >= now {
            continue;
        }
        clock.set(resolve_at);
        // Most complaints turn out to be what the customer said; some have another root cause.
        let root = if kind == "complaint" { Some(if rng.gen_bool(0.85) { cause } else { pick(&mut rng, &CAUSES) }) } else { None };
        let done = s.transition_ticket(&agent, t.id, to("resolved", root)).await?;
        let Some(token) = done.confirmation_token else { continue };
        // Customers mostly confirm; some never answer (confirmed by timeout); a few reopen.
        let answer_at = resolve_at + Duration::hours(rng.gen_range(1..72));
        if answer_at >= now {
            continue;
        }
        let r: f64 = rng.gen();
        if r < 0.7 {
            clock.set(answer_at);
            s.answer_confirmation(&token, ConfirmationAnswer { confirmed: true, comment: None }).await?;
        } else if r < 0.78 {
            clock.set(answer_at);
            s.answer_confirmation(&token, ConfirmationAnswer { confirmed: false, comment: Some("问题还是没有解决".into()) }).await?;
            let again = answer_at + Duration::hours(rng.gen_range(2..48));
            if again < now {
                clock.set(again);
                s.transition_ticket(&agent, t.id, to("in_progress", None)).await?;
                s.transition_ticket(&agent, t.id, to("resolved", root)).await?;
            }
        }
    }
    // Whatever fell due by now (unanswered resolutions confirm by timeout, open tickets breach).
    clock.set(now);
    breaches += store.run_due_jobs().await?.sla.breaches;
    Ok(DemoService { tickets: n, breaches })
}

fn to(state: &str, root_cause: Option<&str>) -> Transition {
    Transition { to: state.into(), root_cause: root_cause.map(str::to_owned), note: None }
}
