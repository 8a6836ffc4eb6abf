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
//!
//! Handing a job out commits nothing: how often it was handed out (its `reserves`) is
//! counted in memory and written with its release or burial (a delete forgets it), like
//! beanstalkd, whose binlog does not record reserves either. So a reserve waits for no
//! fsync; after a crash a job's count is the one of its last release or burial
//! (DECISIONS 60).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::error::Error;
use crate::hash::FastMap;
use crate::names::{ClientId, QueueName};
use crate::store::{JobMeta, MessageMeta, Op, StoredMessage};

use super::work::{Consumer, DEFAULT_ACK_TIMEOUT_MS};
use super::{Assignment, Dispatched, Entry, Index, Subscriber, expired};

pub(crate) use super::job_view::{JobState, JobView, Peek, TubeCounts};

/// A job's priority (the default for a message published without one).
pub(crate) fn priority(meta: &MessageMeta) -> u32 {
    meta.job.map_or(JobMeta::DEFAULT_PRIORITY, |j| j.priority)
}

/// Whether a job may be handed out at `now`: not buried, due, not expired.
pub(super) fn deliverable(meta: &MessageMeta, now: u64) -> bool {
    !meta.job.is_some_and(|j| j.buried)
        && meta.deliver_at_ms.is_none_or(|at| at <= now)
        && !expired(meta, now)
}

/// The order in which a job-serving subscription hands out its jobs.
#[derive(Debug, Default)]
pub(crate) struct JobOrder {
    /// Its inbox by `(priority, seq)`, jobs released with a delay not yet due aside. Entries
    /// are added with the inbox's and whenever a job's meta changes; those that no longer
    /// match (acked, a new priority, buried) are dropped when a look meets them.
    pub(crate) ready: BTreeSet<(u32, u64)>,
    /// Jobs released with a delay, by `(due, priority, seq)`: set aside by the first look
    /// that meets them before they are due, and put back into `ready` by the first look at
    /// or after that time (beanstalkd keeps its delayed jobs in a heap of their own too).
    /// Without it every look stepped over every such job ahead of the ready ones.
    /// An entry whose job was kicked or given a new delay meanwhile stays until its time
    /// comes, then goes like any entry that no longer matches.
    parked: BTreeSet<(u64, u32, u64)>,
}

impl JobOrder {
    /// Drops the entries of a job that left the inbox (`meta` as it was then).
    fn forget(&mut self, meta: &MessageMeta) {
        let (rank, seq) = (priority(meta), meta.seq);
        self.ready.remove(&(rank, seq));
        if let Some(due) = meta.deliver_at_ms {
            self.parked.remove(&(due, rank, seq));
        }
    }
}

/// The first `n` jobs of `subscriber` that can be handed out at `now`, as `(priority, seq)`
/// in that order, from its job order (see [`JobOrder`]). Entries that no longer match the
/// inbox (acked, a new priority, buried) are dropped on the way, jobs released with a delay
/// that is not over are set aside until due, and reserved jobs are passed over and kept. So
/// a look costs O(log n) plus the reserved jobs ahead of the ones it finds.
fn first_ready(
    subscriber: &mut Subscriber,
    messages: &FastMap<u64, Entry>,
    now: u64,
    n: usize,
) -> Vec<(u32, u64)> {
    let Subscriber {
        inbox,
        workers,
        job_order,
        ..
    } = subscriber;
    let Some(order) = job_order.as_deref_mut() else {
        return Vec::new();
    };
    while order.parked.first().is_some_and(|(due, _, _)| *due <= now) {
        if let Some((_, rank, seq)) = order.parked.pop_first() {
            order.ready.insert((rank, seq));
        }
    }
    let mut found = Vec::new();
    let mut stale = Vec::new();
    let mut parked = Vec::new();
    for &(rank, seq) in order.ready.iter() {
        if found.len() >= n {
            break;
        }
        let meta = messages.get(&seq).map(|e| &e.meta).filter(|meta| {
            inbox.contains_key(&seq)
                && priority(meta) == rank
                && !meta.job.is_some_and(|j| j.buried)
        });
        let Some(meta) = meta else {
            stale.push((rank, seq));
            continue;
        };
        let reserved = workers
            .as_ref()
            .is_some_and(|w| w.inflight.contains_key(&seq));
        if reserved {
            continue;
        }
        match meta.deliver_at_ms {
            Some(due) if due > now => parked.push((due, rank, seq)),
            _ if deliverable(meta, now) => found.push((rank, seq)),
            _ => {}
        }
    }
    for entry in stale {
        order.ready.remove(&entry);
    }
    for (due, rank, seq) in parked {
        order.ready.remove(&(rank, seq));
        order.parked.insert((due, rank, seq));
    }
    found
}

impl Index {
    /// Makes `client`'s subscription to `queue` serve jobs (see the module docs), ordering
    /// its inbox by priority. Memory only: a transport that serves jobs says so again after
    /// a restart.
    pub(crate) fn serve_jobs(&mut self, client: &ClientId, queue: &QueueName) {
        let messages = &self.messages;
        let Some(subscriber) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
        else {
            return;
        };
        if subscriber.job_order.is_none() {
            let order = subscriber
                .inbox
                .keys()
                .filter_map(|seq| messages.get(seq).map(|e| (priority(&e.meta), *seq)))
                .collect();
            subscriber.job_order = Some(Box::new(JobOrder {
                ready: order,
                parked: BTreeSet::new(),
            }));
        }
    }

    /// Whether `client`'s subscription to `queue` serves jobs (in work mode).
    pub(crate) fn serves_jobs(&self, client: &ClientId, queue: &QueueName) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subscribers.get(client))
            .is_some_and(|s| s.workers.is_some() && s.job_order.is_some())
    }

    /// Whether `client` is subscribed to `queue` in broadcast mode: then that subscription
    /// is a socket.io client's, and the tube of that name offers no jobs (DECISIONS 65).
    pub(crate) fn taken_by_broadcast(&self, client: &ClientId, queue: &QueueName) -> bool {
        self.is_subscribed(client, queue) == Some(false)
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
        let held = workers.held_by(consumer);
        // Closed is 0, not "what it holds": a lease running out must not open room.
        let prefetch = if open { held.len() + 1 } else { 0 };
        match workers.consumers.iter_mut().find(|c| c.id == consumer) {
            Some(existing) => {
                existing.prefetch = prefetch;
                existing.holding = held.len();
            }
            None => {
                workers.consumers.push(Consumer {
                    id: consumer.to_owned(),
                    prefetch,
                    holding: held.len(),
                });
                self.note_attached(consumer, client, queue);
            }
        }
        Ok(held)
    }

    /// The `(priority, seq)` of the job the subscription would hand out next at `now`, if
    /// any is ready (and it serves jobs).
    pub(crate) fn next_ready_job(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
    ) -> Option<(u32, u64)> {
        let messages = &self.messages;
        let subscriber = self.queues.get_mut(queue)?.subscribers.get_mut(client)?;
        first_ready(subscriber, messages, now, 1).first().copied()
    }

    /// Whether the subscription has a job that could be handed out at `now`.
    pub(crate) fn has_ready_job(&mut self, client: &ClientId, queue: &QueueName, now: u64) -> bool {
        self.next_ready_job(client, queue, now).is_some()
    }

    /// Hands deliverable jobs to workers with room, by priority then publish order, each
    /// with its own lease; counts each as an attempt (through `ops`).
    pub(super) fn dispatch_jobs(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
    ) -> Dispatched {
        let mut out = Dispatched::default();
        let messages = &self.messages;
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
        let room: usize = {
            let Subscriber { inbox, workers, .. } = &mut *subscriber;
            let Some(workers) = workers.as_mut() else {
                return out;
            };
            workers.timed_out.retain(|seq, _| inbox.contains_key(seq));
            workers.pooled.retain(|seq, _| inbox.contains_key(seq));
            workers
                .consumers
                .iter()
                .map(|c| c.prefetch.saturating_sub(c.holding))
                .sum()
        };
        // Nobody waits (the usual case when a job is put): nothing to look at.
        if room == 0 {
            return out;
        }
        // Only the first `room` ready jobs, in order, can be handed out now.
        let ready = first_ready(subscriber, messages, now, room);
        let Subscriber { inbox, workers, .. } = subscriber;
        let Some(workers) = workers.as_mut() else {
            return out;
        };
        for (_, seq) in ready {
            let Some(meta) = messages.get(&seq).map(|e| Arc::clone(&e.meta)) else {
                continue;
            };
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
            // Counted ahead while the subscription did not serve jobs yet: not again. (The
            // count is written with the job's release or burial: see the module docs.)
            if workers.pooled.remove(&seq).is_none() {
                *attempts += 1;
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

    /// Stores a job's new metadata (priority, delay, buried) under its seq, with its
    /// payload text as it is stored.
    pub(crate) fn put_job_meta(&mut self, meta: MessageMeta, payload: String, ops: &mut Vec<Op>) {
        let Some(entry) = self.messages.get_mut(&meta.seq) else {
            return;
        };
        entry.meta = Arc::new(meta.clone());
        // Its place in the job order of the subscriptions that hold it (a buried job has
        // none until kicked; the entry under its old priority goes when a look meets it).
        if !meta.job.is_some_and(|j| j.buried)
            && let Some(queue) = self.queues.get_mut(&meta.queue)
        {
            for subscriber in queue.subscribers.values_mut() {
                if subscriber.inbox.contains_key(&meta.seq)
                    && let Some(order) = subscriber.job_order.as_mut()
                {
                    order.ready.insert((priority(&meta), meta.seq));
                }
            }
        }
        ops.push(Op::PutMessage(StoredMessage { meta, payload }));
    }

    /// Writes how often job `seq` was handed out (a reserve counts it in memory only; a
    /// release or a burial writes it: see the module docs).
    pub(crate) fn save_reserves(
        &self,
        client: &ClientId,
        queue: &QueueName,
        seq: u64,
        ops: &mut Vec<Op>,
    ) {
        let attempts = self
            .queues
            .get(queue)
            .and_then(|q| q.subscribers.get(client))
            .and_then(|s| s.inbox.get(&seq));
        if let Some(&attempts) = attempts {
            ops.push(Op::SetAttempts {
                client: client.clone(),
                queue: queue.clone(),
                seq,
                attempts,
            });
        }
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
        if self.taken_by_broadcast(client, &queue_name) {
            return false;
        }
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
            if let Some(order) = subscriber.job_order.as_mut() {
                order.forget(&meta);
            }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::broker::message::NewMessage;
    use crate::names::EventName;
    use crate::store::{Mode, Snapshot, SubscriptionRecord};

    const TUBE: &str = "bg_starmap";

    /// An index whose client `TUBE` serves jobs on queue `TUBE`, with worker `w` attached
    /// (its room closed).
    fn index() -> (Index, ClientId, QueueName) {
        let (client, queue) = (
            ClientId::parse(TUBE).unwrap(),
            QueueName::parse(TUBE).unwrap(),
        );
        let mut index = Index::from_snapshot(Snapshot::default());
        let record = SubscriptionRecord {
            mode: Mode::Work,
            ..SubscriptionRecord::default()
        };
        index.subscribe(&client, &queue, record, &mut Vec::new());
        index.serve_jobs(&client, &queue);
        index.set_room(&client, &queue, "w", false).unwrap();
        (index, client, queue)
    }

    /// Puts a job with `priority` (TTR 1 s); returns its seq.
    fn put(index: &mut Index, queue: &QueueName, priority: u32, now: u64) -> u64 {
        let mut message = NewMessage::new(
            queue.clone(),
            EventName::parse("job").unwrap(),
            json!(priority),
            "beanstalk",
        );
        message.job = Some(JobMeta {
            priority,
            ttr_ms: Some(1000),
            buried: false,
            delay_ms: None,
        });
        let outcome = index.publish(
            &message,
            priority.to_string(),
            now,
            &|_, _| false,
            &mut Vec::new(),
        );
        outcome.meta.unwrap().seq
    }

    /// Opens the worker's room and dispatches at `now`: the seq it is handed, if any.
    fn reserve(index: &mut Index, client: &ClientId, queue: &QueueName, now: u64) -> Option<u64> {
        index.set_room(client, queue, "w", true).unwrap();
        let handed = index.dispatch(client, queue, now, &mut Vec::new());
        index.set_room(client, queue, "w", false).unwrap();
        assert!(handed.assigned.len() <= 1, "one job per open room");
        handed.assigned.first().map(|a| a.meta.seq)
    }

    #[test]
    fn jobs_are_handed_out_by_priority_then_in_publish_order_one_per_open_room() {
        let (mut index, client, queue) = index();
        let low = put(&mut index, &queue, 100, 0);
        let first_urgent = put(&mut index, &queue, 0, 0);
        let last = put(&mut index, &queue, u32::MAX, 0);
        let second_urgent = put(&mut index, &queue, 0, 0);
        assert!(index.has_ready_job(&client, &queue, 0));
        assert!(
            index
                .dispatch(&client, &queue, 0, &mut Vec::new())
                .assigned
                .is_empty(),
            "a worker whose room is closed gets nothing"
        );
        let order: Vec<Option<u64>> = (0..5)
            .map(|_| reserve(&mut index, &client, &queue, 0))
            .collect();
        assert_eq!(
            order,
            [
                Some(first_urgent),
                Some(second_urgent),
                Some(low),
                Some(last),
                None
            ]
        );
        assert!(!index.has_ready_job(&client, &queue, 0));
        assert_eq!(index.tube_counts(&client, &queue, 0).reserved, 4);
    }

    /// Writes job `seq` again (its body `body`) with its meta changed by `change`, as a
    /// release or a bury does.
    fn rewrite(index: &mut Index, seq: u64, body: &str, change: impl FnOnce(&mut MessageMeta)) {
        let mut meta = (*index.meta(seq).unwrap()).clone();
        change(&mut meta);
        index.put_job_meta(meta, body.into(), &mut Vec::new());
    }

    #[test]
    fn a_new_priority_moves_a_job_and_a_deleted_job_is_never_handed_out() {
        let (mut index, client, queue) = index();
        let first = put(&mut index, &queue, 10, 0);
        let second = put(&mut index, &queue, 20, 0);
        let third = put(&mut index, &queue, 30, 0);
        rewrite(&mut index, third, "30", |meta| {
            meta.job.as_mut().unwrap().priority = 5
        });
        assert!(index.delete_job(&client, first, "w", &mut Vec::new()));
        let order: Vec<Option<u64>> = (0..3)
            .map(|_| reserve(&mut index, &client, &queue, 0))
            .collect();
        assert_eq!(order, [Some(third), Some(second), None]);
    }

    #[test]
    fn a_lapsed_lease_does_not_open_a_closed_room() {
        let (mut index, client, queue) = index();
        let seq = put(&mut index, &queue, 0, 0);
        put(&mut index, &queue, 0, 0);
        assert_eq!(reserve(&mut index, &client, &queue, 0), Some(seq));
        // The TTR (1 s) runs out: the job is ready again, and the worker (not reserving)
        // gets nothing.
        assert_eq!(
            index.expire_inflight(1000, &mut Vec::new()),
            [(client.clone(), queue.clone())]
        );
        assert!(
            index
                .dispatch(&client, &queue, 1000, &mut Vec::new())
                .assigned
                .is_empty()
        );
        assert_eq!(
            index.job(&client, seq, 1000).unwrap().state,
            JobState::Ready
        );
    }

    /// The jobs set aside until due in the subscription's job order.
    fn parked(index: &Index, client: &ClientId, queue: &QueueName) -> Vec<u64> {
        let subscriber = &index.queues[queue].subscribers[client];
        let order = subscriber.job_order.as_ref().unwrap();
        order.parked.iter().map(|(_, _, seq)| *seq).collect()
    }

    #[test]
    fn jobs_released_with_a_delay_are_set_aside_until_due_and_a_kick_brings_one_back_at_once() {
        let (mut index, client, queue) = index();
        let delayed: Vec<u64> = (0..3).map(|_| put(&mut index, &queue, 0, 0)).collect();
        let ready = put(&mut index, &queue, 0, 0);
        let later = put(&mut index, &queue, 0, 0);
        for (n, &seq) in delayed.iter().enumerate() {
            rewrite(&mut index, seq, "0", |meta| {
                meta.deliver_at_ms = Some(5000 + n as u64)
            });
            index.wake_at(&client, &queue, seq, 5000 + n as u64);
        }
        // The first look sets the three aside; the next looks do not meet them again.
        assert_eq!(reserve(&mut index, &client, &queue, 1000), Some(ready));
        assert_eq!(parked(&index, &client, &queue), delayed);
        // A kick (the job's meta rewritten without a delay) makes one ready at once,
        // ahead of `later` by publish order.
        rewrite(&mut index, delayed[1], "0", |meta| {
            meta.deliver_at_ms = None
        });
        assert_eq!(reserve(&mut index, &client, &queue, 1000), Some(delayed[1]));
        assert_eq!(reserve(&mut index, &client, &queue, 1000), Some(later));
        assert_eq!(reserve(&mut index, &client, &queue, 4999), None);
        // A delayed job deleted leaves; the kicked one's entry waits for its old time.
        assert!(index.delete_job(&client, delayed[2], "w", &mut Vec::new()));
        assert_eq!(parked(&index, &client, &queue), &delayed[..2]);
        // Due: back in order; the kicked one is reserved and not handed out twice.
        assert_eq!(reserve(&mut index, &client, &queue, 5002), Some(delayed[0]));
        assert_eq!(reserve(&mut index, &client, &queue, 5002), None);
        assert!(parked(&index, &client, &queue).is_empty());
    }

    #[test]
    fn buried_and_delayed_jobs_wait_and_a_wakeup_takes_no_lease_back() {
        let (mut index, client, queue) = index();
        let buried = put(&mut index, &queue, 0, 0);
        let delayed = put(&mut index, &queue, 1, 0);
        let held = put(&mut index, &queue, 2, 0);
        rewrite(&mut index, buried, "0", |meta| {
            meta.job.as_mut().unwrap().buried = true
        });
        rewrite(&mut index, delayed, "1", |meta| {
            meta.deliver_at_ms = Some(5000)
        });
        index.wake_at(&client, &queue, delayed, 5000);
        assert_eq!(
            index.job(&client, buried, 0).unwrap().state,
            JobState::Buried
        );
        assert_eq!(
            index.job(&client, delayed, 0).unwrap().state,
            JobState::Delayed
        );
        // Only the third is deliverable; reserved at 4500 its lease ends at 5500.
        assert_eq!(reserve(&mut index, &client, &queue, 4500), Some(held));
        // At 5000 the delayed job's wake-up fires: it takes nothing back from the worker.
        assert_eq!(
            index.expire_inflight(5000, &mut Vec::new()),
            [(client.clone(), queue.clone())]
        );
        let job = index.job(&client, held, 5000).unwrap();
        assert_eq!(
            (job.state, job.holder.as_deref()),
            (JobState::Reserved, Some("w"))
        );
        assert_eq!(reserve(&mut index, &client, &queue, 5000), Some(delayed));
        assert_eq!(
            reserve(&mut index, &client, &queue, 5000),
            None,
            "the buried one waits"
        );
        let kickable = index.kickable(&client, &queue, 10, 5000);
        assert_eq!(
            kickable.iter().map(|j| j.meta.seq).collect::<Vec<_>>(),
            [buried]
        );
    }
}
