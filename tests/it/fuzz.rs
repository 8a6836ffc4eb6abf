//! Property-based fuzzing of every parser of client input: names, publish bodies, lab event
//! payloads and route templates, socket tokens, preset files, and random JSON sent to every
//! socket event of a live server. Each property runs a bounded number of cases (proptest's
//! default, 256) with a fixed seed per run; a case that ever fails becomes a test of its own.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use queuehub::auth::Tokens;
use queuehub::broker::message::PublishRequest;
use queuehub::compat::{Dialect, Template, builtin_preset};
use queuehub::names::{ClientId, EventName, QueueName};
use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, spawn_app_with_args, unique};

/// Any JSON value, nested a few levels, with keys the parsers look for mixed in.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("clientId".to_owned()),
        Just("clientID".to_owned()),
        Just("queue".to_owned()),
        Just("queues".to_owned()),
        Just("event".to_owned()),
        Just("payload".to_owned()),
        Just("id".to_owned()),
        Just("ids".to_owned()),
        Just("messageID".to_owned()),
        Just("store".to_owned()),
        Just("delayMs".to_owned()),
        Just("deliverAt".to_owned()),
        Just("ttlMs".to_owned()),
        Just("mode".to_owned()),
        Just("prefetch".to_owned()),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        "[a-z0-9-]{1,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn names_either_parse_into_valid_names_or_are_refused(raw in ".{0,200}") {
        if let Ok(name) = QueueName::parse(raw.clone()) {
            let chars = name.as_str().chars().count();
            prop_assert!((1..=128).contains(&chars));
            prop_assert!(!name.as_str().contains('/'));
            prop_assert!(!name.as_str().chars().any(char::is_control));
            prop_assert!(!name.as_str().trim().is_empty());
        }
        let _ = ClientId::parse(raw.clone());
        let _ = EventName::parse(raw);
    }

    #[test]
    fn publish_bodies_never_panic(body in any_json()) {
        if let Ok(request) = serde_json::from_value::<PublishRequest>(body) {
            let _ = request.into_message(None, "fuzz".into());
        }
    }

    #[test]
    fn lab_payloads_never_panic(data in any_json()) {
        let dialect = caps();
        for event in ["subscribe", "getAll", "received", "publish", "unsubscribe"] {
            let _ = dialect.translate(event, data.clone());
        }
        for app in &dialect.app_events {
            let _ = dialect.app_message(app, data.clone());
        }
    }

    #[test]
    fn templates_and_tokens_never_panic(raw in ".{0,80}") {
        let _ = Template::parse(&raw);
        let tokens = Tokens::new("fuzzing secret, long enough").unwrap();
        prop_assert!(tokens.verify(&raw, 0).is_err());
    }

    #[test]
    fn preset_files_never_panic(raw in ".{0,200}") {
        let _ = toml::from_str::<Dialect>(&raw);
    }
}

fn caps() -> Dialect {
    let file: toml::Table = toml::from_str(builtin_preset("caps").unwrap()).unwrap();
    file["compat"].clone().try_into().unwrap()
}

#[tokio::test]
async fn random_json_on_every_socket_event_never_hurts_the_server() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    let mut runner = TestRunner::deterministic();
    let strategy = any_json();
    let (queue, client) = (unique("q"), unique("c"));
    let mut watcher = SocketClient::connect(&app.url).await;
    watcher.subscribe(&client, &queue).await;
    for namespace in ["/", "/caps"] {
        let fuzzer = SocketClient::connect_to(&app.url, namespace, None).await;
        for _ in 0..60 {
            let value = strategy.new_tree(&mut runner).unwrap().current();
            for event in [
                "subscribe",
                "unsubscribe",
                "getAll",
                "getall",
                "received",
                "publish",
                "join",
                "pickup",
                "delivered",
            ] {
                fuzzer.emit(event, value.clone()).await;
            }
        }
        // Still served after the flood.
        let ack = fuzzer
            .call("publish", json!({"queue": unique("after"), "event": "e"}))
            .await;
        assert!(
            ack["ok"] == true || ack["error"]["code"] == "rate_limited",
            "{ack}"
        );
    }
    let receipt = app.publish(&queue, "e", json!("still working")).await;
    let got = watcher.take("e", 1).await;
    assert_eq!(got[0]["id"], receipt["id"]);
    app.stop().await;
}
