//! `unsubscribe {clientId, queue}`: ends the subscription and drops its inbox; ack
//! `{ok, dropped}`.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::Pending;
use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::socket::context::{Session, parse};
use crate::socket::reply::Reply;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unsubscribe {
    client_id: Option<ClientId>,
    queue: QueueName,
}

fn unsubscribe(session: &Session, data: Value) -> Result<Pending<Value>, Error> {
    let request: Unsubscribe = parse(data)?;
    let client = session.client(request.client_id)?;
    let pending = session.broker.unsubscribe(&client, &request.queue)?;
    Ok(pending.map(|dropped| {
        tracing::info!(client = %client, queue = %request.queue, dropped, "unsubscribed");
        json!({ "clientId": client, "queue": request.queue, "dropped": dropped })
    }))
}

/// Unsubscribes now; answers once it is durable.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    reply.when_committed(unsubscribe(session, data));
}
