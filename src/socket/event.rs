//! [`Event`]: the events a socket sends, as its namespace understands them, and
//! [`dispatch`], the one place that hands each one to its handler in `events/`.
//!
//! An event's name is read once, when it arrives ([`Event::parse`]): through the namespace's
//! lab dialect if it has one (aliases, lab events, relays, ignored events), else as one of
//! queuehub's own events ([`NATIVE_EVENTS`]). [`dispatch`] matches every kind of event, so
//! an event without a handler cannot compile, and a name queuehub does not handle is
//! answered `unknown_event` ([`unknown_event`]): no event is left without an answer.

use std::sync::Arc;

use serde_json::{Value, json};

use super::context::Session;
pub use super::events::received::{PlainReceived, Received};
use super::events::{get_all, publish, received, relay, subscribe, unsubscribe};
use super::reply::Reply;
use crate::compat::{Dialect, EventKind, NATIVE_EVENTS, native_kind};
use crate::error::{Code, Error};

/// An event a socket sent, by what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Subscribe,
    Unsubscribe,
    GetAll,
    Received,
    Publish,
    /// A lab event that publishes: the one at this index of the dialect's `app_events`.
    App(usize),
    /// A lab event that is only relayed: the relay at this index of the dialect's `relays`.
    Relay(usize),
    /// A lab event accepted and dropped (the dialect's `ignore`).
    Ignored,
    /// A name this namespace does not handle.
    Unknown,
}

/// queuehub's own events by name: the one list a native name is looked up in.
const NATIVE: [(&str, Event); 5] = [
    ("subscribe", Event::Subscribe),
    ("unsubscribe", Event::Unsubscribe),
    ("getAll", Event::GetAll),
    ("received", Event::Received),
    ("publish", Event::Publish),
];

impl Event {
    /// What the event `name` means on a namespace that speaks `dialect` (`None`: queuehub's
    /// own events only).
    pub fn parse(name: &str, dialect: Option<&Dialect>) -> Self {
        let kind = match dialect {
            Some(dialect) => dialect.event_kind(name),
            None => native_kind(name),
        };
        match kind {
            Some(EventKind::Native(native)) => Self::native(native),
            Some(EventKind::App(index)) => Self::App(index),
            Some(EventKind::Relay(index)) => Self::Relay(index),
            Some(EventKind::Ignored) => Self::Ignored,
            None => Self::Unknown,
        }
    }

    /// One of queuehub's own events; a native name with no handler is `Unknown`.
    fn native(name: &str) -> Self {
        NATIVE
            .iter()
            .find(|(native, _)| *native == name)
            .map_or(Self::Unknown, |(_, event)| *event)
    }

    /// queuehub's name for this event, if it is one of its own.
    fn native_name(self) -> Option<&'static str> {
        NATIVE
            .iter()
            .find(|(_, event)| *event == self)
            .map(|(name, _)| *name)
    }
}

/// Handles one event. Each handler applies its event to the broker before returning, and
/// answers in the background once the change is durable: a socket's events take effect in
/// the order sent, while their commits overlap.
pub async fn dispatch(session: &Arc<Session>, event: Event, data: Value, reply: Reply) {
    match (event.native_name(), session.dialect.clone()) {
        (Some(native), Some(dialect)) => {
            translated(session, &dialect, event, native, data, reply).await
        }
        _ => handle(session, event, data, reply).await,
    }
}

/// An event whose handler never waits: it applies its change and answers in the background.
/// Such an event need not go through the socket's queue when nothing waits there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtOnce {
    Publish,
}

impl Event {
    /// Whether this event, on a namespace that speaks `dialect`, is one of those: queuehub's
    /// own `publish` on a namespace without a dialect (a dialect may relay or catch up after
    /// an event, which waits).
    pub fn at_once(self, dialect: Option<&Dialect>) -> Option<AtOnce> {
        match (self, dialect) {
            (Event::Publish, None) => Some(AtOnce::Publish),
            _ => None,
        }
    }

    /// Whether this event, on a namespace that speaks `dialect`, is queuehub's own
    /// `received` on a namespace without a dialect: a run of those waiting together is
    /// handled as one change ([`dispatch_acks`]). They always wait in the socket's queue, so
    /// that the acks one WebSocket read brings form a run: the socket's task starts once
    /// the read is done.
    pub fn joins_acks(self, dialect: Option<&Dialect>) -> bool {
        matches!((self, dialect), (Event::Received, None))
    }
}

/// Handles an event whose handler never waits, at once (see [`AtOnce`]).
pub fn dispatch_at_once(session: &Arc<Session>, event: AtOnce, data: Value, reply: Reply) {
    match event {
        AtOnce::Publish => publish::handle(session, data, reply),
    }
}

/// Handles a run of events for which [`Event::joins_acks`] holds as one change, each
/// answered as if alone.
pub fn dispatch_acks(session: &Arc<Session>, acks: Vec<(Result<Received, Error>, Reply)>) {
    received::handle_all(session, acks);
}

/// Calls the event's handler.
async fn handle(session: &Arc<Session>, event: Event, data: Value, reply: Reply) {
    match event {
        Event::Subscribe => subscribe::handle(session, data, reply),
        Event::Unsubscribe => unsubscribe::handle(session, data, reply),
        Event::GetAll => get_all::handle(session, data, reply).await,
        Event::Received => received::handle(session, data, reply),
        Event::Publish => publish::handle(session, data, reply),
        Event::App(index) => publish::handle_app_event(session, index, data, reply),
        Event::Relay(_) => {
            let relayed = relay::handle(session, &reply.event, &data).await;
            reply.now(relayed);
        }
        Event::Ignored => reply.now(Ok(json!({ "ignored": true }))),
        // Not queued in practice (a socket's connection answers these at once, before its
        // queue); answered here too, so that no event handed over is ever left unanswered.
        Event::Unknown => {
            let error = unknown_event(&reply.event, session.dialect.as_deref());
            reply.now(Err(error));
        }
    }
}

/// One of queuehub's own events sent in a lab's dialect: its fields are translated, then it
/// is handled; a subscribe is followed by a catch-up where the dialect asks for one, and an
/// event the dialect also relays (`join`) goes on to the other sockets of its room.
async fn translated(
    session: &Arc<Session>,
    dialect: &Dialect,
    event: Event,
    native: &str,
    data: Value,
    reply: Reply,
) {
    let relayed = dialect.relay(&reply.event).map(|_| data.clone());
    let name = reply.event.clone();
    let data = dialect.translate(native, data);
    let catch_up = (event == Event::Subscribe && dialect.catch_up_on_subscribe).then(|| {
        let mut request = serde_json::Map::new();
        for field in ["clientId", "queue"] {
            if let Some(value) = data.get(field) {
                request.insert(field.into(), value.clone());
            }
        }
        Value::Object(request)
    });
    handle(session, event, data, reply).await;
    if let Some(request) = catch_up {
        get_all::catch_up_quietly(session, request).await;
    }
    if let Some(data) = relayed
        && let Err(err) = relay::handle(session, &name, &data).await
    {
        tracing::debug!(code = %err.code(), "not relayed: {}", err.message());
    }
}

/// The answer to an event a socket of `dialect`'s namespace does not handle: it names the
/// events it does.
pub fn unknown_event(event: &str, dialect: Option<&Dialect>) -> Error {
    let known: Vec<String> = match dialect {
        Some(dialect) => dialect.events().into_iter().map(|(name, _)| name).collect(),
        None => NATIVE_EVENTS.iter().map(|name| name.to_string()).collect(),
    };
    Error::invalid_field(format!(
        "unknown event '{event}'; queuehub handles {}",
        known.join(", ")
    ))
    .with_code(Code::UnknownEvent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::{builtin_names, builtin_preset};

    /// The dialects of the built-in presets (those with a `[compat]` section). A preset that
    /// does not read is a failure, not a preset left out.
    fn preset_dialects() -> Vec<(&'static str, Dialect)> {
        builtin_names()
            .into_iter()
            .filter_map(|name| {
                let text = builtin_preset(name)
                    .unwrap_or_else(|| panic!("the preset '{name}' is listed but not built in"));
                let file: toml::Table = toml::from_str(text)
                    .unwrap_or_else(|err| panic!("the preset '{name}' is not TOML: {err}"));
                let dialect = file
                    .get("compat")?
                    .clone()
                    .try_into()
                    .unwrap_or_else(|err| {
                        panic!("the preset '{name}' has a [compat] that is not a dialect: {err}")
                    });
                Some((name, dialect))
            })
            .collect()
    }

    #[test]
    fn every_native_event_has_a_handler() {
        for name in NATIVE_EVENTS {
            let event = Event::parse(name, None);
            assert_ne!(event, Event::Unknown, "'{name}' would have no handler");
            assert_eq!(
                event.native_name(),
                Some(name),
                "'{name}' is handled as itself"
            );
        }
    }

    #[test]
    fn every_event_a_preset_declares_has_a_handler() {
        let dialects = preset_dialects();
        assert!(!dialects.is_empty(), "the built-in presets have dialects");
        for (preset, dialect) in &dialects {
            for (name, _) in dialect.events() {
                assert_ne!(
                    Event::parse(&name, Some(dialect)),
                    Event::Unknown,
                    "'{name}' of the preset '{preset}' would have no handler"
                );
            }
        }
    }

    #[test]
    fn an_alias_is_the_native_event_it_names() {
        let dialect: Dialect = toml::from_str(
            "namespaces = [\"/\"]\n[event_aliases]\njoin = \"subscribe\"\nrecieved = \"received\"",
        )
        .unwrap();
        assert_eq!(Event::parse("join", Some(&dialect)), Event::Subscribe);
        assert_eq!(Event::parse("recieved", Some(&dialect)), Event::Received);
        assert_eq!(
            Event::parse("join", None),
            Event::Unknown,
            "only in the dialect"
        );
    }

    #[test]
    fn a_name_nobody_handles_is_answered_unknown_event_naming_the_events_handled() {
        assert_eq!(Event::parse("no-such-event", None), Event::Unknown);
        assert_eq!(
            Event::parse("no-such-event", Some(&Dialect::default())),
            Event::Unknown
        );
        let error = unknown_event("no-such-event", None);
        assert_eq!(error.code(), "unknown_event");
        for name in NATIVE_EVENTS {
            assert!(error.message().contains(name), "{}", error.message());
        }
    }
}
