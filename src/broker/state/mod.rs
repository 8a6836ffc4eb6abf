//! [`State`]: the broker's in-memory index of queues, subscriptions and inboxes.
//!
//! Every mutation is a method that checks its input against the current state, changes the
//! state, and returns the store [`Op`]s that make the same change durable. The caller (the
//! broker) sends those ops to the group-commit writer while it still holds the state lock, so
//! the order of commits is the order of mutations. The index holds no payloads: only message
//! metadata and, per inbox, the sequence numbers it references. It is a cache of the store and
//! is rebuilt from a [`Snapshot`] at start and after a failed commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::error::Error;
use crate::names::{ClientId, EventName, MessageId, QueueName};
use crate::store::{
    Counters, MessageMeta, Op, Receipt, Snapshot, StoredMessage, SubscriptionRecord,
};

use super::message::{Delivery, Envelope, NewMessage, SharedPayload};

mod timing;
mod work;

pub(crate) use timing::expired;
pub(crate) use work::{Assignment, Workers};

/// A stored message as the index sees it: its metadata and how many inboxes (or the waiting
/// list) still reference it. At zero references the message is deleted.
struct Entry {
    meta: Arc<MessageMeta>,
    refs: u32,
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
}

impl Subscriber {
    fn new(record: SubscriptionRecord) -> Self {
        let mut subscriber = Self {
            record,
            inbox: BTreeMap::new(),
            workers: None,
            pushed_head: None,
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
    ids: HashMap<MessageId, u64>,
    pub(crate) counters: Counters,
    /// Delayed messages of this queue that are not due yet.
    pub(crate) scheduled: usize,
}

/// Receipts of publishes with publisher-chosen ids, kept for the dedupe window.
#[derive(Default)]
struct Receipts {
    by_key: HashMap<(QueueName, MessageId), Receipt>,
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

impl PublishOutcome {
    /// The live pushes of a new message, one per recipient, sharing one parsed payload.
    pub(crate) fn deliveries(&self, payload: serde_json::Value) -> Vec<Delivery> {
        match &self.meta {
            Some(meta) => deliveries(meta, &self.recipients, Arc::new(payload)),
            None => Vec::new(),
        }
    }
}

/// The live pushes of `meta` to `recipients`, sharing one parsed payload.
pub(crate) fn deliveries(
    meta: &MessageMeta,
    recipients: &[ClientId],
    payload: SharedPayload,
) -> Vec<Delivery> {
    recipients
        .iter()
        .map(|client| Delivery {
            envelope: Envelope::new(meta, Arc::clone(&payload), client, 1),
        })
        .collect()
}

/// Which part of an inbox a catch-up or a peek reads.
#[derive(Clone, Debug)]
pub(crate) struct InboxFilter {
    pub(crate) client: ClientId,
    pub(crate) queue: Option<QueueName>,
    pub(crate) event: Option<EventName>,
    /// Leave out work-mode and ordered subscriptions (the dispatcher sends their messages).
    pub(crate) skip_dispatched: bool,
}

/// The broker's in-memory index. See the module docs.
#[derive(Default)]
pub(crate) struct State {
    next_seq: u64,
    messages: HashMap<u64, Entry>,
    pub(crate) queues: BTreeMap<QueueName, QueueState>,
    /// The queues each client is subscribed to.
    clients: HashMap<ClientId, BTreeSet<QueueName>>,
    receipts: Receipts,
    /// Delayed messages by due time: `(deliver_at_ms, seq)`.
    scheduled: BTreeSet<(u64, u64)>,
    /// Messages with a TTL by expiry time: `(expires_at_ms, seq)`.
    expiring: BTreeSet<(u64, u64)>,
    /// Work mode: ack deadlines of in-flight messages, `(deadline_ms, seq, client, queue)`.
    ack_deadlines: BTreeSet<(u64, u64, ClientId, QueueName)>,
}

impl State {
    /// Rebuilds the index from what the store holds.
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Self {
        let mut state = State {
            next_seq: 1,
            ..State::default()
        };
        for meta in snapshot.messages {
            state.next_seq = state.next_seq.max(meta.seq + 1);
            let queue = state.queues.entry(meta.queue.clone()).or_default();
            queue.ids.insert(meta.id.clone(), meta.seq);
            state.messages.insert(
                meta.seq,
                Entry {
                    meta: Arc::new(meta),
                    refs: 0,
                },
            );
        }
        for (client, queue, record) in snapshot.subscriptions {
            state
                .clients
                .entry(client.clone())
                .or_default()
                .insert(queue.clone());
            state
                .queues
                .entry(queue)
                .or_default()
                .subscribers
                .insert(client, Subscriber::new(record));
        }
        for (client, queue, seq) in snapshot.inbox {
            let Some(entry) = state.messages.get_mut(&seq) else {
                continue; // an entry whose message is gone references nothing
            };
            let subscriber = state
                .queues
                .get_mut(&queue)
                .and_then(|q| q.subscribers.get_mut(&client));
            if let Some(subscriber) = subscriber {
                subscriber.inbox.insert(seq, 0);
                entry.refs += 1;
            }
        }
        for (queue, seq) in snapshot.waiting {
            if let Some(entry) = state.messages.get_mut(&seq) {
                entry.refs += 1;
                state.queues.entry(queue).or_default().waiting.insert(seq);
            }
        }
        for (client, queue, seq, attempts) in snapshot.attempts {
            let entry = state
                .queues
                .get_mut(&queue)
                .and_then(|q| q.subscribers.get_mut(&client))
                .and_then(|s| s.inbox.get_mut(&seq));
            if let Some(entry) = entry {
                *entry = attempts;
            }
        }
        for (queue, counters) in snapshot.counters {
            state.queues.entry(queue).or_default().counters = counters;
        }
        state.rebuild_timers();
        let mut receipts: Vec<Receipt> = snapshot.receipts;
        receipts.sort_by_key(|r| r.published_at_ms);
        for receipt in receipts {
            state.receipts.insert(receipt);
        }
        state
    }

    /// Publishes one message: it enters the inbox of every subscriber whose event filter
    /// accepts it, or waits for the first subscriber if there is none; a delayed message is
    /// scheduled instead and routed when it is due ([`State::release_due`]). A
    /// publisher-chosen id already seen on this queue returns the first receipt and changes
    /// nothing. `online` tells which subscribers have a socket connected: for them the live
    /// push counts as the first delivery attempt.
    pub(crate) fn publish(
        &mut self,
        message: &NewMessage,
        payload_text: String,
        now_ms: u64,
        online: &dyn Fn(&ClientId, &QueueName) -> bool,
        ops: &mut Vec<Op>,
    ) -> PublishOutcome {
        if let Some(id) = &message.id
            && let Some(outcome) = self.duplicate(&message.queue, id)
        {
            return outcome;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let deliver_at_ms = message.deliver_at_ms.filter(|at| *at > now_ms);
        let meta = Arc::new(MessageMeta {
            seq,
            id: message.id.clone().unwrap_or_else(MessageId::generate),
            queue: message.queue.clone(),
            event: message.event.clone(),
            published_at_ms: now_ms,
            source: message.source.clone(),
            deliver_at_ms,
            expires_at_ms: message.ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
        });
        ops.push(Op::PutMessage(StoredMessage {
            meta: (*meta).clone(),
            payload: payload_text,
        }));
        self.messages.insert(
            seq,
            Entry {
                meta: Arc::clone(&meta),
                refs: 0,
            },
        );
        self.queues
            .entry(meta.queue.clone())
            .or_default()
            .ids
            .insert(meta.id.clone(), seq);
        if let Some(expires_at) = meta.expires_at_ms {
            self.expiring.insert((expires_at, seq));
        }
        let (recipients, workers) = match deliver_at_ms {
            Some(due) => {
                self.schedule(&meta, due);
                (Vec::new(), Vec::new())
            }
            None => self.route(&meta, online, ops),
        };
        let queue = self.queues.entry(meta.queue.clone()).or_default();
        queue.counters.published += 1;
        ops.push(Op::PutCounters {
            queue: meta.queue.clone(),
            counters: queue.counters,
        });

        let receipt = Receipt {
            id: meta.id.clone(),
            queue: meta.queue.clone(),
            event: meta.event.clone(),
            published_at_ms: now_ms,
            recipients: recipients.len() + workers.len(),
            deliver_at_ms,
        };
        if message.id.is_some() {
            self.receipts.insert(receipt.clone());
            ops.push(Op::PutReceipt(receipt.clone()));
        }
        PublishOutcome {
            receipt,
            duplicate: false,
            recipients,
            workers,
            meta: Some(meta),
        }
    }

    /// Puts a stored message where it can be delivered: into the inbox of every subscriber
    /// whose filter accepts it, else into the queue's waiting list. Returns the recipients in
    /// broadcast mode and those in work mode.
    fn route(
        &mut self,
        meta: &Arc<MessageMeta>,
        online: &dyn Fn(&ClientId, &QueueName) -> bool,
        ops: &mut Vec<Op>,
    ) -> (Vec<ClientId>, Vec<ClientId>) {
        let seq = meta.seq;
        let queue = self.queues.entry(meta.queue.clone()).or_default();
        let mut recipients = Vec::new();
        let mut workers = Vec::new();
        for (client, subscriber) in &mut queue.subscribers {
            if subscriber.accepts(&meta.event) {
                // Work and ordered subscriptions count an attempt when the dispatcher sends.
                let dispatched = subscriber.is_dispatched();
                let pushed = !dispatched && online(client, &meta.queue);
                subscriber.inbox.insert(seq, u32::from(pushed));
                if dispatched {
                    workers.push(client.clone());
                } else {
                    recipients.push(client.clone());
                }
                ops.push(Op::AddToInbox {
                    client: client.clone(),
                    queue: meta.queue.clone(),
                    seq,
                });
            }
        }
        let refs = if recipients.is_empty() && workers.is_empty() {
            queue.waiting.insert(seq);
            ops.push(Op::AddWaiting {
                queue: meta.queue.clone(),
                seq,
            });
            1
        } else {
            (recipients.len() + workers.len()) as u32
        };
        if let Some(entry) = self.messages.get_mut(&seq) {
            entry.refs += refs;
        }
        (recipients, workers)
    }

    /// Refuses a publish that a limit forbids, before anything changes: an inbox it would
    /// enter already holds `max_inbox` messages.
    pub(crate) fn check_limits(&self, message: &NewMessage, max_inbox: usize) -> Result<(), Error> {
        let Some(queue) = self.queues.get(&message.queue) else {
            return Ok(());
        };
        let full = queue
            .subscribers
            .iter()
            .find(|(_, s)| s.accepts(&message.event) && s.inbox.len() >= max_inbox);
        match full {
            Some((client, _)) => Err(Error::new(
                crate::error::ErrorKind::Full,
                "inbox_full",
                format!(
                    "the inbox of client '{client}' on queue '{}' holds {max_inbox} messages, the limit; it must ack some first",
                    message.queue
                ),
            )),
            None => Ok(()),
        }
    }

    /// Counts a publish that a limit refused, on a queue that exists (a refused publish
    /// never creates one).
    pub(crate) fn count_rejected(&mut self, queue: &QueueName, ops: &mut Vec<Op>) {
        let Some(state) = self.queues.get_mut(queue) else {
            return;
        };
        state.counters.rejected += 1;
        ops.push(Op::PutCounters {
            queue: queue.clone(),
            counters: state.counters,
        });
    }

    fn duplicate(&self, queue: &QueueName, id: &MessageId) -> Option<PublishOutcome> {
        let stored = || {
            let seq = self.queues.get(queue)?.ids.get(id)?;
            let meta = &self.messages.get(seq)?.meta;
            Some(Receipt {
                id: meta.id.clone(),
                queue: meta.queue.clone(),
                event: meta.event.clone(),
                published_at_ms: meta.published_at_ms,
                recipients: 0,
                deliver_at_ms: meta.deliver_at_ms,
            })
        };
        let receipt = self
            .receipts
            .by_key
            .get(&(queue.clone(), id.clone()))
            .cloned()
            .or_else(stored)?;
        Some(PublishOutcome {
            receipt,
            duplicate: true,
            recipients: Vec::new(),
            workers: Vec::new(),
            meta: None,
        })
    }

    /// Forgets receipts published before `cutoff_ms`: after the dedupe window a repeated id
    /// is a new message.
    pub(crate) fn expire_receipts(&mut self, cutoff_ms: u64, ops: &mut Vec<Op>) {
        while let Some(key) = self.receipts.order.front() {
            let Some(receipt) = self.receipts.by_key.get(key) else {
                self.receipts.order.pop_front();
                continue;
            };
            if receipt.published_at_ms >= cutoff_ms {
                break;
            }
            let (queue, id) = self.receipts.order.pop_front().expect("front exists");
            self.receipts.by_key.remove(&(queue.clone(), id.clone()));
            ops.push(Op::DeleteReceipt { queue, id });
        }
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
                existing.record = record.clone();
                existing.fit_mode();
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
            subscriber.inbox.insert(seq, 0);
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
    /// subscribed to). Returns, per id, whether something was removed; unknown and repeated
    /// ids are not errors.
    pub(crate) fn ack(
        &mut self,
        client: &ClientId,
        queue: Option<&QueueName>,
        ids: &[MessageId],
        ops: &mut Vec<Op>,
    ) -> Result<Vec<bool>, Error> {
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
                    queue.counters.acked += 1;
                    touched.insert(queue_name.clone());
                    ops.push(Op::RemoveFromInbox {
                        client: client.clone(),
                        queue: queue_name.clone(),
                        seq,
                    });
                    self.finish_inflight(client, queue_name, seq);
                    self.drop_ref(seq, ops);
                    hit = true;
                }
            }
            removed.push(hit);
        }
        for queue_name in touched {
            if let Some(queue) = self.queues.get(&queue_name) {
                ops.push(Op::PutCounters {
                    queue: queue_name,
                    counters: queue.counters,
                });
            }
        }
        Ok(removed)
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
            if let Some(queue) = self.queues.get_mut(&meta.queue) {
                queue.ids.remove(&meta.id);
            }
            ops.push(Op::DeleteMessage(seq));
        }
    }

    /// The queues `client` is subscribed to (just `queue` if given), or `not_subscribed`.
    pub(crate) fn subscribed_queues(
        &self,
        client: &ClientId,
        queue: Option<&QueueName>,
    ) -> Result<Vec<QueueName>, Error> {
        let queues = self
            .clients
            .get(client)
            .ok_or_else(|| Error::not_subscribed(client, None))?;
        match queue {
            Some(queue) if queues.contains(queue) => Ok(vec![queue.clone()]),
            Some(queue) => Err(Error::not_subscribed(client, Some(queue))),
            None => Ok(queues.iter().cloned().collect()),
        }
    }

    /// The highest sequence number handed out so far.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Up to `max` inbox entries matching `filter` with `after < seq <= upto`, in publish
    /// order, leaving out messages whose TTL has run out at `now` (the timer removes them
    /// soon). With `count_delivery`, each returned entry's attempt counter goes up by one
    /// (catch-up sends it); otherwise it is a peek.
    pub(crate) fn inbox_page(
        &mut self,
        filter: &InboxFilter,
        (after, upto): (u64, u64),
        max: usize,
        now: u64,
        count_delivery: bool,
    ) -> Result<Vec<(Arc<MessageMeta>, u32)>, Error> {
        let queues = self.subscribed_queues(&filter.client, filter.queue.as_ref())?;
        if after >= upto {
            return Ok(Vec::new());
        }
        let mut page: Vec<(u64, QueueName)> = Vec::new();
        for queue_name in &queues {
            let Some(subscriber) = self
                .queues
                .get(queue_name)
                .and_then(|q| q.subscribers.get(&filter.client))
            else {
                continue;
            };
            if filter.skip_dispatched && subscriber.is_dispatched() {
                continue;
            }
            let mut taken = 0;
            for (&seq, _) in subscriber.inbox.range(after + 1..=upto) {
                if taken == max {
                    break;
                }
                let matches = self.messages.get(&seq).is_some_and(|e| {
                    !expired(&e.meta, now)
                        && filter
                            .event
                            .as_ref()
                            .is_none_or(|event| &e.meta.event == event)
                });
                if matches {
                    page.push((seq, queue_name.clone()));
                    taken += 1;
                }
            }
        }
        page.sort_unstable_by_key(|(seq, _)| *seq);
        page.truncate(max);
        let mut out = Vec::with_capacity(page.len());
        for (seq, queue_name) in page {
            let Some(entry) = self.messages.get(&seq) else {
                continue;
            };
            let meta = Arc::clone(&entry.meta);
            let attempt = self
                .queues
                .get_mut(&queue_name)
                .and_then(|q| q.subscribers.get_mut(&filter.client))
                .and_then(|s| s.inbox.get_mut(&seq))
                .map(|attempts| {
                    if count_delivery {
                        *attempts += 1;
                    }
                    *attempts
                })
                .unwrap_or(0);
            out.push((meta, attempt));
        }
        Ok(out)
    }

    /// The oldest `limit` messages waiting in `queue` (no subscriber has taken them).
    pub(crate) fn waiting_page(&self, queue: &QueueName, limit: usize) -> Vec<Arc<MessageMeta>> {
        self.queues
            .get(queue)
            .map(|q| {
                q.waiting
                    .iter()
                    .take(limit)
                    .filter_map(|seq| self.messages.get(seq).map(|e| Arc::clone(&e.meta)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes message `seq` from `queue`'s waiting list, if it is still there.
    pub(crate) fn take_waiting(&mut self, queue: &QueueName, seq: u64, ops: &mut Vec<Op>) -> bool {
        let taken = self
            .queues
            .get_mut(queue)
            .is_some_and(|q| q.waiting.remove(&seq));
        if taken {
            ops.push(Op::RemoveWaiting {
                queue: queue.clone(),
                seq,
            });
            self.drop_ref(seq, ops);
        }
        taken
    }

    /// Number of stored messages (each counted once, however many inboxes hold it).
    pub(crate) fn stored_messages(&self) -> usize {
        self.messages.len()
    }
}

impl Receipts {
    fn insert(&mut self, receipt: Receipt) {
        let key = (receipt.queue.clone(), receipt.id.clone());
        if self.by_key.insert(key.clone(), receipt).is_none() {
            self.order.push_back(key);
        }
    }
}

/// Builds the envelopes of a page of inbox entries once their payloads have been read.
pub(crate) fn envelopes(
    client: &ClientId,
    entries: Vec<(Arc<MessageMeta>, u32)>,
    payloads: Vec<Option<String>>,
) -> Vec<Envelope> {
    entries
        .into_iter()
        .zip(payloads)
        .filter_map(|((meta, attempt), payload)| {
            // A payload that is gone was acked or dropped meanwhile: nothing to send.
            let payload: SharedPayload = Arc::new(serde_json::from_str(&payload?).ok()?);
            Some(Envelope::new(&meta, payload, client, attempt))
        })
        .collect()
}
