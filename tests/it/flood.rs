//! A socket that floods the server with events and never reads costs a bounded amount of
//! memory and log, and what it cost is freed when it goes. The real binary, a bare WebSocket
//! (a client library would read), and the server's resident memory from /proc.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Http, ServerProcess, data_dir, raw_socket};

const MIB: u64 = 1024 * 1024;

/// Sends `received` events asking for an answer, as fast as the connection takes them, for
/// `period` (and at most `limit` events); never reads. Returns how many it sent.
async fn flood(url: &str, period: Duration, limit: u64) -> u64 {
    let mut ws = raw_socket(url).await;
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < period && sent < limit {
        for _ in 0..500 {
            sent += 1;
            let event = json!(["received", {"clientId": "flooder", "id": format!("m{sent}")}]);
            if ws
                .feed(Message::text(format!("42{sent}{event}")))
                .await
                .is_err()
            {
                return sent;
            }
        }
        if ws.flush().await.is_err() {
            return sent;
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_floods_and_never_reads_costs_bounded_memory_given_back_when_it_goes() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    // Warm up what every server allocates once (runtime, store, a socket's machinery).
    flood(&server.url, Duration::from_millis(500), 20_000).await;
    let before = server.settled_resident_bytes().await;

    // Sample the server's memory while one socket floods for six seconds.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = {
        let (peak, pid) = (Arc::clone(&peak), server.pid());
        tokio::spawn(async move {
            loop {
                if let Some(rss) = resident_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let sent = flood(&server.url, Duration::from_secs(6), 3_000_000).await;
    sampling.abort();
    let peak = peak.load(Ordering::Relaxed);
    let after = server.settled_resident_bytes().await;

    // What one socket may hold: 16 384 waiting events (at most 8 MiB counted), 1024 answers
    // waiting for it, 2048 packets in its buffer (the default), each a few hundred bytes here;
    // the rest is the allocator's slack. 64 MiB is several times that. Unbounded, the same
    // flood took the server from 10 MB to 860 MB in 8 s.
    let bound = 64 * MIB;
    assert!(
        peak.saturating_sub(before) < bound,
        "{sent} events sent; resident MiB before: {}, peak: {}",
        before / MIB,
        peak / MIB
    );
    // Once the socket is gone, what it held is given back (to the allocator at least): the
    // server is back within half the bound of where it started.
    assert!(
        after.saturating_sub(before) < bound / 2,
        "resident MiB before: {}, peak: {}, after it left: {}",
        before / MIB,
        peak / MIB,
        after / MIB
    );
    // The server still serves, and its log did not grow with the flood: refusals are logged
    // at a bounded rate (it logged every one of them, 160 MB in 20 s, before).
    assert_eq!(server.get("/healthz").await.0, 200);
    let refusal_lines = server
        .log()
        .iter()
        .filter(|line| line.contains("refused"))
        .count();
    assert!(
        refusal_lines < 50,
        "{refusal_lines} log lines about refused events for {sent} events"
    );
}

/// A process's resident memory in bytes (VmRSS), if it still runs.
fn resident_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
