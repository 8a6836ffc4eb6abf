//! [`RedisStore`]: the `--redis redis://HOST:PORT[/DB]` engine, every table in one Redis (7 or
//! later, or Valkey). This is the first step of scale-out (issue 13): **one active** queuehub
//! node per Redis database, others standing by ([`lease`]) and relaying their clients to it
//! (`crate::relay`). Several nodes sharing the work on one Redis need more than a store (their
//! in-memory indexes would drift apart) and are not supported yet; the lease makes sure they
//! cannot both write.
//!
//! # Key layout
//!
//! Everything lives under the prefix `qh:`. Values are JSON text, as in the embedded engine, so
//! that `redis-cli` shows readable records.
//!
//! | key                    | type       | holds                                              |
//! |------------------------|------------|----------------------------------------------------|
//! | `qh:m:<seq>`           | hash       | `meta` (JSON) and `payload`: each message once     |
//! | `qh:seqs`              | sorted set | every stored `seq` (score = seq), to list messages |
//! | `qh:queues`            | set        | every queue name that owns any key below           |
//! | `qh:{Q}:subs`          | hash       | client id → subscription record (JSON)             |
//! | `qh:{Q}:inbox`         | set        | `["client",seq]`: one member per inbox entry       |
//! | `qh:{Q}:attempts`      | hash       | `["client",seq]` → delivery count                  |
//! | `qh:{Q}:waiting`       | sorted set | seqs published while `Q` had no subscriber         |
//! | `qh:{Q}:receipts`      | hash       | message id → receipt (JSON)                        |
//! | `qh:{Q}:counters`      | string     | the queue's counters (JSON)                        |
//!
//! `{Q}` is the queue name inside braces: a Redis Cluster hash tag, so that one queue's keys could
//! live on one shard. On a Redis Cluster (`--redis-cluster`) every key starts with `{qh}:`
//! instead of `qh:` ([`connection::Keys`]), so that all of them share one slot: a commit is one
//! script over several queues' keys (DECISIONS 68). Messages are keyed by `seq` alone because
//! [`Op::DeleteMessage`] names only the seq. Names are never parsed back out of keys (a name may
//! hold `:` or `}`); `load` reads them from `qh:queues` and from the JSON members. `qh:queues`
//! only grows: a queue name stays listed after its last key is gone (its reads are then empty).
//!
//! # Atomicity and durability
//!
//! [`Store::commit`] sends the whole batch as one script ([`lease::FENCED_COMMIT`]) that first
//! checks that this node still holds the database's lease (see [`lease`]: one active node per
//! database) and then runs the batch's writes. Every op is a blind write (no reads); Redis runs
//! the script without interleaving other clients' commands and writes it to the append-only
//! file as one unit, which a crash either keeps whole or truncates. How durable an answered commit is depends on Redis's settings:
//! with `appendonly yes` and `appendfsync always` it survives a kill -9 of Redis; with
//! `everysec` up to about a second of commits can be lost; with no persistence at all
//! everything is lost on a restart, and [`RedisStore::connect`] logs a warning.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Arg, Pipeline, Value};

pub mod connection;
pub mod lease;
use connection::{Connection, Keys, Target};
use lease::Lease;

use super::{Counters, MessageMeta, Op, Receipt, Snapshot, Store, StoreError, SubscriptionRecord};
use crate::names::{ClientId, QueueName, StoredName};

/// How often `load` starts over when a commit changed the lists of messages or queues while it
/// read them.
const LOAD_ATTEMPTS: usize = 5;

/// A [`Store`] in one Redis database.
///
/// Holds a [`Connection`]: one multiplexed connection (or one per cluster node) that reconnects
/// by itself after Redis restarts. While Redis is unreachable every call fails with [`StoreError::Failed`];
/// a batch that failed was not applied (or, if the connection dropped after `EXEC` was sent,
/// possibly applied: the broker reloads from the store after any failed commit).
pub struct RedisStore {
    connection: Connection,
    keys: Keys,
    lease: Lease,
    commit: redis::Script,
}

/// What Redis keeps across its own restart, from `CONFIG GET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly yes`: every write goes to the append-only file.
    pub append_only: bool,
    /// `always`, `everysec` or `no`.
    pub append_fsync: String,
    /// RDB snapshot points (`3600 1 300 100`); empty: no snapshots.
    pub save: String,
}

impl Persistence {
    /// Whether anything at all survives a restart of Redis.
    pub fn survives_restart(&self) -> bool {
        self.append_only || !self.save.trim().is_empty()
    }

    /// What a crash of Redis can lose of what queuehub answered, in words for the start-up
    /// log; `None` with `appendonly yes` and `appendfsync always` (nothing).
    pub fn risk(&self) -> Option<String> {
        if !self.survives_restart() {
            return Some(
                "Redis has no persistence (appendonly no, no save points): every message is \
                 lost when Redis restarts; set `appendonly yes` and `appendfsync always`"
                    .into(),
            );
        }
        if !self.append_only {
            return Some(format!(
                "Redis only takes snapshots (save {}): a crash of Redis loses what was \
                 answered since the last one; set `appendonly yes` and `appendfsync always`",
                self.save
            ));
        }
        match self.append_fsync.as_str() {
            "always" => None,
            "everysec" => Some(
                "Redis fsyncs its append-only file every second: a crash of its machine can \
                 lose the last second of answered publishes; `appendfsync always` keeps all"
                    .into(),
            ),
            other => Some(format!(
                "Redis leaves fsyncing its append-only file to the system (appendfsync \
                 {other}): a crash of its machine can lose answered publishes; \
                 `appendfsync always` keeps all"
            )),
        }
    }
}

/// Checks that `url` is a Redis address queuehub can use (`redis://HOST:PORT[/DB]`; not
/// `rediss://`: this build has no TLS).
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(drop)
        .map_err(|err| err.to_string())
}

impl RedisStore {
    /// Connects to the Redis at `url`, checks that it answers, and takes the database's lease
    /// (its time to live `lease_ttl`, renewed in the background), waiting while another node holds it. Logs a
    /// warning if a crash of that Redis can lose answered commits (see [`Persistence::risk`]).
    pub async fn connect(url: &str, lease_ttl: Duration) -> Result<Self, StoreError> {
        let active = tokio::sync::watch::channel(None).0;
        let refusing = tokio::sync::watch::channel(None).1;
        Self::connect_standing_by(Target::Server(url), lease_ttl, &active, &refusing).await
    }

    /// [`RedisStore::connect`] to `target` (one server or a cluster), telling `active`
    /// meanwhile what the node that holds the lease advertised ([`Lease::advertise`]), for as
    /// long as this node waits; `refusing` names an advert whose address refuses connections
    /// (see [`Lease::acquire`]).
    pub async fn connect_standing_by(
        target: Target<'_>,
        lease_ttl: Duration,
        active: &tokio::sync::watch::Sender<Option<String>>,
        refusing: &tokio::sync::watch::Receiver<Option<String>>,
    ) -> Result<Self, StoreError> {
        let (connection, keys) = Connection::open(target).await.map_err(engine_error)?;
        match persistence(&connection).await {
            Ok(persistence) => match persistence.risk() {
                Some(risk) => tracing::warn!("{risk}"),
                None => tracing::info!("Redis fsyncs every write (appendfsync always)"),
            },
            Err(err) => tracing::warn!(error = %err, "cannot read Redis's persistence settings"),
        }
        let lease = Lease::acquire(connection.clone(), keys, lease_ttl, active, refusing).await;
        Ok(Self {
            connection,
            keys,
            lease,
            commit: redis::Script::new(lease::FENCED_COMMIT),
        })
    }

    /// This node's hold on the database: [`Lease::lost`] tells when it must stop,
    /// [`Lease::release`] hands the database to a standby at once.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Redis's persistence settings.
    pub async fn persistence(&self) -> Result<Persistence, StoreError> {
        persistence(&self.connection).await
    }
}

/// The persistence settings of the Redis behind `connection`.
async fn persistence(connection: &Connection) -> Result<Persistence, StoreError> {
    let mut connection = connection.clone();
    let settings: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .arg("appendfsync")
        .arg("save")
        .query_async(&mut connection)
        .await
        .map_err(engine_error)?;
    let get = |key: &str| settings.get(key).cloned().unwrap_or_default();
    Ok(Persistence {
        append_only: get("appendonly") == "yes",
        append_fsync: get("appendfsync"),
        save: get("save"),
    })
}

/// The member naming an inbox entry inside its queue's keys: `["client",seq]`.
fn entry(client: &ClientId, seq: u64) -> String {
    serde_json::json!([client.as_str(), seq]).to_string()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store records serialize to JSON")
}

/// Redis refuses writes with `OOM` when `maxmemory` is reached: the store is full.
fn engine_error(err: redis::RedisError) -> StoreError {
    match err.code() {
        Some("OOM") => StoreError::Full(err.to_string()),
        _ => StoreError::from_engine(err),
    }
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("unreadable {what} in Redis: {err}"))
}

/// Lists `queue` in `qh:queues`, so that `load` reads its keys.
fn touch(keys: Keys, pipe: &mut Pipeline, queue: &QueueName) {
    pipe.sadd(keys.queues(), queue.as_str()).ignore();
}

/// Adds the commands of `op` to the transaction.
fn add_op(keys: Keys, pipe: &mut Pipeline, op: &Op) {
    match op {
        Op::PutMessage(message) => {
            let seq = message.meta.seq;
            pipe.hset_multiple(
                keys.message(seq),
                &[
                    ("meta", json(&message.meta)),
                    ("payload", message.payload.clone()),
                ],
            )
            .ignore();
            pipe.zadd(keys.seqs(), seq, seq as f64).ignore();
        }
        Op::DeleteMessage(seq) => {
            pipe.del(keys.message(*seq)).ignore();
            pipe.zrem(keys.seqs(), seq).ignore();
        }
        Op::PutSubscription {
            client,
            queue,
            record,
        } => {
            touch(keys, pipe, queue);
            pipe.hset(
                keys.queue(queue.as_str(), "subs"),
                client.as_str(),
                json(record),
            )
            .ignore();
        }
        Op::DeleteSubscription { client, queue } => {
            pipe.hdel(keys.queue(queue.as_str(), "subs"), client.as_str())
                .ignore();
        }
        Op::AddToInbox { client, queue, seq } => {
            touch(keys, pipe, queue);
            pipe.sadd(keys.queue(queue.as_str(), "inbox"), entry(client, *seq))
                .ignore();
        }
        Op::RemoveFromInbox { client, queue, seq } => {
            pipe.srem(keys.queue(queue.as_str(), "inbox"), entry(client, *seq))
                .ignore();
            pipe.hdel(keys.queue(queue.as_str(), "attempts"), entry(client, *seq))
                .ignore();
        }
        Op::SetAttempts {
            client,
            queue,
            seq,
            attempts,
        } => {
            touch(keys, pipe, queue);
            pipe.hset(
                keys.queue(queue.as_str(), "attempts"),
                entry(client, *seq),
                attempts,
            )
            .ignore();
        }
        Op::AddWaiting { queue, seq } => {
            touch(keys, pipe, queue);
            pipe.zadd(keys.queue(queue.as_str(), "waiting"), seq, *seq as f64)
                .ignore();
        }
        Op::RemoveWaiting { queue, seq } => {
            pipe.zrem(keys.queue(queue.as_str(), "waiting"), seq)
                .ignore();
        }
        Op::PutReceipt(receipt) => {
            touch(keys, pipe, &receipt.queue);
            pipe.hset(
                keys.queue(receipt.queue.as_str(), "receipts"),
                receipt.id.as_str(),
                json(receipt),
            )
            .ignore();
        }
        Op::DeleteReceipt { queue, id } => {
            pipe.hdel(keys.queue(queue.as_str(), "receipts"), id.as_str())
                .ignore();
        }
        Op::PutCounters { queue, counters } => {
            touch(keys, pipe, queue);
            pipe.set(keys.queue(queue.as_str(), "counters"), json(counters))
                .ignore();
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for op in &ops {
            add_op(self.keys, &mut pipe, op);
        }
        // The pipeline's commands become the fenced script's arguments: `count, command, arg…`.
        let mut commit = self.commit.key(self.keys.lease());
        commit.arg(self.lease.holder());
        for cmd in pipe.cmd_iter() {
            commit.arg(cmd.args_iter().len());
            for arg in cmd.args_iter() {
                if let Arg::Simple(bytes) = arg {
                    commit.arg(bytes);
                }
            }
        }
        let mut connection = self.connection.clone();
        commit
            .invoke_async::<()>(&mut connection)
            .await
            .map_err(engine_error)
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut connection = self.connection.clone();
        for _ in 0..LOAD_ATTEMPTS {
            // First the lists of messages and queues, then, in one transaction, every record
            // they name and the lists again: if a commit changed them in between, start over.
            let (seqs, queues) = lists(&mut connection, self.keys).await?;
            let mut pipe = redis::pipe();
            pipe.atomic()
                .zrange(self.keys.seqs(), 0, -1)
                .smembers(self.keys.queues());
            for seq in &seqs {
                pipe.hget(self.keys.message(*seq), "meta");
            }
            for queue in &queues {
                for table in ["subs", "attempts", "receipts"] {
                    pipe.hgetall(self.keys.queue(queue, table));
                }
                pipe.smembers(self.keys.queue(queue.as_str(), "inbox"))
                    .zrange(self.keys.queue(queue.as_str(), "waiting"), 0, -1)
                    .get(self.keys.queue(queue.as_str(), "counters"));
            }
            let replies: Vec<Value> = pipe
                .query_async(&mut connection)
                .await
                .map_err(engine_error)?;
            let mut replies = Replies(replies.into_iter());
            if replies.next::<Vec<u64>>()? != seqs
                || sorted_set(replies.next::<Vec<String>>()?) != queues
            {
                continue;
            }
            return read_snapshot(&mut replies, &seqs, &queues);
        }
        Err(StoreError::Failed(
            "the store kept changing while it was being loaded".into(),
        ))
    }

    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for seq in &seqs {
            pipe.hget(self.keys.message(*seq), "payload");
        }
        let mut connection = self.connection.clone();
        pipe.query_async(&mut connection)
            .await
            .map_err(engine_error)
    }

    fn engine(&self) -> &'static str {
        "redis"
    }
}

/// Every stored seq (ascending) and every queue name (sorted).
async fn lists(
    connection: &mut Connection,
    keys: Keys,
) -> Result<(Vec<u64>, Vec<String>), StoreError> {
    let (seqs, queues): (Vec<u64>, Vec<String>) = redis::pipe()
        .atomic()
        .zrange(keys.seqs(), 0, -1)
        .smembers(keys.queues())
        .query_async(connection)
        .await
        .map_err(engine_error)?;
    Ok((seqs, sorted_set(queues)))
}

fn sorted_set(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// The replies of `load`'s transaction, taken one by one in the order they were asked for.
struct Replies(std::vec::IntoIter<Value>);

impl Replies {
    fn next<T: redis::FromRedisValue>(&mut self) -> Result<T, StoreError> {
        let value = self
            .0
            .next()
            .ok_or_else(|| StoreError::Failed("Redis sent too few replies".into()))?;
        redis::from_redis_value(value).map_err(StoreError::from_engine)
    }
}

/// Builds the snapshot from `load`'s replies, in the order of the store's key order (as the
/// embedded engine lists them).
fn read_snapshot(
    replies: &mut Replies,
    seqs: &[u64],
    queues: &[String],
) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot::default();
    for _ in seqs {
        // A message deleted after the lists were read cannot be here: the lists were equal.
        if let Some(meta) = replies.next::<Option<String>>()? {
            let meta: MessageMeta =
                serde_json::from_str(&meta).map_err(|e| corrupt("message", e))?;
            snapshot.messages.push(meta);
        }
    }
    for raw in queues {
        let queue = QueueName::from_stored(raw.clone()).map_err(|e| corrupt("queue name", e))?;
        let subs: HashMap<String, String> = replies.next()?;
        let attempts: HashMap<String, u32> = replies.next()?;
        let receipts: HashMap<String, String> = replies.next()?;
        let inbox: Vec<String> = replies.next()?;
        let waiting: Vec<u64> = replies.next()?;
        let counters: Option<String> = replies.next()?;
        for (client, record) in subs {
            let client = ClientId::from_stored(client).map_err(|e| corrupt("client id", e))?;
            let record: SubscriptionRecord =
                serde_json::from_str(&record).map_err(|e| corrupt("subscription", e))?;
            snapshot.subscriptions.push((client, queue.clone(), record));
        }
        for (member, count) in attempts {
            let (client, seq) = parse_entry(&member)?;
            snapshot.attempts.push((client, queue.clone(), seq, count));
        }
        for receipt in receipts.values() {
            let receipt: Receipt =
                serde_json::from_str(receipt).map_err(|e| corrupt("receipt", e))?;
            snapshot.receipts.push(receipt);
        }
        for member in inbox {
            let (client, seq) = parse_entry(&member)?;
            snapshot.inbox.push((client, queue.clone(), seq));
        }
        snapshot
            .waiting
            .extend(waiting.into_iter().map(|seq| (queue.clone(), seq)));
        if let Some(counters) = counters {
            let counters: Counters =
                serde_json::from_str(&counters).map_err(|e| corrupt("counters", e))?;
            snapshot.counters.push((queue.clone(), counters));
        }
    }
    snapshot.sort();
    Ok(snapshot)
}

/// Reads an inbox member `["client",seq]` back.
fn parse_entry(member: &str) -> Result<(ClientId, u64), StoreError> {
    let (client, seq): (String, u64) =
        serde_json::from_str(member).map_err(|e| corrupt("inbox entry", e))?;
    let client = ClientId::from_stored(client).map_err(|e| corrupt("client id", e))?;
    Ok((client, seq))
}

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
