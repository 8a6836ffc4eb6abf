//! The job commands but the reserves (`reserve.rs`): `put`, `delete`, `release`, `bury`,
//! `touch`, `kick`, `kick-job`. Each goes through the broker; each that changes what is
//! stored answers only once the change is committed, but `delete`, answered once applied,
//! its commit following with the next group commit (DECISIONS 64).

use super::connection::Conn;
use super::protocol::Tube;
use super::{body, tube};
use crate::broker::{JobState, NewMessage, Serving};
use crate::error::{Code, Error};
use crate::names::ClientId;
use crate::store::JobMeta;

/// What a reply says when the broker failed: beanstalkd's words for it.
pub(super) fn failed(err: &Error) -> Vec<u8> {
    tracing::warn!(code = %err.code(), "beanstalk: {}", err.message());
    match err.code() {
        Code::StorageFull => b"OUT_OF_MEMORY\r\n".to_vec(),
        Code::ShuttingDown => b"DRAINING\r\n".to_vec(),
        Code::PayloadTooLarge => b"JOB_TOO_BIG\r\n".to_vec(),
        _ => b"INTERNAL_ERROR\r\n".to_vec(),
    }
}

pub(super) const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";

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
        // As beanstalkd: counted, its connection a producer, then refused (its body was read).
        if self.shared.is_draining() {
            return b"DRAINING\r\n".to_vec();
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
            delay_ms: (delay > 0).then(|| u64::from(delay) * 1000),
        });
        message.text = Some(encoded.text);
        let bodies = &self.shared.bodies;
        let published = match self.shared.broker.publish(vec![message]) {
            Ok(pending) => {
                // Kept before the commit: a worker waiting in reserve may get it meanwhile.
                let pending = pending.map(|published| {
                    if let Some(job) = published.first() {
                        bodies.keep(job.seq, body);
                    }
                    published
                });
                pending.committed().await
            }
            Err(err) => Err(err),
        };
        match published.map(|mut p| p.pop()) {
            Ok(Some(published)) => format!("INSERTED {}\r\n", published.seq).into_bytes(),
            Ok(None) => b"INTERNAL_ERROR\r\n".to_vec(),
            Err(err) => failed(&err),
        }
    }

    /// Makes sure the tube's client is subscribed and serves jobs (committed). `false` if
    /// a socket.io client of the tube's name is subscribed to its queue in broadcast mode:
    /// then the tube offers no jobs (DECISIONS 65), which is logged once per connection.
    pub(super) async fn serve_jobs(
        &mut self,
        client: &ClientId,
        tube: &Tube,
    ) -> Result<bool, Error> {
        match self.shared.broker.serve_jobs(client, &tube::queue(tube))? {
            Serving::Now => Ok(true),
            Serving::Once(pending) => pending.committed().await.map(|()| true),
            Serving::Taken => {
                if self.taken.insert(tube.clone()) {
                    tracing::warn!(
                        tube = %tube,
                        "beanstalk: client '{client}' is subscribed to this tube's queue in \
                         broadcast mode (over socket.io), so the tube offers no jobs \
                         (docs/DECISIONS.md 64)"
                    );
                }
                Ok(false)
            }
        }
    }

    /// The tube of job `id`, if it is a stored message of a queue that is a tube.
    pub(super) fn tube_of(&self, id: u64) -> Option<Tube> {
        tube::of_queue(&self.shared.broker.job_meta(id)?.queue)
    }

    /// `delete <id>`: a job this connection reserved, or one that is ready, delayed or
    /// buried. Answered once applied and noted where a kill -9 cannot lose it; the commit
    /// follows (DECISIONS 64).
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
                self.shared.bodies.take(id);
                self.shared.counts.forget(id);
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
                self.shared.counts.count(id, |c| &mut c.releases);
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
                self.shared.counts.count(id, |c| &mut c.buries);
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
            Ok(kicked) => {
                for &id in &kicked {
                    self.shared.counts.count(id, |c| &mut c.kicks);
                }
                format!("KICKED {}\r\n", kicked.len()).into_bytes()
            }
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
            Ok(true) => {
                self.shared.counts.count(id, |c| &mut c.kicks);
                b"KICKED\r\n".to_vec()
            }
            Ok(false) => NOT_FOUND.to_vec(),
            Err(err) => failed(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_failures_are_answered_in_beanstalkd_words() {
        assert_eq!(failed(&Error::shutting_down()), b"DRAINING\r\n");
        assert_eq!(failed(&Error::storage_full("disk")), b"OUT_OF_MEMORY\r\n");
        assert_eq!(failed(&Error::unavailable("gone")), b"INTERNAL_ERROR\r\n");
    }
}
