//! Catch-up and peek: reading a client's inbox in publish order, a page at a time, with
//! payloads read from the store outside the index lock.

use std::sync::Arc;

use super::Broker;
use super::index::{self, InboxFilter};
use super::message::{self, Envelope};
use crate::error::{Code, Error};
use crate::names::{ClientId, EventName, QueueName};

/// A catch-up in progress: pages through a client's inbox in publish order, up to the last
/// message that existed when it started.
pub struct CatchUp {
    filter: InboxFilter,
    after: u64,
    upto: u64,
    remaining: usize,
    /// How many messages the next page reads (see [`PAGE_BYTES`]).
    page: usize,
}

/// How many messages the first page of a catch-up holds: few, so that the first messages
/// go out soon and a page of the largest payloads holds 64 MiB at most.
pub const CATCH_UP_PAGE: usize = 64;

/// About how many bytes of payload one page holds after the first: each page is sized from
/// the one before (between [`CATCH_UP_PAGE`] / 4 and [`MAX_PAGE`] messages). Each page's read
/// passes to a thread of the blocking pool and back, and on two busy cores each hand-off
/// waits for a core (0.2 to 0.5 ms a page, longer than reading 256 payloads); pages of small
/// messages are therefore large, and those of large messages small.
const PAGE_BYTES: usize = 1024 * 1024;

/// Most messages one page holds.
const MAX_PAGE: usize = 1024;

impl CatchUp {
    /// Sizes the next page after one of `messages` messages holding `bytes` of payload.
    fn size_next(&mut self, messages: usize, bytes: usize) {
        let per_message = (bytes / messages.max(1)).max(1);
        self.page = (PAGE_BYTES / per_message).clamp(CATCH_UP_PAGE / 4, MAX_PAGE);
    }
}

impl Broker {
    /// Starts a catch-up of `client`'s inbox (one queue or all, one event or all), at most
    /// `limit` messages. Fails with `not_subscribed` if there is nothing to catch up from.
    pub fn catch_up(
        &self,
        client: ClientId,
        queue: Option<QueueName>,
        event: Option<EventName>,
        limit: Option<usize>,
    ) -> Result<CatchUp, Error> {
        let core = self.shared.lock();
        core.index.subscribed_queues(&client, queue.as_ref())?;
        if let Some(queue) = &queue
            && core.index.is_work(&client, queue)
        {
            return Err(Error::invalid_field(format!(
                "'{client}' takes '{queue}' in work mode: its messages go to one worker each, so getAll does not re-send them (peek over HTTP to look)"
            ))
            .with_code(Code::WorkMode));
        }
        Ok(CatchUp {
            filter: InboxFilter {
                client,
                queue,
                event,
                skip_dispatched: true,
                woken_by: Some(core.index.wakes()),
            },
            after: 0,
            upto: core.index.last_seq(),
            remaining: limit.unwrap_or(usize::MAX),
            page: CATCH_UP_PAGE,
        })
    }

    /// Resumes the live push of `client`'s inbox on `queue` to a socket that could not take
    /// it: the messages with `after < seq <= upto`, in publish order (work-mode and ordered
    /// subscriptions are left out: the dispatcher sends those). `upto` should not pass
    /// [`Broker::fanned_out`]. Fails with `not_subscribed` if the subscription is gone.
    pub fn resume(
        &self,
        client: ClientId,
        queue: QueueName,
        (after, upto): (u64, u64),
    ) -> Result<CatchUp, Error> {
        self.shared
            .lock()
            .index
            .subscribed_queues(&client, Some(&queue))?;
        Ok(CatchUp {
            filter: InboxFilter {
                client,
                queue: Some(queue),
                event: None,
                skip_dispatched: true,
                woken_by: None,
            },
            after,
            upto,
            remaining: usize::MAX,
            page: CATCH_UP_PAGE,
        })
    }

    /// The next page of a catch-up, in publish order; empty when it is complete. Each
    /// envelope's `attempt` counts this send.
    pub async fn next_page(&self, catch_up: &mut CatchUp) -> Result<Vec<Envelope>, Error> {
        while catch_up.remaining > 0 {
            let max = catch_up.page.min(catch_up.remaining);
            let (entries, in_hand) = {
                let mut core = self.shared.lock();
                let entries = core.index.inbox_page(
                    &catch_up.filter,
                    (catch_up.after, catch_up.upto),
                    max,
                    message::now_ms(),
                    true,
                )?;
                let in_hand = core.index.kept_payloads(entries.iter().map(|(m, _)| m.seq));
                (entries, in_hand)
            };
            let Some((last, _)) = entries.last() else {
                return Ok(Vec::new());
            };
            catch_up.after = last.seq;
            let page = self
                .read_envelopes(&catch_up.filter.client, entries, in_hand)
                .await?;
            catch_up.remaining -= page.len();
            if !page.is_empty() {
                let bytes = page.iter().map(|e| e.payload.text().len()).sum();
                catch_up.size_next(page.len(), bytes);
                return Ok(page);
            }
            // Every message of this page was acked meanwhile: read on.
        }
        Ok(Vec::new())
    }

    /// The oldest `limit` messages of `client`'s inbox in `queue`, without acking or counting
    /// a delivery.
    pub async fn peek(
        &self,
        queue: &QueueName,
        client: &ClientId,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let filter = InboxFilter {
            client: client.clone(),
            queue: Some(queue.clone()),
            event: None,
            skip_dispatched: false,
            woken_by: None,
        };
        let (entries, in_hand) = {
            let mut core = self.shared.lock();
            let upto = core.index.last_seq();
            let entries =
                core.index
                    .inbox_page(&filter, (0, upto), limit, message::now_ms(), false)?;
            let in_hand = core.index.kept_payloads(entries.iter().map(|(m, _)| m.seq));
            (entries, in_hand)
        };
        self.read_envelopes(client, entries, in_hand).await
    }

    /// The envelopes of `entries`, with the payloads `in_hand` (one per entry; `None`: read
    /// it from the store), leaving out messages no longer stored.
    async fn read_envelopes(
        &self,
        client: &ClientId,
        entries: Vec<(Arc<crate::store::MessageMeta>, u32)>,
        in_hand: Vec<Option<message::SharedPayload>>,
    ) -> Result<Vec<Envelope>, Error> {
        // A message the index shows may still be in a commit under way (a subscriber that
        // just took a waiting message, say): send it (or read it) once it is settled, so that
        // nothing goes out before it is durable, and nothing reads as gone that is not.
        if let Some(last) = entries.iter().map(|(meta, _)| meta.seq).max() {
            self.settled(last).await;
        }
        let payloads = self
            .payloads_in_hand(entries.iter().map(|(meta, _)| meta.seq).zip(in_hand))
            .await?;
        Ok(index::envelopes(client, entries, payloads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catch_up() -> CatchUp {
        CatchUp {
            filter: InboxFilter {
                client: ClientId::parse("c").unwrap(),
                queue: None,
                event: None,
                skip_dispatched: true,
                woken_by: None,
            },
            after: 0,
            upto: 0,
            remaining: usize::MAX,
            page: CATCH_UP_PAGE,
        }
    }

    #[test]
    fn pages_after_the_first_hold_about_a_mebibyte_of_payload_within_bounds() {
        let mut pages = catch_up();
        pages.size_next(256, 256 * 2048);
        assert_eq!(pages.page, 512, "2 KiB messages: 512 a page");
        pages.size_next(256, 256 * 100);
        assert_eq!(
            pages.page, MAX_PAGE,
            "small messages: the most a page holds"
        );
        pages.size_next(10, 10 * 1024 * 1024);
        assert_eq!(pages.page, CATCH_UP_PAGE / 4, "large messages: the fewest");
        pages.size_next(3, 0);
        assert_eq!(pages.page, MAX_PAGE, "empty payloads count as one byte");
    }
}
