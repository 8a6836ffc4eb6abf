//! Relays (a preset's `[[compat.relays]]`): a lab event passed on live, as received, to the
//! other sockets subscribed to the queue the rule names, as a rooms-style lab's hub does with
//! `socket.to(room).emit(..)`. Nothing is stored: a socket that is not there misses it.

use serde_json::{Value, json};

use crate::compat::field_text;
use crate::error::Error;
use crate::names::QueueName;
use crate::socket::context::Session;
use crate::socket::rooms::queue_room;

/// Relays `event` with `data`; answers `{ok, queue}`.
pub async fn handle(session: &Session, event: &str, data: &Value) -> Result<Value, Error> {
    let relay = session
        .dialect
        .as_ref()
        .and_then(|dialect| dialect.relay(event))
        .ok_or_else(|| Error::invalid_field(format!("'{event}' is not relayed here")))?;
    let queue = relay
        .to
        .render(|field| field_text(data, field))
        .ok_or_else(|| {
            Error::invalid_field(format!(
                "'{event}' needs one of the fields {:?} to know whose sockets it goes to",
                relay.to.fields()
            ))
        })?;
    let queue = QueueName::parse(queue)?;
    session.identity.check_publish(&queue)?;
    let room = queue_room(&queue);
    let sent = if relay.include_sender {
        session.socket.within(room).emit(event, data).await
    } else {
        session.socket.to(room).emit(event, data).await
    };
    if let Err(err) = sent {
        tracing::debug!(error = %err, "a relay did not reach every socket");
    }
    Ok(json!({ "queue": queue }))
}
