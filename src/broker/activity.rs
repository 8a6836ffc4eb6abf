//! [`Activity`]: what happened in the broker, for watchers such as the dashboard. Only
//! committed changes are announced; a watcher that falls behind loses the oldest entries
//! (it should then re-read the state), never slowing the broker down.

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
    /// A client acked `removed` messages.
    Acked {
        client: ClientId,
        removed: usize,
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
    /// Messages whose TTL ran out left every inbox.
    Expired {
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
