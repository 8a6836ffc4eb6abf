//! `received {clientId, id | ids, queue?}`: acknowledges messages, removing them from the
//! client's inbox. Ack `{ok, removed: bool}` for one id, `{ok, removed: n, results}` for
//! `ids`. Unknown and repeated ids are answered `removed: false`, not errors.
//!
//! A consumer acks each message as it reads it, so a socket's acks arrive in runs (one
//! WebSocket read often holds dozens). A run is applied as one change ([`handle_all`]): one
//! lock of the broker, one batch for the group commit. Each ack is still checked, applied
//! and answered on its own, in order, as if it had come alone.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::{AckOutcome, AckRequest, Acked};
use crate::error::Error;
use crate::names::{ClientId, MessageId, QueueName};
use crate::socket::context::{Session, parse};
use crate::socket::reply::Reply;

/// A `received` event's fields, read and checked (names follow their rules).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    client_id: Option<ClientId>,
    id: Option<MessageId>,
    ids: Option<Vec<MessageId>>,
    queue: Option<QueueName>,
}

impl Received {
    /// Reads the event's payload.
    pub fn from_value(data: Value) -> Result<Self, Error> {
        parse(data)
    }

    /// About how much memory it takes.
    pub fn approximate_size(&self) -> usize {
        64 + 48 * self.ids.as_ref().map_or(0, Vec::len)
    }
}

/// A `received` as clients send it almost always: an object of plain strings (no escapes),
/// no other field, no key twice. Read straight from the packet's text
/// (`incoming::read_named`), it costs 3 000 instructions where reading a JSON value and
/// then the fields from it cost 5 000 (callgrind); a payload of any other shape fails here
/// and is read the general way, which gives every error its usual answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlainReceived<'a> {
    #[serde(borrow)]
    client_id: Option<&'a str>,
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    ids: Option<Vec<&'a str>>,
    #[serde(borrow)]
    queue: Option<&'a str>,
}

impl PlainReceived<'_> {
    /// The fields, checked; `None` if a name breaks its rules (read the general way then,
    /// for the usual answer).
    pub fn checked(&self) -> Option<Received> {
        Some(Received {
            client_id: self.client_id.map(ClientId::parse).transpose().ok()?,
            id: self.id.map(MessageId::parse).transpose().ok()?,
            ids: match &self.ids {
                Some(ids) => Some(
                    ids.iter()
                        .map(MessageId::parse)
                        .collect::<Result<_, _>>()
                        .ok()?,
                ),
                None => None,
            },
            queue: self.queue.map(QueueName::parse).transpose().ok()?,
        })
    }
}

/// A `received` read into what the broker acks, and whether it named one `id` (answered
/// `removed: bool`) or a list of `ids` (answered with a count and a result per id).
fn read(session: &Session, request: Received) -> Result<(AckRequest, bool), Error> {
    let client = session.client(request.client_id)?;
    let (ids, one) = match (request.id, request.ids) {
        (Some(id), None) => (vec![id], true),
        (None, Some(ids)) => (ids, false),
        (Some(_), Some(_)) => {
            return Err(Error::invalid_field("send either 'id' or 'ids', not both"));
        }
        (None, None) => return Err(Error::invalid_field("missing field `id` (or `ids`)")),
    };
    let queue = request.queue;
    Ok((AckRequest { client, queue, ids }, one))
}

/// The answer to one ack, once applied. A success nobody asked to hear about (no ack
/// callback) is not written out: it is never sent.
fn answer(
    request: &AckRequest,
    one: bool,
    outcome: AckOutcome,
    asked: bool,
) -> Result<Value, Error> {
    let removed = outcome?;
    Ok(if !asked {
        Value::Null
    } else if one {
        json!({ "removed": removed.first().copied().unwrap_or(false) })
    } else {
        serde_json::to_value(Acked::new(&request.ids, &removed)).unwrap_or_default()
    })
}

/// Applies the ack now (the socket's next events see it); answers once it is durable.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    handle_all(session, vec![(Received::from_value(data), reply)]);
}

/// Applies a run of one socket's acks, in the order sent, as one change (the socket's next
/// events see it); answers each once it is durable. An ack that cannot be read is answered
/// with its error in its place: the acks before it are applied first, those after it next.
pub fn handle_all(session: &Session, events: Vec<(Result<Received, Error>, Reply)>) {
    let mut run = Run::default();
    for (request, reply) in events {
        match request.and_then(|request| read(session, request)) {
            Ok((request, one)) => run.push(request, one, reply),
            Err(err) => {
                std::mem::take(&mut run).apply(session);
                reply.now(Err(err));
            }
        }
    }
    // The client reads: room is coming in its buffer.
    session.flow.acked();
    run.apply(session);
}

/// Acks read and not applied yet, with their replies.
#[derive(Default)]
struct Run {
    requests: Vec<AckRequest>,
    ones: Vec<bool>,
    replies: Vec<Reply>,
}

impl Run {
    fn push(&mut self, request: AckRequest, one: bool, reply: Reply) {
        self.requests.push(request);
        self.ones.push(one);
        self.replies.push(reply);
    }

    fn apply(self, session: &Session) {
        let Run {
            requests,
            ones,
            replies,
        } = self;
        if requests.is_empty() {
            return;
        }
        match session.broker.ack_all(&requests) {
            Ok(pending) => {
                let asked: Vec<bool> = replies.iter().map(|r| r.ack.requested()).collect();
                let answers = pending.map(move |outcomes| {
                    let acks = requests.iter().zip(ones).zip(asked);
                    acks.zip(outcomes)
                        .map(|(((request, one), asked), outcome)| {
                            answer(request, one, outcome, asked)
                        })
                        .collect()
                });
                Reply::all_when_committed(replies, answers);
            }
            Err(err) => {
                for reply in replies {
                    reply.now(Err(err.clone()));
                }
            }
        }
    }
}
