//! Validated names: [`QueueName`], [`ClientId`], [`EventName`] and [`MessageId`].
//!
//! Every name that enters queuehub from a client (HTTP body, URL path, socket.io event) is
//! parsed into one of these newtypes at the edge, so the broker and the store only ever see
//! valid names. The rules (docs/SPEC.md, section 1): 1–128 characters, no control characters, no `/`,
//! not only whitespace. A queue, client or event may not be named `*`, the wildcard of token
//! permission lists. Event names must also not be one of the [`RESERVED_EVENTS`]: those
//! socket.io clients and servers (4.x and 2.x) use for themselves, and those queuehub emits.
//!
//! Names read back from the store skip the rules added after they may have been stored
//! ([`StoredName`]), so that a data directory written by an older queuehub still opens.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::Error;

/// The longest name accepted over HTTP and socket.io, in characters (docs/SPEC.md, section 1).
pub const MAX_NAME_CHARS: usize = 128;

/// The longest name of a queue that a beanstalk tube names (and of its workers' client), in
/// characters: beanstalkd's tube names are up to 200 bytes (DECISIONS 58). Such a queue is
/// reachable over the beanstalk door only.
pub const MAX_TUBE_NAME_CHARS: usize = 200;

/// Event names a message may not be published under: a subscriber's socket.io client would
/// take such a message for one of its own events, or for one of queuehub's (a fake server
/// error, a fake dashboard snapshot).
pub const RESERVED_EVENTS: [&str; 20] = [
    // socket.io 4.x, client and server (and the 2.x server, with `error`).
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    // socket.io-client 2.x (the classroom preset serves it): its Socket's internal events,
    // which it hands to the page's listeners instead of treating them as messages.
    "connect_timeout",
    "connecting",
    "error",
    "reconnect",
    "reconnect_attempt",
    "reconnect_error",
    "reconnect_failed",
    "reconnecting",
    "ping",
    "pong",
    // queuehub's own: the error event of a refused event without an ack callback, and the
    // `/dashboard` namespace's events.
    "mq:error",
    "snapshot",
    "snapshot:delta",
    "activity",
];

/// The wildcard of token permission lists (`"subscribe": ["*"]`); not a valid name.
pub const WILDCARD: &str = "*";

/// Checks the rules shared by every kind of name; `what` names the field in the error.
fn check_name(what: &'static str, raw: &str) -> Result<(), Error> {
    check_name_up_to(what, raw, MAX_NAME_CHARS)
}

/// [`check_name`] with another length limit.
fn check_name_up_to(what: &'static str, raw: &str, limit: usize) -> Result<(), Error> {
    // Most names are short ASCII: one pass over the bytes settles them (this runs for every
    // name of every event). Anything it does not accept gets the full checks and their message.
    if plain_ascii_name(raw, limit) {
        return Ok(());
    }
    check_name_fully(what, raw, limit)
}

/// Whether `raw` is a name by a check of its bytes alone: printable ASCII and spaces, not only
/// spaces, no `/`, at most `limit` long. Every name it accepts passes [`check_name_fully`].
fn plain_ascii_name(raw: &str, limit: usize) -> bool {
    raw.len() <= limit
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' || b == b' ')
        && raw.bytes().any(|b| b != b' ')
}

/// Every rule of a name, one by one, each with its own message.
fn check_name_fully(what: &'static str, raw: &str, limit: usize) -> Result<(), Error> {
    let chars = raw.chars().count();
    if chars == 0 {
        return Err(Error::invalid_name(format!("{what} must not be empty")));
    }
    if chars > limit {
        return Err(Error::invalid_name(format!(
            "{what} is {chars} characters long; the limit is {limit}"
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
    ($(#[$doc:meta])* $name:ident, $what:literal, checks: [$($check:ident),*]) => {
        $(#[$doc])*
        ///
        /// Shared text: a clone (one per inbox entry, store op and delivery) copies a pointer,
        /// not the name.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Human name of the field, used in error messages.
            pub const FIELD: &'static str = $what;

            /// Parses a name: the rules of every name, then this kind's own.
            pub fn parse(raw: impl AsRef<str>) -> Result<Self, Error> {
                let raw = raw.as_ref();
                check_name(Self::FIELD, raw)?;
                $($check(Self::FIELD, raw)?;)*
                Ok(Self(raw.into()))
            }

            /// Parses a name that a beanstalk tube gives: the same rules, up to
            /// [`MAX_TUBE_NAME_CHARS`] characters.
            pub fn parse_tube_name(raw: impl Into<String>) -> Result<Self, Error> {
                let raw = raw.into();
                check_name_up_to(Self::FIELD, &raw, MAX_TUBE_NAME_CHARS)?;
                $($check(Self::FIELD, &raw)?;)*
                Ok(Self(raw.into()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
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

        impl StoredName for $name {
            fn from_stored(raw: String) -> Result<Self, Error> {
                check_name_up_to(Self::FIELD, &raw, MAX_TUBE_NAME_CHARS)?;
                Ok(Self(raw.into()))
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
                name.0.as_ref().to_owned()
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema(concat!("A name (`", $what, "`); see docs/API.md, Names"))
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// The OpenAPI schema of a name: a string of 1 to [`MAX_NAME_CHARS`] characters.
fn name_schema(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .description(Some(description))
        .into()
}

name_type!(
    /// The name of a queue, e.g. `orders` or `acme-widgets`.
    QueueName,
    "queue",
    checks: [check_not_wildcard]
);
name_type!(
    /// A durable consumer identity; it outlives sockets.
    ClientId,
    "clientId",
    checks: [check_not_wildcard]
);
name_type!(
    /// The socket.io event a message is delivered as, e.g. `delivered`.
    EventName,
    "event",
    checks: [check_not_wildcard, check_not_reserved]
);
name_type!(
    /// A message id: generated (UUID v7, sorts by time) or chosen by the publisher.
    MessageId,
    "id",
    checks: []
);

/// Refuses `*`, which reads as "every queue" in a token's permission lists.
fn check_not_wildcard(what: &'static str, raw: &str) -> Result<(), Error> {
    if raw == WILDCARD {
        return Err(Error::invalid_name(format!(
            "{what} must not be '*', the wildcard of token permissions"
        )));
    }
    Ok(())
}

/// Refuses the [`RESERVED_EVENTS`] as event names.
fn check_not_reserved(what: &'static str, raw: &str) -> Result<(), Error> {
    if RESERVED_EVENTS.contains(&raw) {
        return Err(Error::invalid_name(format!(
            "{what} '{raw}' is reserved (socket.io or queuehub uses it for itself); choose another name"
        )));
    }
    Ok(())
}

/// A name read back from the store. It was checked when it entered queuehub; here only the
/// rules it was always held to apply (length, control characters, `/`, whitespace), not
/// those added later (reserved event names, `*`), so that stored data keeps loading.
pub trait StoredName: Sized {
    /// The name as the store holds it; `Err` only for a name no queuehub ever accepted.
    fn from_stored(raw: String) -> Result<Self, Error>;
}

/// Serde helpers for store records: names deserialized with [`StoredName::from_stored`].
pub mod stored {
    use serde::{Deserialize, Deserializer, de::Error as _};

    use super::StoredName;

    /// One name (`#[serde(deserialize_with = "crate::names::stored::name")]`).
    pub fn name<'de, D: Deserializer<'de>, T: StoredName>(d: D) -> Result<T, D::Error> {
        T::from_stored(String::deserialize(d)?).map_err(D::Error::custom)
    }

    /// An optional list of names, such as a subscription's event filter.
    pub fn list<'de, D: Deserializer<'de>, T: StoredName>(
        d: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|names| {
                names
                    .into_iter()
                    .map(|raw| T::from_stored(raw).map_err(D::Error::custom))
                    .collect()
            })
            .transpose()
    }
}

impl QueueName {
    /// The dead-letter queue of this queue, `<queue>.dead`; `None` if that name would be too long.
    pub fn dead_letter(&self) -> Option<QueueName> {
        QueueName::parse(format!("{}.dead", self.0)).ok()
    }

    /// For a dead-letter queue `<queue>.dead`: `<queue>`.
    pub fn dead_letter_of(&self) -> Option<QueueName> {
        QueueName::parse(self.0.strip_suffix(".dead")?).ok()
    }
}

impl MessageId {
    /// A fresh id: a UUID v7, so generated ids sort by publish time.
    pub fn generate() -> Self {
        let mut text = uuid::Uuid::encode_buffer();
        Self(Arc::from(
            &*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_check_accepts_only_names_the_full_rules_accept() {
        let mut samples = vec![
            String::new(),
            " ".repeat(3),
            "a".repeat(128),
            "a".repeat(129),
        ];
        for b in 0u8..=127 {
            let c = char::from(b);
            samples.extend([
                c.to_string(),
                format!("a{c}b"),
                format!("{c}{c}"),
                format!(" {c} "),
            ]);
        }
        for raw in samples {
            if plain_ascii_name(&raw, MAX_NAME_CHARS) {
                assert!(
                    check_name_fully("name", &raw, MAX_NAME_CHARS).is_ok(),
                    "{raw:?} passes the byte check but not the rules"
                );
            }
        }
        assert!(plain_ascii_name("orders-1 a_b", MAX_NAME_CHARS));
        assert!(!plain_ascii_name("a/b", MAX_NAME_CHARS) && !plain_ascii_name("a\tb", 128));
    }

    #[test]
    fn names_from_tubes_may_be_longer_than_names_from_clients() {
        let longest = "t".repeat(MAX_TUBE_NAME_CHARS);
        assert!(QueueName::parse(&longest[..MAX_NAME_CHARS]).is_ok());
        assert!(QueueName::parse(&longest[..=MAX_NAME_CHARS]).is_err());
        assert!(QueueName::parse_tube_name(longest.clone()).is_ok());
        assert!(ClientId::parse_tube_name(longest.clone()).is_ok());
        assert!(QueueName::parse_tube_name(format!("{longest}t")).is_err());
        assert!(
            QueueName::parse_tube_name("*").is_err(),
            "the kind's own rules still hold"
        );
        assert!(
            QueueName::from_stored(longest).is_ok(),
            "the store loads them back"
        );
    }

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
            let err = EventName::parse(name).unwrap_err();
            assert_eq!(err.code(), "invalid_name", "{name}");
            assert!(err.to_string().contains("reserved"), "{name}: {err}");
        }
        assert!(EventName::parse("delivered").is_ok());
    }

    #[test]
    fn socket_io_two_x_and_queuehubs_own_events_are_reserved() {
        for name in [
            "error",
            "mq:error",
            "snapshot",
            "snapshot:delta",
            "activity",
            "connect_timeout",
            "reconnect",
            "reconnect_attempt",
            "reconnecting",
            "reconnect_error",
            "reconnect_failed",
            "ping",
            "pong",
            "connecting",
        ] {
            assert!(RESERVED_EVENTS.contains(&name), "{name}");
        }
        // socket.io's `send()` event is an ordinary message event, and labs may publish it.
        assert!(EventName::parse("message").is_ok());
    }

    #[test]
    fn the_wildcard_is_not_a_queue_client_or_event_name() {
        for err in [
            QueueName::parse("*").unwrap_err(),
            ClientId::parse("*").unwrap_err(),
            EventName::parse("*").unwrap_err(),
        ] {
            assert_eq!(err.code(), "invalid_name");
            assert!(err.to_string().contains("wildcard"), "{err}");
        }
        let from_json: Result<QueueName, _> = serde_json::from_str("\"*\"");
        assert!(from_json.is_err());
        // Only the bare wildcard: a star inside a name is an ordinary character.
        assert!(QueueName::parse("*orders*").is_ok());
    }

    #[test]
    fn stored_names_keep_loading_under_newer_rules() {
        assert_eq!(
            EventName::from_stored("error".into()).unwrap().as_str(),
            "error"
        );
        assert!(QueueName::from_stored("*".into()).is_ok());
        // The rules names were always held to still apply.
        assert!(QueueName::from_stored("a/b".into()).is_err());
    }

    #[test]
    fn a_dead_letter_queue_knows_its_queue() {
        let queue = QueueName::parse("orders").unwrap();
        let dead = queue.dead_letter().unwrap();
        assert_eq!(dead.as_str(), "orders.dead");
        assert_eq!(dead.dead_letter_of(), Some(queue.clone()));
        assert_eq!(queue.dead_letter_of(), None);
        assert_eq!(QueueName::parse(".dead").unwrap().dead_letter_of(), None);
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
