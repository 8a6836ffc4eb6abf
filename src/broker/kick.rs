//! Kick (beanstalkd's word): moving dead letters from `<queue>.dead` back into `<queue>`.

use super::message::{self, NewMessage, SharedPayload};
use super::{ActivityKind, Broker};
use crate::error::Error;
use crate::names::QueueName;

impl Broker {
    /// Moves up to `limit` messages waiting in `<queue>.dead` back into `queue` (beanstalkd's
    /// kick): each is published to `queue` again as a new message (a new id; the same event,
    /// payload and source: DECISIONS 10). Returns how many moved.
    pub async fn kick(&self, queue: &QueueName, limit: usize) -> Result<usize, Error> {
        let dead = queue.dead_letter().ok_or_else(|| {
            Error::invalid_name(format!(
                "queue '{queue}' is too long to have a dead-letter queue"
            ))
        })?;
        let metas = self.shared.lock().index.waiting_page(&dead, limit);
        if metas.is_empty() {
            return Ok(0);
        }
        let seqs = metas.iter().map(|m| m.seq).collect();
        let payloads = self.payloads(seqs).await?;
        let now = message::now_ms();
        let online = self.online();
        self.mutate(|index, effects| {
            let mut moved = 0;
            for (meta, payload) in metas.iter().zip(payloads) {
                let Some(text) = payload else { continue };
                let Ok(value) = serde_json::from_str(&text) else {
                    continue;
                };
                if !index.take_waiting(&dead, meta.seq, &mut effects.ops) {
                    continue;
                }
                let message = NewMessage::new(
                    queue.clone(),
                    meta.event.clone(),
                    value,
                    meta.source.as_ref(),
                );
                let outcome = index.publish(&message, text, now, &online, &mut effects.ops);
                moved += 1;
                effects.published(&outcome, SharedPayload::of(&message.payload));
                effects.dispatch_later(&outcome);
            }
            if moved > 0 {
                effects.note(ActivityKind::Kicked {
                    queue: queue.clone(),
                    from: dead.clone(),
                    messages: moved,
                });
            }
            Ok(moved)
        })?
        .committed()
        .await
    }
}
