//! Jobs: the broker's side of the beanstalk door. A client's work subscription that
//! *serves jobs* hands out messages by priority with per-job leases to workers that pull
//! (room for one job while they wait in `reserve`), and its jobs can be reserved by id,
//! touched, released with a priority and delay, buried, kicked and deleted (see
//! `index::jobs`). Every change that must survive a restart is committed before it is
//! answered but a delete, which is answered once applied, its commit following
//! (DECISIONS 64); leases (who holds what) live in memory, like every worker's.

use std::sync::Arc;

use super::index::{Assignment, JobState, JobView, Peek, TubeCounts, deliveries};
use super::message::{SharedPayload, now_ms};
use super::{Broker, Pending};
use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::{JobMeta, MessageMeta, Mode, Removal, SubscriptionRecord};

/// Whether a subscription serves jobs, as [`Broker::serve_jobs`] found it.
#[must_use]
pub(crate) enum Serving {
    /// It does.
    Now,
    /// It does once this subscribe is committed.
    Once(Pending<()>),
    /// The client is subscribed to the queue in broadcast mode: it serves no jobs.
    Taken,
}

/// A job handed to a worker: its metadata and how often it was handed out.
#[derive(Clone, Debug)]
pub struct Reserved {
    pub meta: Arc<MessageMeta>,
    pub reserves: u32,
}

impl Broker {
    /// Makes `client`'s subscription to `queue` a work subscription that serves jobs,
    /// subscribing it (durably) if it is not subscribed yet. Not if the client is
    /// subscribed to that queue in broadcast mode (a socket.io client took the name:
    /// [`Serving::Taken`], DECISIONS 65).
    pub(crate) fn serve_jobs(
        &self,
        client: &ClientId,
        queue: &QueueName,
    ) -> Result<Serving, Error> {
        {
            let mut core = self.shared.lock();
            match core.index.is_subscribed(client, queue) {
                Some(true) => {
                    core.index.serve_jobs(client, queue);
                    return Ok(Serving::Now);
                }
                Some(false) => return Ok(Serving::Taken),
                None => {}
            }
        }
        let record = SubscriptionRecord {
            mode: Mode::Work,
            ..SubscriptionRecord::default()
        };
        let pending = self.mutate(|index, effects| {
            index.subscribe(client, queue, record, &mut effects.ops);
            index.serve_jobs(client, queue);
            // Messages it took from the waiting list are the dispatcher's now.
            effects.dispatch.push((client.clone(), queue.clone()));
            Ok(())
        })?;
        Ok(Serving::Once(pending))
    }

    /// The `(priority, id)` of the job `client`'s subscription to `queue` would hand out
    /// next, if one is ready: a worker watching several tubes takes the best of them.
    pub(crate) fn next_ready_job(
        &self,
        client: &ClientId,
        queue: &QueueName,
    ) -> Option<(u32, u64)> {
        self.shared
            .lock()
            .index
            .next_ready_job(client, queue, now_ms())
    }

    /// Reserves the next ready job of `client`'s subscription to `queue` for `consumer` at
    /// once, if there is one whose publish is committed: a reserve writes nothing
    /// (DECISIONS 60), so it waits for no commit and needs no hand-over. `None` if no job
    /// is ready (the caller then waits in `reserve`, see [`Broker::open_room`]).
    pub(crate) fn take_ready(
        &self,
        client: &ClientId,
        queue: &QueueName,
        consumer: &str,
    ) -> Result<Option<Reserved>, Error> {
        let now = now_ms();
        // Publishes commit in seq order: up to this one, every job in the index is stored.
        let settled = *self.shared.settled.borrow();
        let taken = {
            let mut core = self.shared.lock();
            if let Some(error) = &core.rebuilding {
                return Err(error.clone());
            }
            if core.writer.is_none() {
                return Err(Error::shutting_down());
            }
            core.index.set_room(client, queue, consumer, false)?;
            match core.index.next_ready_job(client, queue, now) {
                Some((_, seq)) if seq <= settled => {
                    core.index.take_job((client, queue), seq, consumer, now)
                }
                _ => None,
            }
        };
        if taken.is_some() {
            // A new lease: the timer may have to wake sooner.
            self.shared.timer.notify_one();
        }
        Ok(taken.map(|a| Reserved {
            meta: a.meta,
            reserves: a.attempt,
        }))
    }

    /// Opens worker `consumer`'s window on `client`'s jobs in `queue` (room for one more
    /// job) and hands it the next ready job in the same mutation: it is sent once that
    /// commit (its attempt count) is on disk. Returns whether a job was ready.
    pub(crate) fn open_room(
        &self,
        client: &ClientId,
        queue: &QueueName,
        consumer: &str,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let pending = self.mutate(|index, effects| {
            index.set_room(client, queue, consumer, true)?;
            let ready = index.has_ready_job(client, queue, now);
            if ready {
                // No socket of a job-serving client is online for pushes: `false`.
                Broker::dispatch_now(index, effects, (client, queue), now, &|_, _| false);
            }
            Ok(ready)
        })?;
        let ready = pending.value;
        // The assignment goes out after the commit whoever waits for it; a failed commit
        // leaves the connection waiting until its timeout, like any lost hand-over.
        drop(pending.done);
        Ok(ready)
    }

    /// Closes worker `consumer`'s window (no room: it is not waiting in `reserve`).
    /// Returns the jobs it holds, among them any handed to it but not received yet.
    pub(crate) fn close_room(
        &self,
        client: &ClientId,
        queue: &QueueName,
        consumer: &str,
    ) -> Vec<u64> {
        self.shared
            .lock()
            .index
            .set_room(client, queue, consumer, false)
            .unwrap_or_default()
    }

    /// Whether `queue` exists (has been published to or subscribed to).
    pub(crate) fn has_queue(&self, queue: &QueueName) -> bool {
        self.shared.lock().index.queues.contains_key(queue)
    }

    /// How many messages were ever published to `queue` (its `published` counter).
    pub(crate) fn published(&self, queue: &QueueName) -> u64 {
        self.shared
            .lock()
            .index
            .queues
            .get(queue)
            .map_or(0, |q| q.counters.published)
    }

    /// The stored metadata of job (message) `seq`, if it is stored.
    pub(crate) fn job_meta(&self, seq: u64) -> Option<Arc<MessageMeta>> {
        self.shared.lock().index.meta(seq)
    }

    /// Job `seq` as `client`'s subscription holds it now.
    pub(crate) fn job(&self, client: &ClientId, seq: u64) -> Option<JobView> {
        self.shared.lock().index.job(client, seq, now_ms())
    }

    /// The job a peek names in `client`'s subscription to `queue`.
    pub(crate) fn peek_job(
        &self,
        client: &ClientId,
        queue: &QueueName,
        which: Peek,
    ) -> Option<JobView> {
        self.shared
            .lock()
            .index
            .peek_job(client, queue, which, now_ms())
    }

    /// How many jobs of `client`'s subscription to `queue` are in each state.
    pub(crate) fn tube_counts(&self, client: &ClientId, queue: &QueueName) -> TubeCounts {
        self.shared
            .lock()
            .index
            .tube_counts(client, queue, now_ms())
    }

    /// The payload of message `seq` as stored (JSON text, as the publisher wrote it when it
    /// gave one); `None` if it is not stored.
    pub(crate) async fn payload_text(&self, seq: u64) -> Result<Option<String>, Error> {
        self.settled(seq).await;
        Ok(self.payloads(vec![seq]).await?.pop().flatten())
    }

    /// Reserves job `seq` for `consumer` (`reserve-job`), making it ready first if it is
    /// buried or delayed. `None` if the subscription does not hold it or it is reserved.
    pub(crate) async fn reserve_job(
        &self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
    ) -> Result<Option<Reserved>, Error> {
        let Some(job) = self.job(client, seq) else {
            return Ok(None);
        };
        match job.state {
            JobState::Reserved => return Ok(None),
            JobState::Buried | JobState::Delayed => {
                self.kick_one(client, &job).await?;
            }
            JobState::Ready => {}
        }
        let queue = job.meta.queue.clone();
        let now = now_ms();
        let taken = self
            .mutate(|index, _effects| {
                index.set_room(client, &queue, consumer, false)?;
                Ok(index.take_job((client, &queue), seq, consumer, now))
            })?
            .committed()
            .await?;
        self.shared.timer.notify_one();
        Ok(taken.map(|a: Assignment| Reserved {
            meta: a.meta,
            reserves: a.attempt,
        }))
    }

    /// Gives `consumer` a new lease on job `seq`; `false` if it does not hold it.
    pub(crate) fn touch_job(&self, client: &ClientId, seq: u64, consumer: &str) -> bool {
        let mut core = self.shared.lock();
        let Some(meta) = core.index.meta(seq) else {
            return false;
        };
        core.index
            .touch(client, &meta.queue, seq, consumer, now_ms())
    }

    /// Hands job `seq` back from `consumer` with a new priority, ready at once or after
    /// `delay_ms` (durably). `false` if `consumer` does not hold it.
    pub(crate) async fn release_job(
        &self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
        priority: u32,
        delay_ms: u64,
    ) -> Result<bool, Error> {
        self.change_held(client, seq, consumer, |meta, job, now| {
            job.priority = priority;
            job.delay_ms = (delay_ms > 0).then_some(delay_ms);
            meta.deliver_at_ms = (delay_ms > 0).then(|| now.saturating_add(delay_ms));
        })
        .await
    }

    /// Sets job `seq` aside (`bury`) with a new priority, until kicked. `false` if
    /// `consumer` does not hold it.
    pub(crate) async fn bury_job(
        &self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
        priority: u32,
    ) -> Result<bool, Error> {
        self.change_held(client, seq, consumer, |_, job, _| {
            job.priority = priority;
            job.buried = true;
        })
        .await
    }

    /// Takes job `seq` back from `consumer`, which must hold it, changes its metadata, and
    /// commits both; the subscription looks for a worker again (at the job's new due time
    /// if it has one).
    async fn change_held(
        &self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
        change: impl FnOnce(&mut MessageMeta, &mut JobMeta, u64),
    ) -> Result<bool, Error> {
        let held = self
            .job(client, seq)
            .is_some_and(|j| j.holder.as_deref() == Some(consumer));
        if !held {
            return Ok(false);
        }
        let Some(text) = self.payload_text(seq).await? else {
            return Ok(false);
        };
        let now = now_ms();
        let done = self
            .mutate(|index, effects| {
                let Some(old) = index.meta(seq) else {
                    return Ok(false);
                };
                let queue = old.queue.clone();
                if !index.unreserve(client, &queue, seq, consumer) {
                    return Ok(false);
                }
                index.save_reserves(client, &queue, seq, &mut effects.ops);
                let mut meta = (*old).clone();
                let mut job = meta.job.unwrap_or(JobMeta {
                    priority: JobMeta::DEFAULT_PRIORITY,
                    ttr_ms: None,
                    buried: false,
                    delay_ms: None,
                });
                change(&mut meta, &mut job, now);
                meta.job = Some(job);
                if let Some(due) = meta.deliver_at_ms.filter(|at| *at > now) {
                    index.wake_at(client, &queue, seq, due);
                }
                index.put_job_meta(meta, text, &mut effects.ops);
                effects.dispatch.push((client.clone(), queue));
                Ok(true)
            })?
            .committed()
            .await?;
        self.shared.timer.notify_one();
        Ok(done)
    }

    /// Deletes job `seq` (acks it) unless another worker than `consumer` holds it.
    /// Returns once applied (no one can reserve, peek or delete it any more) and noted
    /// ahead of its commit where a kill -9 cannot lose it (`Store::note_ahead`); the commit
    /// follows with the next group commit (DECISIONS 64). With an engine that keeps no such
    /// notes (Redis), or if noting fails, returns once committed. Should that commit fail,
    /// the index is rebuilt from the store and the job is back until the next start applies
    /// the note.
    pub(crate) async fn delete_job(
        &self,
        client: &ClientId,
        seq: u64,
        consumer: &str,
    ) -> Result<bool, Error> {
        let pending = self.mutate(|index, effects| {
            let queue = index.meta(seq).map(|m| m.queue.clone());
            let deleted = index.delete_job(client, seq, consumer, &mut effects.ops);
            let Some(queue) = queue.filter(|_| deleted) else {
                return Ok(None);
            };
            effects.dispatch.push((client.clone(), queue.clone()));
            let removal = Removal {
                client: client.clone(),
                queue,
                seq,
                message_gone: index.meta(seq).is_none(),
            };
            Ok(Some(removal))
        })?;
        let Some(removal) = &pending.value else {
            return Ok(false);
        };
        // Answered before the commit once the removal is where a kill -9 cannot lose it
        // (DECISIONS 64); where the engine cannot keep it so, once committed.
        match self
            .shared
            .store
            .note_ahead(pending.batch, std::slice::from_ref(removal))
        {
            Ok(true) => Ok(true),
            Ok(false) | Err(_) => pending.committed().await.map(|_| true),
        }
    }

    /// Kicks up to `bound` jobs of `client`'s subscription to `queue` back to ready: the
    /// buried ones if there are any, else the delayed ones. Returns the ids of those that moved.
    pub(crate) async fn kick_jobs(
        &self,
        client: &ClientId,
        queue: &QueueName,
        bound: usize,
    ) -> Result<Vec<u64>, Error> {
        let kickable = self
            .shared
            .lock()
            .index
            .kickable(client, queue, bound, now_ms());
        let mut moved = Vec::new();
        for job in kickable {
            if self.kick_one(client, &job).await? {
                moved.push(job.meta.seq);
            }
        }
        Ok(moved)
    }

    /// Kicks job `seq` back to ready if it is buried or delayed; `false` otherwise.
    pub(crate) async fn kick_job(&self, client: &ClientId, seq: u64) -> Result<bool, Error> {
        match self.job(client, seq) {
            Some(job) if matches!(job.state, JobState::Buried | JobState::Delayed) => {
                self.kick_one(client, &job).await
            }
            _ => Ok(false),
        }
    }

    /// Makes one buried or delayed job ready now (a scheduled one is routed to every
    /// subscriber of its queue, as when it comes due), durably.
    async fn kick_one(&self, client: &ClientId, job: &JobView) -> Result<bool, Error> {
        let seq = job.meta.seq;
        let Some(text) = self.payload_text(seq).await? else {
            return Ok(false);
        };
        // A damaged payload still lets the job be kicked; it only reaches no live subscriber.
        let payload = SharedPayload::from_stored(text.clone());
        let online = self.online();
        let now = now_ms();
        self.mutate(|index, effects| {
            let Some(current) = index.job(client, seq, now) else {
                return Ok(false);
            };
            if current.state != job.state {
                return Ok(false);
            }
            let old = current.meta;
            let queue = old.queue.clone();
            if current.state == JobState::Delayed
                && let Some((recipients, workers)) = index.wake(&old, &online, &mut effects.ops)
            {
                effects
                    .dispatch
                    .extend(workers.into_iter().map(|c| (c, queue.clone())));
                if let Some(payload) = &payload {
                    effects
                        .deliveries
                        .extend(deliveries(&old, &recipients, payload.clone()));
                }
            }
            let mut meta = (*old).clone();
            meta.deliver_at_ms = None;
            if let Some(job) = meta.job.as_mut() {
                job.buried = false;
            }
            index.put_job_meta(meta, text, &mut effects.ops);
            effects.dispatch.push((client.clone(), queue));
            Ok(true)
        })?
        .committed()
        .await
    }
}
