//! `queuehub --print-config`: the effective settings as a TOML file, every key with its help
//! as a comment, to start a `--config` file from. Fed back with `--config`, it gives the same
//! configuration, with one exception on purpose: secrets (`api_key`, `token_secret`, `redis`,
//! `redis_cluster`) are never printed, only said to be set, so that the output can be pasted
//! into a ticket or a chat; give them again through their variable, flag or `--api-key-file`.

use std::fmt::Write as _;

use super::layers::{Loaded, flag, variable};
use super::{Cli, SECRET_KEYS, Settings};

/// The effective configuration of `cli` (and the process's `QUEUEHUB_*` variables) as TOML,
/// after checking that it is one queuehub would start with.
pub fn print_config(cli: &Cli) -> anyhow::Result<String> {
    let loaded = Loaded::from_cli(cli, |name| std::env::var(name).ok())?;
    loaded.to_toml()
}

impl Loaded {
    /// These settings as a TOML file (checked first: an invalid one is an error, not a file).
    pub fn to_toml(self) -> anyhow::Result<String> {
        let text = render(&self)?;
        self.into_config()?;
        Ok(text)
    }
}

fn render(loaded: &Loaded) -> anyhow::Result<String> {
    let values = toml::Table::try_from(&loaded.settings)?;
    let mut out = String::from(
        "# queuehub's effective configuration, printed by `queuehub --print-config`.\n\
         # Use it as `queuehub --config FILE`; every key is optional (see README.md).\n\n",
    );
    for (key, help) in Settings::keys() {
        comment(&mut out, &help);
        let value = values.get(&key).filter(|value| !is_empty(value));
        match value {
            Some(_) if SECRET_KEYS.contains(&key.as_str()) => writeln!(
                out,
                "# {key} = (set, not printed: a secret; give it as {} or {})",
                variable(&key),
                flag(&key)
            )?,
            Some(value) => writeln!(out, "{key} = {value}")?,
            None => writeln!(out, "# {key} = (not set)")?,
        }
        out.push('\n');
    }
    let mut tables = toml::Table::new();
    let lab = &loaded.lab;
    let compat = lab
        .compat
        .as_ref()
        .map(|t| ("compat", &t.raw, t.from_preset));
    let routes = lab
        .http_routes
        .as_ref()
        .map(|t| ("http_routes", &t.raw, t.from_preset));
    for (key, raw, from_preset) in compat.into_iter().chain(routes) {
        if from_preset {
            writeln!(out, "# {key}: from the preset")?;
        } else {
            tables.insert(key.to_owned(), raw.clone());
        }
    }
    if !tables.is_empty() {
        out.push_str(&toml::to_string(&tables)?);
    }
    Ok(out)
}

/// `text` as `#` comment lines of at most about 95 characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + word.len() > 95 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// An empty list: printed as `(not set)` like an absent value.
fn is_empty(value: &toml::Value) -> bool {
    value.as_array().is_some_and(Vec::is_empty)
}
