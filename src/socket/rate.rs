//! [`RateLimit`]: a token bucket per socket. A socket may send `per_second` events each
//! second on average and as many in a burst; past that, events are refused with
//! `rate_limited` (the socket stays connected, and nobody else notices).

use std::time::Instant;

/// A token bucket; see the module docs.
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket of `per_second` tokens.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_up_to_the_rate_passes_then_refills_over_time() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10);
        limit.last = start;
        assert!((0..10).all(|_| limit.allow_at(start)));
        assert!(!limit.allow_at(start), "the eleventh in the same instant");
        assert!(
            limit.allow_at(start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!limit.allow_at(start + Duration::from_millis(100)));
    }
}
