//! A socket that floods the server with events and never reads costs a bounded amount of
//! memory and log, and what it cost is freed when it goes. The real binary, a bare WebSocket
//! (a client library would read), and the server's resident memory from /proc.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, ServerProcess, data_dir, next_text, raw_socket_with_small_window_and_sid, unique,
};

const MIB: u64 = 1024 * 1024;

/// The receive buffer of the flooding socket: small, so that the answers it never reads
/// fill the server's buffers for it after a few thousand events, rather than after its
/// kernel has absorbed megabytes of them (up to 32 MiB).
const WINDOW: u32 = 4096;

/// Events one socket may have waiting to be handled (`QUEUE_LENGTH` in
/// src/socket/connection.rs): a flood that stays under it proves nothing.
const SOCKET_QUEUE: u64 = 16_384;

/// Subscribes a fresh client, then sends `received` events for it asking for an answer, as
/// fast as the connection takes them, for `period` (and at most `limit` events); never
/// reads. The acks name no stored message: each is answered `removed: false`, so the only
/// refusals are the server's bounds (a full event queue, answers dropped because the socket
/// does not read them). Returns how many it sent, and the socket's id.
async fn flood(url: &str, period: Duration, limit: u64) -> (u64, String) {
    let (mut ws, sid) = raw_socket_with_small_window_and_sid(url, WINDOW).await;
    let client = unique("flooder");
    let subscribe = json!(["subscribe", {"clientId": client, "queue": unique("flood")}]);
    ws.send(Message::text(format!("420{subscribe}")))
        .await
        .unwrap();
    let answer = next_text(&mut ws).await.expect("the subscribe's answer");
    assert!(
        answer.starts_with("430") && answer.contains(r#""ok":true"#),
        "{answer}"
    );
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < period && sent < limit {
        for _ in 0..500 {
            sent += 1;
            let event = json!(["received", {"clientId": client, "id": format!("m{sent}")}]);
            if ws
                .feed(Message::text(format!("42{sent}{event}")))
                .await
                .is_err()
            {
                return (sent, sid);
            }
        }
        if ws.flush().await.is_err() {
            return (sent, sid);
        }
    }
    (sent, sid)
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
    let (sent, sid) = flood(&server.url, Duration::from_secs(6), 3_000_000).await;
    sampling.abort();
    let peak = peak.load(Ordering::Relaxed);
    let after = server.settled_resident_bytes().await;

    // What one socket may hold: 16 384 waiting events (at most 8 MiB counted), 1024 answers
    // waiting for it, 2048 packets in its buffer (the default), each a few hundred bytes here;
    // the rest is the allocator's slack. 64 MiB is several times that. Unbounded, a flood
    // like this one (acks of a client that had not subscribed, over an ordinary connection)
    // took the server from 10 MB to 860 MB in 8 s.
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
    let log = server.log();
    let refusal_lines = log.iter().filter(|line| line.contains("refused")).count();
    assert!(
        refusal_lines < 50,
        "{refusal_lines} log lines about refused events for {sent} events"
    );
    // And the flood did reach the bounds that the figures above are about: it sent more
    // events than the socket may have waiting, and the server refused some of them for a
    // bound (a full queue: `rate_limited`; unread answers: `reply_dropped`), as its log says
    // (the first refusal of a socket is logged at once, at INFO).
    assert!(
        sent > SOCKET_QUEUE,
        "only {sent} events sent, no more than the {SOCKET_QUEUE} a socket may have waiting"
    );
    let bound_reached = log.iter().any(|line| {
        line.contains("event refused")
            && line.contains(&format!("sid={sid} "))
            && (line.contains("code=rate_limited") || line.contains("code=reply_dropped"))
    });
    assert!(
        bound_reached,
        "no event of the flooding socket {sid} was refused for a bound ({sent} sent): {:#?}",
        log.iter()
            .filter(|line| line.contains("refused"))
            .collect::<Vec<_>>()
    );
}

/// A process's resident memory in bytes (VmRSS), if it still runs.
fn resident_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
