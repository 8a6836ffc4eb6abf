//! [`Doors`]: the broker's one [`Outbox`] over every transport that set one (the socket.io
//! layer, the beanstalk door). Live pushes and ended subscriptions go to each; a work-mode
//! send goes to the one whose worker it names; `connected` counts them all.

use std::sync::OnceLock;

use async_trait::async_trait;
use std::sync::Arc;

use super::{Delivery, Envelope, Outbox};
use crate::names::{ClientId, QueueName};

/// The outboxes of up to this many transports.
const DOORS: usize = 2;

/// Every transport's outbox, set once each at start (lock-free to read afterwards).
#[derive(Default)]
pub(super) struct Doors([OnceLock<Arc<dyn Outbox>>; DOORS]);

impl Doors {
    /// Adds a transport's outbox; `false` if every place is taken.
    pub(super) fn add(&self, outbox: Arc<dyn Outbox>) -> bool {
        let mut outbox = Some(outbox);
        for slot in &self.0 {
            if let Some(o) = outbox.take()
                && let Err(o) = slot.set(o)
            {
                outbox = Some(o);
            }
        }
        outbox.is_none()
    }

    fn set(&self) -> impl Iterator<Item = &Arc<dyn Outbox>> {
        self.0.iter().filter_map(OnceLock::get)
    }
}

#[async_trait]
impl Outbox for Doors {
    async fn deliver(&self, delivery: Delivery) {
        let mut doors = self.set().peekable();
        while let Some(door) = doors.next() {
            if doors.peek().is_some() {
                door.deliver(delivery.clone()).await;
            } else {
                door.deliver(delivery).await;
                return;
            }
        }
    }

    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName) {
        for door in self.set() {
            door.subscription_ended(client, queue).await;
        }
    }

    fn connected(&self, client: &ClientId, queue: &QueueName) -> usize {
        self.set().map(|door| door.connected(client, queue)).sum()
    }

    fn deliver_to(&self, consumer: &str, envelope: &Envelope) -> bool {
        self.set().any(|door| door.deliver_to(consumer, envelope))
    }

    fn lease_lapsed(&self, consumer: &str, seq: u64) {
        for door in self.set() {
            door.lease_lapsed(consumer, seq);
        }
    }
}
