//! Time in the index: delayed messages wait in a schedule until they are due, and messages
//! with a TTL leave every inbox when it runs out. One timer in the broker sleeps until
//! [`Index::next_deadline`]; nothing polls.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::names::{ClientId, QueueName};
use crate::store::{MessageMeta, Op};

use super::Index;

impl Index {
    /// Holds a delayed message until `due`; the schedule counts as one reference.
    pub(super) fn schedule(&mut self, meta: &MessageMeta, due: u64) {
        self.scheduled.insert((due, meta.seq));
        if let Some(entry) = self.messages.get_mut(&meta.seq) {
            entry.refs += 1;
        }
        self.queues.entry(meta.queue.clone()).or_default().scheduled += 1;
    }

    /// After loading: a delayed message that no inbox or waiting list holds is still
    /// scheduled (if its time has passed, the timer delivers it at once); every TTL is indexed.
    pub(super) fn rebuild_timers(&mut self) {
        let metas: Vec<(Arc<MessageMeta>, u32)> = self
            .messages
            .values()
            .map(|e| (Arc::clone(&e.meta), e.refs))
            .collect();
        for (meta, refs) in metas {
            if let Some(expires_at) = meta.expires_at_ms {
                self.expiring.insert((expires_at, meta.seq));
            }
            if let (Some(due), 0) = (meta.deliver_at_ms, refs) {
                self.schedule(&meta, due);
            }
        }
    }

    /// The earliest time something is due: a delayed message, an expiry, or a work-mode
    /// ack deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        [
            self.scheduled.first().map(|(at, _)| *at),
            self.expiring.first().map(|(at, _)| *at),
            self.ack_deadlines.first().map(|(at, ..)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The delayed messages due at `now`, oldest first, at most `max`. (A schedule entry
    /// whose message is gone is dropped, so that the timer never waits on it again.)
    pub(crate) fn due(&mut self, now: u64, max: usize) -> Vec<Arc<MessageMeta>> {
        let entries: Vec<(u64, u64)> = self
            .scheduled
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(max)
            .copied()
            .collect();
        let mut due = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.messages.get(&entry.1) {
                Some(e) => due.push(Arc::clone(&e.meta)),
                None => {
                    self.scheduled.remove(&entry);
                }
            }
        }
        due
    }

    /// Makes a scheduled message deliverable: routes it to its queue's inboxes (or waiting
    /// list). Returns its recipients in broadcast and in work mode, or `None` if it is no
    /// longer scheduled.
    pub(crate) fn wake(
        &mut self,
        meta: &Arc<MessageMeta>,
        online: &dyn Fn(&ClientId, &QueueName) -> bool,
        ops: &mut Vec<Op>,
    ) -> Option<(Vec<ClientId>, Vec<ClientId>)> {
        let due = meta.deliver_at_ms?;
        if !self.scheduled.remove(&(due, meta.seq)) {
            return None;
        }
        if let Some(queue) = self.queues.get_mut(&meta.queue) {
            queue.scheduled = queue.scheduled.saturating_sub(1);
        }
        let recipients = self.route(meta, online, ops);
        // The schedule's reference is handed over to the inboxes (route added theirs).
        self.wakes += 1;
        if let Some(entry) = self.messages.get_mut(&meta.seq) {
            entry.refs = entry.refs.saturating_sub(1);
            entry.woke = self.wakes;
        }
        Some(recipients)
    }

    /// How many delayed messages have entered their inboxes so far (see
    /// [`InboxFilter::woken_by`](super::InboxFilter)).
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes
    }

    /// Removes every message whose TTL ran out by `now` from every inbox, waiting list and
    /// schedule; counts each inbox entry (or waiting message) as expired. Returns how many
    /// messages expired, and their queues.
    pub(crate) fn expire_due(&mut self, now: u64, ops: &mut Vec<Op>) -> (usize, Vec<QueueName>) {
        let mut expired = 0;
        let mut queues = BTreeSet::new();
        while let Some(&(at, seq)) = self.expiring.first() {
            if at > now {
                break;
            }
            self.expiring.remove(&(at, seq));
            let Some(meta) = self.messages.get(&seq).map(|e| Arc::clone(&e.meta)) else {
                continue; // acked or dropped before it expired
            };
            let mut holders = 0;
            if let Some(due) = meta.deliver_at_ms
                && self.scheduled.remove(&(due, seq))
            {
                holders += 1;
            }
            let queue_name = meta.queue.clone();
            let Some(queue) = self.queues.get_mut(&queue_name) else {
                continue;
            };
            if holders > 0 {
                queue.scheduled = queue.scheduled.saturating_sub(1);
            }
            for (client, subscriber) in &mut queue.subscribers {
                if subscriber.inbox.remove(&seq).is_some() {
                    if let Some(workers) = subscriber.workers.as_mut() {
                        workers.left_inbox(seq);
                    }
                    holders += 1;
                    queue.counters.expired += 1;
                    ops.push(Op::RemoveFromInbox {
                        client: client.clone(),
                        queue: queue_name.clone(),
                        seq,
                    });
                }
            }
            if queue.waiting.remove(&seq) {
                holders += 1;
                queue.counters.expired += 1;
                ops.push(Op::RemoveWaiting {
                    queue: queue_name.clone(),
                    seq,
                });
            }
            ops.push(Op::PutCounters {
                queue: queue_name.clone(),
                counters: queue.counters,
            });
            for _ in 0..holders {
                self.drop_ref(seq, ops);
            }
            expired += 1;
            queues.insert(queue_name);
        }
        (expired, queues.into_iter().collect())
    }
}

/// Whether `meta`'s TTL has run out at `now`.
pub(crate) fn expired(meta: &MessageMeta, now: u64) -> bool {
    meta.expires_at_ms.is_some_and(|at| at <= now)
}
