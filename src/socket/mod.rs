//! The socket.io API (socketioxide): subscribe, unsubscribe, getAll, received and publish,
//! one event per file, all calling the [`Broker`].
//!
//! Ordering: socketioxide runs each event handler as its own task, so two events of one
//! socket could otherwise be handled out of order. Each socket therefore gets a [`session`]:
//! the handlers registered here are synchronous closures that only put the event on the
//! session's queue, in arrival order, and one task per socket handles the queue in order
//! (a `getAll` right after a `subscribe` sees the subscription).
//!
//! Live delivery: a socket that subscribes as client `C` to queue `Q` joins the room
//! [`room`]`(C, Q)`; the broker's fan-out emits each committed message to that room
//! ([`SocketOutbox`]). Emitting never waits: a socket whose buffer is full misses the live
//! push, and the message waits in its inbox for the next `getAll`.

mod get_all;
mod publish;
mod received;
mod reply;
mod session;
mod subscribe;
mod unsubscribe;

use std::sync::Arc;

use async_trait::async_trait;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::layer::SocketIoLayer;

use crate::broker::{Broker, Delivery, Outbox};
use crate::names::{ClientId, QueueName};

/// Packets a socket may have waiting to be written before emits to it fail.
const SOCKET_BUFFER: usize = 1024;

/// The room of the sockets that receive `client`'s messages from `queue`. Names cannot
/// contain control characters, so the NUL separator cannot be forged.
pub fn room(client: &ClientId, queue: &QueueName) -> String {
    format!("{queue}\u{0}{client}")
}

/// Builds the socket.io layer with the queue namespace `/` and connects the broker's live
/// deliveries to it.
pub fn layer(broker: Broker) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .max_payload(broker.config().max_payload_bytes as u64 + 64 * 1024)
        .build_layer();
    broker.set_outbox(Arc::new(SocketOutbox { io: io.clone() }));
    io.ns(
        "/",
        move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            session::start(socket, broker.clone(), auth.ok());
            std::future::ready(())
        },
    );
    (layer, io)
}

/// Delivers committed messages to the rooms of their clients.
pub struct SocketOutbox {
    io: SocketIo,
}

#[async_trait]
impl Outbox for SocketOutbox {
    async fn deliver(&self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        let room = room(&envelope.client_id, &envelope.queue);
        // Best effort by design: the message stays in the inbox until acked.
        if let Err(err) = self
            .io
            .to(room)
            .emit(envelope.event.as_str(), envelope)
            .await
        {
            tracing::debug!(error = %err, "live push failed; the message waits in the inbox");
        }
    }

    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName) {
        let room = room(client, queue);
        if let Err(err) = self.io.within(room.clone()).leave(room).await {
            tracing::warn!(error = %err, "could not remove sockets from an ended subscription");
        }
    }

    fn connected(&self, client: &ClientId, queue: &QueueName) -> usize {
        self.io.within(room(client, queue)).sockets().len()
    }
}
