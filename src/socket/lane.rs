//! [`Lane`]: one of a socket's queues (its events, its catch-ups, its answers), handled in
//! order by a task that runs only while the queue holds something.
//!
//! An idle socket should cost little: most sockets sit connected for hours between a few
//! events. A channel with a task waiting on it costs memory the whole time (the task's
//! future, the channel's first block of slots); a lane costs an empty `VecDeque` and a few
//! flags. Whoever adds the first item to an empty lane is told to start its task
//! ([`Pushed::Start`]); the task takes items with [`Lane::next`] and ends when the lane is
//! empty (or closed), so at most one task handles a lane at a time and items are handled in
//! the order they were added.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// Room for items kept when the lane empties; a larger buffer, left by a burst, is given back.
const KEPT_CAPACITY: usize = 64;

/// A bounded queue handled by one task at a time.
pub struct Lane<T> {
    // std Mutex: a push or a pop, never held across an await.
    state: Mutex<State<T>>,
    capacity: usize,
    /// Wakes those waiting for room ([`Lane::push_waiting`]).
    room: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    /// Whether a task handles the lane (or, for a paused lane, will once resumed).
    running: bool,
    closed: bool,
}

/// An item added to a lane.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The lane's task will take it.
    Queued,
    /// No task handles the lane: the caller must start one.
    Start,
}

/// An item the lane did not take.
#[derive(Debug)]
pub enum Refused<T> {
    /// The lane holds `capacity` items.
    Full(T),
    /// The socket is gone.
    Closed(T),
}

impl<T> Refused<T> {
    pub fn into_inner(self) -> T {
        match self {
            Refused::Full(item) | Refused::Closed(item) => item,
        }
    }
}

impl<T> Lane<T> {
    /// An empty lane that holds at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self::with_running(capacity, false)
    }

    /// A lane whose items wait until [`Lane::resume`], whoever adds them.
    pub fn paused(capacity: usize) -> Self {
        Self::with_running(capacity, true)
    }

    fn with_running(capacity: usize, running: bool) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                running,
                closed: false,
            }),
            capacity,
            room: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item` at the end, or refuses it at once if the lane is full or closed.
    pub fn push(&self, item: T) -> Result<Pushed, Refused<T>> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed(item));
        }
        if state.items.len() >= self.capacity {
            return Err(Refused::Full(item));
        }
        state.items.push_back(item);
        if state.running {
            Ok(Pushed::Queued)
        } else {
            state.running = true;
            Ok(Pushed::Start)
        }
    }

    /// Adds `item` at the end, waiting while the lane is full; refuses it if the lane closes.
    pub async fn push_waiting(&self, mut item: T) -> Result<Pushed, T> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push(item) {
                Ok(pushed) => return Ok(pushed),
                Err(Refused::Closed(refused)) => return Err(refused),
                Err(Refused::Full(refused)) => item = refused,
            }
            room.await;
        }
    }

    /// The next item, for the lane's task. `None`: the lane is empty (or closed) and the task
    /// must end; the next push starts another.
    pub fn next(&self) -> Option<T> {
        let mut state = self.lock();
        let item = if state.closed {
            None
        } else {
            state.items.pop_front()
        };
        match item {
            Some(item) => {
                drop(state);
                self.room.notify_waiters();
                Some(item)
            }
            None => {
                state.running = false;
                if state.items.capacity() > KEPT_CAPACITY {
                    state.items = VecDeque::new();
                }
                None
            }
        }
    }

    /// The next item if it is `wanted`, for the lane's task, which goes on either way: unlike
    /// [`Lane::next`], `None` does not end the task.
    pub fn next_if(&self, wanted: impl FnOnce(&T) -> bool) -> Option<T> {
        let mut state = self.lock();
        if state.closed || !state.items.front().is_some_and(wanted) {
            return None;
        }
        let item = state.items.pop_front();
        drop(state);
        self.room.notify_waiters();
        item
    }

    /// Claims an idle lane (no task, nothing waiting, not paused or closed) so that the
    /// caller handles one item itself, in order, without starting a task; `true` if it may.
    /// Items added meanwhile wait; the caller then calls [`Lane::release`].
    pub fn claim(&self) -> bool {
        let mut state = self.lock();
        let idle = !state.running && !state.closed && state.items.is_empty();
        state.running |= idle;
        idle
    }

    /// Ends a [`Lane::claim`]: `true` if items came meanwhile and the caller must start the
    /// lane's task.
    pub fn release(&self) -> bool {
        self.resume()
    }

    /// Lets a paused lane's items be handled: `true` if the caller must start its task.
    pub fn resume(&self) -> bool {
        let mut state = self.lock();
        state.running = !state.items.is_empty() && !state.closed;
        state.running
    }

    /// Drops what waits and refuses everything from now on (the socket is gone). A task that
    /// handles an item finishes it, then ends.
    pub fn close(&self) {
        let items = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        drop(items); // outside the lock: an item's drop may take other locks
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_push_starts_the_task_and_it_takes_items_in_order() {
        let lane = Lane::new(4);
        assert_eq!(lane.push(1).ok(), Some(Pushed::Start));
        assert_eq!(lane.push(2).ok(), Some(Pushed::Queued));
        assert_eq!(lane.next(), Some(1));
        assert_eq!(lane.next(), Some(2));
        assert_eq!(lane.next(), None);
        assert_eq!(lane.push(3).ok(), Some(Pushed::Start));
    }

    #[test]
    fn next_if_takes_only_a_wanted_item_and_keeps_the_task_running() {
        let lane = Lane::new(4);
        assert_eq!(lane.push(1).ok(), Some(Pushed::Start));
        assert!(lane.push(2).is_ok());
        assert_eq!(lane.next_if(|n| *n == 2), None, "1 is first");
        assert_eq!(lane.next(), Some(1));
        assert_eq!(lane.next_if(|n| *n == 2), Some(2));
        assert_eq!(lane.next_if(|_| true), None, "empty");
        assert_eq!(
            lane.push(3).ok(),
            Some(Pushed::Queued),
            "the task still runs"
        );
        assert_eq!(lane.next(), Some(3));
        assert_eq!(lane.next(), None);
        assert_eq!(lane.push(4).ok(), Some(Pushed::Start));
    }

    #[test]
    fn a_full_lane_refuses_and_a_closed_one_drops_everything() {
        let lane = Lane::new(1);
        assert!(lane.push(1).is_ok());
        assert!(matches!(lane.push(2), Err(Refused::Full(2))));
        lane.close();
        assert_eq!(lane.next(), None);
        assert!(matches!(lane.push(3), Err(Refused::Closed(3))));
    }

    #[test]
    fn a_paused_lane_starts_nothing_until_resumed() {
        let lane = Lane::paused(4);
        assert_eq!(lane.push(1).ok(), Some(Pushed::Queued));
        assert!(lane.resume());
        assert_eq!(lane.next(), Some(1));
        assert_eq!(lane.next(), None);
        let empty = Lane::<u8>::paused(4);
        assert!(!empty.resume());
        assert_eq!(empty.push(1).ok(), Some(Pushed::Start));
    }

    #[test]
    fn only_an_idle_lane_is_claimed_and_what_came_meanwhile_starts_the_task() {
        let lane = Lane::new(4);
        assert!(lane.claim());
        assert!(!lane.claim(), "claimed already");
        assert_eq!(
            lane.push(1).ok(),
            Some(Pushed::Queued),
            "waits for the claim"
        );
        assert!(lane.release(), "an item came: start the task");
        assert_eq!(lane.next(), Some(1));
        assert_eq!(lane.next(), None);
        assert!(lane.claim());
        assert!(!lane.release(), "nothing came");
        assert!(!Lane::<u8>::paused(4).claim());
        let closed = Lane::<u8>::new(4);
        closed.close();
        assert!(!closed.claim());
    }

    #[tokio::test]
    async fn a_waiting_push_gets_room_when_the_task_takes_an_item() {
        let lane = std::sync::Arc::new(Lane::new(1));
        assert!(lane.push(1).is_ok());
        let waiting = tokio::spawn({
            let lane = std::sync::Arc::clone(&lane);
            async move { lane.push_waiting(2).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(lane.next(), Some(1));
        assert_eq!(
            waiting.await.ok().and_then(Result::ok),
            Some(Pushed::Queued)
        );
        assert_eq!(lane.next(), Some(2));
    }
}
