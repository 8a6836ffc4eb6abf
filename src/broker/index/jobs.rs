//! Jobs: work mode the way beanstalkd's workers use it (the beanstalk door, `beanstalk/`).
//!
//! A work subscription that *serves jobs* hands out its deliverable messages by priority
//! (lower first, then publish order) instead of publish order, each with its own lease (the
//! job's TTR, else the subscription's ack timeout), and never counts messages ahead (its
//! workers pull: a worker has room only while it waits in `reserve`). Besides ready and
//! in flight (reserved), a job may be *buried* (set aside until kicked) or *delayed* (not
//! due yet: published with a delay and still scheduled, or released with one, which keeps
//! it in the inbox with a later `deliver_at_ms`). Priority, TTR and the buried mark live in
//! the message's [`JobMeta`]; a change is written by putting the message again under its
//! seq, so the job keeps its id (its seq) through releases, burials, kicks and restarts.
//!
//! A job released with a delay is woken by an entry in the ack deadlines that is not its
//! lease: the timer takes nothing back for it (the deadline is not the message's own) and
//! only asks the dispatcher to look again.

use std::sync::Arc;

use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::{JobMeta, MessageMeta, Op, StoredMessage};

use super::work::{Consumer, ConsumerId, DEFAULT_ACK_TIMEOUT_MS};
use super::{Assignment, Dispatched, Index, Subscriber, expired};

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

/// A job's priority (the default for a message published without one).
pub(crate) fn priority(meta: &MessageMeta) -> u32 {
    meta.job.map_or(JobMeta::DEFAULT_PRIORITY, |j| j.priority)
}

/// Whether a job may be handed out at `now`: not buried, due, not expired.
fn deliverable(meta: &MessageMeta, now: u64) -> bool {
    !meta.job.is_some_and(|j| j.buried)
        && meta.deliver_at_ms.is_none_or(|at| at <= now)
        && !expired(meta, now)
}

impl Index {
    /// Makes `client`'s subscription to `queue` serve jobs (see the module docs). Memory
    /// only: a transport that serves jobs says so again after a restart.
    pub(crate) fn serve_jobs(&mut self, client: &ClientId, queue: &QueueName) {
        self.jobs.insert((client.clone(), queue.clone()));
    }

    /// Whether `client`'s subscription to `queue` serves jobs.
    pub(crate) fn serves_jobs(&self, client: &ClientId, queue: &QueueName) -> bool {
        !self.jobs.is_empty() && self.jobs.contains(&(client.clone(), queue.clone()))
    }

    /// Whether `client` is subscribed to `queue`: `Some(true)` in work mode.
    pub(crate) fn is_subscribed(&self, client: &ClientId, queue: &QueueName) -> Option<bool> {
        let subscriber = self.queues.get(queue)?.subscribers.get(client)?;
        Some(subscriber.workers.is_some())
    }

    /// The stored metadata of message `seq`.
    pub(crate) fn meta(&self, seq: u64) -> Option<Arc<MessageMeta>> {
        self.messages.get(&seq).map(|e| Arc::clone(&e.meta))
    }

    fn subscriber_mut(&mut self, client: &ClientId, queue: &QueueName) -> Option<&mut Subscriber> {
        self.queues.get_mut(queue)?.subscribers.get_mut(client)
    }

    /// Opens (room for one more job) or closes (no room) worker `consumer`'s window on
    /// `client`'s work subscription to `queue`, attaching it if new. Returns the jobs it
    /// holds (in flight to it).
    pub(crate) fn set_room(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        consumer: &str,
        open: bool,
    ) -> Result<Vec<u64>, Error> {
        let subscriber = self
            .subscriber_mut(client, queue)
            .ok_or_else(|| Error::not_subscribed(client, Some(queue)))?;
        let workers = subscriber
            .workers
            .as_mut()
            .ok_or_else(|| Error::invalid_field("this subscription is not in work mode"))?;
        let held: Vec<u64> = workers
            .inflight
            .iter()
            .filter(|(_, (holder, _))| holder == consumer)
            .map(|(seq, _)| *seq)
            .collect();
        // Closed is 0, not "what it holds": a lease running out must not open room.
        let prefetch = if open { held.len() + 1 } else { 0 };
        match workers.consumers.iter_mut().find(|c| c.id == consumer) {
            Some(existing) => {
                existing.prefetch = prefetch;
                existing.holding = held.len();
            }
            None => workers.consumers.push(Consumer {
                id: consumer.to_owned(),
                prefetch,
                holding: held.len(),
            }),
        }
        Ok(held)
    }

    /// How many jobs of the subscription could be handed out at `now`.
    pub(crate) fn ready_jobs(&self, client: &ClientId, queue: &QueueName, now: u64) -> usize {
        self.tube_counts(client, queue, now).ready
    }

    /// Hands deliverable jobs to workers with room, by priority then publish order, each
    /// with its own lease; counts each as an attempt (through `ops`).
    pub(super) fn dispatch_jobs(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
        ops: &mut Vec<Op>,
    ) -> Dispatched {
        let mut out = Dispatched::default();
        let Some(subscriber) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
        else {
            return out;
        };
        let lease = subscriber
            .record
            .ack_timeout_ms
            .unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        let Subscriber { inbox, workers, .. } = subscriber;
        let Some(workers) = workers.as_mut() else {
            return out;
        };
        workers.timed_out.retain(|seq, _| inbox.contains_key(seq));
        workers.pooled.retain(|seq, _| inbox.contains_key(seq));
        let messages = &self.messages;
        let mut ready: Vec<(u32, u64, Arc<MessageMeta>)> = inbox
            .keys()
            .filter(|seq| !workers.inflight.contains_key(seq))
            .filter_map(|seq| messages.get(seq).map(|e| &e.meta))
            .filter(|meta| deliverable(meta, now))
            .map(|meta| (priority(meta), meta.seq, Arc::clone(meta)))
            .collect();
        ready.sort_unstable_by_key(|(priority, seq, _)| (*priority, *seq));
        for (_, seq, meta) in ready {
            let previous = workers.timed_out.remove(&seq);
            let Some(index) = workers.pick(previous.as_deref()) else {
                if let Some(previous) = previous {
                    workers.timed_out.insert(seq, previous);
                }
                break;
            };
            let Some(attempts) = inbox.get_mut(&seq) else {
                continue;
            };
            // Counted ahead while the subscription did not serve jobs yet: not again.
            let pooled = workers.pooled.remove(&seq);
            if pooled.is_none() {
                *attempts += 1;
                ops.push(Op::SetAttempts {
                    client: client.clone(),
                    queue: queue.clone(),
                    seq,
                    attempts: *attempts,
                });
            }
            let consumer = &mut workers.consumers[index];
            consumer.holding += 1;
            let ttr = meta.job.and_then(|j| j.ttr_ms).unwrap_or(lease);
            let deadline = now.saturating_add(ttr);
            workers
                .inflight
                .insert(seq, (consumer.id.clone(), deadline));
            self.ack_deadlines
                .insert((deadline, seq, client.clone(), queue.clone()));
            out.assigned.push(Assignment {
                consumer: consumer.id.clone(),
                client: client.clone(),
                meta,
                attempt: *attempts,
                payload: None,
            });
        }
        out
    }

    /// Reserves job `seq` for `consumer` now whatever the others wait for (`reserve-job`):
    /// it must be in the subscription's inbox, deliverable, and not in flight.
    pub(crate) fn take_job(
        &mut self,
        (client, queue): (&ClientId, &QueueName),
        seq: u64,
        consumer: &str,
        now: u64,
        ops: &mut Vec<Op>,
    ) -> Option<Assignment> {
        let meta = self.meta(seq).filter(|m| deliverable(m, now))?;
        let subscriber = self.queues.get_mut(queue)?.subscribers.get_mut(client)?;
        let lease = subscriber
            .record
            .ack_timeout_ms
            .unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        let Subscriber { inbox, workers, .. } = subscriber;
        let workers = workers.as_mut()?;
        let attempts = inbox.get_mut(&seq)?;
        if workers.inflight.contains_key(&seq) {
            return None;
        }
        let worker = workers.consumers.iter_mut().find(|c| c.id == consumer)?;
        worker.holding += 1;
        if workers.pooled.remove(&seq).is_none() {
            *attempts += 1;
            ops.push(Op::SetAttempts {
                client: client.clone(),
                queue: queue.clone(),
                seq,
                attempts: *attempts,
            });
        }
        let deadline = now.saturating_add(meta.job.and_then(|j| j.ttr_ms).unwrap_or(lease));
        workers
            .inflight
            .insert(seq, (consumer.to_owned(), deadline));
        self.ack_deadlines
            .insert((deadline, seq, client.clone(), queue.clone()));
        Some(Assignment {
            consumer: consumer.to_owned(),
            client: client.clone(),
            meta,
            attempt: *attempts,
            payload: None,
        })
    }

    /// Where job `seq` is in `client`'s subscription to its queue, at `now`; `None` if the
    /// subscription does not hold it (acked, or another queue's).
    pub(crate) fn job(&self, client: &ClientId, seq: u64, now: u64) -> Option<JobView> {
        let meta = self.meta(seq)?;
        let queue = self.queues.get(&meta.queue)?;
        let subscriber = queue.subscribers.get(client);
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

    /// Stores a job's new metadata (priority, delay, buried) under its seq, with its
    /// payload text as it is stored.
    pub(crate) fn put_job_meta(&mut self, meta: MessageMeta, payload: String, ops: &mut Vec<Op>) {
        let Some(entry) = self.messages.get_mut(&meta.seq) else {
            return;
        };
        entry.meta = Arc::new(meta.clone());
        ops.push(Op::PutMessage(StoredMessage { meta, payload }));
    }

    /// Takes job `seq` back from `consumer`, which must hold it; `false` if it does not.
    pub(crate) fn unreserve(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        seq: u64,
        consumer: &str,
    ) -> bool {
        let held = self
            .subscriber_mut(client, queue)
            .and_then(|s| s.workers.as_ref())
            .and_then(|w| w.inflight.get(&seq))
            .is_some_and(|(holder, _)| holder == consumer);
        if held {
            self.finish_inflight(client, queue, seq);
        }
        held
    }

    /// Gives `consumer` a new lease on job `seq` (`touch`); `false` if it does not hold it.
    pub(crate) fn touch(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        seq: u64,
        consumer: &str,
        now: u64,
    ) -> bool {
        let Some(meta) = self.meta(seq) else {
            return false;
        };
        let Some(subscriber) = self.subscriber_mut(client, queue) else {
            return false;
        };
        let lease = subscriber
            .record
            .ack_timeout_ms
            .unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        let Some(slot) = subscriber
            .workers
            .as_mut()
            .and_then(|w| w.inflight.get_mut(&seq))
            .filter(|(holder, _)| holder == consumer)
        else {
            return false;
        };
        let old = slot.1;
        slot.1 = now.saturating_add(meta.job.and_then(|j| j.ttr_ms).unwrap_or(lease));
        let new = slot.1;
        self.ack_deadlines
            .remove(&(old, seq, client.clone(), queue.clone()));
        self.ack_deadlines
            .insert((new, seq, client.clone(), queue.clone()));
        true
    }

    /// Wakes the dispatcher of `client`'s subscription to `queue` at `at` (a job released
    /// with a delay becomes ready then).
    pub(crate) fn wake_at(&mut self, client: &ClientId, queue: &QueueName, seq: u64, at: u64) {
        self.ack_deadlines
            .insert((at, seq, client.clone(), queue.clone()));
    }

    /// After loading: jobs released with a delay wake their subscription when due.
    pub(super) fn rebuild_job_wakeups(&mut self) {
        let mut wakeups = Vec::new();
        for (queue_name, queue) in &self.queues {
            for (client, subscriber) in &queue.subscribers {
                for seq in subscriber.inbox.keys() {
                    let due = self
                        .messages
                        .get(seq)
                        .filter(|e| e.meta.job.is_some())
                        .and_then(|e| e.meta.deliver_at_ms);
                    if let Some(due) = due {
                        wakeups.push((due, *seq, client.clone(), queue_name.clone()));
                    }
                }
            }
        }
        self.ack_deadlines.extend(wakeups);
    }

    /// Deletes job `seq` from `client`'s subscription (`delete`): from its inbox (counted
    /// as acked), the schedule, or the waiting list. `false` if the subscription does not
    /// hold it, or another worker than `consumer` has it reserved.
    pub(crate) fn delete_job(
        &mut self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
        ops: &mut Vec<Op>,
    ) -> bool {
        let Some(meta) = self.meta(seq) else {
            return false;
        };
        let queue_name = meta.queue.clone();
        let reserved_by_other = self
            .subscriber_mut(client, &queue_name)
            .and_then(|s| s.workers.as_ref())
            .and_then(|w| w.inflight.get(&seq))
            .is_some_and(|(holder, _)| holder != consumer);
        if reserved_by_other {
            return false;
        }
        let Some(queue) = self.queues.get_mut(&queue_name) else {
            return false;
        };
        if let Some(subscriber) = queue.subscribers.get_mut(client)
            && subscriber.inbox.remove(&seq).is_some()
        {
            queue.counters.acked += 1;
            ops.push(Op::RemoveFromInbox {
                client: client.clone(),
                queue: queue_name.clone(),
                seq,
            });
            ops.push(Op::PutCounters {
                queue: queue_name.clone(),
                counters: queue.counters,
            });
            self.finish_inflight(client, &queue_name, seq);
            self.drop_ref(seq, ops);
            return true;
        }
        if let Some(due) = meta.deliver_at_ms
            && self.scheduled.remove(&(due, seq))
        {
            queue.scheduled = queue.scheduled.saturating_sub(1);
            self.drop_ref(seq, ops);
            return true;
        }
        self.take_waiting(&queue_name, seq, ops)
    }
}
