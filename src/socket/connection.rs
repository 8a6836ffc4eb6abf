//! A socket's connection: from the connect middleware ([`prepare`]) through its life
//! ([`start`]) to its disconnect. It owns the socket's event queue: every event is read
//! ([`Event::parse`]) and checked against the socket's rate and queue limits the moment it
//! arrives, then handled in arrival order by one task ([`run`]) that hands each to
//! [`event::dispatch`], and a run of acks waiting together to [`event::dispatch_acks`]
//! as one change. That task runs only while events wait ([`Lane`]).
//!
//! Imports point one way: this module uses the event router and the [`Session`] context;
//! neither of them, nor any handler in `events/`, imports from here.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{self, SocketRef, TryData};
use socketioxide::handler::{FromMessageParts, MessageHandler, Value as SioValue};
use socketioxide::socket::Socket;

use super::context::Session;
use super::event::{self, Event, PlainReceived, Received, unknown_event};
use super::flow::Flow;
use super::identity::{Identity, query};
use super::incoming;
use super::lane::{Lane, Pushed};
use super::live::Live;
use super::options::SocketOptions;
use super::rate::RateLimit;
use super::registry::LiveSockets;
use super::reply::{AckHandle, Replies, Reply};
use crate::broker::{ActivityKind, Broker};
use crate::error::{Code, Error};
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

/// Most `received` events of one socket applied as one change: a bound on how long one such
/// change holds the broker's lock (a few microseconds per ack).
const ACKS_TOGETHER: usize = 256;

/// `getAll`s one socket may have waiting behind the one that streams.
const CATCH_UP_QUEUE: usize = 16;

/// One event waiting to be handled.
struct Command {
    event: Event,
    data: Data,
    /// About how much memory `data` takes, counted against [`QUEUE_BYTES`].
    size: usize,
    reply: Reply,
}

/// An event's first argument, as read on arrival.
enum Data {
    /// As JSON, or why it could not be read.
    Json(Result<Value, String>),
    /// A `received` read straight into its fields ([`PlainReceived`]).
    Ack(Received),
}

impl Data {
    /// About how much memory it takes, counted against [`QUEUE_BYTES`].
    fn approximate_size(&self) -> usize {
        match self {
            Data::Json(Ok(value)) => approximate_size(value),
            Data::Json(Err(_)) => 0,
            Data::Ack(ack) => ack.approximate_size(),
        }
    }

    /// The fields of a `received`.
    fn into_ack(self) -> Result<Received, Error> {
        match self {
            Data::Ack(ack) => Ok(ack),
            Data::Json(Ok(data)) => Received::from_value(data),
            Data::Json(Err(err)) => Err(crate::json::unreadable(&err)),
        }
    }
}

/// The way into a socket's event queue, shared by its socket.io handler, its disconnect
/// handler and the task that handles the queue.
struct Inlet {
    /// The events waiting to be handled, in arrival order (boxed: a `Command` is large, and
    /// a burst's buffer is counted in slots). Paused until the session starts.
    events: Lane<Box<Command>>,
    rate: Mutex<RateLimit>,
    /// Bytes of event data waiting in the queue.
    queued: AtomicUsize,
    max_queued: usize,
    replies: Replies,
    /// The context the events are handled in, once started. Weak: the socket's handlers
    /// hold the inlet, and the session holds the socket.
    session: OnceLock<Weak<Session>>,
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
    inlet: Arc<Inlet>,
}

impl Prepared {
    /// The socket will not start after all: drops what its handlers queued.
    pub fn discard(self) {
        self.inlet.close();
    }
}

/// Registers the event handlers of a socket that passed the connect checks. Called from the
/// connect middleware: socketioxide sends the namespace's connect packet before it calls the
/// connect handler, and a client may send its first event the moment it has that packet, so
/// the handlers must exist before it is sent. Events queue up until [`start`].
pub fn prepare(socket: &SocketRef, options: &SocketOptions, max_packet: usize) -> Prepared {
    let dialect = options.dialect_of(socket.ns());
    let inlet = Arc::new(Inlet {
        events: Lane::paused(QUEUE_LENGTH),
        rate: Mutex::new(RateLimit::new(options.events_per_sec)),
        queued: AtomicUsize::new(0),
        max_queued: QUEUE_BYTES.max(2 * max_packet),
        replies: Replies::new(socket.id),
        session: OnceLock::new(),
    });
    let prepared = Prepared {
        inlet: Arc::clone(&inlet),
    };
    // One handler for every event (socketioxide's fallback): a handler per event name would
    // cost every socket a map and a boxed closure per name.
    socket.on_fallback(Inbound { inlet, dialect });

    prepared
}

/// A socket's handler of every event: reads it and puts it on the socket's queue (or, when
/// nothing waits there and its handler never waits, handles it at once).
///
/// It implements socketioxide's `MessageHandler` itself instead of being an async closure:
/// socketioxide spawns a task for every event an async closure handles, a task switch per
/// event that this handler, which never waits, does not need.
struct Inbound {
    inlet: Arc<Inlet>,
    dialect: Option<Arc<crate::compat::Dialect>>,
}

impl MessageHandler<LocalAdapter, Inbound> for Inbound {
    fn call(&self, socket: Arc<Socket<LocalAdapter>>, value: SioValue, ack_id: Option<i64>) {
        // Most events a consumer sends are acks: read those straight into their fields.
        let plain_ack = self.dialect.is_none().then(|| {
            incoming::read_named::<PlainReceived>(&value, RECEIVED).and_then(|ack| ack.checked())
        });
        match plain_ack.flatten() {
            Some(fields) => {
                let mut value = value;
                let Ok(ack) = AckHandle::from_message_parts(&socket, &mut value, &ack_id);
                self.take(socket, RECEIVED.to_owned(), Data::Ack(fields), ack);
            }
            None => self.read_and_take(socket, value, ack_id),
        }
    }
}

/// The name of queuehub's own ack event.
const RECEIVED: &str = "received";

impl Inbound {
    /// Reads an event's name and data, then takes it.
    fn read_and_take(
        &self,
        socket: Arc<Socket<LocalAdapter>>,
        mut value: SioValue,
        ack_id: Option<i64>,
    ) {
        // The name and data in one pass (`incoming`); else the extractors an async handler
        // would be given, in the same order, none of which can fail but the event name (a
        // packet without one is not an event).
        let (name, data) = match incoming::read(&value) {
            Some((name, data)) => (name, Ok(data)),
            None => {
                let Ok(extract::Event(name)) =
                    extract::Event::from_message_parts(&socket, &mut value, &ack_id)
                else {
                    return;
                };
                let Ok(TryData(data)) =
                    TryData::<StrictJson>::from_message_parts(&socket, &mut value, &ack_id);
                (name, data.map_err(|e| e.to_string()))
            }
        };
        let Ok(ack) = AckHandle::from_message_parts(&socket, &mut value, &ack_id);
        let data = Data::Json(data.map(StrictJson::into_inner));
        self.take(socket, name, data, ack);
    }

    /// Answers an event nobody handles at once; queues any other (or handles it at once,
    /// see [`Inlet::enqueue_or_handle`]).
    fn take(&self, socket: Arc<Socket<LocalAdapter>>, name: String, data: Data, ack: AckHandle) {
        let (inlet, dialect) = (&self.inlet, self.dialect.as_deref());
        let event = Event::parse(&name, dialect);
        let reply = Reply {
            event: name,
            socket: SocketRef::from(socket),
            ack,
            replies: inlet.replies.clone(),
        };
        match event {
            // Answered at once, queued behind nothing: there is nothing to handle.
            Event::Unknown => {
                let error = if allowed(&inlet.rate) {
                    unknown_event(&reply.event, dialect)
                } else {
                    too_fast()
                };
                reply.now(Err(error));
            }
            event => {
                let size = COMMAND_OVERHEAD + data.approximate_size();
                let command = Command {
                    event,
                    data,
                    size,
                    reply,
                };
                match event.at_once(dialect) {
                    Some(at_once) => inlet.enqueue_or_handle(command, at_once),
                    None => inlet.enqueue(command),
                }
            }
        }
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
    let Prepared { inlet } = prepared;
    let dialect = options.dialect_of(socket.ns());
    // Registered before it joins any subscription, so that no live push passes it by.
    let flow = Flow::default();
    let live = Live::new(
        socket.clone(),
        broker.clone(),
        dialect.clone(),
        flow.clone(),
    );
    let consumer = live.consumer().to_owned();
    sockets.insert(live);
    let client = connect_client(&socket, auth, &identity);
    tracing::info!(sid = %socket.id, client = ?client.as_ref().map(ClientId::as_str), "socket connected");
    // A socket that names its client at connect is one of that client's sockets: it receives
    // the live pushes of the client's existing subscriptions without subscribing again.
    if let Some(client) = &client {
        let keys = broker.subscriptions(client).into_iter();
        sockets.join(&consumer, keys.map(|queue| (client.clone(), queue)));
        broker.repush_heads(client, None);
    }

    broker.announce(ActivityKind::Connected {
        client: client.clone(),
    });
    let acted_for = Arc::new(Mutex::new(BTreeSet::from_iter(client.clone())));
    let (gone_broker, gone_clients) = (broker.clone(), Arc::clone(&acted_for));
    let connections = options.connections.clone();
    let gone_sockets = sockets.clone();
    let session = Arc::new(Session {
        socket: socket.clone(),
        broker,
        client,
        dialect,
        identity,
        acted_for,
        catch_ups: Lane::new(CATCH_UP_QUEUE),
        sockets: sockets.clone(),
        flow,
    });
    let _ = inlet.session.set(Arc::downgrade(&session));
    // The disconnect handler holds the session while the socket is connected (socketioxide
    // drops the handler once it has run).
    let (gone, gone_inlet) = (Arc::clone(&session), Arc::clone(&inlet));
    socket.on_disconnect(move |socket: SocketRef| {
        tracing::info!(sid = %socket.id, "socket disconnected");
        connections.release(&socket);
        gone_sockets.remove(&consumer);
        gone_broker.detach(&consumer);
        let clients = gone_clients.lock().map(|c| c.clone()).unwrap_or_default();
        if clients.is_empty() {
            gone_broker.announce(ActivityKind::Disconnected { client: None });
        }
        for client in clients {
            gone_broker.announce(ActivityKind::Disconnected {
                client: Some(client),
            });
        }
        // Drops everything that waits for this socket: it is gone.
        gone_inlet.close();
        gone.catch_ups.close();
        std::future::ready(())
    });
    if inlet.events.resume() {
        tokio::spawn(run(inlet, session));
    }
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
fn counts_against_rate(event: Event) -> bool {
    !matches!(event, Event::Received | Event::GetAll | Event::Ignored)
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
    fn enqueue(self: &Arc<Self>, command: Command) {
        if counts_against_rate(command.event) && !allowed(&self.rate) {
            command.reply.now(Err(too_fast()));
            return;
        }
        self.admit(command);
    }

    /// Puts one event (within the rate) on the queue, or refuses it if the queue is full.
    fn admit(self: &Arc<Self>, command: Command) {
        let size = command.size;
        if self.queued.fetch_add(size, Ordering::Relaxed) + size > self.max_queued {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            command.reply.now(Err(queue_full()));
            return;
        }
        match self.events.push(Box::new(command)) {
            Ok(Pushed::Queued) => {}
            Ok(Pushed::Start) => match self.session.get().and_then(Weak::upgrade) {
                Some(session) => {
                    tokio::spawn(run(Arc::clone(self), session));
                }
                None => self.close(), // the socket is gone
            },
            Err(refused) => {
                self.queued.fetch_sub(size, Ordering::Relaxed);
                refused.into_inner().reply.now(Err(queue_full()));
            }
        }
    }

    /// Like [`Inlet::enqueue`], but an event whose handler never waits is handled here and
    /// now if nothing waits in the queue (so it keeps its place in order): no task is woken
    /// for it. A `publish` over socket.io is the case (acks wait in the queue instead, so
    /// that a run of them is one change: see [`Event::joins_acks`]).
    fn enqueue_or_handle(self: &Arc<Self>, command: Command, at_once: event::AtOnce) {
        if counts_against_rate(command.event) && !allowed(&self.rate) {
            command.reply.now(Err(too_fast()));
            return;
        }
        let session = self.session.get().and_then(Weak::upgrade);
        let Some(session) = session.filter(|_| self.events.claim()) else {
            self.admit(command);
            return;
        };
        let Command { data, reply, .. } = command;
        match data {
            Data::Json(Ok(data)) => event::dispatch_at_once(&session, at_once, data, reply),
            Data::Json(Err(err)) => reply.now(Err(crate::json::unreadable(&err))),
            // Not reached (only `publish` is handled at once); an ack is still an ack.
            Data::Ack(ack) => event::dispatch_acks(&session, vec![(Ok(ack), reply)]),
        }
        if self.events.release() {
            tokio::spawn(run(Arc::clone(self), session));
        }
    }

    /// Drops the events and answers still waiting, and any that come later.
    fn close(&self) {
        self.events.close();
        self.replies.close();
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

/// Handles the socket's events one after another, while any wait (the next event starts
/// this task again).
async fn run(inlet: Arc<Inlet>, session: Arc<Session>) {
    let dialect = session.dialect.clone();
    while let Some(command) = inlet.events.next() {
        let Command {
            event,
            data,
            size,
            reply,
        } = *command;
        inlet.queued.fetch_sub(size, Ordering::Relaxed);
        if event.joins_acks(dialect.as_deref()) {
            // The acks right behind it join it: one change for the run (`received`).
            let mut acks = vec![(data.into_ack(), reply)];
            while acks.len() < ACKS_TOGETHER
                && let Some(next) = inlet.events.next_if(|next| next.event == event)
            {
                let Command {
                    data, size, reply, ..
                } = *next;
                inlet.queued.fetch_sub(size, Ordering::Relaxed);
                acks.push((data.into_ack(), reply));
            }
            event::dispatch_acks(&session, acks);
            continue;
        }
        match data {
            Data::Json(Ok(data)) => event::dispatch(&session, event, data, reply).await,
            Data::Json(Err(err)) => reply.now(Err(crate::json::unreadable(&err))),
            // Not reached (a plain ack joins the runs above); an ack is still an ack.
            Data::Ack(ack) => event::dispatch_acks(&session, vec![(Ok(ack), reply)]),
        }
    }
}
