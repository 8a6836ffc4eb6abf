//! [`EmbeddedStore`]: the default engine, a single redb file in the data directory.
//!
//! Each [`Store::commit`] is one redb write transaction with immediate durability: when it
//! returns, the batch is on disk (one fsync per batch; the broker's writer puts many publishes
//! into one batch, which is what makes durability cheap). Values are JSON text so that the file
//! can be inspected and migrated easily; payloads live in their own table so that start-up
//! reads only the small message metadata.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{MessageMeta, Op, Receipt, Snapshot, Store, StoreError};

const META: TableDefinition<u64, &str> = TableDefinition::new("message_meta");
const PAYLOADS: TableDefinition<u64, &str> = TableDefinition::new("message_payload");
const SUBSCRIPTIONS: TableDefinition<(&str, &str), &str> = TableDefinition::new("subscriptions");
const INBOX: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("inbox");
const ATTEMPTS: TableDefinition<(&str, &str, u64), u32> = TableDefinition::new("inbox_attempts");
const WAITING: TableDefinition<(&str, u64), ()> = TableDefinition::new("waiting");
const RECEIPTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("receipts");
const COUNTERS: TableDefinition<&str, &str> = TableDefinition::new("counters");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "queuehub.redb";

/// A [`Store`] in one redb file.
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        // Create every table up front so that reads never meet a missing table.
        let txn = db.begin_write().map_err(StoreError::from_engine)?;
        open_all(&txn)?;
        txn.commit().map_err(StoreError::from_engine)?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking engine work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(StoreError::from_engine)?
    }
}

fn open_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    let e = StoreError::from_engine;
    txn.open_table(META).map_err(e)?;
    txn.open_table(PAYLOADS).map_err(e)?;
    txn.open_table(SUBSCRIPTIONS).map_err(e)?;
    txn.open_table(INBOX).map_err(e)?;
    txn.open_table(ATTEMPTS).map_err(e)?;
    txn.open_table(WAITING).map_err(e)?;
    txn.open_table(RECEIPTS).map_err(e)?;
    txn.open_table(COUNTERS).map_err(e)?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::from_engine)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError(format!("corrupt record: {e}")))
}

fn apply_all(txn: &WriteTransaction, ops: Vec<Op>) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    let mut payloads = txn.open_table(PAYLOADS)?;
    let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
    let mut inbox = txn.open_table(INBOX)?;
    let mut attempts = txn.open_table(ATTEMPTS)?;
    let mut waiting = txn.open_table(WAITING)?;
    let mut receipts = txn.open_table(RECEIPTS)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let json = |r: Result<String, StoreError>| r.map_err(|e| redb::Error::Corrupted(e.0));
    for op in ops {
        match op {
            Op::PutMessage(message) => {
                let seq = message.meta.seq;
                meta.insert(seq, json(to_json(&message.meta))?.as_str())?;
                payloads.insert(seq, message.payload.as_str())?;
            }
            Op::DeleteMessage(seq) => {
                meta.remove(seq)?;
                payloads.remove(seq)?;
            }
            Op::PutSubscription {
                client,
                queue,
                record,
            } => {
                let key = (client.as_str(), queue.as_str());
                subscriptions.insert(key, json(to_json(&record))?.as_str())?;
            }
            Op::DeleteSubscription { client, queue } => {
                subscriptions.remove((client.as_str(), queue.as_str()))?;
            }
            Op::AddToInbox { client, queue, seq } => {
                inbox.insert((client.as_str(), queue.as_str(), seq), ())?;
            }
            Op::RemoveFromInbox { client, queue, seq } => {
                let key = (client.as_str(), queue.as_str(), seq);
                attempts.remove(key)?;
                inbox.remove(key)?;
            }
            Op::SetAttempts {
                client,
                queue,
                seq,
                attempts: n,
            } => {
                attempts.insert((client.as_str(), queue.as_str(), seq), n)?;
            }
            Op::AddWaiting { queue, seq } => {
                waiting.insert((queue.as_str(), seq), ())?;
            }
            Op::RemoveWaiting { queue, seq } => {
                waiting.remove((queue.as_str(), seq))?;
            }
            Op::PutReceipt(receipt) => {
                let key = (receipt.queue.as_str(), receipt.id.as_str());
                receipts.insert(key, json(to_json(&receipt))?.as_str())?;
            }
            Op::DeleteReceipt { queue, id } => {
                receipts.remove((queue.as_str(), id.as_str()))?;
            }
            Op::PutCounters { queue, counters: c } => {
                counters.insert(queue.as_str(), json(to_json(&c))?.as_str())?;
            }
        }
    }
    Ok(())
}

fn parse_name<T: TryFrom<String>>(raw: &str) -> Result<T, StoreError> {
    T::try_from(raw.to_owned()).map_err(|_| StoreError(format!("corrupt name {raw:?} in store")))
}

fn read_snapshot(db: &Database) -> Result<Snapshot, redb::Error> {
    let corrupt = |e: StoreError| redb::Error::Corrupted(e.0);
    let txn = db.begin_read()?;
    let mut snapshot = Snapshot::default();
    for row in txn.open_table(META)?.iter()? {
        let (_, value) = row?;
        let meta: MessageMeta = from_json(value.value()).map_err(corrupt)?;
        snapshot.messages.push(meta);
    }
    for row in txn.open_table(SUBSCRIPTIONS)?.iter()? {
        let (key, value) = row?;
        let (client, queue) = key.value();
        snapshot.subscriptions.push((
            parse_name(client).map_err(corrupt)?,
            parse_name(queue).map_err(corrupt)?,
            from_json(value.value()).map_err(corrupt)?,
        ));
    }
    for row in txn.open_table(INBOX)?.iter()? {
        let (key, _) = row?;
        let (client, queue, seq) = key.value();
        snapshot.inbox.push((
            parse_name(client).map_err(corrupt)?,
            parse_name(queue).map_err(corrupt)?,
            seq,
        ));
    }
    for row in txn.open_table(ATTEMPTS)?.iter()? {
        let (key, value) = row?;
        let (client, queue, seq) = key.value();
        snapshot.attempts.push((
            parse_name(client).map_err(corrupt)?,
            parse_name(queue).map_err(corrupt)?,
            seq,
            value.value(),
        ));
    }
    for row in txn.open_table(WAITING)?.iter()? {
        let (key, _) = row?;
        let (queue, seq) = key.value();
        snapshot
            .waiting
            .push((parse_name(queue).map_err(corrupt)?, seq));
    }
    for row in txn.open_table(RECEIPTS)?.iter()? {
        let (_, value) = row?;
        let receipt: Receipt = from_json(value.value()).map_err(corrupt)?;
        snapshot.receipts.push(receipt);
    }
    for row in txn.open_table(COUNTERS)?.iter()? {
        let (key, value) = row?;
        snapshot.counters.push((
            parse_name(key.value()).map_err(corrupt)?,
            from_json(value.value()).map_err(corrupt)?,
        ));
    }
    Ok(snapshot)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(StoreError::from_engine)?;
            // On error the transaction is dropped, which aborts it: nothing is half-applied.
            apply_all(&txn, ops).map_err(StoreError::from_engine)?;
            txn.commit().map_err(StoreError::from_engine)
        })
        .await
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.blocking(|db| read_snapshot(db).map_err(StoreError::from_engine))
            .await
    }

    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError> {
        self.blocking(move |db| {
            let read = || -> Result<Vec<Option<String>>, redb::Error> {
                let txn = db.begin_read()?;
                let table = txn.open_table(PAYLOADS)?;
                let mut out = Vec::with_capacity(seqs.len());
                for seq in seqs {
                    out.push(table.get(seq)?.map(|v| v.value().to_owned()));
                }
                Ok(out)
            };
            read().map_err(StoreError::from_engine)
        })
        .await
    }

    fn engine(&self) -> &'static str {
        "embedded"
    }
}
