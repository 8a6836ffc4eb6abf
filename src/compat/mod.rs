//! The classroom preset: how a lab's own dialect maps onto queuehub, declared as data.
//!
//! A [`Dialect`] comes from the `[compat]` table of a preset or config file (the language is
//! documented key by key in docs/PRESETS.md): other names for queuehub's events and fields,
//! the lab's own events that publish ([`AppEvent`]), events relayed live to the other
//! sockets of a queue ([`Relay`]), events accepted and dropped, how envelopes are dressed,
//! and [`HttpRoute`]s such as `POST /delivery/{store}/{code}`. This module only reads and
//! rewrites JSON: the socket layer asks it to translate what a lab client sent into
//! queuehub's own event payloads, and to dress envelopes the way lab code reads them.
//! [`Dialect::validate`] refuses a preset that contradicts itself, naming the key at fault.
//!
//! No lab is named here: the built-in presets are the files of `presets/`, compiled in by
//! `build.rs`.

mod rules;
mod template;
mod validate;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use rules::{AppEvent, HttpRoute, PayloadRule, Relay};
pub use template::Template;
pub use validate::{PresetError, RESERVED_NAMESPACES};

use crate::broker::Envelope;
use crate::error::Error;
use crate::names::{EventName, MessageId, QueueName};

include!(concat!(env!("OUT_DIR"), "/presets.rs"));

/// queuehub's own client events, the targets of event aliases.
pub const NATIVE_EVENTS: [&str; 5] = ["subscribe", "unsubscribe", "getAll", "received", "publish"];

/// What event `name` means on a namespace without a dialect: one of [`NATIVE_EVENTS`].
pub fn native_kind(name: &str) -> Option<EventKind> {
    NATIVE_EVENTS
        .iter()
        .find(|native| **native == name)
        .map(|native| EventKind::Native(native))
}

/// What a socket event's argument is, for lab code that reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeShape {
    /// queuehub's envelope `{id, queue, event, payload, clientId, ...}`.
    #[default]
    Queuehub,
    /// The envelope plus `messageID`/`messageId` and an object payload's own fields.
    Lab,
    /// The payload alone: the lab's own object, exactly as it was published.
    Payload,
}

impl EnvelopeShape {
    pub fn name(self) -> &'static str {
        match self {
            Self::Queuehub => "queuehub",
            Self::Lab => "lab",
            Self::Payload => "payload",
        }
    }
}

/// The `[compat]` table of a preset. Every key is optional; see docs/PRESETS.md.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// Namespaces that speak this dialect, e.g. `["/", "/caps"]`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The argument of every event a socket of this dialect receives.
    #[serde(default)]
    pub envelope: Option<EnvelopeShape>,
    /// The older spelling of `envelope = "lab"`.
    #[serde(default)]
    pub lab_envelopes: bool,
    /// A client names its own mailbox: subscribing as X without naming a queue subscribes to
    /// the queue X, and a `getAll` as X subscribes first if needed.
    #[serde(default)]
    pub queue_per_client: bool,
    /// A subscribe is followed by a catch-up (`getAll`) of the same client, for labs that
    /// never ask.
    #[serde(default)]
    pub catch_up_on_subscribe: bool,
    /// A message counts as received once it was sent to one of the client's sockets, for
    /// labs that never acknowledge.
    #[serde(default)]
    pub auto_ack: bool,
    /// Other event names → queuehub's event names.
    #[serde(default)]
    pub event_aliases: BTreeMap<String, String>,
    /// queuehub field name (`clientId`, `id`) → other names for it.
    #[serde(default)]
    pub field_aliases: BTreeMap<String, Vec<String>>,
    /// Lab events that publish a message.
    #[serde(default)]
    pub app_events: Vec<AppEvent>,
    /// Events passed on live to the other sockets of a queue.
    #[serde(default)]
    pub relays: Vec<Relay>,
    /// Lab events accepted and dropped (answered `ok`).
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// How a socket event is to be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// One of queuehub's own events ([`NATIVE_EVENTS`]).
    Native(&'static str),
    /// The lab event at this index of [`Dialect::app_events`].
    App(usize),
    /// Only relayed: the relay at this index of [`Dialect::relays`].
    Relay(usize),
    /// Accepted and dropped ([`Dialect::ignore`]).
    Ignored,
}

/// A lab event's message, ready to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct AppMessage {
    pub queue: QueueName,
    pub event: EventName,
    pub payload: Value,
    /// The lab's own id, if the rule names one and the data has it.
    pub id: Option<MessageId>,
}

impl Dialect {
    /// The argument shape of this dialect's events.
    pub fn shape(&self) -> EnvelopeShape {
        match (self.envelope, self.lab_envelopes) {
            (Some(shape), _) => shape,
            (None, true) => EnvelopeShape::Lab,
            (None, false) => EnvelopeShape::Queuehub,
        }
    }

    /// Every event name a socket of this dialect handles, with what it means.
    pub fn events(&self) -> Vec<(String, EventKind)> {
        let mut events: Vec<(String, EventKind)> = NATIVE_EVENTS
            .iter()
            .map(|e| (e.to_string(), EventKind::Native(e)))
            .collect();
        for (alias, target) in &self.event_aliases {
            if let Some(native) = NATIVE_EVENTS.iter().find(|e| *e == target) {
                events.push((alias.clone(), EventKind::Native(native)));
            }
        }
        for (index, app) in self.app_events.iter().enumerate() {
            events.push((app.event.to_string(), EventKind::App(index)));
        }
        for ignored in &self.ignore {
            events.push((ignored.clone(), EventKind::Ignored));
        }
        for (index, relay) in self.relays.iter().enumerate() {
            if !events.iter().any(|(name, _)| name == relay.event.as_str()) {
                events.push((relay.event.to_string(), EventKind::Relay(index)));
            }
        }
        events
    }

    /// The relay attached to the event `name`, if any.
    pub fn relay(&self, name: &str) -> Option<&Relay> {
        self.relays.iter().find(|r| r.event.as_str() == name)
    }

    /// What event `name` means to a socket of this dialect, as [`Dialect::events`] lists it
    /// (the last entry with that name), without building the list.
    pub fn event_kind(&self, name: &str) -> Option<EventKind> {
        let ignored = self.ignore.iter().any(|i| i == name);
        let app = self
            .app_events
            .iter()
            .rposition(|app| app.event.as_str() == name);
        let alias = self.event_aliases.get(name).and_then(|t| native_kind(t));
        let listed = if ignored {
            Some(EventKind::Ignored)
        } else {
            app.map(EventKind::App)
                .or(alias)
                .or_else(|| native_kind(name))
        };
        listed.or_else(|| {
            self.relays
                .iter()
                .position(|r| r.event.as_str() == name)
                .map(EventKind::Relay)
        })
    }

    fn aliases(&self, field: &str) -> &[String] {
        self.field_aliases.get(field).map_or(&[], Vec::as_slice)
    }

    /// Copies the first alias of `field` that `object` has into `field`, if it has none. A
    /// number becomes text: labs number their messages (`messageId: 1`).
    fn fill_alias(&self, object: &mut Map<String, Value>, field: &str) {
        if !object.contains_key(field) {
            let found = self
                .aliases(field)
                .iter()
                .find_map(|alias| object.get(alias).filter(|v| !v.is_null()).cloned());
            if let Some(value) = found {
                object.insert(field.to_owned(), value);
            }
        }
        if let Some(Value::Number(n)) = object.get(field) {
            let text = n.to_string();
            object.insert(field.to_owned(), Value::String(text));
        }
    }

    /// Rewrites a lab client's payload for `event` into queuehub's own shape. A bare string
    /// names the client (`socket.emit('join', 'acme-widgets')`).
    pub fn translate(&self, event: &str, data: Value) -> Value {
        let mut object = match data {
            Value::Object(object) => object,
            Value::String(client) if event == "subscribe" || event == "getAll" => {
                let mut object = Map::new();
                object.insert("clientId".into(), Value::String(client));
                object
            }
            other => return other,
        };
        self.fill_alias(&mut object, "clientId");
        match event {
            "subscribe" => {
                let names_queue = object.contains_key("queue") || object.contains_key("queues");
                if self.queue_per_client
                    && !names_queue
                    && let Some(client) = object.get("clientId").cloned()
                {
                    object.insert("queue".into(), client);
                }
            }
            "getAll" => {
                // 2.x-era labs send the event name as `payload`.
                if !object.contains_key("event")
                    && let Some(Value::String(event)) = object.get("payload").cloned()
                {
                    object.insert("event".into(), Value::String(event));
                }
            }
            "received" => self.fill_alias(&mut object, "id"),
            _ => {}
        }
        Value::Object(object)
    }

    /// The message a lab event publishes: the queue, event, payload and id its rule names.
    pub fn app_message(&self, app: &AppEvent, data: Value) -> Result<AppMessage, Error> {
        let queue = app
            .queue
            .render(|field| field_text(&data, field))
            .ok_or_else(|| {
                Error::invalid_field(format!(
                    "'{}' needs one of the fields {:?} to know which queue it goes to",
                    app.event,
                    app.queue.fields()
                ))
            })?;
        let queue = QueueName::parse(queue)?;
        let id = match &app.id {
            Some(template) => template
                .render(|field| field_text(&data, field))
                .map(MessageId::parse)
                .transpose()?,
            None => None,
        };
        let payload = app.payload.apply(&app.event, data)?;
        Ok(AppMessage {
            queue,
            event: app.published_event().clone(),
            payload,
            id,
        })
    }

    /// An envelope as lab code reads it (see [`EnvelopeShape`]); in the lab shape,
    /// queuehub's own envelope fields win a name clash.
    pub fn envelope(&self, envelope: &Envelope) -> Value {
        match self.shape() {
            EnvelopeShape::Queuehub => serde_json::to_value(envelope).unwrap_or_default(),
            EnvelopeShape::Payload => envelope.payload.value(),
            EnvelopeShape::Lab => lab_envelope(envelope),
        }
    }
}

fn lab_envelope(envelope: &Envelope) -> Value {
    let mut value = serde_json::to_value(envelope).unwrap_or_default();
    if let Value::Object(object) = &mut value {
        let id = Value::String(envelope.id.to_string());
        object.insert("messageID".into(), id.clone());
        object.insert("messageId".into(), id);
        if let Value::Object(payload) = envelope.payload.value() {
            for (key, field) in payload {
                object.entry(key.clone()).or_insert_with(|| field.clone());
            }
        }
    }
    value
}

/// The value at a dotted path of `data`: `store`, `payload.store`.
pub fn path_value<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(data, |value, key| value.as_object()?.get(key))
}

/// The value at a dotted path of `data` as text (a string, or a number written out).
pub fn field_text(data: &Value, path: &str) -> Option<String> {
    match path_value(data, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The built-in preset `name` (a file of `presets/`), if there is one.
pub fn builtin_preset(name: &str) -> Option<&'static str> {
    BUILTIN_PRESETS
        .iter()
        .find(|(builtin, _, _)| *builtin == name)
        .map(|(_, _, text)| *text)
}

/// The names of the built-in presets.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_PRESETS.iter().map(|(name, _, _)| *name).collect()
}

#[cfg(test)]
mod tests;
