//! Live push under load (docs/SPEC.md, 2.4): a subscriber's socket whose buffer fills is paused, not
//! forgotten. Everything published while it is connected reaches it live, in order, as soon
//! as it reads again, without a `getAll`, and a slow socket delays nobody else.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, RawSocket, SocketClient, TestApp, next_text, raw_socket, raw_socket_with_small_window,
    raw_v3_socket_with_small_window, spawn_app, spawn_app_with, unique,
};

/// The receive buffer of the bare WebSockets that stop reading: small, so that the server's
/// buffer for them (1024 packets) fills after a few megabytes (the server's send buffer, up to
/// 4 MiB, and this window) rather than after the receiver's kernel has absorbed up to 32 MiB.
const WINDOW: u32 = 4096;

/// The server with a socket buffer of 1024 packets (half the default), the size these
/// tests' messages were chosen to overflow: a few megabytes fill it.
async fn spawn_app_with_small_buffer() -> TestApp {
    spawn_app_with(|config| config.socket_buffer = 1024).await
}

/// Publishes `count` messages `{n, filler}` to `queue` as arrays of `batch`.
async fn publish_numbered(app: &TestApp, queue: &str, count: usize, batch: usize, filler: usize) {
    let filler = "x".repeat(filler);
    for start in (0..count).step_by(batch) {
        let messages: Vec<Value> = (start..(start + batch).min(count))
            .map(
                |n| json!({"queue": queue, "event": "item", "payload": {"n": n, "filler": filler}}),
            )
            .collect();
        let (status, body) = app.post("/v1/messages", json!(messages)).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// A subscriber that acks every message the moment it arrives and checks that they come in
/// order; returns once it has all `count`, with every ack applied. With `pause`, it stops
/// reading for that long after every 1 000 messages, as a client that does some work would.
fn acking_subscriber(
    mut socket: SocketClient,
    client: String,
    count: usize,
    pause: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = Value::Null;
        for expected in 0..count {
            if let Some(pause) = pause.filter(|_| expected % 1_000 == 999) {
                tokio::time::sleep(pause).await;
            }
            let received = socket.next().await;
            assert_eq!(received.event, "item", "{client}: {:?}", received.data);
            assert_eq!(received.data["payload"]["n"], expected, "{client} in order");
            last = received.data["id"].clone();
            socket
                .emit("received", json!({"clientId": client, "id": last}))
                .await;
        }
        // Events of one socket are applied in order: once this ack is answered, all are.
        let answer = socket.ack(&client, &last).await;
        assert_eq!(answer["ok"], true, "{answer}");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_published_faster_than_subscribers_read_reaches_every_subscriber_live() {
    // The scenario at a size CI affords: several subscribers that ack every message
    // as it arrives, messages published as arrays of 100. Each subscriber (a bare WebSocket,
    // so that it really stops reading) pauses after 1 000 messages until the publisher is
    // done, as a client busy with something else would, so its buffer (1024 packets) fills.
    const SUBSCRIBERS: usize = 4;
    const MESSAGES: usize = 5_000;
    let app = spawn_app_with_small_buffer().await;
    let queue = unique("load");
    let mut subscribers = Vec::new();
    let mut clients = Vec::new();
    let (published, done) = tokio::sync::watch::channel(false);
    for i in 0..SUBSCRIBERS {
        let client = unique(&format!("sub{i}"));
        let mut ws = raw_subscriber(&app.url, &client, &queue).await;
        clients.push(client.clone());
        let mut done = done.clone();
        subscribers.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < MESSAGES {
                let event = next_event(&mut ws).await;
                assert_eq!(event[1]["payload"]["n"], seen, "{client} in order: {event}");
                let ack = json!(["received", {"clientId": client, "id": event[1]["id"]}]);
                ws.send(Message::text(format!("42{ack}"))).await.unwrap();
                seen += 1;
                if seen == 1_000 {
                    done.wait_for(|done| *done).await.unwrap();
                }
            }
            ws
        }));
    }
    // A pause leaves more waiting than the socket's buffer and its small window hold.
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    published.send_replace(true);
    let mut sockets = Vec::new();
    for subscriber in subscribers {
        sockets.push(
            subscriber
                .await
                .expect("every message arrived live, in order"),
        );
    }
    for client in &clients {
        let mut pending = u64::MAX;
        for _ in 0..100 {
            pending = app.pending(&queue, client).await;
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pending, 0, "{client} acked all");
    }
    app.stop().await;
}

/// Subscribes a bare WebSocket as `client` to `queue` and waits for the subscribe's ack.
async fn raw_subscriber(url: &str, client: &str, queue: &str) -> RawSocket {
    subscribed(
        raw_socket_with_small_window(url, WINDOW).await,
        client,
        queue,
    )
    .await
}

/// `ws` subscribed as `client` to `queue`, once the subscribe's ack came.
async fn subscribed(mut ws: RawSocket, client: &str, queue: &str) -> RawSocket {
    let subscribe = json!(["subscribe", {"clientId": client, "queue": queue}]);
    ws.send(Message::text(format!("421{subscribe}")))
        .await
        .unwrap();
    let ack = next_text(&mut ws).await.expect("subscribe answered");
    assert!(
        ack.starts_with("431") && ack.contains("\"ok\":true"),
        "{ack}"
    );
    ws
}

/// The next event a bare WebSocket receives, as `[name, argument]` (other packets skipped).
async fn next_event(ws: &mut RawSocket) -> Value {
    loop {
        let text = next_text(ws).await.expect("the server keeps pushing");
        if let Some(event) = text.strip_prefix("42") {
            return serde_json::from_str(event).expect("an event packet");
        }
    }
}

/// Reads events from a bare WebSocket until `count` `item`s came; returns their `n`s.
async fn read_items(ws: &mut RawSocket, count: usize) -> Vec<u64> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let event = next_event(ws).await;
        assert_eq!(event[0], "item", "{event}");
        seen.push(event[1]["payload"]["n"].as_u64().expect("n"));
    }
    seen
}

/// `seen` is `0..count`: every message once, in publish order.
fn assert_each_once_in_order(seen: &[u64], count: usize) {
    let expected: Vec<u64> = (0..count as u64).collect();
    assert!(seen == expected, "in order, each once: {:?}", &seen[..20]);
}

/// The socket is still open and pushed to: a message published now arrives live.
async fn still_pushes_live(app: &TestApp, ws: &mut RawSocket, queue: &str) {
    publish_numbered(app, queue, 1, 1, 10).await;
    assert_eq!(read_items(ws, 1).await, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_gets_everything_in_order_once_it_reads_again() {
    // 5 000 messages of 2 KB: 10 MB, more than its small window, the server's send buffer (up
    // to 4 MiB) and the socket's 1024-packet buffer together hold, so its buffer fills while
    // it does not read.
    const MESSAGES: usize = 5_000;
    let app = spawn_app_with_small_buffer().await;
    let (queue, slow) = (unique("news"), unique("slow"));
    let mut ws = raw_subscriber(&app.url, &slow, &queue).await;
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    // Reading again, it gets every message live, once, in publish order: no getAll sent.
    let seen = read_items(&mut ws, MESSAGES).await;
    assert_each_once_in_order(&seen, MESSAGES);
    let more = tokio::time::timeout(Duration::from_millis(500), next_text(&mut ws)).await;
    assert!(more.is_err(), "nothing more was pushed: {more:?}");
    // Nothing was acked: everything is still in its inbox too.
    assert_eq!(app.pending(&queue, &slow).await, MESSAGES as u64);
    app.stop().await;
}

/// How often the server of the next test pings: longer than publishing its messages takes
/// (well under a second here; a debug build on a busy machine may take several times that),
/// so that a ping falls due while the stopped subscriber's buffer is full.
const PING_INTERVAL: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_while_a_ping_falls_due_keeps_its_socket() {
    // engineioxide's heartbeat used to close a socket whose buffer was full when its ping fell
    // due (DECISIONS 81): the subscriber lost its socket, and what it had not read yet came
    // only after a reconnect and a getAll. Here the ping waits for room, and the client, once
    // it reads again, gets everything live and answers the ping in time.
    const MESSAGES: usize = 5_000;
    let app = spawn_app_with(|config| {
        config.socket_buffer = 1024;
        config.ping_interval = PING_INTERVAL;
        config.ping_timeout = Duration::from_secs(20);
    })
    .await;
    let (queue, slow) = (unique("news"), unique("slow"));
    let subscribed = tokio::time::Instant::now();
    // It answers the first ping (sent as the socket opens) while joining, then stops reading.
    let mut ws = raw_subscriber(&app.url, &slow, &queue).await;
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    // Its buffer is full (5 000 messages of 2 KB, as in the test above); the second ping falls
    // due meanwhile.
    tokio::time::sleep_until(subscribed + PING_INTERVAL + Duration::from_secs(1)).await;
    let seen = read_items(&mut ws, MESSAGES).await;
    assert_each_once_in_order(&seen, MESSAGES);
    // The ping that waited behind them was answered on the way (`next_text`), and the socket
    // is still open: the next message comes live too.
    still_pushes_live(&app, &mut ws, &queue).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_io_2_client_that_pings_while_its_buffer_is_full_keeps_its_socket() {
    // With engine.io v3 (socket.io 2.x clients) the client pings and the server answers; the
    // answer went into the full buffer with `try_send`, and the socket was closed when it did
    // not fit (DECISIONS 81). Now the pong waits for room: it comes once the client has read
    // what was queued before it, and the socket stays open.
    const MESSAGES: usize = 5_000;
    let app = spawn_app_with_small_buffer().await;
    let (queue, slow) = (unique("news"), unique("slow"));
    let v3 = raw_v3_socket_with_small_window(&app.url, WINDOW).await;
    let mut ws = subscribed(v3, &slow, &queue).await;
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    // Its buffer is full (as in the tests above) when its ping arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(Message::text("2")).await.unwrap();
    let (mut seen, mut ponged) = (Vec::with_capacity(MESSAGES), false);
    while seen.len() < MESSAGES {
        let text = next_text(&mut ws).await.expect("the socket stays open");
        if text == "3" {
            ponged = true;
        } else if let Some(event) = text.strip_prefix("42") {
            let event: Value = serde_json::from_str(event).expect("an event packet");
            seen.push(event[1]["payload"]["n"].as_u64().expect("n"));
        }
    }
    assert_each_once_in_order(&seen, MESSAGES);
    if !ponged {
        let text = next_text(&mut ws).await.expect("the socket stays open");
        assert_eq!(text, "3", "the pong, after what was queued before it");
    }
    still_pushes_live(&app, &mut ws, &queue).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_subscribers_get_everything_while_one_beside_them_is_stalled() {
    const MESSAGES: usize = 5_000;
    const FAST: usize = 2;
    let app = spawn_app_with_small_buffer().await;
    let (queue, slow) = (unique("news"), unique("stalled"));
    let mut ws = raw_subscriber(&app.url, &slow, &queue).await;
    let mut sockets = Vec::new();
    for i in 0..FAST {
        let client = unique(&format!("fast{i}"));
        let socket = SocketClient::connect(&app.url).await;
        socket.subscribe(&client, &queue).await;
        sockets.push((socket, client));
    }
    let fast: Vec<_> = sockets
        .into_iter()
        .map(|(socket, client)| acking_subscriber(socket, client, MESSAGES, None))
        .collect();
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    // The fast ones finish while the stalled one has not read a byte.
    for subscriber in fast {
        subscriber.await.expect("fast subscribers got everything");
    }
    assert_eq!(app.pending(&queue, &slow).await, MESSAGES as u64);
    // And the stalled one, once it reads, gets it all too.
    let seen = read_items(&mut ws, MESSAGES).await;
    assert_eq!(seen.last(), Some(&(MESSAGES as u64 - 1)));
    app.stop().await;
}

/// Sends a socket.io event with an ack id over a bare WebSocket and waits for its answer,
/// reading past (and returning) whatever events arrive first.
async fn raw_call(ws: &mut RawSocket, id: u32, event: &str, data: Value) -> (Value, Vec<Value>) {
    let packet = json!([event, data]);
    ws.send(Message::text(format!("42{id}{packet}")))
        .await
        .unwrap();
    let mut before = Vec::new();
    loop {
        let text = next_text(ws).await.expect("answered");
        if let Some(answer) = text.strip_prefix(&format!("43{id}")) {
            let answer: Value = serde_json::from_str(answer).unwrap();
            return (answer[0].clone(), before);
        }
        if let Some(event) = text.strip_prefix("42") {
            before.push(serde_json::from_str(event).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_keeps_its_jobs_and_gets_them_once_it_reads() {
    // A work-mode worker whose socket also follows a busy queue stops reading: the busy
    // queue fills its buffer, then jobs arrive. Its jobs wait for it (they are not handed
    // back and assigned again and again, which counted attempts until they went to the
    // dead-letter queue), and once it reads it gets every job once.
    // 5 000 messages of 2 KB: 10 MB, more than the socket's 1024 packets, the server's send
    // buffer (up to 4 MiB) and the reader's small window hold, so the buffer is surely full
    // when the jobs come.
    const BUSY: usize = 5_000;
    const JOBS: usize = 500;
    let app = spawn_app_with_small_buffer().await;
    let (busy, queue, client) = (unique("busy"), unique("jobs"), unique("workers"));
    let mut ws = raw_socket_with_small_window(&app.url, WINDOW).await;
    let follow = json!({"clientId": unique("reader"), "queue": busy});
    let (answer, _) = raw_call(&mut ws, 1, "subscribe", follow).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let work = json!({"clientId": client, "queue": queue, "mode": "work",
        "prefetch": 1000, "maxDeliveries": 2, "ackTimeoutMs": 600000});
    let (answer, _) = raw_call(&mut ws, 2, "subscribe", work).await;
    assert_eq!(answer["ok"], true, "{answer}");
    publish_numbered(&app, &busy, BUSY, 100, 2_000).await;
    let jobs: Vec<Value> = (0..JOBS)
        .map(|n| json!({"queue": queue, "event": "job", "payload": {"n": n}}))
        .collect();
    assert_eq!(app.post("/v1/messages", json!(jobs)).await.0, 201);

    let (mut items, mut seen, mut ids) = (0, std::collections::BTreeSet::new(), Vec::new());
    while items < BUSY || seen.len() < JOBS {
        let event = next_event(&mut ws).await;
        if event[0] == "item" {
            items += 1;
            continue;
        }
        assert_eq!(event[1]["attempt"], 1, "each job sent once: {event}");
        assert!(seen.insert(event[1]["payload"]["n"].as_u64().unwrap()));
        ids.push(event[1]["id"].clone());
    }
    let (answer, _) = raw_call(
        &mut ws,
        3,
        "received",
        json!({"clientId": client, "ids": ids}),
    )
    .await;
    assert_eq!(answer["removed"], JOBS, "{answer}");
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["deadLettered"], 0, "{stats}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_head_that_finds_the_buffer_full_arrives_once_the_socket_reads() {
    // One socket subscribed to a busy queue (which fills its buffer) and to an ordered one:
    // the ordered head, pushed while the buffer is full, waits for the socket instead of
    // being lost until the next getAll.
    const BUSY: usize = 5_000;
    let app = spawn_app_with_small_buffer().await;
    let (busy, steps, client) = (unique("busy"), unique("steps"), unique("c"));
    let mut ws = raw_socket_with_small_window(&app.url, WINDOW).await;
    let (answer, _) = raw_call(
        &mut ws,
        1,
        "subscribe",
        json!({"clientId": client, "queue": busy}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let ordered = json!({"clientId": client, "queue": steps, "ordered": true});
    let (answer, _) = raw_call(&mut ws, 2, "subscribe", ordered).await;
    assert_eq!(answer["ok"], true, "{answer}");
    publish_numbered(&app, &busy, BUSY, 100, 2_000).await;
    app.publish(&steps, "step", json!("first")).await;

    let (mut items, mut step) = (0, None);
    while items < BUSY || step.is_none() {
        let event = next_event(&mut ws).await;
        match event[0].as_str() {
            Some("item") => items += 1,
            Some("step") => step = Some(event[1]["payload"].clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(step, Some(json!("first")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_that_comes_due_while_its_subscriber_lags_arrives_once() {
    // The delayed message is published first (so its sequence number is lower than everything
    // behind it) and comes due while the subscriber is not reading and its live push lags
    // far past that number: it must still reach the subscriber, once, without a getAll.
    const MESSAGES: usize = 5_000;
    let app = spawn_app_with_small_buffer().await;
    let (queue, slow) = (unique("news"), unique("slow"));
    let mut ws = raw_subscriber(&app.url, &slow, &queue).await;
    let body = json!({"event": "reminder", "payload": "later", "delayMs": 1500});
    let (status, _) = app
        .post(&format!("/v1/queues/{queue}/messages"), body)
        .await;
    assert_eq!(status, 201);
    publish_numbered(&app, &queue, MESSAGES, 100, 2_000).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await; // due, while nothing is read

    let (mut items, mut reminders) = (0, 0);
    while items < MESSAGES || reminders == 0 {
        let event = next_event(&mut ws).await;
        match event[0].as_str() {
            Some("item") => items += 1,
            Some("reminder") => reminders += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let more = tokio::time::timeout(Duration::from_millis(500), next_text(&mut ws)).await;
    assert!(
        more.is_err(),
        "nothing more (the reminder came once): {more:?}"
    );
    assert_eq!(reminders, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_is_answered_after_the_last_message_it_sends() {
    // README, `getAll`: its answer `{ok, count}` comes after the last message, so that a
    // client may take the answer as "caught up". 3 000 missed messages: several pages, and
    // more than a socket's buffer holds, so the catch-up paces itself meanwhile.
    const MESSAGES: usize = 3_000;
    let app = spawn_app().await;
    let (queue, client) = (unique("missed"), unique("away"));
    let mut away = subscribed(raw_socket(&app.url).await, &client, &queue).await;
    away.close(None).await.unwrap();
    publish_numbered(&app, &queue, MESSAGES, 500, 10).await;
    let mut ws = subscribed(raw_socket(&app.url).await, &client, &queue).await;
    let get_all = json!({"clientId": client, "queue": queue});
    let (answer, before) = raw_call(&mut ws, 2, "getAll", get_all).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["count"], MESSAGES, "{answer}");
    let seen: Vec<u64> = before
        .iter()
        .map(|event| event[1]["payload"]["n"].as_u64().expect("an item"))
        .collect();
    assert_each_once_in_order(&seen, MESSAGES);
    app.stop().await;
}
