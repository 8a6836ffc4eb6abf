//! The group-commit writer: one task that turns many concurrent mutations into few durable
//! commits.
//!
//! Callers change the in-memory index under the index lock and, still holding it, queue a
//! [`Batch`] of store ops here; so batches arrive in the order the index changed. The writer
//! takes every batch that is waiting (up to [`MAX_BATCHES_PER_COMMIT`]), commits them as one
//! store transaction (one fsync for all of them), then answers each caller and hands the live
//! deliveries to the fan-out task. Persist first, then fan out: nobody is told about a message
//! before it is durable.
//!
//! If a commit fails, nothing of it reached the store, but the index already shows it. The
//! writer then marks the index as rebuilding (new mutations fail fast with the same error:
//! `storage_full` for a full disk, `store_unavailable` otherwise), fails every batch still
//! queued, and rebuilds the index from the store, retrying until the store can be read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::Op;

use super::Shared;
use super::activity::{Activity, ActivityKind};
use super::dispatch::Request;
use super::index::{Assignment, Dispatched, Index, PublishOutcome};
use super::message::{Delivery, SharedPayload, format_ms};
use crate::store::MessageMeta;

/// At most this many queued batches share one commit.
pub(crate) const MAX_BATCHES_PER_COMMIT: usize = 4096;

/// What one mutation changes: its store ops, and what to announce once they are durable.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) ops: Vec<Op>,
    /// Live pushes to make after the commit.
    pub(crate) deliveries: Vec<Delivery>,
    /// What to tell activity watchers (the dashboard) after the commit.
    pub(crate) activity: Vec<Activity>,
    /// Whether anyone watches activity; if not, none is recorded (it costs per message).
    pub(crate) watched: bool,
    /// Work subscriptions the dispatcher should look at after the commit.
    pub(crate) dispatch: Vec<(ClientId, QueueName)>,
    /// Messages assigned to workers (and ordered heads) in this mutation, whose attempts it
    /// commits: the dispatcher sends them after the commit, without a commit of its own.
    pub(crate) assigned: Vec<Assignment>,
    /// Pooled messages given to workers in this mutation: counted on disk already, payload
    /// in hand; the broker sends them as soon as the mutation is applied, before its commit.
    pub(crate) ready: Vec<Assignment>,
    /// Messages pooled in this mutation: after the commit they are marked ready (the
    /// dispatcher reads the payloads not in hand first).
    pub(crate) pooled: Vec<Pooled>,
}

/// A message whose next attempt a mutation counted ahead (see `index::work`).
pub(crate) struct Pooled {
    pub(crate) client: ClientId,
    pub(crate) queue: QueueName,
    pub(crate) seq: u64,
    /// In hand when the mutation published it.
    pub(crate) payload: Option<SharedPayload>,
}

impl Effects {
    /// Records activity for watchers, if there are any.
    pub(crate) fn note(&mut self, kind: ActivityKind) {
        if self.watched {
            self.activity.push(Activity::new(kind));
        }
    }

    /// Records a publish: its live pushes and its activity (nothing for a duplicate). Its
    /// work-mode recipients are the caller's: dispatched now (see `Broker::dispatch_now`) or
    /// later ([`Effects::dispatch_later`]).
    pub(crate) fn published(&mut self, outcome: &PublishOutcome, payload: SharedPayload) {
        if outcome.duplicate {
            return;
        }
        self.deliveries.extend(outcome.deliveries(payload));
        self.note(ActivityKind::Published {
            queue: outcome.receipt.queue.clone(),
            event: outcome.receipt.event.clone(),
            id: outcome.receipt.id.clone(),
            recipients: outcome.receipt.recipients,
            deliver_at: outcome.receipt.deliver_at_ms.map(format_ms),
        });
    }
}

impl Effects {
    /// Takes what a look at `client`'s work subscription to `queue` decided: assignments to
    /// send after the commit, ready ones to send at once, messages pooled. Returns the
    /// messages to move to the dead-letter queue.
    pub(crate) fn dispatched(
        &mut self,
        client: &ClientId,
        queue: &QueueName,
        dispatched: Dispatched,
    ) -> Vec<Arc<MessageMeta>> {
        self.assigned.extend(dispatched.assigned);
        self.ready.extend(dispatched.ready);
        self.pooled
            .extend(dispatched.pooled.into_iter().map(|(seq, payload)| Pooled {
                client: client.clone(),
                queue: queue.clone(),
                seq,
                payload,
            }));
        dispatched.dead
    }

    /// Asks the dispatcher to look at the work-mode recipients of a publish after the commit.
    pub(crate) fn dispatch_later(&mut self, outcome: &PublishOutcome) {
        let queue = &outcome.receipt.queue;
        self.dispatch.extend(
            outcome
                .workers
                .iter()
                .map(|client| (client.clone(), queue.clone())),
        );
    }
}

/// One mutation's effects and the caller waiting for the outcome.
pub(crate) struct Batch {
    pub(crate) effects: Effects,
    pub(crate) done: oneshot::Sender<Result<(), Error>>,
    /// Batches are numbered in the order they are queued (see `Store::note_ahead`).
    pub(crate) number: u64,
}

/// Runs until every sender is gone (the broker is closing) and the queue is empty.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    fanout: mpsc::UnboundedSender<Vec<Delivery>>,
) {
    let mut pending = Vec::new();
    while batches
        .recv_many(&mut pending, MAX_BATCHES_PER_COMMIT)
        .await
        > 0
    {
        // Moved in one copy per batch into a vector of the right size: an `Op` is 176 bytes,
        // and a commit of batched publishes and their acks holds tens of thousands.
        let mut ops: Vec<Op> =
            Vec::with_capacity(pending.iter().map(|b| b.effects.ops.len()).sum());
        for batch in &mut pending {
            ops.append(&mut batch.effects.ops);
        }
        let ops = latest_counters_only(ops);
        let published = ops
            .iter()
            .filter_map(|op| match op {
                Op::PutMessage(message) => Some(message.meta.seq),
                _ => None,
            })
            .max();
        let result = if ops.is_empty() {
            Ok(())
        } else {
            shared.store.commit(ops).await
        };
        match result {
            Ok(()) => {
                if let Some(seq) = published {
                    settle(&shared, seq);
                }
                if let Some(last) = pending.iter().map(|b| b.number).max() {
                    shared.store.committed_through(last);
                }
                for batch in pending.drain(..) {
                    let Effects {
                        deliveries,
                        activity,
                        dispatch,
                        assigned,
                        pooled,
                        ..
                    } = batch.effects;
                    // The dispatcher ends only when the broker closes.
                    if !assigned.is_empty() {
                        // New ack deadlines: the timer may have to wake sooner.
                        shared.timer.notify_one();
                        let _ = shared.dispatch.send(Request::Send(assigned));
                    }
                    let unread = pool_ready(&shared, pooled);
                    if !unread.is_empty() {
                        let _ = shared.dispatch.send(Request::Pooled(unread));
                    }
                    for (client, queue) in dispatch {
                        let _ = shared.dispatch.send(Request::Look(client, queue));
                    }
                    if !deliveries.is_empty() {
                        // The fan-out task ends only after this writer: a send cannot fail
                        // while it runs, and if it did, the messages are still in the inboxes.
                        let _ = fanout.send(deliveries);
                    }
                    for activity in activity {
                        // No watcher is not an error.
                        let _ = shared.activity.send(activity);
                    }
                    let _ = batch.done.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "commit failed; rebuilding the index from the store");
                let error = if err.is_full() {
                    Error::storage_full(format!("nothing was stored: {err}"))
                } else {
                    Error::unavailable(format!("the store could not commit: {err}"))
                };
                fail_all(&mut pending, &error);
                recover(&shared, &mut batches, &error).await;
            }
        }
    }
}

/// Marks the pooled messages of a commit that is now on disk ready, those whose payload is in
/// hand; returns the others, whose payloads the dispatcher reads first.
fn pool_ready(shared: &Shared, pooled: Vec<Pooled>) -> Vec<Pooled> {
    if pooled.is_empty() {
        return pooled;
    }
    let (in_hand, unread): (Vec<_>, Vec<_>) = pooled.into_iter().partition(|p| p.payload.is_some());
    if !in_hand.is_empty() {
        let mut core = shared.lock();
        for entry in in_hand {
            if let Some(payload) = entry.payload {
                core.index
                    .pool_ready(&entry.client, &entry.queue, entry.seq, payload);
            }
        }
    }
    unread
}

/// Drops every `PutCounters` of a queue but the last in one commit: each overwrites the
/// queue's counters record, so only the last is seen, and under load a commit holds one per
/// publish and per ack (hundreds for the same queue).
fn latest_counters_only(mut ops: Vec<Op>) -> Vec<Op> {
    let mut seen = crate::hash::FastSet::default();
    let mut keep = vec![true; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        if let Op::PutCounters { queue, .. } = op
            && !seen.insert(queue.clone())
        {
            keep[i] = false;
        }
    }
    let mut keep = keep.into_iter();
    ops.retain(|_| keep.next().unwrap_or(true));
    ops
}

/// Moves the settled mark up to `seq` (see `Shared::settled`).
fn settle(shared: &Shared, seq: u64) {
    shared.settled.send_if_modified(|mark| {
        let moved = seq > *mark;
        *mark = (*mark).max(seq);
        moved
    });
}

fn fail_all(pending: &mut Vec<Batch>, error: &Error) {
    for batch in pending.drain(..) {
        let _ = batch.done.send(Err(error.clone()));
    }
}

/// Fails what is queued and replaces the index with what the store really holds.
async fn recover(shared: &Shared, batches: &mut mpsc::UnboundedReceiver<Batch>, error: &Error) {
    shared.lock().rebuilding = Some(error.clone());
    // No new batch can arrive now: mutations check `rebuilding` under the same lock.
    let mut queued = Vec::new();
    while let Ok(batch) = batches.try_recv() {
        queued.push(batch);
    }
    fail_all(&mut queued, error);
    let mut delay = Duration::from_millis(50);
    loop {
        match shared.store.load().await {
            Ok(snapshot) => {
                let messages = snapshot.messages.len();
                let mut core = shared.lock();
                // What was published and not committed is gone: nobody waits for it.
                settle(shared, core.index.last_seq());
                core.index = Index::from_snapshot(snapshot);
                core.rebuilding = None;
                tracing::info!(
                    messages,
                    "index rebuilt from the store; accepting writes again"
                );
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot read the store; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Counters;

    fn counters(queue: &str, published: u64) -> Op {
        Op::PutCounters {
            queue: QueueName::parse(queue).unwrap(),
            counters: Counters {
                published,
                ..Counters::default()
            },
        }
    }

    #[test]
    fn only_the_last_counters_of_each_queue_are_written() {
        let ops = vec![
            counters("a", 1),
            Op::DeleteMessage(7),
            counters("b", 1),
            counters("a", 2),
            counters("a", 3),
        ];
        let kept: Vec<String> = latest_counters_only(ops)
            .iter()
            .map(|op| match op {
                Op::PutCounters { queue, counters } => format!("{queue}={}", counters.published),
                Op::DeleteMessage(seq) => format!("delete {seq}"),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(kept, ["delete 7", "b=1", "a=3"]);
    }
}
