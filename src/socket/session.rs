//! A socket's session: its identity, its queue of events, and the task that handles them in
//! the order they arrived.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::extract::{Event, SocketRef, TryData};
use tokio::sync::{mpsc, watch};

use super::identity::{Identity, query};
use super::live::Live;
use super::rate::RateLimit;
use super::reply::{AckHandle, Replies, Reply};
use super::{LiveSockets, SocketOptions};
use super::{get_all, publish, received, relay, subscribe, unsubscribe};
use crate::broker::{ActivityKind, Broker};
use crate::compat::{Dialect, EventKind, NATIVE_EVENTS};
use crate::error::{Code, Error, from_json_error};
use crate::json::StrictJson;
use crate::names::ClientId;

/// Events one socket may have waiting to be handled; more are refused with `rate_limited`.
/// Handling an event does not wait for its commit, so the queue drains at memory speed; it
/// is long enough for a consumer that acks a large backlog as fast as it reads it.
const QUEUE_LENGTH: usize = 16_384;

/// What one waiting event costs beyond its data, counted against [`QUEUE_BYTES`].
const COMMAND_OVERHEAD: usize = 256;

/// Bytes of event data one socket may have waiting to be handled (or two of the largest
/// packets, if more): with [`QUEUE_LENGTH`], what bounds a socket that floods.
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// `getAll`s one socket may have waiting behind the one that streams.
const CATCH_UP_QUEUE: usize = 16;

/// One event waiting to be handled.
struct Command {
    kind: EventKind,
    data: Result<Value, String>,
    /// About how much memory `data` takes, counted against [`QUEUE_BYTES`].
    size: usize,
    reply: Reply,
}

/// The way into a socket's event queue, shared by its handlers.
#[derive(Clone)]
struct Inlet {
    tx: mpsc::Sender<Box<Command>>,
    rate: Arc<Mutex<RateLimit>>,
    /// Bytes of event data waiting in the queue.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    replies: Replies,
}

/// About how much memory a JSON value takes: its text, give or take.
fn approximate_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 8,
        Value::Array(items) => 8 + items.iter().map(approximate_size).sum::<usize>(),
        Value::Object(map) => {
            8 + map
                .iter()
                .map(|(k, v)| k.len() + 8 + approximate_size(v))
                .sum::<usize>()
        }
        _ => 8,
    }
}

/// What a handler knows about the socket it serves.
pub struct Session {
    pub socket: SocketRef,
    pub broker: Broker,
    /// The client id given at connect (`auth: {clientId}` or `?clientId=`), used when an
    /// event omits `clientId`.
    pub client: Option<ClientId>,
    /// The lab dialect of this socket's namespace, if any.
    pub dialect: Option<Arc<Dialect>>,
    /// What the socket proved at connect (secured mode).
    pub identity: Identity,
    /// The clients this socket has subscribed as, named when it disconnects.
    pub acted_for: Arc<Mutex<BTreeSet<ClientId>>>,
}

impl Session {
    /// How the broker names this socket as a work-mode worker.
    pub fn consumer_id(&self) -> String {
        consumer_id(&self.socket)
    }

    /// The event's `clientId`, else the one given at connect.
    pub fn client(&self, given: Option<ClientId>) -> Result<ClientId, Error> {
        self.identity.acting_as(given, self.client.as_ref())
    }
}

/// Parses an event's payload into `T`; a payload that is not an object is an `invalid_field`.
pub fn parse<T: DeserializeOwned>(data: Value) -> Result<T, Error> {
    if !data.is_object() {
        return Err(Error::invalid_field(
            "the event's payload must be a JSON object",
        ));
    }
    serde_json::from_value(data).map_err(|e| from_json_error(&e))
}

/// A socket's worker name: its id and its namespace (see `SocketOutbox::deliver_to`).
pub(super) fn consumer_id(socket: &SocketRef) -> String {
    format!("{} {}", socket.id, socket.ns())
}

/// The client id a socket gave at connect, from `auth: {clientId}` or the query string.
/// With a token, the token's client; otherwise the one the socket named at connect.
fn connect_client(
    socket: &SocketRef,
    auth: Option<Value>,
    identity: &Identity,
) -> Option<ClientId> {
    if let Some(client) = identity.client() {
        return Some(client.clone());
    }
    let from_auth = auth
        .as_ref()
        .and_then(|a| a.get("clientId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    ClientId::parse(from_auth.or_else(|| query(socket, "clientId"))?).ok()
}

/// What a socket's handlers feed, kept from [`prepare`] until [`start`].
pub struct Prepared {
    commands: mpsc::Receiver<Box<Command>>,
    queued: Arc<AtomicUsize>,
    closed_tx: watch::Sender<bool>,
    closed: watch::Receiver<bool>,
}

/// Registers the event handlers of a socket that passed the connect checks. Called from the
/// connect middleware: socketioxide sends the namespace's connect packet before it calls the
/// connect handler, and a client may send its first event the moment it has that packet, so
/// the handlers must exist before it is sent. Events queue up until [`start`].
pub fn prepare(socket: &SocketRef, options: &SocketOptions, max_payload_bytes: usize) -> Prepared {
    let dialect = options.dialect_of(socket.ns());
    // Boxed: a channel allocates its first block of slots at once, and the socket's idle
    // memory is counted in slots (see `reply::Replies`).
    let (tx, commands) = mpsc::channel::<Box<Command>>(QUEUE_LENGTH);
    let (closed_tx, closed) = watch::channel(false);
    let replies = Replies::start(socket, closed.clone());
    let max_packet = max_payload_bytes + super::MAX_PACKET_OVERHEAD;
    let inlet = Inlet {
        tx,
        rate: Arc::new(Mutex::new(RateLimit::new(options.events_per_sec))),
        queued: Arc::new(AtomicUsize::new(0)),
        max_queued: QUEUE_BYTES.max(2 * max_packet),
        replies,
    };
    let queued = Arc::clone(&inlet.queued);
    let events = match &dialect {
        Some(dialect) => dialect.events(),
        None => NATIVE_EVENTS
            .iter()
            .map(|e| (e.to_string(), EventKind::Native(e)))
            .collect(),
    };
    let known: Vec<String> = events.iter().map(|(name, _)| name.clone()).collect();
    for (event, kind) in events {
        let inlet = inlet.clone();
        let name = event.clone();
        socket.on(
            event,
            move |socket: SocketRef, TryData(data): TryData<StrictJson>, ack: AckHandle| {
                let reply = Reply {
                    event: name.clone(),
                    socket,
                    ack,
                    replies: inlet.replies.clone(),
                };
                let data = data.map(StrictJson::into_inner).map_err(|e| e.to_string());
                let size = COMMAND_OVERHEAD + data.as_ref().map_or(0, approximate_size);
                inlet.enqueue(Command {
                    kind,
                    data,
                    size,
                    reply,
                });
                std::future::ready(())
            },
        );
    }
    socket.on_fallback(
        move |socket: SocketRef, Event(event): Event, ack: AckHandle| {
            let error = if allowed(&inlet.rate) {
                Error::invalid_field(format!(
                    "unknown event '{event}'; queuehub handles {}",
                    known.join(", ")
                ))
                .with_code(Code::UnknownEvent)
            } else {
                too_fast()
            };
            Reply {
                event,
                socket,
                ack,
                replies: inlet.replies.clone(),
            }
            .now(Err(error));
            std::future::ready(())
        },
    );

    Prepared {
        commands,
        queued,
        closed_tx,
        closed,
    }
}

/// Starts the session of a socket whose handlers [`prepare`] registered: joins the rooms of
/// the client it named at connect and starts the task that handles its events in order.
pub fn start(
    socket: SocketRef,
    broker: Broker,
    auth: Option<Value>,
    options: &SocketOptions,
    identity: Identity,
    sockets: &LiveSockets,
    prepared: Prepared,
) {
    let Prepared {
        commands,
        queued,
        closed_tx,
        closed,
    } = prepared;
    let dialect = options.dialect_of(socket.ns());
    // Registered before the socket joins any room, so that no live push passes it by.
    sockets.insert(
        consumer_id(&socket),
        Live::new(socket.clone(), broker.clone(), dialect.clone()),
    );
    let client = connect_client(&socket, auth, &identity);
    tracing::info!(sid = %socket.id, client = ?client.as_ref().map(ClientId::as_str), "socket connected");
    // A socket that names its client at connect is one of that client's sockets: it receives
    // the live pushes of the client's existing subscriptions without subscribing again.
    if let Some(client) = &client {
        let rooms: Vec<String> = broker
            .subscriptions(client)
            .iter()
            .map(|queue| super::room(client, queue))
            .collect();
        socket.join(rooms);
        broker.repush_heads(client, None);
    }

    broker.announce(ActivityKind::Connected {
        client: client.clone(),
    });
    let acted_for = Arc::new(Mutex::new(BTreeSet::from_iter(client.clone())));
    let (gone_broker, gone_clients) = (broker.clone(), Arc::clone(&acted_for));
    let connections = options.connections.clone();
    let gone_sockets = sockets.clone();
    socket.on_disconnect(move |socket: SocketRef| {
        tracing::info!(sid = %socket.id, "socket disconnected");
        connections.release(&socket);
        gone_sockets.remove(&consumer_id(&socket));
        gone_broker.detach(&consumer_id(&socket));
        let clients = gone_clients.lock().map(|c| c.clone()).unwrap_or_default();
        if clients.is_empty() {
            gone_broker.announce(ActivityKind::Disconnected { client: None });
        }
        for client in clients {
            gone_broker.announce(ActivityKind::Disconnected {
                client: Some(client),
            });
        }
        closed_tx.send_replace(true);
        std::future::ready(())
    });

    let session = Arc::new(Session {
        socket,
        broker,
        client,
        dialect,
        identity,
        acted_for,
    });
    tokio::spawn(run(session, commands, queued, closed));
}

/// Whether the socket may send one more event now.
fn allowed(rate: &Mutex<RateLimit>) -> bool {
    // std Mutex: one socket's own handlers, a few instructions, never across an await.
    rate.lock().map(|mut r| r.allow()).unwrap_or(true)
}

/// Whether an event counts against `--max-events-per-sec`. Acks (`received`) and catch-up
/// requests (`getAll`) are a consumer doing its job, as fast as messages reach it: they are
/// bounded by the socket's queue (and a flood of them by its answer stages), never refused
/// for their rate. Everything that creates work (publish, lab events, subscribe,
/// unsubscribe, unknown events) counts.
fn counts_against_rate(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Native("received" | "getAll") | EventKind::Ignored
    )
}

fn too_fast() -> Error {
    Error::new(
        Code::RateLimited,
        "this socket sends more events per second than allowed; slow down",
    )
}

impl Inlet {
    /// Puts one event on the session's queue, or refuses it at once if the socket is over
    /// its rate or its queue is full. A refusal costs a counter, and a place in the socket's
    /// answer queue while one is free.
    fn enqueue(&self, command: Command) {
        if counts_against_rate(command.kind) && !allowed(&self.rate) {
            command.reply.now(Err(too_fast()));
            return;
        }
        let size = command.size;
        if self.queued.fetch_add(size, Ordering::Relaxed) + size > self.max_queued {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            command.reply.now(Err(queue_full()));
            return;
        }
        if let Err(
            mpsc::error::TrySendError::Full(command) | mpsc::error::TrySendError::Closed(command),
        ) = self.tx.try_send(Box::new(command))
        {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            command.reply.now(Err(queue_full()));
        }
    }
}

fn queue_full() -> Error {
    Error::new(
        Code::RateLimited,
        format!(
            "more than {QUEUE_LENGTH} events (or {} MiB) are waiting on this socket; slow down",
            QUEUE_BYTES / (1024 * 1024)
        ),
    )
}

/// Handles the socket's events one after another until it disconnects.
async fn run(
    session: Arc<Session>,
    mut commands: mpsc::Receiver<Box<Command>>,
    queued: Arc<AtomicUsize>,
    mut closed: watch::Receiver<bool>,
) {
    let (catch_ups, jobs) = mpsc::channel::<Box<get_all::Job>>(CATCH_UP_QUEUE);
    tokio::spawn(get_all::run(Arc::clone(&session), jobs, closed.clone()));
    loop {
        let next = tokio::select! {
            command = commands.recv() => command,
            _ = closed.wait_for(|closed| *closed) => None,
        };
        let Some(command) = next else {
            return;
        };
        let Command {
            kind,
            data,
            size,
            reply,
        } = *command;
        queued.fetch_sub(size, Ordering::Relaxed);
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                reply.now(Err(crate::json::unreadable(&err)));
                continue;
            }
        };
        // Each handler applies its event to the broker before returning, and answers in the
        // background once the change is durable: events take effect in the order sent, while
        // their commits overlap.
        let native = match kind {
            EventKind::Native(native) => native,
            EventKind::App(index) => {
                publish::handle_app_event(&session, index, data, reply);
                continue;
            }
            EventKind::Relay(_) => {
                let relayed = relay::handle(&session, &reply.event, &data).await;
                reply.now(relayed);
                continue;
            }
            EventKind::Ignored => {
                reply.now(Ok(serde_json::json!({ "ignored": true })));
                continue;
            }
        };
        let Some(dialect) = session.dialect.clone() else {
            handle_native(&session, native, data, reply, &catch_ups).await;
            continue;
        };
        // A lab event that also goes to the other sockets of its room (`join`).
        let relayed = dialect.relay(&reply.event).map(|_| data.clone());
        let name = reply.event.clone();
        let data = dialect.translate(native, data);
        let catch_up = (native == "subscribe" && dialect.catch_up_on_subscribe).then(|| {
            let mut request = serde_json::Map::new();
            for field in ["clientId", "queue"] {
                if let Some(value) = data.get(field) {
                    request.insert(field.into(), value.clone());
                }
            }
            Value::Object(request)
        });
        handle_native(&session, native, data, reply, &catch_ups).await;
        if let Some(request) = catch_up {
            get_all::catch_up_quietly(&session, request, &catch_ups).await;
        }
        if let Some(data) = relayed
            && let Err(err) = relay::handle(&session, &name, &data).await
        {
            tracing::debug!(code = %err.code(), "not relayed: {}", err.message());
        }
    }
}

/// Handles one of queuehub's own events (already translated from a lab's dialect).
async fn handle_native(
    session: &Session,
    native: &str,
    data: Value,
    reply: Reply,
    catch_ups: &mpsc::Sender<Box<get_all::Job>>,
) {
    match native {
        "subscribe" => subscribe::handle(session, data, reply),
        "unsubscribe" => unsubscribe::handle(session, data, reply),
        "getAll" => get_all::handle(session, data, reply, catch_ups).await,
        "received" => received::handle(session, data, reply),
        "publish" => publish::handle(session, data, reply),
        _ => reply.now(Err(Error::invalid_field(format!(
            "'{native}' has no handler"
        ))
        .with_code(Code::UnknownEvent))),
    }
}
