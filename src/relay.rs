//! Relaying: with Redis storage, every node listens, and a standby passes each connection it
//! accepts to the active node (DECISIONS 66).
//!
//! One node at a time holds a Redis database's lease and runs the broker
//! (`store::redis::lease`). The others used to wait without listening; now each listens on its
//! addresses from the start and relays: every connection it accepts is joined, byte for byte,
//! to the matching address of the active node (its `n`-th HTTP listener to the active node's
//! `n`-th, and the same for the beanstalk door), which the active node advertises in Redis
//! ([`Advert`]). So a client may connect to any node: HTTP, socket.io (WebSocket and
//! long-polling) and beanstalk all reach the one broker, and a message published through one
//! node reaches subscribers connected through another. Relaying is not scale-out: the active
//! node still does all the work.
//!
//! HTTP connections start with a PROXY protocol header naming the client (`crate::proxy_header`)
//! so that the active node counts each client under its own address (`--max-connections-per-ip`,
//! `--max-requests-per-sec`), and a client over its limit gets the active node's answer (429
//! `too_many_connections`) through the relay as it would directly; the relay counts nothing.
//!
//! When the active node goes away its relayed connections close with it; clients reconnect
//! (socket.io clients do by themselves) and reach whichever node is active next. A standby that
//! takes the lease stops relaying and serves on the same listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a relayed connection waits for an active node to be known (during a failover).
const TARGET_WAIT: Duration = Duration::from_secs(5);

/// How long connecting to the active node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes buffered per direction of a relayed connection.
const BUFFER: usize = 16 * 1024;

/// Where the active node serves, as it advertises it to the standbys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    /// Its HTTP (and socket.io) listeners, as `host:port`.
    pub http: Vec<String>,
    /// Its beanstalk listeners.
    #[serde(default)]
    pub beanstalk: Vec<String>,
    /// What a relay's PROXY header must carry for the active node to believe it.
    pub secret: String,
}

impl Advert {
    /// The advert of a node bound to `http` and `beanstalk`; an address that names no host
    /// (`0.0.0.0`, `[::]`) is advertised with `host`.
    pub fn new(http: &[SocketAddr], beanstalk: &[SocketAddr], host: &str, secret: &str) -> Self {
        let reachable = |address: &SocketAddr| {
            if address.ip().is_unspecified() {
                if host.parse::<std::net::Ipv6Addr>().is_ok() {
                    format!("[{host}]:{}", address.port())
                } else {
                    format!("{host}:{}", address.port())
                }
            } else {
                address.to_string()
            }
        };
        Self {
            http: http.iter().map(reachable).collect(),
            beanstalk: beanstalk.iter().map(reachable).collect(),
            secret: secret.to_owned(),
        }
    }

    /// As stored in Redis.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("an advert is plain data")
    }

    /// From Redis; `None` if it is not an advert.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Which door a listener is.
#[derive(Clone, Copy, Debug)]
pub enum Door {
    /// HTTP, socket.io and the dashboard (`--listen`).
    Http,
    /// The beanstalk protocol (`--beanstalk-listen`).
    Beanstalk,
}

/// One listener of a standby.
pub struct Relay {
    /// What it is, and which of its kind (`--listen` order).
    pub door: Door,
    pub index: usize,
    /// The active node's advert, as the lease reads it (`None`: unknown right now).
    pub active: watch::Receiver<Option<String>>,
}

impl Relay {
    /// Relays every connection accepted on `listener` until `stop` turns true, then gives the
    /// listener back (the node serves on it from then on). Connections relayed so far go on.
    pub async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) -> TcpListener {
        let relay = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Ok((client, peer)) = accepted else {
                // Out of file descriptors, say: pause instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let relay = Arc::clone(&relay);
            tokio::spawn(async move {
                if let Err(err) = relay.pass(client, peer).await {
                    tracing::debug!(%peer, error = %err, "relayed connection ended");
                }
            });
        }
        listener
    }

    /// Joins `client` to the active node's matching address until either side closes.
    async fn pass(&self, mut client: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
        let _ = client.set_nodelay(true);
        let mut active = self.active.clone();
        let advert = tokio::time::timeout(TARGET_WAIT, active.wait_for(Option::is_some))
            .await
            .map_err(|_| std::io::Error::other("no active node to relay to"))?
            .map_err(|_| std::io::Error::other("the node became active"))?
            .as_deref()
            .and_then(Advert::parse)
            .ok_or_else(|| std::io::Error::other("the active node's advert is unreadable"))?;
        let targets = match self.door {
            Door::Http => &advert.http,
            Door::Beanstalk => &advert.beanstalk,
        };
        if targets.is_empty() {
            return Err(std::io::Error::other("the active node has no such door"));
        }
        let target = &targets[self.index % targets.len()];
        let mut upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
            .await
            .map_err(|_| std::io::Error::other("the active node did not answer in time"))??;
        let _ = upstream.set_nodelay(true);
        if let Door::Http = self.door {
            use tokio::io::AsyncWriteExt;
            let local = client.local_addr()?;
            let header = crate::proxy_header::encode(peer, local, &advert.secret);
            upstream.write_all(&header).await?;
        }
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER)
            .await
            .map(drop)
    }
}

/// How often a standby checks whether the active node's address still takes connections.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// How many checks in a row must be refused before the active node counts as gone.
const REFUSALS: u32 = 2;

/// Watches whether the active node that `active` names still listens: while its first HTTP
/// address has refused [`REFUSALS`] connections in a row (nothing listens there: its process
/// died), `refusing` holds its advert, else `None`. The lease takes that, with a lease its
/// holder stopped renewing, as the sign to take over at once (`store::redis::lease`). A
/// connection that times out or fails otherwise (an unreachable machine) proves nothing and
/// counts as taken. Ends when nobody reads `refusing` any more.
pub async fn watch_for_refusals(
    active: watch::Receiver<Option<String>>,
    refusing: watch::Sender<Option<String>>,
) {
    let mut refused: u32 = 0;
    let mut watched: Option<String> = None;
    while !refusing.is_closed() {
        tokio::time::sleep(PROBE_EVERY).await;
        let current = active.borrow().clone();
        if current != watched {
            (watched, refused) = (current, 0);
        }
        let target = watched
            .as_deref()
            .and_then(Advert::parse)
            .and_then(|advert| advert.http.into_iter().next());
        refused = match target {
            Some(target) => {
                match tokio::time::timeout(PROBE_EVERY, TcpStream::connect(&target)).await {
                    Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                        refused.saturating_add(1)
                    }
                    _ => 0,
                }
            }
            None => 0,
        };
        let gone = (refused >= REFUSALS).then(|| watched.clone()).flatten();
        refusing.send_if_modified(|now| {
            let changed = *now != gone;
            if changed {
                now.clone_from(&gone);
            }
            changed
        });
    }
}

/// The host other nodes reach this one at, for addresses bound to no host in particular:
/// `configured`, else this machine's name.
pub fn advertised_host(configured: Option<&str>) -> String {
    configured.map_or_else(crate::host::name, str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_advertised_with_the_host() {
        let http: Vec<SocketAddr> = vec!["0.0.0.0:3000".parse().unwrap()];
        let beanstalk: Vec<SocketAddr> = vec!["127.0.0.1:11300".parse().unwrap()];
        let advert = Advert::new(&http, &beanstalk, "node-a", "s");
        assert_eq!(advert.http, ["node-a:3000"]);
        assert_eq!(advert.beanstalk, ["127.0.0.1:11300"]);
        assert_eq!(Advert::parse(&advert.to_text()), Some(advert));
        let v6 = Advert::new(&http, &[], "::1", "s");
        assert_eq!(v6.http, ["[::1]:3000"]);
    }
}
