//! `publish` and `fanout`: S subscribers (distinct clients on one queue, acking each message
//! as it arrives) receive every message published over HTTP. `publish` sends as fast as the
//! server answers (closed loop, C requests in flight, single messages or arrays); `fanout`
//! sends R messages per second for T seconds on a schedule (open loop). Latency runs from
//! the message's send time (publish) or scheduled time (fanout) to its arrival.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use tokio::time::Instant;

use super::{Live, Load, Run, publish, receive_all, stop_all, subscribe_all, wait_for};
use crate::progress::Progress;
use crate::report::{Report, Status};
use crate::tally::{self, Percentiles};

/// Runs `scenario` (`publish` or `fanout`) with `subscribers` receiving `load` (whose queue
/// is chosen here).
pub async fn run(run: &Run, scenario: &str, subscribers: usize, mut load: Load) -> Report {
    load.queue = run.queue(scenario);
    let params = json!({"subscribers": subscribers, "load": &load});
    let mut report = Report::new(scenario, run.label.clone(), &run.url, params);
    report.subscribers = subscribers;
    let sockets = match subscribe_all(run, subscribers, &load.queue, None, |i| {
        run.client(scenario, i)
    })
    .await
    {
        Ok(sockets) => sockets,
        Err(err) => {
            report.status = Status::Failed;
            report.note = Some(format!("subscribing: {err:#}"));
            return report;
        }
    };

    let live = Live::per_subscriber();
    let (stop, receivers) = receive_all(run, sockets, load.total as usize, &live);
    let progress = Progress::new(scenario, "deliveries", load.total * subscribers as u64);
    let target = AtomicU64::new(u64::MAX);
    let (published, timed_out) = tokio::join!(
        async {
            let published = publish(run, &load).await;
            target.store(
                published.sent.count() * subscribers as u64,
                Ordering::Relaxed,
            );
            published
        },
        wait_for(run, &live, &progress, &target),
    );
    progress.finish();
    let received = stop_all(stop, receivers).await;

    let mut latency = tally::histogram();
    let mut last = None;
    for (i, seen) in received.iter().enumerate() {
        report.add_check(i, seen.tally.check(&published.sent));
        report.deliveries += seen.tally.deliveries;
        report.server_errors += seen.server_errors;
        if let Some(error) = &seen.first_error {
            report.error(error);
        }
        let _ = latency.add(&seen.tally.latency);
        last = last.max(seen.last);
    }
    if received.len() < subscribers {
        report.error(format!(
            "{} subscriber tasks failed",
            subscribers - received.len()
        ));
        report.missing += (subscribers - received.len()) as u64 * published.sent.count();
    }
    let end = last.unwrap_or_else(Instant::now);
    report.elapsed_s = end.saturating_duration_since(published.began).as_secs_f64();
    report.deliveries_per_s = report.deliveries as f64 / report.elapsed_s.max(1e-9);
    report.latency_ms = Percentiles::of(&latency);
    report.publish_latency_ms = Percentiles::of(&published.latency);
    report.published = published.sent.count();
    report.publish_errors = published.errors;
    if let Some(error) = published.first_error {
        report.error(error);
    }
    if let Some(rate) = load.rate {
        report.extra.insert(
            "offered_deliveries_per_s".into(),
            json!(rate * subscribers as f64),
        );
    }
    report.timed_out = timed_out;
    report.settle();
    report
}
