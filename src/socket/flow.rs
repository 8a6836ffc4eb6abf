//! The wake-up of pushes waiting for room in one socket's buffer: [`Flow`].
//!
//! socketioxide refuses an emit once the socket's buffer is full and offers nothing to await,
//! so pushes (live, resumed, caught up, work assignments) are paced by its refusals: they
//! wait and try again, on a timer or, sooner, at the client's next acks, which say that it
//! reads (DECISIONS 79). engineioxide's heartbeat shares that buffer; its ping waits for room
//! (queuehub's patch, DECISIONS 81), so a full buffer does not cost the socket.

use std::sync::Arc;

use tokio::sync::Notify;

/// The wake-up of one socket's senders waiting for room in its buffer. Cheap to clone.
#[derive(Clone, Default)]
pub struct Flow(Arc<Notify>);

impl Flow {
    /// The client acked something: it reads, so room is coming in its buffer; senders waiting
    /// for room try again.
    pub fn acked(&self) {
        self.0.notify_waiters();
    }

    /// Completes when the client acks something (register before trying the buffer again,
    /// or a wake-up between the two is missed).
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notified()
    }
}
