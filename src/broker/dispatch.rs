//! The dispatcher: one task that hands work-mode messages to workers.
//!
//! It is asked to look at a (client, queue) work subscription whenever something may have
//! changed there: a message entered its inbox, a worker acked (room again), a worker joined
//! or left, an ack deadline passed. Each round assigns deliverable messages to workers with
//! room (the attempt counts are committed first: persist, then send), reads their payloads,
//! and sends each to its worker through the [`Outbox`](super::Outbox). A message that was
//! delivered `maxDeliveries` times moves to `<queue>.dead` instead, in one commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::message::{Envelope, NewMessage, SharedPayload, now_ms};
use super::writer::Pooled;
use super::{Broker, index};
use crate::error::Error;
use crate::names::{ClientId, QueueName};

impl Broker {
    /// Makes `consumer` (a socket) a worker of `client`'s work-mode subscription to `queue`,
    /// with room for `prefetch` unacked messages; it is given messages at once.
    pub fn attach(
        &self,
        client: &ClientId,
        queue: &QueueName,
        consumer: String,
        prefetch: usize,
    ) -> Result<(), Error> {
        self.shared
            .lock()
            .index
            .attach(client, queue, consumer, prefetch)?;
        self.request_dispatch(client.clone(), queue.clone());
        Ok(())
    }

    /// Removes worker `consumer` (its socket left); what it held goes to other workers.
    pub fn detach(&self, consumer: &str) {
        let touched = self.shared.lock().index.detach(consumer);
        for (client, queue) in touched {
            self.request_dispatch(client, queue);
        }
    }

    fn request_dispatch(&self, client: ClientId, queue: QueueName) {
        let _ = self.shared.dispatch.send(Request::Look(client, queue));
    }

    /// Inside a mutation: assigns what `client`'s work-mode (or ordered) subscription to
    /// `queue` can take now, counting the attempts in the same commit, so that the messages
    /// go out right after it (the work cycle needs no commit of its own: an ack, or a publish,
    /// and the next assignment share one). Messages delivered too often are left to the
    /// dispatcher, which moves them to the dead-letter queue. `online` tells whether a client
    /// has a socket on a queue; it is asked only for an ordered subscription.
    pub(crate) fn dispatch_now(
        index: &mut index::Index,
        effects: &mut super::writer::Effects,
        (client, queue): (&ClientId, &QueueName),
        now: u64,
        online: &dyn Fn(&ClientId, &QueueName) -> bool,
    ) {
        let dispatched = index.dispatch(client, queue, now, &mut effects.ops);
        let dead = effects.dispatched(client, queue, dispatched);
        let online = index.is_ordered(client, queue) && online(client, queue);
        if let Some(head) = index.ordered_head(client, queue, now, online, &mut effects.ops) {
            effects.assigned.push(head);
        }
        if !dead.is_empty() {
            effects.dispatch.push((client.clone(), queue.clone()));
        }
    }

    /// Sends the head of `client`'s ordered subscriptions (on `queue`, or all) again: a
    /// socket joined, or asked to catch up.
    pub fn repush_heads(&self, client: &ClientId, queue: Option<&QueueName>) {
        let queues = {
            let mut core = self.shared.lock();
            let queues: Vec<QueueName> = core
                .index
                .dispatched_queues(client)
                .into_iter()
                .filter(|q| queue.is_none_or(|wanted| wanted == q))
                .collect();
            for q in &queues {
                core.index.repush_head(client, q);
            }
            queues
        };
        for q in queues {
            self.request_dispatch(client.clone(), q);
        }
    }
}

/// What the dispatcher is asked to do.
pub(crate) enum Request {
    /// Look at a work (or ordered) subscription: assign, commit, send.
    Look(ClientId, QueueName),
    /// Send assignments whose attempts were committed already (ordered heads have no
    /// consumer: they go to every socket of the client on that queue).
    Send(Vec<index::Assignment>),
    /// Messages pooled by a commit that is now on disk: read the payloads not in hand and
    /// mark them ready.
    Pooled(Vec<Pooled>),
}

/// Runs until the broker closes.
pub(super) async fn run(broker: Broker, mut requests: mpsc::UnboundedReceiver<Request>) {
    let closed = broker.closed();
    tokio::pin!(closed);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = &mut closed => return,
            n = requests.recv_many(&mut batch, 1024) => if n == 0 { return },
        }
        // Sends go out in the order they were committed; the same subscription asked for
        // many times is looked at once, after them.
        let mut looks = BTreeSet::new();
        for request in batch.drain(..) {
            match request {
                Request::Look(client, queue) => {
                    looks.insert((client, queue));
                }
                Request::Pooled(pooled) => {
                    if let Err(err) = make_ready(&broker, pooled).await {
                        tracing::warn!(
                            code = %err.code(),
                            "reading pooled messages failed: {}",
                            err.message()
                        );
                    }
                }
                Request::Send(assignments) => {
                    if let Err(err) = send_committed(&broker, assignments).await {
                        tracing::warn!(
                            code = %err.code(),
                            "sending assignments failed: {}",
                            err.message()
                        );
                    }
                }
            }
        }
        for (client, queue) in looks {
            if let Err(err) = round(&broker, &client, &queue).await {
                tracing::warn!(code = %err.code(), client = %client, queue = %queue, "dispatch failed: {}", err.message());
            }
        }
    }
}

/// Assigns, commits, and sends, until nothing more can be given to a worker.
async fn round(broker: &Broker, client: &ClientId, queue: &QueueName) -> Result<(), Error> {
    loop {
        let now = now_ms();
        let online = broker.online()(client, queue);
        let (assignments, dead, head) = broker
            .mutate(|index, effects| {
                let mut dispatched = index.dispatch(client, queue, now, &mut effects.ops);
                // Pooled messages go out at once and mark themselves ready after the commit;
                // the rest is sent below.
                let assignments = std::mem::take(&mut dispatched.assigned);
                let dead = effects.dispatched(client, queue, dispatched);
                let head = index.ordered_head(client, queue, now, online, &mut effects.ops);
                Ok((assignments, dead, head))
            })?
            .committed()
            .await?;
        if let Some(head) = head {
            push_head(broker, head).await?;
        }
        if !dead.is_empty() {
            dead_letter(broker, client, queue, dead).await?;
        }
        if assignments.is_empty() {
            return Ok(());
        }
        // New ack deadlines: the timer may have to wake sooner than it planned.
        broker.shared.timer.notify_one();
        send(broker, assignments).await?;
    }
}

/// Marks pooled messages ready, reading the payloads not in hand (all in one read). A pooled
/// message that was given to a worker meanwhile went out after a commit like any other.
async fn make_ready(broker: &Broker, pooled: Vec<Pooled>) -> Result<(), Error> {
    let payloads = broker
        .payloads_in_hand(pooled.iter().map(|p| (p.seq, p.payload.clone())))
        .await?;
    let mut core = broker.shared.lock();
    for (entry, payload) in pooled.into_iter().zip(payloads) {
        if let Some(payload) = payload {
            core.index
                .pool_ready(&entry.client, &entry.queue, entry.seq, payload);
        }
    }
    Ok(())
}

/// Sends assignments (and ordered heads) committed by another mutation.
async fn send_committed(broker: &Broker, assigned: Vec<index::Assignment>) -> Result<(), Error> {
    let (heads, assignments): (Vec<_>, Vec<_>) =
        assigned.into_iter().partition(|a| a.consumer.is_empty());
    for head in heads {
        push_head(broker, head).await?;
    }
    if assignments.is_empty() {
        return Ok(());
    }
    send(broker, assignments).await
}

/// Pushes the head of an ordered subscription to all the client's sockets on its queue.
async fn push_head(broker: &Broker, head: index::Assignment) -> Result<(), Error> {
    let payload = broker
        .payloads_in_hand([(head.meta.seq, head.payload.clone())])
        .await?
        .pop()
        .flatten();
    if let (Some(outbox), Some(payload)) = (broker.shared.outbox.get(), payload) {
        let envelope = Envelope::new(&head.meta, payload, &head.client, head.attempt);
        let seq = head.meta.seq;
        outbox
            .deliver(super::Delivery {
                envelope,
                seq,
                head: true,
            })
            .await;
    }
    Ok(())
}

/// Sends each assignment to its worker, reading the payloads not in hand first.
async fn send(broker: &Broker, assignments: Vec<index::Assignment>) -> Result<(), Error> {
    let payloads = broker
        .payloads_in_hand(assignments.iter().map(|a| (a.meta.seq, a.payload.clone())))
        .await?;
    give(broker, assignments.into_iter().zip(payloads));
    Ok(())
}

/// Gives each assignment to its worker, without waiting; a worker that cannot take it
/// (gone) hands it back: the attempt still counts, and the message goes to the next worker
/// with room when the subscription is looked at again (a worker leaving triggers that).
pub(super) fn give(
    broker: &Broker,
    assignments: impl IntoIterator<Item = (index::Assignment, Option<SharedPayload>)>,
) {
    let outbox = broker.shared.outbox.get();
    for (assignment, payload) in assignments {
        let sent = match (outbox, payload) {
            (Some(outbox), Some(payload)) => {
                let envelope = Envelope::new(
                    &assignment.meta,
                    payload,
                    &assignment.client,
                    assignment.attempt,
                );
                outbox.deliver_to(&assignment.consumer, &envelope)
            }
            _ => false,
        };
        if !sent {
            broker.shared.lock().index.hand_back(
                &assignment.client,
                &assignment.meta.queue,
                assignment.meta.seq,
            );
        }
    }
}

/// Moves messages delivered too often to `<queue>.dead`: removed from the inbox and
/// published to the dead-letter queue (same event, payload and source) in one commit.
async fn dead_letter(
    broker: &Broker,
    client: &ClientId,
    queue: &QueueName,
    dead: Vec<Arc<crate::store::MessageMeta>>,
) -> Result<(), Error> {
    let Some(dead_queue) = queue.dead_letter() else {
        return Err(Error::invalid_name(format!(
            "queue '{queue}' is too long to have a dead-letter queue"
        )));
    };
    let seqs = dead.iter().map(|m| m.seq).collect();
    let payloads = broker.payloads(seqs).await?;
    let now = now_ms();
    let online = broker.online();
    broker
        .mutate(|index, effects| {
            for (meta, payload) in dead.iter().zip(payloads) {
                let Some(text) = payload else { continue };
                let Ok(value) = serde_json::from_str(&text) else {
                    continue;
                };
                if !index.dead_letter(client, queue, meta.seq, &mut effects.ops) {
                    continue;
                }
                let message = NewMessage::new(
                    dead_queue.clone(),
                    meta.event.clone(),
                    value,
                    meta.source.as_ref(),
                );
                let outcome = index.publish(&message, text, now, &online, &mut effects.ops);
                effects.published(&outcome, SharedPayload::of(&message.payload));
                effects.dispatch_later(&outcome);
            }
            Ok(())
        })?
        .committed()
        .await
}
