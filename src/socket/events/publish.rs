//! `publish {queue, event, payload, id?}`: the same as the HTTP publish; ack
//! `{ok, id, queue, event, publishedAt, recipients}`. The message's `source` is the socket's
//! client id (from the event or the connect), else its socket id.

use serde_json::Value;

use crate::broker::message::PublishRequest;
use crate::broker::{NewMessage, Pending};
use crate::error::Error;
use crate::names::ClientId;
use crate::socket::context::{Session, parse};
use crate::socket::reply::Reply;

fn publish(session: &Session, data: Value) -> Result<Pending<Value>, Error> {
    let given_client = data
        .get("clientId")
        .and_then(Value::as_str)
        .and_then(|c| ClientId::parse(c).ok());
    let request: PublishRequest = parse(data)?;
    let source = source(session, given_client);
    let message = request.into_message(None, source)?;
    session.identity.check_publish(&message.queue)?;
    Ok(session.broker.publish(vec![message])?.map(render))
}

/// The `source` of a message this socket publishes.
/// A token-bound socket is always its token's client, whatever the event claims.
fn source(session: &Session, given: Option<ClientId>) -> String {
    session
        .identity
        .client()
        .cloned()
        .or(given)
        .or_else(|| session.client.clone())
        .map_or_else(|| session.socket.id.to_string(), String::from)
}

fn render(published: Vec<crate::broker::Published>) -> Value {
    published
        .first()
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or_default()
}

/// A lab event (the classroom preset's `app_events`): its data becomes a message on the
/// queue the dialect's routing rule names.
fn app_event(session: &Session, index: usize, data: Value) -> Result<Pending<Value>, Error> {
    let dialect = session
        .dialect
        .as_ref()
        .ok_or_else(|| Error::invalid_field("this namespace has no lab events"))?;
    let app = dialect
        .app_events
        .get(index)
        .ok_or_else(|| Error::invalid_field("unknown lab event"))?;
    let message = dialect.app_message(app, data)?;
    session.identity.check_publish(&message.queue)?;
    // A message its sender must never get back carries the sending socket as its source.
    let source = match app.exclude_sender {
        true => session.consumer_id(),
        false => source(session, None),
    };
    let mut new = NewMessage::new(message.queue, message.event, message.payload, source);
    new.id = message.id;
    Ok(session.broker.publish(vec![new])?.map(render))
}

/// Publishes a lab event now; answers (if asked) once it is durable.
pub fn handle_app_event(session: &Session, index: usize, data: Value, reply: Reply) {
    reply.when_committed(app_event(session, index, data));
}

/// Publishes now (in order with the socket's other events); answers once it is durable.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    reply.when_committed(publish(session, data));
}
