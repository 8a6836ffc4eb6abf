//! A scenario's [`Report`]: what it measured and whether everything arrived, printed for a
//! person and written as JSON (`--json FILE`) for scripts.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::tally::{Check, Percentiles};

/// How a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything published arrived, once per subscriber, before the time limit.
    Complete,
    /// The time limit ran out, something is missing, doubled or unexpected, or publishes
    /// failed; the figures say what.
    Incomplete,
    /// The server does not support what the scenario needs (the note says what).
    Skipped,
    /// The scenario could not run (the note says why).
    Failed,
}

/// One subscriber whose deliveries were not clean.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberCheck {
    pub subscriber: usize,
    #[serde(flatten)]
    pub check: Check,
}

/// What a scenario measured; see the module docs. Times are seconds, latencies
/// milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub label: Option<String>,
    pub url: String,
    pub status: Status,
    pub note: Option<String>,
    /// The scenario's parameters, as run.
    pub params: Value,
    pub elapsed_s: f64,
    /// Messages the server accepted.
    pub published: u64,
    pub publish_errors: u64,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    /// From the message's send (or scheduled) time to its arrival at a subscriber.
    pub latency_ms: Option<Percentiles>,
    /// From sending a publish request to its answer.
    pub publish_latency_ms: Option<Percentiles>,
    pub subscribers: usize,
    /// Summed over subscribers (in work mode: over the client's workers together).
    pub missing: u64,
    pub duplicates: u64,
    pub unexpected: u64,
    /// The subscribers that missed or doubled something (at most 20 listed).
    pub unclean_subscribers: Vec<SubscriberCheck>,
    /// `mq:error` events and refused acks the server sent.
    pub server_errors: u64,
    pub first_error: Option<String>,
    pub timed_out: bool,
    /// Figures of this scenario only.
    pub extra: Map<String, Value>,
}

impl Report {
    /// An empty report of `scenario`, to be filled in.
    pub fn new(scenario: &str, label: Option<String>, url: &str, params: Value) -> Report {
        Report {
            scenario: scenario.to_owned(),
            label,
            url: url.to_owned(),
            status: Status::Complete,
            note: None,
            params,
            elapsed_s: 0.0,
            published: 0,
            publish_errors: 0,
            deliveries: 0,
            deliveries_per_s: 0.0,
            latency_ms: None,
            publish_latency_ms: None,
            subscribers: 0,
            missing: 0,
            duplicates: 0,
            unexpected: 0,
            unclean_subscribers: Vec::new(),
            server_errors: 0,
            first_error: None,
            timed_out: false,
            extra: Map::new(),
        }
    }

    /// Adds one subscriber's check to the totals.
    pub fn add_check(&mut self, subscriber: usize, check: Check) {
        self.missing += check.missing;
        self.duplicates += check.duplicates;
        self.unexpected += check.unexpected;
        if !check.is_clean() && self.unclean_subscribers.len() < 20 {
            self.unclean_subscribers
                .push(SubscriberCheck { subscriber, check });
        }
    }

    /// Keeps the first error seen.
    pub fn error(&mut self, error: impl ToString) {
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    /// Sets the status from the figures (unless the scenario was skipped or failed).
    pub fn settle(&mut self) {
        if matches!(self.status, Status::Skipped | Status::Failed) {
            return;
        }
        let clean = self.missing == 0 && self.duplicates == 0 && self.unexpected == 0;
        self.status = if clean && !self.timed_out && self.publish_errors == 0 {
            Status::Complete
        } else {
            Status::Incomplete
        };
    }

    /// The text a person reads.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let label = self.label.as_deref().unwrap_or("server");
        let _ = writeln!(out, "{} · {label} · {}", self.scenario, self.url);
        let status = format!("{:?}", self.status).to_lowercase();
        if let Some(note) = &self.note {
            let _ = writeln!(out, "  {status}: {note}");
        }
        if matches!(self.status, Status::Skipped | Status::Failed) {
            return out;
        }
        let _ = writeln!(
            out,
            "  {status} in {:.2} s{}: {} deliveries, {:.0} deliveries/s; {} published, {} publish errors",
            self.elapsed_s,
            if self.timed_out { " (time limit)" } else { "" },
            self.deliveries,
            self.deliveries_per_s,
            self.published,
            self.publish_errors,
        );
        if let Some(p) = &self.latency_ms {
            let _ = writeln!(out, "  latency   {}", percentiles(p));
        }
        if let Some(p) = &self.publish_latency_ms {
            let _ = writeln!(out, "  publish   {}", percentiles(p));
        }
        let _ = writeln!(
            out,
            "  {} subscribers: {} missing, {} duplicates, {} unexpected; {} server errors",
            self.subscribers, self.missing, self.duplicates, self.unexpected, self.server_errors
        );
        for (key, value) in &self.extra {
            let _ = writeln!(out, "  {key}: {value}");
        }
        if let Some(error) = &self.first_error {
            let _ = writeln!(out, "  first error: {error}");
        }
        out
    }
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "ms p50 {:.2} · p90 {:.2} · p99 {:.2} · max {:.2} ({} samples)",
        p.p50, p.p90, p.p99, p.max, p.count
    )
}
