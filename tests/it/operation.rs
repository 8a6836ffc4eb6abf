//! Running queuehub: configuration from the environment, several listen addresses, memory
//! mode, graceful shutdown.

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, data_dir, unique};

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

#[tokio::test]
async fn sigterm_closes_sockets_and_exits_cleanly() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&unique("c"), &unique("q")).await;
    // terminate() asserts a zero exit status after SIGTERM, with a socket still connected.
    server.terminate();
}

#[tokio::test]
async fn metrics_are_in_prometheus_text_format() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    let (queue, idle, client) = (unique("q"), unique("idle"), unique("c"));
    server.publish(&idle, "e", json!(0)).await;
    let mut socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    for n in 0..3 {
        server.publish(&queue, "e", json!(n)).await;
    }
    let got = socket.take("e", 3).await;
    assert_eq!(socket.ack(&client, &got[0]["id"]).await["removed"], true);

    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = Exposition::parse(&text);
    let sample = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    let q = [("queue", queue.as_str())];
    assert_eq!(sample("queuehub_messages_published_total", &q), Some(3.0));
    assert_eq!(sample("queuehub_messages_acked_total", &q), Some(1.0));
    assert_eq!(sample("queuehub_messages_expired_total", &q), Some(0.0));
    assert_eq!(sample("queuehub_waiting", &q), Some(0.0));
    assert_eq!(
        sample(
            "queuehub_pending",
            &[("queue", &queue), ("client", &client)]
        ),
        Some(2.0)
    );
    assert_eq!(sample("queuehub_waiting", &[("queue", &idle)]), Some(1.0));
    // This server holds the idle message and the queue's two unacked ones.
    assert_eq!(sample("queuehub_stored_messages", &[]), Some(3.0));
    assert_eq!(sample("queuehub_sockets_connected", &[]), Some(1.0));
    assert_eq!(metrics.kind("queuehub_stored_messages"), Some("gauge"));
    assert_eq!(
        metrics.kind("queuehub_messages_published_total"),
        Some("counter")
    );
}

/// The Prometheus text format, read strictly: every sample line is `name{labels} value` and
/// belongs to a family announced by `# HELP` and `# TYPE` before it.
struct Exposition {
    kinds: std::collections::HashMap<String, String>,
    samples: Vec<Sample>,
}

/// A metric's name, its labels, and its value.
type Sample = (String, Vec<(String, String)>, f64);

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut kinds = std::collections::HashMap::new();
        let mut helped = std::collections::HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
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
            assert!(
                kinds.contains_key(name) && helped.contains(name),
                "{name} has no # HELP and # TYPE before its samples"
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

    fn kind(&self, name: &str) -> Option<&str> {
        self.kinds.get(name).map(String::as_str)
    }
}
