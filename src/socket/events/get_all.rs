//! `getAll {clientId, queue?, event?, limit?}`: re-sends the client's inbox to this socket in
//! publish order, each message as its event with the envelope; ack `{ok, count}` after the
//! last one.
//!
//! Catch-up streams page by page ([`crate::broker::CATCH_UP_PAGE`] messages read from the
//! store at a time) and waits whenever the socket's buffer is full, so an inbox of any size
//! goes out completely with bounded memory. It runs beside the socket's other events, so
//! acks sent while it streams are handled at once; a socket's catch-ups run one after
//! another, in the order asked.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::{CatchUp, SubscriptionOptions};
use crate::error::Error;
use crate::names::{ClientId, EventName, QueueName};
use crate::socket::context::{Session, parse};
use crate::socket::envelope::{ack_sent, dress, sent_by};
use crate::socket::lane::Pushed;
use crate::socket::reply::{Reply, emit_paced};
use crate::socket::rooms::queue_room;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetAll {
    client_id: Option<ClientId>,
    queue: Option<QueueName>,
    event: Option<EventName>,
    limit: Option<usize>,
}

/// In a lab dialect where each client names its own mailbox, a `getAll` as X makes this
/// socket one of X's sockets: it subscribes X to its queue if needed and joins its room, so
/// live messages follow the catch-up.
fn join_own_queue(session: &Session, client: &ClientId) -> Result<(), Error> {
    let queue = QueueName::parse(client.as_str())?;
    session.identity.check_subscribe(&queue)?;
    session.join([(client.clone(), queue.clone())]);
    session.socket.join(queue_room(&queue));
    if session.broker.subscriptions(client).contains(&queue) {
        return Ok(());
    }
    let pending = session.broker.subscribe(
        client,
        std::slice::from_ref(&queue),
        SubscriptionOptions::default(),
    )?;
    tokio::spawn(async move {
        if let Err(err) = pending.committed().await {
            tracing::warn!(
                code = %err.code(),
                "implicit subscribe was not committed: {}",
                err.message()
            );
        }
    });
    Ok(())
}

fn start(session: &Session, data: Value) -> Result<CatchUp, Error> {
    let request: GetAll = parse(data)?;
    let client = session.client(request.client_id)?;
    if request.limit == Some(0) {
        return Err(Error::invalid_field("limit must be at least 1"));
    }
    if request.queue.is_none() && session.dialect.as_ref().is_some_and(|d| d.queue_per_client) {
        join_own_queue(session, &client)?;
    }
    // Ordered subscriptions catch up one message at a time: their head is sent again.
    session.broker.repush_heads(&client, request.queue.as_ref());
    session
        .broker
        .catch_up(client, request.queue, request.event, request.limit)
}

/// Sends every page; returns how many messages went out.
async fn stream(session: &Session, mut catch_up: CatchUp) -> Result<usize, Error> {
    let mut count = 0;
    let consumer = session.consumer_id();
    loop {
        let page = session.broker.next_page(&mut catch_up).await?;
        if page.is_empty() {
            return Ok(count);
        }
        for envelope in &page {
            if sent_by(envelope, &consumer) {
                continue; // the lab's sender never gets its own message back
            }
            let dressed = dress(session.dialect.as_deref(), envelope);
            let sent = emit_paced(
                &session.socket,
                envelope.event.as_str(),
                &dressed,
                Some(&session.flow),
            )
            .await;
            if sent.is_err() {
                // The socket is gone; the messages stay in the inbox for the next catch-up.
                return Ok(count);
            }
            if session.dialect.as_ref().is_some_and(|d| d.auto_ack) {
                ack_sent(&session.broker, envelope);
            }
            count += 1;
        }
    }
}

/// Handles one `getAll` event: checks it in order with the socket's other events, then
/// queues the streaming to the socket's catch-up task (waiting while a few are queued).
pub async fn handle(session: &Arc<Session>, data: Value, reply: Reply) {
    match start(session, data) {
        Err(err) => reply.now(Err(err)),
        Ok(catch_up) => queue(session, catch_up, Some(reply)).await,
    }
}

/// Starts a catch-up nobody asked for (a dialect's `catch_up_on_subscribe`): `data` is a
/// `getAll` request. A request that cannot start is only logged: the subscribe it follows
/// was answered already.
pub async fn catch_up_quietly(session: &Arc<Session>, data: Value) {
    match start(session, data) {
        Err(err) => tracing::debug!(code = %err.code(), "no catch-up: {}", err.message()),
        Ok(catch_up) => queue(session, catch_up, None).await,
    }
}

/// Queues a catch-up on the socket's lane, starting its task if none runs.
async fn queue(session: &Arc<Session>, catch_up: CatchUp, reply: Option<Reply>) {
    match session
        .catch_ups
        .push_waiting(Box::new((catch_up, reply)))
        .await
    {
        Ok(Pushed::Start) => {
            tokio::spawn(run(Arc::clone(session)));
        }
        Ok(Pushed::Queued) => {}
        Err(job) => {
            if let Some(reply) = job.1 {
                reply.now(Err(Error::shutting_down()));
            }
        }
    }
}

/// Streams a socket's catch-ups one after another, in the order they were asked for, beside
/// its other events. Ends when none waits (the next `getAll` starts it again) or the socket
/// is gone.
pub async fn run(session: Arc<Session>) {
    while let Some(job) = session.catch_ups.next() {
        let (catch_up, reply) = *job;
        let result = stream(&session, catch_up).await;
        // Answered by this task itself, after the last message it sent.
        match reply {
            Some(reply) => {
                reply
                    .send(result.map(|count| json!({ "count": count })))
                    .await
            }
            None => {
                if let Err(err) = result {
                    tracing::warn!(code = %err.code(), "catch-up failed: {}", err.message());
                }
            }
        }
    }
}
