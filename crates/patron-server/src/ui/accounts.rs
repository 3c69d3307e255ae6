//! `/ui/accounts` ("My accounts", issue 19 §1): the caller's portfolio with tier, CLV,
//! P(alive), next contact due, open tickets, relationship stage and health, sortable by any
//! column (`?sort=...&desc=1`); and the overdue contacts of the caller (`/ui/accounts?overdue=1`).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use minijinja::context;
use patron_store::accounts::PortfolioRow;
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::UiUser;
use crate::error::{ApiError, Query};
use crate::AppState;

/// Routes of the accounts page.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/accounts", get(accounts))
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    sort: Option<String>,
    desc: Option<u8>,
    overdue: Option<u8>,
}

/// The columns the page sorts by.
const SORTS: [&str; 8] = ["name", "tier", "clv", "p_alive", "next_contact_due", "open_tickets", "stage", "health"];

fn sort_rows(rows: &mut [PortfolioRow], key: &str, desc: bool) {
    let stage_rank = |s: &Option<String>| s.as_deref().and_then(|s| patron_store::accounts::STAGES.iter().position(|x| *x == s));
    rows.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "tier" => a.tier.cmp(&b.tier),
            "clv" => a.clv_cents.cmp(&b.clv_cents),
            "p_alive" => a.p_alive.partial_cmp(&b.p_alive).unwrap_or(std::cmp::Ordering::Equal),
            "open_tickets" => a.open_tickets.cmp(&b.open_tickets),
            "stage" => stage_rank(&a.relationship_stage).cmp(&stage_rank(&b.relationship_stage)),
            "health" => a.health_score.partial_cmp(&b.health_score).unwrap_or(std::cmp::Ordering::Equal),
            _ => a.next_contact_due.cmp(&b.next_contact_due),
        };
        let o = if desc { o.reverse() } else { o };
        o.then(a.customer_id.cmp(&b.customer_id))
    });
}

async fn accounts(State(state): State<AppState>, user: UiUser, Query(p): Query<Params>) -> Response {
    let sort = p.sort.as_deref().filter(|s| SORTS.contains(s)).unwrap_or("next_contact_due").to_owned();
    let desc = p.desc.unwrap_or(0) == 1;
    let overdue = p.overdue.unwrap_or(0) == 1;
    let ctx = async {
        let Some(me) = user.actor.user_id else {
            return Ok::<_, ApiError>(context! { section => "accounts", rows => Vec::<PortfolioRow>::new() });
        };
        let mut rows = state.store.portfolio(&user.actor, me).await?;
        if overdue {
            rows.retain(|r| r.days_overdue > 0);
        }
        sort_rows(&mut rows, &sort, desc);
        let view: Vec<minijinja::Value> = rows
            .iter()
            .map(|r| {
                context! {
                    customer_id => r.customer_id, name => r.name.clone(), tier => r.tier.clone(),
                    clv => r.clv_cents.map(crate::i18n::yuan), p_alive => r.p_alive.map(|p| format!("{:.0}%", p * 100.0)),
                    next_contact_due => r.next_contact_due.to_string(), days_overdue => r.days_overdue,
                    open_tickets => r.open_tickets, stage => r.relationship_stage.clone(),
                    health => r.health_score.map(|h| format!("{h:.0}")),
                }
            })
            .collect();
        Ok(context! { section => "accounts", rows => view, sort => sort, desc => desc, overdue => overdue, sorts => SORTS })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "accounts.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}
