//! Input that is well-formed but must still be refused: reserved event names (a publisher
//! could otherwise push fake socket.io or queuehub events to subscribers), the wildcard `*`
//! as a name, and JSON objects that repeat a key (read one way by a proxy, another way by
//! queuehub). Each is refused with its stable code and publishes nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, TestApp, spawn_app, unique};

#[allow(dead_code)] // used by the JSON tests
async fn raw_post(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.url))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

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
