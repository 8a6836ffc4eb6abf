//! The `/dashboard` namespace: a read-only live view of queuehub for the dashboard page.
//!
//! A socket that connects gets a `snapshot` at once: every queue with its subscribers (online
//! or not), pending counts and counters. Then one task follows the broker's activity: each
//! committed publish, ack, subscribe… is emitted as an `activity` event, and a fresh
//! `snapshot` follows at most every [`SNAPSHOT_EVERY`] while anything changes. Under heavy
//! load at most [`ACTIVITY_PER_SNAPSHOT`] activity events go out per interval; the snapshot
//! still shows the true counts.

use std::time::Duration;

use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use std::sync::Arc;

use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;

use super::identity::Identity;
use crate::auth::{Security, unauthorized};
use crate::broker::Broker;
use crate::broker::stats::QueueDetail;

/// The dashboard's namespace.
pub const NAMESPACE: &str = "/dashboard";

/// Snapshots are sent at most this often.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// Activity events sent per snapshot interval at most.
const ACTIVITY_PER_SNAPSHOT: usize = 50;

/// Everything the dashboard shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    queues: Vec<QueueDetail>,
    stored_messages: usize,
    sockets: usize,
}

fn snapshot(broker: &Broker, io: &SocketIo) -> Snapshot {
    let queues = broker
        .queues()
        .into_iter()
        .filter_map(|summary| broker.queue(&summary.queue).ok())
        .collect();
    let dashboards = io.of(NAMESPACE).map_or(0, |ns| ns.sockets().len());
    Snapshot {
        queues,
        stored_messages: broker.totals().stored_messages,
        sockets: super::connected_sockets(io).saturating_sub(dashboards),
    }
}

/// Registers the namespace and starts the task that feeds it; the task ends when the broker
/// closes.
pub fn start(io: &SocketIo, broker: Broker, security: Arc<Security>) -> JoinHandle<()> {
    let connect_broker = broker.clone();
    let connect_io = io.clone();
    let connect = move |socket: SocketRef| {
        let snapshot = snapshot(&connect_broker, &connect_io);
        if let Err(err) = socket.emit("snapshot", &snapshot) {
            tracing::debug!(error = %err, "could not send the first dashboard snapshot");
        }
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
    tokio::spawn(feed(io.clone(), broker))
}

/// Forwards activity and sends snapshots while anything changes.
async fn feed(io: SocketIo, broker: Broker) {
    let mut activity = broker.watch();
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    let mut changed = false;
    let mut sent = 0;
    loop {
        tokio::select! {
            _ = broker.closed() => return,
            received = activity.recv() => match received {
                Ok(activity) => {
                    changed = true;
                    if sent < ACTIVITY_PER_SNAPSHOT {
                        sent += 1;
                        emit(&io, "activity", &activity).await;
                    }
                }
                Err(RecvError::Lagged(_)) => changed = true,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if changed {
                    emit(&io, "snapshot", &snapshot(&broker, &io)).await;
                }
                changed = false;
                sent = 0;
            }
        }
    }
}

async fn emit<T: Serialize>(io: &SocketIo, event: &str, data: &T) {
    let Some(namespace) = io.of(NAMESPACE) else {
        return;
    };
    if namespace.clone().sockets().is_empty() {
        return;
    }
    if let Err(err) = namespace.emit(event, data).await {
        tracing::debug!(error = %err, event, "dashboard emit failed");
    }
}
