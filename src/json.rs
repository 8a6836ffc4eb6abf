//! [`StrictJson`]: JSON as clients send it, with one rule more than the JSON grammar: an
//! object may not name the same key twice, at any depth.
//!
//! serde_json keeps the last of two equal keys, so `{"queue": "a", "queue": "b"}` would be
//! read as queue `b` while a proxy, a log or a permission check in front of queuehub may
//! have read `a`. Both transports read client JSON through this type (the HTTP bodies in
//! `api/body.rs`, the socket.io event payloads in `socket/session.rs`), so such a body is
//! refused as `invalid_json` before anything looks at it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// The marker in a serde error that [`crate::error::from_json_error`] turns into the
/// `invalid_json` code.
pub(crate) const INVALID_JSON: &str = "invalid_json: ";

/// A JSON value read with no repeated key in any object.
#[derive(Clone, Debug, PartialEq)]
pub struct StrictJson(pub Value);

impl StrictJson {
    /// The value.
    pub fn into_inner(self) -> Value {
        self.0
    }
}

/// Reads JSON text, refusing a repeated key (`invalid_json`) as well as bad syntax
/// (`malformed_json`).
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice::<StrictJson>(bytes)
        .map(StrictJson::into_inner)
        .map_err(|e| crate::error::from_json_error(&e))
}

/// The error for an event payload that could not be read: `invalid_json` for a repeated
/// key, else `invalid_field`. `text` is the deserializer's message.
pub fn unreadable(text: &str) -> Error {
    match text.split_once(INVALID_JSON) {
        Some((_, reason)) => Error::invalid_json(reason),
        None => Error::invalid_field(format!("unreadable payload: {text}")),
    }
}

// A hand-written impl, not `#[derive]`: a derived newtype would ask the deserializer for a
// newtype struct, which socketioxide's extractors take for a tuple of arguments.
impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

/// Builds a [`Value`] like serde_json's own visitor, but fails on a repeated object key.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictJson::deserialize(deserializer).map(StrictJson::into_inner)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // The object itself tells whether the key was seen: no extra set, no copy of the
            // key (this runs for every object of every event, acks included).
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "{INVALID_JSON}the key '{key}' appears twice in one object"
                )));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ordinary_json_reads_as_serde_json_reads_it() {
        let text = r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}, "d": []}"#;
        let strict = from_slice(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(from_slice(b"7").unwrap(), json!(7));
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_invalid_json() {
        for text in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"payload": {"x": 1, "x": 1}}"#,
            r#"[{"ok": 1}, {"k": [{"deep": {"z": 0, "z": 0}}]}]"#,
        ] {
            let err = from_slice(text.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "invalid_json", "{text}");
            assert!(err.message().contains("appears twice"), "{err}");
        }
        // The same key in two different objects is fine.
        assert!(from_slice(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn bad_syntax_stays_malformed_json() {
        assert_eq!(from_slice(b"{nope").unwrap_err().code(), "malformed_json");
    }

    #[test]
    fn an_unreadable_event_payload_names_the_right_code() {
        let err = serde_json::from_str::<StrictJson>(r#"{"a":1,"a":2}"#).unwrap_err();
        assert_eq!(unreadable(&err.to_string()).code(), "invalid_json");
        assert_eq!(unreadable("expected value").code(), "invalid_field");
    }
}
