//! The broker's one timer: it sleeps until the earliest deadline in the index (a delayed
//! message becoming due, or a TTL running out), handles everything due, and sleeps again.
//! A publish with a delay or TTL wakes it early in case its deadline is sooner. No polling.

use std::time::Duration;

use super::index::deliveries;
use super::message::now_ms;
use super::{ActivityKind, Broker};
use crate::error::Error;

/// Delayed messages made deliverable per commit.
const DUE_PER_COMMIT: usize = 256;

/// How long to wait before trying again after the store failed.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until the broker closes.
pub(super) async fn run(broker: Broker) {
    let closed = broker.closed();
    tokio::pin!(closed);
    loop {
        let next = broker.shared.lock().index.next_deadline();
        let wait = match next {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms())),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = &mut closed => return,
            _ = broker.shared.timer.notified() => continue,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(err) = tick(&broker).await {
            tracing::warn!(code = %err.code(), "timer: {}; retrying", err.message());
            tokio::select! {
                _ = &mut closed => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// Expires what ran out and delivers what is due, as of now.
async fn tick(broker: &Broker) -> Result<(), Error> {
    let now = now_ms();
    let mut lapsed = Vec::new();
    broker
        .mutate(|index, effects| {
            effects
                .dispatch
                .extend(index.expire_inflight(now, &mut lapsed));
            let (messages, queues) = index.expire_due(now, &mut effects.ops);
            if messages > 0 {
                effects.note(ActivityKind::Expired { messages, queues });
            }
            Ok(())
        })?
        .committed()
        .await?;
    if let Some(outbox) = broker.shared.outbox.get() {
        for (worker, seq) in &lapsed {
            outbox.lease_lapsed(worker, *seq);
        }
    }
    loop {
        let (due, in_hand) = {
            let mut core = broker.shared.lock();
            let due = core.index.due(now, DUE_PER_COMMIT);
            let in_hand = core.index.kept_payloads(due.iter().map(|m| m.seq));
            (due, in_hand)
        };
        if due.is_empty() {
            return Ok(());
        }
        let payloads = broker
            .payloads_in_hand(due.iter().map(|m| m.seq).zip(in_hand))
            .await?;
        let online = broker.online();
        let count = due.len();
        broker
            .mutate(|index, effects| {
                for (meta, payload) in due.iter().zip(payloads) {
                    let Some((recipients, workers)) = index.wake(meta, &online, &mut effects.ops)
                    else {
                        continue;
                    };
                    effects.dispatch.extend(
                        workers
                            .iter()
                            .map(|client| (client.clone(), meta.queue.clone())),
                    );
                    if let Some(payload) = payload {
                        effects
                            .deliveries
                            .extend(deliveries(meta, &recipients, payload));
                    }
                    effects.note(ActivityKind::Due {
                        queue: meta.queue.clone(),
                        id: meta.id.clone(),
                        recipients: recipients.len() + workers.len(),
                    });
                }
                Ok(())
            })?
            .committed()
            .await?;
        if count < DUE_PER_COMMIT {
            return Ok(());
        }
    }
}
