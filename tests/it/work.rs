//! Work queues (the beanstalkd pattern): sockets of one client share its inbox, each message
//! goes to one worker, unacked messages are redelivered, dead letters can be kicked back.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Http, ServerProcess, SocketClient, data_dir, spawn_app, unique};

async fn worker(url: &str, client: &str, queue: &str, options: Value) -> SocketClient {
    let socket = SocketClient::connect(url).await;
    let mut request = json!({"clientId": client, "queue": queue, "mode": "work"});
    request
        .as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    let ack = socket.call("subscribe", request).await;
    assert_eq!(ack["ok"], true, "{ack}");
    socket
}

#[tokio::test]
async fn three_workers_share_a_queue_and_each_message_goes_to_exactly_one() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("builders"));
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(worker(&app.url, &client, &queue, json!({"prefetch": 100})).await);
    }
    for n in 0..30 {
        app.publish(&queue, "build", json!(n)).await;
    }
    let mut seen = HashSet::new();
    for socket in &mut workers {
        let got = socket.take("build", 10).await;
        for envelope in got {
            assert_eq!(envelope["attempt"], 1);
            assert!(
                seen.insert(envelope["id"].as_str().unwrap().to_owned()),
                "delivered twice: {envelope}"
            );
            socket.ack(&client, &envelope["id"]).await;
        }
    }
    assert_eq!(seen.len(), 30);
    for socket in &mut workers {
        let extra = socket.drain(Duration::from_millis(200)).await;
        assert!(extra.is_empty(), "round-robin gives 10 each: {extra:?}");
    }
    assert_eq!(app.pending(&queue, &client).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_worker_holds_at_most_prefetch_unacked_messages() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let mut socket = worker(&app.url, &client, &queue, json!({"prefetch": 2})).await;
    for n in 0..5 {
        app.publish(&queue, "job", json!(n)).await;
    }
    let first = socket.take("job", 2).await;
    assert!(
        socket.drain(Duration::from_millis(300)).await.is_empty(),
        "no third before an ack"
    );
    socket.ack(&client, &first[0]["id"]).await;
    assert_eq!(socket.take("job", 1).await[0]["payload"], 2);
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["subscribers"][0]["mode"], "work");
    assert_eq!(detail["subscribers"][0]["inFlight"], 2);
    app.stop().await;
}

#[tokio::test]
async fn an_unacked_message_goes_to_another_worker_after_the_ack_timeout() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let mut a = worker(&app.url, &client, &queue, json!({"ackTimeoutMs": 300})).await;
    let mut b = worker(&app.url, &client, &queue, json!({"ackTimeoutMs": 300})).await;
    let id = app.publish(&queue, "job", json!("slow")).await["id"].clone();
    // Round-robin starts with the first worker.
    let first = a.take("job", 1).await.remove(0);
    assert_eq!(
        (first["id"].clone(), first["attempt"].clone()),
        (id.clone(), json!(1))
    );
    let again = b.take("job", 1).await.remove(0);
    assert_eq!(
        (again["id"].clone(), again["attempt"].clone()),
        (id.clone(), json!(2))
    );
    assert_eq!(b.ack(&client, &id).await["removed"], true);
    assert_eq!(app.pending(&queue, &client).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_timed_out_message_goes_to_a_worker_that_joined_after_it_was_sent() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    // Worker two must subscribe within this after worker one got the message: a subscribe
    // takes milliseconds, so 1.5 s leaves a wide margin on a busy machine.
    let options = json!({"ackTimeoutMs": 1500});
    let mut one = worker(&app.url, &client, &queue, options.clone()).await;
    let id = app.publish(&queue, "job", json!("slow")).await["id"].clone();
    let first = one.take("job", 1).await.remove(0);
    assert_eq!(
        (first["id"].clone(), first["attempt"].clone()),
        (id.clone(), json!(1))
    );
    let mut two = worker(&app.url, &client, &queue, options).await;
    // Nobody acks: each time the deadline passes the message goes to the other worker.
    for (expected, attempt) in [("two", 2), ("one", 3), ("two", 4)] {
        let (who, received) = tokio::select! {
            received = one.next() => ("one", received),
            received = two.next() => ("two", received),
        };
        assert_eq!(received.event, "job", "{received:?}");
        assert_eq!(received.data["id"], id);
        assert_eq!(
            (who, received.data["attempt"].clone()),
            (expected, json!(attempt)),
            "attempt {attempt} goes to worker {expected}"
        );
    }
    app.stop().await;
}

/// Polls `GET /v1/queues/{queue}` until its first subscriber satisfies `check` (a socket
/// that disconnects is detached by the server a moment later); returns that subscriber.
async fn until_subscriber(
    app: &crate::helpers::TestApp,
    queue: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
        last = detail["subscribers"][0].clone();
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the subscriber never matched: {last}");
}

#[tokio::test]
async fn queue_stats_count_live_workers_as_connected_sockets() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let one = worker(&app.url, &client, &queue, json!({})).await;
    let two = worker(&app.url, &client, &queue, json!({})).await;
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    let subscriber = &detail["subscribers"][0];
    assert_eq!(
        (
            subscriber["connected"].clone(),
            subscriber["sockets"].clone(),
            subscriber["workers"].clone()
        ),
        (json!(true), json!(2), json!(2)),
        "{detail}"
    );
    one.disconnect().await;
    let subscriber = until_subscriber(&app, &queue, |s| s["workers"] == 1).await;
    assert_eq!(
        (
            subscriber["connected"].clone(),
            subscriber["sockets"].clone()
        ),
        (json!(true), json!(1))
    );
    two.disconnect().await;
    let subscriber = until_subscriber(&app, &queue, |s| s["workers"] == 0).await;
    assert_eq!(
        (
            subscriber["connected"].clone(),
            subscriber["sockets"].clone()
        ),
        (json!(false), json!(0))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_worker_that_leaves_hands_its_messages_back_at_once() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let a = worker(&app.url, &client, &queue, json!({"ackTimeoutMs": 600000})).await;
    let mut b = worker(&app.url, &client, &queue, json!({"ackTimeoutMs": 600000})).await;
    let held = app.publish(&queue, "job", json!("held by a")).await["id"].clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        b.drain(Duration::from_millis(100)).await.is_empty(),
        "a holds it"
    );
    a.disconnect().await;
    let handed = b.take("job", 1).await.remove(0);
    assert_eq!(handed["id"], held);
    assert_eq!(handed["attempt"], 2);
    app.stop().await;
}

#[tokio::test]
async fn after_max_deliveries_a_message_is_dead_lettered_and_kick_brings_it_back() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let options = json!({"ackTimeoutMs": 200, "maxDeliveries": 2});
    let mut socket = worker(&app.url, &client, &queue, options).await;
    app.publish(&queue, "job", json!({"poison": true})).await;
    let deliveries = socket.take("job", 2).await;
    assert_eq!(
        (
            deliveries[0]["attempt"].clone(),
            deliveries[1]["attempt"].clone()
        ),
        (json!(1), json!(2))
    );
    let dead = format!("{queue}.dead");
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = app.get(&format!("/v1/queues/{dead}")).await.1;
        if stats["waiting"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["waiting"], 1, "{stats}");
    let (_, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(detail["deadLettered"], 1);
    assert_eq!(detail["subscribers"][0]["pending"], 0);
    assert!(
        socket.drain(Duration::from_millis(400)).await.is_empty(),
        "no third delivery"
    );

    let (status, body) = app
        .post(&format!("/v1/queues/{queue}/kick"), json!({}))
        .await;
    assert_eq!((status, body["kicked"].clone()), (200, json!(1)));
    let back = socket.take("job", 1).await.remove(0);
    assert_eq!(back["payload"], json!({"poison": true}));
    assert_eq!(back["attempt"], 1, "a kicked job starts over");
    app.stop().await;
}

#[tokio::test]
async fn get_all_does_not_bypass_the_workers() {
    let app = spawn_app().await;
    let (queue, client) = (unique("jobs"), unique("w"));
    let socket = worker(&app.url, &client, &queue, json!({})).await;
    let ack = socket
        .call("getAll", json!({"clientId": client, "queue": queue}))
        .await;
    assert_eq!(ack["error"]["code"], "work_mode", "{ack}");
    let ack = socket
        .call(
            "subscribe",
            json!({"clientId": client, "queue": queue, "prefetch": 2}),
        )
        .await;
    assert_eq!(
        ack["error"]["code"], "invalid_field",
        "work options need mode work: {ack}"
    );
    app.stop().await;
}

#[tokio::test]
async fn after_kill_9_a_dead_workers_messages_are_delivered_again_with_their_attempts() {
    let (_dir, path) = data_dir();
    let (queue, client) = (unique("jobs"), unique("w"));
    let server = ServerProcess::start(&path).await;
    let mut socket = worker(
        &server.url,
        &client,
        &queue,
        json!({"ackTimeoutMs": 600000}),
    )
    .await;
    let id = server.publish(&queue, "job", json!(1)).await["id"].clone();
    assert_eq!(socket.take("job", 1).await[0]["attempt"], 1);
    server.kill_9();

    let server = ServerProcess::start(&path).await;
    let mut socket = worker(&server.url, &client, &queue, json!({})).await;
    let again = socket.take("job", 1).await.remove(0);
    assert_eq!(
        (again["id"].clone(), again["attempt"].clone()),
        (id, json!(2))
    );
}

#[tokio::test]
async fn after_kill_9_a_worker_gets_the_redelivered_message_then_one_published_since() {
    let (_dir, path) = data_dir();
    let (queue, client) = (unique("jobs"), unique("w"));
    let server = ServerProcess::start(&path).await;
    let mut socket = worker(&server.url, &client, &queue, json!({})).await;
    let first = server.publish(&queue, "job", json!(1)).await["id"].clone();
    assert_eq!(socket.take("job", 1).await[0]["id"], first);
    server.kill_9();

    // Published after the restart while no worker is attached, then a worker (prefetch 1).
    let server = ServerProcess::start(&path).await;
    let second = server.publish(&queue, "job", json!(2)).await["id"].clone();
    let mut socket = worker(&server.url, &client, &queue, json!({})).await;
    let again = socket.take("job", 1).await.remove(0);
    assert_eq!((&again["id"], &again["attempt"]), (&first, &json!(2)));
    socket.ack(&client, &first).await;
    let next = socket.take("job", 1).await.remove(0);
    assert_eq!((&next["id"], &next["attempt"]), (&second, &json!(1)));
}

#[tokio::test]
async fn an_ordered_subscription_gets_the_next_message_only_after_the_ack() {
    let app = spawn_app().await;
    let (queue, client) = (unique("steps"), unique("c"));
    let mut socket = SocketClient::connect(&app.url).await;
    let ack = socket
        .call(
            "subscribe",
            json!({"clientId": client, "queue": queue, "ordered": true}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    for n in 0..3 {
        app.publish(&queue, "step", json!(n)).await;
    }
    for n in 0..3 {
        let step = socket.take("step", 1).await.remove(0);
        assert_eq!(step["payload"], n);
        let early = socket.drain(Duration::from_millis(250)).await;
        assert!(
            early.is_empty(),
            "nothing before the ack of step {n}: {early:?}"
        );
        assert_eq!(socket.ack(&client, &step["id"]).await["removed"], true);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_ordered_client_coming_back_gets_its_oldest_message_first_and_again_on_get_all() {
    let app = spawn_app().await;
    let (queue, client) = (unique("steps"), unique("c"));
    let first = SocketClient::connect(&app.url).await;
    first
        .call(
            "subscribe",
            json!({"clientId": client, "queue": queue, "ordered": true}),
        )
        .await;
    first.disconnect().await;
    let oldest = app.publish(&queue, "step", json!("a")).await["id"].clone();
    app.publish(&queue, "step", json!("b")).await;

    let mut back = SocketClient::connect(&app.url).await;
    back.call(
        "subscribe",
        json!({"clientId": client, "queue": queue, "ordered": true}),
    )
    .await;
    let head = back.take("step", 1).await.remove(0);
    assert_eq!(
        (head["id"].clone(), head["attempt"].clone()),
        (oldest.clone(), json!(1))
    );
    let ack = back.call("getAll", json!({"clientId": client})).await;
    assert_eq!(
        ack["count"], 0,
        "ordered messages are not streamed all at once: {ack}"
    );
    let again = back.take("step", 1).await.remove(0);
    assert_eq!(
        (again["id"].clone(), again["attempt"].clone()),
        (oldest, json!(2))
    );
    assert!(back.drain(Duration::from_millis(250)).await.is_empty());
    app.stop().await;
}
