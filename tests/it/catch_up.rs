//! Catch-up of a large inbox: complete, in order, through socketioxide's bounded buffer.

use serde_json::json;

use crate::helpers::{Http, SocketClient, spawn_app, unique};

/// The inbox size the spec names for catch-up with backpressure.
const INBOX: usize = 100_000;
const BATCH: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_streams_a_100k_inbox_completely_and_in_order() {
    let app = spawn_app().await;
    let (queue, client) = (unique("bulk"), unique("reader"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;

    for start in (0..INBOX).step_by(BATCH) {
        let batch: Vec<_> = (start..start + BATCH)
            .map(|n| json!({"queue": queue, "event": "item", "payload": {"n": n}}))
            .collect();
        let (status, body) = app.post("/v1/messages", json!(batch)).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(app.pending(&queue, &client).await, INBOX as u64);

    let mut reader = SocketClient::connect(&app.url).await;
    reader.subscribe(&client, &queue).await;
    reader.emit("getAll", json!({"clientId": client})).await;
    for expected in 0..INBOX {
        let received = reader.next().await;
        assert_eq!(received.event, "item", "{received:?}");
        assert_eq!(
            received.data["payload"]["n"], expected,
            "message {expected} out of order"
        );
    }
    // Catch-up does not ack: everything is still pending.
    assert_eq!(app.pending(&queue, &client).await, INBOX as u64);
    app.stop().await;
}
