//! Reading a job-serving subscription (see `jobs`) the way beanstalkd's commands look at
//! jobs: one job and its state, the job a peek names, what a kick would move, and how
//! many jobs are in each state. Nothing here changes the index.

use std::sync::Arc;

use crate::names::{ClientId, QueueName};
use crate::store::{JobMeta, MessageMeta};

use super::Index;
use super::jobs::priority;
use super::work::ConsumerId;

/// Where a job is, as beanstalkd names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    Ready,
    Reserved,
    Delayed,
    Buried,
}

/// One job of a subscription, for peeks and stats.
#[derive(Clone, Debug)]
pub(crate) struct JobView {
    pub(crate) meta: Arc<MessageMeta>,
    pub(crate) state: JobState,
    /// How often it was handed to a worker.
    pub(crate) reserves: u32,
    /// The worker holding it, when reserved.
    pub(crate) holder: Option<ConsumerId>,
    /// Reserved: when its lease runs out; delayed: when it is due (ms since the epoch).
    pub(crate) until_ms: Option<u64>,
}

/// Which job a peek wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The next `reserve` would get it.
    Ready,
    /// The delayed job due first.
    Delayed,
    /// The job buried first (oldest).
    Buried,
}

/// How many jobs of a subscription are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TubeCounts {
    /// Ready with a priority below 1024 (beanstalkd's "urgent").
    pub(crate) urgent: usize,
    pub(crate) ready: usize,
    pub(crate) reserved: usize,
    pub(crate) delayed: usize,
    pub(crate) buried: usize,
}

impl Index {
    /// Where job `seq` is in `client`'s subscription to its queue, at `now`; `None` if the
    /// subscription does not hold it (acked, or another queue's).
    pub(crate) fn job(&self, client: &ClientId, seq: u64, now: u64) -> Option<JobView> {
        let meta = self.meta(seq)?;
        let queue = self.queues.get(&meta.queue)?;
        let subscriber = queue.subscribers.get(client);
        if subscriber.is_some_and(|s| s.workers.is_none()) {
            return None; // a broadcast subscriber's messages are no jobs (DECISIONS 65)
        }
        let view = |state, reserves, holder, until_ms| JobView {
            meta: Arc::clone(&meta),
            state,
            reserves,
            holder,
            until_ms,
        };
        if let Some(&reserves) = subscriber.and_then(|s| s.inbox.get(&seq)) {
            let inflight = subscriber
                .and_then(|s| s.workers.as_ref())
                .and_then(|w| w.inflight.get(&seq));
            return Some(match inflight {
                Some((holder, deadline)) => view(
                    JobState::Reserved,
                    reserves,
                    Some(holder.clone()),
                    Some(*deadline),
                ),
                None if meta.job.is_some_and(|j| j.buried) => {
                    view(JobState::Buried, reserves, None, None)
                }
                None => match meta.deliver_at_ms.filter(|at| *at > now) {
                    Some(due) => view(JobState::Delayed, reserves, None, Some(due)),
                    None => view(JobState::Ready, reserves, None, None),
                },
            });
        }
        if let Some(due) = meta.deliver_at_ms
            && self.scheduled.contains(&(due, seq))
        {
            return Some(view(JobState::Delayed, 0, None, Some(due)));
        }
        queue
            .waiting
            .contains(&seq)
            .then(|| view(JobState::Ready, 0, None, None))
    }

    /// The jobs of `client`'s subscription to `queue` (its inbox, the queue's waiting list
    /// and its scheduled messages), each with its state at `now`.
    fn jobs_of(&self, client: &ClientId, queue: &QueueName, now: u64) -> Vec<JobView> {
        let Some(state) = self.queues.get(queue) else {
            return Vec::new();
        };
        if self.taken_by_broadcast(client, queue) {
            return Vec::new();
        }
        let inbox = state.subscribers.get(client).map(|s| s.inbox.keys());
        let scheduled = self.scheduled.iter().map(|(_, seq)| seq).filter(|seq| {
            self.messages
                .get(seq)
                .is_some_and(|e| &e.meta.queue == queue)
        });
        inbox
            .into_iter()
            .flatten()
            .chain(state.waiting.iter())
            .chain(scheduled)
            .filter_map(|seq| self.job(client, *seq, now))
            .collect()
    }

    /// How many jobs the subscription holds in each state at `now`.
    pub(crate) fn tube_counts(&self, client: &ClientId, queue: &QueueName, now: u64) -> TubeCounts {
        let mut counts = TubeCounts::default();
        for job in self.jobs_of(client, queue, now) {
            match job.state {
                JobState::Ready => {
                    counts.ready += 1;
                    if priority(&job.meta) < JobMeta::DEFAULT_PRIORITY {
                        counts.urgent += 1;
                    }
                }
                JobState::Reserved => counts.reserved += 1,
                JobState::Delayed => counts.delayed += 1,
                JobState::Buried => counts.buried += 1,
            }
        }
        counts
    }

    /// The job a peek names: the next to be reserved, the delayed one due first, or the
    /// oldest buried one.
    pub(crate) fn peek_job(
        &self,
        client: &ClientId,
        queue: &QueueName,
        which: Peek,
        now: u64,
    ) -> Option<JobView> {
        let jobs = self.jobs_of(client, queue, now).into_iter();
        match which {
            Peek::Ready => jobs
                .filter(|j| j.state == JobState::Ready)
                .min_by_key(|j| (priority(&j.meta), j.meta.seq)),
            Peek::Delayed => jobs
                .filter(|j| j.state == JobState::Delayed)
                .min_by_key(|j| (j.until_ms, j.meta.seq)),
            Peek::Buried => jobs
                .filter(|j| j.state == JobState::Buried)
                .min_by_key(|j| j.meta.seq),
        }
    }

    /// What a `kick` with this bound moves: buried jobs if there are any (oldest first),
    /// else delayed ones (due first).
    pub(crate) fn kickable(
        &self,
        client: &ClientId,
        queue: &QueueName,
        bound: usize,
        now: u64,
    ) -> Vec<JobView> {
        let jobs = self.jobs_of(client, queue, now);
        let of = |state| {
            let mut found: Vec<JobView> =
                jobs.iter().filter(|j| j.state == state).cloned().collect();
            found.sort_by_key(|j| (j.until_ms, j.meta.seq));
            found.truncate(bound);
            found
        };
        let buried = of(JobState::Buried);
        if buried.is_empty() {
            of(JobState::Delayed)
        } else {
            buried
        }
    }
}
