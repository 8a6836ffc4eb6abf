//! `reserve`, `reserve-with-timeout` and `reserve-job`. A connection that reserves opens
//! its room in every watched tube that is not paused (the broker hands it a ready job at
//! once, or the first that becomes ready), and waits for the job, its timeout, a lease of
//! its own about to end (`DEADLINE_SOON`), a pause, or the client closing. Closing the
//! rooms again, it still answers with a job handed to it just before.

use std::time::{Duration, Instant};

use super::connection::Conn;
use super::jobs::{NOT_FOUND, failed};
use super::protocol::{self, Tube};
use super::{body, tube};
use crate::broker::Envelope;
use crate::names::ClientId;
use crate::store::JobMeta;

/// A reserved job's lease is "soon over" within this margin: `reserve` answers
/// `DEADLINE_SOON` instead of waiting (beanstalkd's safety margin).
const SAFETY_MARGIN: Duration = Duration::from_secs(1);

/// How long `reserve-with-timeout 0` waits for a job that was ready when it asked (it
/// needs a commit of its own), and how long a job handed out while the wait ended may take
/// to arrive.
const HAND_OVER: Duration = Duration::from_secs(2);

impl Conn {
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
        let watching = self.watching.clone();
        // Those whose name a broadcast subscriber took offer no jobs (DECISIONS 65).
        let mut tubes = Vec::with_capacity(watching.len());
        for tube in &watching {
            match self.serve_jobs(&tube::client(tube), tube).await {
                Ok(true) => tubes.push(tube.clone()),
                Ok(false) => {}
                Err(err) => return Some(failed(&err)),
            }
        }
        self.shared.stats.waiting(&watching, true);
        let reply = self.wait_for_job(&tubes, deadline).await;
        self.shared.stats.waiting(&watching, false);
        reply
    }

    async fn wait_for_job(&mut self, tubes: &[Tube], deadline: Option<Instant>) -> Option<Vec<u8>> {
        // Whether the deadline passed once already (see the timeout below).
        let mut looked_at_deadline = false;
        loop {
            let paused: Vec<Option<Instant>> = tubes
                .iter()
                .map(|t| self.shared.stats.paused_until(t))
                .collect();
            // The tube whose next job comes first (priority, then id, as beanstalkd picks
            // across tubes) opens first; once one hands a job over, the rest stay closed.
            let broker = &self.shared.broker;
            let mut open: Vec<(Option<(u32, u64)>, &Tube)> = tubes
                .iter()
                .zip(&paused)
                .filter(|(_, paused)| paused.is_none())
                .map(|(t, _)| (broker.next_ready_job(&tube::client(t), &tube::queue(t)), t))
                .collect();
            open.sort_by_key(|(next, _)| next.map_or((1, 0, 0), |(p, id)| (0, p, id)));
            // A job ready now is taken at once (no commit, no hand-over).
            for (next, tube) in &open {
                if next.is_none() {
                    break;
                }
                let (client, queue) = (tube::client(tube), tube::queue(tube));
                match self.shared.broker.take_ready(&client, &queue, &self.worker) {
                    Ok(Some(job)) => {
                        if let Some(reply) = self.reserved_reply(job, tube).await {
                            return Some(reply);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => return Some(failed(&err)),
                }
            }
            let mut ready = false;
            for (_, tube) in open {
                let (client, queue) = (tube::client(tube), tube::queue(tube));
                match self.shared.broker.open_room(&client, &queue, &self.worker) {
                    Ok(found) => ready = found,
                    Err(err) => return Some(failed(&err)),
                }
                if ready {
                    break;
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
                        // A delayed job that came due by the deadline is this reserve's, as in
                        // beanstalkd (whose one loop makes it ready first), even if the
                        // broker's timer has not handed it out yet: one more look takes it.
                        if looked_at_deadline {
                            return Some(b"TIMED_OUT\r\n".to_vec());
                        }
                        looked_at_deadline = true;
                        continue;
                    }
                    // A pause ended or a lease is about to: look again.
                }
            }
        }
    }

    /// When the first lease of the jobs this connection holds ends. (Jobs whose lease
    /// ended meanwhile are forgotten here.)
    fn soonest_lease_end(&mut self) -> Option<Instant> {
        let now_ms = crate::broker::message::now_ms();
        let (broker, worker) = (&self.shared.broker, self.worker.as_str());
        let mut soonest = None;
        self.reserved.retain(|id, tube| {
            let end = broker
                .job(&tube::client(tube), *id)
                .filter(|job| job.holder.as_deref() == Some(worker))
                .and_then(|job| job.until_ms);
            if let Some(end) = end {
                soonest = Some(soonest.map_or(end, |s: u64| s.min(end)));
            }
            end.is_some()
        });
        soonest.map(|end| Instant::now() + Duration::from_millis(end.saturating_sub(now_ms)))
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

    /// A job the broker handed this connection: now reserved by it. `None` if it is no
    /// longer its (deleted or acked over HTTP meanwhile, or its lease ended).
    async fn take_handed(&mut self, job: Envelope) -> Option<Vec<u8>> {
        let tube = tube::of_queue(&job.queue)?;
        // Still this connection's (its lease may have ended while it was on its way).
        let holder = self
            .shared
            .broker
            .job(&tube::client(&tube), job.seq)?
            .holder;
        if holder.as_deref() != Some(self.worker.as_str()) {
            return None;
        }
        let body = self.body(job.seq, &job.event).await?;
        self.reserved.insert(job.seq, tube);
        Some(protocol::job_reply("RESERVED", job.seq, &body))
    }

    /// The `RESERVED` reply for a job this connection just reserved; `None` if it is no
    /// longer stored (deleted meanwhile over another door).
    async fn reserved_reply(
        &mut self,
        job: crate::broker::Reserved,
        tube: &Tube,
    ) -> Option<Vec<u8>> {
        let seq = job.meta.seq;
        let body = self.body(seq, &job.meta.event).await?;
        self.reserved.insert(seq, tube.clone());
        Some(protocol::job_reply("RESERVED", seq, &body))
    }

    /// The body of job `seq` (of event `event`), from the door's cache or the store; `None`
    /// if it is no longer stored.
    async fn body(&self, seq: u64, event: &crate::names::EventName) -> Option<Vec<u8>> {
        if let Some(body) = self.shared.bodies.take(seq) {
            return Some(body);
        }
        let text = self.shared.broker.payload_text(seq).await.ok()??;
        Some(body::decode(event, &text))
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

    /// `reserve-job <id>`: that job, whatever its state but reserved.
    pub(super) async fn reserve_job(&mut self, id: u64) -> Vec<u8> {
        self.shared.stats.command("cmd-reserve-job");
        let Some(tube) = self.tube_of(id) else {
            return NOT_FOUND.to_vec();
        };
        let client = tube::client(&tube);
        match self.serve_jobs(&client, &tube).await {
            Ok(true) => {}
            Ok(false) => return NOT_FOUND.to_vec(),
            Err(err) => return failed(&err),
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
        self.shared.bodies.take(id);
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
}
