//! Completeness and latency accounting. A [`Tally`] is what one subscriber received: how
//! often each message number arrived, and a latency histogram. [`Sent`] is which numbers the
//! server accepted. [`Tally::check`] compares them: missing (accepted, never received),
//! duplicates (received more than once) and unexpected (received, never accepted).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Which message numbers the server accepted (a 2xx answer to their publish).
#[derive(Debug, Clone, Default)]
pub struct Sent {
    accepted: Vec<bool>,
}

impl Sent {
    /// Room for numbers `0..total`, none accepted yet.
    pub fn new(total: usize) -> Sent {
        Sent {
            accepted: vec![false; total],
        }
    }

    /// Marks `n` as accepted.
    pub fn accept(&mut self, n: u64) {
        if let Some(slot) = self.accepted.get_mut(n as usize) {
            *slot = true;
        }
    }

    /// Adds another publisher's acceptances.
    pub fn merge(&mut self, other: &Sent) {
        for (mine, theirs) in self.accepted.iter_mut().zip(&other.accepted) {
            *mine |= *theirs;
        }
    }

    /// How many numbers were accepted.
    pub fn count(&self) -> u64 {
        self.accepted.iter().filter(|a| **a).count() as u64
    }

    fn is_accepted(&self, n: usize) -> bool {
        self.accepted.get(n).copied().unwrap_or(false)
    }
}

/// What one subscriber (or a group of workers, merged) received; see the module docs.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Times each message number arrived (saturating at 255).
    counts: Vec<u8>,
    /// Arrivals of numbers outside `0..counts.len()`.
    out_of_range: u64,
    /// Every arrival.
    pub deliveries: u64,
    /// Distinct numbers that arrived.
    pub unique: u64,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

/// What [`Tally::check`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    pub missing: u64,
    pub duplicates: u64,
    pub unexpected: u64,
}

impl Check {
    /// Whether nothing is missing, doubled or unexpected.
    pub fn is_clean(&self) -> bool {
        *self == Check::default()
    }
}

impl std::ops::AddAssign for Check {
    fn add_assign(&mut self, other: Check) {
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
    }
}

/// A latency histogram from 1 µs to 10 minutes at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Fixed, valid bounds: creation cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    /// A tally for message numbers `0..total`.
    pub fn new(total: usize) -> Tally {
        Tally {
            counts: vec![0; total],
            out_of_range: 0,
            deliveries: 0,
            unique: 0,
            latency: histogram(),
        }
    }

    /// Records one arrival of message `n` with its latency; true the first time `n` arrives.
    pub fn record(&mut self, n: u64, latency_us: u64) -> bool {
        self.deliveries += 1;
        self.latency.saturating_record(latency_us.max(1));
        match self.counts.get_mut(n as usize) {
            Some(count) => {
                *count = count.saturating_add(1);
                let first = *count == 1;
                self.unique += u64::from(first);
                first
            }
            None => {
                self.out_of_range += 1;
                false
            }
        }
    }

    /// Adds another tally of the same run (the workers of one work-mode client together
    /// must receive each message once).
    pub fn merge(&mut self, other: &Tally) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            let was = *mine;
            *mine = mine.saturating_add(*theirs);
            self.unique += u64::from(was == 0 && *mine > 0);
        }
        self.out_of_range += other.out_of_range;
        self.deliveries += other.deliveries;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Compares what arrived with what was accepted.
    pub fn check(&self, sent: &Sent) -> Check {
        let mut check = Check {
            unexpected: self.out_of_range,
            ..Check::default()
        };
        for (n, &count) in self.counts.iter().enumerate() {
            let count = u64::from(count);
            match (sent.is_accepted(n), count) {
                (true, 0) => check.missing += 1,
                (true, c) => check.duplicates += c - 1,
                (false, 0) => {}
                (false, c) => check.unexpected += c,
            }
        }
        check
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// The summary of a histogram of microseconds; `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!histogram.is_empty()).then(|| Percentiles {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(total: usize, accepted: impl IntoIterator<Item = u64>) -> Sent {
        let mut sent = Sent::new(total);
        accepted.into_iter().for_each(|n| sent.accept(n));
        sent
    }

    #[test]
    fn everything_once_is_clean() {
        let mut tally = Tally::new(3);
        assert!(tally.record(0, 10));
        assert!(tally.record(2, 30));
        assert!(tally.record(1, 20));
        let check = tally.check(&sent(3, 0..3));
        assert!(check.is_clean(), "{check:?}");
        assert_eq!((tally.deliveries, tally.unique), (3, 3));
    }

    #[test]
    fn missing_duplicates_and_unexpected_are_counted_apart() {
        let mut tally = Tally::new(5);
        tally.record(0, 1);
        assert!(!tally.record(0, 1), "the second arrival is not new");
        tally.record(0, 1);
        tally.record(3, 1); // 3 was never accepted
        tally.record(9, 1); // out of range
        // 1 and 2 accepted, never arrived; 4 neither accepted nor arrived.
        let check = tally.check(&sent(5, [0, 1, 2]));
        assert_eq!(
            check,
            Check {
                missing: 2,
                duplicates: 2,
                unexpected: 2
            }
        );
        assert_eq!(tally.deliveries, 5);
        assert_eq!(tally.unique, 2);
    }

    #[test]
    fn merged_workers_must_together_receive_each_message_once() {
        let all = sent(4, 0..4);
        let mut a = Tally::new(4);
        let mut b = Tally::new(4);
        a.record(0, 5);
        a.record(1, 5);
        b.record(2, 7);
        assert_eq!(
            a.check(&all).missing,
            2,
            "alone, a worker misses the others' jobs"
        );
        a.merge(&b);
        assert_eq!(
            a.check(&all),
            Check {
                missing: 1,
                duplicates: 0,
                unexpected: 0
            }
        );
        b.record(3, 1);
        b.record(1, 1); // redelivered to another worker
        let mut together = Tally::new(4);
        together.merge(&a);
        together.merge(&b);
        assert_eq!(
            together.check(&all),
            Check {
                missing: 0,
                duplicates: 2,
                unexpected: 0
            }
        );
        assert_eq!((together.deliveries, together.unique), (6, 4));
        assert_eq!(together.latency.len(), 6);
    }

    #[test]
    fn sent_sets_merge_and_count() {
        let mut one = sent(4, [0, 2]);
        one.merge(&sent(4, [2, 3]));
        assert_eq!(one.count(), 3);
        one.accept(99); // out of range: ignored
        assert_eq!(one.count(), 3);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut tally = Tally::new(100);
        for n in 0..100 {
            tally.record(n, (n + 1) * 1000);
        }
        let p = Percentiles::of(&tally.latency).unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
        assert!(Percentiles::of(&histogram()).is_none());
    }
}
