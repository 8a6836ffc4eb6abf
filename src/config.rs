//! [`Config`]: every setting in one struct, read from command-line flags, `QUEUEHUB_*`
//! environment variables and an optional TOML file, in that order of precedence (a flag beats
//! its variable, which beats the file, which beats the default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;

use std::sync::Arc;

use crate::auth::{ApiKeys, Security, Tokens};
use crate::broker::BrokerConfig;
use crate::compat::{self, Dialect, HttpRoute, PresetError};

/// Where messages are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The embedded redb engine, in this directory (durable).
    Embedded(PathBuf),
    /// In memory only: everything is lost when the process ends.
    Memory,
}

/// The resolved configuration of a queuehub server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every address serves everything (HTTP API and socket.io).
    pub listen: Vec<SocketAddr>,
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
    /// Socket connections one IP address may hold at once; `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// HTTP requests one IP address may send per second (and in a burst); `None`: no limit.
    pub max_requests_per_sec: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 3000))],
            storage: Storage::Embedded(PathBuf::from("data")),
            store_cache_bytes: crate::store::embedded::DEFAULT_CACHE_BYTES,
            broker: BrokerConfig::default(),
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_permissive: false,
            dialect: None,
            http_routes: Vec::new(),
            dashboard_dir: None,
            security: Arc::new(Security::default()),
            max_events_per_sec: 10_000,
            max_connections_per_ip: None,
            max_requests_per_sec: None,
        }
    }
}

/// queuehub: a durable message-queue server that speaks socket.io.
#[derive(Parser, Debug, Default)]
#[command(version, about)]
pub struct Cli {
    /// Address to serve on; repeat (or separate with commas) to serve on several.
    #[arg(long, env = "QUEUEHUB_LISTEN", value_delimiter = ',')]
    pub listen: Vec<SocketAddr>,
    /// Directory of the embedded store [default: ./data].
    #[arg(long, env = "QUEUEHUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The most memory the embedded store's page cache may use, in MiB [default: 64].
    #[arg(long, env = "QUEUEHUB_STORE_CACHE_MB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub store_cache_mb: Option<u64>,
    /// Keep everything in memory: nothing is written to disk, nothing survives a restart.
    #[arg(long, env = "QUEUEHUB_MEMORY", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub memory: Option<bool>,
    /// A TOML file with any of these settings (keys as the flags, with `_` for `-`).
    #[arg(long, env = "QUEUEHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// A preset: a built-in name (`caps`, the classroom lab) or a TOML file with the same keys
    /// as `--config`; flags, variables and `--config` override it.
    #[arg(long, env = "QUEUEHUB_PRESET")]
    pub preset: Option<String>,
    /// An API key: required as `Authorization: Bearer KEY` on HTTP writes and admin routes,
    /// and accepted from trusted socket backends. Repeat (or separate with commas) for several.
    #[arg(long, env = "QUEUEHUB_API_KEY", value_delimiter = ',')]
    pub api_key: Vec<String>,
    /// A file with API keys, one per line.
    #[arg(long, env = "QUEUEHUB_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// With --api-key: let queue stats and metrics be read without a key.
    #[arg(long, env = "QUEUEHUB_PUBLIC_STATS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub public_stats: Option<bool>,
    /// The secret (16+ characters) that signs socket tokens; sockets must then present one.
    #[arg(long, env = "QUEUEHUB_TOKEN_SECRET")]
    pub token_secret: Option<String>,
    /// Largest message payload, in bytes of JSON [default: 1048576].
    #[arg(long, env = "QUEUEHUB_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Events one socket may send per second, on average and in a burst [default: 10000].
    #[arg(long, env = "QUEUEHUB_MAX_EVENTS_PER_SEC")]
    pub max_events_per_sec: Option<u32>,
    /// Socket connections one IP address may hold at once [default: no limit].
    #[arg(long, env = "QUEUEHUB_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// HTTP requests one IP address may send per second, on average and in a burst; more
    /// are answered 429 rate_limited [default: no limit].
    #[arg(long, env = "QUEUEHUB_MAX_REQUESTS_PER_SEC", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_sec: Option<u32>,
    /// Most unacked messages one subscription's inbox may hold [default: 1000000].
    #[arg(long, env = "QUEUEHUB_MAX_INBOX")]
    pub max_inbox: Option<usize>,
    /// Largest HTTP request body, in bytes [default: 16777216].
    #[arg(long, env = "QUEUEHUB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest an HTTP request may take, body upload included, in ms; slower ones are
    /// answered 408 [default: 30000].
    #[arg(long, env = "QUEUEHUB_REQUEST_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: Option<u64>,
    /// Serve the dashboard page's files from this directory (to work on the page without
    /// rebuilding); by default the copies built into the binary are served.
    #[arg(long, env = "QUEUEHUB_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
    /// Allow cross-origin requests from any origin.
    #[arg(long, env = "QUEUEHUB_CORS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub cors: Option<bool>,
}

/// The TOML file (and a preset): the same settings as the flags, all optional, plus a lab's
/// dialect and HTTP routes.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    compat: Option<Dialect>,
    http_routes: Option<Vec<HttpRoute>>,
    /// The file the `[compat]` table and the routes came from, for error messages.
    #[serde(skip)]
    compat_from: Option<String>,
    #[serde(skip)]
    routes_from: Option<String>,
    listen: Option<Vec<SocketAddr>>,
    data_dir: Option<PathBuf>,
    store_cache_mb: Option<u64>,
    memory: Option<bool>,
    preset: Option<String>,
    api_key: Option<Vec<String>>,
    public_stats: Option<bool>,
    token_secret: Option<String>,
    max_payload_bytes: Option<usize>,
    max_inbox: Option<usize>,
    max_events_per_sec: Option<u32>,
    max_connections_per_ip: Option<usize>,
    max_requests_per_sec: Option<u32>,
    max_body_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    cors: Option<bool>,
    dedupe_window_secs: Option<u64>,
}

impl FileConfig {
    /// This file's settings, with `lower`'s where this one has none.
    fn over(self, lower: FileConfig) -> FileConfig {
        FileConfig {
            compat_from: match self.compat {
                Some(_) => self.compat_from,
                None => lower.compat_from,
            },
            routes_from: match self.http_routes {
                Some(_) => self.routes_from,
                None => lower.routes_from,
            },
            compat: self.compat.or(lower.compat),
            http_routes: self.http_routes.or(lower.http_routes),
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            store_cache_mb: self.store_cache_mb.or(lower.store_cache_mb),
            memory: self.memory.or(lower.memory),
            preset: self.preset.or(lower.preset),
            api_key: self.api_key.or(lower.api_key),
            public_stats: self.public_stats.or(lower.public_stats),
            token_secret: self.token_secret.or(lower.token_secret),
            max_payload_bytes: self.max_payload_bytes.or(lower.max_payload_bytes),
            max_inbox: self.max_inbox.or(lower.max_inbox),
            max_events_per_sec: self.max_events_per_sec.or(lower.max_events_per_sec),
            max_connections_per_ip: self.max_connections_per_ip.or(lower.max_connections_per_ip),
            max_requests_per_sec: self.max_requests_per_sec.or(lower.max_requests_per_sec),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            request_timeout_ms: self.request_timeout_ms.or(lower.request_timeout_ms),
            cors: self.cors.or(lower.cors),
            dedupe_window_secs: self.dedupe_window_secs.or(lower.dedupe_window_secs),
        }
    }
}

/// API keys (flags, a key file, the config file) and the token secret.
fn security(cli: &Cli, file: &FileConfig) -> anyhow::Result<Security> {
    let mut keys = cli.api_key.clone();
    if let Some(path) = &cli.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the API key file {}", path.display()))?;
        keys.extend(text.lines().map(str::to_owned));
    }
    if keys.is_empty() {
        keys.extend(file.api_key.clone().unwrap_or_default());
    }
    let tokens = match cli.token_secret.as_ref().or(file.token_secret.as_ref()) {
        Some(secret) => Some(Tokens::new(secret).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let security = Security {
        api_keys: ApiKeys::new(keys),
        tokens,
        public_stats: cli.public_stats.or(file.public_stats).unwrap_or(false),
    };
    security.validate().map_err(anyhow::Error::msg)?;
    Ok(security)
}

/// Reads a preset: a built-in name or a file.
fn read_preset(preset: &str) -> anyhow::Result<FileConfig> {
    let builtin = compat::BUILTIN_PRESETS
        .iter()
        .find(|(name, _, _)| *name == preset);
    let file: FileConfig = match builtin {
        Some((_, file, text)) => {
            let name = format!("built-in preset {preset} ({file})");
            parse_file(text, &name)?
        }
        None if Path::new(preset).is_file() => read_file(Path::new(preset))?,
        None => bail!(
            "unknown preset {preset:?}: use one of {:?} or the path of a preset file",
            compat::builtin_names()
        ),
    };
    if file.preset.is_some() {
        bail!("preset {preset:?} names another preset; presets do not nest");
    }
    Ok(file)
}

impl Config {
    /// Resolves flags and environment (already in `cli`) over the optional file, the optional
    /// preset, and the defaults.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let preset = cli.preset.clone().or_else(|| file.preset.clone());
        let file = match preset {
            Some(preset) => file.over(read_preset(&preset)?),
            None => file,
        };
        let security = security(&cli, &file)?;
        let defaults = Config::default();
        let listen = if cli.listen.is_empty() {
            file.listen.unwrap_or(defaults.listen)
        } else {
            cli.listen
        };
        if listen.is_empty() {
            bail!("no address to listen on");
        }
        let storage = if cli.memory.or(file.memory).unwrap_or(false) {
            Storage::Memory
        } else {
            Storage::Embedded(
                cli.data_dir
                    .or(file.data_dir)
                    .unwrap_or_else(|| PathBuf::from("data")),
            )
        };
        let mut broker = defaults.broker;
        if let Some(max) = cli.max_payload_bytes.or(file.max_payload_bytes) {
            broker.max_payload_bytes = max;
        }
        if let Some(max) = cli.max_inbox.or(file.max_inbox) {
            broker.max_inbox = max;
        }
        if let Some(secs) = file.dedupe_window_secs {
            broker.dedupe_window = Duration::from_secs(secs);
        }
        let dialect = match file.compat {
            Some(dialect) => {
                let from = file.compat_from.as_deref().unwrap_or("the configuration");
                dialect
                    .validate()
                    .map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
                Some(Arc::new(dialect))
            }
            None => None,
        };
        let http_routes = file.http_routes.unwrap_or_default();
        let from = file.routes_from.as_deref().unwrap_or("the configuration");
        check_lab_routes(&http_routes).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
        Ok(Config {
            max_connections_per_ip: cli.max_connections_per_ip.or(file.max_connections_per_ip),
            max_requests_per_sec: cli.max_requests_per_sec.or(file.max_requests_per_sec),
            max_events_per_sec: cli
                .max_events_per_sec
                .or(file.max_events_per_sec)
                .unwrap_or(defaults.max_events_per_sec)
                .max(1),
            security: Arc::new(security),
            dashboard_dir: cli.dashboard_dir,
            dialect,
            http_routes,
            listen,
            storage,
            store_cache_bytes: cli
                .store_cache_mb
                .or(file.store_cache_mb)
                .map_or(defaults.store_cache_bytes, mebibytes),
            broker,
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(defaults.max_body_bytes),
            request_timeout: cli
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .map_or(defaults.request_timeout, |ms| {
                    Duration::from_millis(ms.max(1))
                }),
            cors_permissive: cli.cors.or(file.cors).unwrap_or(false),
        })
    }
}

/// `mb` MiB in bytes (at most `usize::MAX`, whatever a config file says).
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

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(&text, &path.display().to_string())
}

/// Parses a config or preset file's text; `name` names it in errors.
fn parse_file(text: &str, name: &str) -> anyhow::Result<FileConfig> {
    let mut file: FileConfig =
        toml::from_str(text).with_context(|| format!("invalid config file {name}"))?;
    if file.compat.is_some() {
        file.compat_from = Some(name.to_owned());
    }
    if file.http_routes.is_some() {
        file.routes_from = Some(name.to_owned());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_give_the_documented_defaults() {
        let config = Config::from_cli(Cli::default()).unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:3000".parse().unwrap()]);
        assert_eq!(config.storage, Storage::Embedded(PathBuf::from("data")));
        assert_eq!(config.broker.max_payload_bytes, 1024 * 1024);
        assert_eq!(config.store_cache_bytes, 64 * 1024 * 1024);
        assert_eq!(config.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn the_cache_and_the_request_timeout_come_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queuehub.toml");
        std::fs::write(&path, "store_cache_mb = 8\nrequest_timeout_ms = 250\n").unwrap();
        let from_file = Cli::try_parse_from(["queuehub", "--config", path.to_str().unwrap()]);
        let config = Config::from_cli(from_file.unwrap()).unwrap();
        assert_eq!(config.store_cache_bytes, 8 * 1024 * 1024);
        assert_eq!(config.request_timeout, Duration::from_millis(250));
        let flags = [
            "queuehub",
            "--store-cache-mb",
            "2",
            "--request-timeout-ms",
            "100",
        ];
        let config = Config::from_cli(Cli::try_parse_from(flags).unwrap()).unwrap();
        assert_eq!(config.store_cache_bytes, 2 * 1024 * 1024);
        assert_eq!(config.request_timeout, Duration::from_millis(100));
        assert!(Cli::try_parse_from(["queuehub", "--request-timeout-ms", "0"]).is_err());
    }

    #[test]
    fn listen_is_repeatable() {
        let cli = Cli::try_parse_from([
            "queuehub",
            "--listen",
            "127.0.0.1:3000",
            "--listen",
            "127.0.0.1:3001",
        ])
        .unwrap();
        let config = Config::from_cli(cli).unwrap();
        assert_eq!(config.listen.len(), 2);
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queuehub.toml");
        std::fs::write(
            &path,
            "listen = [\"127.0.0.1:4000\"]\nmemory = true\nmax_payload_bytes = 10\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "queuehub",
            "--config",
            path.to_str().unwrap(),
            "--max-payload-bytes",
            "20",
            "--max-inbox",
            "7",
        ])
        .unwrap();
        let config = Config::from_cli(cli).unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:4000".parse().unwrap()]);
        assert_eq!(config.storage, Storage::Memory);
        assert_eq!(config.broker.max_payload_bytes, 20);
        assert_eq!(config.broker.max_inbox, 7);
    }

    #[test]
    fn the_caps_preset_serves_the_labs_ports_with_its_dialect() {
        let cli = Cli::try_parse_from(["queuehub", "--preset", "caps"]).unwrap();
        let config = Config::from_cli(cli).unwrap();
        assert_eq!(config.listen.len(), 3);
        assert!(config.cors_permissive);
        assert_eq!(config.http_routes.len(), 2);
        let dialect = config.dialect.unwrap();
        assert_eq!(dialect.namespaces, vec!["/", "/caps"]);
    }

    #[test]
    fn flags_beat_the_preset() {
        let cli = Cli::try_parse_from(["queuehub", "--preset", "caps", "--listen", "127.0.0.1:0"])
            .unwrap();
        let config = Config::from_cli(cli).unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:0".parse().unwrap()]);
        assert!(config.dialect.is_some());
    }

    #[test]
    fn every_built_in_preset_loads_and_validates() {
        for name in compat::builtin_names() {
            let cli = Cli::try_parse_from(["queuehub", "--preset", name]).unwrap();
            let config = Config::from_cli(cli).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(config.dialect.is_some(), "{name}");
        }
        assert!(compat::builtin_names().len() >= 4);
    }

    /// The error `Config::from_cli` gives for a preset file holding `text`, and the file.
    fn preset_error(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.toml");
        std::fs::write(&path, text).unwrap();
        let cli = Cli::try_parse_from(["queuehub", "--preset", path.to_str().unwrap()]).unwrap();
        let err = Config::from_cli(cli).expect_err("refused");
        (format!("{err:#}"), path.display().to_string())
    }

    #[test]
    fn a_refused_preset_names_the_file_the_key_and_the_problem() {
        let (err, file) = preset_error(
            "[compat]\nnamespaces = [\"/lab\"]\n[compat.event_aliases]\njoin = \"subscribe\"\n\
             [[compat.app_events]]\nevent = \"join\"\nqueue = \"q\"\n",
        );
        assert!(err.starts_with(&file), "{err}");
        assert!(err.contains("compat.app_events[0].event"), "{err}");
        assert!(err.contains("'join' is already an alias"), "{err}");
        let (err, file) = preset_error("[compat]\nnamespaces = [\"/dashboard\"]\n");
        assert!(
            err.starts_with(&file) && err.contains("compat.namespaces[0]"),
            "{err}"
        );
    }

    #[test]
    fn a_route_declared_twice_or_over_queuehubs_own_is_refused() {
        let route = "[[http_routes]]\npath = \"/drop\"\nqueue = \"q\"\nevent = \"e\"\n";
        let (err, file) = preset_error(&format!("{route}{route}"));
        assert!(err.starts_with(&file), "{err}");
        assert!(
            err.contains("http_routes[1].path") && err.contains("twice"),
            "{err}"
        );
        let (err, _) = preset_error(&route.replace("/drop", "/v1/x"));
        assert!(err.contains("http_routes[0].path"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_a_preset_is_refused_with_the_file() {
        let (err, file) = preset_error("[compat]\nnamespace = [\"/\"]\n");
        assert!(err.contains(&file) && err.contains("namespace"), "{err}");
    }

    #[test]
    fn an_unknown_preset_is_refused() {
        let cli = Cli::try_parse_from(["queuehub", "--preset", "no-such-lab"]).unwrap();
        assert!(Config::from_cli(cli).is_err());
    }

    #[test]
    fn api_keys_and_a_token_secret_turn_on_secured_mode() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "k2\n\nk3\n").unwrap();
        let cli = Cli::try_parse_from([
            "queuehub",
            "--api-key",
            "k1",
            "--api-key-file",
            keys.to_str().unwrap(),
            "--token-secret",
            "sixteen characters!",
        ])
        .unwrap();
        let config = Config::from_cli(cli).unwrap();
        for key in ["k1", "k2", "k3"] {
            assert!(config.security.api_keys.accepts(key), "{key}");
        }
        assert!(config.security.tokens.is_some());
        assert!(!Config::from_cli(Cli::default()).unwrap().security.secured());
    }

    #[test]
    fn a_short_token_secret_is_refused() {
        let cli = Cli::try_parse_from(["queuehub", "--token-secret", "short", "--api-key", "k"]);
        let err = Config::from_cli(cli.unwrap()).unwrap_err();
        assert!(err.to_string().contains("16 characters"), "{err}");
    }

    #[test]
    fn a_token_secret_without_an_api_key_is_refused_naming_the_missing_flag() {
        let secret = "sixteen characters!";
        let cli = Cli::try_parse_from(["queuehub", "--token-secret", secret]).unwrap();
        let err = Config::from_cli(cli).unwrap_err().to_string();
        assert!(
            err.contains("--api-key") && err.contains("QUEUEHUB_API_KEY"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queuehub.toml");
        std::fs::write(&path, format!("token_secret = \"{secret}\"\n")).unwrap();
        let from_file = Cli::try_parse_from(["queuehub", "--config", path.to_str().unwrap()]);
        assert!(
            Config::from_cli(from_file.unwrap()).is_err(),
            "from a file too"
        );
        let with_key =
            Cli::try_parse_from(["queuehub", "--token-secret", secret, "--api-key", "k"]);
        assert!(Config::from_cli(with_key.unwrap()).is_ok());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = []\n").unwrap();
        let cli = Cli::try_parse_from(["queuehub", "--config", path.to_str().unwrap()]).unwrap();
        assert!(Config::from_cli(cli).is_err());
    }
}
