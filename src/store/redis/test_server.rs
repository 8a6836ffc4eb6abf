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
