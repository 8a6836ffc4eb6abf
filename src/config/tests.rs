//! The configuration's layers, presets, print-out and documentation.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::layers::{self, Loaded};
use super::*;
use crate::compat;

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
fn the_beanstalk_door_is_closed_by_default_and_opens_by_flag_variable_or_file() {
    assert!(Config::default().beanstalk_listen.is_empty());
    let cli = Cli::try_parse_from([
        "queuehub",
        "--beanstalk-listen",
        "127.0.0.1:11300",
        "--beanstalk-listen",
        "127.0.0.1:11301",
    ])
    .unwrap();
    assert_eq!(Config::from_cli(cli).unwrap().beanstalk_listen.len(), 2);
    let env = |name: &str| {
        (name == "QUEUEHUB_BEANSTALK_LISTEN").then(|| "127.0.0.1:1,127.0.0.1:2".to_owned())
    };
    let loaded = Loaded::from_cli(&Cli::default(), env).unwrap();
    assert_eq!(loaded.into_config().unwrap().beanstalk_listen.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "q.toml", "beanstalk_listen = [\"127.0.0.1:11300\"]\n");
    let cli = Cli::try_parse_from(["queuehub", "--config", file.as_str()]).unwrap();
    let config = Config::from_cli(cli).unwrap();
    assert_eq!(
        config.beanstalk_listen,
        vec!["127.0.0.1:11300".parse().unwrap()]
    );
    let printed = Loaded::from_cli(&Cli::default(), |_| None)
        .unwrap()
        .to_toml()
        .unwrap();
    assert!(
        printed.contains("# beanstalk_listen = (not set)"),
        "{printed}"
    );
}

#[test]
fn a_beanstalk_address_is_host_and_port_or_a_unix_socket_which_redis_nodes_refuse() {
    let parse = |text: &str| text.parse::<DoorAddress>();
    assert_eq!(
        parse("127.0.0.1:11300"),
        Ok(DoorAddress::Tcp("127.0.0.1:11300".parse().unwrap()))
    );
    assert_eq!(
        parse("unix:/run/beanstalkd.sock"),
        Ok(DoorAddress::Unix("/run/beanstalkd.sock".into()))
    );
    assert!(parse("unix:").is_err());
    assert!(
        parse("localhost:11300").is_err(),
        "a host name, not an address"
    );
    for text in ["127.0.0.1:11300", "[::1]:11300", "unix:/tmp/b.sock"] {
        assert_eq!(
            parse(text).unwrap().to_string(),
            text,
            "written back as read"
        );
    }
    // Every layer reads it, the file's TOML array included.
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "q.toml",
        "beanstalk_listen = [\"unix:/tmp/b.sock\", \"127.0.0.1:1\"]\n",
    );
    let cli = Cli::try_parse_from(["queuehub", "--config", file.as_str()]).unwrap();
    let config = Config::from_cli(cli).unwrap();
    assert_eq!(
        config.beanstalk_listen[0],
        DoorAddress::Unix("/tmp/b.sock".into())
    );
    // With Redis a standby relays its clients to the active node over TCP: no Unix socket.
    let cli = Cli::try_parse_from([
        "queuehub",
        "--redis",
        "redis://127.0.0.1:6379",
        "--beanstalk-listen",
        "unix:/tmp/b.sock",
    ])
    .unwrap();
    let refused = Config::from_cli(cli).unwrap_err().to_string();
    assert!(
        refused.contains("beanstalk_listen: unix:/tmp/b.sock"),
        "{refused}"
    );
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
    let cli =
        Cli::try_parse_from(["queuehub", "--preset", "caps", "--listen", "127.0.0.1:0"]).unwrap();
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
    let with_key = Cli::try_parse_from(["queuehub", "--token-secret", secret, "--api-key", "k"]);
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

/// The configuration `args` and the variables `env` give (no other variable is read).
fn load(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Loaded> {
    let cli = Cli::try_parse_from(std::iter::once("queuehub").chain(args.iter().copied()))?;
    Loaded::from_cli(&cli, |name| {
        env.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value.to_string())
    })
}

/// `text` written to `name` in `dir`; returns the path as text.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn each_layer_beats_the_one_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let preset = write(&dir, "lab.toml", "max_inbox = 2\n");
    let file = write(&dir, "queuehub.toml", "max_inbox = 3\n");
    let max_inbox = |args: &[&str], env: &[(&str, &str)]| {
        let config = load(args, env).unwrap().into_config().unwrap();
        config.broker.max_inbox
    };
    let variable = [("QUEUEHUB_MAX_INBOX", "4")];
    assert_eq!(max_inbox(&[], &[]), 1_000_000, "the default");
    assert_eq!(
        max_inbox(&["--preset", &preset], &[]),
        2,
        "preset > default"
    );
    let with_file = ["--preset", &preset, "--config", &file];
    assert_eq!(max_inbox(&with_file, &[]), 3, "file > preset");
    assert_eq!(max_inbox(&with_file, &variable), 4, "variable > file");
    let with_flag = ["--preset", &preset, "--config", &file, "--max-inbox", "5"];
    assert_eq!(max_inbox(&with_flag, &variable), 5, "flag > variable");
    // The preset and the file may also be named by a variable, and the preset by the file.
    let named = [("QUEUEHUB_PRESET", preset.as_str())];
    assert_eq!(max_inbox(&[], &named), 2, "QUEUEHUB_PRESET");
    let names_preset = write(&dir, "names.toml", &format!("preset = {preset:?}\n"));
    let config = [("QUEUEHUB_CONFIG", names_preset.as_str())];
    assert_eq!(
        max_inbox(&[], &config),
        2,
        "QUEUEHUB_CONFIG naming a preset"
    );
}

/// Every setting at a value other than its default, as a file would write it.
const EVERY_SETTING: &str = r#"
listen = ["127.0.0.1:4001", "127.0.0.1:4002"]
beanstalk_listen = ["127.0.0.1:11300", "127.0.0.1:11301"]
beanstalk_max_job_bytes = 1000
data_dir = "elsewhere"
store_cache_mb = 8
memory = true
redis = "redis://127.0.0.1:6390/2"
redis_cluster = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
redis_lease_ms = 1900
advertise_host = "node-b"
preset = "caps"
api_key = ["k1", "k2"]
api_key_file = "keys.txt"
public_stats = true
token_secret = "sixteen characters!"
max_payload_bytes = 11
max_events_per_sec = 12
socket_buffer = 512
ping_interval_ms = 19
ping_timeout_ms = 21
max_connections_per_ip = 13
max_requests_per_sec = 18
max_inbox = 14
dedupe_window_secs = 15
max_body_bytes = 16
request_timeout_ms = 17
dashboard_dir = "page"
cors = true
"#;

/// A value of [`EVERY_SETTING`] as a variable or a flag writes it.
fn as_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[test]
fn every_setting_is_a_file_key_a_variable_and_a_flag() {
    let sample: toml::Table = toml::from_str(EVERY_SETTING).unwrap();
    let keys: Vec<String> = Settings::keys().into_iter().map(|(key, _)| key).collect();
    let sampled: Vec<String> = sample.keys().cloned().collect();
    let mut known = keys.clone();
    known.sort();
    assert_eq!(sampled, known, "EVERY_SETTING sets every setting once");
    let defaults = toml::Table::try_from(&Loaded::defaults().settings).unwrap();
    for (key, value) in &sample {
        assert_ne!(
            defaults.get(key),
            Some(value),
            "{key} differs from its default"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "every.toml", EVERY_SETTING);
    let from_file = load(&["--config", &file], &[]).unwrap().settings;
    let variables: Vec<(String, String)> = sample
        .iter()
        .map(|(key, value)| (layers::variable(key), as_text(value)))
        .collect();
    let env: Vec<(&str, &str)> = variables
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let from_env = load(&[], &env).unwrap().settings;
    let flags: Vec<String> = sample
        .iter()
        .map(|(key, value)| format!("{}={}", layers::flag(key), as_text(value)))
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let from_flags = load(&flags, &[]).unwrap().settings;
    assert_eq!(toml::Table::try_from(&from_file).unwrap(), sample);
    assert_eq!(from_env, from_file, "variables give what the file gives");
    assert_eq!(from_flags, from_file, "flags give what the file gives");
}

#[test]
fn print_config_does_not_print_redis_urls_which_may_hold_a_password() {
    let url = "redis://queuehub:a-redis-password@127.0.0.1:6390/2";
    for (args, key) in [
        (["--redis", url], "redis"),
        (["--redis-cluster", url], "redis_cluster"),
    ] {
        let printed = load(&args, &[]).unwrap().to_toml().unwrap();
        assert!(!printed.contains("a-redis-password"), "{printed}");
        assert!(!printed.contains("127.0.0.1:6390"), "{printed}");
        assert!(
            printed.contains(&format!("# {key} = (set, not printed")),
            "{printed}"
        );
    }
}

#[test]
fn print_config_gives_a_file_that_gives_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let route = "[[http_routes]]\npath = \"/drop\"\nqueue = \"q\"\nevent = \"e\"\n";
    let file = write(&dir, "mine.toml", &format!("max_inbox = 3\n{route}"));
    let secrets = [
        ("QUEUEHUB_API_KEY", "key-one,key-two"),
        ("QUEUEHUB_TOKEN_SECRET", "a token secret of some length"),
    ];
    let args = [
        "--preset",
        "caps",
        "--config",
        &file,
        "--memory",
        "--listen=127.0.0.1:0",
    ];
    let printed = load(&args, &secrets).unwrap().to_toml().unwrap();
    for (_, secret) in secrets {
        for part in secret.split(',') {
            assert!(!printed.contains(part), "a secret is printed:\n{printed}");
        }
    }
    assert!(
        printed.contains("# api_key = (set, not printed"),
        "{printed}"
    );
    assert!(
        printed.contains("# token_secret = (set, not printed"),
        "{printed}"
    );
    let printed_file = write(&dir, "printed.toml", &printed);
    // The secrets are given again (the printed file does not hold them).
    let again = load(&["--config", &printed_file], &secrets).unwrap();
    let original = load(&args, &secrets).unwrap();
    assert_eq!(again.settings, original.settings);
    let (before, after) = (
        original.into_config().unwrap(),
        again.into_config().unwrap(),
    );
    assert_eq!(after.listen, before.listen);
    assert_eq!(after.storage, Storage::Memory);
    assert_eq!(after.broker.max_inbox, 3);
    assert_eq!(
        after.http_routes.len(),
        1,
        "the file's routes, not the preset's"
    );
    assert_eq!(after.http_routes[0].path, before.http_routes[0].path);
    let namespaces = |c: &Config| c.dialect.as_ref().unwrap().namespaces.clone();
    assert_eq!(
        namespaces(&after),
        namespaces(&before),
        "the preset's dialect"
    );
    assert!(after.security.api_keys.accepts("key-two"));
    let reprinted = load(&["--config", &printed_file], &secrets).unwrap();
    assert_eq!(
        reprinted.to_toml().unwrap(),
        printed,
        "printing is a fixed point"
    );
}

#[test]
fn print_config_prints_every_key() {
    let printed = Loaded::defaults().to_toml().unwrap();
    for (key, _) in Settings::keys() {
        let set = format!("\n{key} = ");
        let unset = format!("\n# {key} = (not set)");
        assert!(
            printed.contains(&set) || printed.contains(&unset),
            "{key} missing from:\n{printed}"
        );
    }
}

#[test]
fn a_bad_value_names_its_source_and_key() {
    let err = load(&[], &[("QUEUEHUB_MAX_INBOX", "many")]).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.starts_with("QUEUEHUB_MAX_INBOX: max_inbox: "), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "q.toml", "listen = [\"nowhere\"]\n");
    let err = format!("{:#}", load(&["--config", &file], &[]).unwrap_err());
    assert!(err.starts_with(&format!("{file}: listen: ")), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    let file = write(&dir, "t.toml", "request_timeout_ms = 0\n");
    let err = load(&["--config", &file], &[])
        .unwrap()
        .into_config()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{file}: request_timeout_ms: ")),
        "{err}"
    );
    let err = load(&[], &[("QUEUEHUB_STORE_CACHE_MB", "0")])
        .unwrap()
        .into_config();
    let err = err.unwrap_err().to_string();
    assert!(
        err.starts_with("QUEUEHUB_STORE_CACHE_MB: store_cache_mb: "),
        "{err}"
    );
}

#[test]
fn a_file_may_not_name_another_config_file_nor_a_preset_another_preset() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "q.toml", "config = \"other.toml\"\n");
    let err = format!("{:#}", load(&["--config", &file], &[]).unwrap_err());
    assert!(
        err.starts_with(&file) && err.contains("unknown key \"config\""),
        "{err}"
    );
    let preset = write(&dir, "lab.toml", "preset = \"caps\"\n");
    let err = format!("{:#}", load(&["--preset", &preset], &[]).unwrap_err());
    assert!(err.contains("presets do not nest"), "{err}");
}

#[test]
fn unknown_variables_are_ignored_and_list_variables_split_at_commas() {
    let env = [
        ("QUEUEHUB_URL", "http://elsewhere"),
        ("QUEUEHUB_LISTEN", "127.0.0.1:4001, 127.0.0.1:4002"),
        ("QUEUEHUB_MEMORY", "yes"),
        // Variables are text, never TOML: a secret that looks like a list or a number stays.
        ("QUEUEHUB_TOKEN_SECRET", "[not, a list] {nor=a table}"),
        ("QUEUEHUB_API_KEY", "1234567890"),
    ];
    let settings = load(&[], &env).unwrap().settings;
    assert_eq!(settings.listen.len(), 2);
    assert!(settings.memory);
    let secret = settings.token_secret.as_deref();
    assert_eq!(secret, Some("[not, a list] {nor=a table}"));
    assert_eq!(settings.api_key, ["1234567890"]);
}

/// The README's settings tables: (flag, file key, variable, default) of each row.
fn documented_settings() -> Vec<(String, String, String, String)> {
    let readme = include_str!("../../README.md");
    let code = |cell: &str| cell.split('`').nth(1).unwrap_or_default().to_owned();
    readme
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let flag = code(cells[0])
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            // Tables with a default column, or a default in the description ("default 2048").
            let default = match cells.get(3) {
                Some(cell) if cells.len() > 4 => cell.trim_matches('`').to_owned(),
                Some(description) => default_in(description).unwrap_or_default(),
                None => String::new(),
            };
            (flag, code(cells[1]), code(cells[2]), default)
        })
        .collect()
}

/// The number after "default " in a setting's description, its thousands separated by spaces
/// as the README writes them ("default 10 000" is 10000).
fn default_in(description: &str) -> Option<String> {
    let rest = description.split("default ").nth(1)?;
    let mut number = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
        } else if !(c == ' '
            && !number.is_empty()
            && chars.peek().is_some_and(char::is_ascii_digit))
        {
            break;
        }
    }
    (!number.is_empty()).then_some(number)
}

#[test]
fn a_default_written_in_a_description_is_read_with_its_spaces() {
    assert_eq!(
        default_in("per socket (default 10 000), answered").as_deref(),
        Some("10000")
    );
    assert_eq!(
        default_in("(default 2048, 64 to 65 536)").as_deref(),
        Some("2048")
    );
    assert_eq!(default_in("the default is not a number"), None);
    assert_eq!(default_in("no default here"), None);
}

#[test]
fn the_readme_documents_exactly_the_settings_of_the_code() {
    let documented = documented_settings();
    let defaults = toml::Table::try_from(&Loaded::defaults().settings).unwrap();
    let mut keys: Vec<String> = documented
        .iter()
        .filter(|(flag, ..)| flag != "--config" && flag != "--print-config")
        .map(|(flag, key, variable, default)| {
            assert_eq!(*flag, layers::flag(key), "README row of {key}");
            assert_eq!(*variable, layers::variable(key), "README row of {key}");
            // A default written as a TOML value (a number, a boolean, a list) is the code's.
            if let Ok(value) = default.parse::<toml::Value>() {
                assert_eq!(Some(&value), defaults.get(key), "README's default of {key}");
            }
            key.clone()
        })
        .collect();
    keys.sort();
    let mut known: Vec<String> = Settings::keys().into_iter().map(|(key, _)| key).collect();
    known.sort();
    assert_eq!(keys, known, "README's tables list every setting once");
    let other: Vec<&str> = documented.iter().map(|(flag, ..)| flag.as_str()).collect();
    assert!(other.contains(&"--config") && other.contains(&"--print-config"));
}

#[test]
fn a_redis_url_selects_the_redis_store() {
    let url = "redis://127.0.0.1:6390/2";
    let from_flag = load(&["--redis", url], &[]).unwrap().into_config().unwrap();
    assert_eq!(from_flag.storage, Storage::Redis(url.into()));
    let from_env = load(&[], &[("QUEUEHUB_REDIS", url)]).unwrap();
    assert_eq!(
        from_env.into_config().unwrap().storage,
        Storage::Redis(url.into())
    );
}

#[test]
fn a_redis_url_is_refused_with_memory_or_when_it_is_not_one() {
    let url = "redis://127.0.0.1:6390";
    let both = load(&["--redis", url, "--memory"], &[])
        .unwrap()
        .into_config();
    let err = both.unwrap_err().to_string();
    assert!(err.contains("redis") && err.contains("memory"), "{err}");
    let wrong = load(&["--redis", "http://127.0.0.1:6390"], &[])
        .unwrap()
        .into_config();
    assert!(wrong.unwrap_err().to_string().contains("redis"));
}

#[test]
fn redis_cluster_seeds_select_the_cluster_store_and_exclude_the_other_stores() {
    let (a, b) = ("redis://127.0.0.1:7000", "redis://127.0.0.1:7001");
    let from_flags = load(&["--redis-cluster", a, "--redis-cluster", b], &[])
        .unwrap()
        .into_config()
        .unwrap();
    let both = Storage::RedisCluster(vec![a.into(), b.into()]);
    assert_eq!(from_flags.storage, both);
    let joined = format!("{a},{b}");
    let from_env = load(&[], &[("QUEUEHUB_REDIS_CLUSTER", joined.as_str())]).unwrap();
    assert_eq!(from_env.into_config().unwrap().storage, both);
    for other in [&["--redis", a][..], &["--memory"][..]] {
        let mut args = vec!["--redis-cluster", a];
        args.extend_from_slice(other);
        let err = load(&args, &[])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis_cluster"), "{err}");
    }
    let wrong = load(&["--redis-cluster", "http://127.0.0.1:7000"], &[])
        .unwrap()
        .into_config();
    assert!(wrong.unwrap_err().to_string().contains("redis_cluster"));
}
