//! Durable storage behind one trait, [`Store`], with three engines: [`embedded::EmbeddedStore`]
//! (redb, the default), [`redis::RedisStore`] (`--redis`, one node's store in Redis) and
//! [`memory::MemoryStore`] (`--memory`, nothing on disk).
//!
//! The store is the source of truth; the broker keeps in-memory indexes that it rebuilds from
//! [`Store::load`] at start and after a failed commit. The store knows nothing of queue
//! semantics: it applies batches of [`Op`]s atomically and reads payloads back by sequence
//! number. No storage-engine type appears in this module's signatures: the Redis engine
//! implements the same trait (MULTI/EXEC for [`Store::commit`]).
//!
//! Layout (the same in every engine, as [`Op`]s and [`Snapshot`] see it):
//! - messages: `seq → {meta, payload}`: each payload is stored exactly once;
//! - inbox entries: `(clientId, queue, seq)`: one per subscriber that has not acked (the
//!   embedded engine keeps them a row per 1024 sequence numbers of an inbox, so that its
//!   writes per commit grow with the inboxes touched, not with subscribers × messages);
//! - waiting entries: `(queue, seq)`: messages published while the queue had no subscriber;
//! - subscriptions: `(clientId, queue) → options`;
//! - dedupe receipts: `(queue, id) → receipt`, for idempotent publish;
//! - counters: `queue → published/acked/expired`.

pub mod embedded;
pub mod memory;
pub mod redis;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::names::{ClientId, EventName, MessageId, QueueName, stored};

/// The engine failed. The batch that failed was not applied at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk, a quota or a file-size limit is full. Nothing was written; writes work again
    /// once space returns.
    #[error("storage full: {0}")]
    Full(String),
    /// Any other engine failure.
    #[error("store error: {0}")]
    Failed(String),
}

impl StoreError {
    /// Wraps any engine error as [`StoreError::Failed`].
    pub fn from_engine(err: impl std::fmt::Display) -> Self {
        Self::Failed(err.to_string())
    }

    /// Whether the failure was a full disk (or quota, or file-size limit).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

/// Everything about a message except its payload; small enough to keep in memory for all
/// stored messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Position in the global publish order; never reused while the message exists.
    pub seq: u64,
    #[serde(deserialize_with = "stored::name")]
    pub id: MessageId,
    #[serde(deserialize_with = "stored::name")]
    pub queue: QueueName,
    #[serde(deserialize_with = "stored::name")]
    pub event: EventName,
    /// Milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// `http`, or the publishing socket's client id (shared with every envelope of the message).
    pub source: Arc<str>,
    /// Not deliverable before this time (ms since the epoch); `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<u64>,
    /// Leaves every inbox at this time (ms since the epoch); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// What a job put through the beanstalk door carries besides its body (priority, TTR,
    /// buried); `None` for other messages, which take the defaults of [`JobMeta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMeta>,
}

/// A work-mode message's place in line and its lease, as beanstalkd's jobs have them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMeta {
    /// Lower goes first among a subscription's deliverable messages; ties in publish order.
    pub priority: u32,
    /// How long a worker holds it before it goes to another (the message's own ack
    /// timeout); `None`: the subscription's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttr_ms: Option<u64>,
    /// Set aside by a worker (beanstalkd's bury): never delivered until kicked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub buried: bool,
    /// The delay it was last put or released with, kept after it came due or was kicked
    /// (beanstalk's `stats-job` shows it); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl JobMeta {
    /// The priority of a message published without one (beanstalkd's clients mostly use
    /// 1024 too: DECISIONS 59).
    pub const DEFAULT_PRIORITY: u32 = 1024;
}

/// A message as stored: its meta and its payload as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub meta: MessageMeta,
    pub payload: String,
}

/// A subscription's options as stored; the broker gives them meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRecord {
    /// Only these events enter the inbox; `None` means every event.
    #[serde(default, deserialize_with = "stored::list")]
    pub events: Option<Vec<EventName>>,
    /// Broadcast (every socket gets every message) or work (one worker socket each).
    #[serde(default)]
    pub mode: Mode,
    /// Work mode: an unacked message goes to another worker after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout_ms: Option<u64>,
    /// Work mode: after this many deliveries an unacked message moves to `<queue>.dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliveries: Option<u32>,
    /// Broadcast mode: one message at a time, the next only after the previous is acked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
}

/// How a client's sockets share its inbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every socket of the client receives every message.
    #[default]
    Broadcast,
    /// Each message goes to one of the client's worker sockets.
    Work,
}

/// The answer to a publish, kept so that a repeated publish of the same id returns it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(deserialize_with = "stored::name")]
    pub id: MessageId,
    #[serde(deserialize_with = "stored::name")]
    pub queue: QueueName,
    #[serde(deserialize_with = "stored::name")]
    pub event: EventName,
    pub published_at_ms: u64,
    pub recipients: usize,
    /// For a delayed message: when it becomes deliverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<u64>,
}

/// Lifetime counters of a queue, shown in stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub published: u64,
    pub acked: u64,
    /// Inbox entries (and waiting messages) removed because their TTL ran out.
    #[serde(default)]
    pub expired: u64,
    /// Publishes refused by a limit (payload size, inbox length).
    #[serde(default)]
    pub rejected: u64,
    /// Messages moved to `<queue>.dead` after too many deliveries.
    #[serde(default)]
    pub dead_lettered: u64,
}

/// One change to the store. A batch of ops is applied atomically by [`Store::commit`].
/// Removing something that is not there is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    PutMessage(StoredMessage),
    DeleteMessage(u64),
    PutSubscription {
        client: ClientId,
        queue: QueueName,
        record: SubscriptionRecord,
    },
    DeleteSubscription {
        client: ClientId,
        queue: QueueName,
    },
    AddToInbox {
        client: ClientId,
        queue: QueueName,
        seq: u64,
    },
    /// Also forgets the entry's attempt count.
    RemoveFromInbox {
        client: ClientId,
        queue: QueueName,
        seq: u64,
    },
    /// How often an inbox entry has been delivered (work mode keeps it across restarts).
    SetAttempts {
        client: ClientId,
        queue: QueueName,
        seq: u64,
        attempts: u32,
    },
    AddWaiting {
        queue: QueueName,
        seq: u64,
    },
    RemoveWaiting {
        queue: QueueName,
        seq: u64,
    },
    PutReceipt(Receipt),
    DeleteReceipt {
        queue: QueueName,
        id: MessageId,
    },
    PutCounters {
        queue: QueueName,
        counters: Counters,
    },
}

/// An inbox entry removed by a change that was answered before its commit (a beanstalk
/// `delete`, DECISIONS 64), as [`Store::note_ahead`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    #[serde(deserialize_with = "stored::name")]
    pub client: ClientId,
    #[serde(deserialize_with = "stored::name")]
    pub queue: QueueName,
    pub seq: u64,
    /// No inbox holds the message any more: it is deleted too.
    pub message_gone: bool,
}

impl Removal {
    /// The store ops that apply it.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::RemoveFromInbox {
            client: self.client.clone(),
            queue: self.queue.clone(),
            seq: self.seq,
        }];
        if self.message_gone {
            ops.push(Op::DeleteMessage(self.seq));
        }
        ops
    }
}

/// Everything but payloads, read at start to rebuild the broker's indexes. Lists are in key
/// order: messages and entries by `seq` within their owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub messages: Vec<MessageMeta>,
    pub subscriptions: Vec<(ClientId, QueueName, SubscriptionRecord)>,
    pub inbox: Vec<(ClientId, QueueName, u64)>,
    /// Attempt counts of inbox entries that have one.
    pub attempts: Vec<(ClientId, QueueName, u64, u32)>,
    pub waiting: Vec<(QueueName, u64)>,
    pub receipts: Vec<Receipt>,
    pub counters: Vec<(QueueName, Counters)>,
}

impl Snapshot {
    /// Puts every list in key order (messages by `seq`, entries by owner then `seq`), the
    /// order [`Store::load`] promises, for an engine whose reads come in another order.
    pub fn sort(&mut self) {
        self.messages.sort_by_key(|m| m.seq);
        self.subscriptions
            .sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        self.inbox.sort();
        self.attempts.sort();
        self.waiting.sort();
        self.receipts
            .sort_by(|a, b| (&a.queue, &a.id).cmp(&(&b.queue, &b.id)));
        self.counters.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// A durable store of messages, inboxes and subscriptions.
///
/// Contract, checked by the conformance suite for every engine:
/// - [`commit`](Store::commit) applies a whole batch or nothing, and when it returns `Ok` the
///   batch survives a crash (for engines that are durable at all);
/// - [`load`](Store::load) returns exactly what committed batches left;
/// - [`payloads`](Store::payloads) returns `None` for a sequence number that is not stored.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `ops` atomically.
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError>;

    /// Reads everything but payloads.
    async fn load(&self) -> Result<Snapshot, StoreError>;

    /// Reads the payloads of `seqs`, in the same order.
    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError>;

    /// A short name for logs: `embedded`, `redis` or `memory`.
    fn engine(&self) -> &'static str;

    /// Keeps `removals`, which commit batch `batch` carries, where a crash of this process
    /// cannot lose them before that commit is on disk: written to the kernel now (no
    /// fsync), applied when the store is opened again. This is what lets an answer be given
    /// before its commit and still hold after a kill -9, as beanstalkd's binlog does
    /// (DECISIONS 64). Returns whether the answer may be given now; `false` (the default:
    /// an engine with no such place) means that it must wait for the commit.
    fn note_ahead(&self, _batch: u64, _removals: &[Removal]) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Every batch up to `batch` is committed: what was noted ahead for them may go.
    fn committed_through(&self, _batch: u64) {}
}
