//! The Redis engine against a real `redis-server`, started by each test on a free loopback
//! port in a temp dir and killed (by its pid) when the test ends. Without `redis-server` these
//! tests are skipped unless `QUEUEHUB_REQUIRE_REDIS` is set, as `.ci/run` sets it (and installs
//! Debian's `redis-server` package).

use std::time::{Duration, Instant};

use super::test_server::{DURABLE, RedisServer, VOLATILE, redis_available};
use super::*;
use crate::names::{EventName, MessageId};
use crate::store::StoredMessage;
use crate::store::conformance;

async fn connect(url: &str) -> RedisStore {
    // A short lease: a store connected again to a database after its holder went away without
    // releasing it (a killed Redis, a dropped store) waits for it at most this long.
    RedisStore::connect(url, Duration::from_millis(300))
        .await
        .expect("connects to Redis")
}

/// [`connect`] to the Redis Cluster of `seeds`.
async fn connect_cluster(seeds: &[String]) -> RedisStore {
    let active = tokio::sync::watch::channel(None).0;
    let refusing = tokio::sync::watch::channel(None).1;
    let lease = Duration::from_millis(300);
    RedisStore::connect_standing_by(Target::Cluster(seeds), lease, &active, &refusing)
        .await
        .expect("connects to the cluster")
}

#[tokio::test]
async fn redis_store_meets_the_contract() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(VOLATILE);
    conformance::check(&connect(&server.url(0)).await).await;
}

#[tokio::test]
async fn the_redis_store_agrees_with_the_memory_store_on_random_ops() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(VOLATILE);
    // Each seed in a database of its own (`/1` … `/8`): a fresh store every time.
    for seed in 1..=8 {
        let store = connect(&server.url(seed as u8)).await;
        conformance::agrees_with_memory(&store, seed, 60).await;
    }
}

#[tokio::test]
async fn databases_of_one_redis_are_separate_stores() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(VOLATILE);
    let (first, second) = (connect(&server.url(1)).await, connect(&server.url(2)).await);
    first
        .commit(vec![Op::PutMessage(message(7))])
        .await
        .unwrap();
    assert_eq!(first.load().await.unwrap().messages.len(), 1);
    assert_eq!(second.load().await.unwrap(), Snapshot::default());
}

#[tokio::test]
async fn a_redis_without_persistence_is_recognized() {
    if !redis_available() {
        return;
    }
    let volatile = RedisServer::start(VOLATILE);
    let persistence = connect(&volatile.url(0)).await.persistence().await.unwrap();
    assert!(!persistence.survives_restart(), "{persistence:?}");

    let durable = RedisServer::start(DURABLE);
    let persistence = connect(&durable.url(0)).await.persistence().await.unwrap();
    assert!(persistence.survives_restart(), "{persistence:?}");
    assert_eq!(persistence.append_fsync, "always");
}

#[tokio::test]
async fn a_committed_batch_survives_kill_9_of_redis_with_appendfsync_always() {
    if !redis_available() {
        return;
    }
    let mut server = RedisServer::start(DURABLE);
    let store = connect(&server.url(0)).await;
    store
        .commit(vec![Op::PutMessage(message(1)), Op::PutMessage(message(2))])
        .await
        .unwrap();

    server.kill_9();
    server.restart();

    // A store of its own, as a restarted node would have: the first one goes away (its lease,
    // never released, runs out).
    drop(store);
    let store = connect(&server.url(0)).await;
    let snapshot = store.load().await.unwrap();
    assert_eq!(
        snapshot.messages,
        vec![message(1).meta, message(2).meta],
        "what Redis answered before kill -9 is still there"
    );
    assert_eq!(
        store.payloads(vec![2]).await.unwrap(),
        vec![Some("{\"n\":2}".to_owned())]
    );
}

#[tokio::test]
async fn the_store_reconnects_by_itself_after_redis_restarts() {
    if !redis_available() {
        return;
    }
    let mut server = RedisServer::start(DURABLE);
    let store = connect(&server.url(0)).await;
    store
        .commit(vec![Op::PutMessage(message(1))])
        .await
        .unwrap();

    server.kill_9();
    server.restart();

    // The call that meets the dropped connection may fail; a later one reconnects.
    let deadline = Instant::now() + Duration::from_secs(10);
    let snapshot = loop {
        match store.load().await {
            Ok(snapshot) => break snapshot,
            Err(err) => assert!(Instant::now() < deadline, "never reconnected: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(snapshot.messages, vec![message(1).meta]);
    store
        .commit(vec![Op::PutMessage(message(2))])
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap().messages.len(), 2);
}

#[tokio::test]
async fn connecting_to_no_redis_is_an_error() {
    // A port nobody listens on right now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    assert!(
        RedisStore::connect(&url, Duration::from_millis(300))
            .await
            .is_err()
    );
}

#[test]
fn every_setting_short_of_appendfsync_always_is_named_as_a_risk() {
    let persistence = |append_only, append_fsync: &str, save: &str| Persistence {
        append_only,
        append_fsync: append_fsync.into(),
        save: save.into(),
    };
    assert_eq!(persistence(true, "always", "").risk(), None);
    let risks = [
        (persistence(false, "always", ""), "no persistence"),
        (persistence(false, "everysec", "3600 1"), "snapshots"),
        (persistence(true, "everysec", ""), "last second"),
        (persistence(true, "no", "3600 1"), "appendfsync no"),
    ];
    for (settings, words) in risks {
        let risk = settings.risk().unwrap_or_default();
        assert!(risk.contains(words), "{settings:?}: {risk}");
    }
}

#[test]
fn only_redis_urls_are_accepted() {
    assert!(check_url("redis://127.0.0.1:6379/3").is_ok());
    assert!(check_url("redis://localhost").is_ok());
    assert!(check_url("http://localhost:6379").is_err());
    assert!(
        check_url("rediss://localhost:6379").is_err(),
        "no TLS in this build"
    );
    assert!(check_url("not a url").is_err());
}

fn message(seq: u64) -> StoredMessage {
    StoredMessage {
        meta: MessageMeta {
            seq,
            id: MessageId::try_from(format!("m{seq}")).unwrap(),
            queue: QueueName::try_from("orders".to_owned()).unwrap(),
            event: EventName::try_from("delivered".to_owned()).unwrap(),
            published_at_ms: 1_000 + seq,
            source: "http".into(),
            deliver_at_ms: None,
            expires_at_ms: None,
            job: None,
        },
        payload: format!("{{\"n\":{seq}}}"),
    }
}

#[tokio::test]
async fn on_a_redis_cluster_the_store_meets_the_contract_and_survives_kill_9_of_every_node() {
    use super::test_server::RedisCluster;
    if !redis_available() {
        return;
    }
    let mut cluster = RedisCluster::start(DURABLE);
    let seeds = cluster.urls();
    let store = connect_cluster(&seeds).await;
    conformance::check(&store).await;

    store
        .commit(vec![Op::PutMessage(message(987_654))])
        .await
        .unwrap();
    drop(store);
    // Under the cluster's one hash tag, so in the lease's slot.
    let client = redis::cluster::ClusterClient::new(seeds.clone()).unwrap();
    let mut direct = client.get_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("{qh}:m:987654")
        .query_async(&mut direct)
        .await
        .unwrap();
    assert!(exists);
    drop(direct);
    cluster.kill_9_and_restart();
    let store = connect_cluster(&seeds).await;
    let messages = store.load().await.unwrap().messages;
    assert!(
        messages.iter().any(|m| m.seq == 987_654),
        "the committed message is back: {messages:?}"
    );
}
