//! `received {clientId, id | ids, queue?}`: acknowledges messages, removing them from the
//! client's inbox. Ack `{ok, removed: bool}` for one id, `{ok, removed: n, results}` for
//! `ids`. Unknown and repeated ids are answered `removed: false`, not errors.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::{Acked, Pending};
use crate::error::Error;
use crate::names::{ClientId, MessageId, QueueName};
use crate::socket::context::{Session, parse};
use crate::socket::reply::Reply;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    client_id: Option<ClientId>,
    id: Option<MessageId>,
    ids: Option<Vec<MessageId>>,
    queue: Option<QueueName>,
}

fn received(session: &Session, data: Value) -> Result<Pending<Value>, Error> {
    let request: Received = parse(data)?;
    let client = session.client(request.client_id)?;
    let queue = request.queue.as_ref();
    match (request.id, request.ids) {
        (Some(id), None) => Ok(session
            .broker
            .ack(&client, queue, &[id])?
            .map(|removed| json!({ "removed": removed.first().copied().unwrap_or(false) }))),
        (None, Some(ids)) => Ok(session
            .broker
            .ack(&client, queue, &ids)?
            .map(|removed| serde_json::to_value(Acked::new(&ids, &removed)).unwrap_or_default())),
        (Some(_), Some(_)) => Err(Error::invalid_field("send either 'id' or 'ids', not both")),
        (None, None) => Err(Error::invalid_field("missing field `id` (or `ids`)")),
    }
}

/// Applies the ack now (the socket's next events see it); answers once it is durable.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    reply.when_committed(received(session, data));
}
