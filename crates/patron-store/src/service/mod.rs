//! Service by value (DESIGN.md C8, C9, C15): the service policy of each value tier, and the
//! reports of the service loop (complaint rate, Pareto of causes, agents' KPIs).

pub mod churn;
pub mod policies;
pub mod reports;

pub use policies::{PolicyInput, ServicePolicy, TIERS};
