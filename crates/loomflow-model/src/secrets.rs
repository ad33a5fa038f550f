//! Where provider keys come from when the builder was not given one: a
//! [`Secrets`] lookup, then the environment.

use std::collections::HashMap;

/// A named-secret store (a vault, a keyring, a test map). Adapters ask it for
/// a key by the variable name the official SDK uses (`OPENAI_API_KEY`, …)
/// before they fall back to the environment.
pub trait Secrets: Send + Sync + 'static {
    /// The secret named `name`, if the store has it.
    fn lookup(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecrets;

impl Secrets for EnvSecrets {
    fn lookup(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// A fixed map, for tests and for keys loaded once at start-up.
///
/// ```
/// use loomflow_model::secrets::{Secrets, StaticSecrets};
/// let s = StaticSecrets::from([("OPENAI_API_KEY", "sk-test")]);
/// assert_eq!(s.lookup("OPENAI_API_KEY").as_deref(), Some("sk-test"));
/// assert_eq!(s.lookup("ANTHROPIC_API_KEY"), None);
/// ```
#[derive(Clone, Default)]
pub struct StaticSecrets(HashMap<String, String>);

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for StaticSecrets {
    fn from(pairs: [(K, V); N]) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a secret's value never reaches a log.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets for StaticSecrets {
    fn lookup(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
