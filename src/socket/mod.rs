//! The socket.io API (socketioxide): subscribe, unsubscribe, getAll, received and publish,
//! one event per file in [`events`], all calling the [`Broker`].
//!
//! Layout, mini-redis style, with imports pointing one way (down this list):
//! - this file builds the layer: the namespaces and their connect middleware;
//! - [`connection`]: a socket's life, from the connect middleware to its disconnect, and its
//!   event queue (rate and queue limits, the task that handles events in order);
//! - [`event`]: [`event::Event`], what an event's name means on its namespace, and
//!   [`event::dispatch`], the one match that hands each event to its handler;
//! - [`events`]: one file per event;
//! - [`context`]: [`context::Session`], what a handler knows about its socket;
//! - leaves that import nothing above them: [`reply`] (answers, paced emits), [`rooms`],
//!   [`envelope`] (what a socket receives of a message), [`lane`], [`rate`], [`identity`].
//!
//! Beside them, [`outbox`] and [`live`] deliver committed messages to sockets, found in
//! [`registry`].
//!
//! Ordering: socketioxide runs each event handler as its own task, so two events of one
//! socket could otherwise be handled out of order. Each socket's one socket.io handler
//! (registered in [`connection::prepare`]) is a synchronous closure that only puts the event
//! on the socket's queue, in arrival order, and one task per socket handles the queue in
//! order (a `getAll` right after a `subscribe` sees the subscription). That task, like the
//! socket's other queues' tasks, runs only while its queue holds something ([`lane`]): an
//! idle socket has no task of queuehub's.
//!
//! Namespaces: `/` speaks queuehub's own events. A lab [`Dialect`](crate::compat::Dialect)
//! (the classroom preset) adds its namespaces (and may take over `/` too): there, lab event
//! names and fields are translated into queuehub's, lab events publish, and envelopes are
//! dressed for lab code.
//!
//! Live delivery: a socket that subscribes as client `C` to queue `Q` joins `(C, Q)` in the
//! [`registry`]; the broker's fan-out hands each committed message to every socket that
//! joined its client and queue ([`SocketOutbox`]), through the socket's [`live::Live`]. That never waits: a
//! socket whose buffer is full resumes from its inbox, in order, as soon as it drains.

#[cfg(test)]
mod asyncapi;
mod connection;
mod connections;
mod context;
pub mod dashboard;
mod envelope;
mod event;
mod events;
mod flow;
mod handshake;
pub mod identity;
mod incoming;
mod lane;
mod live;
mod options;
mod outbox;
mod rate;
mod registry;
mod reply;
mod rooms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use crate::broker::Broker;
pub use connections::ConnectionLimit;
use context::consumer_id;
use identity::Identity;
pub use options::SocketOptions;
use outbox::{SocketOutbox, namespaces};
use registry::LiveSockets;
pub use rooms::{connected_sockets, queue_room, sockets_by_node};

/// Bytes the WebSocket reads from a socket's connection at a time (engineioxide's default is
/// 4 KiB). The buffer lives as long as the socket and is written whole at each read, so it
/// is resident even while the socket is idle. 1 KiB still holds several events (acks are
/// about 100 bytes); a client that sends faster costs more reads, not more memory (measured
/// in docs/BENCHMARKS.md).
const WS_READ_BUFFER: usize = 1024;

/// Room in one socket.io packet, beyond the largest payload, for the event name, the envelope
/// fields and JSON escaping. A bigger packet is refused by the engine and its socket closed.
const MAX_PACKET_OVERHEAD: usize = 64 * 1024;

/// queuehub's socket.io side, ready to be layered onto the HTTP router.
pub struct SocketApi {
    /// The socket.io layer, behind [`handshake::compact`].
    pub layer: handshake::Compacted<SocketIoLayer>,
    pub io: SocketIo,
    /// The task that feeds the dashboard (it ends when the broker closes), and its stats.
    pub dashboard: dashboard::DashboardFeed,
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
        .max_buffer_size(options.buffer)
        .ping_interval(options.ping_interval)
        .ping_timeout(options.ping_timeout)
        .ws_read_buffer_size(WS_READ_BUFFER)
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
        // out (see `connection::prepare`).
        let preparing = Arc::clone(&options);
        let prepared = Arc::new(Mutex::new(HashMap::<String, connection::Prepared>::new()));
        let ready = Arc::clone(&prepared);
        let authenticate = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let checked = Identity::check(&for_check, &socket, auth.ok().as_ref())
                .and_then(|_| connections.admit(&socket));
            if checked.is_ok() {
                let handlers = connection::prepare(&socket, &preparing, max_packet);
                if let Ok(mut map) = prepared.lock() {
                    map.insert(consumer_id(&socket), handlers);
                }
            }
            std::future::ready(checked)
        };
        let connect = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let auth = auth.ok();
            let handlers = ready
                .lock()
                .ok()
                .and_then(|mut map| map.remove(&consumer_id(&socket)));
            match (
                Identity::check(&for_start, &socket, auth.as_ref()),
                handlers,
            ) {
                (Ok(identity), Some(handlers)) => {
                    let broker = broker.clone();
                    connection::start(socket, broker, auth, &options, identity, &sockets, handlers);
                }
                // The credential expired between the check and now: refuse after all.
                (_, handlers) => {
                    if let Some(handlers) = handlers {
                        handlers.discard();
                    }
                    options.connections.release(&socket);
                    let _ = socket.disconnect();
                }
            }
            std::future::ready(())
        };
        io.ns(namespace.path.clone(), connect.with(authenticate));
    }
    broker.set_outbox(Arc::new(SocketOutbox::new(sockets)));
    let dashboard = dashboard::start(&io, broker, security);
    SocketApi {
        layer: handshake::in_front_of(layer),
        io,
        dashboard,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The modules of the socket layer (`events/` counts as one) that each refers to, read
    /// from the source: `super::m` and `crate::socket::m`. `mod.rs`, which only assembles
    /// them, is left out.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/socket");
        let mut sources = Vec::new();
        for (dir, nested) in [(root.clone(), false), (root.join("events"), true)] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                if (nested || stem != "mod") && path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // In events/x.rs, `super::` is events/ itself.
                    let up = if nested && stem != "mod" {
                        "super::super::"
                    } else {
                        "super::"
                    };
                    let node = if nested { "events".into() } else { stem };
                    sources.push((node, text, up));
                }
            }
        }
        let nodes: BTreeSet<String> = sources.iter().map(|(node, ..)| node.clone()).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (node, text, up) in &sources {
            let targets = graph.entry(node.clone()).or_default();
            for prefix in [*up, "crate::socket::"] {
                for (at, _) in text.match_indices(prefix) {
                    let rest = &text[at + prefix.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if nodes.contains(&name) && &name != node {
                        targets.insert(name);
                    }
                }
            }
        }
        graph
    }

    /// A path of imports from `from` back to `from`, if there is one.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
        let mut stack = vec![vec![from.to_string()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            for next in &graph[path.last().unwrap()] {
                let mut longer = path.clone();
                longer.push(next.clone());
                if next == from {
                    return Some(longer);
                }
                if seen.insert(next.clone()) {
                    stack.push(longer);
                }
            }
        }
        None
    }

    #[test]
    fn no_socket_module_imports_back_from_a_module_that_imports_it() {
        let graph = imports();
        for node in graph.keys() {
            assert_eq!(cycle(&graph, node), None, "imports go round in a circle");
        }
        let layered = [
            ("context", ["connection", "event", "events"].as_slice()),
            ("events", ["connection", "event"].as_slice()),
            ("event", ["connection"].as_slice()),
        ];
        for (module, never) in layered {
            for above in never {
                assert!(
                    !graph[module].contains(*above),
                    "{module} imports from {above}, which is above it"
                );
            }
        }
    }
}
