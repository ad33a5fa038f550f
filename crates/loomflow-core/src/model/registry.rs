//! Model strings (`"echo"`, `"gpt-4.1-mini"`, `"claude-haiku-4-5"`) resolve
//! through a process-wide registry. The core registers `"echo"`; provider crates
//! register their prefixes when their feature is on.

use std::sync::{Arc, OnceLock, RwLock};

use super::{EchoModel, Model};
use crate::error::{ConfigError, closest};

/// Builds a model from the full model string.
pub type ModelFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn Model>, ConfigError> + Send + Sync>;

/// How a registration matches model strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    /// Exactly this string.
    Exact(String),
    /// Any string starting with this prefix (`"gpt-"`, `"gemini/"`).
    Prefix(String),
}

impl ModelPattern {
    fn matches(&self, spec: &str) -> bool {
        match self {
            Self::Exact(s) => spec == s,
            Self::Prefix(p) => spec.starts_with(p.as_str()),
        }
    }

    fn display(&self) -> String {
        match self {
            Self::Exact(s) => s.clone(),
            Self::Prefix(p) => format!("{p}*"),
        }
    }
}

struct Entry {
    pattern: ModelPattern,
    factory: ModelFactory,
}

fn registry() -> &'static RwLock<Vec<Entry>> {
    static REGISTRY: OnceLock<RwLock<Vec<Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let echo: ModelFactory = Arc::new(|_| Ok(Arc::new(EchoModel::new()) as Arc<dyn Model>));
        RwLock::new(vec![Entry {
            pattern: ModelPattern::Exact("echo".into()),
            factory: echo,
        }])
    })
}

/// Registers `factory` for model strings matching `pattern`. A later
/// registration of the same pattern replaces the earlier one; exact patterns
/// win over prefixes, and longer prefixes over shorter ones.
///
/// ```
/// use std::sync::Arc;
/// use loomflow_core::model::{register_model, resolve_model, EchoModel, Model};
/// use loomflow_core::model::registry::ModelPattern;
///
/// register_model(ModelPattern::Prefix("parrot-".into()), Arc::new(|spec: &str| {
///     Ok(Arc::new(EchoModel::new().with_prefix(format!("{spec} says: "))) as Arc<dyn Model>)
/// }));
/// assert!(resolve_model("parrot-1").is_ok());
/// ```
pub fn register_model(pattern: ModelPattern, factory: ModelFactory) {
    let mut entries = registry().write().unwrap_or_else(|e| e.into_inner());
    entries.retain(|e| e.pattern != pattern);
    entries.push(Entry { pattern, factory });
}

/// Every registered pattern, for error messages and `--help`.
pub fn known_models() -> Vec<String> {
    let entries = registry().read().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<String> = entries.iter().map(|e| e.pattern.display()).collect();
    v.sort();
    v
}

/// Resolves a model string to a model.
///
/// An unknown string is a [`ConfigError::UnknownModel`] that lists the valid
/// choices and suggests the closest one.
pub fn resolve_model(spec: &str) -> Result<Arc<dyn Model>, ConfigError> {
    let spec = spec.trim();
    let factory = {
        let entries = registry().read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|e| e.pattern.matches(spec))
            .max_by_key(|e| match &e.pattern {
                ModelPattern::Exact(_) => usize::MAX,
                ModelPattern::Prefix(p) => p.len(),
            })
            .map(|e| e.factory.clone())
    };
    match factory {
        Some(f) => f(spec),
        None => {
            let valid = known_models();
            let suggestion = closest(spec, valid.iter().map(|s| s.trim_end_matches('*')));
            Err(ConfigError::UnknownModel {
                name: spec.to_owned(),
                valid,
                suggestion,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_lists_choices() {
        let err = match resolve_model("ecko") {
            Err(e) => e,
            Ok(_) => panic!("ecko must not resolve"),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("unknown model \"ecko\": valid choices are "),
            "{msg}"
        );
        assert!(msg.contains("echo"), "{msg}");
        assert!(msg.ends_with("(did you mean `echo`?)"), "{msg}");
        assert_eq!(
            resolve_model(" echo ").map(|m| m.name().to_owned()),
            Ok("echo".into())
        );
    }
}
