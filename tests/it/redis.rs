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

fn start_node(redis: &RedisServer) -> ServerProcess {
    ServerProcess::start_with(
        &["--listen", "127.0.0.1:0", "--redis", &redis.url(0)],
        &[],
        1,
        None,
    )
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = node.post(&path, json!({"event": "e", "payload": 3})).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the node never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stats) = node.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(
        stats["waiting"], 2,
        "the answered publishes, not the refused one: {stats}"
    );
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
