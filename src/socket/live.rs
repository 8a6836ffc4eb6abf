//! Live push to one socket, with flow control.
//!
//! The broker's fan-out hands each committed message to the sockets subscribed to it, and
//! never waits for one of them. A socket whose outgoing buffer is full cannot take the
//! message now, so instead of dropping the push, [`Live`] marks that subscription of the
//! socket as *lagging* from that message on and starts the socket's resume task. The task
//! waits for the socket to drain, then streams the client's inbox on that queue to it, in
//! order, from the first message it missed up to what the fan-out has handed out so far
//! ([`Broker::fanned_out`]), reading payloads from the store a page at a time as `getAll`
//! does. When it has caught up, the subscription is live again. While it lags, the fan-out
//! only notes the highest message it skipped (a number), so a slow socket costs the fan-out
//! nothing and delays nobody else, and its messages wait durably in its inbox.
//!
//! Messages the dispatcher sends (ordered heads, work-mode assignments) that find the buffer
//! full wait here too, bounded by their nature: one head per ordered subscription (a newer
//! one replaces it) and at most `prefetch` assignments per worker.
//!
//! Ordering: a subscription's messages reach the socket in publish order, live or resumed.
//! One exception: a delayed message that comes due while its subscription lags, with a
//! sequence number below what was already sent, is sent on its own right after.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

use super::envelope::{Dressed, ack_sent, dress, sent_by};
use super::flow::Flow;
use super::reply::emit_paced;
use crate::broker::{Broker, Delivery, Envelope};
use crate::compat::Dialect;
use crate::hash::FastMap;
use crate::names::{ClientId, QueueName};

/// Late messages (below what a lagging subscription already sent) remembered one by one;
/// past this, the subscription is resumed from the lowest of them again.
const MAX_LATE: usize = 1024;

/// A subscription of one socket: (client, queue).
type Key = (ClientId, QueueName);

/// One socket's live push. Shared by the fan-out (through the socket outbox) and the
/// socket's resume task.
pub struct Live {
    socket: SocketRef<LocalAdapter>,
    /// How the broker names this socket as a worker ([`consumer_id`]).
    consumer: String,
    broker: Broker,
    dialect: Option<Arc<Dialect>>,
    /// Wakes this socket's pushes waiting for room when its client acks (see `flow`).
    flow: Flow,
    // std Mutex: held for a few map updates and one non-blocking emit, never across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Broadcast subscriptions whose live push paused, and where they stand.
    lagging: FastMap<Key, Lag>,
    /// Ordered heads that found the buffer full (a newer head replaces an older one).
    heads: FastMap<Key, Envelope>,
    /// Work-mode assignments that found the buffer full, in order.
    work: VecDeque<Envelope>,
    /// Whether the resume task runs.
    resuming: bool,
}

/// Where a lagging subscription stands.
struct Lag {
    /// Every message of the inbox up to here has been sent (or skipped as not deliverable).
    sent_upto: u64,
    /// The highest message the fan-out skipped: the lag ends once `sent_upto` reaches it.
    skipped: u64,
    /// Messages that came (due) with a number at or below `sent_upto`, to send one by one.
    late: BTreeSet<u64>,
}

impl Lag {
    fn starting_at(seq: u64) -> Self {
        Self {
            sent_upto: seq.saturating_sub(1),
            skipped: seq,
            late: BTreeSet::new(),
        }
    }

    fn skip(&mut self, seq: u64) {
        if seq > self.sent_upto {
            self.skipped = self.skipped.max(seq);
        } else if self.late.len() < MAX_LATE {
            self.late.insert(seq);
        } else {
            self.sent_upto = seq.saturating_sub(1);
            self.late.clear();
        }
    }

    fn caught_up(&self) -> bool {
        self.skipped <= self.sent_upto && self.late.is_empty()
    }
}

/// What the resume task does next.
enum Step {
    Send(Envelope),
    Page(Key, (u64, u64)),
    Late(Key, u64),
    WaitForFanOut(u64),
    Done,
}

impl Live {
    pub fn new(
        socket: SocketRef<LocalAdapter>,
        broker: Broker,
        dialect: Option<Arc<Dialect>>,
        flow: Flow,
    ) -> Arc<Self> {
        Arc::new(Self {
            consumer: consumer_id(&socket),
            socket,
            broker,
            dialect,
            flow,
            state: Mutex::new(State::default()),
        })
    }

    /// How the broker names this socket as a worker.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The lab dialect of this socket's namespace, if any.
    pub fn dialect(&self) -> Option<&Dialect> {
        self.dialect.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acknowledges a message this socket was sent (a dialect's `auto_ack`).
    pub fn ack_sent(&self, envelope: &Envelope) {
        ack_sent(&self.broker, envelope);
    }

    /// Whether this dialect acknowledges what it sends.
    fn auto_ack(&self) -> bool {
        self.dialect.as_ref().is_some_and(|d| d.auto_ack)
    }

    /// Pushes a committed message to this socket now, or leaves it to the resume task if the
    /// socket cannot take it. `data` is the envelope as this socket's namespace shows it.
    /// `true` if it went out now (`false`: it waits, or the resume task sends it).
    pub fn push<T: Serialize + ?Sized>(self: &Arc<Self>, delivery: &Delivery, data: &T) -> bool {
        let envelope = &delivery.envelope;
        let key = || (envelope.client_id.clone(), envelope.queue.clone());
        let mut state = self.lock();
        if delivery.head {
            // A newer head replaces one still waiting (that one was acked meanwhile).
            if self.try_emit(envelope.event.as_str(), data) {
                if !state.heads.is_empty() {
                    state.heads.remove(&key());
                }
                return true;
            }
            state.heads.insert(key(), envelope.clone());
            self.resume(&mut state);
            return false;
        }
        // The common case, no lag at all, builds no key.
        if !state.lagging.is_empty()
            && let Some(lag) = state.lagging.get_mut(&key())
        {
            lag.skip(delivery.seq);
            return false;
        }
        if self.try_emit(envelope.event.as_str(), data) {
            return true;
        }
        state.lagging.insert(key(), Lag::starting_at(delivery.seq));
        self.resume(&mut state);
        false
    }

    /// Sends a work-mode assignment now, or as soon as the socket drains.
    pub fn assign(self: &Arc<Self>, envelope: &Envelope) {
        let mut state = self.lock();
        let sent =
            state.work.is_empty() && self.try_emit(envelope.event.as_str(), &self.dress(envelope));
        if !sent {
            state.work.push_back(envelope.clone());
            self.resume(&mut state);
        }
    }

    /// Emits without waiting; `false` only when the buffer is full (a socket that is gone has
    /// nothing to resume: its messages wait in the inbox).
    fn try_emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> bool {
        match self.socket.emit(event, data) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => false,
            Ok(()) => true,
            Err(err) => {
                tracing::debug!(error = %err, "live push not sent; the message waits in the inbox");
                true
            }
        }
    }

    fn resume(self: &Arc<Self>, state: &mut State) {
        if !state.resuming {
            state.resuming = true;
            tokio::spawn(resume(Arc::clone(self)));
        }
    }

    /// Decides the resume task's next step, given how far the fan-out has come.
    fn next_step(&self, fanned_out: u64) -> Step {
        let mut state = self.lock();
        if let Some(envelope) = state.work.pop_front() {
            return Step::Send(envelope);
        }
        let head = state.heads.keys().next().cloned();
        if let Some(envelope) = head.and_then(|key| state.heads.remove(&key)) {
            return Step::Send(envelope);
        }
        let mut waiting = None;
        for (key, lag) in &mut state.lagging {
            if let Some(seq) = lag.late.pop_first() {
                return Step::Late(key.clone(), seq);
            }
            if fanned_out > lag.sent_upto {
                return Step::Page(key.clone(), (lag.sent_upto, fanned_out));
            }
            // Wait for the mark to pass the lowest of them: that one can page first.
            waiting = Some(waiting.map_or(lag.sent_upto, |w: u64| w.min(lag.sent_upto)));
        }
        match waiting {
            Some(sent_upto) => Step::WaitForFanOut(sent_upto),
            None => {
                state.resuming = false;
                Step::Done
            }
        }
    }

    /// Records that `key` has been sent up to `upto` (0: nothing new in order); live again if
    /// nothing was skipped past it and no late message waits.
    fn sent(&self, key: &Key, upto: u64) {
        let mut state = self.lock();
        if let Some(lag) = state.lagging.get_mut(key) {
            lag.sent_upto = lag.sent_upto.max(upto);
            if lag.caught_up() {
                state.lagging.remove(key);
            }
        }
    }

    /// A late message could not be read from the store: it is tried again.
    fn late_again(&self, key: &Key, seq: u64) {
        if let Some(lag) = self.lock().lagging.get_mut(key) {
            lag.late.insert(seq);
        }
    }

    /// The subscription ended (or the index no longer has it): nothing to resume there.
    fn forget(&self, key: &Key) {
        self.lock().lagging.remove(key);
    }

    /// `envelope` as this socket's namespace shows it.
    fn dress(&self, envelope: &Envelope) -> Dressed {
        dress(self.dialect.as_deref(), envelope)
    }

    async fn emit(&self, envelope: &Envelope) -> Result<(), SendError> {
        let dressed = self.dress(envelope);
        emit_paced(
            &self.socket,
            envelope.event.as_str(),
            &dressed,
            Some(&self.flow),
        )
        .await
    }

    /// Streams `key`'s inbox for `range` to the socket at its pace. `Ok(true)`: all of it went
    /// out (or the subscription is gone); `Ok(false)`: the store could not be read, try the
    /// range again (what went out already may go out twice: at-least-once). `Err`: the socket
    /// is gone (or a message could not be encoded).
    async fn stream(&self, key: &Key, range: (u64, u64)) -> Result<bool, SendError> {
        let (client, queue) = key.clone();
        let Ok(mut catch_up) = self.broker.resume(client, queue, range) else {
            self.forget(key);
            return Ok(true);
        };
        loop {
            let page = match self.broker.next_page(&mut catch_up).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(code = %err.code(), "resuming a live push: {}", err.message());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    return Ok(false);
                }
            };
            if page.is_empty() {
                return Ok(true);
            }
            for envelope in &page {
                if sent_by(envelope, &self.consumer) {
                    continue;
                }
                self.emit(envelope).await?;
                if self.auto_ack() {
                    self.ack_sent(envelope);
                }
            }
        }
    }
}

/// How the broker names a socket as a worker, and what a message published over that
/// socket records as its sender: `"{sid} {namespace}"`.
pub fn consumer_id(socket: &SocketRef) -> String {
    // Built by hand: it is built for every delivery, and `format!` costs several times more.
    let (id, ns) = (socket.id.as_str(), socket.ns());
    let mut name = String::with_capacity(id.len() + 1 + ns.len());
    name.push_str(id);
    name.push(' ');
    name.push_str(ns);
    name
}

/// The resume task of one socket: runs while anything waits for it, and ends when nothing
/// does or the socket is gone.
async fn resume(live: Arc<Live>) {
    let mut fanned_out = live.broker.fanned_out();
    loop {
        let mark = *fanned_out.borrow_and_update();
        let sent = match live.next_step(mark) {
            Step::Done => return,
            Step::Send(envelope) => live.emit(&envelope).await,
            Step::Page(key, range) => live.stream(&key, range).await.map(|complete| {
                if complete {
                    live.sent(&key, range.1);
                }
            }),
            Step::Late(key, seq) => {
                let range = (seq.saturating_sub(1), seq);
                live.stream(&key, range)
                    .await
                    .map(|complete| match complete {
                        true => live.sent(&key, 0), // live again if that was all it missed
                        false => live.late_again(&key, seq),
                    })
            }
            Step::WaitForFanOut(sent_upto) => {
                let moved = fanned_out.wait_for(|mark| *mark > sent_upto).await;
                if moved.is_err() {
                    return; // the broker closed
                }
                Ok(())
            }
        };
        if sent.is_err() && !live.socket.connected() {
            return; // the socket is gone; its messages wait in the inbox
        }
    }
}
