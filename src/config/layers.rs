//! The layers of the configuration and how they stack: defaults, preset, `--config` file,
//! `QUEUEHUB_*` variables, flags. `figment` merges them (a later layer beats an earlier one,
//! key by key) and remembers where each value came from, so that an error can name the file,
//! variable or flag at fault.
//!
//! A file's (or preset's) lab tables, `[compat]` and `[[http_routes]]`, are not merged key by
//! key: each is taken whole from the highest file that has it, since half of one lab's dialect
//! mixed into another's would be neither.

use std::fmt::Display;
use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::{Cli, Settings, check_lab_routes};
use crate::compat::{self, Dialect, HttpRoute};

/// The effective settings and lab tables, with where each value came from.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub(super) lab: Lab,
    /// Every layer, merged: asked which layer gave a key.
    figment: Figment,
}

/// One layer: a name for errors (a file's path, `QUEUEHUB_MAX_INBOX`, `--max-inbox`) and the
/// settings it gives.
struct Layer {
    name: String,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// A `[compat]` table or the `[[http_routes]]` of the file that gave it.
#[derive(Debug, Clone)]
pub(super) struct Table<T> {
    pub value: T,
    /// The table as written, for `--print-config`.
    pub raw: toml::Value,
    /// The file it came from (its path, or the built-in preset's name).
    pub from: String,
    /// Whether it came from the preset (`--print-config` then leaves it to the preset).
    pub from_preset: bool,
}

impl<T> Table<T> {
    /// The table `value` of the file `from`, written `raw`, if the file has it.
    fn of(
        value: Option<T>,
        raw: Option<toml::Value>,
        from: &str,
        from_preset: bool,
    ) -> Option<Self> {
        Some(Table {
            value: value?,
            raw: raw?,
            from: from.to_owned(),
            from_preset,
        })
    }
}

/// A lab's tables: each from the highest file that has it.
#[derive(Debug, Clone, Default)]
pub(super) struct Lab {
    pub compat: Option<Table<Dialect>>,
    pub http_routes: Option<Table<Vec<HttpRoute>>>,
}

impl Lab {
    /// `self`'s tables, with `lower`'s where `self` has none.
    fn over(self, lower: Lab) -> Lab {
        Lab {
            compat: self.compat.or(lower.compat),
            http_routes: self.http_routes.or(lower.http_routes),
        }
    }

    /// The dialect, checked as a whole; a refusal names the file and the key.
    pub fn dialect(&self) -> anyhow::Result<Option<Arc<Dialect>>> {
        let Some(table) = &self.compat else {
            return Ok(None);
        };
        let from = &table.from;
        table.value.validate().map_err(|e| anyhow!("{from}: {e}"))?;
        Ok(Some(Arc::new(table.value.clone())))
    }

    /// The lab's HTTP routes, checked; a refusal names the file and the key.
    pub fn routes(&self) -> anyhow::Result<Vec<HttpRoute>> {
        let Some(table) = &self.http_routes else {
            return Ok(Vec::new());
        };
        let from = &table.from;
        check_lab_routes(&table.value).map_err(|e| anyhow!("{from}: {e}"))?;
        Ok(table.value.clone())
    }
}

/// A config or preset file, read: its settings and its lab tables.
struct File {
    layer: Layer,
    lab: Lab,
}

/// The lab tables of a file, parsed from its text (so that errors point at the line).
#[derive(Deserialize)]
struct LabTables {
    compat: Option<Dialect>,
    http_routes: Option<Vec<HttpRoute>>,
}

impl File {
    /// Reads the config file at `path`.
    fn read(path: &Path, from_preset: bool) -> anyhow::Result<File> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        File::parse(&text, &path.display().to_string(), from_preset)
    }

    /// Parses a config or preset file's text; `name` names it in errors. Every top-level key
    /// must be a setting or a lab table.
    fn parse(text: &str, name: &str, from_preset: bool) -> anyhow::Result<File> {
        let invalid = || format!("invalid config file {name}");
        let mut table: toml::Table = toml::from_str(text).with_context(invalid)?;
        let tables: LabTables = toml::from_str(text).with_context(invalid)?;
        let keys: Vec<String> = Settings::keys().into_iter().map(|(key, _)| key).collect();
        for key in table.keys() {
            if !keys.contains(key) && key != "compat" && key != "http_routes" {
                bail!(
                    "{name}: unknown key {key:?}; a config file takes the settings {keys:?} \
                     and the tables compat and http_routes"
                );
            }
        }
        let lab = Lab {
            compat: Table::of(tables.compat, table.remove("compat"), name, from_preset),
            http_routes: Table::of(
                tables.http_routes,
                table.remove("http_routes"),
                name,
                from_preset,
            ),
        };
        let values = dict(&table).with_context(invalid)?;
        Ok(File {
            layer: Layer {
                name: name.to_owned(),
                values,
            },
            lab,
        })
    }
}

/// `value`'s fields as a figment dictionary.
fn dict(value: &impl serde::Serialize) -> anyhow::Result<Dict> {
    match Value::serialize(value)? {
        Value::Dict(_, dict) => Ok(dict),
        _ => bail!("not a table of settings"),
    }
}

/// Reads a preset: a built-in name or a file. A preset may not name another preset.
fn read_preset(preset: &str) -> anyhow::Result<File> {
    let builtin = compat::BUILTIN_PRESETS
        .iter()
        .find(|(name, _, _)| *name == preset);
    let file = match builtin {
        Some((_, file, text)) => {
            let name = format!("built-in preset {preset} ({file})");
            File::parse(text, &name, true)?
        }
        None if Path::new(preset).is_file() => File::read(Path::new(preset), true)?,
        None => bail!(
            "unknown preset {preset:?}: use one of {:?} or the path of a preset file",
            compat::builtin_names()
        ),
    };
    if file.layer.values.contains_key("preset") {
        bail!("preset {preset:?} names another preset; presets do not nest");
    }
    Ok(file)
}

/// The `QUEUEHUB_*` variables `env` has, one layer each (so an error names the variable).
/// Values stay text; they are read as the setting's type when the layers are extracted.
fn variables(env: &impl Fn(&str) -> Option<String>) -> Vec<Layer> {
    Settings::keys()
        .into_iter()
        .filter_map(|(key, _)| {
            let name = variable(&key);
            let value = env(&name)?;
            let values = Dict::from([(key, Value::from(value))]);
            Some(Layer { name, values })
        })
        .collect()
}

/// The variable of a setting: `max_inbox` → `QUEUEHUB_MAX_INBOX`.
pub fn variable(key: &str) -> String {
    format!("QUEUEHUB_{}", key.to_uppercase())
}

/// The flag of a setting: `max_inbox` → `--max-inbox`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The settings typed on the command line, one layer each.
fn flags(cli: &Cli) -> anyhow::Result<Vec<Layer>> {
    let all = dict(&cli.flags.settings)?;
    Ok(all
        .into_iter()
        .filter(|(key, _)| cli.flags.given().contains(key))
        .map(|(key, value)| Layer {
            name: flag(&key),
            values: Dict::from([(key, value)]),
        })
        .collect())
}

impl Loaded {
    /// The defaults alone (`queuehub` with no flags, variables or files).
    pub fn defaults() -> Loaded {
        let defaults = Cli::default().flags.settings;
        Loaded {
            figment: Figment::new(),
            settings: defaults,
            lab: Lab::default(),
        }
    }

    /// Stacks the layers: defaults, the preset, the `--config` file (or `QUEUEHUB_CONFIG`),
    /// the variables `env` has, and the flags of `cli`.
    pub fn from_cli(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Loaded> {
        let config = cli
            .config
            .clone()
            .or_else(|| env("QUEUEHUB_CONFIG").map(Into::into));
        let file = config.map(|path| File::read(&path, false)).transpose()?;
        let mut above_preset = Figment::new();
        if let Some(file) = &file {
            above_preset = above_preset.merge(&file.layer);
        }
        for layer in variables(&env).into_iter().chain(flags(cli)?) {
            above_preset = above_preset.merge(layer);
        }
        // The preset is named by the layers above it (a file, a variable or a flag).
        let preset = match above_preset.find_value("preset") {
            Ok(_) => Some(
                above_preset
                    .extract_inner::<String>("preset")
                    .map_err(explain)?,
            ),
            Err(_) => None,
        };
        let preset = preset.as_deref().map(read_preset).transpose()?;
        let defaults = Layer {
            name: "the defaults".into(),
            values: dict(&Cli::default().flags.settings)?,
        };
        let mut figment = Figment::from(defaults);
        let mut lab = Lab::default();
        if let Some(preset) = preset {
            figment = figment.merge(preset.layer);
            lab = preset.lab;
        }
        let figment = figment.merge(above_preset);
        if let Some(file) = file {
            lab = file.lab.over(lab);
        }
        let settings = figment.extract_lossy::<Settings>().map_err(explain)?;
        Ok(Loaded {
            settings,
            lab,
            figment,
        })
    }

    /// An error about `key`, naming the layer that gave its value.
    pub fn refuse(&self, key: &str, problem: impl Display) -> anyhow::Error {
        let from = self
            .figment
            .find_metadata(key)
            .map_or("the defaults", |metadata| &metadata.name);
        anyhow!("{from}: {key}: {problem}")
    }
}

/// A figment error as `SOURCE: KEY: PROBLEM`, one line per problem.
fn explain(error: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let from = e.metadata.as_ref().map_or("the configuration", |m| &m.name);
            let key = e.path.join(".");
            format!("{from}: {key}: {}", e.kind)
        })
        .collect();
    anyhow!(lines.join("\n"))
}

/// A list setting: an array, or (from a variable) one text with commas between the items.
pub(super) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    struct Items<T>(PhantomData<T>);

    fn item<T: FromStr, E: de::Error>(text: &str) -> Result<T, E>
    where
        T::Err: Display,
    {
        text.trim()
            .parse()
            .map_err(|e| E::custom(format!("{text:?}: {e}")))
    }

    impl<'de, T: FromStr> de::Visitor<'de> for Items<T>
    where
        T::Err: Display,
    {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list, or items separated by commas")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<T>, E> {
            text.split(',')
                .filter(|part| !part.trim().is_empty())
                .map(item)
                .collect()
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                items.push(item(&text)?);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_any(Items(PhantomData))
}
