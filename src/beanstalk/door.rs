//! [`Door`]: the beanstalk door's [`Outbox`]. It only ever receives work-mode sends (a job
//! for a connection waiting in `reserve`, see `Broker::open_room`) and hands each to its
//! connection's channel; live pushes are for socket.io subscribers, not for it. It counts
//! the timeouts of its workers' reservations (`stats-job`'s `timeouts`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::counts::JobCounts;
use crate::broker::{Delivery, Envelope, Outbox};
use crate::names::{ClientId, QueueName};

/// The connections that may be handed jobs, by worker name.
pub struct Door {
    // std Mutex: map lookups and updates only, never across an await.
    workers: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    counts: Arc<JobCounts>,
}

impl Door {
    /// A door that counts its workers' timeouts in `counts`.
    pub(super) fn new(counts: Arc<JobCounts>) -> Self {
        Self {
            workers: Mutex::default(),
            counts,
        }
    }

    /// Registers a connection's worker name; jobs handed to it arrive on the receiver.
    /// (Unbounded, but a connection has room for one job at a time: see the module docs.)
    pub(super) fn open(&self, worker: &str) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(worker.to_owned(), tx);
        rx
    }

    /// Forgets a connection that closed.
    pub(super) fn close(&self, worker: &str) {
        self.lock().remove(worker);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Envelope>>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Outbox for Door {
    async fn deliver(&self, _delivery: Delivery) {}

    async fn subscription_ended(&self, _client: &ClientId, _queue: &QueueName) {}

    /// Beanstalk workers are counted by the broker's work mode, not here (this counts
    /// sockets that receive live pushes).
    fn connected(&self, _client: &ClientId, _queue: &QueueName) -> usize {
        0
    }

    fn deliver_to(&self, consumer: &str, envelope: &Envelope) -> bool {
        self.lock()
            .get(consumer)
            .is_some_and(|tx| tx.send(envelope.clone()).is_ok())
    }

    /// A reservation by one of this door's connections timed out (a job's id is its
    /// sequence number).
    fn lease_lapsed(&self, consumer: &str, seq: u64) {
        if self.lock().contains_key(consumer) {
            self.counts.timed_out(seq);
        }
    }
}
