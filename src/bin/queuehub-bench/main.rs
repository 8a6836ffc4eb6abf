//! `queuehub-bench`: a load tool for any server of queuehub's protocol (queuehub itself, or
//! the Node hub it is compared with), over HTTP and socket.io's WebSocket transport, so that
//! both are measured by the same client in the same run. It is a client only: it shares no
//! code with the server.
//!
//! Each scenario (one file in `scenario/`) prints a report (throughput, latency percentiles,
//! and what went missing or arrived twice per subscriber) and can write it as JSON. Layout:
//! `protocol` (socket.io frames, pure), `events` (the queue's events and the bench's payload
//! mark), `socket` (the WebSocket client), `http` (publishing connections), `tally`
//! (completeness and latency accounting), `report`, `progress`, `target` (the loopback
//! rule), `selftest` (a trivial server, to measure the tool's own ceiling).

mod events;
mod http;
mod process;
mod progress;
mod protocol;
mod report;
mod scenario;
mod selftest;
mod socket;
mod tally;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use report::{Report, Status};
use scenario::{Load, Run};
use target::Target;

/// Load scenarios for a queuehub-protocol server (queuehub or the Node hub).
#[derive(Parser)]
#[command(name = "queuehub-bench", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options every scenario takes.
#[derive(Args, Clone)]
struct Common {
    /// The server's root URL (http:// only).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Seconds after which the scenario stops and reports what is still missing.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Allow a target that is not a loopback address (127.0.0.0/8, ::1).
    #[arg(long)]
    allow_remote: bool,
    /// Connect the sockets to these URLs in turn instead of --url (repeat it: the nodes of one
    /// deployment, say); publishes still go to --url.
    #[arg(long, value_name = "URL")]
    socket_url: Vec<String>,
    /// A name for the server in the report (e.g. "queuehub", "node-hub").
    #[arg(long)]
    label: Option<String>,
    /// The server's process id (same machine): the report then says how much CPU it used,
    /// and `idle` how much memory each socket costs it.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Subcommand)]
enum Scenario {
    /// S acking subscribers receive M messages published by C concurrent POSTs (closed loop).
    Publish {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Requests in flight (one HTTP connection each).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Publish arrays of B messages to /v1/messages instead of one per request.
        #[arg(long, value_name = "B")]
        batch: Option<usize>,
        /// Pad each payload to about this many bytes of JSON.
        #[arg(long, default_value_t = 0)]
        payload_bytes: usize,
    },
    /// S acking subscribers; R messages per second for T seconds, sent on schedule (open loop).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Connections publishing (a message waits for a free one; its latency still counts
        /// from its scheduled time).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 0)]
        payload_bytes: usize,
    },
    /// N messages published while a client is away; it comes back, getAll, acks each.
    Catchup {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Messages per publish request (arrays to /v1/messages).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// K idle subscribed sockets; with --pid, the server's memory per socket.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 2000)]
        sockets: usize,
        /// Milliseconds to wait after the last socket subscribed before reading memory.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
    },
    /// W workers share one work-mode client; P producers POST jobs; each job once.
    Work {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Puts in flight (one HTTP connection each). Each is answered once on disk, so P
        /// producers put at most P jobs per commit time: with 4, they and not the workers were
        /// the limit. 32 keep a backlog, so that the figure is the work cycle's.
        #[arg(long, default_value_t = 32)]
        producers: usize,
        #[arg(long, default_value_t = 40_000)]
        jobs: u64,
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
        /// Unacked jobs a worker may hold (the server's default if not given).
        #[arg(long)]
        prefetch: Option<u32>,
        /// Each producer puts arrays of B jobs to /v1/messages instead of one per request.
        #[arg(long, value_name = "B")]
        batch: Option<usize>,
    },
    /// The tool's own ceiling: publish and fanout against a trivial built-in server.
    Selftest {
        /// Also write the reports as a JSON array to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Seconds each scenario may take.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Messages per second of a fanout part (200 subscribers, 5 s); repeat it for several
        /// (a high rate shows the tool's ceiling, a low one its own latency floor).
        #[arg(long = "fanout-rate", value_name = "R", default_values_t = [1000.0])]
        fanout_rates: Vec<f64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(reports) => {
            let settled = reports
                .iter()
                .all(|r| matches!(r.status, Status::Complete | Status::Skipped));
            if settled {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("queuehub-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<Vec<Report>> {
    if let Scenario::Selftest {
        json,
        timeout,
        fanout_rates,
    } = cli.scenario
    {
        let reports = selftest(Duration::from_secs(timeout), &fanout_rates).await?;
        if let Some(path) = json {
            write_json(&path, &reports)?;
        }
        return Ok(reports);
    }
    let common = match &cli.scenario {
        Scenario::Publish { common, .. }
        | Scenario::Fanout { common, .. }
        | Scenario::Catchup { common, .. }
        | Scenario::Idle { common, .. }
        | Scenario::Work { common, .. } => common.clone(),
        Scenario::Selftest { .. } => unreachable!("handled above"),
    };
    let target = Target::resolve(&common.url, common.allow_remote).await?;
    let limit = Duration::from_secs(common.timeout);
    let mut socket_targets = Vec::new();
    for url in &common.socket_url {
        socket_targets.push(Target::resolve(url, common.allow_remote).await?);
    }
    let run = Run::new(target, &common.url, common.label.clone(), limit)
        .with_socket_targets(socket_targets);
    let usage = Usage::start(common.pid);
    let mut report = scenario(&run, cli.scenario, common.pid).await?;
    usage.finish(&mut report);
    print!("{}", report.text());
    if let Some(path) = &common.json {
        write_json(path, &report)?;
    }
    Ok(vec![report])
}

async fn scenario(run: &Run, scenario: Scenario, pid: Option<u32>) -> Result<Report> {
    Ok(match scenario {
        Scenario::Publish {
            subscribers,
            messages,
            concurrency,
            batch,
            payload_bytes,
            ..
        } => {
            if batch == Some(0) {
                bail!("--batch must be at least 1");
            }
            let load = Load {
                queue: String::new(),
                total: messages,
                concurrency,
                batch,
                rate: None,
                payload_bytes,
            };
            scenario::publish::run(run, "publish", subscribers, load).await
        }
        Scenario::Fanout {
            subscribers,
            rate,
            duration,
            concurrency,
            payload_bytes,
            common,
        } => {
            if !rate.is_finite() || rate <= 0.0 || duration >= common.timeout {
                bail!("fanout needs --rate > 0 and --duration shorter than --timeout");
            }
            let load = Load {
                queue: String::new(),
                total: (rate * duration as f64).round() as u64,
                concurrency,
                batch: None,
                rate: Some(rate),
                payload_bytes,
            };
            scenario::publish::run(run, "fanout", subscribers, load).await
        }
        Scenario::Catchup {
            messages, batch, ..
        } => scenario::catchup::run(run, messages, batch.max(1)).await,
        Scenario::Idle {
            sockets, settle_ms, ..
        } => scenario::idle::run(run, sockets, pid, Duration::from_millis(settle_ms)).await,
        Scenario::Work {
            workers,
            producers,
            jobs,
            payload_bytes,
            prefetch,
            batch,
            ..
        } => {
            if batch == Some(0) {
                bail!("--batch must be at least 1");
            }
            let work = scenario::work::Work {
                workers,
                producers,
                jobs,
                payload_bytes,
                prefetch,
                batch,
            };
            scenario::work::run(run, work).await
        }
        Scenario::Selftest { .. } => bail!("selftest is not a scenario against a server"),
    })
}

/// Runs publish (single and batched) and fanout (at each rate) against the trivial built-in
/// server.
async fn selftest(limit: Duration, fanout_rates: &[f64]) -> Result<Vec<Report>> {
    let server = selftest::start()?;
    let url = format!("http://{}", server.addr);
    let target = Target::resolve(&url, false).await?;
    let label = Some("trivial server".to_owned());
    let mut reports = Vec::new();
    let mut loads = vec![
        ("publish", 10, 20_000, 32, None, None),
        ("publish", 10, 100_000, 4, Some(100), None),
    ];
    for &rate in fanout_rates {
        loads.push(("fanout", 200, (rate * 5.0) as u64, 32, None, Some(rate)));
    }
    for (name, subscribers, total, concurrency, batch, rate) in loads {
        let run = Run::new(target.clone(), &url, label.clone(), limit);
        let load = Load {
            queue: String::new(),
            total,
            concurrency,
            batch,
            rate,
            payload_bytes: 0,
        };
        let usage = Usage::start(None);
        let mut report = scenario::publish::run(&run, name, subscribers, load).await;
        usage.finish(&mut report);
        print!("{}", report.text());
        reports.push(report);
    }
    drop(server);
    Ok(reports)
}

/// The CPU time the server (with `--pid`) and the bench used during a scenario, setup
/// included, in seconds and in cores (CPU seconds per second of the scenario).
struct Usage {
    began: std::time::Instant,
    server: Option<(u32, f64)>,
    bench: Option<f64>,
}

impl Usage {
    fn start(pid: Option<u32>) -> Usage {
        Usage {
            began: std::time::Instant::now(),
            server: pid.and_then(|pid| Some((pid, process::cpu_seconds(pid)?))),
            bench: process::cpu_seconds(std::process::id()),
        }
    }

    fn finish(self, report: &mut Report) {
        let wall = self.began.elapsed().as_secs_f64().max(1e-9);
        let mut put = |name: &str, before: Option<f64>, pid: u32| {
            if let (Some(before), Some(after)) = (before, process::cpu_seconds(pid)) {
                let used = after - before;
                let cores = (used / wall * 100.0).round() / 100.0;
                let used_s = (used * 100.0).round() / 100.0;
                report
                    .extra
                    .insert(format!("{name}_cpu_s"), serde_json::json!(used_s));
                report
                    .extra
                    .insert(format!("{name}_cores"), serde_json::json!(cores));
            }
        };
        if let Some((pid, before)) = self.server {
            put("server", Some(before), pid);
        }
        put("bench", self.bench, std::process::id());
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
