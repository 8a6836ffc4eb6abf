//! Catch-up of a large inbox: complete, in order, through socketioxide's bounded buffer.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Http, ServerProcess, SocketClient, data_dir, joined_polling_session, spawn_app, unique,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_ack_each_caught_up_message_as_fast_as_it_arrives() {
    const MESSAGES: usize = 5_000;
    let app = spawn_app().await;
    let (queue, client) = (unique("bulk"), unique("acker"));
    let batch: Vec<_> = (0..MESSAGES)
        .map(|n| json!({"queue": queue, "event": "item", "payload": n}))
        .collect();
    let mut reader = SocketClient::connect(&app.url).await;
    reader.subscribe(&client, &queue).await;
    for chunk in batch.chunks(1000) {
        let (status, _) = app.post("/v1/messages", json!(chunk)).await;
        assert_eq!(status, 201);
    }
    reader.take("item", MESSAGES).await; // the live pushes
    reader.emit("getAll", json!({"clientId": client})).await;
    // Ack every message the moment it arrives, without waiting for answers: each ack is a
    // durable write, and none may be refused or lost.
    let mut last = serde_json::Value::Null;
    for _ in 0..MESSAGES {
        let received = reader.next().await;
        assert_eq!(received.event, "item", "{received:?}");
        last = received.data["id"].clone();
        reader
            .emit("received", json!({"clientId": client, "id": last}))
            .await;
    }
    // A socket's events are applied in order: once an ack sent after them all is answered,
    // every one of them has been applied.
    let answer = reader.ack(&client, &last).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        app.pending(&queue, &client).await,
        0,
        "every ack took effect"
    );
    let errors = reader.drain(std::time::Duration::from_millis(100)).await;
    assert!(
        errors.is_empty(),
        "no ack was refused: {:?}",
        errors.first()
    );
    app.stop().await;
}

/// Subscribes `client` to `queue` with a bare engine.io long-polling session that then never
/// polls again: a socket that reads nothing.
async fn subscribe_and_never_read(url: &str, client: &str, queue: &str) {
    let http = reqwest::Client::new();
    let endpoint = joined_polling_session(&http, url).await;
    let send = |body: String| http.post(&endpoint).body(body).send();
    // After the subscribe, never read.
    let subscribe = json!(["subscribe", {"clientId": client, "queue": queue}]);
    assert!(
        send(format!("42{subscribe}"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

/// Waits until `queue` has `n` subscribers (a subscribe sent without an ack is applied soon
/// after, not before the send returns).
async fn wait_for_subscribers(server: &impl Http, queue: &str, n: usize) {
    for _ in 0..200 {
        let (_, detail) = server.get(&format!("/v1/queues/{queue}")).await;
        if detail["subscribers"]
            .as_array()
            .is_some_and(|s| s.len() == n)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{queue} never had {n} subscribers");
}

/// The real server with a small page cache (8 MiB, so that it is full early and the rest of
/// the server's memory shows) and one subscriber, `slow`, whose socket never reads. Server
/// memory is then the index (metadata only), that cache and each socket's buffer (at most
/// --socket-buffer packets, and 8 times the largest packet in bytes: DECISIONS 73, 83).
async fn server_with_a_never_reading_subscriber()
-> (tempfile::TempDir, ServerProcess, String, String) {
    let (dir, path) = data_dir();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path.to_str().unwrap(),
        "--store-cache-mb",
        "8",
    ];
    let server = ServerProcess::start_with(&args, &[], 1, None);
    let (queue, slow) = (unique("news"), unique("slow"));
    subscribe_and_never_read(&server.url, &slow, &queue).await;
    wait_for_subscribers(&server, &queue, 1).await;
    (dir, server, queue, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_up_anyone_and_loses_nothing() {
    const MESSAGES: usize = 3_000;
    let app = spawn_app().await;
    let queue = unique("news");
    let (slow, fast) = (unique("slow"), unique("fast"));
    subscribe_and_never_read(&app.url, &slow, &queue).await;
    let mut reader = SocketClient::connect(&app.url).await;
    reader.subscribe(&fast, &queue).await;
    wait_for_subscribers(&app, &queue, 2).await;

    let filler = "x".repeat(2_000);
    for start in (0..MESSAGES).step_by(BATCH) {
        let batch: Vec<_> = (start..start + BATCH)
            .map(
                |n| json!({"queue": queue, "event": "item", "payload": {"n": n, "filler": filler}}),
            )
            .collect();
        let (status, _) = app.post("/v1/messages", json!(batch)).await;
        assert_eq!(status, 201);
    }
    // The reading client gets everything live, in order, while the other reads nothing.
    for expected in 0..MESSAGES {
        let received = reader.next().await;
        assert_eq!(received.data["payload"]["n"], expected);
    }
    // Nothing is lost for the client that did not read: it all waits in its inbox.
    assert_eq!(app.pending(&queue, &slow).await, MESSAGES as u64);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

/// Rounds of publishing to the never-reading subscriber: `count` rounds of `messages`
/// messages of `bytes` of filler each, in arrays of `batch`.
struct Rounds {
    count: usize,
    messages: usize,
    batch: usize,
    bytes: usize,
}

impl Rounds {
    /// Publishes the rounds; returns the server's memory after each, measured once the
    /// round has settled: every message stored, memory sampled a few times and the lowest
    /// kept (a busy machine may catch the server mid-commit).
    async fn publish(&self, server: &ServerProcess, queue: &str, slow: &str) -> Vec<u64> {
        let filler = "x".repeat(self.bytes);
        let mut resident = Vec::new();
        for round in 0..self.count {
            for start in (0..self.messages).step_by(self.batch) {
                let batch: Vec<_> = (start..start + self.batch)
                    .map(|n| json!({"queue": queue, "event": "item", "payload": {"round": round, "n": n, "filler": filler}}))
                    .collect();
                let (status, _) = server.post("/v1/messages", json!(batch)).await;
                assert_eq!(status, 201);
            }
            assert_eq!(
                server.pending(queue, slow).await,
                ((round + 1) * self.messages) as u64
            );
            resident.push(server.settled_resident_bytes().await);
        }
        resident
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_large_messages_costs_the_server_bounded_memory() {
    // A socket's buffer is bounded in packets (--socket-buffer, 2048) and in bytes: 8 times
    // the largest packet, about 8.5 MiB by default (DECISIONS 83). With packets alone, 2048
    // messages of 200 KB would have been 400 MB held for one client that does not read.
    const ROUNDS: usize = 12;
    const WARM_UP: usize = 6;
    const PER_ROUND: usize = 50;
    const BYTES_PER_MESSAGE: usize = 200_000;
    let (_dir, server, queue, slow) = server_with_a_never_reading_subscriber().await;

    let rounds = Rounds {
        count: ROUNDS,
        messages: PER_ROUND,
        batch: PER_ROUND,
        bytes: BYTES_PER_MESSAGE,
    };
    let resident = rounds.publish(&server, &queue, &slow).await;
    // The first rounds fill what is bounded: the socket's buffer (about 8.5 MiB), the cache
    // (8 MiB), the payloads kept in memory (8 MiB), the allocator's arenas (here the server
    // grew by up to 20 MiB at the fifth or sixth round, then stayed within 6). The 60 MB
    // published after that may not grow it by more than 16 MiB. (With the buffer bounded in
    // packets only, it kept growing: 72 to 141 MiB over eight rounds.)
    let mib = |b: u64| b / (1024 * 1024);
    let warm = resident[WARM_UP - 1];
    let highest = resident[WARM_UP..].iter().copied().max().unwrap();
    assert!(
        highest.saturating_sub(warm) < 16 * 1024 * 1024,
        "resident MiB after each 10 MB published: {:?}",
        resident.iter().map(|&b| mib(b)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_costs_the_server_bounded_memory() {
    const ROUNDS: usize = 8;
    const WARM_UP: usize = 4;
    const PER_ROUND: usize = 1_000;
    const BYTES_PER_MESSAGE: usize = 10_000;
    let (_dir, server, queue, slow) = server_with_a_never_reading_subscriber().await;

    let before = server.settled_resident_bytes().await;
    let rounds = Rounds {
        count: ROUNDS,
        messages: PER_ROUND,
        batch: 250,
        bytes: BYTES_PER_MESSAGE,
    };
    let resident = rounds.publish(&server, &queue, &slow).await;
    // The first rounds fill what is bounded: the slow socket's buffer (at most 2048 packets
    // and about 8.5 MiB by default: DECISIONS 73, 83), the cache (8 MiB), the allocator's
    // arenas. After that the server keeps only each message's metadata (a few hundred
    // bytes): 40 MB more published may not grow it by more than 16 MiB. (Unbounded, with
    // redb's default 1 GiB cache, it grew by about 17 MiB per 10 MB round here.)
    let mib = |b: u64| b / (1024 * 1024);
    let warm = resident[WARM_UP - 1];
    let bound = 16 * 1024 * 1024;
    let highest = resident[WARM_UP..].iter().copied().max().unwrap();
    assert!(
        highest.saturating_sub(warm) < bound,
        "resident MiB before: {}, after each 10 MB published: {:?}",
        mib(before),
        resident.iter().map(|&b| mib(b)).collect::<Vec<_>>()
    );
    assert_eq!(
        server.pending(&queue, &slow).await,
        (ROUNDS * PER_ROUND) as u64
    );

    // Reading it all back (an 80 MB catch-up, paced page by page) does not grow it either.
    let mut reader = SocketClient::connect(&server.url).await;
    reader.subscribe(&slow, &queue).await;
    // Asked without an ack: the answer would come after the last of 80 MB, and a busy
    // machine may take longer than one wait for that; each message has a wait of its own.
    reader.emit("getAll", json!({"clientId": slow})).await;
    let got = reader.take("item", ROUNDS * PER_ROUND).await;
    assert_eq!(got.last().unwrap()["payload"]["round"], ROUNDS - 1);
    let after_catch_up = server.settled_resident_bytes().await;
    assert!(
        after_catch_up.saturating_sub(warm) < bound,
        "resident MiB after warm-up: {}, after the catch-up: {}",
        mib(warm),
        mib(after_catch_up)
    );
}
