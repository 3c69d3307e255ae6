//! Tickets from another helpdesk (`patron import tickets`): the same rules as every import —
//! each row validated and rejected with its column and reason, all or nothing unless
//! `--skip-invalid`, idempotent by the ticket's external id (a re-import updates in place and
//! leaves unchanged tickets alone). A ticket's clocks come from its customer's tier policy and the
//! business calendar, counted from `opened_at`; a first response or resolution later than its
//! due time is recorded as that breach, so the history's SLA figures read as the product's own.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{fields, Counts, Loader, Rejection, Rejections, Row};
use crate::calendar::BusinessCalendar;
use crate::db::{query, Tx};
use crate::import::source::Record;
use crate::service::policies::{customer_tier, policy_in, ServicePolicy};
use crate::tickets::{CHANNELS, KINDS};
use crate::{events, keys, settings, values, Result};

/// A row that passed validation.
struct TicketRow {
    row: u64,
    external_id: String,
    customer: String,
    kind: &'static str,
    channel: &'static str,
    subject: String,
    body: String,
    category: Option<String>,
    root_cause: Option<String>,
    status: &'static str,
    opened_at: DateTime<Utc>,
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    assignee: Option<i64>,
    store: Option<String>,
}

/// A ticket kind by its name or its Chinese name.
fn parse_kind(v: &str) -> std::result::Result<&'static str, String> {
    let v = v.trim().to_lowercase();
    let zh = [("投诉", "complaint"), ("咨询", "inquiry"), ("建议", "suggestion"), ("表扬", "praise")];
    KINDS
        .iter()
        .find(|k| **k == v)
        .copied()
        .or_else(|| zh.iter().find(|(z, _)| *z == v).map(|(_, k)| *k))
        .ok_or_else(|| format!("kind must be one of {} (or 投诉, 咨询, 建议, 表扬)", KINDS.join(", ")))
}

fn parse_channel(v: &str) -> std::result::Result<&'static str, String> {
    let v = v.trim().to_lowercase();
    let zh = [("电话", "phone"), ("门店", "store"), ("微信", "wechat"), ("邮件", "email"), ("网站", "web"), ("问卷", "survey")];
    CHANNELS
        .iter()
        .find(|k| **k == v)
        .copied()
        .or_else(|| zh.iter().find(|(z, _)| *z == v).map(|(_, k)| *k))
        .ok_or_else(|| format!("channel must be one of {}", CHANNELS.join(", ")))
}

fn parse_status(v: &str) -> std::result::Result<&'static str, String> {
    let v = v.trim().to_lowercase();
    let zh = [
        ("新建", "new"),
        ("已受理", "acknowledged"),
        ("处理中", "in_progress"),
        ("等待客户", "waiting_on_customer"),
        ("已解决", "resolved"),
        ("已确认", "confirmed"),
        ("已关闭", "confirmed"),
        ("已重开", "reopened"),
    ];
    crate::tickets::STATUSES
        .iter()
        .find(|k| **k == v)
        .copied()
        .or_else(|| zh.iter().find(|(z, _)| *z == v).map(|(_, k)| *k))
        .ok_or_else(|| format!("status must be one of {}", crate::tickets::STATUSES.join(", ")))
}

impl Loader {
    pub(super) async fn load_tickets(&mut self, tx: &mut Tx, batch: Vec<Record>, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        use fields::ticket as f;
        let mut valid = Vec::with_capacity(batch.len());
        for rec in &batch {
            let mut r = Row { rec, rej: &mut *rej, ok: true };
            let external_id = r.required(f::EXTERNAL_ID);
            let customer = r.required(f::CUSTOMER_ID);
            let subject = r.required(f::SUBJECT);
            if subject.chars().count() > 200 {
                r.reject(f::SUBJECT, "at most 200 characters".into());
            }
            let body = r.text(f::BODY).unwrap_or_default();
            if body.chars().count() > 20_000 {
                r.reject(f::BODY, "at most 20,000 characters".into());
            }
            for i in [f::CATEGORY, f::ROOT_CAUSE, f::STORE] {
                if rec.values[i].as_deref().is_some_and(|v| v.chars().count() > 100) {
                    r.reject(i, "at most 100 characters".into());
                }
            }
            let kind = r.parse(f::KIND, parse_kind);
            if rec.values[f::KIND].is_none() {
                r.required(f::KIND);
            }
            let channel = r.parse(f::CHANNEL, parse_channel).unwrap_or("api");
            let status = r.parse(f::STATUS, parse_status);
            let tz = self.tz;
            let time = |r: &mut Row<'_>, i: usize| r.parse(i, |v| values::parse_time(v, tz));
            let opened_at = time(&mut r, f::OPENED_AT);
            if rec.values[f::OPENED_AT].is_none() {
                r.required(f::OPENED_AT);
            }
            let first_response_at = time(&mut r, f::FIRST_RESPONSE_AT);
            let resolved_at = time(&mut r, f::RESOLVED_AT);
            let mut confirmed_at = time(&mut r, f::CONFIRMED_AT);
            let owners = &self.owners;
            let assignee = r.parse(f::ASSIGNEE, |v| {
                owners.get(&v.trim().to_lowercase()).copied().ok_or_else(|| "no user with this email (add the user first)".to_string())
            });
            // The state, given or read off the times; and times that agree with it.
            let status = status.unwrap_or(if confirmed_at.is_some() {
                "confirmed"
            } else if resolved_at.is_some() {
                "resolved"
            } else if first_response_at.is_some() {
                "acknowledged"
            } else {
                "new"
            });
            if let Some(opened) = opened_at {
                if opened > self.now + Duration::minutes(5) {
                    r.reject(f::OPENED_AT, "must not be in the future".into());
                }
                for (i, at) in [(f::FIRST_RESPONSE_AT, first_response_at), (f::RESOLVED_AT, resolved_at), (f::CONFIRMED_AT, confirmed_at)] {
                    if at.is_some_and(|a| a < opened) {
                        r.reject(i, "must not be before opened_at".into());
                    }
                }
            }
            if matches!(status, "resolved" | "confirmed") && resolved_at.is_none() {
                r.reject(f::RESOLVED_AT, format!("required for a {status} ticket"));
            }
            if status == "confirmed" && confirmed_at.is_none() {
                confirmed_at = resolved_at;
            }
            if let (Some(res), Some(conf)) = (resolved_at, confirmed_at) {
                if conf < res {
                    r.reject(f::CONFIRMED_AT, "must not be before resolved_at".into());
                }
            }
            let ok = r.ok && !external_id.is_empty() && self.first_time(&mut r, f::EXTERNAL_ID, &external_id);
            if let (true, Some(kind), Some(opened_at)) = (ok && r.ok, kind, opened_at) {
                valid.push(TicketRow {
                    row: rec.row,
                    external_id,
                    customer,
                    kind,
                    channel,
                    subject,
                    body,
                    category: r.text(f::CATEGORY),
                    root_cause: r.text(f::ROOT_CAUSE),
                    status,
                    opened_at,
                    // A resolved ticket was answered, at the latest when it was resolved.
                    first_response_at: first_response_at.or(if matches!(status, "new") { None } else { resolved_at.or(Some(opened_at)) }),
                    resolved_at: if matches!(status, "resolved" | "confirmed") { resolved_at } else { None },
                    confirmed_at: if status == "confirmed" { confirmed_at } else { None },
                    assignee,
                    store: r.text(f::STORE),
                });
            }
        }
        self.resolve_customers(tx, valid.iter().map(|v| v.customer.clone())).await?;
        let cal: BusinessCalendar = settings::get_in(tx, settings::CALENDAR).await?;
        let mut policies: HashMap<String, ServicePolicy> = HashMap::new();
        for t in valid {
            let Some(&customer_id) = self.customers.get(&t.customer) else {
                let column = rej.names[f::CUSTOMER_ID].clone();
                rej.add(Rejection { row: t.row, column, value: t.customer, reason: "unknown customer (import customers first)".into() });
                continue;
            };
            match keys::find(tx, keys::TICKETS, &t.external_id, customer_id).await? {
                Some((owner, _)) if owner != customer_id => {
                    let column = rej.names[f::EXTERNAL_ID].clone();
                    rej.add(Rejection {
                        row: t.row,
                        column,
                        value: t.external_id,
                        reason: "this ticket id belongs to another customer".into(),
                    });
                }
                Some((_, id)) => {
                    if self.update_ticket(tx, customer_id, id, &t).await? {
                        counts.updated += 1;
                    } else {
                        counts.unchanged += 1;
                    }
                }
                None => {
                    let tier = customer_tier(tx, customer_id).await?;
                    let policy = match policies.get(&tier) {
                        Some(p) => p.clone(),
                        None => {
                            let p = policy_in(tx, &tier).await?;
                            policies.insert(tier.clone(), p.clone());
                            p
                        }
                    };
                    self.insert_ticket(tx, customer_id, &tier, &policy, &cal, &t).await?;
                    counts.created += 1;
                }
            }
        }
        Ok(())
    }

    async fn insert_ticket(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        tier: &str,
        policy: &ServicePolicy,
        cal: &BusinessCalendar,
        t: &TicketRow,
    ) -> Result<()> {
        let first_due = cal.add(&self.tz, t.opened_at, policy.first_response_minutes, policy.business_hours);
        let resolution_due = cal.add(&self.tz, t.opened_at, policy.resolution_minutes, policy.business_hours);
        // The history's late answers are breaches, dated at the due time they passed.
        let first_breach = t.first_response_at.filter(|a| *a > first_due).map(|_| first_due);
        let resolution_breach = t.resolved_at.filter(|a| *a > resolution_due).map(|_| resolution_due);
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO tickets (customer_id, external_id, kind, channel, subject, body, category, root_cause, status, store, \
                     assignee_id, tier, business_hours, first_response_minutes, resolution_minutes, opened_at, first_response_due_at, \
                     first_responded_at, resolution_due_at, resolved_at, confirmed_at, confirmed_by, first_response_breached_at, \
                     resolution_breached_at, created_by, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) \
                     RETURNING id",
                )
                .bind(customer_id)
                .bind(t.external_id.clone())
                .bind(t.kind)
                .bind(t.channel)
                .bind(t.subject.clone())
                .bind(t.body.clone())
                .bind(t.category.clone())
                .bind(t.root_cause.clone())
                .bind(t.status)
                .bind(t.store.clone())
                .bind(t.assignee)
                .bind(tier)
                .bind(policy.business_hours)
                .bind(policy.first_response_minutes)
                .bind(policy.resolution_minutes)
                .bind(t.opened_at)
                .bind(first_due)
                .bind(t.first_response_at)
                .bind(resolution_due)
                .bind(t.resolved_at)
                .bind(t.confirmed_at)
                .bind(t.confirmed_at.map(|_| "import"))
                .bind(first_breach)
                .bind(resolution_breach)
                .bind(self.actor.clone())
                .bind(self.now),
            )
            .await?;
        keys::claim(tx, keys::TICKETS, &t.external_id, customer_id, Some(id)).await?;
        let payload = serde_json::json!({"external_id": t.external_id, "kind": t.kind, "status": t.status, "tier": tier, "by": self.actor});
        events::append(tx, customer_id, "ticket.imported", Some(id), payload, self.now).await?;
        Ok(())
    }

    /// Updates an imported ticket in place when the file says something else now; false when
    /// nothing differed.
    async fn update_ticket(&self, tx: &mut Tx, customer_id: i64, id: i64, t: &TicketRow) -> Result<bool> {
        let n = tx
            .execute(
                query(
                    "UPDATE tickets SET kind = $1, channel = $2, subject = $3, body = $4, category = $5, root_cause = $6, status = $7, \
                     store = $8, assignee_id = $9, first_responded_at = $10, resolved_at = $11, confirmed_at = $12, updated_at = $13 \
                     WHERE customer_id = $14 AND id = $15 AND (kind IS DISTINCT FROM $1 OR channel IS DISTINCT FROM $2 \
                     OR subject IS DISTINCT FROM $3 OR body IS DISTINCT FROM $4 OR category IS DISTINCT FROM $5 \
                     OR root_cause IS DISTINCT FROM $6 OR status IS DISTINCT FROM $7 OR store IS DISTINCT FROM $8 \
                     OR assignee_id IS DISTINCT FROM $9 OR first_responded_at IS DISTINCT FROM $10 \
                     OR resolved_at IS DISTINCT FROM $11 OR confirmed_at IS DISTINCT FROM $12)",
                )
                .bind(t.kind)
                .bind(t.channel)
                .bind(t.subject.clone())
                .bind(t.body.clone())
                .bind(t.category.clone())
                .bind(t.root_cause.clone())
                .bind(t.status)
                .bind(t.store.clone())
                .bind(t.assignee)
                .bind(t.first_response_at)
                .bind(t.resolved_at)
                .bind(t.confirmed_at)
                .bind(self.now)
                .bind(customer_id)
                .bind(id),
            )
            .await?;
        if n > 0 {
            let payload = serde_json::json!({"external_id": t.external_id, "status": t.status, "by": self.actor});
            events::append(tx, customer_id, "ticket.imported", Some(id), payload, self.now).await?;
        }
        Ok(n > 0)
    }
}
