//! Model strings (`"echo"`, `"gpt-4.1-mini"`, `"claude-haiku-4-5"`) resolve
//! through a process-wide registry: a [`ModelPattern`] says which strings a
//! provider answers to, a [`ModelFactory`] builds the model from the full
//! string. `"echo"` is always there; `loomflow-core` adds the provider crates
//! whose features are on (with [`add_builtin`]) before it resolves anything.

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
    /// Whether `spec` matches.
    ///
    /// ```
    /// use loomflow_model::model::registry::ModelPattern;
    /// assert!(ModelPattern::Prefix("gpt-".into()).matches("gpt-4.1-mini"));
    /// assert!(!ModelPattern::Exact("o1".into()).matches("o1-mini"));
    /// ```
    pub fn matches(&self, spec: &str) -> bool {
        match self {
            Self::Exact(s) => spec == s,
            Self::Prefix(p) => spec.starts_with(p.as_str()),
        }
    }

    /// How specific the pattern is: exact strings beat prefixes, longer
    /// prefixes beat shorter ones.
    pub fn specificity(&self) -> usize {
        match self {
            Self::Exact(_) => usize::MAX,
            Self::Prefix(p) => p.len(),
        }
    }

    /// The pattern as listed in error messages (`"echo"`, `"gpt-*"`).
    pub fn display(&self) -> String {
        match self {
            Self::Exact(s) => s.clone(),
            Self::Prefix(p) => format!("{p}*"),
        }
    }
}

/// One provider's answer to a set of model strings.
#[derive(Clone)]
pub struct Registration {
    /// The strings it answers to.
    pub pattern: ModelPattern,
    /// Builds the model.
    pub factory: ModelFactory,
}

impl Registration {
    /// A registration of `factory` for `pattern`.
    pub fn new(
        pattern: ModelPattern,
        factory: impl Fn(&str) -> Result<Arc<dyn Model>, ConfigError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            pattern,
            factory: Arc::new(factory),
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static RwLock<Vec<Registration>> {
    static REGISTRY: OnceLock<RwLock<Vec<Registration>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        RwLock::new(vec![Registration::new(
            ModelPattern::Exact("echo".into()),
            |_| Ok(Arc::new(EchoModel::new()) as Arc<dyn Model>),
        )])
    })
}

/// Registers `factory` for model strings matching `pattern`. A later
/// registration of the same pattern replaces the earlier one; exact patterns
/// win over prefixes, and longer prefixes over shorter ones.
///
/// ```
/// use std::sync::Arc;
/// use loomflow_model::model::{EchoModel, Model};
/// use loomflow_model::model::registry::{register_model, resolve_model, ModelPattern};
///
/// register_model(ModelPattern::Prefix("parrot-".into()), Arc::new(|spec: &str| {
///     Ok(Arc::new(EchoModel::new().with_prefix(format!("{spec} says: "))) as Arc<dyn Model>)
/// }));
/// assert!(resolve_model("parrot-1").is_ok());
/// ```
pub fn register_model(pattern: ModelPattern, factory: ModelFactory) {
    let mut entries = registry().write().unwrap_or_else(|e| e.into_inner());
    entries.retain(|e| e.pattern != pattern);
    entries.push(Registration { pattern, factory });
}

/// Adds built-in registrations (a provider crate's model strings) without
/// replacing anything registered for the same pattern already: built-ins
/// count as the earliest registrations, whenever they are added.
pub fn add_builtin(registrations: impl IntoIterator<Item = Registration>) {
    let mut entries = registry().write().unwrap_or_else(|e| e.into_inner());
    for r in registrations {
        if !entries.iter().any(|e| e.pattern == r.pattern) {
            entries.push(r);
        }
    }
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
            .max_by_key(|e| e.pattern.specificity())
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

/// Anything that names or is a model: a model string (`"echo"`,
/// `"gpt-4.1-mini"`), a model value, or an `Arc<dyn Model>`.
pub trait IntoModel {
    /// Resolves to a model.
    fn into_model(self) -> Result<Arc<dyn Model>, ConfigError>;
}

impl IntoModel for &str {
    fn into_model(self) -> Result<Arc<dyn Model>, ConfigError> {
        resolve_model(self)
    }
}

impl IntoModel for String {
    fn into_model(self) -> Result<Arc<dyn Model>, ConfigError> {
        resolve_model(&self)
    }
}

impl IntoModel for Arc<dyn Model> {
    fn into_model(self) -> Result<Arc<dyn Model>, ConfigError> {
        Ok(self)
    }
}

impl<M: Model> IntoModel for M {
    fn into_model(self) -> Result<Arc<dyn Model>, ConfigError> {
        Ok(Arc::new(self))
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

    #[test]
    fn builtins_never_replace_user_registrations() {
        let user = |_: &str| Ok(Arc::new(EchoModel::new().with_prefix("user: ")) as Arc<dyn Model>);
        register_model(ModelPattern::Prefix("zz-".into()), Arc::new(user));
        add_builtin([Registration::new(
            ModelPattern::Prefix("zz-".into()),
            |_| Err(ConfigError::invalid("model", "built-in must not win")),
        )]);
        assert!(resolve_model("zz-1").is_ok());
    }
}
