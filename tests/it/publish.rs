//! Publishing over HTTP: receipts, idempotency, batches.

use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, spawn_app, unique};

#[tokio::test]
async fn publish_answers_201_with_a_receipt() {
    let app = spawn_app().await;
    let queue = unique("orders");
    let receipt = app
        .publish(&queue, "delivered", json!({"orderId": 1}))
        .await;
    assert_eq!(receipt["queue"], queue.as_str());
    assert_eq!(receipt["event"], "delivered");
    assert_eq!(receipt["recipients"], 0);
    assert!(receipt["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        receipt["publishedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    app.stop().await;
}

#[tokio::test]
async fn publishing_the_same_id_again_returns_the_first_receipt_and_stores_nothing_new() {
    let app = spawn_app().await;
    let queue = unique("orders");
    let body = json!({"event": "delivered", "payload": {"n": 1}, "id": "order-42"});
    let path = format!("/v1/queues/{queue}/messages");
    let (first_status, first) = app.post(&path, body.clone()).await;
    let (second_status, second) = app
        .post(
            &path,
            json!({"event": "delivered", "payload": {"n": 2}, "id": "order-42"}),
        )
        .await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first, second);
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["published"], 1);
    assert_eq!(stats["waiting"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_receipt_is_json_and_a_replayed_id_says_so_in_a_header() {
    let app = spawn_app().await;
    let queue = unique("orders");
    let send = |path: String, body: serde_json::Value| {
        let request = app.http.post(format!("{}{path}", app.url)).json(&body);
        async move {
            let response = request.send().await.expect("request sent");
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let heads = (header("content-type"), header("idempotent-replayed"));
            let status = response.status().as_u16();
            (
                status,
                heads,
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let one = json!({"event": "delivered", "payload": {"n": 1}, "id": "order-7"});
    let json = Some("application/json".to_owned());
    let path = format!("/v1/queues/{queue}/messages");
    let (status, heads, first) = send(path.clone(), one.clone()).await;
    assert_eq!((status, heads), (201, (json.clone(), None)));
    assert_eq!(first["id"], "order-7");
    let (status, heads, again) = send(path, one).await;
    assert_eq!(
        (status, heads),
        (201, (json.clone(), Some("true".to_owned())))
    );
    assert_eq!(again, first);
    // A batch: an array of receipts; replayed only when every message in it was.
    let batch = json!([
        {"queue": queue, "event": "delivered", "payload": 2, "id": "order-7"},
        {"queue": queue, "event": "delivered", "payload": 3, "id": "order-8"},
    ]);
    let (status, heads, receipts) = send("/v1/messages".to_owned(), batch.clone()).await;
    assert_eq!((status, heads), (201, (json.clone(), None)));
    assert_eq!(receipts[0], first);
    assert_eq!(receipts[1]["id"], "order-8");
    let (status, heads, _) = send("/v1/messages".to_owned(), batch).await;
    assert_eq!((status, heads), (201, (json, Some("true".to_owned()))));
    app.stop().await;
}

#[tokio::test]
async fn the_same_id_on_another_queue_is_another_message() {
    let app = spawn_app().await;
    let (a, b) = (unique("a"), unique("b"));
    for queue in [&a, &b] {
        let (status, _) = app
            .post(
                &format!("/v1/queues/{queue}/messages"),
                json!({"event": "e", "id": "same"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    for queue in [&a, &b] {
        let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(stats["published"], 1, "{queue}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_array_publishes_a_batch_in_order() {
    let app = spawn_app().await;
    let queue = unique("batch");
    // Ids whose sorted order is not the array's, so a batch stored or answered sorted (or
    // in any order but the array's) shows.
    let ids = ["m-e", "m-c", "m-a", "m-d", "m-b"];
    let batch: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| json!({"queue": queue, "event": "tick", "payload": n, "id": id}))
        .collect();
    let (status, receipts) = app.post("/v1/messages", json!(batch)).await;
    assert_eq!(status, 201, "{receipts}");
    let receipt_ids: Vec<&str> = receipts
        .as_array()
        .unwrap_or_else(|| panic!("an array of receipts: {receipts}"))
        .iter()
        .map(|r| r["id"].as_str().expect("a receipt id"))
        .collect();
    assert_eq!(
        receipt_ids, ids,
        "one receipt per message, in the array's order"
    );
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 5);

    // The first subscriber takes them (the mailbox rule) and gets them in the array's order,
    // in its inbox and in a catch-up.
    let client = unique("reader");
    let mut socket = SocketClient::connect(&app.url).await;
    let ack = socket.subscribe(&client, &queue).await;
    assert_eq!(ack["pending"], 5, "{ack}");
    assert_eq!(app.inbox_ids(&queue, &client).await, ids, "inbox order");
    let ack = socket.call("getAll", json!({"clientId": client})).await;
    assert_eq!(ack, json!({"ok": true, "count": 5}));
    let got = socket.take("tick", 5).await;
    let delivered: Vec<(Value, Value)> = got
        .iter()
        .map(|e| (e["id"].clone(), e["payload"].clone()))
        .collect();
    let expected: Vec<(Value, Value)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (json!(id), json!(n)))
        .collect();
    assert_eq!(delivered, expected, "catch-up in the array's order");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_message_stores_nothing() {
    let app = spawn_app().await;
    let queue = unique("batch");
    let batch = json!([
        {"queue": queue, "event": "tick", "payload": 1},
        {"queue": queue, "event": "connect", "payload": 2},
    ]);
    let (status, body) = app.post("/v1/messages", batch).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("message 1:"),
        "{body}"
    );
    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "nothing of the batch may exist");
    app.stop().await;
}

#[tokio::test]
async fn a_single_object_on_the_batch_route_publishes_one_message() {
    let app = spawn_app().await;
    let queue = unique("single");
    let (status, receipt) = app
        .post(
            "/v1/messages",
            json!({"queue": queue, "event": "tick", "payload": null}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["queue"], queue.as_str());
    app.stop().await;
}
