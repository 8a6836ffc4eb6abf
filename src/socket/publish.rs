//! `publish {queue, event, payload, id?}`: the same as the HTTP publish; ack
//! `{ok, id, queue, event, publishedAt, recipients}`. The message's `source` is the socket's
//! client id (from the event or the connect), else its socket id.

use serde_json::Value;

use super::reply::Reply;
use super::session::{Session, parse};
use crate::broker::message::PublishRequest;
use crate::error::Error;
use crate::names::ClientId;

async fn publish(session: &Session, data: Value) -> Result<Value, Error> {
    let given_client = data
        .get("clientId")
        .and_then(Value::as_str)
        .and_then(|c| ClientId::parse(c).ok());
    let request: PublishRequest = parse(data)?;
    let source = given_client
        .or_else(|| session.client.clone())
        .map_or_else(|| session.socket.id.to_string(), String::from);
    let message = request.into_message(None, source)?;
    let published = session.broker.publish(vec![message]).await?;
    serde_json::to_value(&published[0]).map_err(|e| Error::invalid_field(e.to_string()))
}

/// Handles one `publish` event.
pub async fn handle(session: &Session, data: Value, reply: Reply) {
    reply.send(publish(session, data).await).await;
}
