//! Hash maps and sets for the hot paths, with foldhash in place of the standard library's
//! SipHash-1-3.
//!
//! Counted with callgrind (docs/BENCHMARKS.md, "Where a delivery's CPU goes"), SipHash took
//! about a tenth of a delivery's instructions: every delivery hashes a client's and a
//! queue's names several times (the inbox rows a commit writes, whether the subscriber is
//! online, its live socket) and every message its sequence number. foldhash does the same
//! work in a fraction of the instructions. Its `RandomState` is seeded per process, so the
//! names a client chooses cannot be precomputed to collide; it makes no cryptographic claim,
//! and these maps hold what the broker admitted already (bounded names, bounded inboxes).
//! Maps that are not on a per-message path keep the standard library's.

/// A `HashMap` with foldhash's per-process seeded hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash's per-process seeded hasher.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
