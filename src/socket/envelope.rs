//! What a socket receives of a message, decided in one place for live pushes, worker sends
//! and catch-ups alike: the envelope as the socket's namespace shows it ([`dress`]), whether
//! it is the socket's own message ([`sent_by`]), and the automatic ack of a dialect whose
//! labs never acknowledge ([`ack_sent`]).

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
        // Sized for the texts, so that writing does not grow them (a reallocation per message
        // and part cost as much as writing the rest).
        let mut head = Vec::with_capacity(head_len(envelope));
        write_head(&mut head, envelope);
        let mut middle = Vec::with_capacity(middle_len(envelope));
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
            self.head.len() + quoted(client) + self.middle.len() + digits(envelope.attempt) + 1;
        let mut text = Vec::with_capacity(length);
        text.extend_from_slice(&self.head);
        json(&mut text, client);
        text.extend_from_slice(&self.middle);
        attempt_and_end(&mut text, envelope.attempt);
        raw(text)
    }

    /// The whole envelope of a message that goes to one subscriber (a catch-up's, a
    /// worker's), written in one pass: the same text as [`Rendered::new`] then
    /// [`Rendered::to`], without the shared parts kept apart.
    pub fn single(envelope: &Envelope) -> Box<RawValue> {
        let client = envelope.client_id.as_str();
        // The exact length when nothing needs escaping, as in `to`.
        let length = head_len(envelope)
            + quoted(client)
            + middle_len(envelope)
            + digits(envelope.attempt)
            + 1;
        let mut text = Vec::with_capacity(length);
        write_head(&mut text, envelope);
        json(&mut text, client);
        write_middle(&mut text, envelope);
        attempt_and_end(&mut text, envelope.attempt);
        raw(text)
    }
}

// The keys of an envelope, with the punctuation around them, in the order written.
const ID: &[u8] = b"{\"id\":";
const QUEUE: &[u8] = b",\"queue\":";
const EVENT: &[u8] = b",\"event\":";
const PAYLOAD: &[u8] = b",\"payload\":";
const CLIENT_ID: &[u8] = b",\"clientId\":";
const PUBLISHED_AT: &[u8] = b",\"publishedAt\":";
const SOURCE: &[u8] = b",\"source\":";
const ATTEMPT: &[u8] = b",\"attempt\":";

/// The length of a JSON string holding `text` when nothing in it needs escaping (the rule
/// for names; an escape only makes a buffer grow once).
fn quoted(text: &str) -> usize {
    text.len() + 2
}

/// The length of `{"id":…,"queue":…,"event":…,"payload":…,"clientId":` (see [`quoted`]).
fn head_len(envelope: &Envelope) -> usize {
    ID.len()
        + quoted(envelope.id.as_str())
        + QUEUE.len()
        + quoted(envelope.queue.as_str())
        + EVENT.len()
        + quoted(envelope.event.as_str())
        + PAYLOAD.len()
        + envelope.payload.text().len()
        + CLIENT_ID.len()
}

fn write_head(out: &mut Vec<u8>, envelope: &Envelope) {
    out.extend_from_slice(ID);
    json(out, envelope.id.as_str());
    out.extend_from_slice(QUEUE);
    json(out, envelope.queue.as_str());
    out.extend_from_slice(EVENT);
    json(out, envelope.event.as_str());
    out.extend_from_slice(PAYLOAD);
    out.extend_from_slice(envelope.payload.text().as_bytes());
    out.extend_from_slice(CLIENT_ID);
}

/// The length of `,"publishedAt":…,"source":…,"attempt":` (see [`quoted`]).
fn middle_len(envelope: &Envelope) -> usize {
    PUBLISHED_AT.len()
        + quoted(&envelope.published_at)
        + SOURCE.len()
        + quoted(&envelope.source)
        + ATTEMPT.len()
}

fn write_middle(out: &mut Vec<u8>, envelope: &Envelope) {
    out.extend_from_slice(PUBLISHED_AT);
    json(out, &envelope.published_at);
    out.extend_from_slice(SOURCE);
    json(out, &envelope.source);
    out.extend_from_slice(ATTEMPT);
}

/// Ends an envelope: its `attempt` and the closing brace.
fn attempt_and_end(out: &mut Vec<u8>, attempt: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(attempt).as_bytes());
    out.push(b'}');
}

/// The text of a whole envelope as a `RawValue`.
fn raw(text: Vec<u8>) -> Box<RawValue> {
    debug_assert!(std::str::from_utf8(&text).is_ok());
    // Neither checked to be UTF-8 nor parsed again (`String::from_utf8`, then `from_string`):
    // each is a pass over the whole text, payload included, for every envelope sent.
    #[allow(unsafe_code)]
    // SAFETY: UTF-8, because every byte comes from a `&str` (names, the payload's text, the
    // time, the source), from serde_json (`json`, which writes UTF-8) or is an ASCII key,
    // punctuation or digit. One JSON object without surrounding whitespace, by construction:
    // fixed keys, and values each written by serde_json, a payload's JSON text (itself one
    // JSON value without surrounding whitespace: `SharedPayload`) or an integer. Debug
    // builds (every test) check the UTF-8 above and re-parse the JSON inside
    // `from_string_unchecked`, and panic if that ever breaks.
    unsafe {
        let text = String::from_utf8_unchecked(text);
        RawValue::from_string_unchecked(text)
    }
}

/// How many decimal digits `n` is written with.
fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it. Names, ids and times
/// seldom need escaping (a name may hold a quote or a backslash, never a control
/// character): such text is copied between quotes after a check of eight bytes at a time,
/// where serde_json's writer looks up each byte in a table (about 250 instructions per
/// string of an envelope, six strings per envelope; callgrind). The rest goes through
/// serde_json.
fn json(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        // Writing to a Vec cannot fail, and a string always encodes.
        let _ = serde_json::to_writer(out, text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` hold one that serde_json escapes in a string: a control character, the
/// quote or the backslash.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // Whether any byte of `word` is below `n` (at most 0x80): exact for "any", because a byte
    // at or above `n` borrows nothing, and the lowest byte below `n` sets its high bit.
    let any_below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS != 0;
    let any_equal = |word: u64, byte: u8| any_below(word ^ (ONES * u64::from(byte)), 1);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if any_below(word, 0x20) || any_equal(word, b'"') || any_equal(word, b'\\') {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Whether `envelope` was published by the socket `consumer` with the sender excluded (a
/// preset's `exclude_sender`): its source is then that socket's worker name, which holds a
/// `/` and so is never a client id.
pub fn sent_by(envelope: &Envelope, consumer: &str) -> bool {
    *envelope.source == *consumer
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
    fn digits_counts_what_is_written() {
        for n in [0, 7, 9, 10, 99, 100, 12_345, u32::MAX] {
            let mut text = Vec::new();
            attempt_and_end(&mut text, n);
            assert_eq!(text, format!("{n}}}").into_bytes());
            assert_eq!(digits(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        // Every ASCII character at every place of the first and second word and the rest.
        let mut texts: Vec<String> = (0u8..=0x7f)
            .flat_map(|b| {
                (0..19).map(move |at| {
                    let mut text = "x".repeat(19);
                    text.replace_range(at..=at, &(b as char).to_string());
                    text
                })
            })
            .collect();
        texts.extend(
            [
                "",
                "plain-name_1.2:3/4",
                "é ü 中文 🙂",
                "\u{7f}\u{80}\u{2028}",
                "\\\"\n\t",
            ]
            .map(str::to_owned),
        );
        for text in texts {
            let mut out = b"x".to_vec();
            json(&mut out, &text);
            let expected = format!("x{}", serde_json::to_string(&text).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{text:?}");
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
    fn an_envelope_without_escapes_is_written_at_the_length_it_was_sized_for() {
        let payload = SharedPayload::of(&json!({"n": 1, "to": "Zoë"}));
        let mut plain = envelope("flowers-r-us", "orders", &payload, 12);
        plain.id = "m-1".to_owned().try_into().unwrap();
        let (mut head, mut middle) = (Vec::new(), Vec::new());
        write_head(&mut head, &plain);
        write_middle(&mut middle, &plain);
        assert_eq!(head.len(), head_len(&plain));
        assert_eq!(middle.len(), middle_len(&plain));
        let whole = head_len(&plain) + quoted("flowers-r-us") + middle_len(&plain) + 3;
        assert_eq!(Rendered::single(&plain).get().len(), whole);
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
