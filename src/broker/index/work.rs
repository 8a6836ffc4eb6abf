//! Work mode (the beanstalkd pattern): the sockets of a client that subscribed to a queue with
//! `mode: "work"` are *workers* that share the client's inbox. Each message goes to one worker
//! with spare capacity (`prefetch` unacked messages at most), round-robin. A message not acked
//! within `ackTimeoutMs` goes to another worker with its attempt count up by one (back to the
//! same worker only when no other has room, like beanstalkd's TTR); one that was
//! delivered `maxDeliveries` times moves to `<queue>.dead` instead. A worker that leaves hands
//! its in-flight messages back at once.
//!
//! Which messages are in flight, and to whom, lives in memory only: after a restart every
//! unacked message is deliverable again. Attempt counts are durable, and committed before a
//! message is sent. So that a worker's next message need not wait for a commit after its
//! ack, the next few deliverable messages of a busy inbox are *pooled*: their next attempt is
//! counted ahead (in the commit of whatever mutation found no worker with room for them), and
//! once that commit is on disk and their payload read they go out the moment a worker has
//! room (DECISIONS 19).
//!
//! The payloads of work-mode messages published since the start are kept in memory while
//! they wait (within a bound: `kept`), so that neither a send nor the pool reads them back
//! from the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::message::SharedPayload;
use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::{MessageMeta, Mode, Op};

use super::{Index, Subscriber, expired};

/// The default time a worker has to ack a message.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 30_000;

/// Messages pooled per attached worker. The pool must hold what the workers take while the
/// commits that count its refills are on their way (rate x commit time): with 2 per worker,
/// 8 workers emptied it faster than commits refilled it and then waited for a commit per job.
const POOLED_PER_WORKER: usize = 16;

/// At most this many messages of one subscription are pooled (after a crash, those not sent
/// yet show one attempt more than they were delivered: DECISIONS 19).
const POOLED_MAX: usize = 256;

/// Identifies one worker (a socket) to the outbox.
pub type ConsumerId = String;

/// The workers of one work-mode subscription and what they hold.
#[derive(Default)]
pub(crate) struct Workers {
    pub(super) consumers: Vec<Consumer>,
    /// Where the round-robin continues.
    next: usize,
    /// Messages in flight: seq → (worker, ack deadline in ms).
    pub(super) inflight: BTreeMap<u64, (ConsumerId, u64)>,
    /// Messages whose ack deadline passed, with the worker that held them: their next
    /// delivery goes to another worker if one has room.
    pub(super) timed_out: BTreeMap<u64, ConsumerId>,
    /// Messages not in flight whose next attempt is counted already: `None` while that count
    /// may not be on disk yet or the payload is not in hand, then the payload (ready to go
    /// out without a commit).
    pub(super) pooled: BTreeMap<u64, Option<SharedPayload>>,
    /// Where [`Index::dispatch`] starts looking in the inbox: every inbox entry below it is in
    /// flight. Without it each look would step over every message in flight first (with a
    /// prefetch of 1 000 and eight workers, 8 000 entries for each ack). It moves up past the
    /// messages a look finds in flight at the start, and down to any message that enters the
    /// inbox or comes back from a worker below it.
    scan_from: u64,
}

pub(super) struct Consumer {
    pub(super) id: ConsumerId,
    pub(super) prefetch: usize,
    pub(super) holding: usize,
}

impl Workers {
    /// How many worker sockets are attached.
    pub(crate) fn count(&self) -> usize {
        self.consumers.len()
    }

    /// How many messages are in flight to them.
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The messages in flight to worker `consumer`.
    pub(super) fn held_by(&self, consumer: &str) -> Vec<u64> {
        self.inflight
            .iter()
            .filter(|(_, (holder, _))| holder == consumer)
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// How many messages may be pooled now.
    fn pool_target(&self) -> usize {
        (self.consumers.len() * POOLED_PER_WORKER).min(POOLED_MAX)
    }

    /// Forgets that `seq` is in flight (acked, handed back, dead-lettered); returns its ack
    /// deadline if it was.
    pub(super) fn finish(&mut self, seq: u64) -> Option<u64> {
        self.left_inbox(seq);
        self.release(seq).map(|(_, deadline)| deadline)
    }

    /// Forgets what is known of `seq` besides its being in flight: it left the inbox.
    pub(super) fn left_inbox(&mut self, seq: u64) {
        self.timed_out.remove(&seq);
        self.pooled.remove(&seq);
    }

    /// Takes `seq` back from its worker because its ack deadline `at` passed, remembering
    /// that worker so the next delivery avoids it; returns that worker. (A deadline that
    /// is not the message's own, a job's wake-up after a delayed release, takes nothing.)
    fn time_out(&mut self, seq: u64, at: u64) -> Option<ConsumerId> {
        if self
            .inflight
            .get(&seq)
            .is_none_or(|(_, deadline)| *deadline != at)
        {
            return None;
        }
        let (consumer, _) = self.release(seq)?;
        self.timed_out.insert(seq, consumer.clone());
        self.came_back(seq);
        Some(consumer)
    }

    /// `seq` is in the inbox and not in flight (it entered, or came back from a worker): the
    /// next look must not start past it.
    pub(super) fn came_back(&mut self, seq: u64) {
        self.scan_from = self.scan_from.min(seq);
    }

    /// Removes `seq` from the in-flight messages and frees its worker's room.
    pub(super) fn release(&mut self, seq: u64) -> Option<(ConsumerId, u64)> {
        let (consumer, deadline) = self.inflight.remove(&seq)?;
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == consumer) {
            c.holding = c.holding.saturating_sub(1);
        }
        Some((consumer, deadline))
    }

    /// The next worker with spare capacity, round-robin, passing over `avoid` (the worker a
    /// message timed out with) unless it is the only one with room.
    pub(super) fn pick(&mut self, avoid: Option<&str>) -> Option<usize> {
        let n = self.consumers.len();
        let consumers = &self.consumers;
        let has_room = |i: &usize| consumers[*i].holding < consumers[*i].prefetch;
        let mut order = (0..n).map(|i| (self.next + i) % n);
        order
            .clone()
            .filter(has_room)
            .find(|&i| Some(consumers[i].id.as_str()) != avoid)
            .or_else(|| order.find(has_room))
            .inspect(|&i| self.next = (i + 1) % n)
    }
}

/// A message to send to one worker.
pub(crate) struct Assignment {
    pub(crate) consumer: ConsumerId,
    pub(crate) client: ClientId,
    pub(crate) meta: Arc<MessageMeta>,
    pub(crate) attempt: u32,
    /// The payload, when the mutation that assigned it has it in memory (a publish): then
    /// nobody reads it back from the store to send it.
    pub(crate) payload: Option<SharedPayload>,
}

/// What one look at a work-mode subscription decided.
#[derive(Default)]
pub(crate) struct Dispatched {
    /// Given to workers; to be sent after the mutation's commit (their attempt counts are in
    /// it, or in an earlier one).
    pub(crate) assigned: Vec<Assignment>,
    /// Given to workers from the pool: counted on disk already, payload in hand; to be sent
    /// at once.
    pub(crate) ready: Vec<Assignment>,
    /// Pooled by this mutation (with the payload, if kept in memory): ready once it is
    /// committed and their payloads are in hand.
    pub(crate) pooled: Vec<(u64, Option<SharedPayload>)>,
    /// Delivered `maxDeliveries` times: to be moved to the dead-letter queue.
    pub(crate) dead: Vec<Arc<MessageMeta>>,
}

impl Subscriber {
    /// Whether the dispatcher, not a room broadcast, sends this subscription's messages.
    pub(crate) fn is_dispatched(&self) -> bool {
        self.workers.is_some() || self.record.ordered
    }

    /// Puts `seq` into the inbox with `attempts` sends counted so far.
    pub(super) fn enter_inbox(&mut self, seq: u64, attempts: u32) {
        self.inbox.insert(seq, attempts);
        if let Some(workers) = self.workers.as_mut() {
            workers.came_back(seq);
        }
    }

    /// Sets up (or drops) the worker state that goes with the subscription's mode.
    pub(super) fn fit_mode(&mut self) {
        match self.record.mode {
            Mode::Work if self.workers.is_none() => self.workers = Some(Workers::default()),
            Mode::Broadcast => self.workers = None,
            Mode::Work => {}
        }
    }
}

impl Index {
    /// Adds worker `consumer` (with room for `prefetch` unacked messages) to `client`'s
    /// work-mode subscription to `queue`.
    pub(crate) fn attach(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        consumer: ConsumerId,
        prefetch: usize,
    ) -> Result<(), Error> {
        let subscriber = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
            .ok_or_else(|| Error::not_subscribed(client, Some(queue)))?;
        let workers = subscriber
            .workers
            .as_mut()
            .ok_or_else(|| Error::invalid_field("this subscription is not in work mode"))?;
        match workers.consumers.iter_mut().find(|c| c.id == consumer) {
            Some(existing) => existing.prefetch = prefetch,
            None => {
                workers.consumers.push(Consumer {
                    id: consumer.clone(),
                    prefetch,
                    holding: 0,
                });
                self.note_attached(&consumer, client, queue);
            }
        }
        Ok(())
    }

    /// Remembers that worker `consumer` is attached to `client`'s subscription to `queue`
    /// (see `Index::attached`).
    pub(super) fn note_attached(&mut self, consumer: &str, client: &ClientId, queue: &QueueName) {
        let places = self.attached.entry(consumer.to_owned()).or_default();
        if !places.iter().any(|(c, q)| c == client && q == queue) {
            places.push((client.clone(), queue.clone()));
        }
    }

    /// Removes worker `consumer` everywhere and hands back what it held. Returns the
    /// subscriptions that should dispatch again.
    pub(crate) fn detach(&mut self, consumer: &str) -> Vec<(ClientId, QueueName)> {
        let mut touched = Vec::new();
        for (client, queue_name) in self.attached.remove(consumer).unwrap_or_default() {
            let Some(subscriber) = self
                .queues
                .get_mut(&queue_name)
                .and_then(|q| q.subscribers.get_mut(&client))
            else {
                continue;
            };
            let Some(workers) = subscriber.workers.as_mut() else {
                continue;
            };
            let before = workers.consumers.len();
            workers.consumers.retain(|c| c.id != consumer);
            if workers.consumers.len() == before {
                continue;
            }
            for seq in workers.held_by(consumer) {
                workers.came_back(seq);
                if let Some((_, deadline)) = workers.inflight.remove(&seq) {
                    self.ack_deadlines
                        .remove(&(deadline, seq, client.clone(), queue_name.clone()));
                }
            }
            touched.push((client.clone(), queue_name.clone()));
        }
        touched
    }

    /// Assigns deliverable messages of `client`'s work-mode inbox on `queue` to workers with
    /// spare capacity, oldest first, counting each as an attempt (durably, through `ops`),
    /// unless it was pooled (counted already). When no worker has room, the next messages are
    /// pooled: counted now, sent without a commit of their own later. Messages already
    /// delivered `maxDeliveries` times are returned separately, to be moved to the
    /// dead-letter queue.
    ///
    /// Its cost does not grow with the inbox or the pool: it looks at the messages in flight
    /// and those it assigns, and at the pool's end only when the pool has room.
    pub(crate) fn dispatch(
        &mut self,
        client: &ClientId,
        queue_name: &QueueName,
        now: u64,
        ops: &mut Vec<Op>,
    ) -> Dispatched {
        if self.serves_jobs(client, queue_name) {
            return self.dispatch_jobs(client, queue_name, now);
        }
        let mut out = Dispatched::default();
        let Some(subscriber) = self
            .queues
            .get_mut(queue_name)
            .and_then(|q| q.subscribers.get_mut(client))
        else {
            return out;
        };
        let timeout = subscriber
            .record
            .ack_timeout_ms
            .unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        let max_deliveries = subscriber.record.max_deliveries;
        let Some(workers) = subscriber.workers.as_mut() else {
            return out;
        };
        let messages = &self.messages;
        let deliverable = |seq: u64| {
            let meta = messages.get(&seq).map(|e| Arc::clone(&e.meta))?;
            (!expired(&meta, now)).then_some(meta) // the timer removes an expired one
        };
        let count = |seq: u64, attempts: &mut u32, ops: &mut Vec<Op>| {
            *attempts += 1;
            ops.push(Op::SetAttempts {
                client: client.clone(),
                queue: queue_name.clone(),
                seq,
                attempts: *attempts,
            });
        };

        // The oldest deliverable messages go to workers with room, until none has room.
        debug_assert!(
            subscriber
                .inbox
                .range(..workers.scan_from)
                .all(|(seq, _)| workers.inflight.contains_key(seq)),
            "an inbox entry below scan_from is not in flight"
        );
        let mut stopped_at = None;
        // Whether every entry met so far was in flight: then `scan_from` follows them.
        let mut all_in_flight = true;
        for (&seq, attempts) in subscriber.inbox.range_mut(workers.scan_from..) {
            if workers.inflight.contains_key(&seq) {
                if all_in_flight {
                    workers.scan_from = seq + 1;
                }
                continue;
            }
            all_in_flight = false;
            let Some(meta) = deliverable(seq) else {
                continue;
            };
            let pooled = workers.pooled.contains_key(&seq);
            if !pooled && max_deliveries.is_some_and(|max| *attempts >= max) {
                out.dead.push(meta);
                continue;
            }
            let previous = workers.timed_out.remove(&seq);
            let Some(index) = workers.pick(previous.as_deref()) else {
                if let Some(previous) = previous {
                    workers.timed_out.insert(seq, previous);
                }
                stopped_at = Some(seq);
                break;
            };
            // A pooled message with its payload is ready: counted on disk already.
            let ready = workers.pooled.remove(&seq).flatten();
            if !pooled {
                count(seq, attempts, ops);
            }
            let consumer = &mut workers.consumers[index];
            consumer.holding += 1;
            let deadline = now.saturating_add(timeout);
            workers
                .inflight
                .insert(seq, (consumer.id.clone(), deadline));
            self.ack_deadlines
                .insert((deadline, seq, client.clone(), queue_name.clone()));
            let is_ready = ready.is_some();
            let assignment = Assignment {
                consumer: consumer.id.clone(),
                client: client.clone(),
                meta,
                attempt: *attempts,
                payload: ready.or_else(|| self.kept.get(seq)),
            };
            if is_ready {
                out.ready.push(assignment);
            } else {
                out.assigned.push(assignment);
            }
        }

        // The pool takes the next messages after it (and after where assigning stopped),
        // counting them ahead. (An older message left out, one that timed out say, is
        // assigned above in its turn, after a commit.)
        let Some(stopped_at) = stopped_at else {
            return out; // every deliverable message went to a worker
        };
        // It is topped up once half of it is gone, so that the payloads not kept in memory
        // are read many at a time.
        let target = workers.pool_target();
        if workers.pooled.len() > target / 2 {
            return out;
        }
        let from = workers
            .pooled
            .last_key_value()
            .map_or(stopped_at, |(&last, _)| stopped_at.max(last + 1));
        for (&seq, attempts) in subscriber.inbox.range_mut(from..) {
            if workers.pooled.len() >= target {
                break;
            }
            if workers.inflight.contains_key(&seq) {
                continue;
            }
            let Some(meta) = deliverable(seq) else {
                continue;
            };
            if max_deliveries.is_some_and(|max| *attempts >= max) {
                out.dead.push(meta);
                continue;
            }
            count(seq, attempts, ops);
            workers.pooled.insert(seq, None);
            out.pooled.push((seq, self.kept.get(seq)));
        }
        out
    }

    /// A pooled message's count is on disk and its payload in hand: the next worker with room
    /// gets it without a commit.
    pub(crate) fn pool_ready(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        seq: u64,
        payload: SharedPayload,
    ) {
        if let Some(slot) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
            .and_then(|s| s.workers.as_mut())
            .and_then(|w| w.pooled.get_mut(&seq))
        {
            *slot = Some(payload);
        }
    }

    /// Hands back a message a worker could not be given (its socket went away or is full).
    pub(crate) fn hand_back(&mut self, client: &ClientId, queue: &QueueName, seq: u64) {
        self.finish_inflight(client, queue, seq);
    }

    /// Forgets that `seq` is in flight in `client`'s subscription to `queue` (it was acked,
    /// or it goes back to waiting in the inbox).
    pub(super) fn finish_inflight(&mut self, client: &ClientId, queue: &QueueName, seq: u64) {
        let Some(subscriber) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
        else {
            return;
        };
        let still_in_inbox = subscriber.inbox.contains_key(&seq);
        let Some(workers) = subscriber.workers.as_mut() else {
            return;
        };
        if still_in_inbox {
            workers.came_back(seq);
        }
        if let Some(deadline) = workers.finish(seq) {
            self.ack_deadlines
                .remove(&(deadline, seq, client.clone(), queue.clone()));
        }
    }

    /// Takes back every in-flight message whose ack deadline passed by `now`, noting in
    /// `lapsed` each lease that ran out (its worker and its message). Returns the
    /// subscriptions that should dispatch again (to another worker, round-robin).
    pub(crate) fn expire_inflight(
        &mut self,
        now: u64,
        lapsed: &mut Vec<(ConsumerId, u64)>,
    ) -> Vec<(ClientId, QueueName)> {
        let mut touched = Vec::new();
        while let Some((deadline, seq, client, queue)) = self.ack_deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            if let Some(workers) = self
                .queues
                .get_mut(&queue)
                .and_then(|q| q.subscribers.get_mut(&client))
                .and_then(|s| s.workers.as_mut())
            {
                lapsed.extend(workers.time_out(seq, deadline).map(|worker| (worker, seq)));
            }
            self.ack_deadlines
                .remove(&(deadline, seq, client.clone(), queue.clone()));
            if !touched.contains(&(client.clone(), queue.clone())) {
                touched.push((client, queue));
            }
        }
        touched
    }

    /// Removes `seq` from `client`'s inbox on `queue` because it was delivered too often;
    /// the caller publishes its copy to the dead-letter queue in the same commit.
    pub(crate) fn dead_letter(
        &mut self,
        client: &ClientId,
        queue_name: &QueueName,
        seq: u64,
        ops: &mut Vec<Op>,
    ) -> bool {
        self.finish_inflight(client, queue_name, seq);
        let Some(queue) = self.queues.get_mut(queue_name) else {
            return false;
        };
        let removed = queue
            .subscribers
            .get_mut(client)
            .is_some_and(|s| s.inbox.remove(&seq).is_some());
        if removed {
            queue.counters.dead_lettered += 1;
            ops.push(Op::RemoveFromInbox {
                client: client.clone(),
                queue: queue_name.clone(),
                seq,
            });
            ops.push(Op::PutCounters {
                queue: queue_name.clone(),
                counters: queue.counters,
            });
            self.drop_ref(seq, ops);
        }
        removed
    }

    /// The subscriptions of `client` that the dispatcher serves (work mode or ordered).
    pub(crate) fn dispatched_queues(&self, client: &ClientId) -> Vec<QueueName> {
        self.clients
            .get(client)
            .into_iter()
            .flatten()
            .filter(|q| self.is_dispatched(client, q))
            .cloned()
            .collect()
    }

    /// Whether `client`'s subscription to `queue` (if any) is one the dispatcher sends.
    pub(crate) fn is_dispatched(&self, client: &ClientId, queue: &QueueName) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subscribers.get(client))
            .is_some_and(Subscriber::is_dispatched)
    }

    /// In an ordered subscription: the head of the inbox (its oldest unacked, unexpired
    /// message) if it has not been pushed yet, counted as an attempt. `None` when the head
    /// was pushed already, the inbox is empty, no socket of the client is `online` to take
    /// it, or the subscription is not ordered.
    pub(crate) fn ordered_head(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
        online: bool,
        ops: &mut Vec<Op>,
    ) -> Option<Assignment> {
        let subscriber = self.queues.get_mut(queue)?.subscribers.get_mut(client)?;
        if !subscriber.record.ordered || !online {
            return None;
        }
        let messages = &self.messages;
        let (&seq, attempts) = subscriber
            .inbox
            .iter_mut()
            .find(|(seq, _)| messages.get(seq).is_some_and(|e| !expired(&e.meta, now)))?;
        if subscriber.pushed_head == Some(seq) {
            return None;
        }
        subscriber.pushed_head = Some(seq);
        *attempts += 1;
        ops.push(Op::SetAttempts {
            client: client.clone(),
            queue: queue.clone(),
            seq,
            attempts: *attempts,
        });
        Some(Assignment {
            consumer: String::new(),
            client: client.clone(),
            meta: Arc::clone(&messages.get(&seq)?.meta),
            attempt: *attempts,
            payload: None,
        })
    }

    /// Makes an ordered subscription push its head again (a socket joined, or asked).
    pub(crate) fn repush_head(&mut self, client: &ClientId, queue: &QueueName) {
        if let Some(subscriber) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.subscribers.get_mut(client))
        {
            subscriber.pushed_head = None;
        }
    }

    /// Whether `client`'s subscription to `queue` is ordered.
    pub(crate) fn is_ordered(&self, client: &ClientId, queue: &QueueName) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subscribers.get(client))
            .is_some_and(|s| s.record.ordered)
    }

    /// Whether `client`'s subscription to `queue` is in work mode.
    pub(crate) fn is_work(&self, client: &ClientId, queue: &QueueName) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subscribers.get(client))
            .is_some_and(|s| s.workers.is_some())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::broker::index::KeptKind;
    use crate::broker::index::kept::KEPT_WORK_BYTES;
    use crate::broker::message::NewMessage;
    use crate::names::EventName;
    use crate::store::{Snapshot, SubscriptionRecord};

    const TIMEOUT: u64 = 1000;

    /// An index with `client` subscribed to `queue` in work mode and the given workers
    /// (prefetch 1 each).
    /// An index with client `w` subscribed to queue `jobs` in work mode, with `workers`
    /// attached (prefetch 1).
    fn work_queue(workers: &[&str]) -> (Index, ClientId, QueueName) {
        let (client, queue) = (
            ClientId::parse("w").unwrap(),
            QueueName::parse("jobs").unwrap(),
        );
        let mut state = Index::from_snapshot(Snapshot::default());
        let record = SubscriptionRecord {
            mode: Mode::Work,
            ack_timeout_ms: Some(TIMEOUT),
            ..SubscriptionRecord::default()
        };
        state.subscribe(&client, &queue, record, &mut Vec::new());
        for worker in workers {
            state
                .attach(&client, &queue, worker.to_string(), 1)
                .unwrap();
        }
        (state, client, queue)
    }

    fn publish(state: &mut Index, queue: &QueueName, now: u64) {
        let message = NewMessage::new(
            queue.clone(),
            EventName::parse("job").unwrap(),
            json!(null),
            "http",
        );
        state.publish(&message, "null".into(), now, &|_, _| false, &mut Vec::new());
    }

    /// Dispatches at `now`; the messages given out, as (worker, seq).
    fn given(
        state: &mut Index,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
    ) -> Vec<(String, u64)> {
        handed_out(state, client, queue, now)
            .into_iter()
            .map(|a| (a.consumer, a.meta.seq))
            .collect()
    }

    /// Dispatches at `now`; the assignments, those to send after the commit and then those
    /// ready at once.
    fn handed_out(
        state: &mut Index,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
    ) -> Vec<Assignment> {
        let dispatched = state.dispatch(client, queue, now, &mut Vec::new());
        dispatched
            .assigned
            .into_iter()
            .chain(dispatched.ready)
            .collect()
    }

    // A look starts past the messages in flight at the head of the inbox (`scan_from`); a
    // message that goes back to waiting, or enters the inbox, behind them is still seen, in
    // publish order. (Debug builds also check at each look that everything skipped is in
    // flight.)
    #[test]
    fn a_message_handed_back_behind_messages_in_flight_goes_out_before_later_ones() {
        let (mut state, client, queue) = work_queue(&["a", "b"]);
        for _ in 0..4 {
            publish(&mut state, &queue, 0);
        }
        let first = given(&mut state, &client, &queue, 0);
        assert_eq!(first, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
        // Nothing changed: the next look starts past 1 and 2.
        assert!(given(&mut state, &client, &queue, 0).is_empty());
        // a's socket could not take 1: it waits again, older than 3 and 4.
        state.hand_back(&client, &queue, 1);
        assert_eq!(given(&mut state, &client, &queue, 0), [("a".to_owned(), 1)]);
    }

    #[test]
    fn a_delayed_message_that_comes_due_behind_messages_in_flight_goes_out_first() {
        let (mut state, client, queue) = work_queue(&["a", "b"]);
        let mut delayed = NewMessage::new(
            queue.clone(),
            EventName::parse("job").unwrap(),
            json!(null),
            "http",
        );
        delayed.deliver_at_ms = Some(5_000);
        state.publish(&delayed, "null".into(), 0, &|_, _| false, &mut Vec::new());
        for _ in 0..3 {
            publish(&mut state, &queue, 0);
        }
        let first = given(&mut state, &client, &queue, 0);
        assert_eq!(first, [("a".to_owned(), 2), ("b".to_owned(), 3)]);
        assert!(given(&mut state, &client, &queue, 0).is_empty());
        // Message 1 comes due and enters the inbox ahead of 4; a third worker has room.
        for meta in state.due(5_000, 10) {
            state.wake(&meta, &|_, _| false, &mut Vec::new());
        }
        state.attach(&client, &queue, "c".to_owned(), 1).unwrap();
        assert_eq!(
            given(&mut state, &client, &queue, 5_000),
            [("c".to_owned(), 1)]
        );
    }

    /// Dispatches at `now`; the workers given each message, as (worker, attempt).
    fn dispatch(
        state: &mut Index,
        client: &ClientId,
        queue: &QueueName,
        now: u64,
    ) -> Vec<(String, u32)> {
        handed_out(state, client, queue, now)
            .into_iter()
            .map(|a| (a.consumer, a.attempt))
            .collect()
    }

    #[test]
    fn a_timed_out_message_goes_to_a_worker_that_joined_meanwhile_and_alternates() {
        let (mut state, client, queue) = work_queue(&["one"]);
        publish(&mut state, &queue, 0);
        assert_eq!(
            dispatch(&mut state, &client, &queue, 0),
            [("one".into(), 1)]
        );
        state.attach(&client, &queue, "two".into(), 1).unwrap();
        assert_eq!(
            dispatch(&mut state, &client, &queue, 0),
            [],
            "one still holds it"
        );
        let mut now = 0;
        for (worker, attempt) in [("two", 2), ("one", 3), ("two", 4)] {
            now += TIMEOUT;
            assert_eq!(
                state.expire_inflight(now, &mut Vec::new()),
                [(client.clone(), queue.clone())]
            );
            assert_eq!(
                dispatch(&mut state, &client, &queue, now),
                [(worker.into(), attempt)],
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn a_timed_out_message_goes_back_to_its_worker_when_no_other_has_room() {
        let (mut state, client, queue) = work_queue(&["one", "two"]);
        publish(&mut state, &queue, 0);
        assert_eq!(
            dispatch(&mut state, &client, &queue, 0),
            [("one".into(), 1)]
        );
        // "two" takes a later message and holds it past the first one's deadline.
        publish(&mut state, &queue, 500);
        assert_eq!(
            dispatch(&mut state, &client, &queue, 500),
            [("two".into(), 1)]
        );
        let mut lapsed = Vec::new();
        state.expire_inflight(TIMEOUT, &mut lapsed);
        assert_eq!(
            lapsed,
            [("one".to_owned(), 1)],
            "one's lease on message 1 ran out"
        );
        assert_eq!(
            dispatch(&mut state, &client, &queue, TIMEOUT),
            [("one".into(), 2)],
            "the only worker with room"
        );
    }

    /// The seqs in `client`'s inbox on `queue`, in order.
    fn inbox_seqs(state: &Index, client: &ClientId, queue: &QueueName) -> Vec<u64> {
        state.queues[queue].subscribers[client]
            .inbox
            .keys()
            .copied()
            .collect()
    }

    fn pooled_seqs(dispatched: &Dispatched) -> Vec<u64> {
        dispatched.pooled.iter().map(|(seq, _)| *seq).collect()
    }

    fn attempts_written(ops: &[Op]) -> Vec<(u64, u32)> {
        ops.iter()
            .filter_map(|op| match op {
                Op::SetAttempts { seq, attempts, .. } => Some((*seq, *attempts)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_next_messages_are_counted_ahead_and_go_out_without_a_commit_once_ready() {
        let (mut state, client, queue) = work_queue(&["one"]);
        const POOL: usize = POOLED_PER_WORKER; // one worker
        for _ in 0..POOL + 4 {
            publish(&mut state, &queue, 0);
        }
        let seqs = inbox_seqs(&state, &client, &queue);
        let mut ops = Vec::new();
        let first = state.dispatch(&client, &queue, 0, &mut ops);
        assert_eq!(first.assigned.len(), 1, "one worker, prefetch 1");
        assert!(first.ready.is_empty());
        assert_eq!(
            pooled_seqs(&first),
            seqs[1..=POOL],
            "the pool of one worker"
        );
        assert_eq!(
            attempts_written(&ops),
            seqs[..=POOL]
                .iter()
                .map(|&seq| (seq, 1))
                .collect::<Vec<_>>(),
            "pooled messages are counted in the same commit"
        );

        // The pool's commit is on disk; the first pooled message's payload is in hand.
        state.pool_ready(
            &client,
            &queue,
            seqs[1],
            SharedPayload::of(&json!({ "seq": seqs[1] })),
        );
        let ids: Vec<_> = seqs
            .iter()
            .map(|seq| state.messages[seq].meta.id.clone())
            .collect();
        let (acked, removed_pooled) = (ids[0].clone(), ids[2].clone());
        // An ack makes room: the next pooled message goes out at once, counted already; a
        // pooled message acked before it was sent leaves the pool, which takes the next two.
        state
            .ack(
                &client,
                Some(&queue),
                &[acked, removed_pooled],
                &mut Vec::new(),
            )
            .unwrap();
        let mut ops = Vec::new();
        let next = state.dispatch(&client, &queue, 0, &mut ops);
        assert!(next.assigned.is_empty());
        assert_eq!(next.ready.len(), 1);
        assert_eq!(next.ready[0].meta.seq, seqs[1]);
        assert_eq!(next.ready[0].attempt, 1);
        assert_eq!(
            next.ready[0].payload,
            Some(SharedPayload::of(&json!({ "seq": seqs[1] })))
        );
        assert!(next.pooled.is_empty(), "more than half of the pool is left");
        assert!(attempts_written(&ops).is_empty());

        // A pooled message that is not ready yet goes out after the commit, without a second
        // count.
        state
            .ack(&client, Some(&queue), &[ids[1].clone()], &mut Vec::new())
            .unwrap();
        let mut ops = Vec::new();
        let last = state.dispatch(&client, &queue, 0, &mut ops);
        assert!(last.ready.is_empty());
        assert_eq!(last.assigned.len(), 1);
        assert_eq!(last.assigned[0].meta.seq, seqs[3]);
        assert_eq!(last.assigned[0].attempt, 1);
        assert!(attempts_written(&ops).is_empty());
    }

    #[test]
    fn the_pool_is_topped_up_from_its_end_once_half_of_it_is_gone() {
        let (mut state, client, queue) = work_queue(&["one"]);
        const POOL: usize = POOLED_PER_WORKER; // one worker
        for _ in 0..2 * POOL + 1 {
            publish(&mut state, &queue, 0);
        }
        let seqs = inbox_seqs(&state, &client, &queue);
        let first = state.dispatch(&client, &queue, 0, &mut Vec::new());
        assert_eq!(pooled_seqs(&first), seqs[1..=POOL]);
        // Half of the pool is acked before it was sent (it leaves the pool with the inbox).
        let gone: Vec<_> = seqs[1..=POOL / 2]
            .iter()
            .map(|seq| state.messages[seq].meta.id.clone())
            .collect();
        state
            .ack(&client, Some(&queue), &gone, &mut Vec::new())
            .unwrap();
        let mut ops = Vec::new();
        let next = state.dispatch(&client, &queue, 0, &mut ops);
        assert!(next.assigned.is_empty() && next.ready.is_empty(), "no room");
        let refill = &seqs[POOL + 1..POOL + 1 + POOL / 2];
        assert_eq!(pooled_seqs(&next), refill, "after the pool's end, in order");
        assert_eq!(
            attempts_written(&ops),
            refill.iter().map(|&seq| (seq, 1)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn kept_payloads_go_with_assignments_and_the_pool_and_leave_with_the_message() {
        let (mut state, client, queue) = work_queue(&["one"]);
        for _ in 0..4 {
            publish(&mut state, &queue, 0);
        }
        let seqs = inbox_seqs(&state, &client, &queue);
        let payload = |seq: u64| SharedPayload::of(&json!({ "seq": seq }));
        for &seq in &seqs[..3] {
            state.keep_payload(seq, &payload(seq), 10, KeptKind::Work);
        }
        // Past the bound, nothing is kept: that payload is read when it is sent.
        state.keep_payload(seqs[3], &payload(seqs[3]), KEPT_WORK_BYTES, KeptKind::Work);
        let first = state.dispatch(&client, &queue, 0, &mut Vec::new());
        assert!(first.ready.is_empty(), "its attempt is not on disk yet");
        assert_eq!(first.assigned[0].payload, Some(payload(seqs[0])));
        assert_eq!(
            first.pooled,
            [
                (seqs[1], Some(payload(seqs[1]))),
                (seqs[2], Some(payload(seqs[2]))),
                (seqs[3], None)
            ]
        );
        let acked = state.messages[&seqs[0]].meta.id.clone();
        state
            .ack(&client, Some(&queue), &[acked], &mut Vec::new())
            .unwrap();
        assert_eq!(state.kept.get(seqs[0]), None, "deleted with its message");
        assert_eq!(state.kept.bytes(KeptKind::Work), 20);
        assert_eq!(state.kept.get(seqs[3]), None);
    }

    #[test]
    fn a_pooled_message_whose_ttl_runs_out_leaves_the_pool() {
        let (mut state, client, queue) = work_queue(&["one"]);
        const POOL: usize = POOLED_PER_WORKER; // one worker
        for n in 0..POOL + 1 {
            let mut message = NewMessage::new(
                queue.clone(),
                EventName::parse("job").unwrap(),
                json!(null),
                "http",
            );
            message.ttl_ms = (n == 1).then_some(10);
            state.publish(&message, "null".into(), 0, &|_, _| false, &mut Vec::new());
        }
        let first = state.dispatch(&client, &queue, 0, &mut Vec::new());
        let seqs: Vec<u64> = pooled_seqs(&first);
        assert_eq!(seqs.len(), POOL);
        state.expire_due(20, &mut Vec::new());
        let pooled = |state: &Index| {
            state.queues[&queue].subscribers[&client]
                .workers
                .as_ref()
                .map(|w| w.pooled.keys().copied().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(pooled(&state), seqs[1..], "the expired one left the pool");
    }

    #[test]
    fn nothing_is_counted_ahead_without_workers() {
        let (mut state, client, queue) = work_queue(&[]);
        publish(&mut state, &queue, 0);
        let mut ops = Vec::new();
        let dispatched = state.dispatch(&client, &queue, 0, &mut ops);
        assert!(dispatched.pooled.is_empty() && ops.is_empty());
    }
}
