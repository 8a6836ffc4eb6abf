//! [`ConnectionLimit`]: how many sockets one IP address may hold at once (`--max-connections-
//! per-ip`). A socket over the limit is refused at connect with `connect_error`; the count
//! drops when a socket disconnects.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use socketioxide::extract::SocketRef;

use crate::error::{Code, Error};

/// Counts sockets per address; cheap to clone (one shared table).
#[derive(Clone, Default)]
pub struct ConnectionLimit {
    max: Option<usize>,
    // std Mutex: a map update at connect and disconnect, never held across an await.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimit {
    /// At most `max` sockets per address; `None`: no limit (nothing is counted).
    pub fn new(max: Option<usize>) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    fn address(socket: &SocketRef) -> Option<IpAddr> {
        socket
            .req_parts()
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    }

    /// Counts a new socket, or refuses it if its address holds `max` already.
    pub fn admit(&self, socket: &SocketRef) -> Result<(), Error> {
        let (Some(max), Some(ip)) = (self.max, Self::address(socket)) else {
            return Ok(());
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return Err(Error::new(
                Code::TooManyConnections,
                format!("this address already has {max} connections, the limit"),
            ));
        }
        *count += 1;
        Ok(())
    }

    /// Forgets a socket that was admitted.
    pub fn release(&self, socket: &SocketRef) {
        let (Some(_), Some(ip)) = (self.max, Self::address(socket)) else {
            return;
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}
