//! `work`: W worker sockets share one work-mode client (`subscribe {mode: "work"}`), P
//! producers POST jobs of a given size, each worker acks each job with `received`. Together
//! the workers must receive each job once. Reports jobs per second and the latency from a
//! job's publish to its arrival at a worker.
//!
//! A server without work mode (the Node hub) either refuses the subscribe or ignores `mode`
//! and subscribes every worker for every message. The bench asks `GET /v1/queues/{queue}`
//! whether the subscription is in work mode, and if not it says so and skips.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::{
    Live, Load, Refused, Run, close_all, publish, receive_all, stop_all, subscribe_all, wait_for,
};
use crate::http::HttpConn;
use crate::progress::Progress;
use crate::report::{Report, Status};
use crate::tally::{Percentiles, Tally};

/// What the work scenario runs with.
pub struct Work {
    pub workers: usize,
    pub producers: usize,
    pub jobs: u64,
    pub payload_bytes: usize,
    pub prefetch: Option<u32>,
    /// Jobs per put (`None`: one per request).
    pub batch: Option<usize>,
}

/// Runs the scenario.
pub async fn run(run: &Run, work: Work) -> Report {
    let queue = run.queue("work");
    let client = run.client("work", 0);
    let params = json!({"workers": work.workers, "producers": work.producers, "jobs": work.jobs,
        "payload_bytes": work.payload_bytes, "prefetch": work.prefetch, "batch": work.batch});
    let mut report = Report::new("work", run.label.clone(), &run.url, params);
    report.subscribers = work.workers;
    let workers = match subscribe_all(run, work.workers, &queue, Some(work.prefetch), |_| {
        client.clone()
    })
    .await
    {
        Ok(workers) => workers,
        Err(err) if err.downcast_ref::<Refused>().is_some() => {
            report.status = Status::Skipped;
            report.note = Some(format!("the server refused a work-mode subscribe: {err:#}"));
            return report;
        }
        Err(err) => {
            report.status = Status::Failed;
            report.note = Some(format!("subscribing the workers: {err:#}"));
            return report;
        }
    };
    if let Err(why) = confirm_work_mode(run, &queue, &client).await {
        report.status = Status::Skipped;
        report.note = Some(format!("the server does not support work mode: {why}"));
        close_all(workers.into_iter().map(|(s, _, _)| s)).await;
        return report;
    }

    let live = Live::shared(work.jobs as usize);
    let (stop, receivers) = receive_all(run, workers, work.jobs as usize, &live);
    let progress = Progress::new("work", "jobs", work.jobs);
    let load = Load {
        queue: queue.clone(),
        total: work.jobs,
        concurrency: work.producers,
        batch: work.batch,
        rate: None,
        payload_bytes: work.payload_bytes,
    };
    let target = AtomicU64::new(u64::MAX);
    let (published, timed_out) = tokio::join!(
        async {
            let published = publish(run, &load).await;
            target.store(published.sent.count(), Ordering::Relaxed);
            published
        },
        wait_for(run, &live, &progress, &target),
    );
    progress.finish();
    let received = stop_all(stop, receivers).await;

    let mut together = Tally::new(work.jobs as usize);
    let mut last = None;
    let mut per_worker = Vec::new();
    for seen in &received {
        together.merge(&seen.tally);
        per_worker.push(seen.tally.deliveries);
        report.server_errors += seen.server_errors;
        if let Some(error) = &seen.first_error {
            report.error(error);
        }
        last = last.max(seen.last);
    }
    report.add_check(0, together.check(&published.sent));
    report.deliveries = together.deliveries;
    let end = last.unwrap_or_else(tokio::time::Instant::now);
    report.elapsed_s = end.saturating_duration_since(published.began).as_secs_f64();
    report.deliveries_per_s = report.deliveries as f64 / report.elapsed_s.max(1e-9);
    report.latency_ms = Percentiles::of(&together.latency);
    report.publish_latency_ms = Percentiles::of(&published.latency);
    report.published = published.sent.count();
    report.publish_errors = published.errors;
    if let Some(error) = published.first_error {
        report.error(error);
    }
    report
        .extra
        .insert("jobs_per_worker".into(), json!(per_worker));
    report.timed_out = timed_out;
    report.settle();
    report
}

/// Asks the server's queue detail whether `client`'s subscription to `queue` is in work
/// mode; says what it found otherwise.
async fn confirm_work_mode(run: &Run, queue: &str, client: &str) -> Result<(), String> {
    let path = format!("/v1/queues/{queue}");
    let (status, detail) = async {
        let mut conn = HttpConn::connect(&run.target).await?;
        conn.get_json(&path).await
    }
    .await
    .map_err(|err: anyhow::Error| format!("GET {path} failed: {err:#}"))?;
    if status != 200 {
        return Err(format!(
            "GET {path} answered {status}, so work mode cannot be confirmed"
        ));
    }
    let subscription = detail["subscribers"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["clientId"] == client));
    match subscription.map(|s| &s["mode"]) {
        Some(Value::String(mode)) if mode == "work" => Ok(()),
        Some(Value::String(mode)) => Err(format!(
            "GET {path} shows the subscription in mode '{mode}', so every worker would get every job"
        )),
        Some(_) => Err(format!(
            "GET {path} shows the subscription without a mode: the server ignored mode \"work\" \
             and would send every job to every worker"
        )),
        None => Err(format!("GET {path} does not list the client {client}")),
    }
}
