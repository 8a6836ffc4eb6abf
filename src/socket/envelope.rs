//! What a socket receives of a message, decided in one place for live pushes, worker sends
//! and catch-ups alike: the envelope as the socket's namespace shows it ([`dress`]), whether
//! it is the socket's own message ([`sent_by`]), and the automatic ack of a dialect whose
//! labs never acknowledge ([`ack_sent`]).

use std::io::Write;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::broker::{Broker, Envelope, SharedPayload};
use crate::compat::Dialect;

/// An envelope as one namespace shows it: the one argument of the message's event.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Dressed {
    /// queuehub's own envelope (a namespace without a dialect), as JSON text ([`Rendered`]).
    Own(Box<RawValue>),
    /// As the namespace's lab dialect dresses it ([`Dialect::envelope`]).
    Lab(Value),
}

/// `envelope` as a socket that speaks `dialect` (`None`: queuehub's own events) receives it.
pub fn dress(dialect: Option<&Dialect>, envelope: &Envelope) -> Dressed {
    match dialect {
        Some(dialect) => Dressed::Lab(dialect.envelope(envelope)),
        None => Dressed::Own(Rendered::single(envelope)),
    }
}

/// queuehub's own envelope as JSON text, with all but the subscriber's own fields (`clientId`,
/// `attempt`) written once per message: a message fanned out to 200 subscribers has its payload
/// and names escaped once, not 200 times, and each socket gets ready text (socket.io's
/// serializer copies it as it is instead of walking the envelope field by field).
///
/// The text is exactly what serializing [`Envelope`] gives (same fields, same order).
pub struct Rendered {
    /// `{"id":…,"queue":…,"event":…,"payload":…,"clientId":`
    head: Vec<u8>,
    /// `,"publishedAt":…,"source":…,"attempt":`
    middle: Vec<u8>,
    /// Which message this is: its payload (held, so that its address names it while this
    /// lives), id and queue. A fan-out reuses the text for the message's next subscriber.
    payload: SharedPayload,
    id: crate::names::MessageId,
    queue: crate::names::QueueName,
}

impl Rendered {
    /// The parts of `envelope` that every subscriber of its message shares.
    pub fn new(envelope: &Envelope) -> Self {
        // Sized for the texts with a little room for escapes, so that writing does not grow
        // them (a reallocation per message and part cost as much as writing the rest).
        let mut head = Vec::with_capacity(head_size(envelope));
        write_head(&mut head, envelope);
        let mut middle = Vec::with_capacity(middle_size(envelope));
        write_middle(&mut middle, envelope);
        Self {
            head,
            middle,
            payload: envelope.payload.clone(),
            id: envelope.id.clone(),
            queue: envelope.queue.clone(),
        }
    }

    /// Whether `envelope` is of the message this was rendered from.
    pub fn is_of(&self, envelope: &Envelope) -> bool {
        self.payload.same(&envelope.payload)
            && self.id == envelope.id
            && self.queue == envelope.queue
    }

    /// The whole envelope for `envelope`'s subscriber (its `clientId` and `attempt`).
    pub fn to(&self, envelope: &Envelope) -> Box<RawValue> {
        let client = envelope.client_id.as_str();
        // The exact length when the client id needs no escaping (the rule for ids), so that
        // turning the text into a boxed `RawValue` below does not reallocate it.
        let length =
            self.head.len() + client.len() + 2 + self.middle.len() + digits(envelope.attempt) + 1;
        let mut text = Vec::with_capacity(length);
        text.extend_from_slice(&self.head);
        json(&mut text, client);
        text.extend_from_slice(&self.middle);
        let _ = write!(text, "{}}}", envelope.attempt);
        raw(text)
    }

    /// The whole envelope of a message that goes to one subscriber (a catch-up's, a
    /// worker's), written in one pass: the same text as [`Rendered::new`] then
    /// [`Rendered::to`], without the shared parts kept apart.
    pub fn single(envelope: &Envelope) -> Box<RawValue> {
        let client = envelope.client_id.as_str();
        let mut text =
            Vec::with_capacity(head_size(envelope) + client.len() + 2 + middle_size(envelope) + 11);
        write_head(&mut text, envelope);
        json(&mut text, client);
        write_middle(&mut text, envelope);
        let _ = write!(text, "{}}}", envelope.attempt);
        raw(text)
    }
}

/// Room for `{"id":…,"queue":…,"event":…,"payload":…,"clientId":`, with a little to spare for
/// escapes.
fn head_size(envelope: &Envelope) -> usize {
    64 + envelope.id.as_str().len()
        + envelope.queue.as_str().len()
        + envelope.event.as_str().len()
        + envelope.payload.text().len()
}

fn write_head(out: &mut Vec<u8>, envelope: &Envelope) {
    out.extend_from_slice(b"{\"id\":");
    json(out, envelope.id.as_str());
    out.extend_from_slice(b",\"queue\":");
    json(out, envelope.queue.as_str());
    out.extend_from_slice(b",\"event\":");
    json(out, envelope.event.as_str());
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(envelope.payload.text().as_bytes());
    out.extend_from_slice(b",\"clientId\":");
}

/// Room for `,"publishedAt":…,"source":…,"attempt":`, with a little to spare for escapes.
fn middle_size(envelope: &Envelope) -> usize {
    48 + envelope.published_at.len() + envelope.source.len()
}

fn write_middle(out: &mut Vec<u8>, envelope: &Envelope) {
    out.extend_from_slice(b",\"publishedAt\":");
    json(out, envelope.published_at.as_str());
    out.extend_from_slice(b",\"source\":");
    json(out, envelope.source.as_str());
    out.extend_from_slice(b",\"attempt\":");
}

/// The text of a whole envelope as a `RawValue`.
fn raw(text: Vec<u8>) -> Box<RawValue> {
    let text = String::from_utf8(text).expect("serde_json writes UTF-8");
    // `from_string` would parse the text again to check it: a tenth of a fan-out's work.
    #[allow(unsafe_code)]
    // SAFETY: one JSON object without surrounding whitespace, by construction: fixed keys,
    // and values each written by serde_json (`json`), a payload's JSON text (itself one JSON
    // value without surrounding whitespace: `SharedPayload`) or an integer. Debug builds
    // (every test) re-parse it inside `from_string_unchecked` and panic if that ever breaks.
    unsafe {
        RawValue::from_string_unchecked(text)
    }
}

/// How many decimal digits `n` is written with.
fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `value` as JSON (serde_json's escaping).
fn json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    // Writing to a Vec cannot fail, and text and JSON values always encode.
    let _ = serde_json::to_writer(out, value);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn digits_counts_what_write_writes() {
        for n in [0, 7, 9, 10, 99, 100, 12_345, u32::MAX] {
            assert_eq!(digits(n), n.to_string().len(), "{n}");
        }
    }

    fn envelope(client: &str, queue: &str, payload: &SharedPayload, attempt: u32) -> Envelope {
        Envelope {
            id: "m-1 \"quoted\"".to_owned().try_into().unwrap(),
            queue: queue.to_owned().try_into().unwrap(),
            event: "delivered".to_owned().try_into().unwrap(),
            payload: payload.clone(),
            client_id: client.to_owned().try_into().unwrap(),
            published_at: "2026-11-30T05:00:00.000Z".into(),
            source: "http".into(),
            attempt,
            seq: 7,
        }
    }

    #[test]
    fn the_rendered_text_is_the_serialized_envelope_for_every_subscriber() {
        let payload = SharedPayload::of(
            &json!({"to": "Zoë \u{1F4E6}", "line": "a\nb\t\"c\"\\", "n": [1, 2.5, null]}),
        );
        let first = envelope("flowers-r-us", "orders", &payload, 1);
        let rendered = Rendered::new(&first);
        for (client, attempt) in [
            ("flowers-r-us", 1),
            ("acme \"west\" ünïcode", 4_000_000_000),
        ] {
            let other = envelope(client, "orders", &payload, attempt);
            assert!(rendered.is_of(&other));
            assert_eq!(
                rendered.to(&other).get(),
                serde_json::to_string(&other).unwrap()
            );
            assert_eq!(
                Rendered::single(&other).get(),
                serde_json::to_string(&other).unwrap()
            );
        }
    }

    #[test]
    fn the_text_of_one_message_is_not_taken_for_another() {
        let payload = SharedPayload::of(&json!({"n": 1}));
        let rendered = Rendered::new(&envelope("a", "orders", &payload, 1));
        // Same id in another queue, or another payload: another message.
        assert!(!rendered.is_of(&envelope("a", "returns", &payload, 1)));
        assert!(!rendered.is_of(&envelope(
            "a",
            "orders",
            &SharedPayload::of(&json!({"n": 1})),
            1
        )));
    }

    #[test]
    fn a_socket_without_a_dialect_gets_the_rendered_envelope() {
        let payload = SharedPayload::of(&json!("text"));
        let own = envelope("a", "orders", &payload, 2);
        assert_eq!(
            serde_json::to_string(&dress(None, &own)).unwrap(),
            serde_json::to_string(&own).unwrap()
        );
    }
}
