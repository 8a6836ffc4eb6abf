//! Flow control for one socket's pushes (live, resumed, caught up, work assignments), on top
//! of socketioxide's buffer: [`Flow`].
//!
//! socketioxide refuses an emit once the socket's buffer is full and offers nothing to await,
//! so pushes are paced by its refusals: they wait (for the client's next acks, or a timer)
//! and try again. engineioxide's heartbeat uses the same buffer, and closes the socket
//! (`HeartbeatTimeout`) when its ping finds the buffer full. Its first ping goes out as the
//! socket starts, from a task of its own that a busy machine may run a few milliseconds
//! late; a `getAll` sent right after connecting could fill the buffer first (catch-ups of
//! 20 000 lost their socket so, 5 in 47 on Redis). Until the client's first ack, a socket's
//! pushes are therefore held to `budget` (`--socket-buffer`) in a buffer of `budget` +
//! [`HEADROOM`] packets, which leaves the first ping its room. A client that never acks (a lab
//! that auto-acks, say) waits [`FIRST_PATIENCE`] once, then is paced by refusals alone, as is
//! a client once it acks. (The later pings, every 25 s, can still find the buffer full while
//! a client lags: DECISIONS 80.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Packets a socket's buffer holds beyond its first `budget` pushes: the first ping, the
/// answers to its first events.
pub const HEADROOM: usize = 64;

/// How long pushes wait for a first ack once `budget` of them went out: long enough for the
/// first ping to have been sent.
pub const FIRST_PATIENCE: Duration = Duration::from_millis(250);

/// One socket's pushes before its client's first ack, and the wake-up of senders waiting for
/// room in its buffer. Cheap to clone.
#[derive(Clone)]
pub struct Flow(Arc<State>);

struct State {
    woken: Notify,
    budget: u64,
    pushed: AtomicU64,
    /// The client acked something, or [`FIRST_PATIENCE`] passed: refusals alone pace pushes.
    open: AtomicBool,
    /// Since when pushes have waited for the first ack (ms after `epoch`, plus one; 0: not).
    waiting_since: AtomicU64,
    epoch: Instant,
}

impl Flow {
    /// A socket whose first `budget` pushes may go out before its client acks.
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(State {
            woken: Notify::new(),
            budget: budget as u64,
            pushed: AtomicU64::new(0),
            open: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
            epoch: Instant::now(),
        }))
    }

    /// The client acked something: it reads, so room is coming in its buffer; senders waiting
    /// for room try again.
    pub fn acked(&self) {
        self.0.open.store(true, Ordering::Relaxed);
        self.0.woken.notify_waiters();
    }

    /// A message was pushed.
    pub fn pushed(&self) {
        if !self.0.open.load(Ordering::Relaxed) {
            self.0.pushed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether another message may be pushed now (the socket's buffer may still refuse it).
    pub fn has_room(&self) -> bool {
        self.has_room_at(self.0.epoch.elapsed())
    }

    fn has_room_at(&self, now: Duration) -> bool {
        let state = &self.0;
        if state.open.load(Ordering::Relaxed) || state.pushed.load(Ordering::Relaxed) < state.budget
        {
            return true;
        }
        let now_ms = now.as_millis() as u64 + 1;
        let since = match state.waiting_since.load(Ordering::Relaxed) {
            0 => {
                state.waiting_since.store(now_ms, Ordering::Relaxed);
                now_ms
            }
            since => since,
        };
        if now_ms - since >= FIRST_PATIENCE.as_millis() as u64 {
            state.open.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Completes when the client acks something (register before looking for room again,
    /// or a wake-up between the two is missed).
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.woken.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn before_the_first_ack_at_most_budget_pushes_go_out() {
        let flow = Flow::new(2);
        assert!(flow.has_room_at(ms(0)));
        flow.pushed();
        flow.pushed();
        assert!(!flow.has_room_at(ms(0)), "two pushed, none acked");
        flow.acked();
        assert!(
            flow.has_room_at(ms(1)),
            "it reads: refusals pace it from now on"
        );
        for _ in 0..10 {
            flow.pushed();
        }
        assert!(flow.has_room_at(ms(1)));
    }

    #[test]
    fn a_client_that_does_not_ack_waits_once_for_the_first_patience() {
        let flow = Flow::new(1);
        flow.pushed();
        assert!(!flow.has_room_at(ms(1_000)));
        let patience = FIRST_PATIENCE.as_millis() as u64;
        assert!(!flow.has_room_at(ms(1_000 + patience - 1)));
        assert!(flow.has_room_at(ms(1_000 + patience)));
        flow.pushed();
        assert!(flow.has_room_at(ms(1_000 + patience)), "once");
    }
}
