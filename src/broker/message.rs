//! Message shapes the broker hands out: [`NewMessage`] (what a publisher sends), [`Envelope`]
//! (what a subscriber receives) and [`Delivery`] (an envelope addressed to one client).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::names::{ClientId, EventName, MessageId, QueueName};
use crate::store::{JobMeta, MessageMeta, Receipt};

/// Where a published message came from: `http`, or the publishing socket's client id.
pub const SOURCE_HTTP: &str = "http";

/// A message to publish, validated by the transport that received it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub queue: QueueName,
    pub event: EventName,
    pub payload: Value,
    /// A publisher-chosen id makes the publish idempotent; `None` generates a UUID v7.
    pub id: Option<MessageId>,
    pub source: String,
    /// Not deliverable before this time (ms since the epoch); `None` or past: at once.
    pub deliver_at_ms: Option<u64>,
    /// Leaves every inbox this long after the publish; `None`: never.
    pub ttl_ms: Option<u64>,
    /// Priority and TTR of a job put through the beanstalk door; `None` for the defaults.
    pub job: Option<JobMeta>,
    /// The payload's JSON text exactly as the publisher wrote it (it must parse to
    /// `payload`), stored verbatim so that the beanstalk door gives a job body back byte
    /// for byte; `None`: `payload` serialized.
    pub text: Option<String>,
}

impl NewMessage {
    /// A message for immediate delivery, without id, delay or TTL.
    pub fn new(
        queue: QueueName,
        event: EventName,
        payload: Value,
        source: impl Into<String>,
    ) -> Self {
        Self {
            queue,
            event,
            payload,
            id: None,
            source: source.into(),
            deliver_at_ms: None,
            ttl_ms: None,
            job: None,
            text: None,
        }
    }
}

/// What a subscriber receives: the socket.io event is `event`, and this is its one argument.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub id: MessageId,
    pub queue: QueueName,
    pub event: EventName,
    /// The payload as it was published: any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub payload: SharedPayload,
    pub client_id: ClientId,
    /// RFC 3339, UTC, milliseconds. Shared by the envelopes of one message's deliveries.
    #[schema(value_type = String)]
    pub published_at: Arc<str>,
    #[schema(value_type = String)]
    pub source: Arc<str>,
    /// How many times this message has been sent to this client, this one included.
    pub attempt: u32,
    /// The message's sequence number (the beanstalk door's job id); not sent to sockets.
    #[serde(skip)]
    pub seq: u64,
}

impl Envelope {
    pub(crate) fn new(
        meta: &MessageMeta,
        payload: SharedPayload,
        client: &ClientId,
        attempt: u32,
    ) -> Self {
        let published_at = format_ms_shared(meta.published_at_ms);
        Self::at(meta, payload, client, attempt, published_at)
    }

    /// [`Envelope::new`] with the message's time already formatted: the envelopes of one
    /// message's deliveries share it (and its source) instead of each writing its own.
    pub(crate) fn at(
        meta: &MessageMeta,
        payload: SharedPayload,
        client: &ClientId,
        attempt: u32,
        published_at: Arc<str>,
    ) -> Self {
        Self {
            id: meta.id.clone(),
            queue: meta.queue.clone(),
            event: meta.event.clone(),
            payload,
            client_id: client.clone(),
            published_at,
            source: Arc::clone(&meta.source),
            attempt,
            seq: meta.seq,
        }
    }
}

/// A live push: `envelope` for every connected socket of `envelope.client_id` on that queue.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub envelope: Envelope,
    /// The message's sequence number: where a socket that could not take it resumes.
    pub seq: u64,
    /// The head of an ordered subscription (sent again after each ack), not a new message.
    pub head: bool,
}

/// The answer to a publish.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub id: MessageId,
    pub queue: QueueName,
    pub event: EventName,
    pub published_at: String,
    /// How many client inboxes the message entered (0: it waits for the first subscriber).
    pub recipients: usize,
    /// For a delayed message: when it becomes deliverable (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// True when this id had been published to this queue before and nothing new was stored.
    /// Not part of the JSON: a replay answers exactly what the first publish answered.
    #[serde(skip)]
    pub duplicate: bool,
    /// The new message's sequence number (the beanstalk door's job id); 0 for a duplicate.
    /// Not part of the JSON.
    #[serde(skip)]
    pub seq: u64,
}

impl Published {
    pub(crate) fn from_receipt(receipt: &Receipt, duplicate: bool) -> Self {
        Self {
            id: receipt.id.clone(),
            queue: receipt.queue.clone(),
            event: receipt.event.clone(),
            published_at: format_ms(receipt.published_at_ms),
            recipients: receipt.recipients,
            deliver_at: receipt.deliver_at_ms.map(format_ms),
            duplicate,
            seq: 0,
        }
    }
}

/// The answer to an ack of several ids: how many were removed, and for each id whether it
/// was (an unknown or repeated id was not; that is not an error).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Acked {
    pub removed: usize,
    pub results: Vec<AckResult>,
}

/// One id of an ack.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AckResult {
    pub id: MessageId,
    pub removed: bool,
}

impl Acked {
    /// Pairs `ids` with what [`Broker::ack`](super::Broker::ack) answered for them.
    pub fn new(ids: &[MessageId], removed: &[bool]) -> Self {
        let results: Vec<AckResult> = ids
            .iter()
            .zip(removed)
            .map(|(id, removed)| AckResult {
                id: id.clone(),
                removed: *removed,
            })
            .collect();
        Self {
            removed: results.iter().filter(|r| r.removed).count(),
            results,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as RFC 3339 in UTC (`2026-11-22T08:00:00.123Z`).
///
/// Every envelope carries its message's time, so a message fanned out to 200 subscribers, or a
/// catch-up of messages published within the same second, formats the same second again and
/// again: each thread keeps the last second jiff formatted and only appends the milliseconds.
pub fn format_ms(ms: u64) -> String {
    with_ms_text(ms, str::to_owned)
}

/// [`format_ms`] as shared text, in one allocation: an envelope's time.
pub fn format_ms_shared(ms: u64) -> Arc<str> {
    with_ms_text(ms, |text| Arc::from(text))
}

/// Calls `f` with the text of [`format_ms`], written into a buffer the thread keeps.
fn with_ms_text<R>(ms: u64, f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    /// The last second formatted on this thread (without its fraction), and the buffer.
    struct Last {
        second: Option<u64>,
        prefix: String,
        text: String,
    }
    thread_local! {
        static LAST: RefCell<Last> = const {
            RefCell::new(Last { second: None, prefix: String::new(), text: String::new() })
        };
    }
    let (second, millis) = (ms / 1000, ms % 1000);
    LAST.with_borrow_mut(|last| {
        if last.second != Some(second) {
            let at = i64::try_from(second).unwrap_or(i64::MAX);
            let time = jiff::Timestamp::from_second(at).unwrap_or(jiff::Timestamp::MAX);
            // `2026-11-22T08:00:00` of `2026-11-22T08:00:00Z`.
            last.prefix = time.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            last.second = Some(second);
        }
        // `.123Z`, digit by digit: `write!` took as long as the rest of an envelope's fields.
        let text = &mut last.text;
        text.clear();
        text.push_str(&last.prefix);
        text.push('.');
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            text.push(char::from(b'0' + digit as u8));
        }
        text.push('Z');
        f(text)
    })
}

/// The compact JSON text of `value`. `to_string` gives the same text through `Display`,
/// whose formatter passes each piece on separately into a string that starts empty: about
/// twice the instructions for a small payload, once per publish.
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

/// A message's payload as JSON text, shared by every envelope that carries it and written
/// into each as it is: on its way to subscribers (live, catch-up, workers) a payload is never
/// parsed or serialized again (DECISIONS 72).
#[derive(Clone, Debug)]
pub struct SharedPayload(Arc<RawValue>);

impl SharedPayload {
    /// The payload `value` (its compact JSON text).
    pub fn of(value: &Value) -> Self {
        Self::from_text(json_text(value))
    }

    /// The payload read back from the store as `text`; `None` if it is not one JSON value
    /// (a damaged or hand-edited file), which callers treat as a message no longer stored.
    /// Checked without building a value: a scan of the text, a fraction of parsing it.
    pub(crate) fn from_stored(text: String) -> Option<Self> {
        RawValue::from_string(text)
            .ok()
            .map(|raw| Self(Arc::from(raw)))
    }

    /// The payload whose JSON text is `text`, being published: serde_json's own output, or a
    /// beanstalk job body kept as written (spaces around it included) that the door checked
    /// parses as one JSON value.
    pub(crate) fn from_text(mut text: String) -> Self {
        let json_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        let end = text.trim_end_matches(json_space).len();
        text.truncate(end);
        let start = text.len() - text.trim_start_matches(json_space).len();
        if start > 0 {
            text.drain(..start);
        }
        #[allow(unsafe_code)]
        // SAFETY: a text being published is one JSON value (serde_json wrote it, or the
        // beanstalk door parsed it), and the JSON whitespace around it is trimmed above.
        // Debug builds (every test) parse it again inside `from_string_unchecked` and panic
        // if that ever breaks.
        let raw = unsafe { RawValue::from_string_unchecked(text) };
        Self(Arc::from(raw))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON value (parsed: for lab dialects, which rebuild envelopes).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    /// Whether `other` is this same shared text (not only an equal one).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for SharedPayload {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Serialize for SharedPayload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_payload_is_its_json_text_written_as_it_is() {
        let value =
            serde_json::json!({"to": "Zoë", "n": [1, 2.5, null], "big": 18446744073709551615u64});
        let payload = SharedPayload::of(&value);
        assert_eq!(payload.text(), value.to_string());
        assert_eq!(payload.value(), value);
        assert_eq!(
            serde_json::to_string(&serde_json::json!({"payload": payload.clone()})).unwrap(),
            format!("{{\"payload\":{}}}", value)
        );
        // A text kept as written (a beanstalk body): the spaces inside stay, those around it go.
        let spaced = SharedPayload::from_text(" \r\n\t{\"a\": [1, 2]}\n ".to_owned());
        assert_eq!(spaced.text(), "{\"a\": [1, 2]}");
        assert_eq!(spaced.value(), serde_json::json!({"a": [1, 2]}));
        assert_eq!(SharedPayload::from_text("7".to_owned()).text(), "7");
        // Read back from the store: checked, spaces around it dropped, damage refused.
        let stored = SharedPayload::from_stored(" {\"a\": [1, 2]} ".to_owned()).unwrap();
        assert_eq!(stored.text(), "{\"a\": [1, 2]}");
        assert_eq!(
            SharedPayload::from_stored(value.to_string()),
            Some(payload.clone())
        );
        for damaged in ["{\"a\": ", "", "1 2", "[1]]"] {
            assert_eq!(
                SharedPayload::from_stored(damaged.to_owned()),
                None,
                "{damaged}"
            );
        }
        // Equal texts are equal payloads; only a clone is the same one.
        let again = SharedPayload::of(&value);
        assert_eq!(again, payload);
        assert!(!again.same(&payload));
        assert!(payload.clone().same(&payload));
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(format_ms(1_700_000_000_007), "2023-11-14T22:13:20.007Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_cached_second_gives_what_jiff_gives_for_every_millisecond() {
        let jiff = |ms: u64| {
            let time = jiff::Timestamp::from_millisecond(ms as i64).unwrap();
            format!("{time:.3}")
        };
        // Runs of the same second (the cache), jumps back and forth, leap days, year ends.
        let mut samples: Vec<u64> = (0..2_500).map(|i| 1_700_000_000_000 + i * 7).collect();
        samples.extend([
            951_782_400_000,
            951_868_799_999,
            4_107_542_399_999,
            4_107_542_400_000,
        ]);
        samples.extend(
            (0..200u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 253_000_000_000_000),
        );
        for ms in samples {
            assert_eq!(format_ms(ms), jiff(ms), "{ms}");
            assert_eq!(&*format_ms_shared(ms), jiff(ms), "{ms}");
        }
    }

    #[test]
    fn points_in_time_are_epoch_milliseconds_or_rfc3339_with_any_offset() {
        let at = |v: Value| instant("deliverAt", &v).map_err(|e| e.code());
        let ms = Ok(Some(1_700_000_000_123));
        assert_eq!(at(Value::from(1_700_000_000_123_u64)), ms);
        assert_eq!(at("2023-11-14T22:13:20.123Z".into()), ms);
        assert_eq!(at("2023-11-15T00:13:20.123+02:00".into()), ms);
        assert_eq!(at("2023-11-14T17:13:20.123-05:00".into()), ms);
        assert_eq!(at("2023-11-14t22:13:20.123z".into()), ms);
        // Without an offset: UTC, as before (RFC 3339 wants one; older clients omit it).
        assert_eq!(at("2023-11-14T22:13:20.123".into()), ms);
        assert_eq!(at(Value::Null), Ok(None));
        let bad = [
            "tomorrow",
            "2023-11-14",
            "2023-11-14Z",
            "2023-13-14T22:13:20Z",
            "1969-12-31T23:59:59Z",
        ];
        for bad in bad {
            assert_eq!(
                at(bad.into()),
                Err(crate::error::Code::InvalidField),
                "{bad}"
            );
        }
        assert_eq!(at(Value::from(-1)), Err(crate::error::Code::InvalidField));
    }
}

/// A publish request as both transports receive it (HTTP body, socket.io `publish` event).
///
/// The time fields are read as JSON values and checked by [`PublishRequest::into_message`],
/// so that a wrong one gets a message naming it; the schema says what they must be.
#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    /// Required unless the transport names the queue (as the HTTP route does); there it may
    /// repeat the route's queue but not name another.
    #[serde(default)]
    pub queue: Option<QueueName>,
    pub event: EventName,
    /// Any JSON value; missing means `null`.
    #[serde(default)]
    pub payload: Value,
    /// Makes the publish idempotent: an id this queue has seen answers the first receipt.
    #[serde(default)]
    pub id: Option<MessageId>,
    /// Delay before delivery, in milliseconds (up to a year); not with `deliverAt`.
    #[serde(default)]
    #[schema(value_type = Option<u64>, maximum = 31_536_000_000_u64)]
    pub delay_ms: Option<Value>,
    /// When to deliver: milliseconds since the epoch, or an RFC 3339 time with any offset
    /// (without one, UTC); a past time means now. Not with `delayMs`.
    #[serde(default)]
    #[schema(value_type = Option<DeliverAt>)]
    pub deliver_at: Option<Value>,
    /// Time to live after the publish, in milliseconds (at least 1).
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub ttl_ms: Option<Value>,
}

/// The schema of `deliverAt`: epoch milliseconds or an RFC 3339 time.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
#[serde(untagged)]
pub enum DeliverAt {
    /// Milliseconds since the Unix epoch.
    Millis(u64),
    /// An RFC 3339 time, e.g. `2026-11-22T10:00:00+02:00`.
    #[schema(format = DateTime)]
    Time(String),
}

impl PublishRequest {
    /// Checks the request and turns it into a [`NewMessage`]. `route_queue` is the queue the
    /// transport's route names, if any; the body may repeat it but not contradict it.
    pub fn into_message(
        self,
        route_queue: Option<&QueueName>,
        source: String,
    ) -> Result<NewMessage, crate::error::Error> {
        use crate::error::Error;
        let queue = match (route_queue, self.queue) {
            (Some(route), Some(body)) if route != &body => {
                return Err(Error::invalid_field(format!(
                    "the body names queue '{body}' but the route names '{route}'"
                )));
            }
            (Some(route), _) => route.clone(),
            (None, Some(body)) => body,
            (None, None) => return Err(Error::invalid_field("missing field `queue`")),
        };
        let delay_ms = millis("delayMs", self.delay_ms.as_ref(), MAX_DELAY_MS)?;
        let deliver_at_ms = match (delay_ms, self.deliver_at.as_ref()) {
            (Some(_), Some(v)) if !v.is_null() => {
                return Err(Error::invalid_field(
                    "send either 'delayMs' or 'deliverAt', not both",
                ));
            }
            (Some(delay), _) => Some(now_ms().saturating_add(delay)),
            (None, Some(at)) => instant("deliverAt", at)?,
            (None, None) => None,
        };
        if deliver_at_ms.is_some_and(|at| at > now_ms().saturating_add(MAX_DELAY_MS)) {
            return Err(Error::invalid_field("'deliverAt' is more than a year away"));
        }
        let ttl_ms = millis("ttlMs", self.ttl_ms.as_ref(), u64::MAX)?;
        if ttl_ms == Some(0) {
            return Err(Error::invalid_field("'ttlMs' must be at least 1"));
        }
        Ok(NewMessage {
            queue,
            event: self.event,
            payload: self.payload,
            id: self.id,
            source,
            deliver_at_ms,
            ttl_ms,
            job: None,
            text: None,
        })
    }
}

/// The longest delay accepted: a year.
const MAX_DELAY_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// A whole number of milliseconds from `0` to `max`; `null` or absent is `None`.
fn millis(
    field: &str,
    value: Option<&Value>,
    max: u64,
) -> Result<Option<u64>, crate::error::Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
            crate::error::Error::invalid_field(format!(
                "'{field}' must be a whole number of milliseconds from 0 to {max}"
            ))
        }),
    }
}

/// A point in time: milliseconds since the epoch, or an RFC 3339 string with any offset
/// (`Z`, `+02:00`...); one without an offset is read as UTC.
fn instant(field: &str, value: &Value) -> Result<Option<u64>, crate::error::Error> {
    let invalid = || {
        crate::error::Error::invalid_field(format!(
            "'{field}' must be milliseconds since the epoch or an RFC 3339 time like 2026-11-22T08:00:00Z"
        ))
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(invalid),
        Value::String(text) => {
            // A date and a time without an offset (`2026-11-22T08:00:00`, as Python's
            // `isoformat()` writes UTC) is UTC; a date alone is not a point in time.
            let has_time = text.len() > 10 && text.is_char_boundary(10);
            let time = match text.parse::<jiff::Timestamp>() {
                Ok(time) => time,
                Err(_) if has_time => text
                    .parse::<jiff::civil::DateTime>()
                    .and_then(|civil| jiff::tz::Offset::UTC.to_timestamp(civil))
                    .map_err(|_| invalid())?,
                Err(_) => return Err(invalid()),
            };
            u64::try_from(time.as_millisecond())
                .map(Some)
                .map_err(|_| invalid())
        }
        _ => Err(invalid()),
    }
}
