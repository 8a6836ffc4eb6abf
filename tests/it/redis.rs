//! The real binary on the Redis engine (`--redis`), against a `redis-server` each test starts
//! on a free loopback port in a temp dir and kills by its pid. Without `redis-server` these
//! tests fail: `.ci/run` installs it.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, unique};

/// A `redis-server` process of one test.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
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

fn start_node(redis: &RedisServer) -> ServerProcess {
    ServerProcess::start_with(
        &["--listen", "127.0.0.1:0", "--redis", &redis.url()],
        &[],
        1,
        None,
    )
}

#[tokio::test]
async fn a_message_published_on_redis_survives_kill_9_of_the_node_and_is_delivered() {
    let redis = RedisServer::start(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
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
async fn a_node_on_a_redis_without_persistence_warns_at_start() {
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
