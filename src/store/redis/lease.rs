//! The Redis lease: at most one queuehub node writes to a Redis database at a time.
//!
//! A node keeps the whole index of its store in memory and assigns sequence numbers from it;
//! two nodes writing to one database would hand out the same numbers and overwrite each
//! other's messages. Until nodes share one database as one server (issue 13), a database has
//! one *active* node: the holder of the key `qh:node`, set with a time to live and renewed by
//! its holder at a third of it. A node started while another holds the lease waits as a
//! *standby* (relaying its clients' connections to the holder, whose addresses it reads from
//! the holder's advert), and takes over once the holder is gone: stopped (it releases
//! the lease) or dead (the lease runs out). This is failover, not scale-out.
//!
//! A lease that runs out while its holder cannot reach Redis (Redis restarting, say) is taken
//! back by the holder if nobody took it in between (an epoch key counts the takes): its index is
//! then still what the database holds.
//!
//! A holder that died (kill -9, a crash) does not have to be waited for until its lease runs
//! out: a standby takes the lease over at once ([`STEAL`]) when both signs say the holder is
//! gone: its advertised address refuses connections (nothing listens there any more: the
//! standby's caller watches that, `crate::relay::watch_for_refusals`) *and* it has stopped
//! renewing: two readings of the lease's time to live [`UNRENEWED_FOR`] apart show it only
//! running down ([`Suspect`]), whatever length of lease the holder chose. Either sign alone is
//! not enough: a node that drains its connections after SIGTERM
//! refuses new ones but still renews (and commits) until it releases the lease, and a node cut
//! off from Redis, or paused, stops renewing but still listens. A holder taken over wrongly
//! loses nothing either: the fence below refuses its next commit and it stops.
//!
//! Every commit checks, in the same atomic script that applies it, that its node still holds
//! the lease ([`FENCED_COMMIT`]): a node that was cut off from Redis long enough for the lease
//! to pass to another can never write again (its commits fail, so its publishes are answered
//! 503), and it stops as soon as it learns that it lost the lease ([`Lease::lost`]).

use std::time::Duration;

use tokio::sync::watch;

use super::connection::{Connection, Keys};
use tokio::task::JoinHandle;

// The keys (`Keys`): the lease (`qh:node`), whose value names the holder; what the holder tells
// the other nodes about itself (`qh:node:advert`: `holder\ntext`, the text given to
// [`Lease::advertise`], where it listens), with the lease's time to live, which standbys read
// to relay their clients' connections (`crate::relay`); and how many times the lease was taken
// (`qh:node:epoch`, never expires): a holder whose lease ran out while Redis was away may take
// it back only if nobody took it in between, because only then is its index still what the
// database holds.

/// The default time to live of the lease: how long a standby waits after its active node
/// died without releasing it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// How often a standby tries to take the lease (at most): a released lease is taken this soon.
const STANDBY_POLL: Duration = Duration::from_millis(250);

/// How often the holder renews its lease at most (a third of its time to live if that is
/// shorter): often enough that a holder that stopped renewing shows soon.
const RENEW_AT_MOST_EVERY: Duration = Duration::from_millis(500);

/// How long a lease must be seen running down without a renewal before a standby may take it
/// from a holder whose address refuses connections: three renewal intervals of a holder.
const UNRENEWED_FOR: Duration = Duration::from_millis(1_500);

/// How much the two readings of a lease's time to live may disagree with the time between
/// them and still count as no renewal (Redis round trips); well under a holder's renewal
/// interval, so that a renewal in between always shows.
const READING_SLACK: Duration = Duration::from_millis(100);

/// A lease shorter than this when first read is left to run out (it will within a second).
/// A holder of a longer one renews every third of it or every [`RENEW_AT_MOST_EVERY`], so at
/// least three times within [`UNRENEWED_FOR`], and more than [`READING_SLACK`] apart.
const WORTH_TAKING: Duration = Duration::from_secs(1);

/// How often the holder of a lease of `ttl` renews it.
fn renewal_interval(ttl: Duration) -> Duration {
    (ttl / 3).min(RENEW_AT_MOST_EVERY)
}

/// Applies a commit's commands only if `KEYS[1]` (the lease) still names `ARGV[1]` (this
/// node). On a cluster every key it writes is in the lease's slot (`Keys`). The commands follow as `count, command, arg…` groups. Like `MULTI … EXEC`, a script
/// runs without other clients' commands in between and is written to the append-only file as
/// one unit.
pub const FENCED_COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('QHFENCED this node no longer holds the Redis lease')
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
";

/// Takes the lease for `ARGV[1]` if nobody holds it: the new epoch, else 0.
const TAKE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
";

/// Renews the lease of `ARGV[1]` (which took it in epoch `ARGV[3]`): 1 if it still holds it,
/// or if it ran out (Redis was away longer than the lease, say) and nobody took it since; 0 if
/// another node took it. A holder also sets its advert (`KEYS[3]`) to `ARGV[4]` unless that
/// is empty.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  if holder or redis.call('GET', KEYS[2]) ~= ARGV[3] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[2])
end
return 1
";

/// Takes the lease for `ARGV[2]` from `ARGV[1]`, judged gone, if `ARGV[1]` still holds it and
/// has not renewed it since it was last read (its time to live is at most `ARGV[3]` ms); drops
/// its advert (`KEYS[3]`). The new epoch, else 0.
const STEAL: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('DEL', KEYS[3])
return redis.call('INCR', KEYS[2])
";

/// Gives the lease up if `ARGV[1]` holds it, and its advert (`KEYS[2]`) with it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
";

/// One try of a standby to take the lease.
enum Attempt {
    /// Taken, in this epoch.
    Taken(i64),
    /// Held by `current`, which advertised `advertised` (if it did).
    Held {
        current: Option<String>,
        advertised: Option<String>,
    },
}

/// A holder whose address refuses connections, and the lease's time to live when that was
/// first seen: taken over once it has run down for [`UNRENEWED_FOR`] without a renewal.
struct Suspect {
    holder: String,
    ttl_ms: u64,
    at: std::time::Instant,
}

impl Suspect {
    /// Reads the time to live of `gone`'s lease; `None` if it is too short to be worth taking.
    async fn read(
        (connection, keys): (&Connection, Keys),
        gone: &str,
    ) -> Result<Option<Self>, redis::RedisError> {
        let mut conn = connection.clone();
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(keys.lease())
            .query_async(&mut conn)
            .await?;
        let worth = u64::try_from(WORTH_TAKING.as_millis()).unwrap_or(u64::MAX);
        Ok(u64::try_from(ttl_ms)
            .ok()
            .filter(|ttl_ms| *ttl_ms >= worth)
            .map(|ttl_ms| Suspect {
                holder: gone.to_owned(),
                ttl_ms,
                at: std::time::Instant::now(),
            }))
    }

    /// Takes the lease for `holder` if it was read [`UNRENEWED_FOR`] ago or more and has only
    /// run down since. `Ok(None)` if not yet, or if the suspect renewed it after all.
    async fn take_over(
        &self,
        (connection, keys): (&Connection, Keys),
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, redis::RedisError> {
        let elapsed = self.at.elapsed();
        if elapsed < UNRENEWED_FOR {
            return Ok(None);
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let at_most = (self.ttl_ms + ms(READING_SLACK)).saturating_sub(ms(elapsed));
        let mut conn = connection.clone();
        let epoch: i64 = redis::Script::new(STEAL)
            .key(keys.lease())
            .key(keys.epoch())
            .key(keys.advert())
            .arg(&self.holder)
            .arg(holder)
            .arg(at_most)
            .arg(ms(ttl).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok((epoch > 0).then_some(epoch))
    }
}

/// Tries to take the lease for `holder`; if another holds it, reads what it advertised.
async fn try_take(
    (connection, keys): (&Connection, Keys),
    take: &redis::Script,
    holder: &str,
    ttl_ms: u64,
) -> Result<Attempt, redis::RedisError> {
    let mut conn = connection.clone();
    let epoch: i64 = take
        .key(keys.lease())
        .key(keys.epoch())
        .arg(holder)
        .arg(ttl_ms)
        .invoke_async(&mut conn)
        .await?;
    if epoch > 0 {
        return Ok(Attempt::Taken(epoch));
    }
    let (current, advert): (Option<String>, Option<String>) = redis::cmd("MGET")
        .arg(keys.lease())
        .arg(keys.advert())
        .query_async(&mut conn)
        .await?;
    let advertised = current.as_deref().and_then(|holder| {
        let (by, text) = advert.as_deref()?.split_once('\n')?;
        (by == holder).then(|| text.to_owned())
    });
    Ok(Attempt::Held {
        current,
        advertised,
    })
}

/// This node's hold on a Redis database. Renewed in the background until released or lost.
pub struct Lease {
    /// The holder's name: host, process and a random part, so that no two nodes share it.
    holder: String,
    connection: Connection,
    keys: Keys,
    ttl: Duration,
    /// The advert the renewing task keeps setting (empty until [`Lease::advertise`]).
    advert: watch::Sender<String>,
    lost: watch::Receiver<bool>,
    renewing: JoinHandle<()>,
}

impl Lease {
    /// Takes the lease, waiting while another node holds it (a standby, which rides out Redis
    /// outages), then renews it in the background (every third of `ttl`, at most every
    /// [`RENEW_AT_MOST_EVERY`]). While it waits, `active` holds the advert of the node that
    /// holds the lease (`None` while there is none, or while it has not advertised yet); when
    /// `refusing` holds that same advert (its address refuses connections) and the holder has
    /// stopped renewing, this node takes the lease over without waiting for it to run out.
    pub async fn acquire(
        connection: Connection,
        keys: Keys,
        ttl: Duration,
        active: &watch::Sender<Option<String>>,
        refusing: &watch::Receiver<Option<String>>,
    ) -> Self {
        let holder = format!(
            "{}:{}:{}",
            crate::host::name(),
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut waiting_for = None;
        let take = redis::Script::new(TAKE);
        let mut unreachable = false;
        let mut suspect: Option<Suspect> = None;
        let epoch = loop {
            match try_take((&connection, keys), &take, &holder, ttl_ms).await {
                Ok(Attempt::Taken(epoch)) => break epoch,
                Ok(Attempt::Held {
                    current,
                    advertised,
                }) => {
                    unreachable = false;
                    let gone = current
                        .as_deref()
                        .filter(|_| advertised.is_some() && *refusing.borrow() == advertised);
                    match gone {
                        None => suspect = None,
                        Some(gone) => match &suspect {
                            Some(seen) if seen.holder == gone => {
                                match seen.take_over((&connection, keys), &holder, ttl).await {
                                    Ok(Some(epoch)) => {
                                        tracing::warn!(
                                            previous = gone,
                                            "the active node refuses connections and stopped \
                                             renewing its Redis lease: taking over without \
                                             waiting for the lease to run out"
                                        );
                                        break epoch;
                                    }
                                    // Not yet; or it renewed after all: read it again.
                                    Ok(None) if seen.at.elapsed() < UNRENEWED_FOR => {}
                                    Ok(None) => suspect = None,
                                    Err(err) => {
                                        tracing::warn!(error = %err, "cannot take over the Redis lease");
                                    }
                                }
                            }
                            _ => match Suspect::read((&connection, keys), gone).await {
                                Ok(seen) => suspect = seen,
                                Err(err) => {
                                    tracing::warn!(error = %err, "cannot read the Redis lease")
                                }
                            },
                        },
                    }
                    active.send_if_modified(|now| {
                        let changed = *now != advertised;
                        if changed {
                            now.clone_from(&advertised);
                        }
                        changed
                    });
                    if current.is_some() && current != waiting_for {
                        tracing::warn!(
                            active = current.as_deref().unwrap_or_default(),
                            "another queuehub node is active on this Redis database: standing by \
                             until it stops or its lease of {} ms runs out",
                            ttl_ms
                        );
                        waiting_for = current;
                    }
                }
                // Redis restarting, say: stand by on (relaying to the node last advertised).
                Err(err) => {
                    if !unreachable {
                        tracing::warn!(error = %err, "cannot reach Redis while standing by; retrying");
                    }
                    unreachable = true;
                }
            }
            tokio::time::sleep((ttl / 3).min(STANDBY_POLL)).await;
        };
        tracing::info!(holder = %holder, "holding the Redis lease: this node is active");
        active.send_replace(None);
        let (lost_tx, lost) = watch::channel(false);
        let (advert, advert_rx) = watch::channel(String::new());
        let renewing = tokio::spawn(renew(
            (connection.clone(), keys),
            (holder.clone(), epoch),
            ttl,
            advert_rx,
            lost_tx,
        ));
        Self {
            holder,
            connection,
            keys,
            ttl,
            advert,
            lost,
            renewing,
        }
    }

    /// Tells the standbys where this node serves (`text`, opaque here), so that they relay
    /// their clients to it: set now, and again at every renewal (it runs out with the lease).
    pub async fn advertise(&self, text: &str) -> Result<(), redis::RedisError> {
        let value = format!("{}\n{text}", self.holder);
        self.advert.send_replace(value.clone());
        let mut conn = self.connection.clone();
        redis::cmd("SET")
            .arg(self.keys.advert())
            .arg(value)
            .arg("PX")
            .arg(
                u64::try_from(self.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .query_async(&mut conn)
            .await
    }

    /// The name this node holds the lease under, which commits are checked against.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Completes when this node has lost the lease to another: it must stop.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            // An error means the renewing task ended, which it does only after losing.
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }

    /// Gives the lease up (a standby takes over at once) and stops renewing it.
    pub async fn release(&self) {
        self.renewing.abort();
        let mut conn = self.connection.clone();
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(self.keys.lease())
            .key(self.keys.advert())
            .arg(&self.holder)
            .invoke_async(&mut conn)
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, "could not release the Redis lease; it runs out by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

/// Renews the lease every [`renewal_interval`]. While Redis cannot be reached it keeps trying (the
/// commits fail meanwhile, and the lease may run out: it is taken back if nobody took it in
/// between); once Redis answers that another node took the lease, it reports the loss and
/// ends.
async fn renew(
    (connection, keys): (Connection, Keys),
    (holder, epoch): (String, i64),
    ttl: Duration,
    advert: watch::Receiver<String>,
    lost: watch::Sender<bool>,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let script = redis::Script::new(RENEW);
    loop {
        tokio::time::sleep(renewal_interval(ttl)).await;
        let mut conn = connection.clone();
        let advertised = advert.borrow().clone();
        let renewed: Result<i64, _> = script
            .key(keys.lease())
            .key(keys.epoch())
            .key(keys.advert())
            .arg(&holder)
            .arg(ttl_ms)
            .arg(epoch)
            .arg(advertised)
            .invoke_async(&mut conn)
            .await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                tracing::error!(
                    "this node lost the Redis lease to another node (it could not renew it in \
                     time); it stops writing and shuts down"
                );
                let _ = lost.send(true);
                return;
            }
            Err(err) => tracing::warn!(error = %err, "cannot renew the Redis lease; retrying"),
        }
    }
}
