//! The classroom preset: how a lab's own dialect maps onto queuehub, declared as data.
//!
//! A [`Dialect`] comes from the `[compat]` table of a preset or config file (see
//! `presets/caps.toml`): other names for queuehub's events (`getall`, `recieved`, `join`) and
//! fields (`clientID`, `messageID`…), the lab's own events that publish (`pickup` → queue
//! `driver`), and [`HttpRoute`]s such as `POST /delivery/{store}/{code}`. This module only
//! rewrites JSON: the socket layer asks it to translate what a lab client sent into queuehub's
//! own event payloads, and to dress envelopes the way lab code reads them.

mod template;

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value};

pub use template::Template;

use crate::broker::Envelope;
use crate::error::Error;
use crate::names::{EventName, QueueName};

/// queuehub's own client events, the targets of event aliases.
pub const NATIVE_EVENTS: [&str; 5] = ["subscribe", "unsubscribe", "getAll", "received", "publish"];

/// What event `name` means on a namespace without a dialect: one of [`NATIVE_EVENTS`].
pub fn native_kind(name: &str) -> Option<EventKind> {
    NATIVE_EVENTS
        .iter()
        .find(|native| **native == name)
        .map(|native| EventKind::Native(native))
}

/// The `[compat]` table of a preset.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// Namespaces that speak this dialect, e.g. `["/", "/caps"]`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Envelopes also carry `messageID`/`messageId` and an object payload's fields at the
    /// top level.
    #[serde(default)]
    pub lab_envelopes: bool,
    /// A client names its own mailbox: subscribing as X without naming a queue subscribes to
    /// the queue X, and a `getAll` as X subscribes first if needed.
    #[serde(default)]
    pub queue_per_client: bool,
    /// Other event names → queuehub's event names.
    #[serde(default)]
    pub event_aliases: BTreeMap<String, String>,
    /// queuehub field name (`clientId`, `id`) → other names for it.
    #[serde(default)]
    pub field_aliases: BTreeMap<String, Vec<String>>,
    /// Lab events that publish a message.
    #[serde(default)]
    pub app_events: Vec<AppEvent>,
}

/// A lab event that publishes: its data becomes a message on the queue `queue` names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEvent {
    pub event: EventName,
    pub queue: Template,
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

/// How a socket event is to be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// One of queuehub's own events ([`NATIVE_EVENTS`]).
    Native(&'static str),
    /// The lab event at this index of [`Dialect::app_events`].
    App(usize),
}

impl Dialect {
    /// Checks that aliases point at real events and names are valid. (App events are event
    /// names, checked as they are read: a preset cannot declare a reserved one.)
    pub fn validate(&self) -> Result<(), String> {
        for (alias, target) in &self.event_aliases {
            // A client emits an alias: a reserved name would be socket.io's own event.
            EventName::parse(alias.as_str())
                .map_err(|e| format!("event alias {alias:?}: {}", e.message()))?;
            if !NATIVE_EVENTS.contains(&target.as_str()) {
                return Err(format!(
                    "event alias {alias:?} points at {target:?}, which is not one of {NATIVE_EVENTS:?}"
                ));
            }
        }
        for field in self.field_aliases.keys() {
            if field != "clientId" && field != "id" {
                return Err(format!(
                    "field aliases exist for 'clientId' and 'id', not {field:?}"
                ));
            }
        }
        for namespace in &self.namespaces {
            if !namespace.starts_with('/') {
                return Err(format!("namespace {namespace:?} must start with '/'"));
            }
        }
        Ok(())
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
        events
    }

    /// What event `name` means to a socket of this dialect, as [`Dialect::events`] lists it
    /// (the last entry with that name), without building the list.
    pub fn event_kind(&self, name: &str) -> Option<EventKind> {
        if let Some(index) = self
            .app_events
            .iter()
            .rposition(|app| app.event.as_str() == name)
        {
            return Some(EventKind::App(index));
        }
        let target = self.event_aliases.get(name).map_or(name, String::as_str);
        native_kind(target)
    }

    fn aliases(&self, field: &str) -> &[String] {
        self.field_aliases.get(field).map_or(&[], Vec::as_slice)
    }

    /// Copies the first alias of `field` that `object` has into `field`, if it has none.
    fn fill_alias(&self, object: &mut Map<String, Value>, field: &str) {
        if object.contains_key(field) {
            return;
        }
        let found = self
            .aliases(field)
            .iter()
            .find_map(|alias| object.get(alias).filter(|v| !v.is_null()).cloned());
        if let Some(value) = found {
            object.insert(field.to_owned(), value);
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

    /// The queue and payload of a lab event's message. The payload is the data's `payload`
    /// field if it has one, else the whole data.
    pub fn app_message(&self, app: &AppEvent, data: Value) -> Result<(QueueName, Value), Error> {
        let queue = app
            .queue
            .render(|field| field_text(&data, field))
            .ok_or_else(|| {
                Error::invalid_field(format!(
                    "'{}' needs one of the fields {:?} to know whose queue it goes to",
                    app.event,
                    app.queue.fields()
                ))
            })?;
        let queue = QueueName::parse(queue)?;
        let payload = match data {
            Value::Object(mut object) if object.contains_key("payload") => {
                object.remove("payload").unwrap_or_default()
            }
            other => other,
        };
        Ok((queue, payload))
    }

    /// An envelope as lab code reads it (see [`Dialect::lab_envelopes`]); queuehub's own
    /// envelope fields win a name clash.
    pub fn envelope(&self, envelope: &Envelope) -> Value {
        let mut value = serde_json::to_value(envelope).unwrap_or_default();
        if !self.lab_envelopes {
            return value;
        }
        if let Value::Object(object) = &mut value {
            let id = Value::String(envelope.id.to_string());
            object.insert("messageID".into(), id.clone());
            object.insert("messageId".into(), id);
            if let Value::Object(payload) = envelope.payload.as_ref() {
                for (key, field) in payload {
                    object.entry(key.clone()).or_insert_with(|| field.clone());
                }
            }
        }
        value
    }
}

/// A field of `data` as text: at the top level, else inside `data.payload`.
fn field_text(data: &Value, field: &str) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    data.get(field)
        .and_then(text)
        .or_else(|| data.get("payload")?.get(field).and_then(text))
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

/// The built-in presets, by name.
pub fn builtin_preset(name: &str) -> Option<&'static str> {
    match name {
        "caps" => Some(include_str!("../../presets/caps.toml")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn caps() -> Dialect {
        let file: toml::Table = toml::from_str(builtin_preset("caps").unwrap()).unwrap();
        let dialect: Dialect = file["compat"].clone().try_into().unwrap();
        dialect.validate().unwrap();
        dialect
    }

    #[test]
    fn an_event_means_what_the_last_entry_of_the_event_list_says() {
        let dialect = caps();
        let events = dialect.events();
        for (name, _) in &events {
            let last = events
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, k)| *k);
            assert_eq!(dialect.event_kind(name), last, "{name}");
        }
        assert_eq!(dialect.event_kind("no such event"), None);
        assert_eq!(native_kind("getAll"), Some(EventKind::Native("getAll")));
        assert_eq!(native_kind("join"), None);
    }

    #[test]
    fn two_x_era_subscribe_names_the_clients_own_queue() {
        let data = caps().translate(
            "subscribe",
            json!({"event": "delivered", "clientID": "acme"}),
        );
        assert_eq!(data["clientId"], "acme");
        assert_eq!(data["queue"], "acme");
    }

    #[test]
    fn join_with_a_store_name_or_an_order_names_the_client() {
        let dialect = caps();
        assert_eq!(
            dialect.translate("subscribe", json!("acme"))["queue"],
            "acme"
        );
        let order = json!({"store": "1-800-flowers", "orderId": "o1"});
        assert_eq!(
            dialect.translate("subscribe", order)["clientId"],
            "1-800-flowers"
        );
        assert_eq!(
            dialect.translate("subscribe", json!({"storeName": "s"}))["queue"],
            "s"
        );
    }

    #[test]
    fn getall_reads_the_event_from_payload_and_received_the_id_from_message_id() {
        let dialect = caps();
        let data = dialect.translate(
            "getAll",
            json!({"clientID": "acme", "payload": "delivered"}),
        );
        assert_eq!(
            (data["clientId"].clone(), data["event"].clone()),
            (json!("acme"), json!("delivered"))
        );
        let data = dialect.translate(
            "received",
            json!({"clientID": "acme", "messageID": "m1", "event": "delivered"}),
        );
        assert_eq!(
            (data["clientId"].clone(), data["id"].clone()),
            (json!("acme"), json!("m1"))
        );
    }

    #[test]
    fn native_fields_win_over_aliases() {
        let data = caps().translate(
            "received",
            json!({"clientId": "a", "store": "b", "id": "x", "messageId": "y"}),
        );
        assert_eq!(
            (data["clientId"].clone(), data["id"].clone()),
            (json!("a"), json!("x"))
        );
    }

    #[test]
    fn app_events_route_to_the_driver_or_the_store() {
        let dialect = caps();
        let order = json!({"store": "acme", "orderId": "o1", "customer": "Ada", "address": "x"});
        let pickup = &dialect.app_events[0];
        let (queue, payload) = dialect.app_message(pickup, order.clone()).unwrap();
        assert_eq!((queue.as_str(), payload.clone()), ("driver", order.clone()));
        let delivered = &dialect.app_events[2];
        let (queue, payload) = dialect.app_message(delivered, order.clone()).unwrap();
        assert_eq!((queue.as_str(), payload), ("acme", order.clone()));
        let two_x = json!({"clientID": "acme", "payload": order.clone()});
        let (queue, payload) = dialect.app_message(delivered, two_x).unwrap();
        assert_eq!((queue.as_str(), payload), ("acme", order));
        let err = dialect
            .app_message(delivered, json!({"orderId": 1}))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_field");
    }

    #[test]
    fn lab_envelopes_carry_message_ids_and_the_orders_fields() {
        let meta = crate::store::MessageMeta {
            seq: 1,
            id: crate::names::MessageId::parse("m1").unwrap(),
            queue: QueueName::parse("acme").unwrap(),
            event: EventName::parse("delivered").unwrap(),
            published_at_ms: 0,
            source: "http".into(),
            deliver_at_ms: None,
            expires_at_ms: None,
        };
        let client = crate::names::ClientId::parse("acme").unwrap();
        let payload = Arc::new(json!({"orderId": "o1", "queue": "not this"}));
        let envelope = Envelope::new(&meta, payload, &client, 1);
        let lab = caps().envelope(&envelope);
        assert_eq!(lab["messageID"], "m1");
        assert_eq!(lab["messageId"], "m1");
        assert_eq!(lab["orderId"], "o1");
        assert_eq!(lab["queue"], "acme", "queuehub's own fields win");
        assert_eq!(lab["payload"]["orderId"], "o1");
    }

    #[test]
    fn http_routes_fill_the_queue_from_the_path_and_keep_the_body() {
        let route = HttpRoute {
            path: "/delivery/{store}/{code}".into(),
            queue: Template::parse("{store}").unwrap(),
            event: EventName::parse("delivered").unwrap(),
        };
        let params = HashMap::from([
            ("store".to_owned(), "acme".to_owned()),
            ("code".to_owned(), "7".to_owned()),
        ]);
        let (queue, payload) = route
            .message(&params, Some(json!({"note": "left at door"})))
            .unwrap();
        assert_eq!(queue.as_str(), "acme");
        assert_eq!(
            payload,
            json!({"store": "acme", "code": "7", "note": "left at door"})
        );
        assert!(route.message(&params, Some(json!([1]))).is_err());
    }

    #[test]
    fn a_preset_cannot_declare_a_reserved_event() {
        for reserved in ["error", "mq:error", "snapshot", "connect", "*"] {
            let app_event: Result<Dialect, _> = toml::from_str(&format!(
                "[[app_events]]\nevent = {reserved:?}\nqueue = \"driver\"\n"
            ));
            let err = app_event.expect_err(reserved).to_string();
            assert!(err.contains("invalid_name"), "{reserved}: {err}");
            let route: Result<HttpRoute, _> = toml::from_str(&format!(
                "path = \"/x\"\nqueue = \"driver\"\nevent = {reserved:?}\n"
            ));
            assert!(route.is_err(), "{reserved}");
            let mut dialect = caps();
            dialect
                .event_aliases
                .insert(reserved.to_owned(), "getAll".into());
            let err = dialect.validate().expect_err(reserved);
            assert!(err.contains(reserved), "{err}");
        }
    }

    #[test]
    fn aliases_to_unknown_events_are_refused() {
        let mut dialect = caps();
        dialect.event_aliases.insert("x".into(), "nothing".into());
        assert!(dialect.validate().is_err());
    }
}
