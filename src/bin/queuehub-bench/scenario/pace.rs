//! Which request a publisher sends next, and when.
//!
//! Closed loop: the next number, as soon as a publisher is free. Open loop (`--rate`): each
//! request is released at its scheduled time by a thread of its own, which sleeps with the
//! operating system's timer. tokio's timer counts whole milliseconds and fires up to a
//! millisecond after the instant asked for; an open-loop latency counts from the schedule,
//! so that lateness would be charged to the server (about 1.2 ms at p50 in the 50 msg/s
//! fanout, measured against a server that answers at once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::time::{Instant, timeout_at};

/// Hands out request numbers (0, 1, 2, ...) to the publishers; see the module docs.
pub enum Requests {
    Closed(AtomicU64),
    Open(Mutex<mpsc::UnboundedReceiver<u64>>),
}

impl Requests {
    /// Numbers as fast as they are taken.
    pub fn closed() -> Requests {
        Requests::Closed(AtomicU64::new(0))
    }

    /// `count` numbers, number `i` released at `began + i * every`, none at or after
    /// `deadline`.
    pub fn open(began: Instant, every: Duration, count: u64, deadline: Instant) -> Requests {
        let (tx, rx) = mpsc::unbounded_channel();
        let (began, deadline) = (began.into_std(), deadline.into_std());
        std::thread::spawn(move || {
            for i in 0..count {
                let Some(at) = u32::try_from(i).ok().map(|i| began + every * i) else {
                    break;
                };
                if at >= deadline {
                    break;
                }
                let now = std::time::Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if tx.send(i).is_err() {
                    break; // the publishers are gone
                }
            }
        });
        Requests::Open(Mutex::new(rx))
    }

    /// The next request's number, once it is due; `None` when there are no more before
    /// `deadline`.
    pub async fn next(&self, deadline: Instant) -> Option<u64> {
        match self {
            Requests::Closed(next) => Some(next.fetch_add(1, Ordering::Relaxed)),
            Requests::Open(released) => {
                timeout_at(deadline, async { released.lock().await.recv().await })
                    .await
                    .ok()
                    .flatten()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_hands_out_every_number_at_once() {
        let requests = Requests::closed();
        let deadline = Instant::now() + Duration::from_secs(5);
        for want in 0..5 {
            assert_eq!(requests.next(deadline).await, Some(want));
        }
    }

    #[tokio::test]
    async fn open_releases_each_number_on_schedule_then_ends() {
        let began = Instant::now();
        let every = Duration::from_millis(20);
        let requests = Requests::open(began, every, 4, began + Duration::from_secs(30));
        let deadline = began + Duration::from_secs(30);
        for want in 0..4u32 {
            assert_eq!(requests.next(deadline).await, Some(u64::from(want)));
            // Never early; how late depends on the machine, so no upper bound here.
            assert!(Instant::now() >= began + every * want);
        }
        assert_eq!(
            requests.next(deadline).await,
            None,
            "4 requests, then the end"
        );
    }

    #[tokio::test]
    async fn open_stops_at_the_deadline() {
        let began = Instant::now();
        let deadline = began + Duration::from_millis(50);
        let requests = Requests::open(began, Duration::from_millis(20), 100, deadline);
        let mut got = Vec::new();
        while let Some(n) = requests.next(deadline + Duration::from_secs(5)).await {
            got.push(n);
        }
        assert_eq!(
            got,
            vec![0, 1, 2],
            "released at 0, 20 and 40 ms; 60 is past 50"
        );
    }
}
