//! docs/asyncapi.json, the AsyncAPI description of the socket.io events, held against the
//! code: the events clients may emit ([`NATIVE_EVENTS`]), the events the server emits
//! (`mq:error` and the dashboard's), and the error codes ([`Code`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::dashboard::{ACTIVITY_EVENT, DELTA_EVENT, SNAPSHOT_EVENT};
use super::reply::ERROR_EVENT;
use crate::compat::NATIVE_EVENTS;
use crate::error::Code;

fn document() -> Value {
    serde_json::from_str(include_str!("../../docs/asyncapi.json")).expect("docs/asyncapi.json")
}

/// The value a local `$ref` (`#/a/b`) points at.
fn resolve<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows `value`'s `$ref`, if it has one.
fn follow<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(reference) => resolve(doc, reference).expect("reference resolves"),
        None => value,
    }
}

/// The event names of the operations with `action` (`receive`: clients emit them; `send`:
/// the server does), and whether each has a reply (an ack).
fn events(doc: &Value, action: &str) -> Vec<(String, bool)> {
    let operations = doc["operations"].as_object().expect("operations");
    let mut found = Vec::new();
    for operation in operations.values().filter(|o| o["action"] == action) {
        for message in operation["messages"].as_array().expect("messages") {
            let message = follow(doc, follow(doc, message));
            let name = message["name"].as_str().expect("a message name");
            found.push((name.to_owned(), operation["reply"].is_object()));
        }
    }
    found
}

#[test]
fn the_events_clients_emit_are_the_native_events_each_with_an_ack() {
    let doc = document();
    let described = events(&doc, "receive");
    let names: BTreeSet<&str> = described.iter().map(|(n, _)| n.as_str()).collect();
    let native: BTreeSet<&str> = NATIVE_EVENTS.into_iter().collect();
    assert_eq!(names, native, "docs/asyncapi.json against NATIVE_EVENTS");
    for (name, acked) in &described {
        assert!(acked, "{name} has no reply (ack) in docs/asyncapi.json");
    }
}

#[test]
fn the_events_the_server_emits_are_described() {
    let doc = document();
    let described: BTreeSet<String> = events(&doc, "send").into_iter().map(|(n, _)| n).collect();
    let emitted = [ERROR_EVENT, SNAPSHOT_EVENT, DELTA_EVENT, ACTIVITY_EVENT];
    let mut expected: BTreeSet<String> = emitted.iter().map(|e| e.to_string()).collect();
    // Deliveries are named after each message's event.
    expected.insert("{event}".into());
    assert_eq!(described, expected);
}

#[test]
fn the_error_codes_are_the_codes_of_the_enum() {
    let doc = document();
    let described: Vec<&str> = doc["components"]["schemas"]["Code"]["enum"]
        .as_array()
        .expect("Code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(described, codes);
}

#[test]
fn every_reference_resolves() {
    fn check(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    assert!(resolve(doc, reference).is_some(), "{reference}");
                }
                map.values().for_each(|v| check(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| check(doc, v)),
            _ => {}
        }
    }
    let doc = document();
    assert!(
        doc["asyncapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    check(&doc, &doc);
}
