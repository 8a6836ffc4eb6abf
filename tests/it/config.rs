//! The configuration as the binary reads it: `queuehub --print-config` shows which layer won,
//! its output is a config file that gives the same configuration, and a bad value stops
//! queuehub naming the file and the key.

use std::process::{Command, Output};

/// Runs the queuehub binary with `args` and only the `QUEUEHUB_*` variables of `env`.
fn queuehub(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_queuehub"));
    for (name, _) in std::env::vars() {
        if name.starts_with("QUEUEHUB_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command.output().expect("queuehub runs")
}

/// The configuration `queuehub --print-config` prints for `args` and `env`, as text.
fn printed(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = args.to_vec();
    all.push("--print-config");
    let output = queuehub(&all, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "--print-config failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn print_config_shows_each_layer_beating_the_ones_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let preset = dir.path().join("lab.toml");
    std::fs::write(&preset, "max_inbox = 2\nmax_body_bytes = 20\n").unwrap();
    let file = dir.path().join("queuehub.toml");
    let file_text = format!("preset = {preset:?}\nmax_inbox = 3\nrequest_timeout_ms = 30\n");
    std::fs::write(&file, file_text).unwrap();
    let env = [
        ("QUEUEHUB_MAX_INBOX", "4"),
        ("QUEUEHUB_STORE_CACHE_MB", "7"),
    ];
    let args = ["--config", file.to_str().unwrap(), "--max-inbox", "5"];
    let text = printed(&args, &env);
    let table: toml::Table = toml::from_str(&text).expect("the output is TOML");
    let value = |key: &str| table.get(key).and_then(toml::Value::as_integer);
    assert_eq!(value("max_inbox"), Some(5), "the flag beats all");
    assert_eq!(
        value("store_cache_mb"),
        Some(7),
        "a variable beats the default"
    );
    assert_eq!(
        value("request_timeout_ms"),
        Some(30),
        "the file beats the default"
    );
    assert_eq!(
        value("max_body_bytes"),
        Some(20),
        "the preset beats the default"
    );
    assert_eq!(value("max_payload_bytes"), Some(1_048_576), "the default");
    let without_flag = printed(&args[..2], &env);
    assert!(without_flag.contains("\nmax_inbox = 4\n"), "{without_flag}");
}

#[test]
fn the_printed_configuration_fed_back_with_config_prints_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let secret = [("QUEUEHUB_TOKEN_SECRET", "not to be printed, ever")];
    let args = [
        "--preset",
        "caps",
        "--memory",
        "--api-key",
        "key-1",
        "--max-inbox",
        "9",
    ];
    let first = printed(&args, &secret);
    assert!(
        !first.contains("not to be printed") && !first.contains("key-1"),
        "{first}"
    );
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, &first).unwrap();
    // The secrets are given again: the printed file says they are set, and not what they are.
    let again = ["--config", path.to_str().unwrap(), "--api-key", "key-1"];
    assert_eq!(printed(&again, &secret), first);
}

#[test]
fn a_bad_value_stops_queuehub_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queuehub.toml");
    std::fs::write(&file, "max_inbox = \"lots\"\n").unwrap();
    let output = queuehub(&["--config", file.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}: max_inbox: ", file.display());
    assert!(stderr.contains(&expected), "{stderr}");
}
