//! The socket.io API (socketioxide): subscribe, unsubscribe, getAll, received and publish,
//! one event per file, all calling the [`Broker`].
//!
//! Ordering: socketioxide runs each event handler as its own task, so two events of one
//! socket could otherwise be handled out of order. Each socket therefore gets a [`session`]:
//! the handlers registered here are synchronous closures that only put the event on the
//! session's queue, in arrival order, and one task per socket handles the queue in order
//! (a `getAll` right after a `subscribe` sees the subscription).
//!
//! Namespaces: `/` speaks queuehub's own events. A lab [`Dialect`] (the classroom preset)
//! adds its namespaces (and may take over `/` too): there, lab event names and fields are
//! translated into queuehub's, lab events publish, and envelopes are dressed for lab code.
//!
//! Live delivery: a socket that subscribes as client `C` to queue `Q` joins the room
//! [`room`]`(C, Q)`; the broker's fan-out emits each committed message to that room
//! ([`SocketOutbox`]). Emitting never waits: a socket whose buffer is full misses the live
//! push, and the message waits in its inbox for the next `getAll`.

mod connections;
pub mod dashboard;
mod get_all;
pub mod identity;
mod publish;
mod rate;
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

use crate::auth::Security;
use crate::broker::{Broker, Delivery, Envelope, Outbox};
use crate::compat::Dialect;
use crate::names::{ClientId, QueueName};
pub use connections::ConnectionLimit;
use identity::Identity;
use socketioxide::handler::ConnectHandler;

/// Packets a socket may have waiting to be written before emits to it fail.
const SOCKET_BUFFER: usize = 1024;

/// Room in one socket.io packet, beyond the largest payload, for the event name, the envelope
/// fields and JSON escaping. A bigger packet is refused by the engine and its socket closed.
const MAX_PACKET_OVERHEAD: usize = 64 * 1024;

/// The room of the sockets that receive `client`'s messages from `queue`. Names cannot
/// contain control characters, so the NUL separator cannot be forged.
pub fn room(client: &ClientId, queue: &QueueName) -> String {
    format!("{queue}\u{0}{client}")
}

/// A namespace queuehub serves, and the lab dialect it speaks, if any.
#[derive(Clone)]
struct Namespace {
    path: String,
    dialect: Option<Arc<Dialect>>,
}

/// The namespaces to serve: `/` always; a dialect adds its own (and may speak on `/` too).
fn namespaces(dialect: Option<&Arc<Dialect>>) -> Vec<Namespace> {
    let mut namespaces = vec![Namespace {
        path: "/".into(),
        dialect: None,
    }];
    for path in dialect.map_or(&[][..], |d| d.namespaces.as_slice()) {
        match namespaces.iter_mut().find(|n| &n.path == path) {
            Some(existing) => existing.dialect = dialect.cloned(),
            None => namespaces.push(Namespace {
                path: path.clone(),
                dialect: dialect.cloned(),
            }),
        }
    }
    namespaces
}

/// queuehub's socket.io side, ready to be layered onto the HTTP router.
pub struct SocketApi {
    pub layer: SocketIoLayer,
    pub io: SocketIo,
    /// The task that feeds the dashboard (it ends when the broker closes), and its stats.
    pub dashboard: dashboard::DashboardFeed,
}

/// How the socket.io side is set up.
#[derive(Clone, Default)]
pub struct SocketOptions {
    /// A lab dialect (the classroom preset), if any.
    pub dialect: Option<Arc<Dialect>>,
    /// API keys and the token secret (secured mode).
    pub security: Arc<Security>,
    /// Events one socket may send per second (and in a burst).
    pub events_per_sec: u32,
    /// Sockets one IP address may hold at once.
    pub connections: ConnectionLimit,
}

impl SocketOptions {
    /// The dialect spoken on namespace `path`, if any.
    fn dialect_of(&self, path: &str) -> Option<Arc<Dialect>> {
        self.dialect
            .as_ref()
            .filter(|d| d.namespaces.iter().any(|n| n == path))
            .cloned()
    }
}

/// Builds the socket.io layer with queuehub's namespaces (`/`, those of a lab dialect, and
/// `/dashboard`) and connects the broker's live deliveries to it.
pub fn layer(broker: Broker, options: SocketOptions) -> SocketApi {
    let options = Arc::new(options);
    let security = Arc::clone(&options.security);
    let dialect = options.dialect.clone();
    // One packet may carry the largest payload plus room for the rest of the event. The
    // engine applies `max_payload` to HTTP long-polling only; WebSocket messages and frames
    // have limits of their own (64 MiB and 16 MiB by default), set to the same here.
    let max_packet = broker.config().max_payload_bytes + MAX_PACKET_OVERHEAD;
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .max_payload(max_packet as u64)
        .ws_max_message_size(max_packet)
        .ws_max_frame_size(max_packet)
        .build_layer();
    let namespaces = namespaces(dialect.as_ref());
    for namespace in &namespaces {
        let broker = broker.clone();
        let options = Arc::clone(&options);
        let (for_check, for_start) = (Arc::clone(&security), Arc::clone(&security));
        let connections = options.connections.clone();
        // Secured mode: a socket without a valid credential is refused here, before the
        // handler, and gets `connect_error` with the reason; so is one over its address's
        // connection limit (counted last, once everything else passed).
        let authenticate = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let checked = Identity::check(&for_check, &socket, auth.ok().as_ref())
                .and_then(|_| connections.admit(&socket));
            std::future::ready(checked)
        };
        let connect = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let auth = auth.ok();
            match Identity::check(&for_start, &socket, auth.as_ref()) {
                Ok(identity) => {
                    session::start(socket, broker.clone(), auth, &options, identity);
                }
                // The credential expired between the check and now: refuse after all.
                Err(_) => {
                    options.connections.release(&socket);
                    let _ = socket.disconnect();
                }
            }
            std::future::ready(())
        };
        io.ns(namespace.path.clone(), connect.with(authenticate));
    }
    broker.set_outbox(Arc::new(SocketOutbox {
        io: io.clone(),
        namespaces,
    }));
    let dashboard = dashboard::start(&io, broker, security);
    SocketApi {
        layer,
        io,
        dashboard,
    }
}

/// How many sockets are connected, over every namespace.
pub fn connected_sockets(io: &SocketIo) -> usize {
    io.nsps().into_iter().map(|ns| ns.sockets().len()).sum()
}

/// Delivers committed messages to the rooms of their clients, in every namespace.
pub struct SocketOutbox {
    io: SocketIo,
    namespaces: Vec<Namespace>,
}

#[async_trait]
impl Outbox for SocketOutbox {
    async fn deliver(&self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        let room = room(&envelope.client_id, &envelope.queue);
        for namespace in &self.namespaces {
            let Some(operators) = self.io.of(&namespace.path) else {
                continue;
            };
            let operators = operators.to(room.clone());
            // Best effort by design: the message stays in the inbox until acked.
            let result = match &namespace.dialect {
                Some(dialect) => {
                    let data = dialect.envelope(envelope);
                    operators.emit(envelope.event.as_str(), &data).await
                }
                None => operators.emit(envelope.event.as_str(), envelope).await,
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "live push failed; the message waits in the inbox");
            }
        }
    }

    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName) {
        let room = room(client, queue);
        for namespace in &self.namespaces {
            let Some(operators) = self.io.of(&namespace.path) else {
                continue;
            };
            if let Err(err) = operators.within(room.clone()).leave(room.clone()).await {
                tracing::warn!(error = %err, "could not remove sockets from an ended subscription");
            }
        }
    }

    fn deliver_to(&self, consumer: &str, envelope: &Envelope) -> bool {
        let Some((sid, path)) = consumer.split_once(' ') else {
            return false;
        };
        let Some(namespace) = self.namespaces.iter().find(|n| n.path == path) else {
            return false;
        };
        let socket = sid
            .parse()
            .ok()
            .and_then(|sid| self.io.of(path)?.get_socket(sid));
        let Some(socket) = socket else {
            return false;
        };
        let event = envelope.event.as_str();
        let sent = match &namespace.dialect {
            Some(dialect) => socket.emit(event, &dialect.envelope(envelope)),
            None => socket.emit(event, envelope),
        };
        sent.is_ok()
    }

    fn connected(&self, client: &ClientId, queue: &QueueName) -> usize {
        let room = room(client, queue);
        self.namespaces
            .iter()
            .filter_map(|n| self.io.of(&n.path))
            .map(|operators| operators.within(room.clone()).sockets().len())
            .sum()
    }
}
