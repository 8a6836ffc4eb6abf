//! [`Activity`]: what happened in the broker, for watchers such as the dashboard. Only
//! committed changes are announced; a watcher that falls behind loses the oldest entries
//! (it should then re-read the state), never slowing the broker down.
//!
//! Every change to a queue's stats is announced by an activity that names the queue
//! ([`ActivityKind::queues`]) or the client whose sockets came or went
//! ([`ActivityKind::client`]), so a watcher can refresh just those queues.

use serde::Serialize;

use crate::names::{ClientId, EventName, MessageId, QueueName};

use super::message::{format_ms, now_ms};

/// One thing that happened, and when.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// RFC 3339.
    pub at: String,
    #[serde(flatten)]
    pub kind: ActivityKind,
}

impl Activity {
    /// An activity that happens now.
    pub fn new(kind: ActivityKind) -> Self {
        Self {
            at: format_ms(now_ms()),
            kind,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ActivityKind {
    /// A message was stored and entered `recipients` inboxes (0: it waits for a first
    /// subscriber, or, with `deliver_at`, for its time).
    Published {
        queue: QueueName,
        event: EventName,
        id: MessageId,
        recipients: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        deliver_at: Option<String>,
    },
    /// A client acked `removed` messages, in `queues`.
    Acked {
        client: ClientId,
        removed: usize,
        queues: Vec<QueueName>,
    },
    Subscribed {
        client: ClientId,
        queues: Vec<QueueName>,
    },
    Unsubscribed {
        client: ClientId,
        queue: QueueName,
    },
    /// A delayed message became deliverable and entered `recipients` inboxes.
    Due {
        queue: QueueName,
        id: MessageId,
        recipients: usize,
    },
    /// Messages of `queues` whose TTL ran out left every inbox.
    Expired {
        messages: usize,
        queues: Vec<QueueName>,
    },
    /// `messages` dead letters moved from `from` (`<queue>.dead`) back into `queue`.
    Kicked {
        queue: QueueName,
        from: QueueName,
        messages: usize,
    },
    /// A publish to `queue` was refused by a limit (`code` says which).
    Rejected {
        queue: QueueName,
        code: String,
    },
    /// A socket connected (with the client id it gave, if any).
    Connected {
        client: Option<ClientId>,
    },
    Disconnected {
        client: Option<ClientId>,
    },
}

impl ActivityKind {
    /// The queues whose stats this changed. A publish to a dead-letter queue `<q>.dead` is
    /// a dead letter leaving `<q>`'s inbox (or a publish there by hand), so it names `<q>`
    /// too.
    pub fn queues(&self) -> Vec<QueueName> {
        match self {
            Self::Published { queue, .. } => {
                let mut queues = vec![queue.clone()];
                queues.extend(queue.dead_letter_of());
                queues
            }
            Self::Due { queue, .. } | Self::Rejected { queue, .. } => vec![queue.clone()],
            Self::Unsubscribed { queue, .. } => vec![queue.clone()],
            Self::Acked { queues, .. }
            | Self::Expired { queues, .. }
            | Self::Subscribed { queues, .. } => queues.clone(),
            Self::Kicked { queue, from, .. } => vec![queue.clone(), from.clone()],
            Self::Connected { .. } | Self::Disconnected { .. } => Vec::new(),
        }
    }

    /// The client whose sockets connected or disconnected: whether it shows as connected
    /// changed on each queue it is subscribed to.
    pub fn client(&self) -> Option<&ClientId> {
        match self {
            Self::Connected { client } | Self::Disconnected { client } => client.as_ref(),
            _ => None,
        }
    }
}
