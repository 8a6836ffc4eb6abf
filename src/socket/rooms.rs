//! The socket.io rooms a socket joins: one per queue, where a preset's relays go (which
//! sockets receive which client's messages is `registry`'s, not a room's); and how many
//! sockets are connected.

use crate::names::QueueName;

/// The room of every socket subscribed to `queue`, whatever its client (where a preset's
/// relays go). No client is named by the empty string, so it is no client's room.
pub fn queue_room(queue: &QueueName) -> String {
    format!("{queue}\u{0}")
}

/// How many sockets are connected, over every namespace.
pub fn connected_sockets(io: &socketioxide::SocketIo) -> usize {
    io.nsps().into_iter().map(|ns| ns.sockets().len()).sum()
}

/// How many sockets are connected through each node (the address their client connected to:
/// this node's, or a relaying standby's; `crate::relay`), over every namespace, by address.
pub fn sockets_by_node(io: &socketioxide::SocketIo) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for ns in io.nsps() {
        for socket in ns.sockets() {
            let node = socket
                .req_parts()
                .extensions
                .get::<crate::serve::EnteredAt>()
                .map_or_else(|| "unknown".to_owned(), |at| at.0.to_string());
            *counts.entry(node).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}
