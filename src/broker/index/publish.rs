//! Publishing into the index: storing a message once, routing it to inboxes (or the waiting
//! list, or the schedule), idempotent ids and their receipts, and the limits a publish must
//! pass first.

use std::sync::Arc;

use super::super::message::{Delivery, Envelope, SharedPayload, format_ms_shared};
use super::{Entry, Index, NewMessage, PublishOutcome, Receipts};
use crate::error::{Code, Error};
use crate::names::{ClientId, MessageId, QueueName};
use crate::store::{MessageMeta, Op, Receipt, StoredMessage};

impl Index {
    /// Publishes one message: it enters the inbox of every subscriber whose event filter
    /// accepts it, or waits for the first subscriber if there is none; a delayed message is
    /// scheduled instead and routed when it is due ([`Index::wake`]). A
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
            source: message.source.as_str().into(),
            deliver_at_ms,
            expires_at_ms: message.ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
            job: message.job,
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
                woke: 0,
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
    pub(super) fn route(
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
                subscriber.enter_inbox(seq, u32::from(pushed));
                if let Some(order) = subscriber.job_order.as_mut() {
                    order.ready.insert((super::jobs::priority(meta), seq));
                }
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
                Code::InboxFull,
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
}

impl PublishOutcome {
    /// The live pushes of a new message, one per recipient, sharing one parsed payload.
    pub(crate) fn deliveries(&self, payload: SharedPayload) -> Vec<Delivery> {
        match &self.meta {
            Some(meta) => deliveries(meta, &self.recipients, payload),
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
    let published_at = format_ms_shared(meta.published_at_ms);
    recipients
        .iter()
        .map(|client| Delivery {
            envelope: Envelope::at(meta, payload.clone(), client, 1, Arc::clone(&published_at)),
            seq: meta.seq,
            head: false,
        })
        .collect()
}

impl Receipts {
    pub(super) fn insert(&mut self, receipt: Receipt) {
        let key = (receipt.queue.clone(), receipt.id.clone());
        if self.by_key.insert(key.clone(), receipt).is_none() {
            self.order.push_back(key);
        }
    }
}
