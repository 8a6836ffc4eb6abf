//! [`Bodies`]: the bodies of jobs put through this door and not reserved yet, kept in memory
//! (at most [`MAX_BYTES`]) so that the `reserve` that takes one answers without reading it
//! back from the store. Only a cache: the store holds every body, and a job not found here
//! (published over HTTP, released and reserved again, put before a restart, or put while the
//! cache was full) is read from the store. An entry leaves when its job is reserved or
//! deleted through the door; a job acked otherwise (over HTTP, say) leaves its entry until
//! the process ends, within the bound.

use std::sync::Mutex;

use crate::hash::FastMap;

/// At most this many bytes of bodies are kept; a put while they are is not cached.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// See the module docs.
#[derive(Default)]
pub struct Bodies {
    // std Mutex: map updates only, never across an await.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bodies: FastMap<u64, Vec<u8>>,
    bytes: usize,
}

impl Bodies {
    /// Keeps the body of job `id`, if there is room.
    pub fn keep(&self, id: u64, body: &[u8]) {
        let mut inner = self.lock();
        if inner.bytes + body.len() > MAX_BYTES {
            return;
        }
        inner.bytes += body.len();
        if let Some(old) = inner.bodies.insert(id, body.to_vec()) {
            inner.bytes -= old.len();
        }
    }

    /// The body of job `id`, which leaves the cache; `None` if it is not kept.
    pub fn take(&self, id: u64) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let body = inner.bodies.remove(&id)?;
        inner.bytes -= body.len();
        Some(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_taken_once_and_nothing_is_kept_past_the_bound() {
        let bodies = Bodies::default();
        bodies.keep(1, b"one");
        assert_eq!(bodies.take(1).as_deref(), Some(&b"one"[..]));
        assert_eq!(bodies.take(1), None);
        let big = vec![0; MAX_BYTES - 2];
        bodies.keep(2, &big);
        bodies.keep(3, b"too much");
        assert_eq!(bodies.take(3), None, "over the bound: not kept");
        bodies.keep(4, b"ok");
        assert_eq!(bodies.take(2).map(|b| b.len()), Some(MAX_BYTES - 2));
        assert_eq!(bodies.take(4).as_deref(), Some(&b"ok"[..]));
    }
}
