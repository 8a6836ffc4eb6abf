//! The real binary on the Redis engine (`--redis`), against a `redis-server` each test starts
//! on a free loopback port in a temp dir and kills by its pid. Without `redis-server` these
//! tests are skipped unless `QUEUEHUB_REQUIRE_REDIS` is set, as `.ci/run` sets it (and installs
//! it).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, error_code, unique};

// The Redis engine's own throwaway `redis-server`, shared with its unit tests.
#[path = "../../src/store/redis/test_server.rs"]
mod test_server;

use test_server::{DURABLE, RedisServer, VOLATILE, redis_available};

/// The lease of the tests' nodes: short, so that a node restarted after a kill -9 (whose
/// lease nobody released) takes over in about a second.
const LEASE_MS: &str = "1000";

fn start_node(redis: &RedisServer) -> ServerProcess {
    start_node_with_lease(redis, LEASE_MS)
}

fn start_node_with_lease(redis: &RedisServer, lease_ms: &str) -> ServerProcess {
    ServerProcess::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &redis.url(0),
            "--redis-lease-ms",
            lease_ms,
        ],
        &[],
        1,
        None,
    )
}

/// Starts a node in the background: it reports its address only once it is active.
fn start_standby(
    redis: &RedisServer,
    lease_ms: &'static str,
) -> tokio::task::JoinHandle<ServerProcess> {
    let url = redis.url(0);
    tokio::task::spawn_blocking(move || {
        ServerProcess::start_with(
            &[
                "--listen",
                "127.0.0.1:0",
                "--redis",
                &url,
                "--redis-lease-ms",
                lease_ms,
            ],
            &[],
            1,
            None,
        )
    })
}

#[tokio::test]
async fn a_second_node_on_one_redis_stands_by_and_takes_over_when_the_active_one_is_killed() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(DURABLE);
    let queue = unique("orders");
    let active = start_node(&redis);
    active.publish(&queue, "e", json!(1)).await;

    let standby = start_standby(&redis, LEASE_MS);
    // Longer than the lease: the active node renews it, so the standby keeps waiting (and does
    // not serve, so it cannot hand out the sequence numbers the active node hands out).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        !standby.is_finished(),
        "the standby started serving beside the active node"
    );
    active.publish(&queue, "e", json!(2)).await;

    active.kill_9();
    let node = tokio::time::timeout(Duration::from_secs(30), standby)
        .await
        .expect("the standby took over once the lease ran out")
        .expect("the standby started");
    let (_, stats) = node.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 2, "every answered publish: {stats}");
    node.publish(&queue, "e", json!(3)).await;
    let (_, stats) = node.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 3, "{stats}");
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
    let standby = start_standby(&redis, "60000");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!standby.is_finished());
    active.terminate();
    let node = tokio::time::timeout(Duration::from_secs(20), standby)
        .await
        .expect("the standby took over well before the 60 s lease ran out")
        .expect("the standby started");
    assert_eq!(node.get("/healthz").await.0, 200);
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
