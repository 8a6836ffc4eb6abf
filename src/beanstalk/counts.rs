//! What `stats-job` counts per job beyond its reserves: how often its reservation timed out,
//! and how often it was released, buried and kicked (DECISIONS 61); and the timeouts of all
//! jobs, for `stats`. Kept by the door in memory: they start again from 0 when the process
//! restarts, and a job deleted through the door takes its counts with it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::FastMap;

/// Jobs whose counts are kept at most; past it a job that was never counted stays at 0, so a
/// door that releases millions of jobs that are then acked elsewhere cannot grow this forever.
const MAX_JOBS: usize = 1 << 20;

/// One job's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub timeouts: u64,
    pub releases: u64,
    pub buries: u64,
    pub kicks: u64,
}

/// The counts of every job that has any. std Mutex: a map update per command, never held
/// across an await.
#[derive(Default)]
pub struct JobCounts {
    jobs: Mutex<FastMap<u64, Counts>>,
    /// Every timeout since the start (`job-timeouts`), also of jobs since deleted.
    timeouts: AtomicU64,
}

impl JobCounts {
    /// Adds one to a count of job `id`.
    pub fn count(&self, id: u64, which: impl FnOnce(&mut Counts) -> &mut u64) {
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_JOBS && !map.contains_key(&id) {
            return;
        }
        *which(map.entry(id).or_default()) += 1;
    }

    /// Counts a timeout of job `id`.
    pub fn timed_out(&self, id: u64) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.count(id, |c| &mut c.timeouts);
    }

    /// How many reservations timed out since the start.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// The counts of job `id` (all 0 if it has none).
    pub fn of(&self, id: u64) -> Counts {
        let map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).copied().unwrap_or_default()
    }

    /// Forgets job `id` (deleted).
    pub fn forget(&self, id: u64) {
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_job_and_go_with_it() {
        let counts = JobCounts::default();
        counts.count(7, |c| &mut c.releases);
        counts.count(7, |c| &mut c.releases);
        counts.count(7, |c| &mut c.kicks);
        counts.count(8, |c| &mut c.buries);
        counts.timed_out(7);
        assert_eq!(
            counts.of(7),
            Counts {
                timeouts: 1,
                releases: 2,
                buries: 0,
                kicks: 1
            }
        );
        assert_eq!(counts.of(8).buries, 1);
        counts.forget(7);
        assert_eq!(counts.of(7), Counts::default());
        assert_eq!(
            counts.timeouts(),
            1,
            "the total keeps deleted jobs' timeouts"
        );
    }
}
