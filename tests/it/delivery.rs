//! Fan-out, the mailbox rule, live push, catch-up and acks over socket.io.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, SocketClient, TestApp, next_text, raw_socket, spawn_app, spawn_app_with, unique,
};

#[tokio::test]
async fn a_message_fans_out_to_every_subscribed_client() {
    let app = spawn_app().await;
    let queue = unique("news");
    let (alice, bob) = (unique("alice"), unique("bob"));
    let mut a = SocketClient::connect(&app.url).await;
    let mut b = SocketClient::connect(&app.url).await;
    a.subscribe(&alice, &queue).await;
    b.subscribe(&bob, &queue).await;

    let receipt = app
        .publish(&queue, "headline", json!({"title": "hello"}))
        .await;
    assert_eq!(receipt["recipients"], 2);

    for (socket, client) in [(&mut a, &alice), (&mut b, &bob)] {
        let got = socket.take("headline", 1).await;
        assert_eq!(got[0]["id"], receipt["id"]);
        assert_eq!(got[0]["clientId"], client.as_str());
    }
    assert_eq!(app.pending(&queue, &alice).await, 1);
    assert_eq!(app.pending(&queue, &bob).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_message_to_a_queue_nobody_subscribes_waits_for_the_first_subscriber() {
    let app = spawn_app().await;
    let store = unique("acme-widgets");
    let first = app
        .publish(&store, "delivered", json!({"orderId": 1}))
        .await;
    let second = app
        .publish(&store, "delivered", json!({"orderId": 2}))
        .await;
    assert_eq!(first["recipients"], 0);

    let mut vendor = SocketClient::connect(&app.url).await;
    let ack = vendor.subscribe(&store, &store).await;
    assert_eq!(ack["pending"], 2);
    let ack = vendor.call("getAll", json!({"clientId": store})).await;
    assert_eq!(ack["ok"], true);
    let got = vendor.take("delivered", 2).await;
    assert_eq!(got[0]["id"], first["id"]);
    assert_eq!(got[1]["id"], second["id"]);
    assert_eq!(got[1]["payload"], json!({"orderId": 2}));

    // A second subscriber arriving later finds nothing waiting: the first one took it all.
    let late = SocketClient::connect(&app.url).await;
    let ack = late.subscribe(&unique("late"), &store).await;
    assert_eq!(ack["pending"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_connected_subscriber_receives_the_full_envelope_live() {
    let app = spawn_app().await;
    let (queue, client) = (unique("orders"), unique("driver"));
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let receipt = app.publish(&queue, "pickup", json!({"orderId": 7})).await;
    let envelope = socket.take("pickup", 1).await.remove(0);
    assert_eq!(envelope["id"], receipt["id"]);
    assert_eq!(envelope["queue"], queue.as_str());
    assert_eq!(envelope["event"], "pickup");
    assert_eq!(envelope["payload"], json!({"orderId": 7}));
    assert_eq!(envelope["clientId"], client.as_str());
    assert_eq!(envelope["publishedAt"], receipt["publishedAt"]);
    assert_eq!(envelope["source"], "http");
    assert_eq!(envelope["attempt"], 1);
    app.stop().await;
}

#[tokio::test]
async fn every_socket_of_a_client_receives_live_pushes() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut one = SocketClient::connect(&app.url).await;
    let mut two = SocketClient::connect(&app.url).await;
    one.subscribe(&client, &queue).await;
    two.subscribe(&client, &queue).await;
    let receipt = app.publish(&queue, "e", json!(1)).await;
    assert_eq!(receipt["recipients"], 1, "one client, one inbox entry");
    assert_eq!(one.take("e", 1).await[0]["id"], receipt["id"]);
    assert_eq!(two.take("e", 1).await[0]["id"], receipt["id"]);
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["subscribers"][0]["connected"], true);
    assert_eq!(detail["subscribers"][0]["sockets"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_was_away_catches_up_and_acks() {
    let app = spawn_app().await;
    let (queue, client) = (unique("orders"), unique("acme"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["subscribers"][0]["connected"], false);

    let sent: Vec<Value> = {
        let mut sent = Vec::new();
        for n in 0..3 {
            sent.push(app.publish(&queue, "delivered", json!({"n": n})).await["id"].clone());
        }
        sent
    };
    assert_eq!(app.pending(&queue, &client).await, 3);

    let mut back = SocketClient::connect(&app.url).await;
    back.subscribe(&client, &queue).await;
    let ack = back.call("getAll", json!({"clientId": client})).await;
    assert_eq!(ack, json!({"ok": true, "count": 3}));
    let got = back.take("delivered", 3).await;
    let ids: Vec<Value> = got.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids, sent, "catch-up is in publish order");
    assert!(got.iter().all(|e| e["attempt"] == 1));

    for id in &ids {
        assert_eq!(
            back.ack(&client, id).await,
            json!({"ok": true, "removed": true})
        );
    }
    assert_eq!(app.pending(&queue, &client).await, 0);
    assert!(app.inbox_ids(&queue, &client).await.is_empty());
    let (_, stats) = app.get("/v1/queues").await;
    let row = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queue.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["acked"], 3);

    // Nothing is left to catch up on.
    let ack = back.call("getAll", json!({"clientId": client})).await;
    assert_eq!(ack, json!({"ok": true, "count": 0}));
    app.stop().await;
}

#[tokio::test]
async fn acks_are_idempotent_and_unknown_ids_are_not_errors() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let id = app.publish(&queue, "e", json!(1)).await["id"].clone();
    socket.take("e", 1).await;
    assert_eq!(
        socket.ack(&client, &id).await,
        json!({"ok": true, "removed": true})
    );
    assert_eq!(
        socket.ack(&client, &id).await,
        json!({"ok": true, "removed": false})
    );
    assert_eq!(
        socket.ack(&client, &json!("no-such-id")).await,
        json!({"ok": true, "removed": false})
    );
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["acked"], 1);
    app.stop().await;
}

#[tokio::test]
async fn acking_a_batch_of_ids_reports_each() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let a = app.publish(&queue, "e", json!(1)).await["id"].clone();
    let b = app.publish(&queue, "e", json!(2)).await["id"].clone();
    let ack = socket
        .call(
            "received",
            json!({"clientId": client, "ids": [a, "unknown", b]}),
        )
        .await;
    assert_eq!(ack["removed"], 2, "{ack}");
    assert_eq!(ack["results"][1]["removed"], false);
    assert_eq!(app.pending(&queue, &client).await, 0);
    app.stop().await;
}

/// Acks a socket sends together (here in one TCP write, so the server reads them in one
/// go and applies them as one change) are each checked, applied and answered as if sent
/// alone, in the order sent: repeated and unknown ids, a list of ids, an ack that cannot be
/// read and one for a queue the client is not subscribed to, with and without callbacks.
#[tokio::test]
async fn acks_sent_together_are_each_answered_as_if_sent_alone_in_order() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let subscriber = SocketClient::connect(&app.url).await;
    subscriber.subscribe(&client, &queue).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(app.publish(&queue, "e", json!(n)).await["id"].clone());
    }
    // A socket of no client and no subscription: nothing is pushed to it, only answers.
    let mut ws = raw_socket(&app.url).await;
    let acks = [
        json!({"clientId": client, "id": ids[0]}),
        json!({"clientId": client, "id": ids[0]}),
        json!({"clientId": client, "ids": [ids[1], "unknown", ids[2]]}),
        json!({"clientId": client, "id": 7}),
        json!({"clientId": client, "id": ids[3], "queue": unique("other")}),
        json!({"clientId": client, "id": ids[3]}),
    ];
    for (n, ack) in acks.iter().enumerate() {
        let packet = format!("42{}{}", n + 1, json!(["received", ack]));
        ws.feed(Message::text(packet)).await.unwrap();
    }
    // Without a callback: a success is not answered, a failure is an `mq:error`.
    let other = unique("other");
    let silent = [
        json!({"clientId": client, "id": ids[4]}),
        json!({"clientId": client, "id": ids[5], "queue": other}),
    ];
    for ack in &silent {
        let packet = format!("42{}", json!(["received", ack]));
        ws.feed(Message::text(packet)).await.unwrap();
    }
    // Written another way (an escape, a field queuehub does not read): the same ack.
    let id = ids[5].as_str().unwrap();
    let first = id.chars().next().unwrap();
    let escaped = format!("\\u{:04x}{}", u32::from(first), &id[first.len_utf8()..]);
    let last = format!(r#"["received",{{"clientId":"{client}","id":"{escaped}","note":1}}]"#);
    ws.feed(Message::text(format!("427{last}"))).await.unwrap();
    ws.flush().await.unwrap();

    let mut answers = Vec::new();
    while answers.len() < 8 {
        let frame = next_text(&mut ws).await.expect("an answer");
        answers.push(frame);
    }
    // The answer in `frame` is that of the event sent with callback `id`.
    let answer = |frame: usize, id: usize| -> Value {
        let body = answers[frame].strip_prefix(&format!("43{id}"));
        let body = body.unwrap_or_else(|| panic!("answer {id} expected: {answers:?}"));
        serde_json::from_str::<Value>(body).unwrap()[0].clone()
    };
    assert_eq!(answer(0, 1), json!({"ok": true, "removed": true}));
    assert_eq!(answer(1, 2), json!({"ok": true, "removed": false}));
    let listed = answer(2, 3);
    assert_eq!(listed["removed"], 2, "{listed}");
    let each: Vec<&Value> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["removed"])
        .collect();
    assert_eq!(
        each,
        [&json!(true), &json!(false), &json!(true)],
        "{listed}"
    );
    assert_eq!(answer(3, 4)["error"]["code"], "invalid_field");
    assert_eq!(answer(4, 5)["error"]["code"], "not_subscribed");
    assert_eq!(answer(5, 6), json!({"ok": true, "removed": true}));
    let error = answers[6]
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("{answers:?}"));
    let error: Value = serde_json::from_str(error).unwrap();
    assert_eq!(error[0], "mq:error", "{answers:?}");
    assert_eq!(error[1]["code"], "not_subscribed", "{error}");
    assert_eq!(answer(7, 7), json!({"ok": true, "removed": true}));

    assert_eq!(app.pending(&queue, &client).await, 0);
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["acked"], 6, "{stats}");
    app.stop().await;
}

#[tokio::test]
async fn http_acks_remove_from_the_inbox_like_socket_acks() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let id = app.publish(&queue, "e", json!(1)).await["id"].clone();
    assert_eq!(
        app.inbox_ids(&queue, &client).await,
        vec![id.as_str().unwrap().to_owned()]
    );
    let path = format!("/v1/queues/{queue}/clients/{client}/acks");
    let (status, body) = app.post(&path, json!({"ids": [id]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], 1);
    let (_, again) = app.post(&path, json!({"ids": [id]})).await;
    assert_eq!(again["removed"], 0);
    assert!(app.inbox_ids(&queue, &client).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn get_all_can_be_narrowed_to_one_queue_one_event_or_a_limit() {
    let app = spawn_app().await;
    let (orders, alerts, client) = (unique("orders"), unique("alerts"), unique("c"));
    let mut socket = SocketClient::connect(&app.url).await;
    let ack = socket
        .call(
            "subscribe",
            json!({"clientId": client, "queues": [orders, alerts]}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.publish(&orders, "pickup", json!(1)).await;
    app.publish(&orders, "delivered", json!(2)).await;
    app.publish(&alerts, "pickup", json!(3)).await;
    socket.drain(Duration::from_millis(300)).await;

    let ack = socket
        .call("getAll", json!({"clientId": client, "queue": orders}))
        .await;
    assert_eq!(ack["count"], 2);
    let got = socket.take("pickup", 1).await;
    assert_eq!(got[0]["payload"], 1);
    assert_eq!(socket.take("delivered", 1).await[0]["payload"], 2);

    let ack = socket
        .call("getAll", json!({"clientId": client, "event": "pickup"}))
        .await;
    assert_eq!(ack["count"], 2);
    let got = socket.take("pickup", 2).await;
    assert_eq!(
        (got[0]["payload"].clone(), got[1]["payload"].clone()),
        (json!(1), json!(3))
    );

    let ack = socket
        .call("getAll", json!({"clientId": client, "limit": 1}))
        .await;
    assert_eq!(ack["count"], 1);
    assert_eq!(socket.take("pickup", 1).await[0]["payload"], 1);
    let extra = socket.drain(Duration::from_millis(200)).await;
    assert!(extra.is_empty(), "limit 1 sends one message: {extra:?}");
    app.stop().await;
}

#[tokio::test]
async fn catch_up_counts_attempts() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    app.publish(&queue, "e", json!(1)).await;
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket.call("getAll", json!({"clientId": client})).await;
    socket.call("getAll", json!({"clientId": client})).await;
    let got = socket.take("e", 2).await;
    assert_eq!(
        (got[0]["attempt"].clone(), got[1]["attempt"].clone()),
        (json!(1), json!(2))
    );
    app.stop().await;
}

#[tokio::test]
async fn events_from_one_socket_are_applied_in_the_order_sent() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    for n in 0..3 {
        app.publish(&queue, "e", json!(n)).await;
    }
    let mut socket = SocketClient::connect(&app.url).await;
    // No waiting between the two: getAll must see the subscription.
    socket
        .emit("subscribe", json!({"clientId": client, "queue": queue}))
        .await;
    let ack = socket.call("getAll", json!({"clientId": client})).await;
    assert_eq!(ack, json!({"ok": true, "count": 3}));
    assert_eq!(socket.take("e", 3).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn unsubscribing_drops_the_inbox_and_stops_live_pushes() {
    let app = spawn_app().await;
    let (queue, client, other) = (unique("q"), unique("c"), unique("other"));
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let mut watcher = SocketClient::connect(&app.url).await;
    watcher.subscribe(&other, &queue).await;
    let first = app.publish(&queue, "e", json!(1)).await;
    assert_eq!(socket.take("e", 1).await[0]["id"], first["id"]);
    assert_eq!(watcher.take("e", 1).await[0]["id"], first["id"]);
    let ack = socket
        .call("unsubscribe", json!({"clientId": client, "queue": queue}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["dropped"], 1);

    // The watcher, still subscribed, gets the next message live: it has been pushed by
    // then, and the unsubscribed socket must not have had it.
    let second = app.publish(&queue, "e", json!(2)).await;
    assert_eq!(second["recipients"], 1, "{second}");
    assert_eq!(watcher.take("e", 1).await[0]["id"], second["id"]);
    let late = socket.drain(Duration::from_millis(300)).await;
    assert!(late.is_empty(), "no push after unsubscribe: {late:?}");
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    let subscribers = detail["subscribers"].as_array().unwrap();
    assert_eq!(subscribers.len(), 1);
    assert_eq!(subscribers[0]["clientId"], other.as_str());
    app.stop().await;
}

#[tokio::test]
async fn an_http_peek_returns_at_most_limit_messages_oldest_first() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.publish(&queue, "e", json!(n)).await["id"].clone());
    }
    let expected: Vec<(Value, Value)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.clone(), json!(n)))
        .collect();
    assert_eq!(
        peek(&app, &queue, &client, "?limit=2").await,
        expected[..2],
        "the 2 oldest, in order"
    );
    assert_eq!(peek(&app, &queue, &client, "?limit=1").await, expected[..1]);
    assert_eq!(
        peek(&app, &queue, &client, "?limit=5").await,
        expected,
        "all 5, in order"
    );
    assert_eq!(
        peek(&app, &queue, &client, "?limit=1000").await,
        expected,
        "no more than there are"
    );
    assert_eq!(
        peek(&app, &queue, &client, "").await,
        expected,
        "the default holds all 5"
    );
    assert_eq!(app.pending(&queue, &client).await, 5, "a peek acks nothing");
    app.stop().await;
}

/// An HTTP peek at `client`'s inbox on `queue` (`query`: `?limit=...` or nothing): the ids and
/// payloads it returns, in its order.
async fn peek(app: &TestApp, queue: &str, client: &str, query: &str) -> Vec<(Value, Value)> {
    let path = format!("/v1/queues/{queue}/clients/{client}/messages{query}");
    let (status, body) = app.get(&path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["queue"], queue);
    assert_eq!(body["clientId"], client);
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages: {body}"))
        .iter()
        .map(|m| (m["id"].clone(), m["payload"].clone()))
        .collect()
}

#[tokio::test]
async fn live_pushes_follow_each_socket_through_disconnect_unsubscribe_and_subscribe_again() {
    let app = spawn_app().await;
    let (queue, client, other) = (unique("q"), unique("c"), unique("other"));
    let sockets = |detail: &Value| {
        let subscribers = detail["subscribers"].as_array().unwrap();
        let mine = subscribers
            .iter()
            .find(|s| s["clientId"] == client.as_str());
        mine.map_or(0, |s| s["sockets"].as_u64().unwrap())
    };
    let mut one = SocketClient::connect(&app.url).await;
    let two = SocketClient::connect(&app.url).await;
    let mut watcher = SocketClient::connect(&app.url).await;
    one.subscribe(&client, &queue).await;
    two.subscribe(&client, &queue).await;
    watcher.subscribe(&other, &queue).await;
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(sockets(&detail), 2);

    // A socket that leaves is no longer one of the client's; the other still is.
    two.disconnect().await;
    let mut left = false;
    for _ in 0..100 {
        let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
        if sockets(&detail) == 1 {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left, "the disconnected socket still counts after 5 s");
    app.publish(&queue, "e", json!(1)).await;
    assert_eq!(one.take("e", 1).await[0]["payload"], 1);

    // Unsubscribing ends the live pushes; subscribing again on the same socket brings them
    // back.
    let ack = one
        .call("unsubscribe", json!({"clientId": client, "queue": queue}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.publish(&queue, "e", json!(2)).await;
    assert!(one.drain(Duration::from_millis(300)).await.is_empty());
    one.subscribe(&client, &queue).await;
    app.publish(&queue, "e", json!(3)).await;
    assert_eq!(one.take("e", 1).await[0]["payload"], 3);
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(sockets(&detail), 1);
    assert_eq!(
        watcher.take("e", 3).await.len(),
        3,
        "the other client got all three"
    );
    app.stop().await;
}

#[tokio::test]
async fn unsubscribing_over_http_drops_the_inbox() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    app.publish(&queue, "e", json!(1)).await;
    let response = app
        .http
        .delete(format!("{}/v1/queues/{queue}/clients/{client}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert!(detail["subscribers"].as_array().unwrap().is_empty());
    let (_, totals) = app.get("/v1/queues").await;
    assert_eq!(
        totals["queues"][0]["waiting"], 0,
        "a dropped message does not come back as waiting"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_socket_can_publish_and_its_client_id_is_the_source() {
    let app = spawn_app().await;
    let (queue, reader) = (unique("q"), unique("reader"));
    let mut listener = SocketClient::connect(&app.url).await;
    listener.subscribe(&reader, &queue).await;
    let publisher =
        SocketClient::connect_with_auth(&app.url, Some(json!({"clientId": "vendor-1"}))).await;
    let ack = publisher
        .call(
            "publish",
            json!({"queue": queue, "event": "pickup", "payload": {"orderId": 9}}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["recipients"], 1);
    let got = listener.take("pickup", 1).await.remove(0);
    assert_eq!(got["id"], ack["id"]);
    assert_eq!(got["source"], "vendor-1");
    app.stop().await;
}

#[tokio::test]
async fn a_client_id_given_at_connect_can_be_left_out_of_events() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    app.publish(&queue, "e", json!(1)).await;
    let mut socket =
        SocketClient::connect_with_auth(&app.url, Some(json!({"clientId": client}))).await;
    let ack = socket.call("subscribe", json!({"queue": queue})).await;
    assert_eq!(ack["clientId"], client.as_str());
    assert_eq!(socket.call("getAll", json!({})).await["count"], 1);
    let id = socket.take("e", 1).await[0]["id"].clone();
    assert_eq!(
        socket.call("received", json!({"id": id})).await["removed"],
        true
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_filter_keeps_other_events_out_of_the_inbox() {
    let app = spawn_app().await;
    let (queue, picky, all) = (unique("q"), unique("picky"), unique("all"));
    let socket = SocketClient::connect(&app.url).await;
    let ack = socket
        .call(
            "subscribe",
            json!({"clientId": picky, "queue": queue, "events": ["delivered"]}),
        )
        .await;
    assert_eq!(ack["ok"], true);
    socket.subscribe(&all, &queue).await;
    app.publish(&queue, "pickup", json!(1)).await;
    app.publish(&queue, "delivered", json!(2)).await;
    assert_eq!(app.pending(&queue, &picky).await, 1);
    assert_eq!(app.pending(&queue, &all).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_message_no_filter_accepts_waits_for_a_subscriber_that_wants_it() {
    let app = spawn_app().await;
    let (queue, picky, later) = (unique("q"), unique("picky"), unique("later"));
    let socket = SocketClient::connect(&app.url).await;
    let ack = socket
        .call(
            "subscribe",
            json!({"clientId": picky, "queue": queue, "events": ["delivered"]}),
        )
        .await;
    assert_eq!(ack["ok"], true);
    let receipt = app.publish(&queue, "pickup", json!(1)).await;
    assert_eq!(receipt["recipients"], 0);
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["waiting"], 1, "not dropped: {detail}");
    let ack = socket.subscribe(&later, &queue).await;
    assert_eq!(ack["pending"], 1);
    assert_eq!(
        app.inbox_ids(&queue, &later).await,
        vec![receipt["id"].as_str().unwrap().to_owned()]
    );
    app.stop().await;
}

#[tokio::test]
async fn kick_moves_dead_letters_back_into_the_queue() {
    let app = spawn_app().await;
    let (queue, worker) = (unique("jobs"), unique("worker"));
    let dead = format!("{queue}.dead");
    let mut dead_ids = Vec::new();
    for n in 0..3 {
        dead_ids.push(app.publish(&dead, "build", json!({"n": n})).await["id"].clone());
    }
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&worker, &queue).await;
    let (status, body) = app
        .post(&format!("/v1/queues/{queue}/kick"), json!({"limit": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kicked"], 2);
    let got = socket.take("build", 2).await;
    assert_eq!(
        (
            got[0]["payload"]["n"].clone(),
            got[1]["payload"]["n"].clone()
        ),
        (json!(0), json!(1))
    );
    assert_eq!(got[0]["queue"], queue.as_str());
    assert!(
        got.iter().all(|m| !dead_ids.contains(&m["id"])),
        "a kicked message is a new message with a new id (DECISIONS 10): {got:?}"
    );
    let (_, stats) = app.get(&format!("/v1/queues/{dead}")).await;
    assert_eq!(stats["waiting"], 1);
    let (_, body) = app
        .post(&format!("/v1/queues/{queue}/kick"), json!({}))
        .await;
    assert_eq!(body["kicked"], 1);
    let (_, body) = app
        .post(&format!("/v1/queues/{queue}/kick"), json!({}))
        .await;
    assert_eq!(body["kicked"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_socket_that_names_its_client_at_connect_receives_its_subscriptions_live() {
    let app = spawn_app().await;
    let (queue, client) = (unique("q"), unique("c"));
    let first = SocketClient::connect(&app.url).await;
    first.subscribe(&client, &queue).await;
    first.disconnect().await;

    let mut back =
        SocketClient::connect_with_auth(&app.url, Some(json!({"clientId": client}))).await;
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["subscribers"][0]["connected"], true, "{detail}");
    let receipt = app.publish(&queue, "e", json!(1)).await;
    assert_eq!(back.take("e", 1).await[0]["id"], receipt["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_sockets_catch_ups_stream_one_after_another_in_the_order_asked() {
    // More than a socket's buffer holds (1024 packets here), so that a stream has to wait
    // for room.
    let app = spawn_app_with(|config| config.socket_buffer = 1024).await;
    let (queue, client) = (unique("q"), unique("c"));
    const EACH: usize = 2000;
    let socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;
    for chunk in 0..(2 * EACH / 1000) {
        let batch: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| json!({"queue": queue, "event": if n % 2 == 0 { "a" } else { "b" }, "payload": n}))
            .collect();
        app.post("/v1/messages", json!(batch)).await;
    }
    let mut socket = SocketClient::connect(&app.url).await;
    socket.subscribe(&client, &queue).await;
    socket
        .emit("getAll", json!({"clientId": client, "event": "a"}))
        .await;
    socket
        .emit("getAll", json!({"clientId": client, "event": "b"}))
        .await;
    let events: Vec<String> = socket
        .take_any(2 * EACH)
        .await
        .into_iter()
        .map(|r| r.event)
        .collect();
    let first_b = events.iter().position(|e| e == "b");
    assert_eq!(first_b, Some(EACH), "every 'a' before any 'b'");
    app.stop().await;
}
