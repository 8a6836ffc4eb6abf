//! [`Reply`]: how a socket event is answered; [`Replies`], the one bounded queue through which
//! all of a socket's answers go; and [`emit_paced`], how queuehub sends to a socket without
//! overflowing its buffer.
//!
//! An event sent with an ack callback is answered `{ok: true, ...}` or
//! `{ok: false, error: {code, message}}`. An event without a callback that fails gets an
//! `mq:error` event carrying the same error object (plus the event name).
//!
//! Bounded cost per socket: a socket's answers pass two stages, in the order its events were
//! handled. The first waits for each change to be durable; it never waits for the socket, so
//! what it holds is bounded by the socket's event rate times the commit time. The second
//! holds at most [`REPLY_QUEUE`] answers that wait for the socket to read them; when it is
//! full, an answer is dropped (counted and logged, never sent): a client that does not read
//! gets no more answers, and costs no more memory, until it reads again. Refusals are logged
//! at a bounded rate: the first at once, then one summary per [`LOG_EVERY`] at most.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{Sid, Socket};
use socketioxide::{SendError, SocketError};

use super::flow::Flow;
use super::lane::{Lane, Pushed, Refused};
use crate::broker::Pending;
use crate::error::{Code, Error};

/// The event a failed event without ack callback is answered with.
pub const ERROR_EVENT: &str = "mq:error";

/// Answers one socket may have waiting to be written.
pub const REPLY_QUEUE: usize = 1024;

/// How often, at most, a socket's refused events are summed up in the log.
const LOG_EVERY: Duration = Duration::from_secs(10);

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

    /// Sends the ack, waiting for room in the socket's buffer if needed (while the socket
    /// stays connected).
    async fn send_paced(&self, body: &Value) {
        let mut backoff = Backoff::new();
        while self.socket.connected() {
            let mut unused = socketioxide_core::Value::Bytes(bytes::Bytes::new());
            let Ok(sender) = AckSender::from_message_parts(&self.socket, &mut unused, &self.ack_id);
            match sender.send(body) {
                Err(SendError::Socket(SocketError::InternalChannelFull)) => backoff.wait().await,
                _ => return,
            }
        }
    }
}

/// What an event's answer will be.
enum Outcome {
    /// Known now.
    Now(Result<Value, Error>),
    /// Known once the change is durable; `undo` runs if it is not.
    Committed(Pending<Value>, Option<Box<dyn FnOnce() + Send>>),
}

/// An answer on its way through a socket's [`Replies`].
enum Answer {
    One(Reply, Outcome),
    /// The answers of several events applied as one change: each has its own result, known
    /// once that change is durable (a failed commit fails them all).
    Many(Vec<Reply>, Pending<Vec<Result<Value, Error>>>),
}

/// The way back to the client for one event.
pub struct Reply {
    pub(crate) event: String,
    pub(crate) socket: SocketRef<LocalAdapter>,
    pub(crate) ack: AckHandle,
    /// The socket's answer stages.
    pub(crate) replies: Replies,
}

impl Reply {
    /// Answers once `pending` is durable (or at once if the event was refused), in turn
    /// with the socket's other answers, so that its next events are handled meanwhile and
    /// their commits can share one fsync.
    pub fn when_committed(self, pending: Result<Pending<Value>, Error>) {
        match pending {
            Ok(pending) => self.queue(Outcome::Committed(pending, None)),
            Err(err) => self.queue(Outcome::Now(Err(err))),
        }
    }

    /// Like [`Reply::when_committed`]; `undo` runs if the commit fails.
    pub fn when_committed_or_undo(
        self,
        pending: Pending<Value>,
        undo: impl FnOnce() + Send + 'static,
    ) {
        self.queue(Outcome::Committed(pending, Some(Box::new(undo))));
    }

    /// Answers with `result`, in turn with the socket's other answers.
    pub fn now(self, result: Result<Value, Error>) {
        self.queue(Outcome::Now(result));
    }

    /// Answers each of `replies` (events of one socket, in the order handled) with its own
    /// result once `pending` is durable, or all of them with the commit's error.
    pub fn all_when_committed(replies: Vec<Reply>, pending: Pending<Vec<Result<Value, Error>>>) {
        if let Some(stages) = replies.first().map(|reply| reply.replies.clone()) {
            stages.push(Answer::Many(replies, pending));
        }
    }

    fn queue(self, outcome: Outcome) {
        let replies = self.replies.clone();
        replies.push(Answer::One(self, outcome));
    }

    /// Sends the answer now, waiting while the socket's buffer is full. For a task that
    /// already stands in line for this socket (catch-up); everything else uses the queue.
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
                    let _ = emit_paced(&self.socket, ERROR_EVENT, &body, None).await;
                }
            }
        }
    }
}

/// One socket's answer stages and its refusal log. Cheap to clone.
///
/// Each stage is a [`Lane`]: its task runs only while answers wait in it, so the answers of
/// an idle socket cost two empty queues.
#[derive(Clone)]
pub struct Replies(Arc<Stages>);

struct Stages {
    /// First stage: answers waiting for their commit (unbounded, see the module's header).
    durable: Lane<Box<Answer>>,
    /// Second stage: answers waiting for the socket to read them.
    written: Lane<Written>,
    log: Mutex<RefusalLog>,
}

/// An answer whose result is known, waiting for the socket to read it.
type Written = Box<(Reply, Result<Value, Error>)>;

impl Replies {
    /// The answer stages of socket `sid`.
    pub fn new(sid: Sid) -> Self {
        Self(Arc::new(Stages {
            durable: Lane::new(usize::MAX),
            written: Lane::new(REPLY_QUEUE),
            log: Mutex::new(RefusalLog::new(sid)),
        }))
    }

    fn push(&self, answer: Answer) {
        // Refused only when the socket is gone; then nobody waits for answers.
        if let Ok(Pushed::Start) = self.0.durable.push(Box::new(answer)) {
            tokio::spawn(wait_durable(self.clone()));
        }
    }

    /// Drops the answers still waiting, and any that come later: the socket is gone.
    pub fn close(&self) {
        self.0.durable.close();
        self.0.written.close();
    }
}

/// First stage: waits for each answer's commit, in order, and hands it to the second stage.
/// Ends when the stage is empty.
async fn wait_durable(replies: Replies) {
    while let Some(answer) = replies.0.durable.next() {
        match *answer {
            Answer::One(reply, outcome) => {
                let result = match outcome {
                    Outcome::Now(result) => result,
                    Outcome::Committed(pending, undo) => {
                        let result = pending.committed().await;
                        if let (Err(_), Some(undo)) = (&result, undo) {
                            undo();
                        }
                        result
                    }
                };
                replies.hand_over(reply, result);
            }
            Answer::Many(many, pending) => match pending.committed().await {
                Ok(results) => {
                    for (reply, result) in many.into_iter().zip(results) {
                        replies.hand_over(reply, result);
                    }
                }
                Err(err) => {
                    for reply in many {
                        replies.hand_over(reply, Err(err.clone()));
                    }
                }
            },
        }
    }
}

impl Replies {
    /// Hands an answer whose result is known to the second stage, or drops it when that is
    /// full (the socket is not reading). A success nobody asked for is not sent at all.
    fn hand_over(&self, reply: Reply, result: Result<Value, Error>) {
        let stages = &self.0;
        let refused = result.as_ref().err().cloned();
        if refused.is_none() && !reply.ack.requested() {
            return;
        }
        let event = reply.event.clone();
        let dropped = match stages.written.push(Box::new((reply, result))) {
            Ok(Pushed::Start) => {
                tokio::spawn(write(self.clone()));
                false
            }
            Ok(Pushed::Queued) | Err(Refused::Closed(_)) => false,
            Err(Refused::Full(_)) => true,
        };
        if let Some(err) = &refused {
            note(&stages.log, &event, err, dropped);
        } else if dropped {
            let err = Error::new(Code::ReplyDropped, "the socket is not reading its answers");
            note(&stages.log, &event, &err, true);
        }
    }
}

/// Second stage: writes answers to the socket at the pace it reads. Ends when the stage is
/// empty.
async fn write(replies: Replies) {
    while let Some(written) = replies.0.written.next() {
        let (reply, result) = *written;
        reply.send(result).await;
    }
}

fn note(log: &Mutex<RefusalLog>, event: &str, error: &Error, dropped: bool) {
    // std Mutex: a counter update, never held across an await.
    if let Ok(mut log) = log.lock() {
        log.note(event, error, dropped);
    }
}

/// Counts a socket's refused events and logs them at a bounded rate.
struct RefusalLog {
    sid: Sid,
    since: Option<Instant>,
    refused: u64,
    dropped: u64,
}

impl RefusalLog {
    fn new(sid: Sid) -> Self {
        Self {
            sid,
            since: None,
            refused: 0,
            dropped: 0,
        }
    }

    fn note(&mut self, event: &str, error: &Error, dropped: bool) {
        let now = Instant::now();
        match self.since {
            Some(since) if now.duration_since(since) < LOG_EVERY => {
                self.refused += 1;
                self.dropped += u64::from(dropped);
            }
            _ => {
                if self.refused > 0 {
                    tracing::info!(
                        sid = %self.sid,
                        refused = self.refused,
                        dropped_unanswered = self.dropped,
                        "more events of this socket were refused since the last report"
                    );
                }
                tracing::info!(sid = %self.sid, event, code = %error.code(), dropped, "event refused: {}", error.message());
                self.since = Some(now);
                self.refused = 0;
                self.dropped = 0;
            }
        }
    }
}

/// Emits `event` to one socket, waiting while its buffer is full: on a timer or, with `flow`,
/// until the client acks something. `Err` means the socket is gone; nothing is lost then,
/// because every message is still in the inbox until acked.
pub async fn emit_paced<T: Serialize + ?Sized>(
    socket: &SocketRef<LocalAdapter>,
    event: &str,
    data: &T,
    flow: Option<&Flow>,
) -> Result<(), SendError> {
    let attempt = || match socket.emit(event, data) {
        Err(SendError::Socket(SocketError::InternalChannelFull)) => None,
        Ok(()) => Some(Ok(())),
        Err(err) => Some(Err(err)),
    };
    let mut backoff = Backoff::new();
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        let Some(flow) = flow else {
            backoff.wait().await;
            continue;
        };
        let acked = flow.woken();
        tokio::pin!(acked);
        acked.as_mut().enable();
        // Acks that came between the attempt above and `enable` woke nobody: try once more.
        if let Some(done) = attempt() {
            return done;
        }
        tokio::select! {
            () = &mut acked => {}
            () = backoff.wait() => {}
        }
    }
}

/// Exponential wait from 1 ms to 16 ms, for a socket that is not reading fast enough: short
/// enough that a socket that drains its buffer is fed again within a few milliseconds.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(1))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(16));
    }
}
