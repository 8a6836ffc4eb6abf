//! The job commands: `put`, `reserve` (and `-with-timeout`, `-job`), `delete`, `release`,
//! `bury`, `touch`, `kick`, `kick-job`. Each goes through the broker; each that changes
//! what is stored answers only once the change is committed.

use std::time::Duration;

use std::time::Instant;

use super::connection::Conn;
use super::protocol::{self, Tube};
use super::{body, tube};
use crate::broker::{Envelope, JobState, NewMessage};
use crate::error::{Code, Error};
use crate::names::ClientId;
use crate::store::JobMeta;

/// A reserved job's lease is "soon over" within this margin: `reserve` answers
/// `DEADLINE_SOON` instead of waiting (beanstalkd's safety margin).
const SAFETY_MARGIN: Duration = Duration::from_secs(1);

/// How long `reserve-with-timeout 0` waits for a job that was ready when it asked (it
/// needs a commit of its own), and how long a job handed out while the wait ended may take
/// to arrive.
const HAND_OVER: Duration = Duration::from_secs(2);

/// What a reply says when the broker failed: beanstalkd's words for it.
fn failed(err: &Error) -> Vec<u8> {
    tracing::warn!(code = %err.code(), "beanstalk: {}", err.message());
    match err.code() {
        Code::StorageFull => b"OUT_OF_MEMORY\r\n".to_vec(),
        Code::ShuttingDown => b"DRAINING\r\n".to_vec(),
        Code::PayloadTooLarge => b"JOB_TOO_BIG\r\n".to_vec(),
        _ => b"INTERNAL_ERROR\r\n".to_vec(),
    }
}

const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";

impl Conn {
    /// `put`: a durable publish to the used tube's queue; `INSERTED <id>` once committed.
    pub(super) async fn put(
        &mut self,
        priority: u32,
        delay: u32,
        ttr: u32,
        body: &[u8],
    ) -> Vec<u8> {
        self.shared.stats.command("cmd-put");
        if !self.producer {
            self.producer = true;
            self.shared.stats.role(true, true);
        }
        let (client, queue) = (tube::client(&self.using), tube::queue(&self.using));
        if let Err(err) = self.serve_jobs(&client, &self.using.clone()).await {
            return failed(&err);
        }
        let encoded = body::encode(body);
        let now = crate::broker::message::now_ms();
        let mut message = NewMessage::new(queue, encoded.event, encoded.payload, "beanstalk");
        message.deliver_at_ms = (delay > 0).then(|| now.saturating_add(u64::from(delay) * 1000));
        message.job = Some(JobMeta {
            priority,
            // beanstalkd raises a TTR of 0 to 1 second.
            ttr_ms: Some(u64::from(ttr.max(1)) * 1000),
            buried: false,
        });
        message.text = Some(encoded.text);
        let published = match self.shared.broker.publish(vec![message]) {
            Ok(pending) => pending.committed().await,
            Err(err) => Err(err),
        };
        match published.map(|mut p| p.pop()) {
            Ok(Some(published)) => format!("INSERTED {}\r\n", published.seq).into_bytes(),
            Ok(None) => b"INTERNAL_ERROR\r\n".to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// Makes sure the tube's client is subscribed and serves jobs (committed).
    async fn serve_jobs(&self, client: &ClientId, tube: &Tube) -> Result<(), Error> {
        match self.shared.broker.serve_jobs(client, &tube::queue(tube))? {
            Some(pending) => pending.committed().await,
            None => Ok(()),
        }
    }

    /// `reserve` (no timeout) and `reserve-with-timeout` (seconds): the first job any
    /// watched tube hands this connection; `None` if the client closed while it waited.
    pub(super) async fn reserve(&mut self, seconds: Option<u32>) -> Option<Vec<u8>> {
        self.shared.stats.command(match seconds {
            None => "cmd-reserve",
            Some(_) => "cmd-reserve-with-timeout",
        });
        if !self.worker_role {
            self.worker_role = true;
            self.shared.stats.role(false, true);
        }
        let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        let tubes = self.watching.clone();
        for tube in &tubes {
            if let Err(err) = self.serve_jobs(&tube::client(tube), tube).await {
                return Some(failed(&err));
            }
        }
        self.shared.stats.waiting(&tubes, true);
        let reply = self.wait_for_job(&tubes, deadline).await;
        self.shared.stats.waiting(&tubes, false);
        reply
    }

    async fn wait_for_job(&mut self, tubes: &[Tube], deadline: Option<Instant>) -> Option<Vec<u8>> {
        loop {
            let paused: Vec<Option<Instant>> = tubes
                .iter()
                .map(|t| self.shared.stats.paused_until(t))
                .collect();
            let mut ready = false;
            for (tube, paused) in tubes.iter().zip(&paused) {
                if paused.is_none() {
                    let (client, queue) = (tube::client(tube), tube::queue(tube));
                    match self.shared.broker.open_room(&client, &queue, &self.worker) {
                        Ok(found) => ready |= found,
                        Err(err) => return Some(failed(&err)),
                    }
                }
            }
            let soonest = self.soonest_lease_end();
            let deadline_soon = soonest.is_some_and(|end| end <= Instant::now() + SAFETY_MARGIN);
            // Nothing to wait for: answered at once (after a job on its way, if any).
            let now_or_never = deadline.is_some_and(|d| d <= Instant::now());
            if !ready && (deadline_soon || now_or_never) {
                if let Some(reply) = self.close_rooms(tubes).await {
                    return Some(reply);
                }
                return Some(if deadline_soon {
                    b"DEADLINE_SOON\r\n".to_vec()
                } else {
                    b"TIMED_OUT\r\n".to_vec()
                });
            }
            // Wake for the caller's deadline (or, with jobs ready, long enough for one to
            // be handed over), a lease about to end, or a pause ending.
            let mut wake = deadline.map(|d| {
                if ready {
                    d.max(Instant::now() + HAND_OVER)
                } else {
                    d
                }
            });
            let soon = soonest.map(|end| end.checked_sub(SAFETY_MARGIN).unwrap_or(end));
            for at in paused.iter().flatten().copied().chain(soon) {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let paused_now = self.shared.stats.paused.notified();
            tokio::select! {
                () = paused_now => {
                    if let Some(reply) = self.close_rooms(tubes).await {
                        return Some(reply);
                    }
                    // A watched tube may be paused now: look again.
                }
                handed = self.handed.recv() => {
                    let Some(job) = handed else { return Some(b"INTERNAL_ERROR\r\n".to_vec()) };
                    self.close_rooms_now(tubes);
                    match self.take_handed(job).await {
                        Some(reply) => {
                            self.give_back_extras().await;
                            return Some(reply);
                        }
                        None => continue,
                    }
                }
                closed = self.input.closed() => {
                    let _ = closed;
                    self.close_rooms_now(tubes);
                    return None;
                }
                _ = sleep => {
                    if let Some(reply) = self.close_rooms(tubes).await {
                        return Some(reply);
                    }
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        return Some(b"TIMED_OUT\r\n".to_vec());
                    }
                    // A pause ended or a lease is about to: look again.
                }
            }
        }
    }

    /// When the first lease of the jobs this connection holds ends.
    fn soonest_lease_end(&self) -> Option<Instant> {
        let now_ms = crate::broker::message::now_ms();
        self.reserved
            .iter()
            .filter_map(|(id, tube)| {
                let job = self.shared.broker.job(&tube::client(tube), *id)?;
                (job.holder.as_deref() == Some(self.worker.as_str()))
                    .then_some(job.until_ms)
                    .flatten()
            })
            .min()
            .map(|end| Instant::now() + Duration::from_millis(end.saturating_sub(now_ms)))
    }

    /// Closes the connection's room in `tubes`. A job handed to it before that (its
    /// commit and send are on their way) is waited for and answered.
    async fn close_rooms(&mut self, tubes: &[Tube]) -> Option<Vec<u8>> {
        if !self.close_rooms_now(tubes) {
            return None;
        }
        let arrival = tokio::time::timeout(HAND_OVER, self.handed.recv()).await;
        let reply = match arrival {
            Ok(Some(job)) => self.take_handed(job).await,
            _ => None,
        };
        self.give_back_extras().await;
        reply
    }

    /// Closes the rooms; `true` if a job was handed to the connection that it has not
    /// received yet.
    fn close_rooms_now(&mut self, tubes: &[Tube]) -> bool {
        let mut coming = false;
        for tube in tubes {
            let held = self.shared.broker.close_room(
                &tube::client(tube),
                &tube::queue(tube),
                &self.worker,
            );
            coming |= held.iter().any(|id| !self.reserved.contains_key(id));
        }
        coming
    }

    /// A job the broker handed this connection: now reserved by it. `None` if it is gone
    /// already (acked over HTTP meanwhile).
    async fn take_handed(&mut self, job: Envelope) -> Option<Vec<u8>> {
        let tube = tube::of_queue(&job.queue)?;
        let text = self.shared.broker.payload_text(job.seq).await.ok()??;
        self.reserved.insert(job.seq, tube);
        let body = body::decode(&job.event, &text);
        Some(protocol::job_reply("RESERVED", job.seq, &body))
    }

    /// Jobs handed over while the connection was no longer waiting (it watched several
    /// tubes, and two handed one each): released at once, ready for the next worker.
    async fn give_back_extras(&mut self) {
        while let Ok(job) = self.handed.try_recv() {
            let client = ClientId::parse(job.queue.as_str());
            if let Ok(client) = client {
                let priority = self
                    .shared
                    .broker
                    .job_meta(job.seq)
                    .map_or(JobMeta::DEFAULT_PRIORITY, |m| crate::broker::priority(&m));
                let _ = self
                    .shared
                    .broker
                    .release_job(&client, job.seq, &self.worker, priority, 0)
                    .await;
            }
        }
    }

    /// The tube of job `id`, if it is a stored message of a queue that is a tube.
    pub(super) fn tube_of(&self, id: u64) -> Option<Tube> {
        tube::of_queue(&self.shared.broker.job_meta(id)?.queue)
    }

    /// `reserve-job <id>`: that job, whatever its state but reserved.
    pub(super) async fn reserve_job(&mut self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-reserve-job");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let client = tube::client(&tube);
        if let Err(err) = self.serve_jobs(&client, &tube).await {
            return failed(&err);
        }
        let reserved = self
            .shared
            .broker
            .reserve_job(&client, id, &self.worker)
            .await;
        let job = match reserved {
            Ok(Some(job)) => job,
            Ok(None) => return NOT_FOUND.to_vec(),
            Err(err) => return failed(&err),
        };
        match self.shared.broker.payload_text(id).await {
            Ok(Some(text)) => {
                self.reserved.insert(id, tube);
                let body = body::decode(&job.meta.event, &text);
                protocol::job_reply("RESERVED", id, &body)
            }
            Ok(None) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// `delete <id>`: a job this connection reserved, or one that is ready, delayed or
    /// buried.
    pub(super) async fn delete(&mut self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-delete");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let client = tube::client(&tube);
        match self
            .shared
            .broker
            .delete_job(&client, id, &self.worker)
            .await
        {
            Ok(true) => {
                self.reserved.remove(&id);
                self.shared.stats.tube(&tube, |u| u.deletes += 1);
                b"DELETED\r\n".to_vec()
            }
            Ok(false) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// `release <id> <pri> <delay>`: a job this connection reserved, back to ready.
    pub(super) async fn release(&mut self, id: u64, priority: u32, delay: u32) -> Vec<u8> {
        self.shared.stats.command("cmd-release");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let delay_ms = u64::from(delay) * 1000;
        let released = self
            .shared
            .broker
            .release_job(&tube::client(&tube), id, &self.worker, priority, delay_ms)
            .await;
        match released {
            Ok(true) => {
                self.reserved.remove(&id);
                b"RELEASED\r\n".to_vec()
            }
            Ok(false) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// `bury <id> <pri>`: a job this connection reserved, set aside until kicked.
    pub(super) async fn bury(&mut self, id: u64, priority: u32) -> Vec<u8> {
        self.shared.stats.command("cmd-bury");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let buried = self
            .shared
            .broker
            .bury_job(&tube::client(&tube), id, &self.worker, priority)
            .await;
        match buried {
            Ok(true) => {
                self.reserved.remove(&id);
                b"BURIED\r\n".to_vec()
            }
            Ok(false) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// `touch <id>`: a new lease on a job this connection reserved.
    pub(super) fn touch(&mut self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-touch");
        let touched = self.tube_of(id).is_some_and(|tube| {
            self.shared
                .broker
                .touch_job(&tube::client(&tube), id, &self.worker)
        });
        if touched {
            b"TOUCHED\r\n".to_vec()
        } else {
            NOT_FOUND.to_vec()
        }
    }

    /// `kick <bound>`: up to `bound` jobs of the used tube back to ready, the buried ones
    /// if it has any, else the delayed ones.
    pub(super) async fn kick(&mut self, bound: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-kick");
        let tube = self.using.clone();
        let bound = usize::try_from(bound).unwrap_or(usize::MAX);
        let kicked = self
            .shared
            .broker
            .kick_jobs(&tube::client(&tube), &tube::queue(&tube), bound)
            .await;
        match kicked {
            Ok(n) => format!("KICKED {n}\r\n").into_bytes(),
            Err(err) => failed(&err),
        }
    }

    /// `kick-job <id>`: one buried or delayed job back to ready.
    pub(super) async fn kick_job(&mut self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-kick-job");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let client = tube::client(&tube);
        let state = self.shared.broker.job(&client, id).map(|j| j.state);
        if !matches!(state, Some(JobState::Buried | JobState::Delayed)) {
            return NOT_FOUND.to_vec();
        }
        match self.shared.broker.kick_job(&client, id).await {
            Ok(true) => b"KICKED\r\n".to_vec(),
            Ok(false) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }
}
