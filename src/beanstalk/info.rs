//! The commands that look without changing jobs: `peek` (by id, ready, delayed, buried),
//! `stats-job`, `stats-tube`, `stats`, the three lists, and `pause-tube` (which only holds
//! a tube's reserves back for a while). Where a field of beanstalkd's stats has no meaning
//! here it is 0 (docs/BEANSTALK.md lists them).

use std::time::{Duration, Instant};

use super::connection::Conn;
use super::protocol::{self, Tube};
use super::{body, tube};
use crate::broker::message::now_ms;
use crate::broker::{JobState, JobView, Peek, priority};
use crate::host;

const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";

/// Seconds from milliseconds, rounded down (beanstalkd reports whole seconds).
fn secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

/// A CPU time as beanstalkd's `rusage-*` fields write it: seconds and microseconds.
fn seconds_and_micros(time: Duration) -> String {
    format!("{}.{:06}", time.as_secs(), time.subsec_micros())
}

impl Conn {
    /// A job's `FOUND` reply, its body read from the store.
    async fn found(&self, job: &JobView) -> Vec<u8> {
        match self.shared.broker.payload_text(job.meta.seq).await {
            Ok(Some(text)) => {
                let body = body::decode(&job.meta.event, &text);
                protocol::job_reply("FOUND", job.meta.seq, &body)
            }
            _ => NOT_FOUND.to_vec(),
        }
    }

    /// Job `id` in the tube its queue is, if that tube's client holds it.
    fn job_view(&self, id: u64) -> Option<JobView> {
        let tube = self.tube_of(id)?;
        self.shared.broker.job(&tube::client(&tube), id)
    }

    /// `peek <id>`.
    pub(super) async fn peek(&self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-peek");
        match self.job_view(id) {
            Some(job) => self.found(&job).await,
            None => NOT_FOUND.to_vec(),
        }
    }

    /// `peek-ready`, `peek-delayed`, `peek-buried`: in the used tube.
    pub(super) async fn peek_in(&self, which: Peek) -> Vec<u8> {
        self.shared.stats.command(match which {
            Peek::Ready => "cmd-peek-ready",
            Peek::Delayed => "cmd-peek-delayed",
            Peek::Buried => "cmd-peek-buried",
        });
        let (client, queue) = (tube::client(&self.using), tube::queue(&self.using));
        match self.shared.broker.peek_job(&client, &queue, which) {
            Some(job) => self.found(&job).await,
            None => NOT_FOUND.to_vec(),
        }
    }

    /// `stats-job <id>`.
    pub(super) fn stats_job(&self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-stats-job");
        let Some(job) = self.job_view(id) else {
            return NOT_FOUND.to_vec();
        };
        let now = now_ms();
        let meta = &job.meta;
        let state = match job.state {
            JobState::Ready => "ready",
            JobState::Reserved => "reserved",
            JobState::Delayed => "delayed",
            JobState::Buried => "buried",
        };
        // The delay it was last put or released with, as beanstalkd keeps it (after it came
        // due or was kicked too). A message published over HTTP with `delayMs`: its due time
        // less its publish time, to the nearest second (two clocks read a moment apart).
        let delay = match meta.job.and_then(|j| j.delay_ms) {
            Some(delay) => delay,
            None => meta
                .deliver_at_ms
                .map_or(0, |at| at.saturating_sub(meta.published_at_ms) + 500),
        };
        let ttr = meta.job.and_then(|j| j.ttr_ms).unwrap_or(0);
        let left = match job.state {
            JobState::Reserved | JobState::Delayed => {
                job.until_ms.unwrap_or(now).saturating_sub(now)
            }
            _ => 0,
        };
        let tube = tube::of_queue(&meta.queue)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let counts = self.shared.counts.of(id);
        let yaml = protocol::yaml_dict(&[
            ("id", id.to_string()),
            ("tube", tube),
            ("state", state.into()),
            ("pri", priority(meta).to_string()),
            ("age", secs(now.saturating_sub(meta.published_at_ms))),
            ("delay", secs(delay)),
            ("ttr", secs(ttr)),
            ("time-left", secs(left)),
            ("file", "0".into()),
            ("reserves", job.reserves.to_string()),
            ("timeouts", counts.timeouts.to_string()),
            ("releases", counts.releases.to_string()),
            ("buries", counts.buries.to_string()),
            ("kicks", counts.kicks.to_string()),
        ]);
        protocol::ok_reply(&yaml)
    }

    /// Whether `tube` exists: beanstalkd's `default`, a tube a connection uses or
    /// watches, or a queue that is one.
    fn exists(&self, tube: &Tube) -> bool {
        tube.as_str() == "default"
            || self.shared.stats.tubes_in_use().contains(tube)
            || self.shared.broker.has_queue(&tube::queue(tube))
    }

    /// `stats-tube <tube>`.
    pub(super) fn stats_tube(&self, tube: &Tube) -> Vec<u8> {
        self.shared.stats.command("cmd-stats-tube");
        if !self.exists(tube) {
            return NOT_FOUND.to_vec();
        }
        let counts = self
            .shared
            .broker
            .tube_counts(&tube::client(tube), &tube::queue(tube));
        let total = self.shared.broker.published(&tube::queue(tube));
        let usage = self.shared.stats.tube_use(tube);
        let (pause, left) = match usage.paused {
            Some((until, length)) => (
                length.as_secs(),
                until.saturating_duration_since(Instant::now()).as_secs(),
            ),
            None => (0, 0),
        };
        let yaml = protocol::yaml_dict(&[
            ("name", tube.to_string()),
            ("current-jobs-urgent", counts.urgent.to_string()),
            ("current-jobs-ready", counts.ready.to_string()),
            ("current-jobs-reserved", counts.reserved.to_string()),
            ("current-jobs-delayed", counts.delayed.to_string()),
            ("current-jobs-buried", counts.buried.to_string()),
            ("total-jobs", total.to_string()),
            ("current-using", usage.using.to_string()),
            ("current-watching", usage.watching.to_string()),
            ("current-waiting", usage.waiting.to_string()),
            ("cmd-delete", usage.deletes.to_string()),
            ("cmd-pause-tube", usage.pauses.to_string()),
            ("pause", pause.to_string()),
            ("pause-time-left", left.to_string()),
        ]);
        protocol::ok_reply(&yaml)
    }

    /// Every tube: `default`, those in use, and the queues that are tubes.
    fn all_tubes(&self) -> Vec<Tube> {
        let mut tubes: Vec<Tube> = self
            .shared
            .broker
            .queue_names()
            .iter()
            .filter_map(tube::of_queue)
            .chain(self.shared.stats.tubes_in_use())
            .chain([Tube::default_tube()])
            .collect();
        tubes.sort();
        tubes.dedup();
        tubes
    }

    /// `stats`: the server's counters; the job counts are summed over every tube.
    pub(super) fn stats(&self) -> Vec<u8> {
        self.shared.stats.command("cmd-stats");
        let tubes = self.all_tubes();
        let mut jobs = crate::broker::TubeCounts::default();
        let mut total_jobs = 0;
        for tube in &tubes {
            let c = self
                .shared
                .broker
                .tube_counts(&tube::client(tube), &tube::queue(tube));
            jobs.urgent += c.urgent;
            jobs.ready += c.ready;
            jobs.reserved += c.reserved;
            jobs.delayed += c.delayed;
            jobs.buried += c.buried;
            total_jobs += self.shared.broker.published(&tube::queue(tube));
        }
        let totals = self.shared.stats.totals();
        let count = |name: &str| totals.commands.get(name).copied().unwrap_or(0).to_string();
        let mut fields: Vec<(&str, String)> = vec![
            ("current-jobs-urgent", jobs.urgent.to_string()),
            ("current-jobs-ready", jobs.ready.to_string()),
            ("current-jobs-reserved", jobs.reserved.to_string()),
            ("current-jobs-delayed", jobs.delayed.to_string()),
            ("current-jobs-buried", jobs.buried.to_string()),
        ];
        for name in [
            "cmd-put",
            "cmd-peek",
            "cmd-peek-ready",
            "cmd-peek-delayed",
            "cmd-peek-buried",
            "cmd-reserve",
            "cmd-reserve-with-timeout",
            "cmd-delete",
            "cmd-release",
            "cmd-use",
            "cmd-watch",
            "cmd-ignore",
            "cmd-bury",
            "cmd-kick",
            "cmd-touch",
            "cmd-stats",
            "cmd-stats-job",
            "cmd-stats-tube",
            "cmd-list-tubes",
            "cmd-list-tube-used",
            "cmd-list-tubes-watched",
            "cmd-pause-tube",
        ] {
            fields.push((name, count(name)));
        }
        let uptime = self.shared.stats.started.elapsed().as_secs();
        let cpu = host::cpu_time();
        fields.extend([
            ("job-timeouts", self.shared.counts.timeouts().to_string()),
            ("total-jobs", total_jobs.to_string()),
            ("max-job-size", self.shared.max_job_bytes.to_string()),
            ("current-tubes", tubes.len().to_string()),
            ("current-connections", totals.connections.to_string()),
            ("current-producers", totals.producers.to_string()),
            ("current-workers", totals.workers.to_string()),
            ("current-waiting", totals.waiting.to_string()),
            ("total-connections", totals.total_connections.to_string()),
            ("pid", std::process::id().to_string()),
            (
                "version",
                format!("\"queuehub {}\"", env!("CARGO_PKG_VERSION")),
            ),
            ("rusage-utime", seconds_and_micros(cpu.user)),
            ("rusage-stime", seconds_and_micros(cpu.system)),
            ("uptime", uptime.to_string()),
            ("binlog-oldest-index", "0".into()),
            ("binlog-current-index", "0".into()),
            ("binlog-records-migrated", "0".into()),
            ("binlog-records-written", "0".into()),
            ("binlog-max-size", "0".into()),
            ("draining", self.shared.is_draining().to_string()),
            ("id", self.shared.stats.id.clone()),
            ("hostname", host::name()),
            ("os", host::os_version()),
            ("platform", host::platform().into()),
        ]);
        protocol::ok_reply(&protocol::yaml_dict(&fields))
    }

    /// `list-tubes`.
    pub(super) fn list_tubes(&self) -> Vec<u8> {
        self.shared.stats.command("cmd-list-tubes");
        let tubes = self.all_tubes();
        protocol::ok_reply(&protocol::yaml_list(tubes.iter().map(Tube::as_str)))
    }

    /// `list-tube-used`.
    pub(super) fn list_tube_used(&self) -> Vec<u8> {
        self.shared.stats.command("cmd-list-tube-used");
        format!("USING {}\r\n", self.using).into_bytes()
    }

    /// `list-tubes-watched`.
    pub(super) fn list_tubes_watched(&self) -> Vec<u8> {
        self.shared.stats.command("cmd-list-tubes-watched");
        protocol::ok_reply(&protocol::yaml_list(self.watching.iter().map(Tube::as_str)))
    }

    /// `pause-tube <tube> <delay>`: no job of the tube is reserved for `delay` seconds
    /// In memory, like beanstalkd's pause.
    pub(super) fn pause_tube(&self, tube: &Tube, delay: u32) -> Vec<u8> {
        self.shared.stats.command("cmd-pause-tube");
        if !self.exists(tube) {
            return NOT_FOUND.to_vec();
        }
        // A pause of 0 seconds ends the pause (beanstalkd pauses for 1 ns).
        let length = Duration::from_secs(u64::from(delay));
        self.shared.stats.tube(tube, |u| {
            u.pauses += 1;
            u.paused = (delay > 0).then(|| (Instant::now() + length, length));
        });
        // Connections waiting on it close their room there.
        self.shared.stats.paused.notify_waiters();
        b"PAUSED\r\n".to_vec()
    }
}
