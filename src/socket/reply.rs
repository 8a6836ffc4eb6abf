//! [`Reply`]: how a socket event is answered, and [`emit_paced`], how queuehub sends to a
//! socket without overflowing its buffer.
//!
//! An event sent with an ack callback is answered `{ok: true, ...}` or
//! `{ok: false, error: {code, message}}`. An event without a callback that fails gets an
//! `mq:error` event carrying the same error object (plus the event name).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

use crate::broker::Pending;
use crate::error::Error;

/// The event a failed event without ack callback is answered with.
pub const ERROR_EVENT: &str = "mq:error";

/// The ack callback of one event, if the client sent one. Unlike socketioxide's
/// `AckSender` (which silently does nothing without a callback, and is used up by one send
/// attempt), it tells whether a callback exists, so that errors without one become
/// `mq:error`, and it can retry while the socket's buffer is full.
pub struct AckHandle {
    socket: Arc<Socket<LocalAdapter>>,
    ack_id: Option<i64>,
}

impl FromMessageParts<LocalAdapter> for AckHandle {
    type Error = Infallible;
    fn from_message_parts(
        socket: &Arc<Socket<LocalAdapter>>,
        _: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(AckHandle {
            socket: Arc::clone(socket),
            ack_id: *ack_id,
        })
    }
}

impl AckHandle {
    /// Whether the client is waiting for an ack.
    pub fn requested(&self) -> bool {
        self.ack_id.is_some()
    }

    /// Sends the ack, waiting for room in the socket's buffer if needed.
    async fn send_paced(&self, body: &Value) {
        let mut backoff = Backoff::new();
        loop {
            let mut unused = socketioxide_core::Value::Bytes(bytes::Bytes::new());
            let Ok(sender) = AckSender::from_message_parts(&self.socket, &mut unused, &self.ack_id);
            match sender.send(body) {
                Err(SendError::Socket(SocketError::InternalChannelFull)) => backoff.wait().await,
                _ => return,
            }
        }
    }
}

/// The way back to the client for one event.
pub struct Reply {
    pub(crate) event: String,
    pub(crate) socket: SocketRef<LocalAdapter>,
    pub(crate) ack: AckHandle,
}

impl Reply {
    /// Answers in the background once `pending` is durable (or at once if the event was
    /// refused), so that the socket's next events are handled meanwhile and their commits
    /// can share one fsync.
    pub fn when_committed(self, pending: Result<Pending<Value>, Error>) {
        tokio::spawn(async move {
            let result = match pending {
                Ok(pending) => pending.committed().await,
                Err(err) => Err(err),
            };
            self.send(result).await;
        });
    }

    /// Answers the event: `Ok(fields)` becomes `{ok: true, ...fields}`.
    pub async fn send(self, result: Result<Value, Error>) {
        match result {
            Ok(fields) => {
                if self.ack.requested() {
                    let mut body = json!({ "ok": true });
                    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
                        body.extend(fields);
                    }
                    self.ack.send_paced(&body).await;
                }
            }
            Err(error) => {
                tracing::info!(event = %self.event, code = error.code(), "event refused: {}", error.message());
                if self.ack.requested() {
                    self.ack
                        .send_paced(&json!({ "ok": false, "error": error }))
                        .await;
                } else {
                    let body = json!({
                        "code": error.code(),
                        "message": error.message(),
                        "event": self.event,
                    });
                    let _ = emit_paced(&self.socket, ERROR_EVENT, &body).await;
                }
            }
        }
    }
}

/// Emits `event` to one socket, waiting while its buffer is full. `Err` means the socket is
/// gone; nothing is lost then, because every message is still in the inbox until acked.
pub async fn emit_paced<T: Serialize + ?Sized>(
    socket: &SocketRef<LocalAdapter>,
    event: &str,
    data: &T,
) -> Result<(), SendError> {
    let mut backoff = Backoff::new();
    loop {
        match socket.emit(event, data) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => backoff.wait().await,
            other => return other,
        }
    }
}

/// Exponential wait from 1 ms to 100 ms, for a socket that is not reading fast enough.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(1))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(100));
    }
}
