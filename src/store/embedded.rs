//! [`EmbeddedStore`]: the default engine, a single redb file in the data directory.
//!
//! Each [`Store::commit`] is one redb write transaction with immediate durability: when it
//! returns, the batch is on disk (one fsync per batch; the broker's writer puts many publishes
//! into one batch, which is what makes durability cheap). Values are JSON text so that the file
//! can be inspected and migrated easily; payloads live in their own table so that start-up
//! reads only the small message metadata.

mod ahead;
mod chunk;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::{MessageMeta, Op, Receipt, Removal, Snapshot, Store, StoreError};
use crate::hash::FastMap;
use crate::names::{ClientId, QueueName, StoredName};
use ahead::AheadLog;
use chunk::Chunk;

const META: TableDefinition<u64, &str> = TableDefinition::new("message_meta");
const PAYLOADS: TableDefinition<u64, &str> = TableDefinition::new("message_payload");
const SUBSCRIPTIONS: TableDefinition<(&str, &str), &str> = TableDefinition::new("subscriptions");
/// Inbox entries, a row per 1024 sequence numbers of an inbox: `(client, queue, seq / 1024)`
/// to the entries' offsets (see [`chunk`]).
const INBOX: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("inbox_chunks");
/// Inbox entries as files written before chunks kept them, a row per entry; moved into
/// [`INBOX`] when such a file is opened.
const LEGACY_INBOX: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("inbox");
const ATTEMPTS: TableDefinition<(&str, &str, u64), u32> = TableDefinition::new("inbox_attempts");
const WAITING: TableDefinition<(&str, u64), ()> = TableDefinition::new("waiting");
const RECEIPTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("receipts");
const COUNTERS: TableDefinition<&str, &str> = TableDefinition::new("counters");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "queuehub.redb";

/// The default most memory the engine's page cache may use. redb's own default (1 GiB) lets
/// the server grow by about the size of everything published until it reaches that; a
/// smaller cache keeps a classroom laptop's server small, and the operating system's file
/// cache still keeps hot pages in memory.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A [`Store`] in one redb file.
///
/// After an I/O error (a full disk, a file-size limit) redb refuses every later operation until
/// the database is closed and opened again. The store does that by itself: the failing call
/// reports the error ([`StoreError::Full`] for a full disk), and the next call reopens the file,
/// which rolls it back to the last committed transaction. If reopening fails too (the disk is
/// still full), that call fails and the next one tries again.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cache_bytes: usize,
    /// A std mutex: held only to hand out the handle or to reopen, never across an `.await`.
    db: Mutex<Handle>,
    /// Removals answered before their commit (see [`ahead`]).
    ahead: AheadLog,
}

/// The open database, or `None` while it must be reopened after an I/O error.
struct Handle {
    db: Option<Arc<Database>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory if needed, with the
    /// default page cache.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// Like [`EmbeddedStore::open`], with a page cache of at most `cache_bytes`: the most
    /// memory the engine keeps of the file, however large the store grows.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Failed(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = open_database(&path, cache_bytes)?;
        let ahead = apply_left_over(&db, data_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                cache_bytes,
                db: Mutex::new(Handle {
                    db: Some(Arc::new(db)),
                }),
                ahead,
            }),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking engine work off the async runtime, on the open database (reopening it
    /// first if an earlier I/O error closed it). An I/O error in `work` closes it.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let db = inner.database()?;
            work(&db).map_err(|err| inner.failed(&db, err))
        })
        .await
        .map_err(StoreError::from_engine)?
    }
}

impl Inner {
    fn handle(&self) -> MutexGuard<'_, Handle> {
        // A panic while holding the lock leaves the handle itself consistent.
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The open database; reopens the file if an I/O error closed it.
    fn database(&self) -> Result<Arc<Database>, StoreError> {
        let mut handle = self.handle();
        if let Some(db) = &handle.db {
            return Ok(Arc::clone(db));
        }
        // Every clone of the old handle has been dropped by now (each lives for one call, and
        // the call that failed dropped its own), so redb released its lock on the file. If one
        // is still alive, redb says the file is already open: this call fails, the next retries.
        let db = Arc::new(open_database(&self.path, self.cache_bytes)?);
        tracing::info!(path = %self.path.display(), "store reopened after an I/O error");
        handle.db = Some(Arc::clone(&db));
        Ok(db)
    }

    /// Classifies an error `db` returned; after an I/O error, drops the handle (unless another
    /// call already replaced it) so that the next call reopens the file: redb refuses all work
    /// after one until then.
    fn failed(&self, db: &Arc<Database>, err: redb::Error) -> StoreError {
        if matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo) {
            let mut handle = self.handle();
            if handle
                .db
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, db))
            {
                handle.db = None;
            }
        }
        classify(err)
    }
}

/// Opens (or creates) the database file and every table, so that reads never meet a missing
/// table.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    let db = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| classify(e.into()))?;
    let create_tables = || -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        open_all(&txn)?;
        migrate_legacy_inbox(&txn)?;
        txn.commit()?;
        Ok(())
    };
    create_tables().map_err(classify)?;
    Ok(db)
}

/// Commits what the last run noted ahead of commits it may not have made (see [`ahead`]),
/// then opens the notes' files afresh.
fn apply_left_over(db: &Database, data_dir: &Path) -> Result<AheadLog, StoreError> {
    let failed = |err: io::Error| StoreError::Failed(format!("notes ahead of commits: {err}"));
    let removals = ahead::left_over(data_dir).map_err(failed)?;
    if !removals.is_empty() {
        tracing::info!(
            removals = removals.len(),
            "applying what was answered before its commit when the last run ended"
        );
        let apply = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            apply_all(&txn, removals.iter().flat_map(Removal::ops).collect())?;
            txn.commit()?;
            Ok(())
        };
        apply().map_err(classify)?;
    }
    AheadLog::open(data_dir).map_err(failed)
}

/// [`StoreError::Full`] for a full disk, quota or file-size limit; [`StoreError::Failed`] for
/// anything else.
fn classify(err: redb::Error) -> StoreError {
    match &err {
        redb::Error::Io(io) if is_out_of_space(io) => StoreError::Full(err.to_string()),
        _ => StoreError::Failed(err.to_string()),
    }
}

fn is_out_of_space(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
    )
}

fn open_all(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(META)?;
    txn.open_table(PAYLOADS)?;
    txn.open_table(SUBSCRIPTIONS)?;
    txn.open_table(INBOX)?;
    txn.open_table(ATTEMPTS)?;
    txn.open_table(WAITING)?;
    txn.open_table(RECEIPTS)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

/// Moves the entries of a file written before inbox chunks into chunks, in the transaction
/// that opens the file (so a crash leaves either format whole), and deletes the old table.
fn migrate_legacy_inbox(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut inboxes = InboxWrites::default();
    {
        let legacy = match txn.open_table(LEGACY_INBOX) {
            Ok(table) => table,
            // Written by a build that kept another value type there: not ours to migrate.
            Err(redb::TableError::TableTypeMismatch { .. }) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        if legacy.is_empty()? {
            drop(legacy);
            txn.delete_table(LEGACY_INBOX)?;
            return Ok(());
        }
        let mut chunks = txn.open_table(INBOX)?;
        for row in legacy.iter()? {
            let (key, _) = row?;
            let (client, queue, seq) = key.value();
            inboxes.change(&chunks, parse_name(client)?, parse_name(queue)?, seq, true)?;
        }
        inboxes.write(&mut chunks)?;
    }
    txn.delete_table(LEGACY_INBOX)?;
    tracing::info!("inbox entries moved into chunks");
    Ok(())
}

/// The inbox chunks a commit changes, read once and written once however many of their entries
/// it adds or removes.
#[derive(Default)]
struct InboxWrites {
    chunks: FastMap<(ClientId, QueueName, u64), Chunk>,
}

impl InboxWrites {
    /// Adds (`present`) or removes the entry `seq` of `client`'s inbox on `queue`.
    fn change(
        &mut self,
        table: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
        client: ClientId,
        queue: QueueName,
        seq: u64,
        present: bool,
    ) -> Result<(), redb::Error> {
        let (number, offset) = chunk::locate(seq);
        let key = (client, queue, number);
        let chunk = match self.chunks.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let (client, queue, number) = entry.key();
                let stored = table.get((client.as_str(), queue.as_str(), *number))?;
                let chunk = match stored {
                    Some(value) => Chunk::decode(value.value())
                        .map_err(|e| redb::Error::Corrupted(e.to_string()))?,
                    None => Chunk::default(),
                };
                entry.insert(chunk)
            }
        };
        if present {
            chunk.insert(offset);
        } else {
            chunk.remove(offset);
        }
        Ok(())
    }

    /// Writes every changed chunk back (an emptied one is removed).
    fn write(
        self,
        table: &mut redb::Table<(&'static str, &'static str, u64), &'static [u8]>,
    ) -> Result<(), redb::Error> {
        for ((client, queue, number), chunk) in self.chunks {
            let key = (client.as_str(), queue.as_str(), number);
            match chunk.encode() {
                Some(value) => {
                    table.insert(key, value.as_slice())?;
                }
                None => {
                    table.remove(key)?;
                }
            }
        }
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, redb::Error> {
    serde_json::to_string(value).map_err(|e| redb::Error::Corrupted(format!("cannot encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, redb::Error> {
    serde_json::from_str(text).map_err(|e| redb::Error::Corrupted(format!("corrupt record: {e}")))
}

/// A table of `txn`, opened the first time it is asked for: opening one looks its definition
/// up, and most commits touch five of the eight tables (a publish and its acks: the message,
/// its payload, the inbox, the attempts and the counters).
fn opened<'t, 's, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t WriteTransaction,
    slot: &'s mut Option<redb::Table<'t, K, V>>,
    definition: TableDefinition<'static, K, V>,
) -> Result<&'s mut redb::Table<'t, K, V>, redb::Error> {
    if slot.is_none() {
        *slot = Some(txn.open_table(definition)?);
    }
    Ok(slot.as_mut().expect("opened just now"))
}

fn apply_all(txn: &WriteTransaction, ops: Vec<Op>) -> Result<(), redb::Error> {
    let (mut meta, mut payloads, mut subscriptions, mut inbox) = (None, None, None, None);
    let (mut attempts, mut waiting, mut receipts, mut counters) = (None, None, None, None);
    let mut inboxes = InboxWrites::default();
    let mut deleted = Deletions::default();
    // Attempt counts exist only for work-mode and ordered entries: most removals need not look.
    let mut any_attempts: Option<bool> = None;
    for op in ops {
        match op {
            Op::PutMessage(message) => {
                let seq = message.meta.seq;
                // A message deleted earlier in this batch and put again: delete it first.
                if deleted.seqs.remove(&seq) {
                    opened(txn, &mut meta, META)?.remove(seq)?;
                    opened(txn, &mut payloads, PAYLOADS)?.remove(seq)?;
                }
                opened(txn, &mut meta, META)?.insert(seq, (to_json(&message.meta))?.as_str())?;
                opened(txn, &mut payloads, PAYLOADS)?.insert(seq, message.payload.as_str())?;
            }
            Op::DeleteMessage(seq) => {
                deleted.seqs.insert(seq);
            }
            Op::PutSubscription {
                client,
                queue,
                record,
            } => {
                let key = (client.as_str(), queue.as_str());
                opened(txn, &mut subscriptions, SUBSCRIPTIONS)?
                    .insert(key, (to_json(&record))?.as_str())?;
            }
            Op::DeleteSubscription { client, queue } => {
                opened(txn, &mut subscriptions, SUBSCRIPTIONS)?
                    .remove((client.as_str(), queue.as_str()))?;
            }
            Op::AddToInbox { client, queue, seq } => {
                inboxes.change(opened(txn, &mut inbox, INBOX)?, client, queue, seq, true)?;
            }
            Op::RemoveFromInbox { client, queue, seq } => {
                let table = opened(txn, &mut attempts, ATTEMPTS)?;
                let any = match any_attempts {
                    Some(any) => any,
                    None => *any_attempts.insert(!table.is_empty()?),
                };
                if any {
                    table.remove((client.as_str(), queue.as_str(), seq))?;
                }
                inboxes.change(opened(txn, &mut inbox, INBOX)?, client, queue, seq, false)?;
            }
            Op::SetAttempts {
                client,
                queue,
                seq,
                attempts: n,
            } => {
                any_attempts = Some(true);
                opened(txn, &mut attempts, ATTEMPTS)?
                    .insert((client.as_str(), queue.as_str(), seq), n)?;
            }
            Op::AddWaiting { queue, seq } => {
                opened(txn, &mut waiting, WAITING)?.insert((queue.as_str(), seq), ())?;
            }
            Op::RemoveWaiting { queue, seq } => {
                opened(txn, &mut waiting, WAITING)?.remove((queue.as_str(), seq))?;
            }
            Op::PutReceipt(receipt) => {
                let key = (receipt.queue.as_str(), receipt.id.as_str());
                opened(txn, &mut receipts, RECEIPTS)?.insert(key, (to_json(&receipt))?.as_str())?;
            }
            Op::DeleteReceipt { queue, id } => {
                opened(txn, &mut receipts, RECEIPTS)?.remove((queue.as_str(), id.as_str()))?;
            }
            Op::PutCounters { queue, counters: c } => {
                opened(txn, &mut counters, COUNTERS)?
                    .insert(queue.as_str(), (to_json(&c))?.as_str())?;
            }
        }
    }
    if !deleted.seqs.is_empty() {
        let seqs = deleted.sorted();
        remove_runs(opened(txn, &mut meta, META)?, &seqs)?;
        remove_runs(opened(txn, &mut payloads, PAYLOADS)?, &seqs)?;
    }
    match inbox.as_mut() {
        Some(table) => inboxes.write(table),
        None => Ok(()),
    }
}

/// The messages a commit deletes, removed from each table at the end of the commit: runs of
/// consecutive sequence numbers (acks mostly come in publish order) in one pass over the run,
/// which costs a fraction of removing its keys one by one (each removal walks the tree from
/// its root again and rebuilds the pages on the way); others one by one.
#[derive(Default)]
struct Deletions {
    seqs: crate::hash::FastSet<u64>,
}

impl Deletions {
    fn sorted(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.seqs.iter().copied().collect();
        seqs.sort_unstable();
        seqs
    }
}

/// A run of deleted messages shorter than this is removed key by key.
const RUN: u64 = 4;

/// Removes `seqs` (sorted) from `table`, each run of consecutive ones in one pass.
fn remove_runs<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, u64, V>,
    seqs: &[u64],
) -> Result<(), redb::Error> {
    for run in seqs.chunk_by(|a, b| a + 1 == *b) {
        let (first, last) = (run[0], run[run.len() - 1]);
        if last - first + 1 >= RUN {
            // Every key in first..=last is one to delete (the run has no gap).
            table.retain_in(first..=last, |_, _| false)?;
        } else {
            for &seq in run {
                table.remove(seq)?;
            }
        }
    }
    Ok(())
}

/// A name in a key, as stored (see [`StoredName`]: rules added later do not apply).
fn parse_name<T: StoredName>(raw: &str) -> Result<T, redb::Error> {
    T::from_stored(raw.to_owned())
        .map_err(|_| redb::Error::Corrupted(format!("corrupt name {raw:?} in store")))
}

fn read_snapshot(db: &Database) -> Result<Snapshot, redb::Error> {
    let txn = db.begin_read()?;
    let mut snapshot = Snapshot::default();
    for row in txn.open_table(META)?.iter()? {
        let (_, value) = row?;
        let meta: MessageMeta = from_json(value.value())?;
        snapshot.messages.push(meta);
    }
    for row in txn.open_table(SUBSCRIPTIONS)?.iter()? {
        let (key, value) = row?;
        let (client, queue) = key.value();
        snapshot.subscriptions.push((
            parse_name(client)?,
            parse_name(queue)?,
            from_json(value.value())?,
        ));
    }
    for row in txn.open_table(INBOX)?.iter()? {
        let (key, value) = row?;
        let (client, queue, number) = key.value();
        let chunk =
            Chunk::decode(value.value()).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        let (client, queue): (ClientId, QueueName) = (parse_name(client)?, parse_name(queue)?);
        for seq in chunk.seqs(number) {
            snapshot.inbox.push((client.clone(), queue.clone(), seq));
        }
    }
    for row in txn.open_table(ATTEMPTS)?.iter()? {
        let (key, value) = row?;
        let (client, queue, seq) = key.value();
        snapshot
            .attempts
            .push((parse_name(client)?, parse_name(queue)?, seq, value.value()));
    }
    for row in txn.open_table(WAITING)?.iter()? {
        let (key, _) = row?;
        let (queue, seq) = key.value();
        snapshot.waiting.push((parse_name(queue)?, seq));
    }
    for row in txn.open_table(RECEIPTS)?.iter()? {
        let (_, value) = row?;
        let receipt: Receipt = from_json(value.value())?;
        snapshot.receipts.push(receipt);
    }
    for row in txn.open_table(COUNTERS)?.iter()? {
        let (key, value) = row?;
        snapshot
            .counters
            .push((parse_name(key.value())?, from_json(value.value())?));
    }
    Ok(snapshot)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            // On error the transaction is dropped, which aborts it: nothing is half-applied.
            apply_all(&txn, ops)?;
            Ok(txn.commit()?)
        })
        .await
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.blocking(read_snapshot).await
    }

    fn note_ahead(&self, batch: u64, removals: &[Removal]) -> Result<bool, StoreError> {
        self.inner.ahead.note(batch, removals).map_err(|err| {
            if is_out_of_space(&err) {
                StoreError::Full(err.to_string())
            } else {
                StoreError::Failed(format!("cannot note ahead of a commit: {err}"))
            }
        })?;
        Ok(true)
    }

    fn committed_through(&self, batch: u64) {
        self.inner.ahead.covered(batch);
    }

    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(PAYLOADS)?;
            let mut out = Vec::with_capacity(seqs.len());
            match dense_run(&seqs) {
                // One walk along the table's leaves instead of a lookup from its root per
                // message: a catch-up page's seqs are ascending and mostly adjacent.
                Some((first, last)) => {
                    let mut wanted = seqs.iter().peekable();
                    for row in table.range(first..=last)? {
                        let (seq, text) = row?;
                        let seq = seq.value();
                        while wanted.next_if(|w| **w < seq).is_some() {
                            out.push(None);
                        }
                        if wanted.next_if(|w| **w == seq).is_some() {
                            out.push(Some(text.value().to_owned()));
                        }
                    }
                    out.resize(seqs.len(), None);
                }
                None => {
                    for seq in seqs {
                        out.push(table.get(seq)?.map(|v| v.value().to_owned()));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    fn engine(&self) -> &'static str {
        "embedded"
    }
}

/// The first and last of `seqs` when they ascend and span at most twice their number (plus a
/// little): then reading every row between them costs less than a lookup per seq, and never
/// more than a small multiple of what was asked.
fn dense_run(seqs: &[u64]) -> Option<(u64, u64)> {
    let (first, last) = (*seqs.first()?, *seqs.last()?);
    if !seqs.windows(2).all(|pair| pair[0] < pair[1]) {
        return None;
    }
    let span = last - first + 1;
    (span <= 2 * seqs.len() as u64 + 16).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredMessage;

    fn name<T: TryFrom<String>>(raw: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        T::try_from(raw.to_owned()).unwrap()
    }

    /// Message `seq` of queue `q` in the inbox of client `c`, committed.
    async fn stored(store: &EmbeddedStore, seq: u64) {
        let meta = MessageMeta {
            seq,
            id: name(&format!("m{seq}")),
            queue: name("q"),
            event: name("e"),
            published_at_ms: 1,
            source: "http".into(),
            deliver_at_ms: None,
            expires_at_ms: None,
            job: None,
        };
        let message = StoredMessage {
            meta,
            payload: "1".into(),
        };
        let (client, queue) = (name("c"), name("q"));
        let ops = vec![
            Op::PutMessage(message),
            Op::AddToInbox { client, queue, seq },
        ];
        store.commit(ops).await.unwrap();
    }

    fn removal(seq: u64) -> Removal {
        Removal {
            client: name("c"),
            queue: name("q"),
            seq,
            message_gone: true,
        }
    }

    /// A removal answered before its commit survives the process's end without that commit
    /// (a kill -9: the store is dropped, nothing more is written), and a line cut short
    /// (never answered) is skipped without losing the notes around it.
    #[tokio::test]
    async fn a_removal_noted_ahead_is_applied_when_the_store_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for seq in [1, 2, 3] {
            stored(&store, seq).await;
        }
        assert!(store.note_ahead(5, &[removal(1)]).unwrap());
        drop(store);
        // In the other file: a line cut short in the middle of a character, a whole note
        // after it, and a line the crash cut short at the end.
        let mut other = b"[{\"client\":\"c\",\"queue\":\"\xc3\n".to_vec();
        other.extend(serde_json::to_vec(&[removal(2)]).unwrap());
        other.extend(b"\n[{\"cl");
        std::fs::write(dir.path().join(ahead::FILE_NAMES[1]), other).unwrap();

        let store = EmbeddedStore::open(dir.path()).unwrap();
        let snapshot = store.load().await.unwrap();
        let seqs: Vec<u64> = snapshot.inbox.iter().map(|(_, _, seq)| *seq).collect();
        assert_eq!(
            seqs,
            [3],
            "the noted removals applied, the torn lines skipped"
        );
        let messages: Vec<u64> = snapshot.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            messages,
            [3],
            "and their messages, which no inbox held, deleted"
        );
        assert_eq!(store.inner.ahead.bytes(), 0, "the notes start afresh");
    }

    /// Notes go once every batch they belong to is committed, not before.
    #[tokio::test]
    async fn notes_ahead_are_dropped_once_their_batches_are_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        stored(&store, 1).await;
        stored(&store, 2).await;
        store.note_ahead(4, &[removal(1)]).unwrap();
        store.note_ahead(6, &[removal(2)]).unwrap();
        store.committed_through(5);
        assert!(
            store.inner.ahead.bytes() > 0,
            "batch 6 is not committed yet"
        );
        store.committed_through(6);
        assert_eq!(store.inner.ahead.bytes(), 0);
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.load().await.unwrap().inbox.len(),
            2,
            "nothing was applied"
        );
    }

    #[test]
    fn only_ascending_seqs_that_span_little_more_than_their_number_are_read_as_a_range() {
        assert_eq!(dense_run(&[]), None);
        assert_eq!(dense_run(&[7]), Some((7, 7)));
        assert_eq!(dense_run(&[1, 2, 3, 5, 8]), Some((1, 8)));
        assert_eq!(dense_run(&[3, 2]), None, "not ascending");
        assert_eq!(dense_run(&[1, 1]), None, "repeated");
        assert_eq!(dense_run(&[1, 1_000]), None, "sparse");
    }

    #[tokio::test]
    async fn payloads_read_as_a_range_or_one_by_one_come_back_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        {
            let db = store.inner.database().unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(PAYLOADS).unwrap();
                for seq in [2, 3, 5, 6, 9, 500] {
                    table.insert(seq, format!("{seq}").as_str()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let text = |seq: u64| Some(seq.to_string());
        let dense = store.payloads(vec![1, 2, 3, 4, 5, 9, 10]).await.unwrap();
        assert_eq!(
            dense,
            [None, text(2), text(3), None, text(5), text(9), None]
        );
        let sparse = store.payloads(vec![500, 2, 7, 9]).await.unwrap();
        assert_eq!(sparse, [text(500), text(2), None, text(9)]);
    }

    #[tokio::test]
    async fn a_file_with_an_entry_per_row_opens_with_its_entries_moved_into_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            // The layout of builds before chunks: one row per inbox entry.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut legacy = txn.open_table(LEGACY_INBOX).unwrap();
                for seq in [1, 2, 1500] {
                    legacy.insert(("acme", "orders", seq), ()).unwrap();
                }
                legacy.insert(("driver", "orders", 2), ()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut inbox = store.load().await.unwrap().inbox;
        inbox.sort();
        let entry = |client: &str, seq| {
            (
                ClientId::try_from(client.to_owned()).unwrap(),
                QueueName::try_from("orders".to_owned()).unwrap(),
                seq,
            )
        };
        let want = vec![
            entry("acme", 1),
            entry("acme", 2),
            entry("acme", 1500),
            entry("driver", 2),
        ];
        assert_eq!(inbox, want);
        // The old table is gone, so a second opening does not move the entries again; an ack
        // after the move removes the entry for good.
        store
            .commit(vec![Op::RemoveFromInbox {
                client: want[0].0.clone(),
                queue: want[0].1.clone(),
                seq: 1,
            }])
            .await
            .unwrap();
        drop(store);
        let reopened = EmbeddedStore::open(dir.path()).unwrap();
        let mut inbox = reopened.load().await.unwrap().inbox;
        inbox.sort();
        assert_eq!(inbox, want[1..].to_vec());
    }
}
