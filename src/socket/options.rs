//! [`SocketOptions`]: how the socket.io side is set up (the lab dialect, secured mode, the
//! rate and connection limits), as `app.rs` builds it from the configuration.

use std::sync::Arc;
use std::time::Duration;

use super::connections::ConnectionLimit;
use crate::auth::Security;
use crate::compat::Dialect;

/// How the socket.io side is set up.
#[derive(Clone)]
pub struct SocketOptions {
    /// A lab dialect (the classroom preset), if any.
    pub dialect: Option<Arc<Dialect>>,
    /// API keys and the token secret (secured mode).
    pub security: Arc<Security>,
    /// Events one socket may send per second (and in a burst).
    pub events_per_sec: u32,
    /// Packets one socket may have waiting to be written before emits to it fail.
    pub buffer: usize,
    /// How often engine.io pings each client, and how long a ping waits for its pong.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Sockets one IP address may hold at once.
    pub connections: ConnectionLimit,
}

impl SocketOptions {
    /// The dialect spoken on namespace `path`, if any.
    pub(super) fn dialect_of(&self, path: &str) -> Option<Arc<Dialect>> {
        self.dialect
            .as_ref()
            .filter(|d| d.namespaces.iter().any(|n| n == path))
            .cloned()
    }
}
