//! Reading an incoming event's name and first argument in one pass over its JSON text.
//!
//! socketioxide reads an event's name to route it (a pass over the whole packet); its
//! extractors then read it twice more: `Event` parses the whole packet again for the name
//! (skipping every argument), and `TryData` once more for the data; and each of these passes
//! builds a `serde_json` error it then drops (an eager `ok_or`, each error formatting its
//! message and searching it for a position). [`read`] replaces the two extractors with one
//! pass that builds no error; whatever it does not handle (binary
//! attachments, a packet it cannot read) goes through the extractors as before, so answers
//! to bad input are unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use socketioxide::handler::Value as SioValue;

use crate::json::StrictJson;

/// The name and first argument of an event packet (`["name", data, …]`) without binary
/// attachments; `None` for anything else, which the caller reads the slow way.
pub fn read(value: &SioValue) -> Option<(String, StrictJson)> {
    let SioValue::Str(text, None) = value else {
        return None;
    };
    let mut deserializer = serde_json::Deserializer::from_str(text.as_str());
    let read = deserializer.deserialize_seq(NameAndData).ok()??;
    deserializer.end().ok()?;
    Some(read)
}

/// The first argument of an event packet named exactly `name` (written without escapes),
/// read as `T` straight from the packet's text, without binary attachments; `None` for
/// anything else, which the caller reads with [`read`]. For an event that comes often and in
/// one shape (`received`): no JSON value is built and dropped on the way.
pub fn read_named<'a, T: Deserialize<'a>>(value: &'a SioValue, name: &str) -> Option<T> {
    let SioValue::Str(text, None) = value else {
        return None;
    };
    let mut deserializer = serde_json::Deserializer::from_str(text.as_str());
    let named = Named {
        name,
        data: PhantomData,
    };
    let read = deserializer.deserialize_seq(named).ok()??;
    deserializer.end().ok()?;
    Some(read)
}

/// Visits a packet's array for [`read_named`].
struct Named<'n, T> {
    name: &'n str,
    data: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Named<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a '{}' event packet", self.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Unread elements make the caller's read fail: `None` either way.
        match seq.next_element::<&str>()? {
            Some(name) if name == self.name => {}
            _ => return Ok(None),
        }
        let Some(data) = seq.next_element::<T>()? else {
            return Ok(None);
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(data))
    }
}

/// Visits the packet's array: the name, the first argument, and skips the rest.
struct NameAndData;

impl<'de> Visitor<'de> for NameAndData {
    type Value = Option<(String, StrictJson)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event packet")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(name) = seq.next_element::<String>()? else {
            return Ok(None);
        };
        let Some(data) = seq.next_element::<StrictJson>()? else {
            return Ok(None);
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some((name, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn packet(text: &str) -> SioValue {
        SioValue::Str(text.to_owned().into(), None)
    }

    #[test]
    fn an_event_gives_its_name_and_first_argument() {
        let received = read(&packet(
            r#"["received",{"clientId":"a","id":"x"},"more",3]"#,
        ));
        assert_eq!(
            received,
            Some((
                "received".to_owned(),
                StrictJson(json!({"clientId": "a", "id": "x"}))
            ))
        );
        let escaped = read(&packet(r#"["sub\u0073cribe",[1,2]]"#));
        assert_eq!(
            escaped,
            Some(("subscribe".to_owned(), StrictJson(json!([1, 2]))))
        );
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Plain<'a> {
        id: &'a str,
    }

    #[test]
    fn a_named_event_reads_straight_into_its_fields_or_not_at_all() {
        let plain = packet(r#"["received",{"id":"x"},"more"]"#);
        assert_eq!(read_named(&plain, "received"), Some(Plain { id: "x" }));
        for text in [
            r#"["getAll",{"id":"x"}]"#,
            r#"["rec\u0065ived",{"id":"x"}]"#,
            r#"["received",{"id":"\u0078"}]"#,
            r#"["received",{"id":"x","other":1}]"#,
            r#"["received",{"id":"x","id":"y"}]"#,
            r#"["received"]"#,
            r#"["received",{"id":"x"}"#,
        ] {
            assert_eq!(
                read_named::<Plain>(&packet(text), "received"),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn what_it_cannot_read_is_left_to_the_extractors() {
        for text in [
            r#"["received"]"#,
            r#"["received",{"id":1,"id":2}]"#,
            r#"[7,{}]"#,
            r#"["received",{}"#,
            r#"{"not":"a packet"}"#,
        ] {
            assert_eq!(read(&packet(text)), None, "{text}");
        }
        let with_binary = SioValue::Str(
            r#"["e",{"_placeholder":true,"num":0}]"#.to_owned().into(),
            Some(std::collections::VecDeque::from([
                bytes::Bytes::from_static(b"x"),
            ])),
        );
        assert_eq!(read(&with_binary), None);
    }
}
