//! `publish {queue, event, payload, id?}`: the same as the HTTP publish; ack
//! `{ok, id, queue, event, publishedAt, recipients}`. The message's `source` is the socket's
//! client id (from the event or the connect), else its socket id.

use serde_json::Value;

use super::reply::Reply;
use super::session::{Session, parse};
use crate::broker::Pending;
use crate::broker::message::PublishRequest;
use crate::error::Error;
use crate::names::ClientId;

fn publish(session: &Session, data: Value) -> Result<Pending<Value>, Error> {
    let given_client = data
        .get("clientId")
        .and_then(Value::as_str)
        .and_then(|c| ClientId::parse(c).ok());
    let request: PublishRequest = parse(data)?;
    let source = given_client
        .or_else(|| session.client.clone())
        .map_or_else(|| session.socket.id.to_string(), String::from);
    let message = request.into_message(None, source)?;
    Ok(session.broker.publish(vec![message])?.map(|published| {
        published
            .first()
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or_default()
    }))
}

/// Publishes now (in order with the socket's other events); answers once it is durable.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    reply.when_committed(publish(session, data));
}
