//! How the embedded engine stores inbox entries: one row per 1024 sequence numbers of an inbox
//! (a *chunk*), not one row per entry.
//!
//! A publish to S subscribers adds an entry to S inboxes and each ack removes one; with a row
//! per entry, the store's write work grows with subscribers × messages (a B-tree insert, then a
//! delete, for each delivery). Entries of one inbox are close together in `seq` (they were
//! published around the same time), so a commit of many publishes and acks touches one or two
//! chunks per inbox: the writes per commit grow with the inboxes it touches, not with the
//! messages in it. This is the same idea as JetStream's per-consumer ack floor and sparse set
//! of acks above it, bounded: a chunk never holds more than 1024 entries, so no write rewrites
//! a value that grows with the inbox.
//!
//! A chunk's value is one of two encodings, told apart by length:
//! - *sparse*: up to [`SPARSE_MAX`] offsets (`seq % 1024`), each a little-endian `u16`,
//!   in ascending order (an even length below [`DENSE_BYTES`]);
//! - *dense*: a bitmap of 1024 bits, [`DENSE_BYTES`] bytes, bit `i` of byte `i / 8` for offset
//!   `i`.
//!
//! An empty chunk is not stored.

/// Sequence numbers per chunk.
pub const CHUNK_SEQS: u64 = 1024;

/// Bytes of a dense chunk: one bit per sequence number.
const DENSE_BYTES: usize = (CHUNK_SEQS / 8) as usize;

/// Most entries stored sparsely: beyond this the bitmap is no larger.
const SPARSE_MAX: usize = DENSE_BYTES / 2 - 1;

/// The chunk holding `seq`, and `seq`'s offset in it.
pub fn locate(seq: u64) -> (u64, u16) {
    (seq / CHUNK_SEQS, (seq % CHUNK_SEQS) as u16)
}

/// The entries of one chunk, as a bitmap while they are being changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    bits: [u64; (CHUNK_SEQS / 64) as usize],
}

/// A stored value that is neither encoding: the file was damaged.
#[derive(Debug, thiserror::Error)]
#[error("corrupt inbox chunk of {0} bytes")]
pub struct Corrupt(usize);

impl Chunk {
    /// Reads a stored value.
    pub fn decode(value: &[u8]) -> Result<Self, Corrupt> {
        let mut chunk = Self::default();
        if value.len() == DENSE_BYTES {
            for (word, bytes) in chunk.bits.iter_mut().zip(value.chunks_exact(8)) {
                *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            }
        } else if value.len().is_multiple_of(2) && value.len() < DENSE_BYTES {
            for pair in value.chunks_exact(2) {
                let offset = u16::from_le_bytes([pair[0], pair[1]]);
                if u64::from(offset) >= CHUNK_SEQS {
                    return Err(Corrupt(value.len()));
                }
                chunk.insert(offset);
            }
        } else {
            return Err(Corrupt(value.len()));
        }
        Ok(chunk)
    }

    /// The value to store, `None` when the chunk is empty (its row is removed).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let count = self.len();
        if count == 0 {
            None
        } else if count <= SPARSE_MAX {
            Some(self.offsets().flat_map(u16::to_le_bytes).collect())
        } else {
            Some(
                self.bits
                    .iter()
                    .flat_map(|word| word.to_le_bytes())
                    .collect(),
            )
        }
    }

    pub fn insert(&mut self, offset: u16) {
        self.bits[usize::from(offset / 64)] |= 1 << (offset % 64);
    }

    pub fn remove(&mut self, offset: u16) {
        self.bits[usize::from(offset / 64)] &= !(1 << (offset % 64));
    }

    pub fn len(&self) -> usize {
        self.bits
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// The offsets held, ascending.
    pub fn offsets(&self) -> impl Iterator<Item = u16> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    (i * 64) as u16 + bit as u16
                })
            })
        })
    }

    /// The sequence numbers held by chunk number `chunk`, ascending.
    pub fn seqs(&self, chunk: u64) -> impl Iterator<Item = u64> + '_ {
        self.offsets()
            .map(move |offset| chunk * CHUNK_SEQS + u64::from(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(offsets: &[u16]) -> Chunk {
        let mut chunk = Chunk::default();
        for &offset in offsets {
            chunk.insert(offset);
        }
        let value = chunk.encode().expect("not empty");
        let back = Chunk::decode(&value).expect("decodes");
        assert_eq!(back, chunk);
        back
    }

    #[test]
    fn a_few_entries_are_stored_as_two_bytes_each_in_order() {
        let mut chunk = Chunk::default();
        for offset in [1023, 0, 64] {
            chunk.insert(offset);
        }
        assert_eq!(chunk.encode().unwrap(), vec![0, 0, 64, 0, 0xff, 0x03]);
        assert_eq!(chunk.seqs(2).collect::<Vec<_>>(), vec![2048, 2112, 3071]);
    }

    #[test]
    fn every_size_from_empty_to_full_round_trips_and_picks_the_smaller_encoding() {
        let mut offsets = Vec::new();
        for i in 0..CHUNK_SEQS as u16 {
            // A spread-out order, so that both encodings see gaps.
            offsets.push((i * 7) % CHUNK_SEQS as u16);
            let chunk = round_trip(&offsets);
            let size = chunk.encode().unwrap().len();
            assert_eq!(chunk.len(), offsets.len());
            let expected = if offsets.len() <= SPARSE_MAX {
                2 * offsets.len()
            } else {
                DENSE_BYTES
            };
            assert_eq!(size, expected, "{} entries", offsets.len());
        }
        let mut full = round_trip(&offsets);
        for &offset in &offsets {
            full.remove(offset);
        }
        assert_eq!(full.encode(), None, "an empty chunk is not stored");
    }

    #[test]
    fn values_of_neither_encoding_are_refused() {
        assert!(Chunk::decode(&[1]).is_err(), "odd length");
        assert!(Chunk::decode(&[0; DENSE_BYTES + 2]).is_err(), "too long");
        assert!(
            Chunk::decode(&1024u16.to_le_bytes()).is_err(),
            "offset out of range"
        );
    }

    #[test]
    fn locate_splits_a_seq_into_chunk_and_offset() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1023), (0, 1023));
        assert_eq!(locate(1024), (1, 0));
        assert_eq!(locate(u64::MAX), (u64::MAX / 1024, 1023));
    }
}
