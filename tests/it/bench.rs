//! The load tool, `queuehub-bench`, run as a user runs it (the built binary) against a real
//! server: what it reports must be what the server did.

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{Http, WAIT, spawn_app};

/// Runs the bench binary with `args`; returns its exit code and its JSON report.
async fn bench(args: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_queuehub-bench"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the bench finishes within its time limit")
        .expect("the bench runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (output.status.code(), report, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_publish_run_reports_every_delivery_once_and_the_server_saw_every_ack() {
    let app = spawn_app().await;
    let (code, report, text) = bench(&[
        "publish",
        "--url",
        &app.url,
        "--subscribers",
        "2",
        "--messages",
        "200",
        "--concurrency",
        "4",
        "--timeout",
        "30",
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["published"], 200, "{report}");
    assert_eq!(report["deliveries"], 400, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["unexpected"], 0, "{report}");
    assert_eq!(report["latency_ms"]["count"], 400, "{report}");

    // The server agrees: 200 messages published to the bench's queue, and each of the two
    // subscribers acked all of them (acks are sent without an answer, so allow them a
    // moment to be applied).
    let queue = report["params"]["load"]["queue"]
        .as_str()
        .expect("the report names its queue")
        .to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    let detail = loop {
        let (status, detail) = app.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(status, 200, "{detail}");
        if detail["acked"] == 400 || tokio::time::Instant::now() > deadline {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(detail["published"], 200, "{detail}");
    assert_eq!(detail["acked"], 400, "{detail}");
    assert_eq!(detail["subscribers"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn the_bench_refuses_a_target_that_is_not_on_this_machine() {
    // 192.0.2.1 is a documentation address: resolving a literal sends nothing anywhere.
    let (code, report, text) = bench(&["publish", "--url", "http://192.0.2.1:3000"]).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--allow-remote"), "{text}");
    assert_eq!(report, Value::Null, "no report is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_work_run_hands_each_job_to_exactly_one_of_the_workers() {
    let app = spawn_app().await;
    let (code, report, text) = bench(&[
        "work",
        "--url",
        &app.url,
        "--workers",
        "3",
        "--producers",
        "2",
        "--jobs",
        "150",
        "--timeout",
        "30",
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["deliveries"], 150, "{report}");
    assert_eq!(
        (report["missing"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(0))
    );
    let per_worker: Vec<u64> = report["extra"]["jobs_per_worker"]
        .as_array()
        .expect("jobs per worker")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(per_worker.len(), 3, "{report}");
    assert_eq!(per_worker.iter().sum::<u64>(), 150, "{report}");
    app.stop().await;
}

/// Waits until the server shows `acked` acks on `queue` (acks are sent without an answer),
/// or [`WAIT`] passes; returns the queue's detail.
async fn acked(app: &crate::helpers::TestApp, queue: &str, acked: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, detail) = app.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(status, 200, "{detail}");
        if detail["acked"] == acked || tokio::time::Instant::now() > deadline {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fanout_run_reports_each_message_to_every_subscriber_once() {
    let app = spawn_app().await;
    let (code, report, text) = bench(&[
        "fanout",
        "--url",
        &app.url,
        "--subscribers",
        "5",
        "--rate",
        "20",
        "--duration",
        "1",
        "--timeout",
        "30",
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["published"], 20, "{report}");
    assert_eq!(report["deliveries"], 100, "{report}");
    assert_eq!(
        (report["missing"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    assert_eq!(report["latency_ms"]["count"], 100, "{report}");
    let queue = report["params"]["load"]["queue"]
        .as_str()
        .expect("the report names its queue");
    let detail = acked(&app, queue, 100).await;
    assert_eq!(detail["published"], 20, "{detail}");
    assert_eq!(detail["acked"], 100, "{detail}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_catchup_run_gets_every_missed_message_once_through_get_all() {
    let app = spawn_app().await;
    let (code, report, text) = bench(&[
        "catchup",
        "--url",
        &app.url,
        "--messages",
        "300",
        "--batch",
        "100",
        "--timeout",
        "30",
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["published"], 300, "{report}");
    assert_eq!(report["deliveries"], 300, "{report}");
    assert_eq!(
        (report["missing"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    // The server had kept all 300 for the client that was away, and answered getAll with
    // them all.
    assert_eq!(report["extra"]["pending_at_subscribe"], 300, "{report}");
    assert_eq!(report["extra"]["getall_answer"]["count"], 300, "{report}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_idle_run_keeps_every_socket_and_reads_the_servers_memory() {
    let app = spawn_app().await;
    // The server runs inside this test process: its memory is this process's.
    let pid = std::process::id().to_string();
    let (code, report, text) = bench(&[
        "idle",
        "--url",
        &app.url,
        "--sockets",
        "20",
        "--settle-ms",
        "100",
        "--pid",
        &pid,
        "--timeout",
        "30",
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["subscribers"], 20, "{report}");
    assert_eq!(report["extra"]["dropped_while_idle"], 0, "{report}");
    let before = report["extra"]["rss_before_kib"].as_u64();
    let after = report["extra"]["rss_after_kib"].as_u64();
    assert!(
        before.is_some_and(|kib| kib > 0) && after.is_some_and(|kib| kib > 0),
        "the report reads the server's memory from /proc: {report}"
    );
    assert!(
        report["extra"]["rss_per_socket_bytes"].is_number(),
        "{report}"
    );
    app.stop().await;
}
