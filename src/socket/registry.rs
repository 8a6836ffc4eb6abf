//! Who receives live pushes: the [`Live`] push of every connected socket, by worker name,
//! and by the subscriptions (client, queue) whose messages it receives.
//!
//! This is the job socket.io rooms did, kept where the fan-out reads it with one map lookup
//! per delivery. Through rooms, every delivery built the room's name, walked the adapter's
//! maps, looked each socket up in its namespace, named it again and found its live push in
//! a second map, and the broker asked the adapter once more whether anyone was connected:
//! together about 4 000 of the 49 900 instructions a delivery cost (callgrind, `publish`
//! scenario; DECISIONS 69). Rooms still carry what socket.io itself broadcasts (a preset's relays, see
//! `rooms::queue_room`).
//!
//! A socket is registered (with [`LiveSockets::insert`]) before it joins any subscription,
//! and [`LiveSockets::remove`] takes it out of all of them when it disconnects.

use std::sync::{Arc, Mutex, MutexGuard};

use super::live::Live;
use crate::hash::{FastMap, FastSet};
use crate::names::{ClientId, QueueName};

/// A subscription whose live pushes a socket receives.
pub type Key = (ClientId, QueueName);

/// The registry; cheap to clone (one shared map).
#[derive(Clone, Default)]
pub struct LiveSockets(Arc<Mutex<Registry>>);

#[derive(Default)]
struct Registry {
    /// Every connected socket, by worker name, with the subscriptions it joined.
    sockets: FastMap<String, Joined>,
    /// The sockets of each subscription, in the order they joined.
    subscribers: FastMap<Key, Vec<Arc<Live>>>,
}

struct Joined {
    live: Arc<Live>,
    keys: FastSet<Key>,
}

impl LiveSockets {
    // std Mutex: map lookups and updates only, never across an await, and nothing else is
    // locked while it is held.
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connected socket's live push (under its worker name).
    pub fn insert(&self, live: Arc<Live>) {
        let joined = Joined {
            live,
            keys: FastSet::default(),
        };
        let mut registry = self.lock();
        let consumer = joined.live.consumer().to_owned();
        if let Some(old) = registry.sockets.insert(consumer, joined) {
            registry.forget(&old);
        }
    }

    /// Takes a socket out of the registry and out of every subscription it joined.
    pub fn remove(&self, consumer: &str) {
        let mut registry = self.lock();
        if let Some(gone) = registry.sockets.remove(consumer) {
            registry.forget(&gone);
        }
    }

    /// The live push of the socket with this worker name.
    pub fn get(&self, consumer: &str) -> Option<Arc<Live>> {
        self.lock()
            .sockets
            .get(consumer)
            .map(|j| Arc::clone(&j.live))
    }

    /// The socket `consumer` receives the live pushes of `keys` from now on (a socket not
    /// registered, already gone, joins nothing).
    pub fn join(&self, consumer: &str, keys: impl IntoIterator<Item = Key>) {
        let registry = &mut *self.lock();
        let Some(joined) = registry.sockets.get_mut(consumer) else {
            return;
        };
        for key in keys {
            if joined.keys.insert(key.clone()) {
                registry
                    .subscribers
                    .entry(key)
                    .or_default()
                    .push(Arc::clone(&joined.live));
            }
        }
    }

    /// The socket `consumer` no longer receives the live pushes of `keys`.
    pub fn leave(&self, consumer: &str, keys: &[Key]) {
        let registry = &mut *self.lock();
        let Some(joined) = registry.sockets.get_mut(consumer) else {
            return;
        };
        for key in keys {
            if joined.keys.remove(key) {
                remove_live(&mut registry.subscribers, key, &joined.live);
            }
        }
    }

    /// The subscription `key` ended: no socket receives its live pushes any more.
    pub fn end(&self, key: &Key) {
        let registry = &mut *self.lock();
        for live in registry.subscribers.remove(key).unwrap_or_default() {
            if let Some(joined) = registry.sockets.get_mut(live.consumer()) {
                joined.keys.remove(key);
            }
        }
    }

    /// Appends the sockets that receive `key`'s live pushes to `out`.
    pub fn subscribers(&self, key: &Key, out: &mut Vec<Arc<Live>>) {
        if let Some(lives) = self.lock().subscribers.get(key) {
            out.extend(lives.iter().cloned());
        }
    }

    /// How many sockets receive `key`'s live pushes.
    pub fn count(&self, key: &Key) -> usize {
        self.lock().subscribers.get(key).map_or(0, Vec::len)
    }
}

impl Registry {
    /// Removes a socket that left the registry from the subscriptions it joined.
    fn forget(&mut self, gone: &Joined) {
        for key in &gone.keys {
            remove_live(&mut self.subscribers, key, &gone.live);
        }
    }
}

fn remove_live(subscribers: &mut FastMap<Key, Vec<Arc<Live>>>, key: &Key, live: &Arc<Live>) {
    if let Some(lives) = subscribers.get_mut(key) {
        lives.retain(|other| !Arc::ptr_eq(other, live));
        if lives.is_empty() {
            subscribers.remove(key);
        }
    }
}
