//! `catchup`: a client subscribes and goes away; N messages are published while it is away
//! (arrays over HTTP); then it connects again, subscribes, asks `getAll` and acks each
//! message as it arrives. Reports the time from reconnecting to the last message (and to
//! `getAll`'s answer), messages per second, and each message's arrival time since
//! reconnecting as the latency.

use std::sync::atomic::AtomicU64;

use serde_json::json;
use tokio::time::Instant;

use super::{Live, Load, Run, publish, subscribe};
use crate::events;
use crate::progress::Progress;
use crate::protocol::Packet;
use crate::report::{Report, Status};
use crate::tally::{Percentiles, Tally};

/// Runs the scenario with `messages` published in arrays of `batch`.
pub async fn run(run: &Run, messages: u64, batch: usize) -> Report {
    let queue = run.queue("catchup");
    let client = run.client("catchup", 0);
    let params = json!({"messages": messages, "batch": batch});
    let mut report = Report::new("catchup", run.label.clone(), &run.url, params);
    report.subscribers = 1;
    if let Err(err) = run_into(run, &mut report, &queue, &client, messages, batch).await {
        report.status = Status::Failed;
        report.note = Some(format!("{err:#}"));
    }
    report
}

async fn run_into(
    run: &Run,
    report: &mut Report,
    queue: &str,
    client: &str,
    messages: u64,
    batch: usize,
) -> anyhow::Result<()> {
    // Subscribe, then go away.
    let (socket, _) = subscribe(run, client, queue, None).await?;
    socket.close().await;

    let load = Load {
        queue: queue.to_owned(),
        total: messages,
        concurrency: 4,
        batch: Some(batch),
        rate: None,
        payload_bytes: 0,
    };
    let published = publish(run, &load).await;
    report.published = published.sent.count();
    report.publish_errors = published.errors;
    report.publish_latency_ms = Percentiles::of(&published.latency);
    if let Some(error) = &published.first_error {
        report.error(error);
    }
    report.extra.insert(
        "publish_s".into(),
        json!(published.began.elapsed().as_secs_f64()),
    );

    // Come back: subscribe, getAll, ack each as it arrives.
    let back = Instant::now();
    let (mut socket, answer) = subscribe(run, client, queue, None).await?;
    report
        .extra
        .insert("pending_at_subscribe".into(), answer["pending"].clone());
    let live = Live::per_subscriber();
    let progress = Progress::new("catchup", "messages", report.published);
    let mut tally = Tally::new(messages as usize);
    let mut last = None;
    let mut on_packet = |packet: Packet<'_>, out: &mut Vec<String>| {
        if let Packet::Event { args, .. } = packet
            && let Some(delivery) = events::delivery(args)
        {
            let now = Instant::now();
            let since = now.saturating_duration_since(back).as_micros() as u64;
            let first = tally.record(delivery.n, since);
            live.delivered(delivery.n, first);
            last = Some(now);
            out.push(events::received(client, &delivery.id));
        }
    };
    let get_all = json!({"clientId": client, "queue": queue});
    let answered = socket
        .call("getAll", &get_all, run.deadline, &mut on_packet)
        .await;
    let answered_at = Instant::now();
    match &answered {
        Ok(answer) => {
            report.extra.insert("getall_answer".into(), answer.clone());
            report.extra.insert(
                "getall_answer_s".into(),
                json!(answered_at.duration_since(back).as_secs_f64()),
            );
        }
        Err(err) => report.error(format!("getAll: {err:#}")),
    }
    // Messages may still be on their way after the answer (a server may answer first).
    let target = AtomicU64::new(report.published);
    let straggling = async {
        while live.unique.load(std::sync::atomic::Ordering::Relaxed) < report.published {
            if socket.recv(&mut on_packet).await.is_err() {
                break;
            }
        }
    };
    let timed_out = tokio::select! {
        () = straggling => false,
        timed_out = super::wait_for(run, &live, &progress, &target) => timed_out,
    };
    progress.finish();
    socket.close().await;

    report.add_check(0, tally.check(&published.sent));
    report.deliveries = tally.deliveries;
    report.timed_out = timed_out || answered.is_err();
    let end = last.unwrap_or(answered_at).max(answered_at);
    report.elapsed_s = end.saturating_duration_since(back).as_secs_f64();
    report.deliveries_per_s = report.deliveries as f64 / report.elapsed_s.max(1e-9);
    report.latency_ms = Percentiles::of(&tally.latency);
    report.settle();
    Ok(())
}
