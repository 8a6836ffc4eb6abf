//! queuehub's benchmark: durable publish throughput with one acking subscriber, end-to-end
//! latency percentiles, and catch-up throughput. Run with `cargo bench --bench throughput`
//! (optionally `-- --messages N --publishers P`). It starts the real server on a loopback
//! port with the embedded store in a temp dir, publishes over real HTTP, and receives and
//! acks with a real socket.io client (rust_socketio). Results go to stdout as a Markdown table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use queuehub::config::Storage;
use queuehub::{Application, Config};
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

struct Options {
    messages: usize,
    publishers: usize,
    catch_up: usize,
}

fn options() -> Options {
    let mut options = Options {
        messages: 20_000,
        publishers: 32,
        catch_up: 100_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(n) = value("--messages") {
        options.messages = n;
    }
    if let Some(n) = value("--publishers") {
        options.publishers = n;
    }
    if let Some(n) = value("--catch-up") {
        options.catch_up = n;
    }
    options
}

/// Starts the server on its own runtime thread so that its work and the load generator's
/// are scheduled separately. Returns its URL and a stop switch.
fn start_server(
    data_dir: &std::path::Path,
) -> (String, oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        storage: Storage::Embedded(data_dir.to_path_buf()),
        ..Config::default()
    };
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Application::build(config).await.unwrap();
            url_tx
                .send(format!("http://{}", app.addresses()[0]))
                .unwrap();
            app.run_until_stopped(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    (url_rx.recv().unwrap(), stop_tx, thread)
}

/// Connects a socket.io client that forwards every `event` argument to `tx`.
async fn subscriber(
    url: &str,
    event: &'static str,
    tx: mpsc::UnboundedSender<(Instant, Value)>,
) -> Client {
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel::<()>();
    let client = ClientBuilder::new(url)
        .namespace("/")
        .on(rust_socketio::Event::Connect, move |_, _| {
            let _ = connected_tx.send(());
            async {}.boxed()
        })
        .on(event, move |payload, _| {
            if let Payload::Text(mut args) = payload
                && !args.is_empty()
            {
                let _ = tx.send((Instant::now(), args.swap_remove(0)));
            }
            async {}.boxed()
        })
        .connect()
        .await
        .expect("connect");
    connected_rx.recv().await.expect("namespace joined");
    client
}

async fn call(client: &Client, event: &str, data: Value) -> Value {
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    client
        .emit_with_ack(event, data, Duration::from_secs(60), move |payload, _| {
            if let (Some(tx), Payload::Text(args)) = (tx.lock().unwrap().take(), payload) {
                let _ = tx.send(args.into_iter().next().unwrap_or(Value::Null));
            }
            async {}.boxed()
        })
        .await
        .expect("emit");
    rx.await.expect("ack")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Publishes `messages` over HTTP from `publishers` concurrent connections while one socket
/// subscriber receives and acks each one. Latency: publish request sent → event received.
async fn live(url: &str, options: &Options) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = subscriber(url, "bench", tx).await;
    let ack = call(
        &client,
        "subscribe",
        json!({"clientId": "bench-sub", "queue": "live"}),
    )
    .await;
    assert_eq!(ack[0]["ok"], true, "{ack}");

    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let origin = Instant::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.publishers {
        let (http, next, url, total) = (
            http.clone(),
            Arc::clone(&next),
            url.to_owned(),
            options.messages,
        );
        tasks.push(tokio::spawn(async move {
            let mut sent_at = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return sent_at;
                }
                let at = origin.elapsed();
                let response = http
                    .post(format!("{url}/v1/queues/live/messages"))
                    .json(&json!({"event": "bench", "payload": {"n": n}, "id": format!("m{n}")}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(response.status().as_u16(), 201);
                sent_at.push((n, at));
            }
        }));
    }

    let mut received_at = vec![Duration::ZERO; options.messages];
    for _ in 0..options.messages {
        let (at, envelope) = rx.recv().await.expect("subscriber open");
        let n = envelope["payload"]["n"].as_u64().unwrap() as usize;
        received_at[n] = at - origin;
        client
            .emit(
                "received",
                json!({"clientId": "bench-sub", "id": envelope["id"]}),
            )
            .await
            .expect("ack");
    }
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(options.messages);
    for task in tasks {
        for (n, sent) in task.await.unwrap() {
            latencies.push(received_at[n].saturating_sub(sent));
        }
    }
    latencies.sort();
    let rate = options.messages as f64 / elapsed.as_secs_f64();
    println!(
        "| durable publish → live push → ack | {} messages, {} HTTP publishers, 1 acking socket | {:.0} msg/s | p50 {} · p90 {} · p99 {} · max {} |",
        options.messages,
        options.publishers,
        rate,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
    let _ = client.disconnect().await;
}

/// Fills an offline client's inbox with batch publishes, then times a `getAll` of all of it.
async fn catch_up(url: &str, options: &Options) {
    let http = reqwest::Client::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = subscriber(url, "item", tx).await;
    call(
        &client,
        "subscribe",
        json!({"clientId": "bench-reader", "queue": "bulk"}),
    )
    .await;
    let started = Instant::now();
    for start in (0..options.catch_up).step_by(1000) {
        let batch: Vec<Value> = (start..(start + 1000).min(options.catch_up))
            .map(|n| json!({"queue": "bulk", "event": "item", "payload": {"n": n}}))
            .collect();
        let response = http
            .post(format!("{url}/v1/messages"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    let publish_elapsed = started.elapsed();
    // Drop the live pushes of the fill; catch-up is what is measured.
    while rx.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}

    let started = Instant::now();
    client
        .emit("getAll", json!({"clientId": "bench-reader"}))
        .await
        .unwrap();
    for expected in 0..options.catch_up {
        let (_, envelope) = rx.recv().await.unwrap();
        assert_eq!(envelope["payload"]["n"], expected, "catch-up out of order");
    }
    let elapsed = started.elapsed();
    println!(
        "| batch publish (1000 per request) | {} messages | {:.0} msg/s | |",
        options.catch_up,
        options.catch_up as f64 / publish_elapsed.as_secs_f64()
    );
    println!(
        "| catch-up (getAll) | {} messages to 1 socket | {:.0} msg/s | total {:.2} s |",
        options.catch_up,
        options.catch_up as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let _ = client.disconnect().await;
}

fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let (url, stop, server) = start_server(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| scenario | load | throughput | latency |");
    println!("|---|---|---|---|");
    runtime.block_on(async {
        live(&url, &options).await;
        catch_up(&url, &options).await;
    });
    let _ = stop.send(());
    server.join().unwrap();
}
