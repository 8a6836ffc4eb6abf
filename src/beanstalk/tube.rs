//! Tubes are queues: tube `bg_starmap` is queue `bg_starmap`, and the workers that reserve
//! from it are work-mode workers of the client `bg_starmap` (DECISIONS 58).
//!
//! Every tube name is a valid queue name except for `/`, which queue names (and client ids)
//! cannot hold: a tube's `/` is the queue's `∕` (U+2215 DIVISION SLASH), which no tube name
//! can contain, so the mapping goes both ways without narrowing what a tube may be called.
//! A queue whose name is no tube name (it has a space, say) is not reachable as a tube.

use super::protocol::Tube;
use crate::names::{ClientId, QueueName};

/// What a tube's `/` is in its queue's name.
pub const SLASH: char = '\u{2215}';

/// The queue of `tube`.
pub fn queue(tube: &Tube) -> QueueName {
    QueueName::parse_tube_name(tube.as_str().replace('/', &SLASH.to_string()))
        .expect("a tube name with its '/' replaced is a valid queue name")
}

/// The client whose work-mode workers reserve from `tube`.
pub fn client(tube: &Tube) -> ClientId {
    ClientId::parse_tube_name(queue(tube).as_str())
        .expect("a tube's queue name is a valid client id")
}

/// The tube of `queue`, if its name is a tube name.
pub fn of_queue(queue: &QueueName) -> Option<Tube> {
    Tube::parse(queue.as_str().replace(SLASH, "/").as_bytes())
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
