//! A rate limit per client address for the endpoints that need no login (the pages and API
//! calls customers reach through a link): a token bucket per address, in memory. A client over
//! the limit gets 429 in the error envelope with `Retry-After`, never a 5xx, and costs the
//! database nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Buckets idle this long are forgotten (a full bucket is the same as none).
const IDLE: Duration = Duration::from_secs(600);

/// Token buckets by client address.
#[derive(Debug)]
pub struct RateLimiter {
    /// Requests a client may make at once.
    burst: f64,
    /// Requests a client regains per second.
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        RateLimiter { burst: f64::from(burst.max(1)), per_second: f64::from(per_minute.max(1)) / 60.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `ip`'s bucket at `now`; false when it is empty.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        // A poisoned lock only means a panic elsewhere while holding it; the map is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for RateLimiter {
    /// 30 requests at once, 60 a minute: more than a customer filling in a survey needs.
    fn default() -> Self {
        RateLimiter::new(30, 60)
    }
}

/// Failed logins per account: after [`LOCK_AFTER`] failures in a row the account is locked for a
/// while that doubles with each further lock (1, 2, 4 … up to 60 minutes); the right password
/// does not get in while it is locked. Together with a per-address bucket on the login form,
/// guessing stops being cheap. Kept in memory, per server.
#[derive(Debug)]
pub struct LoginThrottle {
    /// Attempts per address.
    pub by_address: RateLimiter,
    accounts: Mutex<HashMap<String, Account>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Account {
    failures: u32,
    locks: u32,
    locked_until: Option<Instant>,
}

/// Failures in a row that lock an account.
pub const LOCK_AFTER: u32 = 5;

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle { by_address: RateLimiter::new(10, 10), accounts: Mutex::new(HashMap::new()) }
    }
}

impl LoginThrottle {
    /// How long `email` stays locked from `now`, if it is.
    pub fn locked(&self, email: &str, now: Instant) -> Option<Duration> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.get(&email.trim().to_lowercase()).and_then(|a| a.locked_until).filter(|u| *u > now).map(|u| u - now)
    }

    /// Records a failed login; returns the lock it starts, if it starts one.
    pub fn failed(&self, email: &str, now: Instant) -> Option<Duration> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() > 100_000 {
            accounts.retain(|_, a| a.locked_until.is_some_and(|u| u > now));
        }
        let a = accounts.entry(email.trim().to_lowercase()).or_default();
        a.failures += 1;
        if a.failures < LOCK_AFTER {
            return None;
        }
        a.failures = 0;
        let minutes = (1u64 << a.locks.min(6)).min(60);
        a.locks += 1;
        let lock = Duration::from_secs(minutes * 60);
        a.locked_until = Some(now + lock);
        Some(lock)
    }

    /// A successful login forgets the failures.
    pub fn succeeded(&self, email: &str) {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner()).remove(&email.trim().to_lowercase());
    }
}

/// The client address of a request (the connection's peer).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Middleware for the link endpoints: 429 once the address's bucket is empty.
pub async fn limit_links(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.limiter.allow(client_ip(&req), Instant::now()) {
        next.run(req).await
    } else {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests from your address; try again in a minute")
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_lock_after_failures_for_longer_each_time() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..LOCK_AFTER - 1 {
            assert_eq!(t.failed("A@x.com", t0), None);
        }
        assert_eq!(t.locked("a@x.com", t0), None);
        assert_eq!(t.failed("a@x.com", t0), Some(Duration::from_secs(60)), "the fifth failure locks, case-insensitively");
        assert!(t.locked("a@x.com", t0 + Duration::from_secs(59)).is_some());
        assert!(t.locked("b@x.com", t0).is_none(), "per account");
        let later = t0 + Duration::from_secs(61);
        assert_eq!(t.locked("a@x.com", later), None, "the lock ends");
        for _ in 0..LOCK_AFTER - 1 {
            t.failed("a@x.com", later);
        }
        assert_eq!(t.failed("a@x.com", later), Some(Duration::from_secs(120)), "and doubles next time");
        t.succeeded("a@x.com");
        assert_eq!(t.failed("a@x.com", later + Duration::from_secs(3600)), None, "a success forgets");
    }

    #[test]
    fn buckets_empty_refill_and_are_per_address() {
        let l = RateLimiter::new(3, 60);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow(a, t0)));
        assert!(!l.allow(a, t0), "the burst is spent");
        assert!(l.allow(b, t0), "another address has its own bucket");
        assert!(!l.allow(a, t0 + Duration::from_millis(500)));
        assert!(l.allow(a, t0 + Duration::from_millis(1001)), "one request a second comes back");
        assert!(!l.allow(a, t0 + Duration::from_millis(1002)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| l.allow(a, later)));
        assert!(!l.allow(a, later));
    }
}
