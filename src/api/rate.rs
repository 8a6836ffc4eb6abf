//! Per-address HTTP rate limiting (`--max-requests-per-sec`, off by default): each IP address
//! may send that many requests per second on average, and as many in a burst (governor's
//! GCRA, one state per address). A request over the limit is answered at once, before routing
//! and the key check, with 429 `rate_limited` and `Retry-After`. socket.io's requests do not
//! pass here: sockets have their own event limit (`--max-events-per-sec`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::ApiError;
use crate::error::{Code, Error};

/// Requests between two sweeps of the addresses that have been quiet long enough to be
/// forgotten (their state is full again), so that memory follows the active addresses.
const SWEEP_EVERY: u64 = 4096;

/// The limiter shared by every request.
#[derive(Clone)]
pub struct Limit {
    per_second: NonZeroU32,
    // governor's hashmap store: a std Mutex held for one map update, never across an await.
    limiter: Arc<RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>>,
    requests: Arc<AtomicU64>,
}

impl Limit {
    /// `per_second` requests per address per second, on average and in a burst; `None`: no
    /// limit.
    pub fn new(per_second: Option<u32>) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second?)?;
        Some(Self {
            per_second,
            limiter: Arc::new(RateLimiter::hashmap(Quota::per_second(per_second))),
            requests: Arc::default(),
        })
    }

    /// Takes one request of `address`; `Err` holds the whole seconds until the next fits.
    fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The middleware: refuses a request over its address's limit. A request without a peer
/// address (not from a TCP listener) is not limited.
pub async fn limit(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let Some(Err(wait_secs)) = peer.map(|address| limit.check(address)) else {
        return next.run(request).await;
    };
    let error = Error::new(
        Code::RateLimited,
        format!(
            "this address sends more than {} requests per second, the limit; retry in {wait_secs} s",
            limit.per_second
        ),
    );
    let mut response = ApiError(error).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(wait_secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limit = Limit::new(Some(3)).expect("a limit");
        let (a, b) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        assert!((0..3).all(|_| limit.check(a).is_ok()));
        assert_eq!(
            limit.check(a),
            Err(1),
            "the fourth waits (about a third of a second)"
        );
        assert!(limit.check(b).is_ok(), "another address has its own budget");
        assert!(Limit::new(None).is_none() && Limit::new(Some(0)).is_none());
    }
}
