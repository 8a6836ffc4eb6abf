//! [`MemoryStore`]: the `--memory` engine. Everything lives in ordered maps behind one lock and
//! is gone when the process ends. It honours the same contract as the embedded engine (the
//! conformance suite runs against both), so the broker cannot tell them apart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Counters, Op, Receipt, Snapshot, Store, StoreError, StoredMessage, SubscriptionRecord,
};
use crate::names::{ClientId, MessageId, QueueName};

/// An in-memory [`Store`]; nothing survives a restart.
#[derive(Default)]
pub struct MemoryStore {
    // std Mutex: every critical section is a short, synchronous map update; never held
    // across an `.await`.
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    messages: BTreeMap<u64, StoredMessage>,
    subscriptions: BTreeMap<(ClientId, QueueName), SubscriptionRecord>,
    inbox: BTreeSet<(ClientId, QueueName, u64)>,
    attempts: BTreeMap<(ClientId, QueueName, u64), u32>,
    waiting: BTreeSet<(QueueName, u64)>,
    receipts: BTreeMap<(QueueName, MessageId), Receipt>,
    counters: BTreeMap<QueueName, Counters>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Tables {
    fn apply(&mut self, op: Op) {
        match op {
            Op::PutMessage(message) => {
                self.messages.insert(message.meta.seq, message);
            }
            Op::DeleteMessage(seq) => {
                self.messages.remove(&seq);
            }
            Op::PutSubscription {
                client,
                queue,
                record,
            } => {
                self.subscriptions.insert((client, queue), record);
            }
            Op::DeleteSubscription { client, queue } => {
                self.subscriptions.remove(&(client, queue));
            }
            Op::AddToInbox { client, queue, seq } => {
                self.inbox.insert((client, queue, seq));
            }
            Op::RemoveFromInbox { client, queue, seq } => {
                let key = (client, queue, seq);
                self.attempts.remove(&key);
                self.inbox.remove(&key);
            }
            Op::SetAttempts {
                client,
                queue,
                seq,
                attempts,
            } => {
                self.attempts.insert((client, queue, seq), attempts);
            }
            Op::AddWaiting { queue, seq } => {
                self.waiting.insert((queue, seq));
            }
            Op::RemoveWaiting { queue, seq } => {
                self.waiting.remove(&(queue, seq));
            }
            Op::PutReceipt(receipt) => {
                self.receipts
                    .insert((receipt.queue.clone(), receipt.id.clone()), receipt);
            }
            Op::DeleteReceipt { queue, id } => {
                self.receipts.remove(&(queue, id));
            }
            Op::PutCounters { queue, counters } => {
                self.counters.insert(queue, counters);
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut tables = self.tables.lock().map_err(StoreError::from_engine)?;
        for op in ops {
            tables.apply(op);
        }
        Ok(())
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let tables = self.tables.lock().map_err(StoreError::from_engine)?;
        Ok(Snapshot {
            messages: tables.messages.values().map(|m| m.meta.clone()).collect(),
            subscriptions: tables
                .subscriptions
                .iter()
                .map(|((c, q), r)| (c.clone(), q.clone(), r.clone()))
                .collect(),
            inbox: tables.inbox.iter().cloned().collect(),
            attempts: tables
                .attempts
                .iter()
                .map(|((c, q, s), a)| (c.clone(), q.clone(), *s, *a))
                .collect(),
            waiting: tables.waiting.iter().cloned().collect(),
            receipts: tables.receipts.values().cloned().collect(),
            counters: tables
                .counters
                .iter()
                .map(|(q, c)| (q.clone(), *c))
                .collect(),
        })
    }

    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError> {
        let tables = self.tables.lock().map_err(StoreError::from_engine)?;
        Ok(seqs
            .iter()
            .map(|seq| tables.messages.get(seq).map(|m| m.payload.clone()))
            .collect())
    }

    fn engine(&self) -> &'static str {
        "memory"
    }

    /// Nothing survives the process, so nothing needs keeping: answers need not wait.
    fn note_ahead(&self, _batch: u64, _removals: &[super::Removal]) -> Result<bool, StoreError> {
        Ok(true)
    }
}
