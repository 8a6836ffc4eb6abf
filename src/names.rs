//! Validated names: [`QueueName`], [`ClientId`], [`EventName`] and [`MessageId`].
//!
//! Every name that enters queuehub from a client (HTTP body, URL path, socket.io event) is
//! parsed into one of these newtypes at the edge, so the broker and the store only ever see
//! valid names. The rules (SPEC section 1): 1–128 characters, no control characters, no `/`,
//! not only whitespace. Event names must also not be one of the names socket.io reserves.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Event names socket.io uses for itself; a message may not be published under them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Checks the rules shared by every kind of name; `what` names the field in the error.
fn check_name(what: &'static str, raw: &str) -> Result<(), Error> {
    let chars = raw.chars().count();
    if chars == 0 {
        return Err(Error::invalid_name(format!("{what} must not be empty")));
    }
    if chars > MAX_NAME_CHARS {
        return Err(Error::invalid_name(format!(
            "{what} is {chars} characters long; the limit is {MAX_NAME_CHARS}"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid_name(format!(
            "{what} must not contain control characters"
        )));
    }
    if raw.contains('/') {
        return Err(Error::invalid_name(format!("{what} must not contain '/'")));
    }
    if raw.trim().is_empty() {
        return Err(Error::invalid_name(format!(
            "{what} must not be only whitespace"
        )));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Human name of the field, used in error messages.
            pub const FIELD: &'static str = $what;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(raw: String) -> Result<Self, Error> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }
    };
}

name_type!(
    /// The name of a queue, e.g. `orders` or `acme-widgets`.
    QueueName,
    "queue"
);
name_type!(
    /// A durable consumer identity; it outlives sockets.
    ClientId,
    "clientId"
);
name_type!(
    /// The socket.io event a message is delivered as, e.g. `delivered`.
    EventName,
    "event"
);
name_type!(
    /// A message id: generated (UUID v7, sorts by time) or chosen by the publisher.
    MessageId,
    "id"
);

impl QueueName {
    /// Parses a queue name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_name(Self::FIELD, &raw)?;
        Ok(Self(raw))
    }

    /// The dead-letter queue of this queue, `<queue>.dead`; `None` if that name would be too long.
    pub fn dead_letter(&self) -> Option<QueueName> {
        QueueName::parse(format!("{}.dead", self.0)).ok()
    }
}

impl ClientId {
    /// Parses a client id.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_name(Self::FIELD, &raw)?;
        Ok(Self(raw))
    }
}

impl MessageId {
    /// Parses a publisher-chosen message id.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_name(Self::FIELD, &raw)?;
        Ok(Self(raw))
    }

    /// A fresh id: a UUID v7, so generated ids sort by publish time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl EventName {
    /// Parses an event name, refusing the names socket.io reserves.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_name(Self::FIELD, &raw)?;
        if RESERVED_EVENTS.contains(&raw.as_str()) {
            return Err(Error::invalid_name(format!(
                "event '{raw}' is reserved by socket.io; choose another name"
            )));
        }
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "orders",
            "acme-widgets",
            "1-800-flowers",
            "bg_building",
            "a b",
            "ü",
        ] {
            assert_eq!(QueueName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        let too_long = "x".repeat(MAX_NAME_CHARS + 1);
        for (bad, reason) in [
            ("", "empty"),
            ("   ", "whitespace"),
            ("a/b", "'/'"),
            ("a\nb", "control"),
            (too_long.as_str(), "limit"),
        ] {
            let err = QueueName::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_name", "{bad:?}");
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_length_limit_counts_characters_not_bytes() {
        assert!(ClientId::parse("é".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn reserved_socket_io_events_are_refused() {
        for name in RESERVED_EVENTS {
            assert!(EventName::parse(name).is_err(), "{name}");
        }
        assert!(EventName::parse("delivered").is_ok());
    }

    #[test]
    fn generated_ids_sort_by_time() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert!(a < b);
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: Result<QueueName, _> = serde_json::from_str("\"orders\"");
        assert!(ok.is_ok());
        let bad: Result<QueueName, _> = serde_json::from_str("\"a/b\"");
        assert!(bad.is_err());
    }
}
