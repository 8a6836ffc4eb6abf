//! Tubes are queues: tube `bg_starmap` is queue `bg_starmap`, and the workers that reserve
//! from it are work-mode workers of the client `bg_starmap` (DECISIONS 58).
//!
//! Every tube name is a valid queue name except for `/`, which queue names (and client ids)
//! cannot hold: a tube's `/` is the queue's `∕` (U+2215 DIVISION SLASH), which no tube name
//! can contain, so the mapping goes both ways without narrowing what a tube may be called.
//! A queue whose name is no tube name (it has a space, say) is not reachable as a tube.

use std::cell::RefCell;

use super::protocol::Tube;
use crate::hash::FastMap;
use crate::names::{ClientId, QueueName};

/// What a tube's `/` is in its queue's name.
pub const SLASH: char = '\u{2215}';

/// Tubes whose names each thread keeps mapped at most; past it the cache starts over (a client
/// may name any number of tubes, a worker names a few, over and over).
const CACHED: usize = 256;

thread_local! {
    /// Tube → its queue and client, and queue → its tube: every command maps its tube, most
    /// more than once, and building the names anew (a copy, then the name rules) was a quarter
    /// of a job's instructions through the door.
    static NAMES: RefCell<FastMap<Tube, (QueueName, ClientId)>> = RefCell::default();
    static TUBES: RefCell<FastMap<QueueName, Option<Tube>>> = RefCell::default();
}

/// The queue and client of `tube`, from the cache or built (and cached).
fn names(tube: &Tube) -> (QueueName, ClientId) {
    NAMES.with(|cache| {
        if let Some(names) = cache.borrow().get(tube) {
            return names.clone();
        }
        let queue = QueueName::parse_tube_name(tube.as_str().replace('/', &SLASH.to_string()))
            .expect("a tube name with its '/' replaced is a valid queue name");
        let client = ClientId::parse_tube_name(queue.as_str())
            .expect("a tube's queue name is a valid client id");
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(tube.clone(), (queue.clone(), client.clone()));
        (queue, client)
    })
}

/// The queue of `tube`.
pub fn queue(tube: &Tube) -> QueueName {
    names(tube).0
}

/// The client whose work-mode workers reserve from `tube`.
pub fn client(tube: &Tube) -> ClientId {
    names(tube).1
}

/// The tube of `queue`, if its name is a tube name.
pub fn of_queue(queue: &QueueName) -> Option<Tube> {
    TUBES.with(|cache| {
        if let Some(tube) = cache.borrow().get(queue) {
            return tube.clone();
        }
        let tube = Tube::parse(queue.as_str().replace(SLASH, "/").as_bytes());
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(queue.clone(), tube.clone());
        tube
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beanstalk::protocol::MAX_TUBE;

    #[test]
    fn every_tube_is_a_queue_and_back() {
        let names = [
            "default".to_owned(),
            "bg/starmap;v2+(x)$_.-".to_owned(),
            "/".to_owned(),
            "a".repeat(MAX_TUBE),
            "/".repeat(MAX_TUBE),
        ];
        for name in names {
            let tube = Tube::parse(name.as_bytes()).unwrap();
            let queue = queue(&tube);
            assert!(!queue.as_str().contains('/'));
            assert_eq!(client(&tube).as_str(), queue.as_str());
            assert_eq!(of_queue(&queue), Some(tube.clone()), "{name}");
            // Again, from the caches.
            assert_eq!(super::queue(&tube), queue);
            assert_eq!(client(&tube).as_str(), queue.as_str());
            assert_eq!(of_queue(&queue), Some(tube), "{name}");
        }
    }

    #[test]
    fn a_queue_with_other_characters_is_no_tube() {
        for name in ["two words", "caf\u{e9}", "-dash", "a*b"] {
            assert_eq!(of_queue(&QueueName::parse(name).unwrap()), None, "{name}");
        }
    }
}
