//! The `/dashboard` namespace: a read-only live view of queuehub for the dashboard page.
//!
//! A dashboard socket gets a full `snapshot` when it connects: every queue with its
//! subscribers (online or not), pending counts and counters. After that it gets only what
//! changed: each committed publish, ack, subscribe… as an `activity` event, and, at most
//! every [`DELTA_EVERY`] while anything changes, a `snapshot:delta` with the queues touched
//! since the last one (in full), the touched queues that no longer exist, and the totals.
//! The page merges deltas into what it shows. Under heavy load at most
//! [`ACTIVITY_PER_DELTA`] activity events go out per interval; the deltas still carry the
//! true counts.
//!
//! Cost: while no dashboard is connected, the feed task sleeps and does not follow the
//! broker's activity at all (so the broker records none). With dashboards connected, the
//! work per change is proportional to the queues it touched, never to the number of queues:
//! only the first snapshot of a connecting dashboard reads them all.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::identity::Identity;
use crate::auth::{Security, unauthorized};
use crate::broker::stats::QueueDetail;
use crate::broker::{ActivityKind, Broker};
use crate::names::QueueName;

/// The dashboard's namespace.
pub const NAMESPACE: &str = "/dashboard";

/// The full view, sent to a dashboard when it connects.
pub const SNAPSHOT_EVENT: &str = "snapshot";
/// What changed since the last delta (or the snapshot).
pub const DELTA_EVENT: &str = "snapshot:delta";
/// One thing that happened.
pub const ACTIVITY_EVENT: &str = "activity";

/// Deltas are sent at most this often.
const DELTA_EVERY: Duration = Duration::from_millis(250);

/// Activity events sent per delta interval at most.
const ACTIVITY_PER_DELTA: usize = 50;

/// Queues read under one lock of the index while a full snapshot is built, so that
/// publishes are not held up by a dashboard connecting to a server with many queues.
const SNAPSHOT_CHUNK: usize = 256;

/// Everything the dashboard shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    queues: Vec<QueueDetail>,
    stored_messages: usize,
    sockets: usize,
}

/// What changed: the queues touched (in full), touched queues that no longer exist, and
/// the totals.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Delta {
    queues: Vec<QueueDetail>,
    removed: Vec<QueueName>,
    stored_messages: usize,
    sockets: usize,
}

/// The feed's task, and a handle on what it does.
pub struct DashboardFeed {
    /// Ends when the broker closes.
    pub task: JoinHandle<()>,
    pub stats: FeedStats,
}

/// How much work the feed has done, for tests and diagnostics.
#[derive(Clone)]
pub struct FeedStats {
    counters: Arc<FeedCounters>,
    broker: Broker,
}

#[derive(Default)]
struct FeedCounters {
    snapshots: AtomicU64,
    deltas: AtomicU64,
    queue_details: AtomicU64,
    wakeups: AtomicU64,
}

impl FeedStats {
    /// Full snapshots built.
    pub fn snapshots(&self) -> u64 {
        self.counters.snapshots.load(Ordering::Relaxed)
    }

    /// Deltas built.
    pub fn deltas(&self) -> u64 {
        self.counters.deltas.load(Ordering::Relaxed)
    }

    /// Queues read in detail, for snapshots and deltas together.
    pub fn queue_details(&self) -> u64 {
        self.counters.queue_details.load(Ordering::Relaxed)
    }

    /// Times the feed task woke up (a dashboard came or went, activity, a delta was due).
    pub fn wakeups(&self) -> u64 {
        self.counters.wakeups.load(Ordering::Relaxed)
    }

    /// How many follow the broker's activity now (the feed, while dashboards are
    /// connected); while none does, the broker records no activity.
    pub fn activity_watchers(&self) -> usize {
        self.broker.watchers()
    }
}

fn count(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// A dashboard socket came or went.
enum Presence {
    Joined(SocketRef),
    Left,
}

/// Registers the namespace and starts the task that feeds it; the task ends when the broker
/// closes.
pub fn start(io: &SocketIo, broker: Broker, security: Arc<Security>) -> DashboardFeed {
    // Unbounded: one message per dashboard connect or disconnect.
    let (presence, presences) = mpsc::unbounded_channel();
    let connect = move |socket: SocketRef| {
        let _ = presence.send(Presence::Joined(socket.clone()));
        let left = presence.clone();
        socket.on_disconnect(move || {
            let _ = left.send(Presence::Left);
            std::future::ready(())
        });
        std::future::ready(())
    };
    // In secured mode the dashboard shows every queue and client: API keys only.
    let authenticate = move |socket: SocketRef, TryData(auth): TryData<serde_json::Value>| {
        let checked = match Identity::check(&security, &socket, auth.ok().as_ref()) {
            Ok(Identity::Open | Identity::Trusted) => Ok(()),
            Ok(Identity::Client(_)) => Err(unauthorized("the dashboard needs auth: {apiKey}")),
            Err(err) => Err(err),
        };
        std::future::ready(checked)
    };
    io.ns(NAMESPACE, connect.with(authenticate));
    let stats = FeedStats {
        counters: Arc::default(),
        broker: broker.clone(),
    };
    let feed = Feed {
        io: io.clone(),
        broker,
        counters: Arc::clone(&stats.counters),
    };
    DashboardFeed {
        task: tokio::spawn(feed.run(presences)),
        stats,
    }
}

/// The task behind the namespace.
struct Feed {
    io: SocketIo,
    broker: Broker,
    counters: Arc<FeedCounters>,
}

/// Why the feed stopped following the activity.
enum Stopped {
    /// The last dashboard left: sleep until the next one.
    Idle,
    /// The broker is closing.
    Closed,
}

/// What changed since the last delta.
#[derive(Default)]
struct Changes {
    /// Anything at all (the totals are sent with every delta); a delta is due.
    any: bool,
    /// Send everything again: activity was lost.
    everything: bool,
    queues: BTreeSet<QueueName>,
    /// Queues to send in the delta after next too: socketioxide takes a socket out of its
    /// rooms just after its disconnect is announced, and a worker attaches just after its
    /// subscribe, so those queues are read again one interval later.
    settling: BTreeSet<QueueName>,
}

impl Feed {
    async fn run(self, mut presences: mpsc::UnboundedReceiver<Presence>) {
        loop {
            // No dashboard: sleep until one connects. Nothing else wakes this task.
            let joined = tokio::select! {
                _ = self.broker.closed() => return,
                presence = presences.recv() => match presence {
                    None => return,
                    Some(Presence::Left) => continue,
                    Some(Presence::Joined(socket)) => socket,
                },
            };
            self.woke();
            match self.follow(joined, &mut presences).await {
                Stopped::Idle => continue,
                Stopped::Closed => return,
            }
        }
    }

    /// Follows the activity while dashboards are connected, starting with `first`.
    async fn follow(
        &self,
        first: SocketRef,
        presences: &mut mpsc::UnboundedReceiver<Presence>,
    ) -> Stopped {
        // Follow first, then read: whatever commits after the snapshot is read shows up as
        // activity, so a dashboard never misses a change.
        let mut activity = self.broker.watch();
        let mut dashboards = 1usize;
        self.send_snapshot(Some(&first)).await;
        let mut changes = Changes::default();
        // When the last delta went out (`None`: not yet, so the first change goes at once),
        // and how many activity events since.
        let mut last_delta: Option<Instant> = None;
        let mut forwarded = 0;
        loop {
            let due = changes
                .any
                .then(|| last_delta.map_or_else(Instant::now, |at| at + DELTA_EVERY));
            tokio::select! {
                _ = self.broker.closed() => return Stopped::Closed,
                presence = presences.recv() => match presence {
                    None => return Stopped::Closed,
                    Some(Presence::Joined(socket)) => {
                        dashboards += 1;
                        self.send_snapshot(Some(&socket)).await;
                    }
                    Some(Presence::Left) => {
                        dashboards = dashboards.saturating_sub(1);
                        if dashboards == 0 {
                            return Stopped::Idle;
                        }
                    }
                },
                received = activity.recv() => match received {
                    Ok(activity) => {
                        self.note(&mut changes, &activity.kind);
                        if forwarded < ACTIVITY_PER_DELTA {
                            forwarded += 1;
                            self.emit(ACTIVITY_EVENT, &activity).await;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        changes.any = true;
                        changes.everything = true;
                    }
                    Err(RecvError::Closed) => return Stopped::Closed,
                },
                _ = sleep_until(due), if due.is_some() => {
                    self.send_changes(&mut changes).await;
                    last_delta = Some(Instant::now());
                    forwarded = 0;
                }
            }
            self.woke();
        }
    }

    /// Records which queues `activity` changed.
    fn note(&self, changes: &mut Changes, activity: &ActivityKind) {
        changes.any = true;
        let queues = activity.queues();
        // A subscribing socket joins its rooms or attaches as a worker just around the
        // commit that announces it: read those queues again one interval later.
        if matches!(activity, ActivityKind::Subscribed { .. }) {
            changes.settling.extend(queues.iter().cloned());
        }
        changes.queues.extend(queues);
        if let Some(client) = activity.client() {
            let queues = self.broker.subscriptions(client);
            changes.settling.extend(queues.iter().cloned());
            changes.queues.extend(queues);
        }
    }

    /// Sends what changed to every dashboard (everything, if activity was lost).
    async fn send_changes(&self, changes: &mut Changes) {
        let Changes {
            everything,
            queues,
            settling,
            ..
        } = std::mem::take(changes);
        // The queues settling now are sent again next time, once.
        changes.queues = settling.clone();
        changes.any = !settling.is_empty();
        if everything {
            self.send_snapshot(None).await;
            return;
        }
        let touched: BTreeSet<QueueName> = queues.into_iter().chain(settling).collect();
        let (queues, removed) = self.broker.queue_details(&touched);
        count(&self.counters.queue_details, queues.len());
        count(&self.counters.deltas, 1);
        let (stored_messages, sockets) = self.totals();
        let delta = Delta {
            queues,
            removed,
            stored_messages,
            sockets,
        };
        self.emit(DELTA_EVENT, &delta).await;
    }

    /// Sends every queue to `to`, or to every dashboard.
    async fn send_snapshot(&self, to: Option<&SocketRef>) {
        let names = self.broker.queue_names();
        let mut queues = Vec::with_capacity(names.len());
        for chunk in names.chunks(SNAPSHOT_CHUNK) {
            queues.extend(self.broker.queue_details(chunk).0);
            tokio::task::yield_now().await;
        }
        count(&self.counters.queue_details, queues.len());
        count(&self.counters.snapshots, 1);
        let (stored_messages, sockets) = self.totals();
        let snapshot = Snapshot {
            queues,
            stored_messages,
            sockets,
        };
        match to {
            // A socket that just connected has room in its buffer.
            Some(socket) => {
                if let Err(err) = socket.emit(SNAPSHOT_EVENT, &snapshot) {
                    tracing::debug!(error = %err, "could not send a dashboard its snapshot");
                }
            }
            None => self.emit(SNAPSHOT_EVENT, &snapshot).await,
        }
    }

    /// Stored messages, and sockets connected outside the dashboard.
    fn totals(&self) -> (usize, usize) {
        let dashboards = self.io.of(NAMESPACE).map_or(0, |ns| ns.sockets().len());
        let sockets = super::rooms::connected_sockets(&self.io).saturating_sub(dashboards);
        (self.broker.totals().stored_messages, sockets)
    }

    async fn emit<T: Serialize>(&self, event: &str, data: &T) {
        let Some(namespace) = self.io.of(NAMESPACE) else {
            return;
        };
        if let Err(err) = namespace.emit(event, data).await {
            tracing::debug!(error = %err, event, "dashboard emit failed");
        }
    }

    fn woke(&self) {
        count(&self.counters.wakeups, 1);
    }
}

/// Sleeps until `at`; never completes for `None` (the branch is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::RESERVED_EVENTS;

    #[test]
    fn every_event_queuehub_emits_is_a_reserved_name() {
        for event in [
            SNAPSHOT_EVENT,
            DELTA_EVENT,
            ACTIVITY_EVENT,
            super::super::reply::ERROR_EVENT,
        ] {
            assert!(RESERVED_EVENTS.contains(&event), "{event}");
        }
    }
}
