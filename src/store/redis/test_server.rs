//! A throwaway `redis-server` for tests: started on a free loopback port in a temp dir, killed
//! (by its pid) when dropped. Used by the Redis engine's unit tests and, through `#[path]`, by
//! the integration tests of the real binary (tests/it/redis.rs), so both start it one way.
//! Only the standard library, `tempfile` and the `redis-server` binary are needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// No snapshots, no append-only file: nothing survives a restart.
pub const VOLATILE: &[&str] = &["--save", "", "--appendonly", "no"];

/// Every answered write is fsynced to the append-only file.
pub const DURABLE: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

/// Whether `redis-server` can run here. Without it the Redis tests say so and pass, so that
/// `cargo test` works on a machine with only the Rust toolchain; `.ci/run` installs it and
/// sets `QUEUEHUB_REQUIRE_REDIS`, which makes its absence a failure.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
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

/// A `redis-server` process of one test.
pub struct RedisServer {
    child: Child,
    port: u16,
    settings: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with `settings` in a fresh temp dir; returns once it answers.
    pub fn start(settings: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port, settings)
    }

    /// [`RedisServer::start`] on `port`.
    fn start_on(port: u16, settings: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = spawn(dir.path(), port, settings);
        let server = Self {
            child,
            port,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        server.wait_until_ready();
        server
    }

    /// The URL of database `db` of this server.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// kill -9 (by pid); the port is then closed.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Starts it again with the same settings, port and directory; returns once it answers
    /// (its append-only file loaded).
    pub fn restart(&mut self) {
        let settings: Vec<&str> = self.settings.iter().map(String::as_str).collect();
        self.child = spawn(self.dir.path(), self.port, &settings);
        self.wait_until_ready();
    }

    /// Until `PING` answers `+PONG` (not `-LOADING`), for at most ten seconds.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pong() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pong(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 64];
        stream.write_all(b"PING\r\n").is_ok()
            && stream
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
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
                "cannot start redis-server ({err}): the Redis tests need it on the PATH \
                 (`apt-get install redis-server`; .ci/run installs it)"
            )
        })
}

/// A Redis Cluster of three masters (no replicas) for one test: three `redis-server`s with
/// `cluster-enabled yes`, joined with `redis-cli --cluster create`, each in its own temp dir
/// on a free port; killed (by their pids) when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the three masters with `settings`, joins them, and returns once every node
    /// reports `cluster_state:ok`.
    pub fn start(settings: &[&str]) -> Self {
        let mut with_cluster: Vec<&str> = settings.to_vec();
        with_cluster.extend_from_slice(&[
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
        ]);
        let nodes: Vec<RedisServer> = (0..3)
            .map(|n| RedisServer::start_on(cluster_port(n), &with_cluster))
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (Debian's redis-tools, installed with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.nodes.iter().all(RedisServer::cluster_ok) {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The seed URLs of its nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.url(0)).collect()
    }

    /// kill -9 of every node, then each started again with its directory (its append-only
    /// file and `nodes.conf`); returns once the cluster is ok again.
    pub fn kill_9_and_restart(&mut self) {
        for node in &mut self.nodes {
            node.kill_9();
        }
        for node in &mut self.nodes {
            node.restart();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.nodes.iter().all(RedisServer::cluster_ok) {
            assert!(Instant::now() < deadline, "the cluster did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A free port for cluster node `n` whose cluster bus port (10 000 higher, which Redis
/// requires to be a port too) is free as well: at most 55 535, tried from a place that
/// depends on the process and the node, so that tests running side by side rarely meet.
fn cluster_port(n: u16) -> u16 {
    let seed = std::process::id() as u64 * 7919
        + u64::from(n) * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    (0..35_000u64)
        .map(|i| 20_000 + ((seed + i * 7) % 35_535) as u16)
        .find(|&port| {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        })
        .expect("a free port pair for a cluster node")
}

impl RedisServer {
    /// Whether `CLUSTER INFO` says `cluster_state:ok`.
    fn cluster_ok(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "cluster", "info"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
    }
}
