//! The beanstalk door: queuehub speaking the beanstalkd 1.12 text protocol over TCP or a Unix
//! socket (`--beanstalk-listen`), a third transport over the same [`Broker`] as HTTP and socket.io
//! (docs/BEANSTALK.md).
//!
//! A tube is a queue ([`tube`]); `put` is a durable publish (answered `INSERTED <id>` once
//! committed, the id being the message's sequence number); the connections that `reserve`
//! from a tube are work-mode workers of the client named after the tube, which pull: a
//! connection has room for one job while it waits in `reserve` and none otherwise
//! ([`Broker::open_room`]); `delete` acks. So a message published over HTTP to a queue is
//! a job of that tube, and a job put on a tube reaches the socket.io subscribers of that
//! queue.
//!
//! Layout: `protocol` parses lines and frames replies (pure); `body` turns job bodies into
//! payloads and back; `tube` maps names; `stream` is the listeners (TCP or Unix) and a
//! connection's two halves; `input` is a connection's bounded reader; `connection` runs one
//! connection (its loop and its state); `jobs`, `reserve` and `info` answer the commands (the
//! job commands, the reserves, and peeks, stats and lists); `door` is the [`Outbox`] that
//! hands jobs to waiting connections; `stats` holds the server-wide counters; `bodies` keeps
//! the bodies of jobs put and not reserved yet, so a reserve need not read them back.
//! Only this module knows the protocol; it calls nothing but the broker.

mod bodies;
mod body;
mod connection;
mod counts;
mod door;
mod info;
mod input;
mod jobs;
mod protocol;
mod reserve;
mod stats;
mod stream;
mod tube;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;

pub use door::Door;
pub use stream::Listener;

/// The largest job body accepted by default, in bytes: beanstalkd's default (`-z 65535`).
/// Larger ones are answered `JOB_TOO_BIG` and their bytes skipped.
pub const DEFAULT_MAX_JOB_BYTES: u32 = 65_535;

/// The highest `--beanstalk-max-job-bytes`: beanstalkd's own limit for `-z` (1 GiB).
pub const MAX_JOB_BYTES_LIMIT: u32 = 1 << 30;

/// What every beanstalk connection shares: the broker, the door, the server's counters,
/// the bodies of jobs not reserved yet.
#[derive(Clone)]
pub struct Beanstalk {
    broker: Broker,
    door: Arc<Door>,
    stats: Arc<stats::Stats>,
    bodies: Arc<bodies::Bodies>,
    /// Per job: timeouts, releases, buries, kicks (`stats-job`); all timeouts (`stats`).
    counts: Arc<counts::JobCounts>,
    /// The largest job body accepted (`--beanstalk-max-job-bytes`).
    max_job_bytes: u32,
    /// Drain mode (beanstalkd's `SIGUSR1`): `put` is answered `DRAINING` until the process
    /// ends; everything else works on.
    draining: Arc<AtomicBool>,
}

impl Beanstalk {
    /// The beanstalk side of `broker`, taking job bodies of up to `max_job_bytes`; connects
    /// its door as one of the broker's outboxes.
    pub fn new(broker: Broker, max_job_bytes: u32) -> Self {
        let counts = Arc::new(counts::JobCounts::default());
        let door = Arc::new(Door::new(Arc::clone(&counts)));
        broker.set_outbox(door.clone());
        Self {
            broker,
            door,
            stats: Arc::new(stats::Stats::new()),
            bodies: Arc::default(),
            counts,
            max_job_bytes,
            draining: Arc::default(),
        }
    }

    /// Enters drain mode, as beanstalkd does on `SIGUSR1`: from now on every `put` is answered
    /// `DRAINING` (its body read and dropped), and `stats` says `draining: true`. There is no
    /// way back but a restart, as in beanstalkd.
    pub fn drain(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "beanstalk door in drain mode: puts are answered DRAINING until restart"
            );
        }
    }

    /// Whether the door is in drain mode.
    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Accepts connections on `listener` until `stop` turns true, then closes them (their
    /// reserved jobs go back to ready, as when a beanstalkd client disconnects).
    pub async fn serve(self, listener: Listener, stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        let mut stopping = stop.clone();
        loop {
            tokio::select! {
                () = stopped(&mut stopping) => break,
                accepted = listener.accept() => match accepted {
                    Ok((reader, writer, peer)) => {
                        let shared = self.clone();
                        let stop = stop.clone();
                        connections.spawn(connection::run(shared, (reader, writer), peer, stop));
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little, keep going.
                        tracing::warn!(error = %err, "beanstalk: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        listener.close();
        while connections.join_next().await.is_some() {}
    }
}

/// Completes once `stop` turns true (or its sender is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
