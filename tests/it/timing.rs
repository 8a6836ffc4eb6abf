//! Delayed delivery, TTL and limits, through the public HTTP and socket.io surface.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Http, ServerProcess, SocketClient, data_dir, spawn_app, spawn_app_with, unique,
};

/// Polls `GET /v1/queues/{queue}` until `check` holds (bounded); returns the last answer.
async fn until_stats(app: &impl Http, queue: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = app.get(&format!("/v1/queues/{queue}")).await.1;
        if check(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stats never matched: {stats}");
}

#[tokio::test]
async fn a_delayed_message_is_invisible_until_due_then_pushed_live() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("worker"));
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let (status, receipt) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "build", "payload": 1, "delayMs": 1000}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["recipients"], 0);
    assert!(
        receipt["deliverAt"]
            .as_str()
            .is_some_and(|t| t > receipt["publishedAt"].as_str().unwrap())
    );

    let early = socket.drain(Duration::from_millis(300)).await;
    assert!(early.is_empty(), "nothing before it is due: {early:?}");
    assert!(app.inbox_ids(&queue, &client).await.is_empty());
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["scheduled"], 1);

    let pushed = socket.take("build", 1).await.remove(0);
    assert_eq!(pushed["id"], receipt["id"]);
    assert_eq!(app.pending(&queue, &client).await, 1);
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["scheduled"], 0);
    app.stop().await;
}

#[tokio::test]
async fn deliver_at_takes_an_rfc3339_time_and_a_past_time_delivers_at_once() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let (status, receipt) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "deliverAt": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["recipients"], 1, "a time in the past is now");
    assert!(receipt.get("deliverAt").is_none());
    socket.take("e", 1).await;
    app.stop().await;
}

#[tokio::test]
async fn deliver_at_takes_an_rfc3339_time_with_an_offset() {
    let app = spawn_app().await;
    let queue = unique("q");
    // An hour from now, in whole seconds, written as a time in UTC+02:00.
    let due = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3600).unwrap();
    let local = jiff::tz::Offset::constant(2).to_datetime(due);
    let (status, receipt) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "deliverAt": format!("{local}+02:00")}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(
        receipt["deliverAt"],
        format!("{due:.3}"),
        "the same instant, in UTC"
    );
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["scheduled"], 1, "{stats}");
    app.stop().await;
}

#[tokio::test]
async fn delayed_messages_survive_kill_9_and_are_delivered_when_due() {
    let (_dir, path) = data_dir();
    let (queue, client) = (unique("later"), unique("c"));
    let server = ServerProcess::start(&path).await;
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;
    let (status, receipt) = server
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": "hi", "delayMs": 1500}),
        )
        .await;
    assert_eq!(status, 201);
    server.kill_9();

    let server = ServerProcess::start(&path).await;
    let (_, stats) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(
        stats["scheduled"], 1,
        "still scheduled after the crash: {stats}"
    );
    until_stats(&server, &queue, |s| s["subscribers"][0]["pending"] == 1).await;
    assert_eq!(
        server.inbox_ids(&queue, &client).await,
        vec![receipt["id"].as_str().unwrap().to_owned()]
    );
}

#[tokio::test]
async fn an_expired_message_leaves_every_inbox_and_is_counted() {
    let app = spawn_app().await;
    let (queue, client, nobody) = (unique("q"), unique("c"), unique("nobody"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;
    app.post(
        &format!("/v1/queues/{queue}/messages"),
        json!({"event": "e", "ttlMs": 300}),
    )
    .await;
    app.post(
        &format!("/v1/queues/{queue}/messages"),
        json!({"event": "e", "payload": "stays"}),
    )
    .await;
    app.post(
        &format!("/v1/queues/{nobody}/messages"),
        json!({"event": "e", "ttlMs": 300}),
    )
    .await;

    let stats = until_stats(&app, &queue, |s| s["expired"] == 1).await;
    assert_eq!(
        stats["subscribers"][0]["pending"], 1,
        "only the message without TTL is left"
    );
    until_stats(&app, &nobody, |s| s["expired"] == 1 && s["waiting"] == 0).await;

    let mut back = SocketClient::connect(&app.url).await;
    back.subscribe(&client, &queue).await;
    let ack = back.call("getAll", json!({"clientId": client})).await;
    assert_eq!(ack["count"], 1);
    assert_eq!(back.take("e", 1).await[0]["payload"], "stays");
    app.stop().await;
}

#[tokio::test]
async fn a_full_inbox_refuses_publishes_with_507_until_acks_make_room() {
    let app = spawn_app_with(|c| c.broker.max_inbox = 2).await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let first = app.publish(&queue, "e", json!(1)).await["id"].clone();
    app.publish(&queue, "e", json!(2)).await;
    let (status, body) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e"}),
        )
        .await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "inbox_full");
    let stats = until_stats(&app, &queue, |s| s["rejected"] == 1).await;
    assert_eq!(stats["published"], 2);
    assert_eq!(socket.ack(&client, &first).await["removed"], true);
    app.publish(&queue, "e", json!(3)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_message_over_a_limit_is_refused_whole() {
    // README, Limits: a payload over the limit (413) or a publish into a full inbox (507)
    // refuses the whole batch, even when the other messages, or the other subscribers'
    // inboxes, are within the limits.
    let app = spawn_app_with(|c| {
        c.broker.max_payload_bytes = 100;
        c.broker.max_inbox = 2;
    })
    .await;
    let (queue, roomy, full) = (unique("q"), unique("roomy"), unique("full"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&roomy, &queue).await;
    socket.subscribe(&full, &queue).await;
    let message = |payload: Value| json!({"queue": queue, "event": "e", "payload": payload});

    // One payload over the limit among small ones: nothing stored.
    let big = message(json!("x".repeat(200)));
    let (status, body) = app
        .post(
            "/v1/messages",
            json!([message(json!(1)), big, message(json!(3))]),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(app.pending(&queue, &roomy).await, 0);
    assert_eq!(app.pending(&queue, &full).await, 0);

    // One subscriber's inbox full, the other's with room: nothing stored for either.
    let first = app.publish(&queue, "e", json!("a")).await["id"].clone();
    app.publish(&queue, "e", json!("b")).await;
    assert_eq!(socket.ack(&roomy, &first).await["removed"], true);
    assert_eq!(app.pending(&queue, &roomy).await, 1);
    assert_eq!(app.pending(&queue, &full).await, 2);
    let (status, body) = app.post("/v1/messages", json!([message(json!("c"))])).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "inbox_full", "{body}");
    assert_eq!(
        app.pending(&queue, &roomy).await,
        1,
        "the roomy inbox got nothing"
    );
    assert_eq!(app.pending(&queue, &full).await, 2);
    let stats = until_stats(&app, &queue, |s| s["published"] == 2).await;
    assert_eq!(stats["published"], 2, "{stats}");
    app.stop().await;
}

#[tokio::test]
async fn a_payload_over_the_limit_on_a_used_queue_is_counted_as_rejected() {
    let app = spawn_app_with(|c| c.broker.max_payload_bytes = 100).await;
    let queue = unique("q");
    app.publish(&queue, "e", json!("small")).await;
    let (status, _) = app
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": "x".repeat(200)}),
        )
        .await;
    assert_eq!(status, 413);
    until_stats(&app, &queue, |s| s["rejected"] == 1).await;
    app.stop().await;
}
