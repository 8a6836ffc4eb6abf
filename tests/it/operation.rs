//! Running queuehub: configuration from the environment, several listen addresses, memory
//! mode, graceful shutdown.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, ServerProcess, SocketClient, WAIT, data_dir, joined_polling_session, next_text,
    raw_socket, spawn_app, unique,
};

#[tokio::test]
async fn queuehub_environment_variables_configure_it_and_every_address_serves_everything() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start_with(
        &[],
        &[
            ("QUEUEHUB_LISTEN", "127.0.0.1:0,127.0.0.1:0"),
            ("QUEUEHUB_DATA_DIR", path.to_str().unwrap()),
        ],
        2,
        None,
    );
    assert_eq!(server.urls.len(), 2);
    assert_ne!(server.urls[0], server.urls[1]);
    let (queue, client) = (unique("q"), unique("c"));
    // Subscribe through the second address, publish through the first.
    let mut socket = SocketClient::connect(&server.urls[1]).await;
    socket.subscribe(&client, &queue).await;
    let receipt = server.publish(&queue, "e", json!(1)).await;
    assert_eq!(socket.take("e", 1).await[0]["id"], receipt["id"]);
    for url in &server.urls {
        let status = reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    assert!(
        path.join("queuehub.redb").exists(),
        "the store is in QUEUEHUB_DATA_DIR"
    );
    server.terminate();
}

#[tokio::test]
async fn memory_mode_writes_nothing_and_forgets_on_restart() {
    // Run where the default data dir would be created, and check that it is not.
    let cwd = tempfile::tempdir().unwrap();
    let args = ["--memory", "--listen", "127.0.0.1:0"];
    let server = ServerProcess::start_with(&args, &[], 1, Some(cwd.path()));
    let queue = unique("q");
    server.publish(&queue, "e", json!(1)).await;
    let (status, _) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 200);
    server.terminate();
    let written: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(written.is_empty(), "memory mode wrote {written:?}");

    let server = ServerProcess::start_with(&args, &[], 1, Some(cwd.path()));
    let (status, _) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "memory mode keeps nothing across restarts");
}

/// A rust_socketio client of namespace `/` that reports how its connection ends (the
/// helpers' `SocketClient` records events, not that), once it has joined: `close` for a
/// socket.io disconnect packet (`Event::Close`), `error: ...` when the transport fails or
/// ends (`Event::Error`).
async fn client_reporting_its_end(
    url: &str,
) -> (
    rust_socketio::asynchronous::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use rust_socketio::asynchronous::ClientBuilder;
    use rust_socketio::{Event, Payload};

    let (ended, endings) = tokio::sync::mpsc::unbounded_channel();
    let (joined, mut join) = tokio::sync::mpsc::unbounded_channel();
    let failed = ended.clone();
    let client = ClientBuilder::new(url)
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            let _ = joined.send(());
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            let _ = ended.send("close".to_owned());
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            let text = match payload {
                Payload::Text(values) => format!("{values:?}"),
                #[allow(deprecated)]
                Payload::String(text) => text,
                Payload::Binary(_) => String::new(),
            };
            let _ = failed.send(format!("error: {text}"));
            async {}.boxed()
        })
        .connect()
        .await
        .expect("socket connects");
    tokio::time::timeout(WAIT, join.recv())
        .await
        .expect("namespace joined in time");
    (client, endings)
}

#[tokio::test]
async fn sigterm_closes_sockets_and_exits_cleanly() {
    let (_dir, path) = data_dir();
    let mut server = ServerProcess::start(&path).await;
    let (client, mut endings) = client_reporting_its_end(&server.url).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    client
        .emit_with_ack(
            "subscribe",
            json!({"clientId": unique("c"), "queue": unique("q")}),
            WAIT,
            move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(payload);
                }
                async {}.boxed()
            },
        )
        .await
        .expect("subscribe sent");
    let ack = tokio::time::timeout(WAIT, rx)
        .await
        .expect("subscribe answered in time")
        .expect("ack");
    // rust_socketio hands an ack's arguments over as one array.
    let rust_socketio::Payload::Text(args) = &ack else {
        panic!("{ack:?}")
    };
    assert_eq!(args[0][0]["ok"], true, "subscribe: {ack:?}");
    assert!(
        endings.try_recv().is_err(),
        "the connection is up before SIGTERM"
    );

    let signalled = std::time::Instant::now();
    server.signal_term();
    // The client sees its connection end (the server hangs up, without socket.io's goodbye:
    // see the test below), and soon: a server that left its sockets open would wait out its
    // 10 s shutdown grace for them, and only its exit would end them.
    let ending = tokio::time::timeout(WAIT, endings.recv())
        .await
        .expect("the client sees its connection end in time")
        .expect("an ending");
    let seen = signalled.elapsed();
    assert!(
        seen < Duration::from_secs(5),
        "the client saw its connection end ({ending}) {seen:?} after SIGTERM"
    );
    let exit = server
        .exits_within(WAIT)
        .expect("the server exits in time after SIGTERM");
    assert!(exit.success(), "queuehub exited with {exit}");
    assert!(
        server.logs_within("queuehub stopped", WAIT),
        "{:?}",
        server.log()
    );
    let log = server.log();
    assert!(
        !log.iter().any(|line| line.contains("still open")),
        "shutdown waited for connections: {log:?}"
    );
}

/// Stopping hangs sockets up instead of saying goodbye: engine.io's close packet (`1`) tells
/// python-socketio that the server does not want it back, and it then never reconnects to
/// the restarted server (or, with Redis, to the node that takes over), while a connection
/// that just ends is a reason to reconnect for every client. Checked over a WebSocket and a
/// long poll waiting when the server stops; the packets are what clients would read.
#[tokio::test]
async fn stopping_hangs_up_sockets_without_a_close_packet_so_that_clients_reconnect() {
    let app = spawn_app().await;
    let mut ws = raw_socket(&app.url).await;
    let subscribe = json!(["subscribe", {"clientId": unique("c"), "queue": unique("q")}]);
    ws.send(Message::text(format!("420{subscribe}")))
        .await
        .unwrap();
    let answer = next_text(&mut ws).await.expect("the subscribe's answer");
    assert!(answer.starts_with("430"), "{answer}");

    let http = reqwest::Client::new();
    let endpoint = joined_polling_session(&http, &app.url).await;
    // A poll waiting for something to send when the server stops.
    let poll = tokio::spawn({
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move {
            match http.get(&endpoint).send().await {
                Ok(response) => response.text().await.ok(),
                Err(_) => None,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = tokio::spawn(app.stop());
    let mut read = Vec::new();
    while let Some(text) = next_text(&mut ws).await {
        read.push(text);
    }
    let goodbyes = |packets: &[&str]| {
        packets
            .iter()
            .any(|packet| *packet == "1" || packet.starts_with("41"))
    };
    let read: Vec<&str> = read.iter().map(String::as_str).collect();
    assert!(!goodbyes(&read), "the WebSocket read a goodbye: {read:?}");
    let polled = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the poll ends")
        .unwrap();
    if let Some(body) = polled {
        let packets: Vec<&str> = body.split('\u{1e}').collect();
        assert!(!goodbyes(&packets), "the poll read a goodbye: {packets:?}");
    }
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("the server stops")
        .unwrap();
}

/// GETs `/v1/queues/{queue}` until `check` holds (or fails after 10 s).
async fn until_stats(server: &ServerProcess, queue: &str, check: impl Fn(&Value) -> bool) {
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = server.get(&format!("/v1/queues/{queue}")).await.1;
        if check(&stats) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{queue}'s stats never matched: {stats}");
}

/// Which metric shows each number of a queue's stats (`GET /v1/queues`).
const STATS_METRICS: [(&str, &str); 8] = [
    ("published", "queuehub_messages_published_total"),
    ("acked", "queuehub_messages_acked_total"),
    ("expired", "queuehub_messages_expired_total"),
    ("rejected", "queuehub_messages_rejected_total"),
    ("deadLettered", "queuehub_messages_dead_lettered_total"),
    ("waiting", "queuehub_waiting"),
    ("scheduled", "queuehub_scheduled"),
    ("subscribers", "queuehub_subscribers"),
];

#[tokio::test]
async fn metrics_export_every_stats_counter_in_openmetrics_and_prometheus_text() {
    let (_dir, path) = data_dir();
    let data_dir = path.to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir,
        "--max-payload-bytes",
        "64",
    ];
    let server = ServerProcess::start_with(&args, &[], 1, None);
    let (queue, idle, later, jobs) = (unique("q"), unique("idle"), unique("later"), unique("jobs"));
    let (client, other, worker) = (unique("c"), unique("c2"), unique("w"));
    let q = [("queue", queue.as_str())];

    // Waiting: published before anyone subscribed.
    server.publish(&idle, "e", json!(0)).await;
    // Published, acked, pending: two clients, three messages, one ack.
    let mut socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    socket.subscribe(&other, &queue).await;
    for n in 0..3 {
        server.publish(&queue, "e", json!(n)).await;
    }
    let got = socket.take("e", 6).await;
    let first = got
        .iter()
        .find(|m| m["clientId"] == client.as_str())
        .unwrap();
    assert_eq!(socket.ack(&client, &first["id"]).await["removed"], true);
    // Rejected: a payload over --max-payload-bytes.
    let (status, body) = server
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": "x".repeat(100)}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    // Expired: a message whose TTL runs out in both inboxes.
    let (status, body) = server
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({"event": "e", "payload": "brief", "ttlMs": 200}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    until_stats(&server, &queue, |s| s["expired"] == 2).await;
    // Scheduled: a delayed publish, not due for an hour.
    let (status, body) = server
        .post(
            &format!("/v1/queues/{later}/messages"),
            json!({"event": "e", "delayMs": 3_600_000}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Dead-lettered: a work-mode worker that never acks its one delivery.
    let mut work = SocketClient::connect(&server.url).await;
    let subscribe = json!({"clientId": worker, "queue": jobs, "mode": "work",
        "ackTimeoutMs": 200, "maxDeliveries": 1});
    assert_eq!(work.call("subscribe", subscribe).await["ok"], true);
    server.publish(&jobs, "job", json!("poison")).await;
    assert_eq!(work.take("job", 1).await[0]["attempt"], 1);
    until_stats(&server, &jobs, |s| s["deadLettered"] == 1).await;

    let (_, stats) = server.get("/v1/queues").await;
    for openmetrics in [true, false] {
        let mut request = reqwest::Client::new().get(format!("{}/metrics", server.url));
        if openmetrics {
            request = request.header("accept", "application/openmetrics-text; version=1.0.0");
        }
        let response = request.send().await.unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = match openmetrics {
            true => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            false => "text/plain; version=0.0.4; charset=utf-8",
        };
        assert_eq!(content_type, expected);
        let metrics = Exposition::parse(&response.text().await.unwrap(), openmetrics);
        let sample = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);

        assert_eq!(sample("queuehub_messages_published_total", &q), Some(4.0));
        assert_eq!(sample("queuehub_messages_acked_total", &q), Some(1.0));
        assert_eq!(sample("queuehub_messages_expired_total", &q), Some(2.0));
        assert_eq!(sample("queuehub_messages_rejected_total", &q), Some(1.0));
        assert_eq!(
            sample("queuehub_messages_dead_lettered_total", &q),
            Some(0.0)
        );
        let j = [("queue", jobs.as_str())];
        assert_eq!(
            sample("queuehub_messages_dead_lettered_total", &j),
            Some(1.0)
        );
        assert_eq!(sample("queuehub_pending", &j), Some(0.0));
        let dead = format!("{jobs}.dead");
        assert_eq!(sample("queuehub_waiting", &[("queue", &dead)]), Some(1.0));
        let l = [("queue", later.as_str())];
        assert_eq!(sample("queuehub_scheduled", &l), Some(1.0));
        assert_eq!(sample("queuehub_waiting", &l), Some(0.0));
        assert_eq!(sample("queuehub_scheduled", &q), Some(0.0));
        assert_eq!(sample("queuehub_waiting", &q), Some(0.0));
        assert_eq!(sample("queuehub_waiting", &[("queue", &idle)]), Some(1.0));
        // Unacked: two in the client's inbox, three in the other's; no client label.
        assert_eq!(sample("queuehub_subscribers", &q), Some(2.0));
        assert_eq!(sample("queuehub_pending", &q), Some(5.0));
        assert_eq!(sample("queuehub_pending_max", &q), Some(3.0));
        assert!(
            metrics
                .labels_of("queuehub_pending")
                .iter()
                .all(|l| l == &["queue"])
        );
        // Stored once each: idle's, the queue's three not acked by both, the delayed one and
        // the dead letter; five queues with the dead-letter queue.
        assert_eq!(sample("queuehub_stored_messages", &[]), Some(6.0));
        assert_eq!(sample("queuehub_queues", &[]), Some(5.0));
        assert_eq!(sample("queuehub_sockets_connected", &[]), Some(2.0));

        // Every number of every queue's stats is exported, with the same value.
        for summary in stats["queues"].as_array().unwrap() {
            let name = summary["queue"].as_str().unwrap();
            for (key, value) in summary.as_object().unwrap() {
                let Some(value) = value.as_f64() else {
                    continue;
                };
                let metric = STATS_METRICS
                    .iter()
                    .find(|(field, _)| field == key)
                    .unwrap_or_else(|| panic!("stats field {key} has no metric"))
                    .1;
                assert_eq!(
                    sample(metric, &[("queue", name)]),
                    Some(value),
                    "{metric} {name}"
                );
            }
        }
        let (gauge, counter) = ("queuehub_stored_messages", "queuehub_messages_published");
        assert_eq!(metrics.kind(gauge), Some("gauge"));
        match openmetrics {
            true => assert_eq!(metrics.kind(counter), Some("counter")),
            false => assert_eq!(metrics.kind(&format!("{counter}_total")), Some("counter")),
        }
    }
    server.terminate();
}

/// A metrics exposition, read strictly: every sample line is `name{labels} value` and belongs
/// to a family announced by `# HELP` and `# TYPE` before it. In OpenMetrics a counter family
/// is named without `_total`, its samples with it, and the text ends with `# EOF`; in the
/// Prometheus text format (0.0.4) a family has its samples' name and there is no `# EOF`.
struct Exposition {
    kinds: std::collections::HashMap<String, String>,
    samples: Vec<Sample>,
}

/// A metric's name, its labels, and its value.
type Sample = (String, Vec<(String, String)>, f64);

impl Exposition {
    fn parse(text: &str, openmetrics: bool) -> Self {
        let mut kinds = std::collections::HashMap::new();
        let mut helped = std::collections::HashSet::new();
        let mut samples = Vec::new();
        let mut lines: Vec<&str> = text.lines().collect();
        if openmetrics {
            assert_eq!(lines.pop(), Some("# EOF"), "OpenMetrics ends with # EOF");
            assert!(text.ends_with("# EOF\n"), "and a newline");
        }
        for line in lines {
            assert!(!line.is_empty(), "an empty line");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                assert!(
                    ["counter", "gauge"].contains(&kind),
                    "unexpected kind: {line}"
                );
                if kind == "counter" {
                    assert_eq!(name.ends_with("_total"), !openmetrics, "{line}");
                }
                kinds.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment line: {line}");
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    let labels = body
                        .split("\",")
                        .map(|pair| {
                            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                            (key.to_owned(), value.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            let family = match (openmetrics, name.strip_suffix("_total")) {
                (true, Some(counter)) if kinds.get(counter).is_some_and(|k| k == "counter") => {
                    counter
                }
                _ => name,
            };
            assert!(
                kinds.contains_key(family) && helped.contains(family),
                "{name} has no # HELP and # TYPE of its family before its samples"
            );
            samples.push((name.to_owned(), labels, value));
        }
        Self { kinds, samples }
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(matching.len() <= 1, "{name} {labels:?} twice");
        matching.first().copied()
    }

    /// The label names of each sample of `name`.
    fn labels_of(&self, name: &str) -> Vec<Vec<&str>> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, _)| l.iter().map(|(k, _)| k.as_str()).collect())
            .collect()
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.kinds.get(name).map(String::as_str)
    }
}
