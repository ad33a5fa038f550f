//! Guardrails declared in a configuration file: the `guardrails` key.
//!
//! ```toml
//! guardrails = ["pii", "injection"]     # built-ins with their defaults
//!
//! # or tables, in order:
//! [[guardrails]]
//! kind = "pii"
//! kinds = ["email", "card"]            # email, card, ssn, phone
//! stages = ["input", "output"]         # input, output, tool_result
//!
//! [[guardrails]]
//! kind = "regex"
//! name = "secrets"
//! rules = [
//!   { pattern = "(?i)internal only" },                  # no replace: block
//!   { pattern = "ACCT-\\d{6}", replace = "[ACCOUNT]" },
//! ]
//!
//! [[guardrails]]
//! kind = "moderation"
//! model = "gpt-4.1-mini"
//! threshold = 0.5
//! policy = "threats or harassment"      # optional
//! streamed = false                      # judge final answers only
//! ```
//!
//! Every mistake is a [`ConfigError`] naming the entry (`guardrails[1]`),
//! the key and what would be valid.

use std::sync::Arc;

use super::{
    Guardrail, InjectionGuard, ModerationGuard, PiiGuard, PiiKind, RegexAction, RegexGuard, Stage,
};
use crate::error::{ConfigError, closest};

const KINDS: &[&str] = &["pii", "injection", "regex", "moderation"];

/// One parsed entry of the `guardrails` key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GuardrailSpec {
    /// [`PiiGuard`]: the kinds and stages, or its defaults.
    Pii {
        /// `kinds`, or all of them.
        kinds: Option<Vec<PiiKind>>,
        /// `stages`, or every stage.
        stages: Option<Vec<Stage>>,
    },
    /// [`InjectionGuard`] (tool results).
    Injection,
    /// [`RegexGuard`].
    Regex {
        /// The guard's name (in `guardrail:<name>`).
        name: String,
        /// `(pattern, action)` in order; checked to compile.
        rules: Vec<(String, RegexAction)>,
        /// `stages`, or every stage.
        stages: Option<Vec<Stage>>,
    },
    /// [`ModerationGuard`] judged by a model string from the registry.
    Moderation {
        /// The judge's model string.
        model: String,
        /// Block at or above this score (0 to 1).
        threshold: f64,
        /// What counts as harmful, or the default policy.
        policy: Option<String>,
        /// `stages`, or input and output.
        stages: Option<Vec<Stage>>,
        /// `streamed = false`: judge only final answers, not streams.
        streamed: bool,
    },
}

impl GuardrailSpec {
    /// Parses the `guardrails` key: an array of built-in names and tables.
    pub fn parse_all(value: &toml::Value) -> Result<Vec<Self>, ConfigError> {
        let toml::Value::Array(items) = value else {
            return Err(ConfigError::invalid(
                "guardrails",
                format!(
                    "must be an array of names (\"pii\") or [[guardrails]] tables, not a {}",
                    value.type_str()
                ),
            ));
        };
        let specs = items
            .iter()
            .enumerate()
            .map(|(i, item)| Self::parse(item, &format!("guardrails[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(specs)
    }

    fn parse(item: &toml::Value, at: &str) -> Result<Self, ConfigError> {
        match item {
            toml::Value::String(kind) => match kind.as_str() {
                "pii" => Ok(Self::Pii {
                    kinds: None,
                    stages: None,
                }),
                "injection" => Ok(Self::Injection),
                "regex" | "moderation" => Err(ConfigError::invalid(
                    at,
                    format!(
                        "{kind:?} needs settings: write a [[guardrails]] table with kind = {kind:?}"
                    ),
                )),
                other => Err(unknown_kind(at, other)),
            },
            toml::Value::Table(t) => Self::parse_table(t, at),
            other => Err(ConfigError::invalid(
                at,
                format!("must be a name or a table, not a {}", other.type_str()),
            )),
        }
    }

    fn parse_table(t: &toml::Table, at: &str) -> Result<Self, ConfigError> {
        let kind = match t.get("kind") {
            Some(toml::Value::String(k)) => k.as_str(),
            Some(other) => {
                return Err(ConfigError::invalid(
                    format!("{at}.kind"),
                    format!("must be a string, not a {}", other.type_str()),
                ));
            }
            None => {
                return Err(ConfigError::invalid(
                    at,
                    format!("missing `kind`; one of {}", KINDS.join(", ")),
                ));
            }
        };
        let allowed: &[&str] = match kind {
            "pii" => &["kind", "kinds", "stages"],
            "injection" => &["kind"],
            "regex" => &["kind", "name", "rules", "stages"],
            "moderation" => &["kind", "model", "threshold", "policy", "stages", "streamed"],
            other => return Err(unknown_kind(at, other)),
        };
        if let Some(key) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
            let hint = closest(key, allowed.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            return Err(ConfigError::invalid(
                format!("{at}.{key}"),
                format!(
                    "unknown key for a {kind} guardrail{hint}; valid keys are {}",
                    allowed.join(", ")
                ),
            ));
        }
        let stages = t
            .get("stages")
            .map(|v| strings(v, &format!("{at}.stages"), parse_stage))
            .transpose()?;
        match kind {
            "pii" => Ok(Self::Pii {
                kinds: t
                    .get("kinds")
                    .map(|v| strings(v, &format!("{at}.kinds"), parse_pii_kind))
                    .transpose()?,
                stages,
            }),
            "injection" => Ok(Self::Injection),
            "regex" => Ok(Self::Regex {
                name: string(t, "name", at)?.to_owned(),
                rules: rules(t.get("rules"), at)?,
                stages,
            }),
            _ => {
                let threshold = match t.get("threshold") {
                    Some(toml::Value::Float(f)) => *f,
                    Some(toml::Value::Integer(i)) => *i as f64,
                    _ => {
                        return Err(ConfigError::invalid(
                            format!("{at}.threshold"),
                            "a number from 0 to 1 is required (e.g. threshold = 0.5)",
                        ));
                    }
                };
                if !(0.0..=1.0).contains(&threshold) {
                    return Err(ConfigError::invalid(
                        format!("{at}.threshold"),
                        format!("{threshold} is outside 0 to 1"),
                    ));
                }
                let policy = match t.get("policy") {
                    None => None,
                    Some(_) => Some(string(t, "policy", at)?.to_owned()),
                };
                let streamed = match t.get("streamed") {
                    None => true,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            format!("{at}.streamed"),
                            format!("must be true or false, not a {}", other.type_str()),
                        ));
                    }
                };
                Ok(Self::Moderation {
                    model: string(t, "model", at)?.to_owned(),
                    threshold,
                    policy,
                    stages,
                    streamed,
                })
            }
        }
    }

    /// The guard; a moderation judge is resolved through the model registry.
    pub fn build(&self) -> Result<Arc<dyn Guardrail>, ConfigError> {
        Ok(match self {
            Self::Pii { kinds, stages } => {
                let mut g = PiiGuard::new();
                if let Some(k) = kinds {
                    g = g.kinds(k.iter().copied());
                }
                if let Some(s) = stages {
                    g = g.stages(s.iter().copied());
                }
                Arc::new(g)
            }
            Self::Injection => Arc::new(InjectionGuard::new()),
            Self::Regex {
                name,
                rules,
                stages,
            } => {
                let mut g = RegexGuard::new(name.clone());
                for (pattern, action) in rules {
                    g = g.rule(pattern, action.clone())?;
                }
                if let Some(s) = stages {
                    g = g.stages(s.iter().copied());
                }
                Arc::new(g)
            }
            Self::Moderation {
                model,
                threshold,
                policy,
                stages,
                streamed,
            } => {
                let judge = crate::model::resolve_model(model)?;
                let mut g = ModerationGuard::new(judge, *threshold).streamed(*streamed);
                if let Some(p) = policy {
                    g = g.policy(p.clone());
                }
                if let Some(s) = stages {
                    g = g.stages(s.iter().copied());
                }
                Arc::new(g)
            }
        })
    }
}

fn unknown_kind(at: &str, kind: &str) -> ConfigError {
    let hint = closest(kind, KINDS.iter().copied())
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default();
    ConfigError::invalid(
        format!("{at}.kind"),
        format!(
            "unknown guardrail {kind:?}{hint}; valid kinds are {}",
            KINDS.join(", ")
        ),
    )
}

fn string<'t>(t: &'t toml::Table, key: &str, at: &str) -> Result<&'t str, ConfigError> {
    match t.get(key) {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(ConfigError::invalid(
            format!("{at}.{key}"),
            "a non-empty string is required",
        )),
    }
}

/// An array of strings, each parsed by `one`.
fn strings<T>(
    value: &toml::Value,
    at: &str,
    one: fn(&str, &str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let toml::Value::Array(items) = value else {
        return Err(ConfigError::invalid(at, "must be an array of strings"));
    };
    items
        .iter()
        .map(|v| match v {
            toml::Value::String(s) => one(s, at),
            other => Err(ConfigError::invalid(
                at,
                format!("must hold strings, not a {}", other.type_str()),
            )),
        })
        .collect()
}

fn parse_stage(s: &str, at: &str) -> Result<Stage, ConfigError> {
    match s {
        "input" => Ok(Stage::Input),
        "output" => Ok(Stage::Output),
        "tool_result" => Ok(Stage::ToolResult),
        other => Err(ConfigError::invalid(
            at,
            format!("unknown stage {other:?}; valid stages are input, output, tool_result"),
        )),
    }
}

fn parse_pii_kind(s: &str, at: &str) -> Result<PiiKind, ConfigError> {
    match s {
        "email" => Ok(PiiKind::Email),
        "card" => Ok(PiiKind::Card),
        "ssn" => Ok(PiiKind::Ssn),
        "phone" => Ok(PiiKind::Phone),
        other => Err(ConfigError::invalid(
            at,
            format!("unknown kind {other:?}; valid kinds are email, card, ssn, phone"),
        )),
    }
}

/// `rules = [{ pattern, replace? }]`, each pattern checked to compile.
fn rules(value: Option<&toml::Value>, at: &str) -> Result<Vec<(String, RegexAction)>, ConfigError> {
    let Some(toml::Value::Array(items)) = value else {
        return Err(ConfigError::invalid(
            format!("{at}.rules"),
            "an array of { pattern = \"…\", replace = \"…\" (optional: without it, a match blocks) } is required",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let here = format!("{at}.rules[{i}]");
            let toml::Value::Table(rule) = rule else {
                return Err(ConfigError::invalid(
                    here,
                    "must be a table { pattern, replace }",
                ));
            };
            if let Some(key) = rule
                .keys()
                .find(|k| !["pattern", "replace"].contains(&k.as_str()))
            {
                return Err(ConfigError::invalid(
                    format!("{here}.{key}"),
                    "unknown key; a rule has `pattern` and, to rewrite instead of block, `replace`",
                ));
            }
            let pattern = string(rule, "pattern", &here)?;
            regex::Regex::new(pattern)
                .map_err(|e| ConfigError::invalid(format!("{here}.pattern"), e.to_string()))?;
            let action = match rule.get("replace") {
                None => RegexAction::Block,
                Some(toml::Value::String(with)) => RegexAction::Replace(with.clone()),
                Some(other) => {
                    return Err(ConfigError::invalid(
                        format!("{here}.replace"),
                        format!("must be a string, not a {}", other.type_str()),
                    ));
                }
            };
            Ok((pattern.to_owned(), action))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<GuardrailSpec>, String> {
        let table: toml::Table = text.parse().unwrap();
        GuardrailSpec::parse_all(&table["guardrails"]).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn names_and_tables_build_the_guards_in_order() {
        let specs = parse(
            r#"
            guardrails = [
              "pii",
              { kind = "regex", name = "ids", stages = ["output"], rules = [
                { pattern = "ACCT-\\d{6}", replace = "[ACCOUNT]" },
                { pattern = "(?i)internal only" },
              ] },
              "injection",
            ]
            "#,
        )
        .unwrap();
        let mut guards = crate::guardrails::Guardrails::new();
        for s in &specs {
            guards = guards.with_arc(s.build().unwrap());
        }
        assert_eq!(format!("{guards:?}"), r#"["pii", "ids", "injection"]"#);
        let out = guards
            .apply(Stage::Output, "ACCT-123456 for a@b.io".into())
            .await;
        assert_eq!(out.text, "[ACCOUNT] for [REDACTED:email]");
        let out = guards.apply(Stage::Output, "Internal only!".into()).await;
        assert_eq!(out.blocked.map(|b| b.0).as_deref(), Some("ids"));
        // The regex guard was limited to the output stage.
        let out = guards.apply(Stage::Input, "internal only".into()).await;
        assert!(out.blocked.is_none());
    }

    #[test]
    fn mistakes_name_the_entry_and_what_is_valid() {
        let cases = [
            (r#"guardrails = "pii""#, "must be an array"),
            (
                r#"guardrails = ["pi"]"#,
                "guardrails[0].kind: unknown guardrail \"pi\" (did you mean \"pii\"?)",
            ),
            (r#"guardrails = ["regex"]"#, "needs settings"),
            (
                r#"guardrails = [{ kind = "pii", kind_s = ["email"] }]"#,
                "guardrails[0].kind_s: unknown key for a pii guardrail (did you mean \"kinds\"?)",
            ),
            (
                r#"guardrails = [{ kind = "pii", stages = ["outptu"] }]"#,
                "unknown stage \"outptu\"",
            ),
            (
                r#"guardrails = [{ kind = "pii", kinds = ["iban"] }]"#,
                "unknown kind \"iban\"",
            ),
            (
                r#"guardrails = [{ kind = "regex", name = "x", rules = [{ pattern = "(open" }] }]"#,
                "guardrails[0].rules[0].pattern",
            ),
            (
                r#"guardrails = [{ kind = "regex", name = "x" }]"#,
                "guardrails[0].rules",
            ),
            (
                r#"guardrails = [{ kind = "moderation", model = "echo", threshold = 0.5, streamed = "no" }]"#,
                "guardrails[0].streamed: must be true or false",
            ),
            (
                r#"guardrails = [{ kind = "moderation", model = "echo", threshold = 2 }]"#,
                "2 is outside 0 to 1",
            ),
            (
                r#"guardrails = [{ kind = "moderation", threshold = 0.5 }]"#,
                "guardrails[0].model",
            ),
            (r#"guardrails = [{ stages = ["input"] }]"#, "missing `kind`"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        // An unknown judge model is caught when the guard is built.
        let spec =
            &parse(r#"guardrails = [{ kind = "moderation", model = "nope-9", threshold = 0.5 }]"#)
                .unwrap()[0];
        assert!(spec.build().is_err());
        // A judge for final answers only.
        let text = r#"guardrails = [{ kind = "moderation", model = "echo", threshold = 0.5, streamed = false }]"#;
        assert!(!parse(text).unwrap()[0].build().unwrap().checks_streams());
    }
}
