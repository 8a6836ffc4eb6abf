//! [`Index`]: the broker's in-memory index of queues, subscriptions and inboxes.
//!
//! Every mutation is a method that checks its input against the current state, changes the
//! state, and returns the store [`Op`]s that make the same change durable. The caller (the
//! broker) sends those ops to the group-commit writer while it still holds the index lock, so
//! the order of commits is the order of mutations. The index holds message metadata and, per
//! inbox, the sequence numbers it references; no payloads, but those of work-mode messages
//! published since the start, up to a bound (see `work`). It is a cache of the store and is
//! rebuilt from a [`Snapshot`] at start and after a failed commit.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::error::Error;
use crate::hash::FastMap;
use crate::names::{ClientId, EventName, MessageId, QueueName};
use crate::store::{Counters, MessageMeta, Op, Receipt, Snapshot, SubscriptionRecord};

use super::message::NewMessage;

mod inbox;
mod job_view;
mod jobs;
mod kept;
mod publish;
mod timing;
mod work;

#[cfg(test)]
mod tests;

pub(crate) use inbox::envelopes;
pub(crate) use jobs::{JobState, JobView, Peek, TubeCounts, priority};
use kept::KeptPayloads;
pub(crate) use kept::Kind as KeptKind;
pub(crate) use publish::deliveries;
pub(crate) use timing::expired;
use work::ConsumerId;
pub(crate) use work::{Assignment, Dispatched, Workers};

/// A stored message as the index sees it: its metadata and how many inboxes (or the waiting
/// list) still reference it. At zero references the message is deleted.
struct Entry {
    meta: Arc<MessageMeta>,
    refs: u32,
    /// For a delayed message that entered the inboxes when due: the index's wake count
    /// then ([`Index::wakes`]); 0 otherwise.
    woke: u64,
}

/// One client's subscription to one queue.
pub(crate) struct Subscriber {
    pub(crate) record: SubscriptionRecord,
    /// Unacked messages by sequence number (publish order), with how often each was sent.
    pub(crate) inbox: BTreeMap<u64, u32>,
    /// In work mode: the workers and what they hold.
    pub(crate) workers: Option<Workers>,
    /// In an ordered subscription: the message last pushed as the head of the inbox.
    pub(crate) pushed_head: Option<u64>,
    /// In a work subscription that serves jobs (`jobs`): the order in which its jobs are
    /// handed out. `None`: it does not serve jobs.
    pub(crate) job_order: Option<Box<jobs::JobOrder>>,
}

impl Subscriber {
    fn new(record: SubscriptionRecord) -> Self {
        let mut subscriber = Self {
            record,
            inbox: BTreeMap::new(),
            workers: None,
            pushed_head: None,
            job_order: None,
        };
        subscriber.fit_mode();
        subscriber
    }

    fn accepts(&self, event: &EventName) -> bool {
        match &self.record.events {
            Some(events) => events.contains(event),
            None => true,
        }
    }
}

/// One queue: its subscribers, the messages waiting for a first subscriber, its counters.
#[derive(Default)]
pub(crate) struct QueueState {
    pub(crate) subscribers: BTreeMap<ClientId, Subscriber>,
    pub(crate) waiting: BTreeSet<u64>,
    /// Stored messages of this queue by id, for acks and idempotent publish.
    ids: FastMap<MessageId, u64>,
    pub(crate) counters: Counters,
    /// Delayed messages of this queue that are not due yet.
    pub(crate) scheduled: usize,
}

/// Receipts of publishes with publisher-chosen ids, kept for the dedupe window.
#[derive(Default)]
struct Receipts {
    by_key: FastMap<(QueueName, MessageId), Receipt>,
    /// Keys in publish order, so expiry pops from the front.
    order: VecDeque<(QueueName, MessageId)>,
}

/// What one publish changed.
pub(crate) struct PublishOutcome {
    pub(crate) receipt: Receipt,
    pub(crate) duplicate: bool,
    /// Clients whose inbox the message entered, to be pushed to live (broadcast mode).
    pub(crate) recipients: Vec<ClientId>,
    /// Clients whose inbox the message entered, to be handed to the dispatcher (work mode:
    /// one worker; ordered: only as the head of the inbox).
    pub(crate) workers: Vec<ClientId>,
    /// The new message; `None` for a duplicate.
    pub(crate) meta: Option<Arc<MessageMeta>>,
}

/// Which part of an inbox a catch-up or a peek reads.
#[derive(Clone, Debug)]
pub(crate) struct InboxFilter {
    pub(crate) client: ClientId,
    pub(crate) queue: Option<QueueName>,
    pub(crate) event: Option<EventName>,
    /// Leave out work-mode and ordered subscriptions (the dispatcher sends their messages).
    pub(crate) skip_dispatched: bool,
    /// Leave out delayed messages that became due after the index's wake count was this
    /// (after a catch-up started: the live push sends them, as it sends what is published
    /// after the start).
    pub(crate) woken_by: Option<u64>,
}

/// The broker's in-memory index. See the module docs.
#[derive(Default)]
pub(crate) struct Index {
    next_seq: u64,
    messages: FastMap<u64, Entry>,
    pub(crate) queues: BTreeMap<QueueName, QueueState>,
    /// The queues each client is subscribed to.
    clients: FastMap<ClientId, BTreeSet<QueueName>>,
    receipts: Receipts,
    /// Delayed messages by due time: `(deliver_at_ms, seq)`.
    scheduled: BTreeSet<(u64, u64)>,
    /// How many delayed messages have entered their inboxes since the index was built.
    wakes: u64,
    /// Messages with a TTL by expiry time: `(expires_at_ms, seq)`.
    expiring: BTreeSet<(u64, u64)>,
    /// Work mode: ack deadlines of in-flight messages, `(deadline_ms, seq, client, queue)`
    /// (and the wake-ups of jobs released with a delay, see `jobs`).
    ack_deadlines: BTreeSet<(u64, u64, ClientId, QueueName)>,
    /// Work mode: payloads kept in memory so that sending a message needs no store read.
    kept: KeptPayloads,
    /// Work mode: the subscriptions each worker socket was attached to, so that a socket
    /// that leaves is looked for there only, not in every subscription. May name
    /// subscriptions it has left since (unsubscribed, mode changed): looking there finds
    /// nothing.
    attached: FastMap<ConsumerId, Vec<(ClientId, QueueName)>>,
}

impl Index {
    /// Rebuilds the index from what the store holds.
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Self {
        let mut index = Index {
            next_seq: 1,
            ..Index::default()
        };
        for meta in snapshot.messages {
            index.next_seq = index.next_seq.max(meta.seq + 1);
            let queue = index.queues.entry(meta.queue.clone()).or_default();
            queue.ids.insert(meta.id.clone(), meta.seq);
            index.messages.insert(
                meta.seq,
                Entry {
                    meta: Arc::new(meta),
                    refs: 0,
                    woke: 0,
                },
            );
        }
        for (client, queue, record) in snapshot.subscriptions {
            index
                .clients
                .entry(client.clone())
                .or_default()
                .insert(queue.clone());
            index
                .queues
                .entry(queue)
                .or_default()
                .subscribers
                .insert(client, Subscriber::new(record));
        }
        for (client, queue, seq) in snapshot.inbox {
            let Some(entry) = index.messages.get_mut(&seq) else {
                continue; // an entry whose message is gone references nothing
            };
            let subscriber = index
                .queues
                .get_mut(&queue)
                .and_then(|q| q.subscribers.get_mut(&client));
            if let Some(subscriber) = subscriber {
                subscriber.enter_inbox(seq, 0);
                entry.refs += 1;
            }
        }
        for (queue, seq) in snapshot.waiting {
            if let Some(entry) = index.messages.get_mut(&seq) {
                entry.refs += 1;
                index.queues.entry(queue).or_default().waiting.insert(seq);
            }
        }
        for (client, queue, seq, attempts) in snapshot.attempts {
            let entry = index
                .queues
                .get_mut(&queue)
                .and_then(|q| q.subscribers.get_mut(&client))
                .and_then(|s| s.inbox.get_mut(&seq));
            if let Some(entry) = entry {
                *entry = attempts;
            }
        }
        for (queue, counters) in snapshot.counters {
            index.queues.entry(queue).or_default().counters = counters;
        }
        index.rebuild_timers();
        index.rebuild_job_wakeups();
        let mut receipts: Vec<Receipt> = snapshot.receipts;
        receipts.sort_by_key(|r| r.published_at_ms);
        for receipt in receipts {
            index.receipts.insert(receipt);
        }
        index
    }

    /// Subscribes `client` to `queue` (or updates its options). A new subscriber takes every
    /// waiting message its filter accepts. Returns how many messages its inbox holds.
    pub(crate) fn subscribe(
        &mut self,
        client: &ClientId,
        queue_name: &QueueName,
        record: SubscriptionRecord,
        ops: &mut Vec<Op>,
    ) -> usize {
        let queue = self.queues.entry(queue_name.clone()).or_default();
        self.clients
            .entry(client.clone())
            .or_default()
            .insert(queue_name.clone());
        if let Some(existing) = queue.subscribers.get_mut(client) {
            if existing.record != record {
                let was_dispatched = existing.is_dispatched();
                existing.record = record.clone();
                existing.fit_mode();
                if existing.is_dispatched() && !was_dispatched {
                    // Attempt counts become durable in work mode and ordered (DECISIONS 19):
                    // those counted in memory so far are written now.
                    for (&seq, &attempts) in existing.inbox.iter().filter(|(_, n)| **n > 0) {
                        ops.push(Op::SetAttempts {
                            client: client.clone(),
                            queue: queue_name.clone(),
                            seq,
                            attempts,
                        });
                    }
                }
                ops.push(Op::PutSubscription {
                    client: client.clone(),
                    queue: queue_name.clone(),
                    record,
                });
            }
            return existing.inbox.len();
        }
        let mut subscriber = Subscriber::new(record.clone());
        ops.push(Op::PutSubscription {
            client: client.clone(),
            queue: queue_name.clone(),
            record,
        });
        let messages = &self.messages;
        let taken: Vec<u64> = queue
            .waiting
            .iter()
            .copied()
            .filter(|seq| {
                messages
                    .get(seq)
                    .is_some_and(|e| subscriber.accepts(&e.meta.event))
            })
            .collect();
        for seq in taken {
            queue.waiting.remove(&seq);
            subscriber.enter_inbox(seq, 0);
            ops.push(Op::RemoveWaiting {
                queue: queue_name.clone(),
                seq,
            });
            ops.push(Op::AddToInbox {
                client: client.clone(),
                queue: queue_name.clone(),
                seq,
            });
        }
        let pending = subscriber.inbox.len();
        queue.subscribers.insert(client.clone(), subscriber);
        pending
    }

    /// Ends a subscription and drops its inbox. Returns how many messages were dropped.
    pub(crate) fn unsubscribe(
        &mut self,
        client: &ClientId,
        queue_name: &QueueName,
        ops: &mut Vec<Op>,
    ) -> Result<usize, Error> {
        let subscriber = self
            .queues
            .get_mut(queue_name)
            .and_then(|q| q.subscribers.remove(client))
            .ok_or_else(|| Error::not_subscribed(client, Some(queue_name)))?;
        if let Some(queues) = self.clients.get_mut(client) {
            queues.remove(queue_name);
            if queues.is_empty() {
                self.clients.remove(client);
            }
        }
        ops.push(Op::DeleteSubscription {
            client: client.clone(),
            queue: queue_name.clone(),
        });
        for &seq in subscriber.inbox.keys() {
            ops.push(Op::RemoveFromInbox {
                client: client.clone(),
                queue: queue_name.clone(),
                seq,
            });
            self.drop_ref(seq, ops);
        }
        Ok(subscriber.inbox.len())
    }

    /// Removes each of `ids` from the client's inbox (in `queue`, or in every queue it is
    /// subscribed to). Returns, per id, whether something was removed (unknown and repeated
    /// ids are not errors), and the queues where something was: their counters changed, and
    /// the caller writes them once per mutation ([`Index::put_counters`]).
    pub(crate) fn ack(
        &mut self,
        client: &ClientId,
        queue: Option<&QueueName>,
        ids: &[MessageId],
        ops: &mut Vec<Op>,
    ) -> Result<(Vec<bool>, Vec<QueueName>), Error> {
        let queues = self.subscribed_queues(client, queue)?;
        let mut removed = Vec::with_capacity(ids.len());
        let mut touched = BTreeSet::new();
        for id in ids {
            let mut hit = false;
            for queue_name in &queues {
                let Some(queue) = self.queues.get_mut(queue_name) else {
                    continue;
                };
                let Some(&seq) = queue.ids.get(id) else {
                    continue;
                };
                let Some(subscriber) = queue.subscribers.get_mut(client) else {
                    continue;
                };
                if subscriber.inbox.remove(&seq).is_some() {
                    // In work mode it may be in flight: its worker has room again and its
                    // ack deadline goes (what `finish_inflight` does, without looking the
                    // subscriber up again).
                    let deadline = subscriber.workers.as_mut().and_then(|w| w.finish(seq));
                    queue.counters.acked += 1;
                    touched.insert(queue_name.clone());
                    ops.push(Op::RemoveFromInbox {
                        client: client.clone(),
                        queue: queue_name.clone(),
                        seq,
                    });
                    if let Some(deadline) = deadline {
                        self.ack_deadlines.remove(&(
                            deadline,
                            seq,
                            client.clone(),
                            queue_name.clone(),
                        ));
                    }
                    self.drop_ref(seq, ops);
                    hit = true;
                }
            }
            removed.push(hit);
        }
        Ok((removed, touched.into_iter().collect()))
    }

    /// Writes the counters of `queue` as they are now.
    pub(crate) fn put_counters(&self, queue_name: &QueueName, ops: &mut Vec<Op>) {
        if let Some(queue) = self.queues.get(queue_name) {
            ops.push(Op::PutCounters {
                queue: queue_name.clone(),
                counters: queue.counters,
            });
        }
    }

    /// Drops one reference to message `seq`, deleting it when nothing references it any more.
    fn drop_ref(&mut self, seq: u64, ops: &mut Vec<Op>) {
        let Some(entry) = self.messages.get_mut(&seq) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs == 0 {
            let meta = Arc::clone(&entry.meta);
            self.messages.remove(&seq);
            self.kept.forget(seq);
            if let Some(queue) = self.queues.get_mut(&meta.queue) {
                queue.ids.remove(&meta.id);
            }
            ops.push(Op::DeleteMessage(seq));
        }
    }
}
