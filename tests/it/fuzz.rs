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

/// The longest name, in characters (docs/API.md, Names).
const MAX_CHARS: usize = 128;

/// The event names docs/API.md lists as reserved.
const RESERVED: [&str; 20] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "error",
    "connect_timeout",
    "connecting",
    "reconnect",
    "reconnect_attempt",
    "reconnect_error",
    "reconnect_failed",
    "reconnecting",
    "ping",
    "pong",
    "mq:error",
    "snapshot",
    "snapshot:delta",
    "activity",
];

/// The rules every kind of name keeps (docs/API.md, Names): 1 to 128 characters, no control
/// characters, no `/`, not only whitespace, not the bare wildcard `*`.
fn is_valid_name(raw: &str) -> bool {
    (1..=MAX_CHARS).contains(&raw.chars().count())
        && !raw.chars().any(char::is_control)
        && !raw.contains('/')
        && !raw.trim().is_empty()
        && raw != "*"
}

/// Text for names: anything, printable ASCII around the length limit, whitespace alone, and
/// the names some kind refuses.
fn name_text() -> impl Strategy<Value = String> {
    let mut special: Vec<String> = RESERVED.iter().map(|s| (*s).to_owned()).collect();
    special.extend(["*", "**", "a*", "message", "a/b", "/", "", " "].map(str::to_owned));
    special.extend(["q".repeat(MAX_CHARS), "q".repeat(MAX_CHARS + 1)]);
    prop_oneof![
        ".{0,260}",
        "[ -~]{120,136}",
        "[ -~]{0,8}",
        "[ \\t\\u{a0}\\u{2003}\\u{3000}]{0,4}",
        prop::sample::select(special),
    ]
}

proptest! {
    /// Each kind of name against its own rules (docs/API.md, Names): a name that parses is
    /// the text given and keeps every rule; text that keeps every rule parses.
    #[test]
    fn names_either_parse_into_valid_names_or_are_refused(raw in name_text()) {
        let queue = QueueName::parse(raw.clone()).map(|n| n.as_str().to_owned());
        let client = ClientId::parse(raw.clone()).map(|n| n.as_str().to_owned());
        let event = EventName::parse(raw.clone()).map(|n| n.as_str().to_owned());
        let kinds = [
            ("queue", queue, false),
            ("clientId", client, false),
            ("event", event, true),
        ];
        for (kind, parsed, reserved_refused) in kinds {
            let valid = is_valid_name(&raw) && !(reserved_refused && RESERVED.contains(&raw.as_str()));
            match parsed {
                Ok(name) => {
                    prop_assert_eq!(&name, &raw, "a {} is the text given", kind);
                    let chars = name.chars().count();
                    prop_assert!((1..=MAX_CHARS).contains(&chars), "{kind} {name:?}: {chars} chars");
                    prop_assert!(!name.contains('/'), "{kind} {name:?}");
                    prop_assert!(!name.chars().any(char::is_control), "{kind} {name:?}");
                    prop_assert!(!name.trim().is_empty(), "{kind} {name:?}");
                    prop_assert!(name != "*", "{kind} {name:?}: the wildcard");
                    if reserved_refused {
                        prop_assert!(!RESERVED.contains(&name.as_str()), "{kind} {name:?} is reserved");
                    }
                }
                Err(err) => {
                    prop_assert_eq!(err.code(), "invalid_name", "{} {:?}", kind, raw);
                    prop_assert!(!valid, "{kind} {raw:?} keeps every rule but was refused: {err}");
                }
            }
        }
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
        prop_assert!(tokens.verify(&raw).is_err());
    }

    #[test]
    fn preset_files_never_panic(raw in ".{0,200}") {
        let _ = toml::from_str::<Dialect>(&raw);
    }

    /// Random but well-formed `[compat]` tables (keys of the preset language, values of the
    /// right and of wrong shapes), so that the dialect's parser and its validation are reached,
    /// not just the TOML reader; a dialect that validates then translates random events.
    #[test]
    fn random_dialects_parse_validate_and_translate_without_panic(
        table in dialect_table(),
        data in any_json(),
    ) {
        let text = toml::to_string(&table).unwrap();
        let Ok(dialect) = toml::from_str::<Dialect>(&text) else {
            return Ok(());
        };
        if dialect.validate().is_err() {
            return Ok(());
        }
        for (event, _) in dialect.events() {
            let _ = dialect.relay(&event);
        }
        for event in ["subscribe", "getAll", "received", "publish", "unsubscribe"] {
            let _ = dialect.translate(event, data.clone());
        }
        for app in &dialect.app_events {
            let _ = dialect.app_message(app, data.clone());
        }
    }
}

/// A word a preset might use: events, fields, templates, namespaces, and some nonsense.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "join",
            "pickup",
            "delivered",
            "in-transit",
            "message",
            "messages",
            "getAll",
            "received",
            "subscribe",
            "publish",
            "clientId",
            "clientID",
            "store",
            "storeName",
            "messageId",
            "payload.store",
            "{store}",
            "{payload.store|store}",
            "{clientId}",
            "{messageId}",
            "/",
            "/caps",
            "/messages",
            "/dashboard",
            "caps",
            "",
            "*",
            "data",
            "auto",
            "lab",
            "queuehub",
            "driver",
        ])
        .prop_map(str::to_owned),
        "[a-z{}|./-]{0,12}",
    ]
}

/// One of `words` mostly, any [`word`] now and then.
fn one_of(words: &[&'static str]) -> BoxedStrategy<toml::Value> {
    prop_oneof![
        30 => prop::sample::select(words.to_vec()).prop_map(str::to_owned),
        1 => word(),
    ]
    .prop_map(toml::Value::String)
    .boxed()
}

const EVENTS: &[&str] = &[
    "join",
    "pickup",
    "delivered",
    "in-transit",
    "message",
    "messages",
    "get-messages",
    "getall",
    "recieved",
    "received",
    "subscribe",
    "getAll",
];
const TEMPLATES: &[&str] = &[
    "{store}",
    "{payload.store|store}",
    "{clientId}",
    "{messageId}",
    "driver",
    "{storeName}",
    "{order.store}",
];
const NAMESPACES: &[&str] = &["/", "/caps", "/messages", "/lab", "/lab2"];
const FIELDS: &[&str] = &[
    "clientID",
    "store",
    "storeName",
    "messageId",
    "messageID",
    "queueId",
];

/// A TOML value of a shape the preset language uses, or a wrong one.
fn preset_value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        word().prop_map(toml::Value::String),
        any::<bool>().prop_map(toml::Value::Boolean),
        prop::collection::vec(word().prop_map(toml::Value::String), 0..3)
            .prop_map(toml::Value::Array),
        (-2i64..5).prop_map(toml::Value::Integer),
    ]
}

/// A table of `keys`: each present or not (`true`: always), with a value of the right shape
/// or, now and then, a wrong one.
fn table_of(
    keys: Vec<(&'static str, bool, BoxedStrategy<toml::Value>)>,
) -> BoxedStrategy<toml::Value> {
    let fields: Vec<_> = keys
        .into_iter()
        .map(|(key, always, right)| {
            let absent = if always { 0 } else { 20 };
            prop_oneof![
                40 => right.prop_map(Some),
                absent => Just(None),
                1 => preset_value().prop_map(Some),
            ]
            .prop_map(move |value| value.map(|v| (key.to_owned(), v)))
        })
        .collect();
    fields
        .prop_map(|fields| toml::Value::Table(fields.into_iter().flatten().collect()))
        .boxed()
}

fn list(item: BoxedStrategy<toml::Value>) -> BoxedStrategy<toml::Value> {
    list_of(0, item)
}

fn list_of(least: usize, item: BoxedStrategy<toml::Value>) -> BoxedStrategy<toml::Value> {
    prop::collection::vec(item, least..3)
        .prop_map(toml::Value::Array)
        .boxed()
}

fn flag() -> BoxedStrategy<toml::Value> {
    any::<bool>().prop_map(toml::Value::Boolean).boxed()
}

fn map_of(
    key: &'static [&'static str],
    value: BoxedStrategy<toml::Value>,
) -> BoxedStrategy<toml::Value> {
    prop::collection::btree_map(prop::sample::select(key.to_vec()), value, 0..3)
        .prop_map(|map| {
            toml::Value::Table(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .boxed()
}

fn dialect_table() -> impl Strategy<Value = toml::Table> {
    let app_event = table_of(vec![
        ("event", true, one_of(EVENTS)),
        ("queue", true, one_of(TEMPLATES)),
        ("publish_as", false, one_of(EVENTS)),
        ("id", false, one_of(TEMPLATES)),
        (
            "payload",
            false,
            one_of(&["auto", "data", "payload", "order"]),
        ),
        ("exclude_sender", false, flag()),
    ]);
    let relay = table_of(vec![
        ("event", true, one_of(EVENTS)),
        ("to", true, one_of(TEMPLATES)),
        ("include_sender", false, flag()),
    ]);
    table_of(vec![
        ("namespaces", true, list_of(1, one_of(NAMESPACES))),
        ("envelope", false, one_of(&["queuehub", "lab", "payload"])),
        ("lab_envelopes", false, flag()),
        ("queue_per_client", false, flag()),
        ("catch_up_on_subscribe", false, flag()),
        ("auto_ack", false, flag()),
        ("ignore", false, list(one_of(EVENTS))),
        (
            "event_aliases",
            false,
            map_of(
                EVENTS,
                one_of(&["getAll", "received", "subscribe", "unsubscribe", "publish"]),
            ),
        ),
        (
            "field_aliases",
            false,
            map_of(&["clientId", "id", "queue"], list(one_of(FIELDS))),
        ),
        ("app_events", false, list(app_event)),
        ("relays", false, list(relay)),
    ])
    .prop_map(|table| match table {
        toml::Value::Table(table) => table,
        _ => toml::Table::new(),
    })
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
        // 540 events are far below the default rate limit (10 000 a second, and as a burst):
        // nothing may have been refused for speed, and the server still answers.
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let receipt = app.publish(&queue, "e", json!("still working")).await;
    let got = watcher.take("e", 1).await;
    assert_eq!(got[0]["id"], receipt["id"]);
    app.stop().await;
}
