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
//! [`room`]`(C, Q)`; the broker's fan-out hands each committed message to every socket in
//! that room ([`SocketOutbox`]), through the socket's [`live::Live`]. That never waits: a
//! socket whose buffer is full resumes from its inbox, in order, as soon as it drains.

#[cfg(test)]
mod asyncapi;
mod connections;
pub mod dashboard;
mod get_all;
pub mod identity;
mod live;
mod publish;
mod rate;
mod received;
mod relay;
mod reply;
mod session;
mod subscribe;
mod unsubscribe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
pub(crate) const MAX_PACKET_OVERHEAD: usize = 64 * 1024;

/// The room of the sockets that receive `client`'s messages from `queue`. Names cannot
/// contain control characters, so the NUL separator cannot be forged.
pub fn room(client: &ClientId, queue: &QueueName) -> String {
    format!("{queue}\u{0}{client}")
}

/// The room of every socket subscribed to `queue`, whatever its client (where a preset's
/// relays go). No client is named by the empty string, so it is no client's room.
pub fn queue_room(queue: &QueueName) -> String {
    format!("{queue}\u{0}")
}

/// Whether `envelope` was published by the socket `consumer` with the sender excluded (a
/// preset's `exclude_sender`): its source is then that socket's worker name, which holds a
/// `/` and so is never a client id.
pub(crate) fn sent_by(envelope: &Envelope, consumer: &str) -> bool {
    envelope.source == consumer
}

/// Acknowledges a message that was sent to one of its client's sockets, in a dialect whose
/// labs never acknowledge (`auto_ack`). The commit is awaited in the background.
fn ack_sent(broker: &Broker, envelope: &Envelope) {
    let acked = broker.ack(
        &envelope.client_id,
        Some(&envelope.queue),
        std::slice::from_ref(&envelope.id),
    );
    match acked {
        Ok(pending) => {
            tokio::spawn(async move {
                if let Err(err) = pending.committed().await {
                    tracing::warn!(
                        code = %err.code(),
                        "automatic ack not committed: {}",
                        err.message()
                    );
                }
            });
        }
        Err(err) => tracing::warn!(
            code = %err.code(),
            "automatic ack refused: {}",
            err.message()
        ),
    }
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
    let sockets = LiveSockets::default();
    for namespace in &namespaces {
        let sockets = sockets.clone();
        let broker = broker.clone();
        let options = Arc::clone(&options);
        let (for_check, for_start) = (Arc::clone(&security), Arc::clone(&security));
        let connections = options.connections.clone();
        // Secured mode: a socket without a valid credential is refused here, before the
        // handler, and gets `connect_error` with the reason; so is one over its address's
        // connection limit (counted last, once everything else passed).
        // Once it passed, its event handlers are registered, before the connect packet goes
        // out (see `session::prepare`).
        let preparing = Arc::clone(&options);
        let prepared = Arc::new(Mutex::new(HashMap::<String, session::Prepared>::new()));
        let ready = Arc::clone(&prepared);
        let max_payload = broker.config().max_payload_bytes;
        let authenticate = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let checked = Identity::check(&for_check, &socket, auth.ok().as_ref())
                .and_then(|_| connections.admit(&socket));
            if checked.is_ok() {
                let handlers = session::prepare(&socket, &preparing, max_payload);
                if let Ok(mut map) = prepared.lock() {
                    map.insert(session::consumer_id(&socket), handlers);
                }
            }
            std::future::ready(checked)
        };
        let connect = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let auth = auth.ok();
            let handlers = ready
                .lock()
                .ok()
                .and_then(|mut map| map.remove(&session::consumer_id(&socket)));
            match (
                Identity::check(&for_start, &socket, auth.as_ref()),
                handlers,
            ) {
                (Ok(identity), Some(handlers)) => {
                    let broker = broker.clone();
                    session::start(socket, broker, auth, &options, identity, &sockets, handlers);
                }
                // The credential expired between the check and now: refuse after all.
                _ => {
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
        sockets,
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

/// The live push of every connected socket, by worker name (`"{sid} {namespace}"`).
#[derive(Clone, Default)]
pub struct LiveSockets(Arc<Mutex<HashMap<String, Arc<live::Live>>>>);

impl LiveSockets {
    // std Mutex: map lookups and updates only, never across an await.
    fn get(&self, consumer: &str) -> Option<Arc<live::Live>> {
        self.0.lock().ok()?.get(consumer).cloned()
    }

    pub(crate) fn insert(&self, consumer: String, live: Arc<live::Live>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(consumer, live);
        }
    }

    pub(crate) fn remove(&self, consumer: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(consumer);
        }
    }
}

/// Delivers committed messages to the sockets in the rooms of their clients, in every
/// namespace.
pub struct SocketOutbox {
    io: SocketIo,
    namespaces: Vec<Namespace>,
    sockets: LiveSockets,
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
            let sockets = operators.within(room.clone()).sockets();
            if sockets.is_empty() {
                continue;
            }
            let dressed = namespace.dialect.as_ref().map(|d| d.envelope(envelope));
            let auto_ack = namespace.dialect.as_ref().is_some_and(|d| d.auto_ack);
            let mut sent_to = None;
            for socket in sockets {
                let consumer = session::consumer_id(&socket);
                if sent_by(envelope, &consumer) {
                    continue;
                }
                let Some(live) = self.sockets.get(&consumer) else {
                    continue; // still connecting: it reads its inbox with getAll
                };
                let sent = match &dressed {
                    Some(data) => live.push(&delivery, data),
                    None => live.push(&delivery, envelope),
                };
                if sent {
                    sent_to = Some(live);
                }
            }
            // Every other socket of the client got it: it counts as received, once.
            if auto_ack && let Some(live) = sent_to {
                live.ack_sent(envelope);
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
        match self.sockets.get(consumer) {
            Some(live) => {
                live.assign(envelope);
                true
            }
            None => false,
        }
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
