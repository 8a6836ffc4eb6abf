//! The scenarios, one file each, and what they share: the [`Run`] (target, clock, time
//! limit, names), subscribers that record and ack every delivery ([`subscribe`],
//! [`receive`]), and publishers over HTTP ([`publish`]).

pub mod catchup;
pub mod idle;
mod pace;
pub mod publish;
pub mod work;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

use crate::events::{self, EVENT, Mark};
use crate::http::HttpConn;
use crate::progress::Progress;
use crate::protocol::Packet;
use crate::socket::Socket;
use crate::tally::{self, Sent, Tally};
use crate::target::Target;
use pace::Requests;

/// One scenario's run: where, its clock, its time limit and its names.
pub struct Run {
    pub target: Target,
    /// Where sockets connect, in turn (`--socket-url`; empty: `target`).
    socket_targets: Vec<Target>,
    sockets_made: std::sync::atomic::AtomicUsize,
    pub url: String,
    pub label: Option<String>,
    /// Time zero of the payload marks.
    pub start: Instant,
    /// When the scenario stops, whatever is still missing.
    pub deadline: Instant,
    /// Makes this run's queue and client names unique, so runs against one server do not
    /// see each other's messages.
    prefix: String,
}

impl Run {
    pub fn new(target: Target, url: &str, label: Option<String>, limit: Duration) -> Run {
        let start = Instant::now();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Run {
            target,
            socket_targets: Vec::new(),
            sockets_made: std::sync::atomic::AtomicUsize::new(0),
            url: url.to_owned(),
            label,
            start,
            deadline: start + limit,
            prefix: format!("bench-{}-{millis:x}", std::process::id()),
        }
    }

    /// Connects sockets to `targets` in turn instead of the target (the nodes of one
    /// deployment; publishes still go to the target).
    #[must_use]
    pub fn with_socket_targets(mut self, targets: Vec<Target>) -> Run {
        self.socket_targets = targets;
        self
    }

    /// Where the next socket connects.
    fn socket_target(&self) -> &Target {
        if self.socket_targets.is_empty() {
            return &self.target;
        }
        let n = self.sockets_made.fetch_add(1, Ordering::Relaxed);
        &self.socket_targets[n % self.socket_targets.len()]
    }

    /// A queue name of this run.
    pub fn queue(&self, scenario: &str) -> String {
        format!("{}-{scenario}", self.prefix)
    }

    /// A client id of this run.
    pub fn client(&self, scenario: &str, index: usize) -> String {
        format!("{}-{scenario}-{index}", self.prefix)
    }
}

/// Counters every subscriber bumps as deliveries arrive (for the progress bar and to know
/// when everything is in), and the shared record of which messages arrived at all (work
/// mode, where the workers together receive each message once).
pub struct Live {
    pub deliveries: AtomicU64,
    /// First arrivals: per subscriber, or, with a shared record, over all subscribers.
    pub unique: AtomicU64,
    shared: Option<Vec<AtomicBool>>,
}

impl Live {
    /// Counts first arrivals per subscriber (broadcast: each must receive everything).
    pub fn per_subscriber() -> Arc<Live> {
        Arc::new(Live {
            deliveries: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            shared: None,
        })
    }

    /// Counts first arrivals over all subscribers of messages `0..total` (work mode).
    pub fn shared(total: usize) -> Arc<Live> {
        Arc::new(Live {
            deliveries: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            shared: Some((0..total).map(|_| AtomicBool::new(false)).collect()),
        })
    }

    fn delivered(&self, n: u64, first_here: bool) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let first = match &self.shared {
            Some(seen) => seen
                .get(n as usize)
                .is_some_and(|s| !s.swap(true, Ordering::Relaxed)),
            None => first_here,
        };
        if first {
            self.unique.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connects a socket and subscribes `client_id` to `queue` (`work`: work mode with an
/// optional prefetch). Returns the socket and the subscribe answer; an answer that is not
/// `ok` is an error.
pub async fn subscribe(
    run: &Run,
    client_id: &str,
    queue: &str,
    work: Option<Option<u32>>,
) -> Result<(Socket, Value)> {
    let mut socket = Socket::connect(run.socket_target(), run.deadline).await?;
    let data = events::subscribe(client_id, queue, work);
    let answer = socket
        .call("subscribe", &data, run.deadline, |_, _| {})
        .await?;
    if !events::is_ok(&answer) {
        socket.close().await;
        return Err(Refused(answer).into());
    }
    Ok((socket, answer))
}

/// The server answered a `subscribe` with an error (as opposed to failing to answer).
#[derive(Debug, thiserror::Error)]
#[error("subscribe was refused: {0}")]
pub struct Refused(pub Value);

/// What one subscriber saw.
pub struct Received {
    pub tally: Tally,
    /// When its last delivery arrived.
    pub last: Option<Instant>,
    /// `mq:error` events (refused acks, for instance).
    pub server_errors: u64,
    pub first_error: Option<String>,
}

/// Receives deliveries of messages `0..total` on `socket` until `stop`, recording each in a
/// tally (latency from its mark) and acking each with `received` as it arrives. Ends early
/// if the connection fails (the error is kept).
pub async fn receive(
    mut socket: Socket,
    client_id: String,
    total: usize,
    start: Instant,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> (Socket, Received) {
    let mut seen = Received {
        tally: Tally::new(total),
        last: None,
        server_errors: 0,
        first_error: None,
    };
    while !*stop.borrow() {
        let batch = socket.recv(|packet, out| {
            on_packet(packet, out, &client_id, start, &live, &mut seen);
        });
        tokio::select! {
            result = batch => if let Err(err) = result {
                seen.first_error.get_or_insert(format!("{err:#}"));
                break;
            },
            _ = stop.changed() => break,
        }
    }
    (socket, seen)
}

/// One packet of [`receive`]: a delivery is recorded and acked; an `mq:error` is counted;
/// other events are not the bench's business.
fn on_packet(
    packet: Packet<'_>,
    out: &mut Vec<String>,
    client_id: &str,
    start: Instant,
    live: &Live,
    seen: &mut Received,
) {
    let Packet::Event { args, .. } = packet else {
        return;
    };
    match events::delivery(args) {
        Some(delivery) => {
            let now = Instant::now();
            let at = now.saturating_duration_since(start).as_micros() as u64;
            let first = seen.tally.record(delivery.n, at.saturating_sub(delivery.t));
            live.delivered(delivery.n, first);
            seen.last = Some(now);
            out.push(events::received(client_id, &delivery.id));
        }
        None if events::name(args).as_deref() == Some("mq:error") => {
            seen.server_errors += 1;
            seen.first_error
                .get_or_insert_with(|| format!("server sent {args:.200}"));
        }
        None => {}
    }
}

/// How to publish: `total` messages to `queue`, `concurrency` requests at a time, one
/// message per request or `batch` per array, as fast as answered or on a schedule of
/// `rate` messages per second (open loop: a message's latency counts from its scheduled
/// time, so a late answer cannot hide the messages queued behind it).
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub queue: String,
    pub total: u64,
    pub concurrency: usize,
    pub batch: Option<usize>,
    pub rate: Option<f64>,
    pub payload_bytes: usize,
}

/// What the publishers did.
pub struct Published {
    pub sent: Sent,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Request → answer, in microseconds.
    pub latency: Histogram<u64>,
    /// When the first request was sent (or scheduled).
    pub began: Instant,
}

/// Publishes `load` over HTTP before the run's deadline; see [`Load`].
pub async fn publish(run: &Run, load: &Load) -> Published {
    let began = Instant::now();
    let per_request = load.batch.unwrap_or(1).max(1) as u64;
    let requests = Arc::new(match load.rate {
        Some(rate) => Requests::open(
            began,
            Duration::from_secs_f64(per_request as f64 / rate),
            load.total.div_ceil(per_request),
            run.deadline,
        ),
        None => Requests::closed(),
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..load.concurrency.max(1) {
        let worker = Publisher {
            target: run.target.clone(),
            load: load.clone(),
            start: run.start,
            began,
            deadline: run.deadline,
            requests: requests.clone(),
        };
        workers.spawn(worker.run());
    }
    let mut all = Published {
        sent: Sent::new(load.total as usize),
        errors: 0,
        first_error: None,
        latency: tally::histogram(),
        began,
    };
    while let Some(done) = workers.join_next().await {
        if let Ok(part) = done {
            all.sent.merge(&part.sent);
            all.errors += part.errors;
            all.first_error = all.first_error.or(part.first_error);
            let _ = all.latency.add(&part.latency);
        }
    }
    all
}

/// One publishing connection: takes the next message numbers until all are taken.
struct Publisher {
    target: Target,
    load: Load,
    start: Instant,
    began: Instant,
    deadline: Instant,
    requests: Arc<Requests>,
}

impl Publisher {
    async fn run(self) -> Published {
        let load = &self.load;
        let per_request = load.batch.unwrap_or(1).max(1) as u64;
        let mut done = Published {
            sent: Sent::new(load.total as usize),
            errors: 0,
            first_error: None,
            latency: tally::histogram(),
            began: self.began,
        };
        let mut conn: Option<HttpConn> = None;
        loop {
            let Some(request) = self.requests.next(self.deadline).await else {
                break;
            };
            let first = request * per_request;
            if first >= load.total {
                break;
            }
            let numbers = first..(first + per_request).min(load.total);
            // Released by the schedule (see `pace`): its latency counts from the schedule.
            let scheduled = load
                .rate
                .map(|rate| self.began + Duration::from_secs_f64(first as f64 / rate));
            if Instant::now() >= self.deadline {
                break;
            }
            let sent_at = Instant::now();
            let t = micros(self.start, scheduled.unwrap_or(sent_at));
            let (path, body) = self.request(numbers.clone(), t);
            let result = match conn.as_mut() {
                Some(c) => timeout_at(self.deadline, c.post(&path, body)).await,
                None => match timeout_at(self.deadline, HttpConn::connect(&self.target)).await {
                    Ok(Ok(c)) => timeout_at(self.deadline, conn.insert(c).post(&path, body)).await,
                    Ok(Err(err)) => Ok(Err(err)),
                    Err(elapsed) => Err(elapsed),
                },
            };
            match result {
                Ok(Ok(_)) => {
                    numbers.for_each(|n| done.sent.accept(n));
                    let took = sent_at.elapsed().as_micros() as u64;
                    done.latency.saturating_record(took.max(1));
                }
                Ok(Err(err)) => {
                    done.errors += numbers.end - numbers.start;
                    done.first_error.get_or_insert(format!("{err:#}"));
                    conn = None; // a fresh connection for the next request
                }
                Err(_) => {
                    done.errors += numbers.end - numbers.start;
                    done.first_error
                        .get_or_insert("a publish was unanswered at the time limit".into());
                    break;
                }
            }
        }
        done
    }

    /// The path and JSON body publishing `numbers`, marked with time `t`.
    fn request(&self, numbers: std::ops::Range<u64>, t: u64) -> (String, Bytes) {
        let load = &self.load;
        let size = load.payload_bytes;
        #[derive(Serialize)]
        struct One<'a> {
            event: &'a str,
            payload: Mark<'a>,
        }
        #[derive(Serialize)]
        struct InBatch<'a> {
            queue: &'a str,
            event: &'a str,
            payload: Mark<'a>,
        }
        // Serializing these plain structs into JSON cannot fail.
        match load.batch {
            None => {
                let one = One {
                    event: EVENT,
                    payload: Mark::padded(numbers.start, t, size),
                };
                let path = format!("/v1/queues/{}/messages", load.queue);
                (path, serde_json::to_vec(&one).unwrap_or_default().into())
            }
            Some(_) => {
                let batch: Vec<InBatch> = numbers
                    .map(|n| InBatch {
                        queue: &load.queue,
                        event: EVENT,
                        payload: Mark::padded(n, t, size),
                    })
                    .collect();
                let body = serde_json::to_vec(&batch).unwrap_or_default();
                ("/v1/messages".to_owned(), body.into())
            }
        }
    }
}

fn micros(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_micros() as u64
}

/// Shows progress until `live.unique` reaches `target` (`u64::MAX` while it is not known:
/// the publishers still run) or the deadline passes. True if the deadline passed first.
pub async fn wait_for(run: &Run, live: &Live, progress: &Progress, target: &AtomicU64) -> bool {
    loop {
        progress.set(live.deliveries.load(Ordering::Relaxed));
        if live.unique.load(Ordering::Relaxed) >= target.load(Ordering::Relaxed) {
            return false;
        }
        if Instant::now() >= run.deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Connects and subscribes `count` sockets, `CONNECTING` at a time: socket `i` as client
/// `client(i)` to `queue`. Fails at the first refusal (after closing the others).
pub async fn subscribe_all(
    run: &Run,
    count: usize,
    queue: &str,
    work: Option<Option<u32>>,
    client: impl Fn(usize) -> String,
) -> Result<Vec<(Socket, String, Value)>> {
    use futures_util::StreamExt;
    let results: Vec<Result<(Socket, String, Value)>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let client_id = client(i);
            async move {
                let (socket, answer) = subscribe(run, &client_id, queue, work).await?;
                Ok((socket, client_id, answer))
            }
        })
        .buffered(CONNECTING)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(count);
    let mut failure = None;
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    match failure {
        None => Ok(sockets),
        Some(err) => {
            close_all(sockets.into_iter().map(|(s, _, _)| s)).await;
            Err(err)
        }
    }
}

/// Sockets connecting at once (a burst of thousands would overflow a listen backlog).
const CONNECTING: usize = 64;

/// Closes sockets, all at once.
pub async fn close_all(sockets: impl IntoIterator<Item = Socket>) {
    futures_util::future::join_all(sockets.into_iter().map(Socket::close)).await;
}

/// Starts [`receive`] on each socket; returns the switch that stops them and their tasks.
pub fn receive_all(
    run: &Run,
    sockets: Vec<(Socket, String, Value)>,
    total: usize,
    live: &Arc<Live>,
) -> (
    watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<(Socket, Received)>>,
) {
    let (stop, stopped) = watch::channel(false);
    let tasks = sockets
        .into_iter()
        .map(|(socket, client_id, _)| {
            tokio::spawn(receive(
                socket,
                client_id,
                total,
                run.start,
                live.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    (stop, tasks)
}

/// Stops the receivers, closes their sockets and returns what each received.
pub async fn stop_all(
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<(Socket, Received)>>,
) -> Vec<Received> {
    let _ = stop.send(true);
    let mut sockets = Vec::with_capacity(tasks.len());
    let mut received = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok((socket, seen)) = task.await {
            sockets.push(socket);
            received.push(seen);
        }
    }
    close_all(sockets).await;
    received
}
