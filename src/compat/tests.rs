//! The preset language on made-up labs: what each key does, and what validation refuses.
//! (The shipped presets are exercised in tests/it/classroom.rs, and their events in
//! `socket::event`'s tests.)

use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::names::ClientId;

fn dialect(toml: &str) -> Dialect {
    toml::from_str(toml).expect("a dialect")
}

/// The key and problem a dialect is refused with.
fn refusal(toml: &str) -> PresetError {
    dialect(toml).validate().expect_err("refused")
}

#[test]
fn a_template_reads_a_field_inside_the_payload() {
    let app: AppEvent = toml::from_str("event = \"e\"\nqueue = \"{payload.to|to}\"").unwrap();
    let plain = Dialect::default();
    let nested = json!({"clientID": "sender", "payload": {"to": "box-1"}});
    assert_eq!(
        plain.app_message(&app, nested).unwrap().queue.as_str(),
        "box-1"
    );
    let flat = json!({"to": "box-2"});
    assert_eq!(
        plain.app_message(&app, flat).unwrap().queue.as_str(),
        "box-2"
    );
}

#[test]
fn the_sender_field_is_not_read_unless_the_template_names_it() {
    let app: AppEvent = toml::from_str("event = \"e\"\nqueue = \"{payload.to}\"").unwrap();
    let err = Dialect::default()
        .app_message(&app, json!({"clientID": "sender", "to": "x"}))
        .unwrap_err();
    assert_eq!(err.code(), "invalid_field");
}

#[test]
fn publish_as_id_and_payload_shape_the_message() {
    let app: AppEvent = toml::from_str(
        "event = \"note\"\nqueue = \"{to}\"\npublish_as = \"notes\"\nid = \"{n}\"\npayload = \"data\"",
    )
    .unwrap();
    let data = json!({"n": 7, "to": "box", "payload": "kept as is"});
    let message = Dialect::default().app_message(&app, data.clone()).unwrap();
    assert_eq!(message.event.as_str(), "notes");
    assert_eq!(message.id.as_ref().map(MessageId::as_str), Some("7"));
    assert_eq!(
        message.payload, data,
        "payload = \"data\" keeps the whole object"
    );
    let without_id = Dialect::default()
        .app_message(&app, json!({"to": "box"}))
        .unwrap();
    assert_eq!(without_id.id, None, "no lab id: the server makes one");
}

#[test]
fn payload_auto_takes_the_payload_field_and_a_path_takes_that_field() {
    let auto: AppEvent = toml::from_str("event = \"e\"\nqueue = \"q\"").unwrap();
    let data = json!({"clientID": "me", "payload": {"a": 1}});
    let message = Dialect::default().app_message(&auto, data).unwrap();
    assert_eq!(message.payload, json!({"a": 1}));
    let path: AppEvent =
        toml::from_str("event = \"e\"\nqueue = \"q\"\npayload = \"body.inner\"").unwrap();
    let message = Dialect::default()
        .app_message(&path, json!({"body": {"inner": [1, 2]}}))
        .unwrap();
    assert_eq!(message.payload, json!([1, 2]));
    assert!(Dialect::default().app_message(&path, json!({})).is_err());
}

#[test]
fn numeric_lab_ids_and_client_ids_are_read_as_text() {
    let lab = dialect(
        "namespaces = [\"/\"]\n[field_aliases]\nid = [\"messageId\"]\nclientId = [\"user\"]",
    );
    let data = lab.translate(
        "received",
        json!({"messageId": 1, "user": 42, "text": "hi"}),
    );
    assert_eq!(
        (data["id"].clone(), data["clientId"].clone()),
        (json!("1"), json!("42"))
    );
}

#[test]
fn the_payload_envelope_is_the_published_object_itself() {
    let meta = crate::store::MessageMeta {
        seq: 1,
        id: MessageId::parse("1").unwrap(),
        queue: QueueName::parse("box").unwrap(),
        event: EventName::parse("notes").unwrap(),
        published_at_ms: 0,
        source: "http".into(),
        deliver_at_ms: None,
        expires_at_ms: None,
        job: None,
    };
    let object = json!({"n": 1, "text": "hi"});
    let envelope = Envelope::new(
        &meta,
        crate::broker::SharedPayload::of(&object),
        &ClientId::parse("box").unwrap(),
        1,
    );
    let lab = dialect("envelope = \"payload\"");
    assert_eq!(lab.envelope(&envelope), object);
    let native = Dialect::default().envelope(&envelope);
    assert_eq!(native["id"], "1");
    assert_eq!(native["payload"], object);
}

#[test]
fn relays_and_ignored_events_are_handled_events() {
    let lab = dialect(
        "namespaces = [\"/\"]\nignore = [\"noise\"]\n[event_aliases]\nenter = \"subscribe\"\n\
         [[relays]]\nevent = \"enter\"\nto = \"{room}\"\n[[relays]]\nevent = \"wave\"\nto = \"{room}\"",
    );
    lab.validate().unwrap();
    let events: HashMap<String, EventKind> = lab.events().into_iter().collect();
    assert_eq!(
        events["enter"],
        EventKind::Native("subscribe"),
        "an alias keeps its meaning"
    );
    assert_eq!(
        events["wave"],
        EventKind::Relay(1),
        "a relay alone is an event of its own"
    );
    assert_eq!(events["noise"], EventKind::Ignored);
    assert!(lab.relay("enter").is_some());
}

// ---- what validation refuses: one test per refusal ----

#[test]
fn an_event_both_alias_and_app_event_is_refused() {
    let err = refusal(
        "namespaces = [\"/\"]\n[event_aliases]\nenter = \"subscribe\"\n\
         [[app_events]]\nevent = \"enter\"\nqueue = \"q\"",
    );
    assert_eq!(err.key, "compat.app_events[0].event");
    assert!(err.problem.contains("compat.event_aliases.enter"), "{err}");
}

#[test]
fn an_app_event_named_like_a_native_event_is_refused() {
    for native in NATIVE_EVENTS {
        let err = refusal(&format!(
            "namespaces = [\"/\"]\n[[app_events]]\nevent = \"{native}\"\nqueue = \"q\""
        ));
        assert_eq!(err.key, "compat.app_events[0].event");
        assert!(err.problem.contains("queuehub's own event"), "{err}");
    }
}

#[test]
fn an_alias_named_like_a_native_event_is_refused() {
    let err = refusal("namespaces = [\"/\"]\n[event_aliases]\nreceived = \"getAll\"");
    assert_eq!(err.key, "compat.event_aliases.received");
}

#[test]
fn an_ignored_native_event_is_refused() {
    let err = refusal("namespaces = [\"/\"]\nignore = [\"received\"]");
    assert_eq!(err.key, "compat.ignore[0]");
}

#[test]
fn two_app_events_with_one_name_are_refused() {
    let err = refusal(
        "namespaces = [\"/\"]\n[[app_events]]\nevent = \"e\"\nqueue = \"a\"\n\
         [[app_events]]\nevent = \"e\"\nqueue = \"b\"",
    );
    assert_eq!(err.key, "compat.app_events[1].event");
    assert!(err.problem.contains("declared twice"), "{err}");
}

#[test]
fn a_relayed_app_event_and_a_twice_relayed_event_are_refused() {
    let err = refusal(
        "namespaces = [\"/\"]\n[[app_events]]\nevent = \"e\"\nqueue = \"a\"\n\
         [[relays]]\nevent = \"e\"\nto = \"a\"",
    );
    assert_eq!(err.key, "compat.relays[0].event");
    let err = refusal(
        "namespaces = [\"/\"]\n[[relays]]\nevent = \"e\"\nto = \"a\"\n[[relays]]\nevent = \"e\"\nto = \"b\"",
    );
    assert_eq!(err.key, "compat.relays[1].event");
}

#[test]
fn rules_without_a_namespace_are_refused_as_never_firing() {
    let err = refusal("[[app_events]]\nevent = \"e\"\nqueue = \"q\"");
    assert_eq!(err.key, "compat.namespaces");
    assert!(
        err.problem.contains("compat.app_events[0] can never fire"),
        "{err}"
    );
    let err = refusal("[event_aliases]\nenter = \"subscribe\"");
    assert!(err.problem.contains("compat.event_aliases.enter"), "{err}");
    // Without rules, an empty list is fine: HTTP routes need no namespace.
    dialect("envelope = \"lab\"").validate().unwrap();
}

#[test]
fn reserved_malformed_and_repeated_namespaces_are_refused() {
    let err = refusal("namespaces = [\"/\", \"/dashboard\"]");
    assert_eq!(err.key, "compat.namespaces[1]");
    assert!(err.problem.contains("reserved"), "{err}");
    assert_eq!(
        refusal("namespaces = [\"caps\"]").key,
        "compat.namespaces[0]"
    );
    assert_eq!(
        refusal("namespaces = [\"/a\", \"/a\"]").key,
        "compat.namespaces[1]"
    );
}

#[test]
fn conflicting_field_aliases_are_refused() {
    let err = refusal("namespaces = [\"/\"]\n[field_aliases]\nclientId = [\"n\"]\nid = [\"n\"]");
    assert_eq!(err.key, "compat.field_aliases.id");
    assert!(err.problem.contains("both"), "{err}");
    let err = refusal("namespaces = [\"/\"]\n[field_aliases]\nqueue = [\"room\"]");
    assert_eq!(err.key, "compat.field_aliases.queue");
    let err = refusal("namespaces = [\"/\"]\n[field_aliases]\nclientId = [\"id\"]");
    assert!(err.problem.contains("own field"), "{err}");
}

#[test]
fn contradicting_envelope_keys_are_refused() {
    let err = refusal("lab_envelopes = true\nenvelope = \"payload\"");
    assert_eq!(err.key, "compat.lab_envelopes");
    assert_eq!(dialect("lab_envelopes = true").shape(), EnvelopeShape::Lab);
}

#[test]
fn aliases_to_unknown_or_reserved_events_are_refused() {
    let err = refusal("namespaces = [\"/\"]\n[event_aliases]\nx = \"nothing\"");
    assert_eq!(err.key, "compat.event_aliases.x");
    for reserved in ["error", "mq:error", "connect", "*"] {
        let err = refusal(&format!(
            "namespaces = [\"/\"]\n[event_aliases]\n\"{reserved}\" = \"getAll\""
        ));
        assert!(err.key.contains(reserved), "{err}");
    }
}

#[test]
fn a_preset_cannot_declare_a_reserved_event() {
    for reserved in ["error", "mq:error", "snapshot", "connect", "*"] {
        let app: Result<Dialect, _> = toml::from_str(&format!(
            "[[app_events]]\nevent = {reserved:?}\nqueue = \"q\"\n"
        ));
        let err = app.expect_err(reserved).to_string();
        assert!(err.contains("invalid_name"), "{reserved}: {err}");
        let route: Result<HttpRoute, _> = toml::from_str(&format!(
            "path = \"/x\"\nqueue = \"q\"\nevent = {reserved:?}\n"
        ));
        assert!(route.is_err(), "{reserved}");
        let relay: Result<Relay, _> =
            toml::from_str(&format!("event = {reserved:?}\nto = \"q\"\n"));
        assert!(relay.is_err(), "{reserved}");
    }
}

#[test]
fn http_routes_fill_the_queue_from_the_path_and_keep_the_body() {
    let route = HttpRoute {
        path: "/drop/{box}/{code}".into(),
        queue: Template::parse("{box}").unwrap(),
        event: EventName::parse("dropped").unwrap(),
    };
    let params = HashMap::from([
        ("box".to_owned(), "b1".to_owned()),
        ("code".to_owned(), "7".to_owned()),
    ]);
    let (queue, payload) = route
        .message(&params, Some(json!({"note": "left at door"})))
        .unwrap();
    assert_eq!(queue.as_str(), "b1");
    assert_eq!(
        payload,
        json!({"box": "b1", "code": "7", "note": "left at door"})
    );
    assert!(route.message(&params, Some(json!([1]))).is_err());
}

#[test]
fn an_event_means_what_the_last_entry_of_the_event_list_says() {
    for name in builtin_names() {
        let text = builtin_preset(name).unwrap();
        let file: toml::Table = toml::from_str(text).unwrap();
        let Some(compat) = file.get("compat") else {
            continue;
        };
        let dialect: Dialect = compat.clone().try_into().unwrap();
        let events = dialect.events();
        for (event, _) in &events {
            let last = events
                .iter()
                .rev()
                .find(|(n, _)| n == event)
                .map(|(_, k)| *k);
            assert_eq!(dialect.event_kind(event), last, "{name}: {event}");
        }
        assert_eq!(dialect.event_kind("no such event"), None);
    }
    assert_eq!(native_kind("getAll"), Some(EventKind::Native("getAll")));
    assert_eq!(native_kind("join"), None);
}
