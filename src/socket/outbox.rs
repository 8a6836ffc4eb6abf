//! Live delivery: [`SocketOutbox`], the broker's [`Outbox`], hands each committed message to
//! the sockets in the room of its client and queue, in every namespace queuehub serves,
//! through each socket's [`Live`] push ([`LiveSockets`]), and sends work-mode assignments to
//! the one worker socket they are for.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use socketioxide::SocketIo;

use super::context::consumer_id;
use super::envelope::{Dressed, Rendered, dress, sent_by};
use super::live::Live;
use super::rooms::room;
use crate::broker::{Delivery, Envelope, Outbox};
use crate::compat::Dialect;
use crate::hash::FastMap;
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

/// The live push of every connected socket, by worker name (`"{sid} {namespace}"`).
#[derive(Clone, Default)]
pub struct LiveSockets(Arc<Mutex<FastMap<String, Arc<Live>>>>);

impl LiveSockets {
    // std Mutex: map lookups and updates only, never across an await.
    fn get(&self, consumer: &str) -> Option<Arc<Live>> {
        self.0.lock().ok()?.get(consumer).cloned()
    }

    pub(crate) fn insert(&self, consumer: String, live: Arc<Live>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(consumer, live);
        }
    }

    pub(crate) fn remove(&self, consumer: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(consumer);
        }
    }
}

/// Delivers committed messages to the sockets in the rooms of their clients, in every
/// namespace.
pub struct SocketOutbox {
    pub(super) io: SocketIo,
    pub(super) namespaces: Vec<Namespace>,
    pub(super) sockets: LiveSockets,
    /// The shared text of the message being fanned out (see [`Rendered`]): its deliveries come
    /// one after another, one per subscriber.
    pub(super) rendered: Mutex<Option<Rendered>>,
}

impl SocketOutbox {
    pub(super) fn new(io: SocketIo, namespaces: Vec<Namespace>, sockets: LiveSockets) -> Self {
        Self {
            io,
            namespaces,
            sockets,
            rendered: Mutex::new(None),
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
        let room = room(&envelope.client_id, &envelope.queue);
        for namespace in &self.namespaces {
            let Some(operators) = self.io.of(&namespace.path) else {
                continue;
            };
            let sockets = operators.within(room.clone()).sockets();
            if sockets.is_empty() {
                continue;
            }
            let dressed = match namespace.dialect.as_deref() {
                None => self.own(envelope),
                dialect => dress(dialect, envelope),
            };
            let auto_ack = namespace.dialect.as_ref().is_some_and(|d| d.auto_ack);
            let mut sent_to = None;
            for socket in sockets {
                let consumer = consumer_id(&socket);
                if sent_by(envelope, &consumer) {
                    continue;
                }
                let Some(live) = self.sockets.get(&consumer) else {
                    continue; // still connecting: it reads its inbox with getAll
                };
                if live.push(&delivery, &dressed) {
                    sent_to = Some(live);
                }
            }
            // Every other socket of the client got it: it counts as received, once.
            if auto_ack && let Some(live) = sent_to {
                live.ack_sent(envelope);
            }
        }
    }

    async fn subscription_ended(&self, client: &ClientId, queue: &QueueName) {
        let room = room(client, queue);
        for namespace in &self.namespaces {
            let Some(operators) = self.io.of(&namespace.path) else {
                continue;
            };
            if let Err(err) = operators.within(room.clone()).leave(room.clone()).await {
                tracing::warn!(error = %err, "could not remove sockets from an ended subscription");
            }
        }
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
        let room = room(client, queue);
        self.namespaces
            .iter()
            .filter_map(|n| self.io.of(&n.path))
            .map(|operators| operators.within(room.clone()).sockets().len())
            .sum()
    }
}
