//! [`Template`]: names built from data, as presets declare them: `driver` (a literal),
//! `{store}` (a field), `{clientID|clientId|store}` (the first of these fields that is
//! present), or a mix such as `orders-{store}`.

use serde::Deserialize;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The first of these fields that has a value.
    Field(Vec<String>),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Template {
    pieces: Vec<Piece>,
}

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Template::parse(&raw)
    }
}

impl Template {
    /// Parses `raw`; braces must pair up and hold at least one field name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("template {raw:?}: '{{' without '}}'"))?;
            let fields: Vec<String> = rest[open + 1..open + close]
                .split('|')
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect();
            if fields.is_empty() {
                return Err(format!("template {raw:?}: empty '{{}}'"));
            }
            pieces.push(Piece::Field(fields));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("template {raw:?}: '}}' without '{{'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if pieces.is_empty() {
            return Err("a template must not be empty".into());
        }
        Ok(Self { pieces })
    }

    /// Fills the template; `None` if a field has no value. `lookup` returns a field's value.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(fields) => out.push_str(&fields.iter().find_map(|f| lookup(f))?),
            }
        }
        Some(out)
    }

    /// The field names the template reads, for error messages.
    pub fn fields(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Field(fields) => Some(fields.iter().map(String::as_str)),
                Piece::Text(_) => None,
            })
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(field: &str) -> Option<String> {
        match field {
            "store" => Some("acme".into()),
            "code" => Some("7".into()),
            _ => None,
        }
    }

    #[test]
    fn literals_fields_and_alternatives_render() {
        assert_eq!(
            Template::parse("driver").unwrap().render(lookup).as_deref(),
            Some("driver")
        );
        assert_eq!(
            Template::parse("{store}")
                .unwrap()
                .render(lookup)
                .as_deref(),
            Some("acme")
        );
        let first_present = Template::parse("{clientID|clientId|store}").unwrap();
        assert_eq!(first_present.render(lookup).as_deref(), Some("acme"));
        let mixed = Template::parse("orders-{store}-{code}").unwrap();
        assert_eq!(mixed.render(lookup).as_deref(), Some("orders-acme-7"));
    }

    #[test]
    fn a_missing_field_renders_nothing() {
        assert_eq!(Template::parse("{clientID}").unwrap().render(lookup), None);
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["", "{", "{}", "a}", "{a|}x{"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
    }
}
