//! Bad input of every kind gets a clear error with a stable code, changes nothing, and never
//! stops the server from serving everyone else.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Http, SocketClient, TestApp, error_code as code, raw_post, spawn_app, unique,
};

#[tokio::test]
async fn bad_http_publishes_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let queue = unique("q");
    let path = format!("/v1/queues/{queue}/messages");
    let long = "x".repeat(201);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            "{not json".into(),
            400,
            "malformed_json",
        ),
        (
            "text/plain",
            r#"{"event":"e"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            r#"{"payload":1}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":42}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"connect"}"#.into(),
            422,
            "invalid_name",
        ),
        (
            "application/json",
            format!(r#"{{"event":"{long}"}}"#),
            422,
            "invalid_name",
        ),
        (
            "application/json",
            r#"{"event":"a/b"}"#.into(),
            422,
            "invalid_name",
        ),
        (
            "application/json",
            r#"{"event":"e","id":7}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","id":""}"#.into(),
            422,
            "invalid_name",
        ),
        (
            "application/json",
            r#"{"event":"e","queue":"other"}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","delayMs":-5}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","delayMs":"soon"}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","deliverAt":"tomorrow"}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","delayMs":10,"deliverAt":1}"#.into(),
            422,
            "invalid_field",
        ),
        (
            "application/json",
            r#"{"event":"e","ttlMs":0}"#.into(),
            422,
            "invalid_field",
        ),
        ("application/json", "[]".into(), 422, "invalid_field"),
    ];
    for (content_type, body, status, expected) in cases {
        let (got, answer) = raw_post(&app, &path, content_type, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(code(&answer), expected, "{body}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "no bad publish created the queue");
    app.stop().await;
}

#[tokio::test]
async fn oversized_names_in_the_path_are_refused() {
    let app = spawn_app().await;
    let long = "q".repeat(200);
    let (status, body) = app
        .post(
            &format!("/v1/queues/{long}/messages"),
            json!({"event": "e"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(code(&body), "invalid_name");
    app.stop().await;
}

#[tokio::test]
async fn a_payload_over_the_limit_is_413_and_a_huge_body_too() {
    let app = spawn_app_small_limits().await;
    let queue = unique("q");
    let big = "x".repeat(2_000);
    let (status, body) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": big}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "payload_too_large");
    let huge = format!(r#"{{"event":"e","payload":"{}"}}"#, "y".repeat(100_000));
    let (status, body) = raw_post(
        &app,
        &format!("/v1/queues/{queue}/messages"),
        "application/json",
        huge,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "body_too_large");
    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn spawn_app_small_limits() -> TestApp {
    crate::helpers::spawn_app_with(|config| {
        config.broker.max_payload_bytes = 1_000;
        config.max_body_bytes = 50_000;
    })
    .await
}

#[tokio::test]
async fn unknown_routes_queues_and_clients_are_404() {
    let app = spawn_app().await;
    let (status, body) = app.get("/v1/nothing").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app.get(&format!("/v1/queues/{}", unique("none"))).await;
    assert_eq!((status, code(&body)), (404, "unknown_queue"));
    let queue = unique("q");
    app.publish(&queue, "e", json!(1)).await;
    let (status, body) = app
        .get(&format!("/v1/queues/{queue}/clients/ghost/messages"))
        .await;
    assert_eq!((status, code(&body)), (404, "not_subscribed"));
    let (status, body) = app
        .post(
            &format!("/v1/queues/{queue}/clients/ghost/acks"),
            json!({"ids": ["x"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_subscribed"));
    let (status, body) = app
        .get(&format!(
            "/v1/queues/{queue}/clients/ghost/messages?limit=abc"
        ))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_field"));
    app.stop().await;
}

#[tokio::test]
async fn bad_socket_events_are_answered_in_the_ack_and_change_nothing() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    let cases = [
        ("subscribe", json!({"queue": queue}), "invalid_field"),
        ("subscribe", json!({"clientId": client}), "invalid_field"),
        (
            "subscribe",
            json!({"clientId": 5, "queue": queue}),
            "invalid_field",
        ),
        (
            "subscribe",
            json!({"clientId": "a/b", "queue": queue}),
            "invalid_name",
        ),
        (
            "subscribe",
            json!({"clientId": client, "queue": queue, "ordered": true, "mode": "work"}),
            "invalid_field",
        ),
        (
            "subscribe",
            json!({"clientId": client, "queue": queue, "mode": "nonsense"}),
            "invalid_field",
        ),
        ("subscribe", json!("not an object"), "invalid_field"),
        ("getAll", json!({"clientId": client}), "not_subscribed"),
        (
            "received",
            json!({"clientId": client, "id": "x"}),
            "not_subscribed",
        ),
        ("received", json!({"clientId": client}), "invalid_field"),
        (
            "unsubscribe",
            json!({"clientId": client, "queue": queue}),
            "not_subscribed",
        ),
        (
            "publish",
            json!({"queue": queue, "event": "disconnect"}),
            "invalid_name",
        ),
        ("publish", json!({"queue": queue}), "invalid_field"),
        ("no-such-event", json!({}), "unknown_event"),
    ];
    for (event, data, expected) in cases {
        let ack = socket.call(event, data.clone()).await;
        assert_eq!(ack["ok"], false, "{event} {data}: {ack}");
        assert_eq!(ack["error"]["code"], expected, "{event} {data}: {ack}");
    }
    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "no bad event created anything");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_event_without_a_callback_gets_mq_error() {
    let app = spawn_app().await;
    let mut socket = SocketClient::connect(&app.url).await;
    socket
        .emit("getAll", json!({"clientId": "never-subscribed"}))
        .await;
    let received = socket.next().await;
    assert_eq!(received.event, "mq:error");
    assert_eq!(received.data["code"], "not_subscribed");
    assert_eq!(received.data["event"], "getAll");
    app.stop().await;
}

#[tokio::test]
async fn hostile_input_on_one_socket_does_not_disturb_another() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut good = SocketClient::connect(&app.url).await;
    good.subscribe(&client, &queue).await;
    let bad = SocketClient::connect(&app.url).await;
    for data in [
        json!(null),
        json!(12),
        json!([1, 2]),
        json!({"clientId": {"x": 1}}),
        json!("x".repeat(10_000)),
    ] {
        for event in ["subscribe", "getAll", "received", "publish", "unsubscribe"] {
            bad.emit(event, data.clone()).await;
        }
    }
    // The good socket sees exactly the two messages, in order, and nothing else: no error
    // event of the bad socket's, nothing twice (`take` fails on any other event).
    let receipt = app.publish(&queue, "e", json!("still here")).await;
    let got = good.take("e", 1).await;
    assert_eq!(got[0]["id"], receipt["id"]);
    assert_eq!(got[0]["payload"], "still here");
    let ack = bad
        .call(
            "publish",
            json!({"queue": queue, "event": "e", "payload": 2}),
        )
        .await;
    assert_eq!(
        ack["ok"], true,
        "the bad socket is still connected and served: {ack}"
    );
    let got = good.take("e", 1).await;
    assert_eq!(got[0]["payload"], 2, "{got:?}");
    assert_eq!(got[0]["id"], ack["id"], "{got:?}");
    let more = good.drain(Duration::from_millis(300)).await;
    assert!(
        more.is_empty(),
        "nothing else reaches the good socket: {more:?}"
    );
    assert_eq!(app.pending(&queue, &client).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_socket_over_its_event_rate_is_refused_but_stays_connected() {
    let app = crate::helpers::spawn_app_with(|c| c.max_events_per_sec = 5).await;
    let mut flooder = SocketClient::connect(&app.url).await;
    let queue = unique("q");
    for n in 0..20 {
        flooder
            .emit(
                "publish",
                json!({"queue": queue, "event": "e", "payload": n}),
            )
            .await;
    }
    let answers = flooder.drain(Duration::from_millis(500)).await;
    let limited = answers
        .iter()
        .filter(|r| r.event == "mq:error" && r.data["code"] == "rate_limited")
        .count();
    assert!(limited >= 10, "most of the flood is refused: {answers:?}");
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert!(stats["published"].as_u64().unwrap() <= 10, "{stats}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ack = flooder
        .call(
            "publish",
            json!({"queue": queue, "event": "e", "payload": "later"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "still connected and served: {ack}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_catch_ups_are_never_refused_for_their_rate() {
    // A limit of 5 events/s, and a consumer that catches up on 2 000 messages and acks each
    // the moment it arrives, asking for an answer every time: its acks and getAlls are the
    // consumer doing its job, so none is refused (while its publishes still are).
    const MESSAGES: usize = 2_000;
    let app = crate::helpers::spawn_app_with(|c| c.max_events_per_sec = 5).await;
    let (queue, client) = (unique("backlog"), unique("consumer"));
    let mut consumer = SocketClient::connect(&app.url).await;
    consumer.subscribe(&client, &queue).await;
    let batch: Vec<_> = (0..MESSAGES)
        .map(|n| json!({"queue": queue, "event": "item", "payload": n}))
        .collect();
    for chunk in batch.chunks(1000) {
        assert_eq!(app.post("/v1/messages", json!(chunk)).await.0, 201);
    }
    consumer.take("item", MESSAGES).await; // the live pushes
    for _ in 0..3 {
        consumer.emit("getAll", json!({"clientId": client})).await;
    }
    let mut acked = 0;
    let mut answers = Vec::new();
    while acked < MESSAGES {
        let received = consumer.next().await;
        if received.event != "item" {
            answers.push(received);
            continue;
        }
        let id = received.data["id"].clone();
        if received.data["attempt"] == 2 {
            // The first catch-up: ack each message once, the moment it arrives.
            consumer
                .emit("received", json!({"clientId": client, "id": id}))
                .await;
            acked += 1;
        }
    }
    let last = consumer
        .call("received", json!({"clientId": client, "ids": []}))
        .await;
    assert_eq!(last["ok"], true, "{last}");
    answers.extend(consumer.drain(Duration::from_millis(300)).await);
    let refused: Vec<_> = answers.iter().filter(|r| r.event == "mq:error").collect();
    assert!(refused.is_empty(), "nothing refused: {:?}", refused.first());
    assert_eq!(app.pending(&queue, &client).await, 0, "every ack applied");
    getalls_back_to_back_are_all_answered(&app).await;
    // The limit still holds for what creates work.
    for n in 0..20 {
        consumer
            .emit(
                "publish",
                json!({"queue": queue, "event": "e", "payload": n}),
            )
            .await;
    }
    let flood = consumer.drain(Duration::from_millis(500)).await;
    assert!(
        flood
            .iter()
            .any(|r| r.event == "mq:error" && r.data["code"] == "rate_limited"),
        "publishes over the rate are refused: {flood:?}"
    );
    app.stop().await;
}

/// On a fresh socket (a full bucket of 5 tokens, one taken by its subscribe), more `getAll`s
/// back to back than the limit would let through in the seconds they take to send: each is
/// served (it sends its one message), and none is refused. They are sent without ack
/// callbacks (a refusal then arrives as `mq:error`): rust_socketio draws ack ids at random
/// from 0..999, so dozens of acks outstanding at once would collide.
async fn getalls_back_to_back_are_all_answered(app: &TestApp) {
    const GET_ALLS: usize = 30;
    let (queue, client) = (unique("catch-up"), unique("catcher"));
    let first = app.publish(&queue, "probe", json!(1)).await;
    app.publish(&queue, "probe", json!(2)).await;
    let mut catcher = SocketClient::connect(&app.url).await;
    let ack = catcher.subscribe(&client, &queue).await;
    assert_eq!(ack["pending"], 2, "{ack}");
    for _ in 0..GET_ALLS {
        catcher
            .emit("getAll", json!({"clientId": client, "limit": 1}))
            .await;
    }
    // `take` fails on any other event, such as an `mq:error` refusing one of them.
    let sent = catcher.take("probe", GET_ALLS).await;
    assert!(
        sent.iter().all(|m| m["id"] == first["id"]),
        "each getAll sends the oldest message only: {sent:?}"
    );
    let ack = catcher
        .call("getAll", json!({"clientId": client, "limit": 1}))
        .await;
    assert_eq!(ack, json!({"ok": true, "count": 1}), "still served");
    assert_eq!(catcher.take("probe", 1).await[0]["id"], first["id"]);
    let more = catcher.drain(Duration::from_millis(300)).await;
    assert!(more.is_empty(), "no mq:error, nothing more: {more:?}");
    catcher.disconnect().await;
}
