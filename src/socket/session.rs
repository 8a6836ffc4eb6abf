//! A socket's session: its identity, its queue of events, and the task that handles them in
//! the order they arrived.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::extract::{Event, SocketRef, TryData};
use tokio::sync::{mpsc, oneshot};

use super::SocketOptions;
use super::identity::{Identity, query};
use super::rate::RateLimit;
use super::reply::{AckHandle, Reply};
use super::{get_all, publish, received, subscribe, unsubscribe};
use crate::broker::{ActivityKind, Broker};
use crate::compat::{Dialect, EventKind, NATIVE_EVENTS};
use crate::error::{Error, from_json_error};
use crate::json::StrictJson;
use crate::names::ClientId;

/// Events one socket may have waiting to be handled; more are refused with `rate_limited`.
/// Handling an event does not wait for its commit, so the queue drains at memory speed.
const QUEUE_LENGTH: usize = 1024;

/// One event waiting to be handled.
struct Command {
    kind: EventKind,
    data: Result<Value, String>,
    reply: Reply,
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
fn consumer_id(socket: &SocketRef) -> String {
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

/// Registers the event handlers of a new socket and starts its session task. Everything
/// here is synchronous: the handlers exist before the first event can arrive.
pub fn start(
    socket: SocketRef,
    broker: Broker,
    auth: Option<Value>,
    options: &SocketOptions,
    identity: Identity,
) {
    let dialect = options.dialect_of(socket.ns());
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
    let (tx, rx) = mpsc::channel::<Command>(QUEUE_LENGTH);
    let rate = Arc::new(Mutex::new(RateLimit::new(options.events_per_sec)));

    let events = match &dialect {
        Some(dialect) => dialect.events(),
        None => NATIVE_EVENTS
            .iter()
            .map(|e| (e.to_string(), EventKind::Native(e)))
            .collect(),
    };
    let known: Vec<String> = events.iter().map(|(name, _)| name.clone()).collect();
    for (event, kind) in events {
        let tx = tx.clone();
        let rate = Arc::clone(&rate);
        let name = event.clone();
        socket.on(
            event,
            move |socket: SocketRef, TryData(data): TryData<StrictJson>, ack: AckHandle| {
                let reply = Reply {
                    event: name.clone(),
                    socket,
                    ack,
                };
                let data = data.map(StrictJson::into_inner).map_err(|e| e.to_string());
                enqueue(&tx, &rate, kind, data, reply);
                std::future::ready(())
            },
        );
    }
    socket.on_fallback(
        move |socket: SocketRef, Event(event): Event, ack: AckHandle| async move {
            let reply = Reply {
                event: event.clone(),
                socket,
                ack,
            };
            let known = known.join(", ");
            reply
                .send(Err(Error::invalid_field(format!(
                    "unknown event '{event}'; queuehub handles {known}"
                ))
                .with_code("unknown_event")))
                .await;
        },
    );

    broker.announce(ActivityKind::Connected {
        client: client.clone(),
    });
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let closed_tx = Arc::new(Mutex::new(Some(closed_tx)));
    let acted_for = Arc::new(Mutex::new(BTreeSet::from_iter(client.clone())));
    let (gone_broker, gone_clients) = (broker.clone(), Arc::clone(&acted_for));
    let connections = options.connections.clone();
    socket.on_disconnect(move |socket: SocketRef| {
        tracing::info!(sid = %socket.id, "socket disconnected");
        connections.release(&socket);
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
        if let Some(tx) = closed_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
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
    tokio::spawn(run(session, rx, closed_rx));
}

/// Puts one event on the session's queue, or refuses it at once if the socket is over its
/// rate or its queue is full.
fn enqueue(
    tx: &mpsc::Sender<Command>,
    rate: &Mutex<RateLimit>,
    kind: EventKind,
    data: Result<Value, String>,
    reply: Reply,
) {
    // std Mutex: one socket's own handlers, a few instructions, never across an await.
    let allowed = rate.lock().map(|mut r| r.allow()).unwrap_or(true);
    if !allowed {
        tokio::spawn(reply.send(Err(Error::limit(
            "rate_limited",
            "this socket sends more events per second than allowed; slow down",
        ))));
        return;
    }
    if let Err(
        mpsc::error::TrySendError::Full(command) | mpsc::error::TrySendError::Closed(command),
    ) = tx.try_send(Command { kind, data, reply })
    {
        tokio::spawn(command.reply.send(Err(Error::limit(
            "rate_limited",
            format!("more than {QUEUE_LENGTH} events are waiting on this socket; slow down"),
        ))));
    }
}

/// Handles the socket's events one after another until it disconnects.
async fn run(
    session: Arc<Session>,
    mut commands: mpsc::Receiver<Command>,
    mut closed: oneshot::Receiver<()>,
) {
    let (catch_ups, jobs) = mpsc::unbounded_channel();
    tokio::spawn(get_all::run(Arc::clone(&session), jobs));
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = &mut closed => None,
        };
        let Some(Command { kind, data, reply }) = command else {
            return;
        };
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                reply.send(Err(crate::json::unreadable(&err))).await;
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
        };
        let data = match &session.dialect {
            Some(dialect) => dialect.translate(native, data),
            None => data,
        };
        match native {
            "subscribe" => subscribe::handle(&session, data, reply),
            "unsubscribe" => unsubscribe::handle(&session, data, reply),
            "getAll" => get_all::handle(&session, data, reply, &catch_ups),
            "received" => received::handle(&session, data, reply),
            "publish" => publish::handle(&session, data, reply),
            _ => {}
        }
    }
}
