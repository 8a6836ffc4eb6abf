//! The accept loop: takes TCP connections from one listener and serves HTTP/1.1 (WebSocket
//! upgrades included) on each with hyper, in place of `axum::serve`, which cannot bound the
//! time a client takes to send its request headers.
//!
//! What it adds, per connection:
//! - **Header timeout.** A request's headers must arrive within the request timeout, the
//!   first request's as every later one's on a keep-alive connection (hyper's
//!   `header_read_timeout`); otherwise the connection is closed. A client that trickles its
//!   headers a byte at a time (slowloris), or sends nothing at all, cannot hold a connection.
//!   (The body and the handler are bounded by the router's own timeout layer.)
//! - **Per-address limit.** With `--max-connections-per-ip`, every TCP connection (plain HTTP,
//!   long-polling, WebSocket) counts for its peer's address from accept until it closes; an
//!   upgraded WebSocket keeps its place for as long as it is open. A connection over the limit
//!   is answered `429 too_many_connections` (the `refusal` router) and closed.
//! - **`TCP_NODELAY`**, so that a short reply is not held back by Nagle's algorithm.
//! - **`ConnectInfo<SocketAddr>`** in every request's extensions, as
//!   `into_make_service_with_connect_info` put it, for handlers and the socket layer, and
//!   [`EnteredAt`], the address the client connected to (with Redis, a relaying
//!   standby names both in a PROXY header: `crate::proxy_header`).
//!
//! Accept errors (EMFILE when the process is out of file descriptors, ...) neither end nor
//! spin the loop: it logs them at most every few seconds and pauses briefly.
//!
//! Shutdown: when `stop` turns true the loop stops accepting, asks every connection to finish
//! its request in flight and close (hyper's graceful shutdown), and returns once all have.
//! Upgraded WebSockets are not waited for. [`Connections::hang_up`] cuts the connections that
//! would stay open (WebSockets, then long polls): their reads and writes fail from then on,
//! so the socket layer sees them end and the client sees the connection close without a
//! goodbye, which every socket.io client takes as a reason to reconnect (DECISIONS 76).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::hash::FastMap;
use crate::proxy_header;

/// How long the loop pauses after an accept error that is not one connection's own.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// At most one log line about accept errors per this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Connections over their address's limit that may be waiting for their 429 at once; more
/// are closed without an answer, so refusals cannot take every file descriptor.
const MAX_REFUSING: usize = 256;

/// The longest a refused connection is kept waiting for its request (then closed).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The address a client's connection entered the deployment at: the relaying node's address
/// it connected to, or this node's own. Every request carries it (like `ConnectInfo`), so
/// that a socket knows which node it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnteredAt(pub SocketAddr);

/// What every connection of every listener shares.
#[derive(Clone)]
pub struct Connections {
    /// The application: API, dashboard and socket.io.
    pub app: Router,
    /// Answers a connection over its address's limit (429 `too_many_connections`).
    pub refusal: Router,
    /// A request's headers must arrive within this time.
    pub header_timeout: Duration,
    /// Connections per peer address.
    pub peers: PeerLimit,
    /// Refused connections being answered right now.
    refusing: Arc<AtomicUsize>,
    /// With Redis storage: the secret with which standbys relaying a client's connection
    /// name that client in a PROXY header (`crate::relay`); `None`: no header is read.
    relayed: Option<Arc<str>>,
    /// The connections served now, to hang up when the server stops.
    lines: Arc<Lines>,
}

impl Connections {
    /// Shared state for the accept loops of one server.
    pub fn new(app: Router, refusal: Router, header_timeout: Duration, peers: PeerLimit) -> Self {
        Self {
            app,
            refusal,
            header_timeout,
            peers,
            refusing: Arc::default(),
            relayed: None,
            lines: Arc::default(),
        }
    }

    /// Cuts connections that are still open: every one with `Hang::All`, or only those that
    /// left HTTP for a WebSocket with `Hang::Upgraded`. A cut connection's reads and writes
    /// fail from then on, so whatever serves it ends, and the client sees the connection
    /// close with nothing more said. For stopping only: socket.io would otherwise close each
    /// socket with engine.io's close packet, which python-socketio takes as "the server does
    /// not want you back" and does not reconnect after (the official JavaScript client does
    /// either way).
    pub fn hang_up(&self, which: Hang) {
        let open = self.lines.open.lock().unwrap_or_else(|p| p.into_inner());
        for line in open.values() {
            if matches!(which, Hang::All) || line.upgraded.load(Ordering::Acquire) {
                line.cut();
            }
        }
    }

    /// Accepts connections relayed by standbys: those that start with a PROXY header carrying
    /// `secret` count for the client it names (see `crate::proxy_header`).
    #[must_use]
    pub fn accepting_relays(mut self, secret: &str) -> Self {
        self.relayed = Some(Arc::from(secret));
        self
    }
}

/// Accepts connections on `listener` until `stop` turns true, then waits for the
/// connections it accepted to finish (see the module docs).
pub async fn serve(
    listener: TcpListener,
    connections: Connections,
    mut stop: watch::Receiver<bool>,
) {
    // Every connection task holds a receiver; `closed()` completes when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                errors.note(&err);
                if !is_connection_error(&err) {
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                        () = stopped(&mut stop) => break,
                    }
                }
                continue;
            }
        };
        // Best effort: a socket that cannot take the option is still served.
        let _ = stream.set_nodelay(true);
        let task = ConnectionTask {
            peer,
            entered_at: stream.local_addr().unwrap_or(peer),
            stop: stop.clone(),
            _open: open_rx.clone(),
            line: None,
        };
        match &connections.relayed {
            None => admit(&connections, stream, task),
            Some(secret) => {
                // The header (if any) comes first: read it in the connection's own task.
                let (connections, secret) = (connections.clone(), Arc::clone(secret));
                tokio::spawn(async move {
                    let mut stream = stream;
                    let mut task = task;
                    let mut stop = task.stop.clone();
                    let header = tokio::select! {
                        header = proxy_header::read(&mut stream, &secret, connections.header_timeout) => header,
                        // Nothing of a request has been read: closed, as hyper closes an idle
                        // connection when the server stops.
                        () = stopped(&mut stop) => return,
                    };
                    match header {
                        Ok(relayed) => {
                            if let Some(relayed) = relayed {
                                task.peer = relayed.client;
                                task.entered_at = relayed.entered_at;
                            }
                            admit(&connections, stream, task);
                        }
                        Err(err) => tracing::debug!(peer = %task.peer, error = %err,
                            "connection closed: a bad relay header"),
                    }
                });
            }
        }
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Serves `stream` if its address has room, or refuses it.
fn admit(connections: &Connections, stream: TcpStream, mut task: ConnectionTask) {
    match connections.peers.admit(task.peer.ip()) {
        Some(slot) => {
            let line = Lines::open(&connections.lines);
            task.line = Some(Arc::clone(&line.line));
            let io = Counted {
                stream,
                _slot: slot,
                line,
            };
            let serving = Serving {
                router: connections.app.clone(),
                header_timeout: connections.header_timeout,
                keep_alive: true,
            };
            tokio::spawn(task.run(io, serving));
        }
        None => refuse(connections, stream, task),
    }
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Answers a connection over its address's limit with 429, or closes it at once when too
/// many refusals are being answered already.
fn refuse(connections: &Connections, stream: TcpStream, task: ConnectionTask) {
    let refusing = Arc::clone(&connections.refusing);
    if refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return; // dropping the stream closes it
    }
    let serving = Serving {
        router: connections.refusal.clone(),
        header_timeout: connections.header_timeout.min(REFUSAL_TIMEOUT),
        keep_alive: false,
    };
    tokio::spawn(async move {
        task.run(stream, serving).await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Whether an accept error concerns only the connection being accepted (the peer gave up).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Rate-limited logging of accept errors.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn note(&mut self, err: &io::Error) {
        if is_connection_error(err) {
            tracing::debug!(error = %err, "a connection was reset before it was accepted");
            return;
        }
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < ACCEPT_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %err,
            "cannot accept connections (out of file descriptors?); retrying ({} more since the last report)",
            self.suppressed
        );
        self.last_logged = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// How one connection is served.
struct Serving {
    router: Router,
    header_timeout: Duration,
    /// False: answer one request, then close.
    keep_alive: bool,
}

/// One accepted connection's task.
struct ConnectionTask {
    peer: SocketAddr,
    /// The address the client connected to (a relay's, or this node's).
    entered_at: SocketAddr,
    stop: watch::Receiver<bool>,
    /// Held until the connection is done (see [`serve`]).
    _open: watch::Receiver<()>,
    /// Its place among the open connections (refused connections have none).
    line: Option<Arc<Line>>,
}

impl ConnectionTask {
    /// Serves HTTP/1.1 on `io` until the connection closes.
    async fn run<I>(mut self, io: I, serving: Serving)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (peer, entered_at) = (self.peer, EnteredAt(self.entered_at));
        let service = serving
            .router
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(entered_at);
                request
            });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(serving.header_timeout)
            .keep_alive(serving.keep_alive);
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .with_upgrades();
        let mut connection = pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped(&mut self.stop) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = result {
            // Timeouts, resets and malformed requests end here; none is the server's fault.
            tracing::debug!(%peer, error = %err, "connection closed");
        }
        // HTTP is done with the connection: if it is still open, a WebSocket has it now.
        if let Some(line) = &self.line {
            line.upgraded.store(true, Ordering::Release);
        }
    }
}

/// Which connections [`Connections::hang_up`] cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hang {
    /// Those a WebSocket took over from HTTP.
    Upgraded,
    /// Every one still open (long polls and requests that outlasted the grace included).
    All,
}

/// The connections of a server that are open now, by a number of their own.
#[derive(Default)]
struct Lines {
    open: Mutex<FastMap<u64, Arc<Line>>>,
    next: AtomicU64,
}

impl Lines {
    /// Registers a new connection; it leaves when the returned [`Listed`] is dropped.
    fn open(lines: &Arc<Self>) -> Listed {
        let id = lines.next.fetch_add(1, Ordering::Relaxed);
        let line = Arc::new(Line::default());
        let mut open = lines.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(id, Arc::clone(&line));
        Listed {
            line,
            id,
            lines: Arc::clone(lines),
        }
    }
}

/// One open connection as [`Connections::hang_up`] sees it.
#[derive(Default)]
struct Line {
    cut: AtomicBool,
    /// Its HTTP exchange ended with the connection still open: a WebSocket serves it.
    upgraded: AtomicBool,
    /// The tasks waiting to read and to write, woken when it is cut.
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Line {
    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.reader.wake();
        self.writer.wake();
    }

    /// Whether the connection is cut; if not, `waker` is woken when it is.
    fn is_cut(&self, waker: &AtomicWaker, cx: &Context<'_>) -> bool {
        if self.cut.load(Ordering::Acquire) {
            return true;
        }
        waker.register(cx.waker());
        self.cut.load(Ordering::Acquire)
    }
}

/// A connection's entry in [`Lines`], removed when the connection is dropped.
struct Listed {
    line: Arc<Line>,
    id: u64,
    lines: Arc<Lines>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut open = self.lines.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&self.id);
    }
}

/// What a cut connection's reads and writes return.
fn cut_off() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the server is stopping")
}

/// How many connections each address holds (`--max-connections-per-ip`); cheap to clone
/// (one shared table).
#[derive(Clone, Default)]
pub struct PeerLimit {
    max: Option<usize>,
    open: OpenTable,
}

/// Open connections per address. std Mutex: a map update at accept and at close, never held
/// across an await.
type OpenTable = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl PeerLimit {
    /// At most `max` connections per address; `None`: no limit (nothing is counted).
    pub fn new(max: Option<usize>) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` if it holds `max` already. The
    /// place is given back when the returned [`Slot`] is dropped.
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let Some(max) = self.max else {
            return Some(Slot { held: None });
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            held: Some((Arc::clone(&self.open), ip)),
        })
    }

    /// Connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's place in its address's count; dropping it gives the place back.
pub struct Slot {
    held: Option<(OpenTable, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((open, ip)) = self.held.take() else {
            return;
        };
        let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// A TCP stream that holds its [`Slot`]: the place is given back when the stream is dropped,
/// which for an upgraded WebSocket is when the WebSocket closes, not when the HTTP
/// exchange that opened it ends.
///
/// It is also listed among the open connections, and once [`Connections::hang_up`] cuts it,
/// its reads and writes fail.
struct Counted {
    stream: TcpStream,
    _slot: Slot,
    line: Listed,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let line = &this.line.line;
        if line.is_cut(&line.reader, cx) {
            return Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let line = &this.line.line;
        if line.is_cut(&line.writer, cx) {
            return Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let line = &this.line.line;
        if line.is_cut(&line.writer, cx) {
            return Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_place_back_when_a_connection_closes() {
        let limit = PeerLimit::new(Some(2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limit.admit(a).expect("first");
        let _second = limit.admit(a).expect("second");
        assert!(limit.admit(a).is_none(), "over the limit");
        assert!(
            limit.admit(b).is_some(),
            "another address has its own count"
        );
        drop(first);
        assert_eq!(limit.count(a), 1);
        assert!(limit.admit(a).is_some(), "a place was given back");
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let limit = PeerLimit::new(None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..1000)
            .map(|_| limit.admit(ip).expect("admitted"))
            .collect();
        assert_eq!(limit.count(ip), 0);
        drop(slots);
    }
}
