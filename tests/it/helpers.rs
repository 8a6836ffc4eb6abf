//! Test helpers: [`spawn_app`] (the server in-process on port 0 with a temp data dir),
//! [`ServerProcess`] (the real binary, for restarts and kill -9), [`SocketClient`] (a
//! rust_socketio client that records every event it receives), and bare WebSockets to
//! socket.io ([`raw_socket`], [`engine_io_websocket`]) for what a client library would not
//! send.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use queuehub::config::Storage;
use queuehub::{Application, Config};
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running in-process server.
pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    /// What the dashboard feed has done.
    pub dashboard: queuehub::socket::dashboard::FeedStats,
    _data_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts queuehub on `127.0.0.1:0` with the embedded store in a fresh temp dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts queuehub in-process from command-line arguments (as the binary would parse them),
/// on `127.0.0.1:0` with a fresh temp data dir. Every flag counts; the ones this helper sets
/// itself (address and store) are refused rather than silently replaced.
pub async fn spawn_app_with_args(args: &[&str]) -> TestApp {
    use clap::Parser;
    for taken in ["--listen", "--data-dir", "--memory"] {
        assert!(
            !args.iter().any(|a| a.split('=').next() == Some(taken)),
            "spawn_app_with_args sets {taken} itself (port 0, a temp data dir); use ServerProcess for another"
        );
    }
    let mut all = vec!["queuehub"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
    let cli = queuehub::config::Cli::try_parse_from(all).expect("arguments parse");
    let config = Config::from_cli(cli).expect("configuration resolves");
    // Everything from the arguments but the address and the store (port 0, a temp dir).
    spawn_app_with(move |c| {
        *c = Config {
            listen: c.listen.clone(),
            storage: c.storage.clone(),
            ..config
        };
    })
    .await
}

/// Like [`spawn_app`], with a chance to change the configuration first.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        storage: Storage::Embedded(data_dir.path().to_path_buf()),
        ..Config::default()
    };
    change(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let url = format!("http://{}", app.addresses()[0]);
    let dashboard = app.dashboard_feed();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        url,
        http: reqwest::Client::new(),
        dashboard,
        _data_dir: data_dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// Helpers for the HTTP API, shared by [`TestApp`] and [`ServerProcess`].
pub trait Http {
    fn base(&self) -> &str;
    fn client(&self) -> &reqwest::Client;

    /// POSTs JSON to `path`; returns the status and the JSON body.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client()
            .post(format!("{}{}", self.base(), path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path`; returns the status and the JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client()
            .get(format!("{}{}", self.base(), path))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes `payload` as `event` to `queue`; panics unless answered 201.
    async fn publish(&self, queue: &str, event: &str, payload: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/queues/{queue}/messages"),
                json!({ "event": event, "payload": payload }),
            )
            .await;
        assert_eq!(status, 201, "publish answered {status}: {body}");
        body
    }

    /// The client's pending count on `queue`, from `GET /v1/queues/{queue}`.
    async fn pending(&self, queue: &str, client: &str) -> u64 {
        let (status, body) = self.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(status, 200, "{body}");
        body["subscribers"]
            .as_array()
            .and_then(|subs| subs.iter().find(|s| s["clientId"] == client))
            .and_then(|s| s["pending"].as_u64())
            .unwrap_or_else(|| panic!("{client} is not subscribed to {queue}: {body}"))
    }

    /// The ids in the client's inbox, oldest first, via the peek route.
    async fn inbox_ids(&self, queue: &str, client: &str) -> Vec<String> {
        let (status, body) = self
            .get(&format!(
                "/v1/queues/{queue}/clients/{client}/messages?limit=1000"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

impl Http for TestApp {
    fn base(&self) -> &str {
        &self.url
    }
    fn client(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The real `queuehub` binary as a child process, for restarts and kill -9.
pub struct ServerProcess {
    pub url: String,
    /// Every address it listens on.
    pub urls: Vec<String>,
    http: reqwest::Client,
    child: Child,
    /// Every line the process has written to stdout (its log) so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary on a free port with the embedded store in `data_dir`, and waits
    /// until it serves.
    pub async fn start(data_dir: &Path) -> Self {
        let data_dir = data_dir.to_str().expect("utf-8 path");
        Self::start_with(
            &["--listen", "127.0.0.1:0", "--data-dir", data_dir],
            &[],
            1,
            None,
        )
    }

    /// Starts the binary with `args` and `envs` (in `cwd`, if given), and waits until it
    /// reports `addresses` listening addresses; `url` is the first.
    pub fn start_with(
        args: &[&str],
        envs: &[(&str, &str)],
        addresses: usize,
        cwd: Option<&Path>,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_queuehub"));
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command.args(args).envs(envs.iter().copied());
        Self::spawn(command, addresses)
    }

    /// Starts the binary like [`ServerProcess::start`], but with SIGXFSZ ignored (the shell's
    /// `trap '' XFSZ`, kept across `exec`): a file-size limit set later with
    /// [`ServerProcess::limit_file_size`] then makes writes fail with EFBIG, as a full disk
    /// makes them fail with ENOSPC, instead of killing the process.
    pub async fn start_with_fillable_disk(data_dir: &Path) -> Self {
        Self::start_with_fillable_disk_and(data_dir, &[])
    }

    /// [`ServerProcess::start_with_fillable_disk`] with more arguments.
    pub fn start_with_fillable_disk_and(data_dir: &Path, more: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "trap '' XFSZ; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_queuehub"),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ]);
        command.args(more);
        Self::spawn(command, 1)
    }

    /// Sets the process's soft file-size limit (`prlimit --fsize`), or lifts it with `None`.
    /// Any user may lower its soft limit and raise it back up to the hard limit.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let limit = bytes.map_or("unlimited".to_owned(), |b| b.to_string());
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.child.id().to_string())
            .arg(format!("--fsize={limit}:"))
            .status()
            .expect("prlimit runs (util-linux)");
        assert!(status.success(), "prlimit --fsize={limit}: failed");
    }

    fn spawn(command: Command, addresses: usize) -> Self {
        Self::spawn_reporting(command, addresses, "listening on ")
    }

    /// Starts a node on Redis that stands by (another node holds the lease) and waits until it
    /// relays on its one address (`crate::relay`); `url` is that address.
    pub fn start_relaying(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_queuehub"));
        command.args(args);
        Self::spawn_reporting(command, 1, "relaying on ")
    }

    /// Waits up to `limit` for a log line that contains `needle`.
    pub fn logs_within(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.log().iter().any(|line| line.contains(needle)) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Spawns `command` and waits for `addresses` log lines with `marker` before an address.
    fn spawn_reporting(mut command: Command, addresses: usize, marker: &'static str) -> Self {
        let mut child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find(marker) {
                    let address = line[at + marker.len()..].split_whitespace().next();
                    let _ = tx.send(address.unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let urls: Vec<String> = (0..addresses)
            .map(|_| rx.recv_timeout(WAIT).expect("server reports its address"))
            .collect();
        Self {
            url: urls[0].clone(),
            urls,
            http: reqwest::Client::new(),
            child,
            log,
        }
    }

    /// The lines of its log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sets the process's soft limit of open files (`prlimit --nofile`), or puts it back to
    /// the hard limit with `None`.
    pub fn limit_open_files(&self, files: Option<u64>) {
        let limit = files.map_or_else(
            || {
                let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid()))
                    .expect("/proc/PID/limits");
                let line = limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .expect("open files line");
                line.split_whitespace()
                    .nth(4)
                    .expect("hard limit")
                    .to_owned()
            },
            |f| f.to_string(),
        );
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.pid().to_string())
            .arg(format!("--nofile={limit}:"))
            .status()
            .expect("prlimit runs (util-linux)");
        assert!(status.success(), "prlimit --nofile={limit}: failed");
    }

    /// The process's resident memory (VmRSS), in bytes.
    /// The lowest of a few samples of [`ServerProcess::resident_bytes`] over half a second:
    /// what the server holds once what was in flight has settled (one sample may catch a
    /// transient peak on a busy machine).
    pub async fn settled_resident_bytes(&self) -> u64 {
        let mut lowest = u64::MAX;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            lowest = lowest.min(self.resident_bytes());
        }
        lowest
    }

    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Waits up to `limit` for the process to end by itself; its exit status, or `None` if it
    /// still runs.
    pub fn exits_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Stops the process with SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "queuehub exited with {exit}");
    }
}

impl Http for ServerProcess {
    fn base(&self) -> &str {
        &self.url
    }
    fn client(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh temp dir for a [`ServerProcess`].
pub fn data_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// An event a [`SocketClient`] received: its name and its first argument.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub data: Value,
}

/// A rust_socketio client that records every event it receives, in order.
pub struct SocketClient {
    client: Client,
    events: mpsc::UnboundedReceiver<Received>,
}

fn first_arg(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        _ => Value::Null,
    }
}

impl SocketClient {
    /// Connects to namespace `/` and waits until the namespace is joined.
    pub async fn connect(url: &str) -> Self {
        Self::connect_with_auth(url, None).await
    }

    /// Connects with a handshake `auth` payload.
    pub async fn connect_with_auth(url: &str, auth: Option<Value>) -> Self {
        Self::connect_to(url, "/", auth).await
    }

    /// Connects to `namespace`, with an optional handshake `auth` payload.
    pub async fn connect_to(url: &str, namespace: &str, auth: Option<Value>) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = mpsc::unbounded_channel::<()>();
        let mut builder = ClientBuilder::new(url)
            .namespace(namespace)
            .reconnect(false)
            .on(rust_socketio::Event::Connect, move |_, _| {
                let _ = connected_tx.send(());
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let _ = tx.send(Received {
                    event: event.as_str().to_owned(),
                    data: first_arg(payload),
                });
                async {}.boxed()
            });
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder.connect().await.expect("socket connects");
        let mut connected_rx = connected_rx;
        tokio::time::timeout(WAIT, connected_rx.recv())
            .await
            .expect("namespace joined in time");
        Self { client, events }
    }

    /// Tries to connect to `namespace`; returns the server's `connect_error` message if the
    /// connection is refused, `None` if it is accepted.
    pub async fn refused(url: &str, namespace: &str, auth: Option<Value>) -> Option<String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let (ok, err) = (tx.clone(), tx);
        let mut builder = ClientBuilder::new(url)
            .namespace(namespace)
            .reconnect(false)
            .on(rust_socketio::Event::Connect, move |_, _| {
                let _ = ok.send(Ok(()));
                async {}.boxed()
            })
            .on(rust_socketio::Event::Error, move |payload, _| {
                let message = match payload {
                    Payload::Text(values) => {
                        values.first().map(|v| v.to_string()).unwrap_or_default()
                    }
                    #[allow(deprecated)]
                    Payload::String(text) => text,
                    Payload::Binary(_) => String::new(),
                };
                let _ = err.send(Err(message));
                async {}.boxed()
            });
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder.connect().await.expect("engine.io connects");
        let outcome = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("connect or connect_error in time")
            .expect("open");
        let _ = client.disconnect().await;
        outcome.err()
    }

    /// Emits `event` with `data` and waits for the server's ack.
    pub async fn call(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        self.client
            .emit_with_ack(event, data, WAIT, move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    // rust_socketio hands an ack's arguments over as one array.
                    let answer = match first_arg(payload) {
                        Value::Array(mut args) if args.len() == 1 => args.remove(0),
                        other => other,
                    };
                    let _ = tx.send(answer);
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event} in time"))
            .expect("ack")
    }

    /// Emits `event` with `json` as its argument, sent as written (a [`Value`] could not
    /// carry a repeated key), and waits for the server's ack.
    pub async fn call_raw(&self, event: &str, json: &str) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        #[allow(deprecated)] // the only payload rust_socketio sends as written
        let payload = Payload::String(json.to_owned());
        self.client
            .emit_with_ack(event, payload, WAIT, move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(first_arg(payload));
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        let answer = tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event} in time"))
            .expect("ack");
        match answer {
            Value::Array(mut args) if args.len() == 1 => args.remove(0),
            other => other,
        }
    }

    /// Emits `event` with `json` sent as written, without asking for an ack.
    pub async fn emit_raw(&self, event: &str, json: &str) {
        #[allow(deprecated)] // the only payload rust_socketio sends as written
        let payload = Payload::String(json.to_owned());
        self.client.emit(event, payload).await.expect("emit");
    }

    /// Emits `event` without asking for an ack.
    pub async fn emit(&self, event: &str, data: Value) {
        self.client.emit(event, data).await.expect("emit");
    }

    /// The next event received, whatever its name; panics after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event arrives in time")
            .expect("client open")
    }

    /// The next `n` events named `event`, skipping none: any other event fails the test.
    pub async fn take(&mut self, event: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let received = self.next().await;
            assert_eq!(received.event, event, "unexpected event: {received:?}");
            out.push(received.data);
        }
        out
    }

    /// The next `n` events, whatever their names.
    pub async fn take_any(&mut self, n: usize) -> Vec<Received> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next().await);
        }
        out
    }

    /// Waits `quiet` and returns whatever events arrived meanwhile.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        tokio::time::sleep(quiet).await;
        let mut out = Vec::new();
        while let Ok(received) = self.events.try_recv() {
            out.push(received);
        }
        out
    }

    /// Subscribes as `client` to `queue`; returns the ack.
    pub async fn subscribe(&self, client: &str, queue: &str) -> Value {
        let ack = self
            .call("subscribe", json!({ "clientId": client, "queue": queue }))
            .await;
        assert_eq!(ack["ok"], true, "subscribe refused: {ack}");
        ack
    }

    /// Acks `id` as `client`; returns the ack.
    pub async fn ack(&self, client: &str, id: &Value) -> Value {
        self.call("received", json!({ "clientId": client, "id": id }))
            .await
    }

    /// Disconnects.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// The content type of JSON bodies.
pub const JSON: &str = "application/json";

/// POSTs `body` as it is (not necessarily valid JSON) with `content_type`; returns the status
/// and the answer (`null` if it is not JSON).
pub async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The stable code of an error answer.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// GETs `url` and returns the body as text.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// Opens a bare engine.io long-polling session; returns its endpoint (`...&sid=`).
pub async fn polling_session(http: &reqwest::Client, url: &str) -> String {
    let handshake = get_text(http, &format!("{url}/socket.io/?EIO=4&transport=polling")).await;
    let open: Value = serde_json::from_str(handshake.trim_start_matches('0')).unwrap();
    let sid = open["sid"].as_str().expect("a session id");
    format!("{url}/socket.io/?EIO=4&transport=polling&sid={sid}")
}

/// Opens a bare long-polling session and joins namespace `/`; returns its endpoint once the
/// join is answered (`40{...}`: an event sent before that could reach the server before the
/// socket's handlers exist).
pub async fn joined_polling_session(http: &reqwest::Client, url: &str) -> String {
    let endpoint = polling_session(http, url).await;
    let joined = http.post(&endpoint).body("40").send().await.unwrap();
    assert!(joined.status().is_success());
    // A ping may come before the answer.
    for _ in 0..10 {
        if get_text(http, &endpoint).await.contains("40{") {
            return endpoint;
        }
    }
    panic!("the namespace connect was not answered");
}

/// A unique name for this test run, so tests never share queues or clients.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A bare WebSocket to socket.io, speaking the Engine.IO/socket.io text protocol.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a bare WebSocket to socket.io and joins namespace `/`.
pub async fn raw_socket(url: &str) -> RawSocket {
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://")
    );
    let (ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket opens");
    join_root(ws).await
}

/// Like [`raw_socket`], over a connection whose receive buffer is `bytes` small: when it stops
/// reading, the server's buffer for it fills after little traffic (the kernel would otherwise
/// absorb megabytes first).
pub async fn raw_socket_with_small_window(url: &str, bytes: u32) -> RawSocket {
    join_root(small_window_websocket(url, bytes, 4).await).await
}

/// Like [`raw_socket_with_small_window`], with the socket's id (`sid`, as the server's log
/// names it).
pub async fn raw_socket_with_small_window_and_sid(url: &str, bytes: u32) -> (RawSocket, String) {
    join_root_with_sid(small_window_websocket(url, bytes, 4).await).await
}

/// Like [`raw_socket_with_small_window`], as a socket.io 2.x client (engine.io v3): the
/// server joins it to namespace `/` by itself, and the client is the one that pings.
pub async fn raw_v3_socket_with_small_window(url: &str, bytes: u32) -> RawSocket {
    let mut ws = small_window_websocket(url, bytes, 3).await;
    let open = next_text(&mut ws).await.expect("engine.io open packet");
    assert!(open.starts_with('0'), "{open}");
    let joined = next_text(&mut ws).await.expect("namespace joined");
    assert!(joined.starts_with("40"), "{joined}");
    ws
}

/// A WebSocket of engine.io version `eio` over a connection whose receive buffer is `bytes`.
async fn small_window_websocket(url: &str, bytes: u32, eio: u8) -> RawSocket {
    let address = url.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().expect("tcp socket");
    socket.set_recv_buffer_size(bytes).expect("receive buffer");
    let stream = socket
        .connect(address.parse().expect("socket address"))
        .await
        .expect("connects");
    let ws_url = format!("ws://{address}/socket.io/?EIO={eio}&transport=websocket");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(ws_url, stream)
        .await
        .expect("websocket opens");
    ws
}

/// Waits for engine.io's open packet and joins namespace `/`.
async fn join_root(ws: RawSocket) -> RawSocket {
    join_root_with_sid(ws).await.0
}

/// [`join_root`], with the socket's id from the namespace's answer.
async fn join_root_with_sid(mut ws: RawSocket) -> (RawSocket, String) {
    let open = next_text(&mut ws).await.expect("engine.io open packet");
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text("40")).await.unwrap();
    let joined = next_text(&mut ws).await.expect("namespace joined");
    let connect: serde_json::Value = joined
        .strip_prefix("40")
        .and_then(|rest| serde_json::from_str(rest).ok())
        .unwrap_or_else(|| panic!("not a connect answer: {joined}"));
    let sid = connect["sid"].as_str().expect("a socket id").to_owned();
    (ws, sid)
}

/// The next text frame, answering pings; `None` once the server closed the connection.
pub async fn next_text(ws: &mut RawSocket) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server answers or closes in time");
        match frame {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Opens a bare engine.io WebSocket (no namespace joined); `Err` holds the HTTP status and
/// body of a refusal.
pub async fn engine_io_websocket(url: &str) -> Result<RawSocket, (u16, String)> {
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://")
    );
    match tokio_tungstenite::connect_async(ws_url).await {
        Ok((mut ws, _)) => {
            let open = next_text(&mut ws).await.expect("engine.io open packet");
            assert!(open.starts_with('0'), "{open}");
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into(),
            ))
        }
        Err(err) => panic!("the WebSocket neither opened nor got an HTTP answer: {err}"),
    }
}
