//! Model strings (`"echo"`, `"gpt-4.1-mini"`, `"claude-haiku-4-5"`) resolve
//! through a process-wide registry (it lives in `loomflow-model`). The core
//! adds the model strings of every provider crate whose cargo feature is on
//! before it resolves anything, so no setup call is needed.

use std::sync::{Arc, Once};

pub use loomflow_model::model::registry::{
    IntoModel, ModelFactory, ModelPattern, Registration, add_builtin,
};

use super::Model;
use crate::error::ConfigError;

/// Adds the provider crates whose features are on. Idempotent and cheap
/// after the first call.
pub(crate) fn ensure_providers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[allow(unused_mut)]
        let mut all: Vec<Registration> = Vec::new();
        #[cfg(feature = "openai")]
        all.extend(loomflow_openai::registrations());
        #[cfg(feature = "anthropic")]
        all.extend(loomflow_anthropic::registrations());
        #[cfg(feature = "genai")]
        all.extend(loomflow_genai::registrations());
        add_builtin(all);
    });
}

/// Registers `factory` for model strings matching `pattern`. A later
/// registration of the same pattern replaces the earlier one (the built-in
/// providers count as the earliest); exact patterns win over prefixes, and
/// longer prefixes over shorter ones.
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
    ensure_providers();
    loomflow_model::model::registry::register_model(pattern, factory);
}

/// Every registered pattern, for error messages and `--help`.
pub fn known_models() -> Vec<String> {
    ensure_providers();
    loomflow_model::model::registry::known_models()
}

/// Resolves a model string to a model.
///
/// An unknown string is a [`ConfigError::UnknownModel`] that lists the valid
/// choices and suggests the closest one.
pub fn resolve_model(spec: &str) -> Result<Arc<dyn Model>, ConfigError> {
    ensure_providers();
    loomflow_model::model::registry::resolve_model(spec)
}
