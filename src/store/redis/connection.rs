//! The way to Redis: one server (`--redis`) or a Redis Cluster (`--redis-cluster`), and the
//! names of the keys in each.
//!
//! On one server the keys are `qh:…`, each queue's hash-tagged by the queue (`qh:{Q}:inbox`).
//! On a cluster every key carries the one hash tag `{qh}` (`{qh}:m:<seq>`, `{qh}:{Q}:inbox`),
//! so that all of them live in one slot: a commit is one script over the keys of several
//! queues and the lease, and Redis Cluster runs a script only over keys of one slot. So a
//! cluster holds queuehub's data on one of its shards (DECISIONS 68); spreading queues over
//! shards needs commits per shard, which is the plan of docs/SCALING.md.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// The longest one Redis reply may take before the call fails (and the batch counts as not
/// committed).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the store is.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// One Redis server (or Valkey): `redis://HOST:PORT[/DB]`.
    Server(&'a str),
    /// The seed nodes of a Redis Cluster.
    Cluster(&'a [String]),
}

/// A connection that reconnects by itself: to one server (multiplexed, through redis's
/// `ConnectionManager`) or to a cluster (routing each command to the node of its slot).
#[derive(Clone)]
pub enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Connects to `target`; also gives the names its keys have there.
    pub async fn open(target: Target<'_>) -> RedisResult<(Self, Keys)> {
        Ok(match target {
            Target::Server(url) => {
                let client = redis::Client::open(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2);
                let manager = ConnectionManager::new_with_config(client, config).await?;
                (Self::Server(manager), Keys::SERVER)
            }
            Target::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(CONNECTION_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .build()?;
                let cluster = client.get_async_connection().await?;
                (Self::Cluster(cluster), Keys::CLUSTER)
            }
        })
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The names of queuehub's keys (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: &'static str,
}

impl Keys {
    /// On one server.
    pub const SERVER: Keys = Keys { prefix: "qh:" };
    /// On a cluster: one hash tag for every key.
    pub const CLUSTER: Keys = Keys { prefix: "{qh}:" };

    /// One message: its meta and payload.
    pub fn message(self, seq: u64) -> String {
        format!("{}m:{seq}", self.prefix)
    }

    /// Every stored seq.
    pub fn seqs(self) -> String {
        format!("{}seqs", self.prefix)
    }

    /// Every queue that owns keys.
    pub fn queues(self) -> String {
        format!("{}queues", self.prefix)
    }

    /// One of a queue's tables (`subs`, `inbox`…), hash-tagged by the queue name on one server.
    pub fn queue(self, queue: &str, table: &str) -> String {
        format!("{}{{{queue}}}:{table}", self.prefix)
    }

    /// The lease: which node is active.
    pub fn lease(self) -> String {
        format!("{}node", self.prefix)
    }

    /// How many times the lease was taken.
    pub fn epoch(self) -> String {
        format!("{}node:epoch", self.prefix)
    }

    /// What the active node advertises.
    pub fn advert(self) -> String {
        format!("{}node:advert", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's hash tag of `key`: the first `{…}` with something inside, else the key.
    fn tag(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let close = key[open + 1..].find('}')?;
                (close > 0).then(|| &key[open + 1..open + 1 + close])
            })
            .unwrap_or(key)
    }

    #[test]
    fn on_a_cluster_every_key_is_in_one_slot_and_on_a_server_the_names_are_unchanged() {
        let keys = Keys::CLUSTER;
        for key in [
            keys.message(7),
            keys.seqs(),
            keys.queues(),
            keys.queue("orders", "inbox"),
            keys.queue("{odd}", "subs"),
            keys.lease(),
            keys.epoch(),
            keys.advert(),
        ] {
            assert_eq!(tag(&key), "qh", "{key}");
        }
        let keys = Keys::SERVER;
        assert_eq!(keys.message(7), "qh:m:7");
        assert_eq!(keys.queue("orders", "inbox"), "qh:{orders}:inbox");
        assert_eq!(keys.lease(), "qh:node");
        assert_eq!(keys.seqs(), "qh:seqs");
    }
}
