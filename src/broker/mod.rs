//! The broker: publish, fan-out, inboxes, catch-up and acks, the same for every transport.
//!
//! [`Broker`] is a cheap `Clone` handle. HTTP handlers (`api/`) and socket.io handlers
//! (`socket/`) call it and never touch the store or the index directly, so both transports
//! behave the same by construction.
//!
//! How a mutation flows (publish, subscribe, unsubscribe, ack):
//! 1. validate input (names were validated by the transport already);
//! 2. lock the index, apply the change, collect the store ops, queue them to the
//!    group-commit [`writer`] while still holding the lock, unlock;
//! 3. return a [`Pending`]: later mutations already see the change; awaiting
//!    [`Pending::committed`] waits for the writer's answer, and `Ok` means it is on disk;
//! 4. the writer hands live deliveries to the fan-out task, which gives them to the
//!    [`Outbox`] (implemented by `socket/`) in publish order.
//!
//! Lock strategy: one `std::sync::Mutex` around the index. Every critical section is short
//! and synchronous (map updates, no I/O), and the lock is never held across an `.await`;
//! payloads are read from the store outside it.

mod activity;
mod catch_up;
mod dispatch;
mod doors;
mod index;
mod jobs;
mod kick;
pub mod message;
pub mod stats;
mod timer;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Code, Error};
use crate::names::{ClientId, MessageId, QueueName};
use crate::store::{Store, StoreError, SubscriptionRecord};

pub use crate::store::SubscriptionRecord as SubscriptionOptions;
pub use activity::{Activity, ActivityKind};
pub use catch_up::{CATCH_UP_PAGE, CatchUp};
use index::{Index, KeptKind};
pub(crate) use index::{JobState, JobView, Peek, TubeCounts, priority};
pub use jobs::Reserved;
pub(crate) use jobs::Serving;
pub use message::{
    AckResult, Acked, Delivery, Envelope, NewMessage, Published, SOURCE_HTTP, SharedPayload,
};
use writer::{Batch, Effects};

/// Where live deliveries go; implemented by each transport that delivers (the socket.io
/// layer, the beanstalk door), all reached through one `doors::Doors`.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Pushes `delivery` to every connected socket of its client on its queue, in commit
    /// order. Never waits for a slow socket: one that cannot take it now must resume from
    /// this message by itself once it drains (see [`Broker::resume`] and
    /// [`Broker::fanned_out`]). The message stays in the inbox until acked either way.
    async fn deliver(&self, delivery: Delivery);

    /// Tells the sockets of `client` that its subscription to `queue` has ended.
    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName);

    /// How many sockets of `client` are connected and subscribed to `queue`.
    fn connected(&self, client: &ClientId, queue: &QueueName) -> usize;

    /// Sends a work-mode message to one worker, at once or, if its buffer is full, as soon as
    /// it drains (what waits is bounded by the worker's prefetch). `false` only if the worker
    /// is gone. Never waits.
    fn deliver_to(&self, consumer: &str, envelope: &Envelope) -> bool;

    /// The lease of worker `consumer` on message `seq` ran out (its ack timeout passed): the
    /// message went back to its inbox. For a transport that counts it (beanstalk's
    /// `timeouts`); nothing by default.
    fn lease_lapsed(&self, _consumer: &str, _seq: u64) {}
}

/// Limits and windows of the broker.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Largest payload accepted, in bytes of its JSON text.
    pub max_payload_bytes: usize,
    /// Most messages in one batch publish or one ack.
    pub max_batch: usize,
    /// How long a publisher-chosen id is remembered after its publish.
    pub dedupe_window: Duration,
    /// Most unacked messages one subscription's inbox may hold; a publish that would go over
    /// is refused with `inbox_full` (HTTP 507).
    pub max_inbox: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_batch: 1000,
            dedupe_window: Duration::from_secs(24 * 60 * 60),
            max_inbox: 1_000_000,
        }
    }
}

/// How much activity a slow watcher may fall behind before it loses the oldest.
const ACTIVITY_BACKLOG: usize = 1024;

/// The message broker. See the module docs for how a mutation flows.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

/// What the writer, the fan-out task and the handle share.
pub(crate) struct Shared {
    // std Mutex: see the module docs; never held across an `.await`.
    core: Mutex<Core>,
    store: Arc<dyn Store>,
    config: BrokerConfig,
    outbox: OnceLock<Arc<dyn Outbox>>,
    /// The outboxes of every transport, behind `outbox` (see [`doors::Doors`]).
    doors: Arc<doors::Doors>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Committed activity, for watchers.
    activity: broadcast::Sender<Activity>,
    /// Becomes true when the broker closes.
    closing: watch::Sender<bool>,
    /// Wakes the timer when a sooner deadline (delay or TTL) may have arrived.
    timer: Notify,
    /// Asks the dispatcher to look at a work subscription.
    dispatch: mpsc::UnboundedSender<dispatch::Request>,
    /// The highest sequence number the fan-out has handed to the outbox: every live push of
    /// a message up to it has been made (or noted by a socket that could not take it).
    fanned_out: watch::Sender<u64>,
    /// The highest sequence number whose publish is settled: committed, or gone with a failed
    /// commit. A reader of payloads waits for it, so that a message it sees in the index
    /// (published, not yet committed) is not taken for one that is no longer stored.
    settled: watch::Sender<u64>,
}

/// The index and the switch that decides whether mutations are accepted.
pub(crate) struct Core {
    index: Index,
    /// `None` once the broker is closing.
    writer: Option<mpsc::UnboundedSender<Batch>>,
    /// While the index is rebuilt after a failed commit: what mutations are refused with
    /// (`storage_full` after a full disk, `store_unavailable` otherwise).
    rebuilding: Option<Error>,
    /// How many batches have been queued to the writer: the number of the last one.
    batches: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; the index is still the best we have.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One acknowledgement, as [`Broker::ack_all`] takes it: `client` acknowledges `ids` in
/// `queue`, or in every queue it is subscribed to.
pub struct AckRequest {
    pub client: ClientId,
    pub queue: Option<QueueName>,
    pub ids: Vec<MessageId>,
}

/// What one of [`Broker::ack_all`]'s acks did: per id, whether it was removed; or why the
/// ack was refused (then it changed nothing).
pub type AckOutcome = Result<Vec<bool>, Error>;

/// A mutation that is already applied (later events see it) and queued for commit.
/// [`Pending::committed`] resolves once it is on disk; until then nobody has been told.
#[must_use = "a mutation is durable only once `committed` resolves"]
pub struct Pending<T> {
    value: T,
    done: oneshot::Receiver<Result<(), Error>>,
    /// The number of the batch that commits it.
    batch: u64,
}

impl<T> Pending<T> {
    /// Transforms the result that will be returned once committed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Pending<U> {
        Pending {
            value: f(self.value),
            done: self.done,
            batch: self.batch,
        }
    }

    /// Waits until the mutation is durable and returns its result, or the commit's error
    /// (then nothing of it was kept).
    pub async fn committed(self) -> Result<T, Error> {
        self.done.await.map_err(|_| Error::shutting_down())??;
        Ok(self.value)
    }
}

impl Broker {
    /// Opens the broker on `store`, rebuilding the index from it, and starts the writer.
    pub async fn open(store: Arc<dyn Store>, config: BrokerConfig) -> Result<Self, StoreError> {
        let snapshot = store.load().await?;
        let index = Index::from_snapshot(snapshot);
        let last_seq = index.last_seq();
        tracing::info!(
            engine = store.engine(),
            messages = index.stored_messages(),
            queues = index.queues.len(),
            "store loaded"
        );
        let (batch_tx, batch_rx) = mpsc::unbounded_channel();
        let (fanout_tx, fanout_rx) = mpsc::unbounded_channel();
        let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();
        let doors = Arc::new(doors::Doors::default());
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                index,
                writer: Some(batch_tx),
                rebuilding: None,
                batches: 0,
            }),
            store,
            config,
            outbox: OnceLock::from(Arc::clone(&doors) as Arc<dyn Outbox>),
            doors,
            tasks: Mutex::new(Vec::new()),
            activity: broadcast::channel(ACTIVITY_BACKLOG).0,
            closing: watch::channel(false).0,
            timer: Notify::new(),
            dispatch: dispatch_tx,
            fanned_out: watch::channel(last_seq).0,
            settled: watch::channel(last_seq).0,
        });
        let writer = tokio::spawn(writer::run(Arc::clone(&shared), batch_rx, fanout_tx));
        let fanout = tokio::spawn(fan_out(Arc::clone(&shared), fanout_rx));
        let broker = Self { shared };
        let timer = tokio::spawn(timer::run(broker.clone()));
        let dispatcher = tokio::spawn(dispatch::run(broker.clone(), dispatch_rx));
        broker
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([writer, fanout, timer, dispatcher]);
        Ok(broker)
    }

    /// Connects a transport's live-delivery side (the socket.io layer's, the beanstalk
    /// door's): each gets every live push, and the work-mode sends to its own workers.
    /// Two transports at most; a third is ignored (and logged).
    pub fn set_outbox(&self, outbox: Arc<dyn Outbox>) {
        if !self.shared.doors.add(outbox) {
            tracing::error!("a third transport's outbox was ignored");
        }
    }

    /// The broker's limits.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// Applies `mutate` to the index now and queues its ops for commit. The returned
    /// [`Pending`] resolves when they are durable.
    fn mutate<T>(
        &self,
        mutate: impl FnOnce(&mut Index, &mut Effects) -> Result<T, Error>,
    ) -> Result<Pending<T>, Error> {
        let (done_tx, done_rx) = oneshot::channel();
        let mut core = self.shared.lock();
        if let Some(error) = &core.rebuilding {
            return Err(error.clone());
        }
        let Some(writer) = core.writer.clone() else {
            return Err(Error::shutting_down());
        };
        let mut effects = Effects {
            watched: self.shared.activity.receiver_count() > 0,
            ..Effects::default()
        };
        let value = mutate(&mut core.index, &mut effects)?;
        let ready = std::mem::take(&mut effects.ready);
        core.batches += 1;
        let number = core.batches;
        let batch = Batch {
            effects,
            done: done_tx,
            number,
        };
        writer.send(batch).map_err(|_| Error::shutting_down())?;
        drop(core);
        if !ready.is_empty() {
            // Counted on disk before this mutation, payloads in hand: a worker's next message
            // does not wait for this commit. New ack deadlines: the timer may wake sooner.
            self.shared.timer.notify_one();
            dispatch::give(
                self,
                ready.into_iter().map(|a| {
                    let payload = a.payload.clone();
                    (a, payload)
                }),
            );
        }
        Ok(Pending {
            value,
            done: done_rx,
            batch: number,
        })
    }

    /// Publishes `messages` as one atomic batch: all are stored (one commit) or none.
    /// A message whose id was already published to its queue returns the first receipt.
    pub fn publish(&self, messages: Vec<NewMessage>) -> Result<Pending<Vec<Published>>, Error> {
        let config = &self.shared.config;
        if messages.is_empty() {
            return Err(Error::invalid_field(
                "a batch must hold at least one message",
            ));
        }
        if messages.len() > config.max_batch {
            return Err(Error::new(
                Code::BatchTooLarge,
                format!(
                    "a batch holds at most {} messages; this one has {}",
                    config.max_batch,
                    messages.len()
                ),
            ));
        }
        let mut prepared = Vec::with_capacity(messages.len());
        for mut message in messages {
            let text = message
                .text
                .take()
                .unwrap_or_else(|| message::json_text(&message.payload));
            if text.len() > config.max_payload_bytes {
                self.count_rejected(&message.queue, "payload_too_large");
                return Err(Error::payload_too_large(
                    text.len(),
                    config.max_payload_bytes,
                ));
            }
            prepared.push((message, text));
        }
        // Limits are checked before anything changes, so a refused batch changes nothing.
        // (Publishes racing this check may take an inbox a few messages over the limit.)
        let refused = {
            let core = self.shared.lock();
            prepared.iter().find_map(|(message, _)| {
                core.index
                    .check_limits(message, config.max_inbox)
                    .err()
                    .map(|err| (message.queue.clone(), err))
            })
        };
        if let Some((queue, err)) = refused {
            self.count_rejected(&queue, err.code().as_str());
            return Err(err);
        }
        let timed = prepared
            .iter()
            .any(|(m, _)| m.deliver_at_ms.is_some() || m.ttl_ms.is_some());
        let now = message::now_ms();
        let cutoff = now.saturating_sub(config.dedupe_window.as_millis() as u64);
        let online = self.online();
        let result = self.mutate(|index, effects| {
            index.expire_receipts(cutoff, &mut effects.ops);
            let mut answers = Vec::with_capacity(prepared.len());
            for (message, text) in prepared {
                let size = text.len();
                let payload = SharedPayload::from_text(text.clone());
                let outcome = index.publish(&message, text, now, &online, &mut effects.ops);
                let mut answer = Published::from_receipt(&outcome.receipt, outcome.duplicate);
                answer.seq = outcome.meta.as_ref().map_or(0, |m| m.seq);
                answers.push(answer);
                if let Some(meta) = &outcome.meta {
                    // Workers, catch-ups and resumed pushes get it without reading it back
                    // (while memory allows).
                    let kind = if outcome.workers.is_empty() {
                        KeptKind::Other
                    } else {
                        KeptKind::Work
                    };
                    index.keep_payload(meta.seq, &payload, size, kind);
                }
                // Workers get the message right after this commit (no commit of its own),
                // with the payload in hand.
                let (assigned, pooled) = (effects.assigned.len(), effects.pooled.len());
                for client in &outcome.workers {
                    let queue = &outcome.receipt.queue;
                    Broker::dispatch_now(index, effects, (client, queue), now, &online);
                }
                let seq = outcome.meta.as_ref().map(|m| m.seq);
                for assignment in &mut effects.assigned[assigned..] {
                    if Some(assignment.meta.seq) == seq {
                        assignment.payload = Some(payload.clone());
                    }
                }
                for entry in &mut effects.pooled[pooled..] {
                    if Some(entry.seq) == seq {
                        entry.payload = Some(payload.clone());
                    }
                }
                effects.published(&outcome, payload);
            }
            Ok(answers)
        });
        if timed {
            self.shared.timer.notify_one();
        }
        result
    }

    /// Counts a publish that a limit refused (in the queue's `rejected` counter, durably, in
    /// the background) and tells watchers.
    fn count_rejected(&self, queue: &QueueName, code: &'static str) {
        let counted = self.mutate(|index, effects| {
            index.count_rejected(queue, &mut effects.ops);
            effects.note(ActivityKind::Rejected {
                queue: queue.clone(),
                code: code.to_owned(),
            });
            Ok(())
        });
        if let Ok(pending) = counted {
            tokio::spawn(async move {
                let _ = pending.committed().await;
            });
        }
    }

    /// Subscribes `client` to each of `queues` (durably). A new subscriber of a queue takes
    /// the messages waiting there. Returns how many messages wait in those inboxes.
    pub fn subscribe(
        &self,
        client: &ClientId,
        queues: &[QueueName],
        record: SubscriptionRecord,
    ) -> Result<Pending<usize>, Error> {
        if queues.is_empty() {
            return Err(Error::invalid_field("subscribe needs 'queue' or 'queues'"));
        }
        self.mutate(|index, effects| {
            let pending = queues
                .iter()
                .map(|queue| index.subscribe(client, queue, record.clone(), &mut effects.ops))
                .sum();
            effects.note(ActivityKind::Subscribed {
                client: client.clone(),
                queues: queues.to_vec(),
            });
            Ok(pending)
        })
    }

    /// Ends `client`'s subscription to `queue` and drops its inbox; returns how many messages
    /// were dropped. Connected sockets of the client stop receiving that queue.
    pub fn unsubscribe(
        &self,
        client: &ClientId,
        queue: &QueueName,
    ) -> Result<Pending<usize>, Error> {
        let pending = self.mutate(|index, effects| {
            let dropped = index.unsubscribe(client, queue, &mut effects.ops)?;
            effects.note(ActivityKind::Unsubscribed {
                client: client.clone(),
                queue: queue.clone(),
            });
            Ok(dropped)
        })?;
        // The index no longer routes this queue to the client, so no new push can follow;
        // the sockets leave its room now.
        if let Some(outbox) = self.shared.outbox.get() {
            let (outbox, client, queue) = (Arc::clone(outbox), client.clone(), queue.clone());
            tokio::spawn(async move { outbox.subscription_ended(&client, &queue).await });
        }
        Ok(pending)
    }

    /// Removes `ids` from `client`'s inbox (in `queue`, or in every queue it is subscribed
    /// to). Returns, per id, whether it was removed; unknown and repeated ids are `false`.
    pub fn ack(
        &self,
        client: &ClientId,
        queue: Option<&QueueName>,
        ids: &[MessageId],
    ) -> Result<Pending<Vec<bool>>, Error> {
        self.check_ack(ids)?;
        let online = self.online();
        let now = message::now_ms();
        self.mutate(|index, effects| {
            let mut touched = BTreeSet::new();
            let removed = Broker::ack_in(index, effects, (client, queue, ids), &mut touched)?;
            Broker::after_acks(index, effects, &touched, now, &online);
            Ok(removed)
        })
    }

    /// Applies several acks as one mutation: one lock, one batch for the group commit, each
    /// queue's counters written once. Each ack is checked and applied on its own, in order,
    /// and has its own result, as if sent alone. For a socket whose `received` events came
    /// in together.
    pub fn ack_all(&self, acks: &[AckRequest]) -> Result<Pending<Vec<AckOutcome>>, Error> {
        let online = self.online();
        let now = message::now_ms();
        self.mutate(|index, effects| {
            let mut touched = BTreeSet::new();
            let results = acks
                .iter()
                .map(|ack| {
                    self.check_ack(&ack.ids)?;
                    let request = (&ack.client, ack.queue.as_ref(), ack.ids.as_slice());
                    Broker::ack_in(index, effects, request, &mut touched)
                })
                .collect();
            Broker::after_acks(index, effects, &touched, now, &online);
            Ok(results)
        })
    }

    fn check_ack(&self, ids: &[MessageId]) -> Result<(), Error> {
        let max = self.shared.config.max_batch;
        if ids.len() > max {
            return Err(Error::new(
                Code::BatchTooLarge,
                format!("at most {max} ids per ack"),
            ));
        }
        Ok(())
    }

    /// One ack, inside a mutation: adds the (client, queue) pairs where it removed something
    /// to `touched`.
    fn ack_in(
        index: &mut Index,
        effects: &mut Effects,
        (client, queue, ids): (&ClientId, Option<&QueueName>, &[MessageId]),
        touched: &mut BTreeSet<(ClientId, QueueName)>,
    ) -> Result<Vec<bool>, Error> {
        let (removed, queues) = index.ack(client, queue, ids, &mut effects.ops)?;
        let count = removed.iter().filter(|r| **r).count();
        touched.extend(queues.iter().map(|q| (client.clone(), q.clone())));
        if count > 0 {
            effects.note(ActivityKind::Acked {
                client: client.clone(),
                removed: count,
                queues,
            });
        }
        Ok(removed)
    }

    /// After a mutation's acks: the counters of the queues they touched are written, and
    /// acks make room for work-mode workers (and move ordered heads on) where they removed
    /// something: the next messages there are assigned in this same commit and sent right
    /// after it.
    fn after_acks(
        index: &mut Index,
        effects: &mut Effects,
        touched: &BTreeSet<(ClientId, QueueName)>,
        now: u64,
        online: &dyn Fn(&ClientId, &QueueName) -> bool,
    ) {
        let queues: BTreeSet<&QueueName> = touched.iter().map(|(_, queue)| queue).collect();
        for queue in queues {
            index.put_counters(queue, &mut effects.ops);
        }
        for (client, queue) in touched {
            if index.is_dispatched(client, queue) {
                Broker::dispatch_now(index, effects, (client, queue), now, online);
            }
        }
    }

    /// The queues `client` is subscribed to (none if it has no subscription).
    pub fn subscriptions(&self, client: &ClientId) -> Vec<QueueName> {
        self.shared
            .lock()
            .index
            .subscribed_queues(client, None)
            .unwrap_or_default()
    }

    /// Waits until every publish up to `seq` is settled (committed, or gone with a failed
    /// commit): then a payload read for it finds the message if it is still stored.
    async fn settled(&self, seq: u64) {
        let mut settled = self.shared.settled.subscribe();
        let _ = settled.wait_for(|mark| *mark >= seq).await;
    }

    /// Reads the payloads of `seqs` from the store, in order (`None`: no longer stored).
    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, Error> {
        self.shared
            .store
            .payloads(seqs)
            .await
            .map_err(|e| Error::unavailable(e.to_string()))
    }

    /// The payloads of `wanted` messages, in order: the one in hand, else read from the
    /// store (all in one read) and parsed; `None` for a message no longer stored.
    async fn payloads_in_hand(
        &self,
        wanted: impl IntoIterator<Item = (u64, Option<SharedPayload>)>,
    ) -> Result<Vec<Option<SharedPayload>>, Error> {
        let wanted: Vec<_> = wanted.into_iter().collect();
        let missing: Vec<u64> = wanted
            .iter()
            .filter(|(_, payload)| payload.is_none())
            .map(|(seq, _)| *seq)
            .collect();
        let mut read = if missing.is_empty() {
            Vec::new()
        } else {
            self.payloads(missing).await?
        }
        .into_iter();
        Ok(wanted
            .into_iter()
            .map(|(_, payload)| {
                payload.or_else(|| read.next().flatten().and_then(SharedPayload::from_stored))
            })
            .collect())
    }

    /// Whether a client has a socket connected to a queue, as the outbox sees it.
    ///
    /// The answer is kept for the life of the returned function (one mutation): a batch of
    /// publishes asks about the same subscribers for every message, and the outbox answers by
    /// listing the sockets of a room.
    fn online(&self) -> impl Fn(&ClientId, &QueueName) -> bool + use<'_> {
        let outbox = self.shared.outbox.get();
        let known: std::cell::RefCell<crate::hash::FastMap<(ClientId, QueueName), bool>> =
            Default::default();
        move |client, queue| {
            let key = (client.clone(), queue.clone());
            if let Some(&online) = known.borrow().get(&key) {
                return online;
            }
            let online = outbox.is_some_and(|o| o.connected(client, queue) > 0);
            known.borrow_mut().insert(key, online);
            online
        }
    }

    /// The highest sequence number whose live pushes have all been made: a socket that could
    /// not take a push resumes from its inbox up to this mark (never past it, so it never
    /// sees a message before its commit, nor one that the fan-out will still push).
    pub fn fanned_out(&self) -> watch::Receiver<u64> {
        self.shared.fanned_out.subscribe()
    }

    /// Follows what happens from now on (committed changes, and what transports announce).
    /// While nobody follows, no activity is recorded.
    pub fn watch(&self) -> broadcast::Receiver<Activity> {
        self.shared.activity.subscribe()
    }

    /// How many watchers follow the activity now.
    pub fn watchers(&self) -> usize {
        self.shared.activity.receiver_count()
    }

    /// Announces something a transport saw (a socket connecting, say) to watchers, if any.
    pub fn announce(&self, kind: ActivityKind) {
        if self.watchers() > 0 {
            let _ = self.shared.activity.send(Activity::new(kind));
        }
    }

    /// Completes once the broker starts closing.
    pub async fn closed(&self) {
        let mut closing = self.shared.closing.subscribe();
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// Stops taking new work, commits everything queued, and waits for the writer and the
    /// fan-out task to finish. Mutations after this fail with `shutting_down`.
    pub async fn close(&self) {
        self.shared.lock().writer = None;
        self.shared.closing.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "broker task failed");
            }
        }
    }
}

/// Gives committed deliveries to the outbox in commit order, then moves the
/// [`Broker::fanned_out`] mark past them; ends after the writer.
async fn fan_out(shared: Arc<Shared>, mut deliveries: mpsc::UnboundedReceiver<Vec<Delivery>>) {
    let mut batches = Vec::new();
    while deliveries.recv_many(&mut batches, 64).await > 0 {
        let highest = batches.iter().flatten().map(|d| d.seq).max();
        if let Some(outbox) = shared.outbox.get() {
            for delivery in batches.drain(..).flatten() {
                outbox.deliver(delivery).await;
            }
        }
        batches.clear();
        if let Some(highest) = highest {
            shared.fanned_out.send_if_modified(|mark| {
                let moved = highest > *mark;
                *mark = (*mark).max(highest);
                moved
            });
        }
    }
}
