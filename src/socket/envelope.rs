//! What a socket receives of a message, decided in one place for live pushes, worker sends
//! and catch-ups alike: the envelope as the socket's namespace shows it ([`dress`]), whether
//! it is the socket's own message ([`sent_by`]), and the automatic ack of a dialect whose
//! labs never acknowledge ([`ack_sent`]).

use serde::Serialize;
use serde_json::Value;

use crate::broker::{Broker, Envelope};
use crate::compat::Dialect;

/// An envelope as one namespace shows it: the one argument of the message's event.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Dressed<'a> {
    /// queuehub's own envelope (a namespace without a dialect).
    Own(&'a Envelope),
    /// As the namespace's lab dialect dresses it ([`Dialect::envelope`]).
    Lab(Value),
}

/// `envelope` as a socket that speaks `dialect` (`None`: queuehub's own events) receives it.
pub fn dress<'a>(dialect: Option<&Dialect>, envelope: &'a Envelope) -> Dressed<'a> {
    match dialect {
        Some(dialect) => Dressed::Lab(dialect.envelope(envelope)),
        None => Dressed::Own(envelope),
    }
}

/// Whether `envelope` was published by the socket `consumer` with the sender excluded (a
/// preset's `exclude_sender`): its source is then that socket's worker name, which holds a
/// `/` and so is never a client id.
pub fn sent_by(envelope: &Envelope, consumer: &str) -> bool {
    envelope.source == consumer
}

/// Acknowledges a message that was sent to one of its client's sockets, in a dialect whose
/// labs never acknowledge (`auto_ack`). The commit is awaited in the background.
pub fn ack_sent(broker: &Broker, envelope: &Envelope) {
    let acked = broker.ack(
        &envelope.client_id,
        Some(&envelope.queue),
        std::slice::from_ref(&envelope.id),
    );
    match acked {
        Ok(pending) => {
            tokio::spawn(async move {
                if let Err(err) = pending.committed().await {
                    tracing::warn!(
                        code = %err.code(),
                        "automatic ack not committed: {}",
                        err.message()
                    );
                }
            });
        }
        Err(err) => tracing::warn!(
            code = %err.code(),
            "automatic ack refused: {}",
            err.message()
        ),
    }
}
