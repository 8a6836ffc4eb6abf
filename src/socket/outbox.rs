//! Live delivery: [`SocketOutbox`], the broker's [`Outbox`], hands each committed message to
//! the sockets that receive its client's messages from its queue, in every namespace
//! queuehub serves, through each socket's [`Live`] push (found in [`LiveSockets`]), and sends
//! work-mode assignments to the one worker socket they are for.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::envelope::{Dressed, Rendered, dress, sent_by};
use super::live::Live;
use super::registry::LiveSockets;
use crate::broker::{Delivery, Envelope, Outbox};
use crate::compat::Dialect;
use crate::names::{ClientId, QueueName};

/// A namespace queuehub serves, and the lab dialect it speaks, if any.
#[derive(Clone)]
pub(super) struct Namespace {
    pub path: String,
    pub dialect: Option<Arc<Dialect>>,
}

/// The namespaces to serve: `/` always; a dialect adds its own (and may speak on `/` too).
pub(super) fn namespaces(dialect: Option<&Arc<Dialect>>) -> Vec<Namespace> {
    let mut namespaces = vec![Namespace {
        path: "/".into(),
        dialect: None,
    }];
    for path in dialect.map_or(&[][..], |d| d.namespaces.as_slice()) {
        match namespaces.iter_mut().find(|n| &n.path == path) {
            Some(existing) => existing.dialect = dialect.cloned(),
            None => namespaces.push(Namespace {
                path: path.clone(),
                dialect: dialect.cloned(),
            }),
        }
    }
    namespaces
}

/// Delivers committed messages to the sockets that receive them, in every namespace.
pub struct SocketOutbox {
    pub(super) sockets: LiveSockets,
    /// The shared text of the message being fanned out (see [`Rendered`]): its deliveries come
    /// one after another, one per subscriber.
    pub(super) rendered: Mutex<Option<Rendered>>,
    /// The sockets of the delivery being made (kept, so that a delivery allocates nothing).
    receivers: Mutex<Vec<Arc<Live>>>,
}

impl SocketOutbox {
    pub(super) fn new(sockets: LiveSockets) -> Self {
        Self {
            sockets,
            rendered: Mutex::new(None),
            receivers: Mutex::new(Vec::new()),
        }
    }

    /// `envelope` as a namespace without a dialect shows it, from the text shared by the
    /// deliveries of its message.
    fn own(&self, envelope: &Envelope) -> Dressed {
        // std Mutex: held to render one envelope, never across an await.
        let mut rendered = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        match rendered.as_ref() {
            Some(shared) if shared.is_of(envelope) => Dressed::Own(shared.to(envelope)),
            _ => {
                let shared = Rendered::new(envelope);
                let own = Dressed::Own(shared.to(envelope));
                *rendered = Some(shared);
                own
            }
        }
    }
}

#[async_trait]
impl Outbox for SocketOutbox {
    async fn deliver(&self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        // std Mutex: only the fan-out delivers, one message at a time; never across an await.
        let mut receivers = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        let key = (envelope.client_id.clone(), envelope.queue.clone());
        self.sockets.subscribers(&key, &mut receivers);
        // The envelope as plain namespaces show it, and as the lab dialect's do (there is at
        // most one dialect): each made once, for the first socket that needs it.
        let (mut plain, mut lab): (Option<Dressed>, Option<Dressed>) = (None, None);
        let mut auto_acked = None;
        for live in receivers.drain(..) {
            if sent_by(envelope, live.consumer()) {
                continue;
            }
            let Some(dialect) = live.dialect() else {
                live.push(&delivery, plain.get_or_insert_with(|| self.own(envelope)));
                continue;
            };
            let dressed = lab.get_or_insert_with(|| dress(Some(dialect), envelope));
            if live.push(&delivery, dressed) && dialect.auto_ack {
                auto_acked = Some(live);
            }
        }
        // Every other socket of the client got it: it counts as received, once.
        if let Some(live) = auto_acked {
            live.ack_sent(envelope);
        }
    }

    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName) {
        self.sockets.end(&(client.clone(), queue.clone()));
    }

    fn deliver_to(&self, consumer: &str, envelope: &Envelope) -> bool {
        match self.sockets.get(consumer) {
            Some(live) => {
                live.assign(envelope);
                true
            }
            None => false,
        }
    }

    fn connected(&self, client: &ClientId, queue: &QueueName) -> usize {
        self.sockets.count(&(client.clone(), queue.clone()))
    }
}
