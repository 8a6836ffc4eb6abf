//! Input that is well-formed but must still be refused: reserved event names (a publisher
//! could otherwise push fake socket.io or queuehub events to subscribers), the wildcard `*`
//! as a name, and JSON objects that repeat a key (read one way by a proxy, another way by
//! queuehub). Each is refused with its stable code and publishes nothing.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Http, JSON, SocketClient, TestApp, error_code as code, raw_post, spawn_app, unique,
};

/// A socket subscribed as `client` to `queue`, so that the queue exists and anything
/// published to it would show as pending (and be pushed to this socket).
async fn subscriber(app: &TestApp, client: &str, queue: &str) -> SocketClient {
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(client, queue).await;
    socket
}

#[tokio::test]
async fn reserved_event_names_are_refused_over_http_and_sockets() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut listener = subscriber(&app, &client, &queue).await;
    let publisher = SocketClient::connect(&app.url).await;
    for event in [
        "error",
        "mq:error",
        "snapshot",
        "snapshot:delta",
        "activity",
        "connect_timeout",
        "reconnect",
        "ping",
        "pong",
    ] {
        let (status, body) = app
            .post(
                &format!("/v1/queues/{queue}/messages"),
                json!({"event": event, "payload": {"code": "fake"}}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "invalid_name"),
            "{event}: {body}"
        );
        let ack = publisher
            .call(
                "publish",
                json!({"queue": queue, "event": event, "payload": {"code": "fake"}}),
            )
            .await;
        assert_eq!(ack["error"]["code"], "invalid_name", "{event}: {ack}");
    }
    assert_eq!(
        app.pending(&queue, &client).await,
        0,
        "nothing was published"
    );
    let pushed = listener.drain(Duration::from_millis(200)).await;
    assert!(
        pushed.is_empty(),
        "no fake event reached the subscriber: {pushed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_wildcard_is_not_a_queue_client_or_event_name() {
    let app = spawn_app().await;
    let queue = unique("q");
    for (path, body) in [
        ("/v1/queues/*/messages".to_owned(), json!({"event": "e"})),
        (
            "/v1/messages".to_owned(),
            json!({"queue": "*", "event": "e"}),
        ),
        (
            format!("/v1/queues/{queue}/messages"),
            json!({"event": "*"}),
        ),
    ] {
        let (status, answer) = app.post(&path, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "invalid_name"),
            "{path} {body}: {answer}"
        );
    }
    let (status, answer) = app.get("/v1/queues/*").await;
    assert_eq!((status, code(&answer)), (422, "invalid_name"), "{answer}");
    let socket = SocketClient::connect(&app.url).await;
    for request in [
        json!({"clientId": "*", "queue": queue}),
        json!({"clientId": "c", "queue": "*"}),
        json!({"clientId": "c", "queue": queue, "events": ["*"]}),
    ] {
        let ack = socket.call("subscribe", request.clone()).await;
        assert_eq!(ack["error"]["code"], "invalid_name", "{request}: {ack}");
    }
    let (_, queues) = app.get("/v1/queues").await;
    assert_eq!(queues["queues"], json!([]), "no queue was created");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_key_in_an_http_body_is_invalid_json_and_publishes_nothing() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let _listener = subscriber(&app, &client, &queue).await;
    let one = format!("/v1/queues/{queue}/messages");
    let cases = [
        (one.clone(), r#"{"event": "a", "event": "b"}"#.to_owned()),
        (
            one.clone(),
            r#"{"event": "e", "payload": {"order": {"id": 1, "id": 2}}}"#.to_owned(),
        ),
        (
            "/v1/messages".to_owned(),
            format!(
                r#"[{{"queue": "{queue}", "event": "e"}},
                    {{"queue": "{queue}", "event": "e", "payload": [{{"x": 1, "x": 1}}]}}]"#
            ),
        ),
        (
            format!("/v1/queues/{queue}/clients/{client}/acks"),
            r#"{"ids": ["a"], "ids": ["b"]}"#.to_owned(),
        ),
        (
            format!("/v1/queues/{queue}/kick"),
            r#"{"limit": 1, "limit": 2}"#.to_owned(),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = raw_post(&app, &path, JSON, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "invalid_json"),
            "{path} {body}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("twice")),
            "{answer}"
        );
    }
    assert_eq!(
        app.pending(&queue, &client).await,
        0,
        "nothing was published"
    );
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["published"], 0, "{detail}");
    // The same keys in different objects are fine.
    let (status, answer) = raw_post(
        &app,
        &one,
        JSON,
        r#"{"event": "e", "payload": {"a": {"id": 1}, "b": {"id": 2}}}"#,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_key_in_a_socket_event_is_invalid_json_and_publishes_nothing() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let _listener = subscriber(&app, &client, &queue).await;
    let mut socket = SocketClient::connect(&app.url).await;
    for text in [
        format!(r#"{{"queue": "{queue}", "event": "a", "event": "b", "payload": 1}}"#),
        format!(r#"{{"queue": "{queue}", "event": "e", "payload": {{"n": 1, "n": 2}}}}"#),
        format!(
            r#"{{"queue": "{queue}", "event": "e", "payload": {{"deep": [{{"k": {{"z": 0, "z": 1}}}}]}}}}"#
        ),
    ] {
        let ack = socket.call_raw("publish", &text).await;
        assert_eq!(ack["ok"], false, "{text}: {ack}");
        assert_eq!(ack["error"]["code"], "invalid_json", "{text}: {ack}");
    }
    // Without an ack callback the same error comes as `mq:error`.
    socket
        .emit_raw(
            "publish",
            &format!(r#"{{"queue": "{queue}", "event": "e", "payload": {{"n": 1, "n": 2}}}}"#),
        )
        .await;
    let error = socket.next().await;
    assert_eq!(error.event, "mq:error", "{error:?}");
    assert_eq!(error.data["code"], "invalid_json", "{error:?}");
    assert_eq!(error.data["event"], "publish", "{error:?}");
    assert_eq!(
        app.pending(&queue, &client).await,
        0,
        "nothing was published"
    );
    // The same text without the repeated key publishes: the socket still works.
    let ack = socket
        .call_raw(
            "publish",
            &format!(r#"{{"queue": "{queue}", "event": "e", "payload": {{"n": 1}}}}"#),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.stop().await;
}
