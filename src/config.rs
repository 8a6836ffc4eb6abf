//! [`Config`]: every setting of a queuehub server, resolved from five layers, each beating the
//! ones before it:
//!
//! 1. the defaults (written on each setting of [`Settings`], shown by `--help`),
//! 2. a preset (`--preset NAME|FILE`: a built-in one from `presets/`, or a file),
//! 3. a TOML file (`--config FILE`),
//! 4. `QUEUEHUB_<KEY>` environment variables,
//! 5. command-line flags.
//!
//! A setting is declared once, as a field of [`Settings`]: the field's name is its file key
//! (`max_inbox`), its flag (`--max-inbox`) and its variable (`QUEUEHUB_MAX_INBOX`); its doc
//! comment is its `--help` text and its comment in `--print-config`. `layers` stacks the
//! sources with `figment`; `print` writes the effective settings back out as a TOML file.
//! Adding a setting is adding a field (and its row in README's tables; a test checks them).

mod layers;
mod print;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};

use crate::auth::{ApiKeys, Security, Tokens};
use crate::broker::BrokerConfig;
use crate::compat::{Dialect, HttpRoute, PresetError};

pub use layers::Loaded;
pub use print::print_config;

/// Where messages are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The embedded redb engine, in this directory (durable).
    Embedded(PathBuf),
    /// In memory only: everything is lost when the process ends.
    Memory,
    /// In the Redis at this URL (`redis://HOST:PORT[/DB]`); as durable as that Redis is set to
    /// be. One node is active per Redis database at a time (standbys wait for its lease).
    Redis(String),
    /// In the Redis Cluster these seed nodes belong to (`redis://HOST:PORT`), every key in one
    /// slot (`store::redis::connection`); otherwise as `Redis`.
    RedisCluster(Vec<String>),
}

/// The resolved configuration of a queuehub server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every address serves everything (HTTP API and socket.io).
    pub listen: Vec<SocketAddr>,
    /// Every address serves the beanstalkd protocol (none: the beanstalk door is closed).
    pub beanstalk_listen: Vec<DoorAddress>,
    /// The largest job body the beanstalk door accepts (beanstalkd's `-z`).
    pub beanstalk_max_job_bytes: u32,
    pub storage: Storage,
    /// The most memory the embedded store's page cache may use, in bytes.
    pub store_cache_bytes: usize,
    pub broker: BrokerConfig,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest an HTTP request may take, body upload included; then it is answered 408.
    pub request_timeout: Duration,
    /// Allow any origin (for browser pages served elsewhere).
    pub cors_permissive: bool,
    /// A lab's dialect (from a preset), if any.
    pub dialect: Option<Arc<Dialect>>,
    /// HTTP routes of a lab's API server (from a preset).
    pub http_routes: Vec<HttpRoute>,
    /// Serve the dashboard's files from this directory instead of the built-in copies
    /// (for working on the page without rebuilding).
    pub dashboard_dir: Option<PathBuf>,
    /// API keys and the token secret; empty means open mode.
    pub security: Arc<Security>,
    /// Events one socket may send per second on average (and in a burst).
    pub max_events_per_sec: u32,
    /// Packets one socket may have waiting to be written (DECISIONS 73).
    pub socket_buffer: usize,
    /// How often engine.io pings each socket's client, and how long it waits for the pong
    /// (socket.io's `pingInterval` and `pingTimeout`).
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Socket connections one IP address may hold at once; `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// HTTP requests one IP address may send per second (and in a burst); `None`: no limit.
    pub max_requests_per_sec: Option<u32>,
    /// With Redis storage: how long the database's lease lasts (see `store::redis::lease`).
    pub redis_lease: Duration,
    /// With Redis storage: the host this node advertises for unspecified listen addresses
    /// (`crate::relay`); `None`: the machine's name.
    pub advertise_host: Option<String>,
}

impl Default for Config {
    /// The configuration of `queuehub` with no flags, variables or files.
    fn default() -> Self {
        Loaded::defaults()
            .into_config()
            .expect("the built-in defaults are a valid configuration")
    }
}

/// queuehub: a durable message-queue server that speaks socket.io.
#[derive(Parser, Debug, Clone)]
#[command(version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// A TOML file with any of the settings below, keyed as the flags with `_` for `-`
    /// (`max_inbox = 500`); also QUEUEHUB_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as a TOML file (a starting --config file; secrets
    /// are not printed) and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub flags: Flags,
}

const AFTER_HELP: &str = "\
Every setting can also be given as a QUEUEHUB_<KEY> environment variable \
(QUEUEHUB_MAX_INBOX=500; lists separated by commas) or as a key of the --config file \
(max_inbox = 500). Flags beat variables, which beat the file, which beats the preset, which \
beats the defaults. `queuehub --print-config` shows the result.";

impl Default for Cli {
    /// No arguments: every setting at its default.
    fn default() -> Self {
        Cli::parse_from(["queuehub"])
    }
}

/// Every setting of queuehub, declared once: the field is the file key, `--flag` and
/// `QUEUEHUB_VARIABLE`; its doc comment is the help text; its default is clap's.
#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to serve on; repeat (or separate with commas) to serve on several.
    #[arg(
        long,
        value_name = "ADDR",
        value_delimiter = ',',
        default_value = "127.0.0.1:3000"
    )]
    #[serde(deserialize_with = "layers::list")]
    pub listen: Vec<SocketAddr>,
    /// Address to serve the beanstalkd protocol on (docs/BEANSTALK.md): HOST:PORT, or
    /// unix:PATH for a Unix socket as beanstalkd's `-l unix:PATH`; repeat (or separate with
    /// commas) for several [default: none, the beanstalk door is closed].
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    #[serde(default, deserialize_with = "layers::list")]
    pub beanstalk_listen: Vec<DoorAddress>,
    /// The largest job body the beanstalk door accepts, in bytes (beanstalkd's `-z`); larger
    /// ones are answered JOB_TOO_BIG.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=crate::beanstalk::MAX_JOB_BYTES_LIMIT as i64),
          default_value_t = crate::beanstalk::DEFAULT_MAX_JOB_BYTES)]
    pub beanstalk_max_job_bytes: u32,
    /// Directory of the embedded store.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The most memory the embedded store's page cache may use, in MiB.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(STORE_CACHE_MB),
          default_value_t = (crate::store::embedded::DEFAULT_CACHE_BYTES >> 20) as u64)]
    pub store_cache_mb: u64,
    /// Keep everything in memory: nothing is written to disk, nothing survives a restart.
    #[arg(long, action = ArgAction::Set, value_parser = BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true", default_value_t = false)]
    pub memory: bool,
    /// Keep everything in this Redis (7 or later, or Valkey) instead of the data directory:
    /// redis://HOST:PORT[/DB]. One node is active per Redis database; more stand by and relay
    /// their clients to it.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Keep everything in this Redis Cluster instead: a seed node's redis://HOST:PORT; repeat
    /// (or separate with commas) for more. Every key is in one slot, so on one shard.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    #[serde(default, deserialize_with = "layers::list")]
    pub redis_cluster: Vec<String>,
    /// With --redis: the lease of the Redis database, in ms. One node is active on a database;
    /// others wait as standbys and take over this long after its machine died (at once when
    /// it stops, in about 2 s when its process died and its address refuses connections).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..),
          default_value_t = crate::store::redis::lease::DEFAULT_TTL.as_millis() as u64)]
    pub redis_lease_ms: u64,
    /// With --redis: the host other nodes reach this one at, for listen addresses that name
    /// none (0.0.0.0); standbys relay their clients there [default: this machine's name].
    #[arg(long, value_name = "HOST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_host: Option<String>,
    /// A preset: a built-in name (`caps`, the classroom lab) or a TOML file with the same keys
    /// as `--config` (and a lab's [compat] and [[http_routes]]); everything else overrides it.
    #[arg(long, value_name = "NAME|FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// An API key: required as `Authorization: Bearer KEY` on HTTP writes and admin routes,
    /// and accepted from trusted socket backends. Repeat (or separate with commas) for several.
    #[arg(long, value_name = "KEY", value_delimiter = ',')]
    #[serde(deserialize_with = "layers::list")]
    pub api_key: Vec<String>,
    /// A file with more API keys, one per line.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// With an API key: let queue stats and metrics be read without one.
    #[arg(long, action = ArgAction::Set, value_parser = BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true", default_value_t = false)]
    pub public_stats: bool,
    /// The secret (16+ characters) that signs socket tokens; sockets must then present one.
    #[arg(long, value_name = "SECRET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// Largest message payload, in bytes of JSON.
    #[arg(long, value_name = "BYTES", default_value_t = BrokerConfig::default().max_payload_bytes)]
    pub max_payload_bytes: usize,
    /// Events one socket may send per second, on average and in a burst.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_events_per_sec: u32,
    /// Packets one socket may have waiting to be written; past that, live pushes to it
    /// pause and resume from its inbox, and catch-ups wait for it to read.
    #[arg(long, value_name = "PACKETS", default_value_t = DEFAULT_SOCKET_BUFFER,
          value_parser = clap::value_parser!(u32).range(64..=65_536))]
    pub socket_buffer: u32,
    /// How often each socket's client is pinged, in ms (socket.io's `pingInterval`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = 25_000)]
    pub ping_interval_ms: u64,
    /// How long a ping waits for its pong (and, when the socket's buffer is full, for room),
    /// in ms, before the socket is closed (socket.io's `pingTimeout`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = 20_000)]
    pub ping_timeout_ms: u64,
    /// Socket connections one IP address may hold at once [default: no limit].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// HTTP requests one IP address may send per second, on average and in a burst; more
    /// are answered 429 rate_limited [default: no limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_sec: Option<u32>,
    /// Most unacked messages one subscription's inbox may hold.
    #[arg(long, value_name = "N", default_value_t = BrokerConfig::default().max_inbox)]
    pub max_inbox: usize,
    /// How long a publisher-chosen message id is remembered (a second publish with it is a
    /// duplicate), in seconds; 0 remembers none.
    #[arg(long, value_name = "SECS",
          default_value_t = BrokerConfig::default().dedupe_window.as_secs())]
    pub dedupe_window_secs: u64,
    /// Largest HTTP request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest an HTTP request may take, body upload included, in ms; slower ones are
    /// answered 408.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Serve the dashboard page's files from this directory (to work on the page without
    /// rebuilding) [default: the copies built into the binary].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_dir: Option<PathBuf>,
    /// Allow cross-origin requests from any origin.
    #[arg(long, action = ArgAction::Set, value_parser = BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true", default_value_t = false)]
    pub cors: bool,
}

/// Packets one socket may have waiting to be written, by default (DECISIONS 73).
pub const DEFAULT_SOCKET_BUFFER: u32 = 2048;

/// The page cache a store may be given, in MiB (1 MiB to 1 TiB).
const STORE_CACHE_MB: std::ops::RangeInclusive<u64> = 1..=1_048_576;

/// The settings that are secrets (the Redis URL may carry a password): `--print-config` never
/// prints their values.
pub const SECRET_KEYS: [&str; 4] = ["api_key", "token_secret", "redis", "redis_cluster"];

impl Settings {
    /// Every setting's key (`max_inbox`) with its help text, in declaration order.
    pub fn keys() -> Vec<(String, String)> {
        Settings::augment_args(clap::Command::new("queuehub"))
            .get_arguments()
            .map(|arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                (arg.get_id().to_string(), help)
            })
            .collect()
    }
}

/// The settings as clap parsed them, and which of them were typed on the command line (only
/// those are the flag layer: the rest are clap's defaults).
#[derive(Debug, Clone)]
pub struct Flags {
    pub settings: Settings,
    given: Vec<String>,
}

impl Flags {
    /// The keys of the settings given as flags.
    pub fn given(&self) -> &[String] {
        &self.given
    }
}

impl FromArgMatches for Flags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let settings = Settings::from_arg_matches(matches)?;
        let given = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
        Ok(Flags { settings, given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Flags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for Flags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Settings::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Settings::augment_args_for_update(cmd)
    }
}

impl Config {
    /// Resolves the command line, the process's `QUEUEHUB_*` variables, the `--config` file
    /// and the preset over the defaults. Errors name the source, the key and the problem.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Self> {
        Loaded::from_cli(&cli, |name| std::env::var(name).ok())?.into_config()
    }
}

impl Loaded {
    /// The server configuration these settings describe.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let s = &self.settings;
        if s.listen.is_empty() {
            return Err(self.refuse("listen", "no address to listen on"));
        }
        if !STORE_CACHE_MB.contains(&s.store_cache_mb) {
            return Err(self.refuse("store_cache_mb", "must be 1 to 1048576 (MiB)"));
        }
        if s.request_timeout_ms == 0 {
            return Err(self.refuse("request_timeout_ms", "must be at least 1 (ms)"));
        }
        if s.redis_lease_ms < 100 {
            return Err(self.refuse("redis_lease_ms", "must be at least 100 (ms)"));
        }
        let security = self.security()?;
        if !s.redis_cluster.is_empty() {
            if s.redis.is_some() || s.memory {
                return Err(self.refuse(
                    "redis_cluster",
                    "cannot be combined with redis or memory (choose one)",
                ));
            }
            for url in &s.redis_cluster {
                crate::store::redis::check_url(url)
                    .map_err(|problem| self.refuse("redis_cluster", problem))?;
            }
        }
        let unix = s
            .beanstalk_listen
            .iter()
            .find(|a| matches!(a, DoorAddress::Unix(_)));
        if let Some(unix) = unix
            && (s.redis.is_some() || !s.redis_cluster.is_empty())
        {
            return Err(self.refuse(
                "beanstalk_listen",
                format!(
                    "{unix}: with Redis, standbys relay their clients to the active node, which \
                     a Unix socket cannot reach; listen on a TCP address"
                ),
            ));
        }
        let storage = match (&s.redis, s.memory) {
            _ if !s.redis_cluster.is_empty() => Storage::RedisCluster(s.redis_cluster.clone()),
            (Some(_), true) => {
                return Err(self.refuse("redis", "cannot be combined with memory (choose one)"));
            }
            (Some(url), false) => {
                crate::store::redis::check_url(url)
                    .map_err(|problem| self.refuse("redis", problem))?;
                Storage::Redis(url.clone())
            }
            (None, true) => Storage::Memory,
            (None, false) => Storage::Embedded(s.data_dir.clone()),
        };
        let broker = BrokerConfig {
            max_payload_bytes: s.max_payload_bytes,
            max_inbox: s.max_inbox,
            dedupe_window: Duration::from_secs(s.dedupe_window_secs),
            ..BrokerConfig::default()
        };
        let dialect = self.lab.dialect()?;
        let http_routes = self.lab.routes()?;
        let s = self.settings;
        Ok(Config {
            listen: s.listen,
            beanstalk_listen: s.beanstalk_listen,
            beanstalk_max_job_bytes: s.beanstalk_max_job_bytes,
            storage,
            store_cache_bytes: mebibytes(s.store_cache_mb),
            broker,
            max_body_bytes: s.max_body_bytes,
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            cors_permissive: s.cors,
            dialect,
            http_routes,
            dashboard_dir: s.dashboard_dir,
            security: Arc::new(security),
            max_events_per_sec: s.max_events_per_sec.max(1),
            socket_buffer: s.socket_buffer as usize,
            ping_interval: Duration::from_millis(s.ping_interval_ms),
            ping_timeout: Duration::from_millis(s.ping_timeout_ms),
            max_connections_per_ip: s.max_connections_per_ip,
            max_requests_per_sec: s.max_requests_per_sec,
            redis_lease: Duration::from_millis(s.redis_lease_ms),
            advertise_host: s.advertise_host.clone(),
        })
    }

    /// API keys (the setting and the key file) and the token secret.
    fn security(&self) -> anyhow::Result<Security> {
        let s = &self.settings;
        let mut keys = s.api_key.clone();
        if let Some(path) = &s.api_key_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API key file {}", path.display()))?;
            keys.extend(text.lines().map(str::to_owned));
        }
        let tokens = match &s.token_secret {
            Some(secret) => {
                Some(Tokens::new(secret).map_err(|problem| self.refuse("token_secret", problem))?)
            }
            None => None,
        };
        let security = Security {
            api_keys: ApiKeys::new(keys),
            tokens,
            public_stats: s.public_stats,
        };
        security.validate().map_err(anyhow::Error::msg)?;
        Ok(security)
    }
}

/// `mb` MiB in bytes (at most `usize::MAX`).
fn mebibytes(mb: u64) -> usize {
    usize::try_from(mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024 * 1024)
}

/// Paths queuehub serves itself; a lab route may not take them over.
const RESERVED_PATHS: [&str; 6] = [
    "/v1",
    "/socket.io",
    "/healthz",
    "/metrics",
    "/dashboard",
    "/openapi.json",
];

/// Each of a preset's HTTP routes must be a path of its own, declared once.
fn check_lab_routes(routes: &[HttpRoute]) -> Result<(), PresetError> {
    for (i, route) in routes.iter().enumerate() {
        let path = &route.path;
        let refuse = |problem: String| PresetError {
            key: format!("http_routes[{i}].path"),
            problem,
        };
        if !path.starts_with('/') || path.contains("//") || path.contains('*') {
            return Err(refuse(format!(
                "{path:?} must be a path like /delivery/{{store}}/{{code}}"
            )));
        }
        let first = path.split('/').nth(1).unwrap_or_default();
        if RESERVED_PATHS
            .iter()
            .any(|reserved| reserved[1..] == *first)
        {
            return Err(refuse(format!(
                "{path:?} would hide queuehub's own {first:?} routes"
            )));
        }
        if let Some(earlier) = routes[..i].iter().position(|r| r.path == *path) {
            return Err(refuse(format!(
                "{path:?} is declared twice (also http_routes[{earlier}]); keep one route"
            )));
        }
    }
    Ok(())
}

/// Where the beanstalk door listens: a TCP address, or a Unix socket (`unix:PATH`, as
/// beanstalkd's `-l unix:PATH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DoorAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for DoorAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("unix:") {
            Some("") => Err("unix: needs a path, as in unix:/run/queuehub.sock".to_owned()),
            Some(path) => Ok(DoorAddress::Unix(PathBuf::from(path))),
            None => text.parse().map(DoorAddress::Tcp).map_err(|_| {
                format!("{text:?} is neither HOST:PORT (an IP address and a port) nor unix:PATH")
            }),
        }
    }
}

impl std::fmt::Display for DoorAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DoorAddress::Tcp(address) => address.fmt(f),
            DoorAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Serialize for DoorAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests;
