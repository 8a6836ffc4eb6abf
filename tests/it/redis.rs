//! The real binary on the Redis engine (`--redis`), against a `redis-server` each test starts
//! on a free loopback port in a temp dir and kills by its pid. Without `redis-server` these
//! tests are skipped unless `QUEUEHUB_REQUIRE_REDIS` is set, as `.ci/run` sets it (and installs
//! it).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, error_code, unique};

/// A `redis-server` process of one test.
struct RedisServer {
    child: Child,
    port: u16,
    settings: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with `settings` in a fresh temp dir; returns once it accepts
    /// connections.
    fn start(settings: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = spawn(dir.path(), port, settings);
        let server = Self {
            child,
            port,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9 (by pid); the port is then closed.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Starts it again with the same settings, port and directory.
    fn restart(&mut self) {
        let settings: Vec<&str> = self.settings.iter().map(String::as_str).collect();
        self.child = spawn(self.dir.path(), self.port, &settings);
        self.wait_until_listening();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, port: u16, settings: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(settings)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start redis-server ({err}): these tests need it on the PATH \
                 (`apt-get install redis-server`; .ci/run installs it)"
            )
        })
}

/// Every answered write is fsynced to the append-only file.
const DURABLE: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

fn start_node(redis: &RedisServer) -> ServerProcess {
    ServerProcess::start_with(
        &["--listen", "127.0.0.1:0", "--redis", &redis.url()],
        &[],
        1,
        None,
    )
}

/// Whether `redis-server` can run here. Without it these tests say so and pass, so that
/// `cargo test` works on a machine with only the Rust toolchain; `.ci/run` installs it and
/// sets `QUEUEHUB_REQUIRE_REDIS`, which makes its absence a failure.
fn redis_available() -> bool {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("QUEUEHUB_REQUIRE_REDIS").is_none(),
            "redis-server is not installed and QUEUEHUB_REQUIRE_REDIS is set (`apt-get install redis-server`)"
        );
        eprintln!(
            "skipped: redis-server is not installed (`apt-get install redis-server` runs these tests)"
        );
    }
    found
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
    let redis = RedisServer::start(&["--save", "", "--appendonly", "no"]);
    let node = start_node(&redis);
    assert!(
        node.log()
            .iter()
            .any(|line| line.contains("WARN") && line.contains("no persistence")),
        "log: {:?}",
        node.log()
    );
}
