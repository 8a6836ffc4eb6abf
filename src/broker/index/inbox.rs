//! Reading the index: which queues a client has, pages of an inbox for catch-up and peek,
//! messages waiting for a first subscriber, and envelopes built from stored payloads.

use std::sync::Arc;

use super::super::message::{Envelope, SharedPayload};
use super::{InboxFilter, Index, expired};
use crate::error::Error;
use crate::names::{ClientId, QueueName};
use crate::store::{MessageMeta, Op};

impl Index {
    /// The queues `client` is subscribed to (just `queue` if given), or `not_subscribed`.
    pub(crate) fn subscribed_queues(
        &self,
        client: &ClientId,
        queue: Option<&QueueName>,
    ) -> Result<Vec<QueueName>, Error> {
        let queues = self
            .clients
            .get(client)
            .ok_or_else(|| Error::not_subscribed(client, None))?;
        match queue {
            Some(queue) if queues.contains(queue) => Ok(vec![queue.clone()]),
            Some(queue) => Err(Error::not_subscribed(client, Some(queue))),
            None => Ok(queues.iter().cloned().collect()),
        }
    }

    /// The highest sequence number handed out so far.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Up to `max` inbox entries matching `filter` with `after < seq <= upto`, in publish
    /// order, leaving out messages whose TTL has run out at `now` (the timer removes them
    /// soon). With `count_delivery`, each returned entry's attempt counter goes up by one
    /// (catch-up sends it); otherwise it is a peek.
    pub(crate) fn inbox_page(
        &mut self,
        filter: &InboxFilter,
        (after, upto): (u64, u64),
        max: usize,
        now: u64,
        count_delivery: bool,
    ) -> Result<Vec<(Arc<MessageMeta>, u32)>, Error> {
        let queues = self.subscribed_queues(&filter.client, filter.queue.as_ref())?;
        if after >= upto {
            return Ok(Vec::new());
        }
        let mut page: Vec<(u64, QueueName)> = Vec::new();
        for queue_name in &queues {
            let Some(subscriber) = self
                .queues
                .get(queue_name)
                .and_then(|q| q.subscribers.get(&filter.client))
            else {
                continue;
            };
            if filter.skip_dispatched && subscriber.is_dispatched() {
                continue;
            }
            let mut taken = 0;
            for (&seq, _) in subscriber.inbox.range(after + 1..=upto) {
                if taken == max {
                    break;
                }
                let matches = self.messages.get(&seq).is_some_and(|e| {
                    !expired(&e.meta, now)
                        && filter.woken_by.is_none_or(|wakes| e.woke <= wakes)
                        && filter
                            .event
                            .as_ref()
                            .is_none_or(|event| &e.meta.event == event)
                });
                if matches {
                    page.push((seq, queue_name.clone()));
                    taken += 1;
                }
            }
        }
        page.sort_unstable_by_key(|(seq, _)| *seq);
        page.truncate(max);
        let mut out = Vec::with_capacity(page.len());
        for (seq, queue_name) in page {
            let Some(entry) = self.messages.get(&seq) else {
                continue;
            };
            let meta = Arc::clone(&entry.meta);
            let attempt = self
                .queues
                .get_mut(&queue_name)
                .and_then(|q| q.subscribers.get_mut(&filter.client))
                .and_then(|s| s.inbox.get_mut(&seq))
                .map(|attempts| {
                    if count_delivery {
                        *attempts += 1;
                    }
                    *attempts
                })
                .unwrap_or(0);
            out.push((meta, attempt));
        }
        Ok(out)
    }

    /// The oldest `limit` messages waiting in `queue` (no subscriber has taken them).
    pub(crate) fn waiting_page(&self, queue: &QueueName, limit: usize) -> Vec<Arc<MessageMeta>> {
        self.queues
            .get(queue)
            .map(|q| {
                q.waiting
                    .iter()
                    .take(limit)
                    .filter_map(|seq| self.messages.get(seq).map(|e| Arc::clone(&e.meta)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes message `seq` from `queue`'s waiting list, if it is still there.
    pub(crate) fn take_waiting(&mut self, queue: &QueueName, seq: u64, ops: &mut Vec<Op>) -> bool {
        let taken = self
            .queues
            .get_mut(queue)
            .is_some_and(|q| q.waiting.remove(&seq));
        if taken {
            ops.push(Op::RemoveWaiting {
                queue: queue.clone(),
                seq,
            });
            self.drop_ref(seq, ops);
        }
        taken
    }

    /// Number of stored messages (each counted once, however many inboxes hold it).
    pub(crate) fn stored_messages(&self) -> usize {
        self.messages.len()
    }
}

/// Builds the envelopes of a page of inbox entries once their payloads have been read.
pub(crate) fn envelopes(
    client: &ClientId,
    entries: Vec<(Arc<MessageMeta>, u32)>,
    payloads: Vec<Option<SharedPayload>>,
) -> Vec<Envelope> {
    entries
        .into_iter()
        .zip(payloads)
        .filter_map(|((meta, attempt), payload)| {
            // A payload that is gone was acked or dropped meanwhile: nothing to send.
            Some(Envelope::new(&meta, payload?, client, attempt))
        })
        .collect()
}
