//! Checks a [`Dialect`] as a whole, once, at start: what serde cannot see in one key. Each
//! refusal names the key (`compat.app_events[1].event`) and the problem, so that a preset's
//! author can fix it without reading Rust.

use std::collections::BTreeMap;
use std::fmt;

use super::{Dialect, EnvelopeShape, NATIVE_EVENTS};
use crate::names::EventName;

/// Namespaces queuehub serves itself; a preset may not speak there.
pub const RESERVED_NAMESPACES: [&str; 1] = ["/dashboard"];

/// The fields that have aliases.
pub const ALIASED_FIELDS: [&str; 2] = ["clientId", "id"];

/// Why a preset was refused: the key at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

fn refuse(key: impl Into<String>, problem: impl Into<String>) -> Result<(), PresetError> {
    Err(PresetError {
        key: key.into(),
        problem: problem.into(),
    })
}

/// What an event name already means, and the key that gave it that meaning.
struct Claims(BTreeMap<String, (&'static str, String)>);

impl Claims {
    /// Claims `event` for a rule of `kind` declared at `key`; refuses a second claim.
    fn claim(&mut self, event: &str, kind: &'static str, key: String) -> Result<(), PresetError> {
        if NATIVE_EVENTS.contains(&event) {
            return refuse(
                key,
                format!(
                    "'{event}' is queuehub's own event; {kind} cannot replace it (name the lab's event, or alias it in compat.event_aliases)"
                ),
            );
        }
        if let Some((earlier, at)) = self.0.get(event) {
            let problem = if *earlier == kind {
                format!("'{event}' is declared twice (also at {at}); keep one rule")
            } else {
                format!("'{event}' is already {earlier} at {at}; one event has one meaning")
            };
            return refuse(key, problem);
        }
        self.0.insert(event.to_owned(), (kind, key));
        Ok(())
    }
}

impl Dialect {
    /// Checks the dialect as a whole; the first problem found is returned.
    pub fn validate(&self) -> Result<(), PresetError> {
        self.check_namespaces()?;
        self.check_envelope()?;
        let mut claims = Claims(BTreeMap::new());
        for (alias, target) in &self.event_aliases {
            let key = format!("compat.event_aliases.{alias}");
            // A client emits an alias: a reserved name would be socket.io's own event.
            if let Err(err) = EventName::parse(alias.as_str()) {
                return refuse(key, err.message().to_owned());
            }
            if !NATIVE_EVENTS.contains(&target.as_str()) {
                return refuse(
                    key,
                    format!("points at '{target}', which is not one of {NATIVE_EVENTS:?}"),
                );
            }
            claims.claim(alias, "an alias of a queuehub event", key)?;
        }
        for (i, app) in self.app_events.iter().enumerate() {
            let key = format!("compat.app_events[{i}].event");
            claims.claim(app.event.as_str(), "an app event", key)?;
        }
        for (i, ignored) in self.ignore.iter().enumerate() {
            let key = format!("compat.ignore[{i}]");
            if let Err(err) = EventName::parse(ignored.as_str()) {
                return refuse(key, err.message().to_owned());
            }
            claims.claim(ignored, "an ignored event", key)?;
        }
        self.check_relays(&claims)?;
        self.check_field_aliases()
    }

    fn check_namespaces(&self) -> Result<(), PresetError> {
        for (i, namespace) in self.namespaces.iter().enumerate() {
            let key = format!("compat.namespaces[{i}]");
            if !namespace.starts_with('/') {
                return refuse(key, format!("'{namespace}' must start with '/'"));
            }
            if RESERVED_NAMESPACES.contains(&namespace.as_str()) {
                return refuse(
                    key,
                    format!("'{namespace}' is reserved: queuehub serves its dashboard there"),
                );
            }
            if self.namespaces[..i].contains(namespace) {
                return refuse(key, format!("'{namespace}' is listed twice"));
            }
        }
        if self.namespaces.is_empty()
            && let Some(rule) = self.first_rule()
        {
            return refuse(
                "compat.namespaces",
                format!(
                    "is empty, so {rule} can never fire: list the namespaces that speak this dialect, e.g. namespaces = [\"/\"]"
                ),
            );
        }
        Ok(())
    }

    /// The first rule that needs a namespace to mean anything, as a key.
    fn first_rule(&self) -> Option<String> {
        let first = |key: &str, len: usize| (len > 0).then(|| format!("{key}[0]"));
        first("compat.app_events", self.app_events.len())
            .or_else(|| first("compat.relays", self.relays.len()))
            .or_else(|| first("compat.ignore", self.ignore.len()))
            .or_else(|| {
                self.event_aliases
                    .keys()
                    .next()
                    .map(|a| format!("compat.event_aliases.{a}"))
            })
            .or_else(|| {
                self.field_aliases
                    .keys()
                    .next()
                    .map(|f| format!("compat.field_aliases.{f}"))
            })
    }

    fn check_envelope(&self) -> Result<(), PresetError> {
        match self.envelope {
            Some(shape) if self.lab_envelopes && shape != EnvelopeShape::Lab => refuse(
                "compat.lab_envelopes",
                format!(
                    "lab_envelopes = true contradicts envelope = \"{}\"; keep envelope only",
                    shape.name()
                ),
            ),
            _ => Ok(()),
        }
    }

    fn check_relays(&self, claims: &Claims) -> Result<(), PresetError> {
        for (i, relay) in self.relays.iter().enumerate() {
            let key = format!("compat.relays[{i}].event");
            let event = relay.event.as_str();
            if let Some(earlier) = self.relays[..i].iter().position(|r| r.event == relay.event) {
                return refuse(
                    key,
                    format!(
                        "'{event}' is relayed twice (also compat.relays[{earlier}]); keep one rule"
                    ),
                );
            }
            if let Some((kind @ ("an app event" | "an ignored event"), at)) = claims.0.get(event) {
                return refuse(
                    key,
                    format!(
                        "'{event}' is {kind} at {at}; relaying it too would deliver it twice (or contradict it)"
                    ),
                );
            }
        }
        Ok(())
    }

    fn check_field_aliases(&self) -> Result<(), PresetError> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (field, aliases) in &self.field_aliases {
            let key = format!("compat.field_aliases.{field}");
            if !ALIASED_FIELDS.contains(&field.as_str()) {
                return refuse(
                    key,
                    format!("field aliases exist for {ALIASED_FIELDS:?}, not '{field}'"),
                );
            }
            for alias in aliases {
                if alias.is_empty() || alias == field {
                    return refuse(key, format!("'{alias}' is not another name for '{field}'"));
                }
                if ALIASED_FIELDS.contains(&alias.as_str()) {
                    return refuse(
                        key,
                        format!("'{alias}' is queuehub's own field; it cannot stand for '{field}'"),
                    );
                }
                if let Some(other) = seen.insert(alias, field) {
                    let problem = if other == field {
                        format!("'{alias}' is listed twice")
                    } else {
                        format!("'{alias}' stands for both '{other}' and '{field}'")
                    };
                    return refuse(key, problem);
                }
            }
        }
        Ok(())
    }
}
