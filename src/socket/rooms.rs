//! The rooms a socket joins: one per (client, queue) for the client's messages, and one per
//! queue for a preset's relays (names cannot contain control characters, so the NUL separator
//! cannot be forged); and how many sockets are connected.

use crate::names::{ClientId, QueueName};

/// The room of the sockets that receive `client`'s messages from `queue`.
pub fn room(client: &ClientId, queue: &QueueName) -> String {
    // Built by hand: it is built for every delivery, and `format!` costs ten times more.
    let (queue, client) = (queue.as_str(), client.as_str());
    let mut room = String::with_capacity(queue.len() + 1 + client.len());
    room.push_str(queue);
    room.push('\0');
    room.push_str(client);
    room
}

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
