//! Read-only views of the broker for stats and metrics: what `GET /v1/queues` and
//! `GET /metrics` show. Nothing here changes state.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::{Counters, SubscriptionRecord};

use super::Broker;

/// One queue at a glance.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueSummary {
    pub queue: QueueName,
    pub subscribers: usize,
    /// Messages waiting for a first subscriber.
    pub waiting: usize,
    /// Delayed messages not due yet.
    pub scheduled: usize,
    /// Unacked messages per subscribed client.
    pub pending: BTreeMap<ClientId, usize>,
    #[serde(flatten)]
    pub counters: QueueCounters,
}

/// A queue's lifetime counters, as stats show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueCounters {
    pub published: u64,
    pub acked: u64,
    /// Inbox entries (and waiting messages) whose TTL ran out.
    pub expired: u64,
    /// Publishes a limit refused.
    pub rejected: u64,
    /// Messages moved to the dead-letter queue after too many deliveries.
    pub dead_lettered: u64,
}

impl From<Counters> for QueueCounters {
    fn from(counters: Counters) -> Self {
        let Counters {
            published,
            acked,
            expired,
            rejected,
            dead_lettered,
        } = counters;
        Self {
            published,
            acked,
            expired,
            rejected,
            dead_lettered,
        }
    }
}

/// One subscriber of a queue, in detail.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberDetail {
    pub client_id: ClientId,
    pub pending: usize,
    /// Whether at least one socket of this client is connected and subscribed to the queue
    /// (in work mode: attached as a worker).
    pub connected: bool,
    /// How many: sockets in broadcast mode, worker sockets in work mode.
    pub sockets: usize,
    /// The event filter, if any.
    pub events: Option<Vec<crate::names::EventName>>,
    /// `broadcast` or `work`.
    pub mode: crate::store::Mode,
    /// Work mode: worker sockets attached, and messages in flight to them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
}

/// One queue in detail.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDetail {
    pub queue: QueueName,
    pub waiting: usize,
    pub scheduled: usize,
    #[serde(flatten)]
    pub counters: QueueCounters,
    pub subscribers: Vec<SubscriberDetail>,
}

/// Totals for `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub stored_messages: usize,
    pub queues: usize,
}

fn summary(queue: &QueueName, state: &super::index::QueueState) -> QueueSummary {
    QueueSummary {
        queue: queue.clone(),
        subscribers: state.subscribers.len(),
        waiting: state.waiting.len(),
        scheduled: state.scheduled,
        pending: state
            .subscribers
            .iter()
            .map(|(client, s)| (client.clone(), s.inbox.len()))
            .collect(),
        counters: state.counters.into(),
    }
}

/// A queue in detail; `outbox` tells which broadcast subscribers have sockets connected.
fn detail(
    queue: &QueueName,
    state: &super::index::QueueState,
    outbox: Option<&dyn super::Outbox>,
) -> QueueDetail {
    let subscribers = state
        .subscribers
        .iter()
        .map(|(client, s)| {
            // A work subscription's sockets are its workers: they take messages from the
            // dispatcher, not from the subscription's room, so the room is empty.
            let sockets = match &s.workers {
                Some(workers) => workers.count(),
                None => outbox.map_or(0, |o| o.connected(client, queue)),
            };
            let SubscriptionRecord { events, mode, .. } = &s.record;
            SubscriberDetail {
                client_id: client.clone(),
                pending: s.inbox.len(),
                connected: sockets > 0,
                sockets,
                events: events.clone(),
                mode: *mode,
                workers: s.workers.as_ref().map(|w| w.count()),
                in_flight: s.workers.as_ref().map(|w| w.in_flight()),
            }
        })
        .collect();
    QueueDetail {
        queue: queue.clone(),
        waiting: state.waiting.len(),
        scheduled: state.scheduled,
        counters: state.counters.into(),
        subscribers,
    }
}

impl Broker {
    /// Every queue that has been published to or subscribed to, by name.
    pub fn queues(&self) -> Vec<QueueSummary> {
        let core = self.shared.lock();
        core.index
            .queues
            .iter()
            .map(|(name, state)| summary(name, state))
            .collect()
    }

    /// One queue with its subscribers and whether they are connected; `unknown_queue` if it
    /// has never been used.
    pub fn queue(&self, queue: &QueueName) -> Result<QueueDetail, Error> {
        let outbox = self.shared.outbox.get().map(Arc::as_ref);
        let core = self.shared.lock();
        let state = core
            .index
            .queues
            .get(queue)
            .ok_or_else(|| Error::unknown_queue(queue))?;
        Ok(detail(queue, state, outbox))
    }

    /// The names of every queue, in order.
    pub fn queue_names(&self) -> Vec<QueueName> {
        self.shared.lock().index.queues.keys().cloned().collect()
    }

    /// The queues of `names` in detail (under one lock, so keep `names` short), and the
    /// names of those that do not exist.
    pub fn queue_details<'a>(
        &self,
        names: impl IntoIterator<Item = &'a QueueName>,
    ) -> (Vec<QueueDetail>, Vec<QueueName>) {
        let outbox = self.shared.outbox.get().map(Arc::as_ref);
        let core = self.shared.lock();
        let (mut details, mut missing) = (Vec::new(), Vec::new());
        for name in names {
            match core.index.queues.get(name) {
                Some(state) => details.push(detail(name, state, outbox)),
                None => missing.push(name.clone()),
            }
        }
        (details, missing)
    }

    /// Store-wide totals.
    pub fn totals(&self) -> Totals {
        let core = self.shared.lock();
        Totals {
            stored_messages: core.index.stored_messages(),
            queues: core.index.queues.len(),
        }
    }
}
