//! Job bodies are bytes; messages carry JSON. How one becomes the other (DECISIONS 59):
//!
//! - a UTF-8 body that parses as JSON (and is not a JSON string) is the payload itself, and
//!   its text is stored as written (spaces and all), so it comes back byte for byte;
//! - any other UTF-8 body (text, or a JSON string literal) is a JSON string payload;
//! - a body that is not UTF-8 is a JSON string of its base64, published as event
//!   `job.base64` (other jobs are event `job`), so a socket.io subscriber can tell.
//!
//! Back to bytes (what `reserve` and `peek` answer): a message of event `job.base64` is
//! decoded; a string payload is its text; any other payload is its stored JSON text. So a
//! message published over HTTP with payload `"resize 42"` is the body `resize 42`, and one
//! with `{"id": 42}` is the body `{"id":42}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::names::EventName;

/// The event of a job put through the beanstalk door.
pub const EVENT: &str = "job";

/// The event of a job whose body is not UTF-8 (its payload is the body in base64).
pub const EVENT_BASE64: &str = "job.base64";

/// A job body as a message: its event, payload, and payload text to store.
#[derive(Debug, PartialEq)]
pub struct Encoded {
    pub event: EventName,
    pub payload: Value,
    pub text: String,
}

/// The message a job body becomes.
pub fn encode(body: &[u8]) -> Encoded {
    let event = |name: &str| EventName::parse(name).expect("the job events are valid names");
    let Ok(text) = std::str::from_utf8(body) else {
        let encoded = Value::String(STANDARD.encode(body));
        return Encoded {
            event: event(EVENT_BASE64),
            text: encoded.to_string(),
            payload: encoded,
        };
    };
    match serde_json::from_str::<Value>(text) {
        Ok(payload) if !payload.is_string() => Encoded {
            event: event(EVENT),
            payload,
            text: text.to_owned(),
        },
        _ => {
            let payload = Value::String(text.to_owned());
            Encoded {
                event: event(EVENT),
                text: payload.to_string(),
                payload,
            }
        }
    }
}

/// The job body of a message with this event and stored payload text.
pub fn decode(event: &EventName, text: &str) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match parsed {
        Some(Value::String(s)) if event.as_str() == EVENT_BASE64 => {
            STANDARD.decode(&s).unwrap_or_else(|_| s.into_bytes())
        }
        Some(Value::String(s)) => s.into_bytes(),
        _ => text.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(body: &[u8]) -> Vec<u8> {
        let encoded = encode(body);
        decode(&encoded.event, &encoded.text)
    }

    #[test]
    fn every_body_comes_back_byte_for_byte() {
        let bodies: [&[u8]; 12] = [
            b"",
            b"hello",
            b"{\"a\": 1, \"b\": [1, 2]}",
            b"  42  ",
            b"\"quoted\"",
            b" \"spaced string\" ",
            b"null",
            b"{not json",
            b"line\r\nbreak\0nul",
            b"\xff\xfe\x00binary",
            b"caf\xc3\xa9",
            b"12345678901234567890123456789",
        ];
        for body in bodies {
            assert_eq!(round_trip(body), body, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn json_bodies_are_json_payloads_and_the_rest_are_strings() {
        let object = encode(b"{\"user\": 7}");
        assert_eq!(object.payload, serde_json::json!({"user": 7}));
        assert_eq!(object.text, "{\"user\": 7}", "stored as written");
        assert_eq!(object.event.as_str(), EVENT);
        assert_eq!(encode(b"hi").payload, Value::String("hi".into()));
        assert_eq!(encode(b"\"hi\"").payload, Value::String("\"hi\"".into()));
        let binary = encode(b"\xff");
        assert_eq!(binary.event.as_str(), EVENT_BASE64);
        assert_eq!(binary.payload, Value::String("/w==".into()));
    }

    #[test]
    fn messages_published_over_http_become_bodies() {
        let event = EventName::parse("resize").unwrap();
        assert_eq!(decode(&event, "\"resize 42\""), b"resize 42");
        assert_eq!(decode(&event, "{\"id\":42}"), b"{\"id\":42}");
    }
}
