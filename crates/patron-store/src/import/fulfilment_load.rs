//! Fulfilment steps (`patron import fulfilment FILE`): order external id, step, done time,
//! promised time, note. The same rules as every import — each row validated and rejected with
//! its column and reason, all or nothing unless `--skip-invalid`, UTF-8 or GB18030 — and the
//! same rules as the API's (see [`crate::fulfilment`]): an unknown or switched-off step, a time
//! in the future or out of the chain's order is rejected. Idempotent: a row the same as the
//! stored step writes nothing (counted unchanged); the same order and step twice in one file
//! is rejected.

use super::{fields, Counts, Loader, Rejection, Rejections, Row};
use crate::db::Tx;
use crate::fulfilment::{self, Applied, StepWrite};
use crate::import::source::Record;
use crate::{keys, values, Result, StoreError};

struct StepRowIn {
    row: u64,
    order: String,
    step: &'static str,
    raw: [String; 3],
    w: StepWrite,
}

impl Loader {
    pub(super) async fn load_fulfilment(
        &mut self,
        tx: &mut Tx,
        batch: Vec<Record>,
        rej: &mut Rejections,
        counts: &mut Counts,
    ) -> Result<()> {
        use fields::fulfilment as f;
        let mut valid = Vec::with_capacity(batch.len());
        for rec in &batch {
            let mut r = Row { rec, rej: &mut *rej, ok: true };
            let order = r.required(f::ORDER_ID);
            let step = r.parse(f::STEP, fulfilment::parse_step);
            if rec.values[f::STEP].is_none() {
                r.required(f::STEP);
            }
            let tz = self.tz;
            let at = r.parse(f::AT, |v| values::parse_time(v, tz));
            let promised_at = r.parse(f::PROMISED_AT, |v| fulfilment::parse_promise(v, tz));
            if rec.values[f::AT].is_none() && rec.values[f::PROMISED_AT].is_none() {
                r.reject(f::AT, "give the time the step was done, its promised time, or both".into());
            }
            let note = r.text(f::NOTE);
            if let (true, Some(step)) = (r.ok, step) {
                let key = format!("{order}\u{1}{step}");
                if !self.first_time(&mut r, f::STEP, &key) {
                    continue;
                }
                let raw = [f::AT, f::PROMISED_AT, f::NOTE].map(|i| rec.values[i].clone().unwrap_or_default());
                valid.push(StepRowIn { row: rec.row, order, step, raw, w: StepWrite { step, at, promised_at, note } });
            }
        }
        let settings = self.fulfilment.clone().unwrap_or_default();
        for v in valid {
            let column = |i: usize| rej.names.get(i).cloned().unwrap_or_default();
            let Some((customer_id, order_id)) = keys::lookup(tx, keys::ORDERS, &v.order).await? else {
                let c = column(f::ORDER_ID);
                rej.add(Rejection { row: v.row, column: c, value: v.order, reason: "unknown order (import orders first)".into() });
                continue;
            };
            // The customer's row locked once per file, as the API locks it per write.
            if self.touched.insert(customer_id) && crate::customers::lock_customers(tx, &[customer_id]).await?.is_some() {
                let c = column(f::ORDER_ID);
                rej.add(Rejection { row: v.row, column: c, value: v.order, reason: "the order's customer is deleted".into() });
                continue;
            }
            let Some(order) = fulfilment::order_head(tx, customer_id, order_id).await? else {
                let c = column(f::ORDER_ID);
                rej.add(Rejection { row: v.row, column: c, value: v.order, reason: "unknown order (import orders first)".into() });
                continue;
            };
            match fulfilment::apply(tx, &settings, &order, &v.w, &self.actor, self.now).await {
                Ok(Applied::Created) => counts.created += 1,
                Ok(Applied::Updated) => counts.updated += 1,
                Ok(Applied::Unchanged) => counts.unchanged += 1,
                Err(StoreError::Invalid { field, message }) => {
                    let [raw_at, raw_promised, raw_note] = v.raw;
                    let (i, value) = match field.as_deref() {
                        Some("at") => (f::AT, raw_at),
                        Some("promised_at") => (f::PROMISED_AT, raw_promised),
                        Some("note") => (f::NOTE, raw_note),
                        _ => (f::STEP, v.step.to_owned()),
                    };
                    rej.add(Rejection { row: v.row, column: column(i), value, reason: message });
                }
                Err(StoreError::State(message)) => {
                    rej.add(Rejection { row: v.row, column: column(f::ORDER_ID), value: v.order, reason: message });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
