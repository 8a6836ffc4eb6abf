//! The real binary on the Redis engine (`--redis`), against a `redis-server` each test starts
//! on a free loopback port in a temp dir and kills by its pid. Without `redis-server` these
//! tests are skipped unless `QUEUEHUB_REQUIRE_REDIS` is set, as `.ci/run` sets it (and installs
//! it).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, error_code, unique};

// The Redis engine's own throwaway `redis-server`, shared with its unit tests.
#[path = "../../src/store/redis/test_server.rs"]
#[allow(dead_code)] // the unit tests use all of it, these tests part of it
mod test_server;

use test_server::{DURABLE, RedisCluster, RedisServer, VOLATILE, redis_available};

/// The lease of the tests' nodes: short, so that a node restarted after a kill -9 (whose
/// lease nobody released) takes over in about a second.
const LEASE_MS: &str = "1000";

fn start_node(redis: &RedisServer) -> ServerProcess {
    start_node_with_lease(redis, LEASE_MS)
}

fn start_node_with_lease(redis: &RedisServer, lease_ms: &str) -> ServerProcess {
    start_node_with_lease_and(redis, lease_ms, &[])
}

fn start_node_with_lease_and(redis: &RedisServer, lease_ms: &str, more: &[&str]) -> ServerProcess {
    let args = node_args(redis, lease_ms, more);
    ServerProcess::start_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        1,
        None,
    )
}

/// Starts a node beside an active one: it stands by, relaying its clients to the active node.
fn start_standby(redis: &RedisServer, lease_ms: &str, more: &[&str]) -> ServerProcess {
    let args = node_args(redis, lease_ms, more);
    ServerProcess::start_relaying(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The arguments of a node on database 0 of `redis` with a lease of `lease_ms`, and `more`.
fn node_args(redis: &RedisServer, lease_ms: &str, more: &[&str]) -> Vec<String> {
    let url = redis.url(0);
    [
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &url,
        "--redis-lease-ms",
        lease_ms,
    ]
    .iter()
    .chain(more)
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// The line a node logs once it serves itself (holds the lease).
const SERVING: &str = "queuehub listening on";

/// Publishes through `node` until it answers 201 (connections fail or close while no node is
/// active), for up to 30 s; the answer.
async fn publish_once_a_node_serves(
    node: &ServerProcess,
    queue: &str,
    payload: i64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        let sent = http
            .post(format!("{}/v1/queues/{queue}/messages", node.url))
            .json(&json!({"event": "e", "payload": payload}))
            .send()
            .await;
        if let Ok(response) = sent
            && response.status().as_u16() == 201
        {
            return response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no node served within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_standby_relays_to_the_active_node_and_takes_over_when_it_is_killed() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let active = start_node(&redis);
    active.publish(&queue, "e", json!(1)).await;

    let standby = start_standby(&redis, LEASE_MS, &[]);
    // Longer than the lease: the active node renews it, so the standby keeps relaying (it does
    // not serve itself, so it cannot hand out the sequence numbers the active node hands out).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        !standby.log().iter().any(|line| line.contains(SERVING)),
        "the standby started serving beside the active node"
    );
    // Through the standby: the active node's answer and its data.
    standby.publish(&queue, "e", json!(2)).await;
    let (_, stats) = active.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 2, "{stats}");

    active.kill_9();
    publish_once_a_node_serves(&standby, &queue, 3).await;
    assert!(
        standby.logs_within(SERVING, Duration::ZERO),
        "the standby serves itself once the lease ran out"
    );
    let (_, stats) = standby.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 3, "every answered publish: {stats}");
}

#[tokio::test]
async fn a_standby_takes_over_from_a_killed_node_without_waiting_for_its_lease_to_run_out() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    // A lease far longer than the bound below: the standby makes it in time only if it sees
    // that the active node is gone (its address refuses connections, its lease unrenewed).
    // The standby's own lease setting is another: it judges the holder's lease by watching
    // it run down, not by its own length.
    let active = start_node_with_lease(&redis, "60000");
    active.publish(&queue, "e", json!(1)).await;
    let standby = start_standby(&redis, "10000", &[]);
    standby.publish(&queue, "e", json!(2)).await;

    active.kill_9();
    let killed = Instant::now();
    publish_once_a_node_serves(&standby, &queue, 3).await;
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "the standby took {:?} to serve after the kill: it waited for the lease",
        killed.elapsed()
    );
    assert!(
        standby.logs_within("taking over without waiting", Duration::ZERO),
        "the standby says why it took over"
    );
    let (_, stats) = standby.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 3, "every answered publish: {stats}");
}

#[tokio::test]
async fn a_paused_active_node_that_still_listens_keeps_its_lease_until_it_runs_out() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let mut active = start_node_with_lease(&redis, "8000");
    let standby = start_standby(&redis, "8000", &[]);
    let pid = active.pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    // Paused, the node renews nothing, but its listener still takes connections (the kernel
    // queues them): it is not gone, and the standby must not take the lease from it.
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal("-CONT");
    assert!(
        !standby.log().iter().any(|line| line.contains(SERVING)),
        "the standby took the lease of a node that was only paused"
    );
    active.publish(&queue, "e", json!(1)).await;
    let (_, stats) = standby.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(
        stats["waiting"], 1,
        "the standby still relays to it: {stats}"
    );

    // Paused past its lease (renewed at most half a second before the pause, so it runs out
    // 7.5 s after it at the earliest): the standby takes it then, not before, although the
    // paused node still listens.
    let paused = Instant::now();
    signal("-STOP");
    assert!(
        standby.logs_within(SERVING, Duration::from_secs(30)),
        "the standby never took over from a node paused past its lease"
    );
    assert!(
        paused.elapsed() >= Duration::from_secs(6),
        "the standby took the lease {:?} into the pause, before it ran out",
        paused.elapsed()
    );
    // On new connections: the one `standby`'s client keeps from before is still relayed to
    // the paused node (a relayed connection goes on when its relay takes over).
    publish_once_a_node_serves(&standby, &queue, 2).await;
    let stats: serde_json::Value = reqwest::get(format!("{}/v1/queues/{queue}", standby.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["waiting"], 2, "the standby serves the data: {stats}");
    // Resumed, the old node finds its lease taken and stops.
    signal("-CONT");
    let exit = active
        .exits_within(Duration::from_secs(20))
        .expect("the resumed node stopped once it saw that it lost the lease");
    assert!(
        !exit.success(),
        "stopping for a lost lease is a failure: {exit}"
    );
}

#[tokio::test]
async fn a_node_that_stops_hands_its_redis_to_the_standby_at_once() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    // A lease far longer than the bound below: the standby can only make it in time if the
    // stopping node released the lease.
    let active = start_node_with_lease(&redis, "60000");
    let standby = start_standby(&redis, "60000", &[]);
    active.terminate();
    assert!(
        standby.logs_within(SERVING, Duration::from_secs(20)),
        "the standby took over well before the 60 s lease ran out"
    );
    assert_eq!(standby.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_does_not_hold_up_a_node_that_stops() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    // The active node reads a possible relay header before it serves a connection; that read
    // must end when the node stops, not wait for the request timeout (here far longer than
    // the bound below, and than the 10 s shutdown grace).
    let mut node = start_node_with_lease_and(&redis, LEASE_MS, &["--request-timeout-ms", "60000"]);
    assert_eq!(node.get("/healthz").await.0, 200);
    let address = node.url.trim_start_matches("http://").to_owned();
    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // accepted, its header being read
    let began = Instant::now();
    node.signal_term();
    let exit = node.exits_within(Duration::from_secs(8));
    assert!(
        exit.is_some_and(|status| status.success()),
        "the node still ran (or failed) {:?} after SIGTERM: {exit:?}",
        began.elapsed()
    );
    assert!(
        !node.log().iter().any(|line| line.contains("still open")),
        "no connection outlived the shutdown"
    );
    drop(silent);
}

#[tokio::test]
async fn a_message_published_through_one_node_reaches_a_subscriber_connected_through_another() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let (queue, client) = (unique("orders"), unique("acme"));
    let active = start_node(&redis);
    let publisher = start_standby(&redis, LEASE_MS, &[]);
    let listener = start_standby(&redis, LEASE_MS, &[]);

    // A socket.io subscriber over a WebSocket through one standby, a publisher through the
    // other: the message reaches it live, and its ack through the standby empties its inbox.
    let mut socket = SocketClient::connect(&listener.url).await;
    socket.subscribe(&client, &queue).await;
    let id = publisher
        .publish(&queue, "delivered", json!({"n": 1}))
        .await["id"]
        .clone();
    let got = socket.take("delivered", 1).await;
    assert_eq!((&got[0]["id"], &got[0]["payload"]), (&id, &json!({"n": 1})));
    assert_eq!(active.pending(&queue, &client).await, 1);
    socket.ack(&client, &id).await;
    assert_eq!(active.pending(&queue, &client).await, 0);
    // The metrics, read through the other standby, say which node the socket is on.
    let metrics = reqwest::get(format!("{}/metrics", publisher.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let on = format!(
        "queuehub_sockets_connected_by_node{{node=\"{}\"}} 1",
        listener.url.trim_start_matches("http://")
    );
    assert!(metrics.contains(&on), "{on} in:\n{metrics}");

    // What it missed, through a third way in (the active node itself).
    let id = publisher
        .publish(&queue, "delivered", json!({"n": 2}))
        .await["id"]
        .clone();
    socket.disconnect().await;
    let mut direct = SocketClient::connect(&active.url).await;
    direct.subscribe(&client, &queue).await;
    assert_eq!(
        direct.call("getAll", json!({"clientId": client})).await["count"],
        1
    );
    let got = direct.take("delivered", 1).await;
    assert_eq!(got[0]["id"], id);
}

/// A TCP connection to `url` (`http://host:port`) from the loopback address `from`, with one
/// request sent on it; the status line of the answer, or `None` if it was closed unanswered.
async fn request_from(from: [u8; 4], url: &str) -> (tokio::net::TcpStream, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    let mut stream = socket.connect(target).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: queuehub\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer or a close in time")
        .unwrap_or(0);
    let line = String::from_utf8_lossy(&answer[..read]);
    (stream, line.lines().next().map(str::to_owned))
}

#[tokio::test]
async fn relayed_clients_count_under_their_own_address_and_forged_relay_headers_are_refused() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    // Both nodes with the limit, as a deployment sets every node alike: the relay counts
    // nothing, so a client over it gets the active node's 429 through the relay.
    let limit = ["--max-connections-per-ip", "1"];
    let active = start_node_with_lease_and(&redis, LEASE_MS, &limit);
    let standby = start_standby(&redis, LEASE_MS, &limit);

    // Two clients on two loopback addresses, both through the standby (one address to the
    // active node): each has its own place.
    let (_first, answer) = request_from([127, 0, 0, 2], &standby.url).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"));
    let (_second, answer) = request_from([127, 0, 0, 3], &standby.url).await;
    assert_eq!(
        answer.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "counted as the standby's address"
    );
    // A second connection of the first client is over its limit at the active node.
    let (_third, answer) = request_from([127, 0, 0, 2], &standby.url).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 429 Too Many Requests"));

    // A client that sends a relay's header itself, without the secret, is closed unanswered.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = active.url.trim_start_matches("http://");
    let mut forged = tokio::net::TcpStream::connect(target).await.unwrap();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[10, 9, 9, 9, 127, 0, 0, 1, 0, 80, 0, 80]);
    header.extend_from_slice(b"GET /healthz HTTP/1.1\r\nhost: queuehub\r\n\r\n");
    forged.write_all(&header).await.unwrap();
    // The node closes it with the request still unread, which the kernel answers with a
    // reset rather than an end of stream: either is a close, a timeout is not.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), forged.read_to_end(&mut answer))
        .await
        .expect("the node closes the forged connection within 10 s, not keeps it open");
    assert!(
        read.is_ok()
            || matches!(&read, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset),
        "the forged connection ends in a close: {read:?}"
    );
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_node_whose_lease_passed_to_another_writes_nothing_more_and_stops() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let mut node = start_node(&redis);
    node.publish(&queue, "e", json!(1)).await;

    // As if the node had been cut off from Redis past its lease and another had taken over.
    let mut thief = redis::Client::open(redis.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("qh:node")
        .arg("another-node")
        .query_async(&mut thief)
        .await
        .unwrap();

    let (status, body) = node
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": 2}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (503, "store_unavailable"),
        "{body}"
    );
    let exit = node
        .exits_within(Duration::from_secs(20))
        .expect("the node stopped by itself once it saw that it lost the lease");
    assert!(
        !exit.success(),
        "stopping for a lost lease is a failure: {exit}"
    );
    let stored: Vec<String> = redis::cmd("KEYS")
        .arg("qh:m:*")
        .query_async(&mut thief)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        1,
        "only the publish made while the node held the lease"
    );
}

/// Publishes `payload` on `path` as soon as the node answers 201 again, after Redis came back:
/// until then it must answer 503 `store_unavailable`, never anything else, for up to 20 s.
async fn publish_once_redis_answers(node: &ServerProcess, path: &str, payload: serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = node
            .post(path, json!({"event": "e", "payload": payload.clone()}))
            .await;
        if status == 201 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the node never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_message_published_on_redis_survives_kill_9_of_the_node_and_is_delivered() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let (queue, client) = (unique("orders"), unique("acme"));
    let node = start_node(&redis);
    let socket = SocketClient::connect(&node.url).await;
    socket.subscribe(&client, &queue).await;
    socket.disconnect().await;
    let id = node.publish(&queue, "delivered", json!({"n": 1})).await["id"].clone();
    assert!(
        !node
            .log()
            .iter()
            .any(|line| line.contains("no persistence")),
        "a Redis with an append-only file is not warned about"
    );
    node.kill_9();

    let node = start_node(&redis);
    assert_eq!(
        node.inbox_ids(&queue, &client).await,
        vec![id.as_str().unwrap().to_owned()]
    );
    let mut socket = SocketClient::connect(&node.url).await;
    socket.subscribe(&client, &queue).await;
    assert_eq!(
        socket.call("getAll", json!({"clientId": client})).await["count"],
        1
    );
    let got = socket.take("delivered", 1).await;
    assert_eq!((&got[0]["id"], &got[0]["payload"]), (&id, &json!({"n": 1})));
}

#[tokio::test]
async fn while_redis_is_down_publishes_are_refused_503_and_the_node_recovers_by_itself() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let node = start_node(&redis);
    node.publish(&queue, "e", json!(1)).await;

    redis.kill_9();
    let path = format!("/v1/queues/{queue}/messages");
    let (status, body) = node.post(&path, json!({"event": "e", "payload": 2})).await;
    assert_eq!(
        (status, error_code(&body)),
        (503, "store_unavailable"),
        "{body}"
    );

    redis.restart();
    publish_once_redis_answers(&node, &path, json!(3)).await;
    let (_, stats) = node.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(
        stats["waiting"], 2,
        "the answered publishes, not the refused one: {stats}"
    );
}

#[tokio::test]
async fn a_node_keeps_its_redis_through_an_outage_longer_than_its_lease() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let mut node = start_node(&redis);
    node.publish(&queue, "e", json!(1)).await;

    // Down for more than twice the lease: the lease runs out, but nobody took it meanwhile, so
    // the node's index is still what the database holds and it takes the lease back.
    redis.kill_9();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    redis.restart();
    let path = format!("/v1/queues/{queue}/messages");
    publish_once_redis_answers(&node, &path, json!(2)).await;
    assert!(
        node.exits_within(Duration::from_millis(1_500)).is_none(),
        "the node stopped although no other node took its database"
    );
    let (_, stats) = node.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 2, "{stats}");
}

#[tokio::test]
async fn a_standby_rides_out_a_redis_restart_and_relays_on() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    // A lease longer than the outage: the active node keeps it, the standby must just wait.
    let active = start_node_with_lease(&redis, "10000");
    let mut standby = start_standby(&redis, "10000", &[]);
    standby.publish(&queue, "e", json!(1)).await;

    redis.kill_9();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        standby.exits_within(Duration::ZERO).is_none(),
        "the standby stopped when Redis went away"
    );
    redis.restart();
    let path = format!("/v1/queues/{queue}/messages");
    publish_once_redis_answers(&standby, &path, json!(2)).await;
    let (_, stats) = active.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 2, "{stats}");
    assert!(standby.exits_within(Duration::ZERO).is_none());
}

#[tokio::test]
async fn on_a_redis_cluster_a_node_serves_and_a_standby_takes_over_after_kill_9() {
    if !redis_available() {
        return;
    }
    let cluster = RedisCluster::start(DURABLE);
    let seeds = cluster.urls().join(",");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--redis-cluster",
        &seeds,
        "--redis-lease-ms",
        LEASE_MS,
    ];
    let (queue, client) = (unique("orders"), unique("acme"));
    let active = ServerProcess::start_with(&args, &[], 1, None);
    let mut socket = SocketClient::connect(&active.url).await;
    socket.subscribe(&client, &queue).await;
    let id = active.publish(&queue, "delivered", json!(1)).await["id"].clone();
    assert_eq!(socket.take("delivered", 1).await[0]["id"], id);

    let standby = ServerProcess::start_relaying(&args);
    standby.publish(&queue, "delivered", json!(2)).await;
    active.kill_9();
    publish_once_a_node_serves(&standby, &queue, 3).await;
    assert_eq!(
        standby.pending(&queue, &client).await,
        3,
        "every answered publish, in the subscriber's inbox"
    );
}

/// A work-mode worker of `client` on `queue` (prefetch 1) connected through `node`.
async fn worker(node: &ServerProcess, client: &str, queue: &str) -> SocketClient {
    let socket = SocketClient::connect(&node.url).await;
    let request = json!({"clientId": client, "queue": queue, "mode": "work"});
    let ack = socket.call("subscribe", request).await;
    assert_eq!(ack["ok"], true, "{ack}");
    socket
}

/// Lets `workers` ack every job they get until `done` holds every id of `wanted`, for up to
/// 30 s; fails on a job delivered again after it was acked.
async fn work_off(
    workers: &mut [SocketClient],
    client: &str,
    wanted: &std::collections::HashSet<String>,
    done: &mut std::collections::HashSet<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wanted.is_subset(done) {
        assert!(
            Instant::now() < deadline,
            "jobs never worked off: {:?}",
            wanted.difference(done).collect::<Vec<_>>()
        );
        for socket in workers.iter_mut() {
            // Every push here is a job of the queue (whatever event it was published as).
            for job in socket.drain(Duration::from_millis(50)).await {
                let id = job.data["id"].as_str().unwrap().to_owned();
                assert!(done.insert(id.clone()), "acked, then delivered again: {id}");
                let answer = socket.ack(client, &job.data["id"]).await;
                assert_eq!(answer["removed"], true, "{answer}");
            }
        }
    }
}

#[tokio::test]
async fn nodes_killed_under_work_lose_no_answered_job_and_in_flight_jobs_go_to_other_workers() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let (queue, client) = (unique("jobs"), unique("builders"));
    let active = start_node(&redis);
    let standbys = [
        start_standby(&redis, LEASE_MS, &[]),
        start_standby(&redis, LEASE_MS, &[]),
    ];
    // A worker through each node; the one through the second standby holds its first job and
    // never acks it.
    let mut workers = vec![
        worker(&active, &client, &queue).await,
        worker(&standbys[0], &client, &queue).await,
    ];
    let mut holder = worker(&standbys[1], &client, &queue).await;
    let mut wanted = std::collections::HashSet::new();
    for n in 0..30 {
        let through = &standbys[n % 2];
        let id = through.publish(&queue, "job", json!(n)).await["id"].clone();
        wanted.insert(id.as_str().unwrap().to_owned());
    }
    let held = holder.take("job", 1).await[0]["id"].clone();

    // kill -9 of the node the holder came through: its job goes to the other workers.
    let [first, second] = standbys;
    second.kill_9();
    drop(holder);
    let mut done = std::collections::HashSet::new();
    work_off(&mut workers, &client, &wanted, &mut done).await;
    assert!(done.contains(held.as_str().unwrap()));

    // kill -9 of the active node with a job in flight: the standby takes over, and a worker
    // that reconnects through it gets what was not acked, with what is published meanwhile.
    let unacked = first.publish(&queue, "job", json!("in flight")).await["id"].clone();
    wanted.insert(unacked.as_str().unwrap().to_owned());
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let mut got = Vec::new();
        for socket in &mut workers {
            got.extend(socket.drain(Duration::from_millis(50)).await);
        }
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "no worker got the job in 30 s");
    };
    let ids: Vec<_> = delivered.iter().map(|job| &job.data["id"]).collect();
    assert_eq!(ids, [&unacked], "one worker holds the job, not acked");
    active.kill_9();
    drop(workers);
    let late = publish_once_a_node_serves(&first, &queue, 31).await["id"].clone();
    wanted.insert(late.as_str().unwrap().to_owned());
    let mut workers = vec![worker(&first, &client, &queue).await];
    work_off(&mut workers, &client, &wanted, &mut done).await;
    assert_eq!(first.pending(&queue, &client).await, 0);
}

#[tokio::test]
async fn a_node_on_a_redis_without_persistence_warns_at_start() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(VOLATILE);
    let node = start_node(&redis);
    assert!(
        node.log()
            .iter()
            .any(|line| line.contains("WARN") && line.contains("no persistence")),
        "log: {:?}",
        node.log()
    );
}
