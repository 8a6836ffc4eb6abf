//! Payloads kept in memory until their message is deleted, so that sending a message again
//! (a work-mode assignment, the pool, a catch-up page, a live push resumed after a full
//! buffer, a delayed message coming due) needs no read of the store.
//!
//! Two bounds of JSON text, one per kind of message, so that a backlog of broadcast
//! messages waiting for subscribers who are away cannot crowd out the work-mode jobs that
//! workers take next. A payload that would pass its bound is not kept: it is read from the
//! store when it is needed, as every payload was before.

use super::Index;
use crate::broker::message::SharedPayload;
use crate::hash::FastMap;

/// Payload text kept for messages with work-mode recipients: 4 MiB holds about 20 000 jobs of
/// 200 B waiting.
pub(super) const KEPT_WORK_BYTES: usize = 4 * 1024 * 1024;

/// Payload text kept for other messages (those waiting in broadcast inboxes): 8 MiB holds
/// a catch-up of 40 000 messages of 200 B.
pub(super) const KEPT_OTHER_BYTES: usize = 8 * 1024 * 1024;

/// Which bound a kept payload counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message with at least one work-mode recipient.
    Work,
    /// Any other message.
    Other,
}

impl Kind {
    fn bound(self) -> usize {
        match self {
            Kind::Work => KEPT_WORK_BYTES,
            Kind::Other => KEPT_OTHER_BYTES,
        }
    }
}

#[derive(Default)]
pub(super) struct KeptPayloads {
    /// seq → (payload, its size as text, the bound it counts against).
    by_seq: FastMap<u64, (SharedPayload, usize, Kind)>,
    work_bytes: usize,
    other_bytes: usize,
}

impl KeptPayloads {
    pub(super) fn get(&self, seq: u64) -> Option<SharedPayload> {
        self.by_seq.get(&seq).map(|(payload, _, _)| payload.clone())
    }

    fn bytes_mut(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Work => &mut self.work_bytes,
            Kind::Other => &mut self.other_bytes,
        }
    }

    /// How many bytes of text are kept against `kind`'s bound.
    pub(super) fn bytes(&self, kind: Kind) -> usize {
        match kind {
            Kind::Work => self.work_bytes,
            Kind::Other => self.other_bytes,
        }
    }

    /// Keeps `payload` (`size` bytes of text) unless that would pass `kind`'s bound or it is
    /// kept already.
    pub(super) fn keep(&mut self, seq: u64, payload: SharedPayload, size: usize, kind: Kind) {
        if self.bytes(kind) + size > kind.bound() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_seq.entry(seq) {
            slot.insert((payload, size, kind));
            *self.bytes_mut(kind) += size;
        }
    }

    /// The message is deleted: its payload goes too.
    pub(super) fn forget(&mut self, seq: u64) {
        if let Some((_, size, kind)) = self.by_seq.remove(&seq) {
            *self.bytes_mut(kind) -= size;
        }
    }
}

impl Index {
    /// Keeps the payload of message `seq` in memory (within `kind`'s bound) until the message
    /// is deleted; `size` is its length as JSON text.
    pub(crate) fn keep_payload(
        &mut self,
        seq: u64,
        payload: &SharedPayload,
        size: usize,
        kind: Kind,
    ) {
        if self.messages.contains_key(&seq) {
            self.kept.keep(seq, payload.clone(), size, kind);
        }
    }

    /// The payloads kept in memory for `seqs`, in order (`None`: not kept, read it from the
    /// store).
    pub(crate) fn kept_payloads(
        &self,
        seqs: impl IntoIterator<Item = u64>,
    ) -> Vec<Option<SharedPayload>> {
        seqs.into_iter().map(|seq| self.kept.get(seq)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(n: u64) -> SharedPayload {
        SharedPayload::of(&json!({ "n": n }))
    }

    #[test]
    fn each_kind_is_kept_within_its_own_bound_and_freed_when_forgotten() {
        let mut kept = KeptPayloads::default();
        kept.keep(1, payload(1), KEPT_OTHER_BYTES, Kind::Other);
        kept.keep(2, payload(2), 1, Kind::Other);
        assert_eq!(kept.get(2), None, "past the bound of other messages");
        kept.keep(3, payload(3), 10, Kind::Work);
        assert_eq!(
            kept.get(3),
            Some(payload(3)),
            "a full bound of the other kind is no matter"
        );
        kept.keep(3, payload(4), 10, Kind::Work);
        assert_eq!(kept.get(3), Some(payload(3)), "kept once");
        assert_eq!(kept.bytes(Kind::Work), 10);
        kept.forget(1);
        assert_eq!(kept.bytes(Kind::Other), 0);
        kept.keep(2, payload(2), 1, Kind::Other);
        assert_eq!(kept.get(2), Some(payload(2)), "room again once forgotten");
        kept.forget(3);
        kept.forget(3);
        assert_eq!((kept.bytes(Kind::Work), kept.get(3)), (0, None));
    }
}
