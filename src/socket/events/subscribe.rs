//! `subscribe {clientId, queue | queues, events?, mode?, prefetch?, ackTimeoutMs?,
//! maxDeliveries?}`: a durable subscription; ack `{ok, clientId, queues, pending}`. With
//! `mode: "work"` this socket becomes one of the client's workers on those queues.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::{Pending, SubscriptionOptions};
use crate::error::Error;
use crate::names::{ClientId, EventName, QueueName};
use crate::socket::context::{Session, parse};
use crate::socket::registry::Key;
use crate::socket::reply::Reply;
use crate::socket::rooms::queue_room;
use crate::store::Mode;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscribe {
    client_id: Option<ClientId>,
    queue: Option<QueueName>,
    queues: Option<Vec<QueueName>>,
    events: Option<Vec<EventName>>,
    mode: Option<String>,
    ordered: Option<bool>,
    prefetch: Option<Value>,
    ack_timeout_ms: Option<Value>,
    max_deliveries: Option<Value>,
}

/// The options of a subscription and of this socket's part in it.
struct Options {
    record: SubscriptionOptions,
    /// Work mode: how many unacked messages this worker socket may hold.
    prefetch: Option<usize>,
}

/// A whole number from `min` to `max`, if given.
fn number(field: &str, value: &Option<Value>, min: u64, max: u64) -> Result<Option<u64>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                Error::invalid_field(format!(
                    "'{field}' must be a whole number from {min} to {max}"
                ))
            }),
    }
}

impl Subscribe {
    /// Checks the mode and its options: `ordered` applies to broadcast subscriptions only, and
    /// work-mode options without `mode: "work"` are an error.
    fn options(&mut self) -> Result<Options, Error> {
        let mode = match self.mode.as_deref() {
            None | Some("broadcast") => Mode::Broadcast,
            Some("work") => Mode::Work,
            Some(other) => {
                return Err(Error::invalid_field(format!(
                    "mode must be 'broadcast' or 'work', not '{other}'"
                )));
            }
        };
        let ordered = self.ordered == Some(true);
        if ordered && mode == Mode::Work {
            return Err(Error::invalid_field(
                "ordered applies to broadcast subscriptions; in work mode use prefetch 1",
            ));
        }
        let prefetch = number("prefetch", &self.prefetch, 1, 1000)?;
        let ack_timeout_ms = number("ackTimeoutMs", &self.ack_timeout_ms, 100, 86_400_000)?;
        let max_deliveries = number("maxDeliveries", &self.max_deliveries, 1, 1000)?;
        let work_options =
            prefetch.is_some() || ack_timeout_ms.is_some() || max_deliveries.is_some();
        if mode == Mode::Broadcast && work_options {
            return Err(Error::invalid_field(
                "prefetch, ackTimeoutMs and maxDeliveries need mode 'work'",
            ));
        }
        Ok(Options {
            record: SubscriptionOptions {
                events: self.events.take(),
                mode,
                ack_timeout_ms,
                max_deliveries: max_deliveries.map(|n| n as u32),
                ordered,
            },
            prefetch: (mode == Mode::Work).then(|| prefetch.unwrap_or(1) as usize),
        })
    }

    fn queues(&mut self) -> Result<Vec<QueueName>, Error> {
        let mut queues = self.queues.take().unwrap_or_default();
        queues.extend(self.queue.take());
        queues.sort();
        queues.dedup();
        if queues.is_empty() {
            return Err(Error::invalid_field("subscribe needs 'queue' or 'queues'"));
        }
        Ok(queues)
    }
}

/// What a subscribe joined: live pushes of (client, queue) subscriptions, and socket.io
/// rooms (a lab dialect's queue rooms, where relays go).
struct Joined {
    keys: Vec<Key>,
    rooms: Vec<String>,
}

impl Joined {
    fn undo(self, session: &Session) {
        session.leave(&self.keys);
        session.socket.leave(self.rooms);
    }
}

fn subscribe(session: &Session, data: Value) -> Result<(Pending<Value>, Joined), Error> {
    let mut request: Subscribe = parse(data)?;
    let options = request.options()?;
    let ordered = options.record.ordered;
    let client = session.client(request.client_id.take())?;
    let queues = request.queues()?;
    for queue in &queues {
        session.identity.check_subscribe(queue)?;
    }
    // Broadcast: join first, so that a message committed right after the subscribe is pushed
    // live rather than only waiting in the inbox. Work: messages come through the dispatcher.
    let keys: Vec<Key> = match options.prefetch {
        None => queues.iter().map(|q| (client.clone(), q.clone())).collect(),
        Some(_) => Vec::new(),
    };
    // In a lab dialect, also the queue's own room, where relays go.
    let rooms: Vec<String> = match session.dialect {
        Some(_) => queues.iter().map(queue_room).collect(),
        None => Vec::new(),
    };
    session.join(keys.iter().cloned());
    session.socket.join(rooms.clone());
    let joined = Joined { keys, rooms };
    let pending = match session.broker.subscribe(&client, &queues, options.record) {
        Ok(pending) => pending,
        Err(err) => {
            joined.undo(session);
            return Err(err);
        }
    };
    if let Ok(mut acted_for) = session.acted_for.lock() {
        acted_for.insert(client.clone());
    }
    if let Some(prefetch) = options.prefetch {
        for queue in &queues {
            session
                .broker
                .attach(&client, queue, session.consumer_id(), prefetch)?;
        }
    }
    if ordered {
        // The new socket gets the current head; later ones follow each ack.
        for queue in &queues {
            session.broker.repush_heads(&client, Some(queue));
        }
    }
    let pending = pending.map(|pending| {
        let names: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
        tracing::info!(client = %client, queues = ?names, pending, "subscribed");
        json!({ "clientId": client, "queues": queues, "pending": pending })
    });
    Ok((pending, joined))
}

/// Subscribes now (a `getAll` right after sees it); answers once it is durable. If the
/// commit fails, the socket leaves what it joined.
pub fn handle(session: &Arc<Session>, data: Value, reply: Reply) {
    match subscribe(session, data) {
        Err(err) => reply.now(Err(err)),
        Ok((pending, joined)) => {
            let session = Arc::clone(session);
            reply.when_committed_or_undo(pending, move || joined.undo(&session));
        }
    }
}
