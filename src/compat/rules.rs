//! The rules of a preset, as its TOML declares them: [`AppEvent`] (a lab event that
//! publishes), [`Relay`] (an event passed on live to the other sockets of a queue's room),
//! [`HttpRoute`] (a route of the lab's API server) and [`PayloadRule`].

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Template;
use crate::error::Error;
use crate::names::{EventName, QueueName};

/// A lab event that publishes: its data becomes a message on the queue `queue` names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEvent {
    /// The event the lab emits.
    pub event: EventName,
    /// The queue the message goes to, e.g. `driver` or `{payload.store|store}`.
    pub queue: Template,
    /// The event the message is published (and delivered) under; default: `event`.
    #[serde(default)]
    pub publish_as: Option<EventName>,
    /// The lab's own message id, e.g. `{messageId}`: publishing it again while the message is
    /// stored is one message, and acks may name it. Without a value: a server id.
    #[serde(default)]
    pub id: Option<Template>,
    /// What of the data becomes the message's payload.
    #[serde(default)]
    pub payload: PayloadRule,
    /// The socket that sent the event never receives the message, live or in a catch-up.
    #[serde(default)]
    pub exclude_sender: bool,
}

impl AppEvent {
    /// The event the message is published under.
    pub fn published_event(&self) -> &EventName {
        self.publish_as.as_ref().unwrap_or(&self.event)
    }
}

/// What of a lab event's data becomes the message's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum PayloadRule {
    /// `"auto"`: the data's `payload` field if it has one (the 2.x `{clientID, payload}`
    /// shape), else the whole data.
    #[default]
    Auto,
    /// `"data"`: the whole data, as sent.
    Data,
    /// Any other text: the field at that path, e.g. `payload.order`.
    Field(String),
}

impl From<String> for PayloadRule {
    fn from(raw: String) -> Self {
        match raw.as_str() {
            "auto" => Self::Auto,
            "data" => Self::Data,
            _ => Self::Field(raw),
        }
    }
}

impl PayloadRule {
    /// The payload of `data` under this rule.
    pub fn apply(&self, event: &EventName, data: Value) -> Result<Value, Error> {
        match self {
            Self::Data => Ok(data),
            Self::Auto => Ok(match data {
                Value::Object(mut object) if object.contains_key("payload") => {
                    object.remove("payload").unwrap_or_default()
                }
                other => other,
            }),
            Self::Field(path) => super::path_value(&data, path).cloned().ok_or_else(|| {
                Error::invalid_field(format!("'{event}' needs the field '{path}' (its payload)"))
            }),
        }
    }
}

/// An event passed on live, as received, to the other sockets subscribed to the queue `to`
/// names. Nothing is stored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    pub event: EventName,
    /// The queue whose sockets get the event, e.g. `{storeName}`.
    pub to: Template,
    /// The sending socket gets it too (if it is subscribed to that queue).
    #[serde(default)]
    pub include_sender: bool,
}

/// An HTTP route of the lab's API server that publishes a message.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    /// An axum path, e.g. `/delivery/{store}/{code}`.
    pub path: String,
    pub queue: Template,
    pub event: EventName,
}

impl HttpRoute {
    /// The queue and payload of a request to this route: the JSON body (an object; empty
    /// means `{}`) with the path parameters added where the body does not have them.
    pub fn message(
        &self,
        params: &HashMap<String, String>,
        body: Option<Value>,
    ) -> Result<(QueueName, Value), Error> {
        let queue = self
            .queue
            .render(|field| params.get(field).cloned())
            .ok_or_else(|| {
                Error::invalid_field(format!(
                    "route {} has no value for {:?}",
                    self.path,
                    self.queue.fields()
                ))
            })?;
        let queue = QueueName::parse(queue)?;
        let mut payload = match body {
            None => Map::new(),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(Error::invalid_field(format!(
                    "the body of {} must be a JSON object",
                    self.path
                )));
            }
        };
        for (key, value) in params {
            payload
                .entry(key.clone())
                .or_insert_with(|| Value::String(value.clone()));
        }
        Ok((queue, Value::Object(payload)))
    }
}
