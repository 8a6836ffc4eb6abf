//! `idle`: K sockets, each a distinct client subscribed to one queue, connected and then
//! left idle (answering pings). With `--pid` of the server, its resident memory (VmRSS in
//! /proc/PID/status) is read before they connect and after they settle: the difference per
//! socket is what an idle subscriber costs the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use super::{Live, Run, close_all, receive_all, stop_all, subscribe};
use crate::process::rss_kib;
use crate::progress::Progress;
use crate::report::{Report, Status};

/// Runs the scenario: `sockets` sockets, memory read `settle` after the last subscribed.
pub async fn run(run: &Run, sockets: usize, pid: Option<u32>, settle: Duration) -> Report {
    let queue = run.queue("idle");
    let params = json!({"sockets": sockets, "pid": pid, "settle_ms": settle.as_millis() as u64});
    let mut report = Report::new("idle", run.label.clone(), &run.url, params);
    report.subscribers = sockets;
    let rss_before = pid.map(rss_kib).transpose();
    let rss_before = match rss_before {
        Ok(rss) => rss,
        Err(err) => {
            report.status = Status::Failed;
            report.note = Some(err);
            return report;
        }
    };

    let progress = Progress::new("idle", "sockets", sockets as u64);
    let connected = AtomicU64::new(0);
    let began = Instant::now();
    let results: Vec<anyhow::Result<_>> = futures_util::stream::iter(0..sockets)
        .map(|i| {
            let client_id = run.client("idle", i);
            let (queue, connected, progress) = (&queue, &connected, &progress);
            async move {
                let (socket, answer) = subscribe(run, &client_id, queue, None).await?;
                progress.set(connected.fetch_add(1, Ordering::Relaxed) + 1);
                Ok((socket, client_id, answer))
            }
        })
        .buffered(64)
        .collect()
        .await;
    progress.finish();
    let connect_s = began.elapsed().as_secs_f64();
    let mut open = Vec::with_capacity(sockets);
    for result in results {
        match result {
            Ok(socket) => open.push(socket),
            Err(err) => report.error(format!("{err:#}")),
        }
    }
    if open.len() < sockets {
        report.status = Status::Failed;
        report.note = Some(format!(
            "only {} of {sockets} sockets subscribed",
            open.len()
        ));
        close_all(open.into_iter().map(|(s, _, _)| s)).await;
        return report;
    }

    let live = Live::per_subscriber();
    let (stop, keepers) = receive_all(run, open, 0, &live);
    tokio::time::sleep(settle.min(run.deadline.saturating_duration_since(Instant::now()))).await;
    let rss_after = pid.map(rss_kib).transpose().unwrap_or(None);
    let held = stop_all(stop, keepers).await;
    let dropped = held.iter().filter(|h| h.first_error.is_some()).count();
    for seen in &held {
        if let Some(error) = &seen.first_error {
            report.error(error);
        }
    }

    report.elapsed_s = began.elapsed().as_secs_f64();
    report.extra.insert("connect_s".into(), json!(connect_s));
    report.extra.insert(
        "sockets_per_s".into(),
        json!(sockets as f64 / connect_s.max(1e-9)),
    );
    report
        .extra
        .insert("dropped_while_idle".into(), json!(dropped));
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.extra.insert("rss_before_kib".into(), json!(before));
        report.extra.insert("rss_after_kib".into(), json!(after));
        let per_socket = (after as f64 - before as f64) * 1024.0 / sockets.max(1) as f64;
        report
            .extra
            .insert("rss_per_socket_bytes".into(), json!(per_socket.round()));
    } else {
        report.note = Some("no --pid given: server memory not measured".into());
    }
    report.settle();
    if dropped > 0 {
        report.status = Status::Incomplete;
        report.note = Some(format!("{dropped} sockets dropped while idle"));
    }
    report
}
