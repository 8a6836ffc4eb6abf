//! [`Stats`]: what the beanstalk door counts itself for `stats` and `stats-tube`: commands
//! by name, connections, and per tube the connections using, watching and waiting on it
//! and its pause. Job counts come from the broker. In memory: they start at zero with the
//! process, as beanstalkd's do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::protocol::Tube;

/// One tube as the door's connections see it.
#[derive(Clone, Copy, Debug, Default)]
pub struct TubeUse {
    pub using: usize,
    pub watching: usize,
    pub waiting: usize,
    pub deletes: u64,
    pub pauses: u64,
    /// Paused until then, for this long (`pause-tube`).
    pub paused: Option<(Instant, Duration)>,
}

/// The door's counters. See the module docs.
pub struct Stats {
    pub started: Instant,
    /// A random id for this process (beanstalkd's `id`).
    pub id: String,
    // std Mutex: counter updates only, never across an await.
    inner: Mutex<Inner>,
    /// Tells connections waiting in `reserve` that a tube was paused: they look again.
    pub paused: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    commands: BTreeMap<&'static str, u64>,
    tubes: HashMap<Tube, TubeUse>,
    connections: usize,
    total_connections: u64,
    producers: usize,
    workers: usize,
    waiting: usize,
}

/// The server-wide numbers of `stats` that the door counts.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub commands: BTreeMap<&'static str, u64>,
    pub connections: usize,
    pub total_connections: u64,
    pub producers: usize,
    pub workers: usize,
    pub waiting: usize,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            id: format!("{:016x}", uuid::Uuid::now_v7().as_u128() as u64),
            inner: Mutex::new(Inner::default()),
            paused: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one command (`cmd-put`...).
    pub fn command(&self, name: &'static str) {
        *self.lock().commands.entry(name).or_default() += 1;
    }

    /// Changes a tube's counts. A tube no connection uses, watches or waits on, and that
    /// is not paused, is forgotten (as beanstalkd frees such a tube): the map holds only
    /// what connections hold.
    pub fn tube(&self, tube: &Tube, change: impl FnOnce(&mut TubeUse)) {
        let mut inner = self.lock();
        let entry = inner.tubes.entry(tube.clone()).or_default();
        change(entry);
        let idle = entry.using + entry.watching + entry.waiting == 0
            && entry
                .paused
                .is_none_or(|(until, _)| until <= Instant::now());
        if idle {
            inner.tubes.remove(tube);
        }
    }

    /// A tube's counts (zero for a tube no connection has named).
    pub fn tube_use(&self, tube: &Tube) -> TubeUse {
        self.lock().tubes.get(tube).copied().unwrap_or_default()
    }

    /// The tubes some connection uses or watches now.
    pub fn tubes_in_use(&self) -> Vec<Tube> {
        self.lock()
            .tubes
            .iter()
            .filter(|(_, u)| u.using + u.watching > 0)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// When `tube`'s pause ends, if it is paused now.
    pub fn paused_until(&self, tube: &Tube) -> Option<Instant> {
        let until = self.lock().tubes.get(tube)?.paused?.0;
        (until > Instant::now()).then_some(until)
    }

    /// Counts a connection opening (`true`) or closing.
    pub fn connection(&self, open: bool) {
        let mut inner = self.lock();
        if open {
            inner.connections += 1;
            inner.total_connections += 1;
        } else {
            inner.connections = inner.connections.saturating_sub(1);
        }
    }

    /// A connection became a producer (its first `put`) or a worker (its first
    /// `reserve`), or stopped being one when it closed.
    pub fn role(&self, producer: bool, add: bool) {
        let mut inner = self.lock();
        let count = if producer {
            &mut inner.producers
        } else {
            &mut inner.workers
        };
        *count = if add {
            *count + 1
        } else {
            count.saturating_sub(1)
        };
    }

    /// A connection starts (`true`) or stops waiting in `reserve` on `tubes`.
    pub fn waiting(&self, tubes: &[Tube], start: bool) {
        let mut inner = self.lock();
        inner.waiting = if start {
            inner.waiting + 1
        } else {
            inner.waiting.saturating_sub(1)
        };
        drop(inner);
        for tube in tubes {
            self.tube(tube, |entry| {
                entry.waiting = if start {
                    entry.waiting + 1
                } else {
                    entry.waiting.saturating_sub(1)
                };
            });
        }
    }

    /// The server-wide numbers.
    pub fn totals(&self) -> Totals {
        let inner = self.lock();
        Totals {
            commands: inner.commands.clone(),
            connections: inner.connections,
            total_connections: inner.total_connections,
            producers: inner.producers,
            workers: inner.workers,
            waiting: inner.waiting,
        }
    }
}
