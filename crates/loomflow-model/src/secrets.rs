//! Where provider keys come from when the builder was not given one: a
//! [`Secrets`] lookup, then the environment.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::ConfigError;

/// A named-secret store (a vault, a keyring, a test map). Adapters ask it for
/// a key by the variable name the official SDK uses (`OPENAI_API_KEY`, …)
/// before they fall back to the environment.
pub trait Secrets: Send + Sync + 'static {
    /// The secret named `name`, if the store has it.
    fn lookup(&self, name: &str) -> Option<String>;

    /// `text` with secrets masked: key shapes and registered values
    /// ([`crate::redact::redact`]). A store that knows its values masks
    /// them too, whatever their shape.
    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        crate::redact::redact(text)
    }
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

    /// Masks this store's own values (those of at least
    /// [`MIN_SECRET_LEN`](crate::redact::MIN_SECRET_LEN) characters) as
    /// well as key shapes.
    ///
    /// ```
    /// use loomflow_model::secrets::{Secrets, StaticSecrets};
    /// let s = StaticSecrets::from([("DB_PASSWORD", "plain-words-here")]);
    /// assert_eq!(s.redact("login with plain-words-here"), "login with [REDACTED]");
    /// ```
    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        let mut values: Vec<&str> = self
            .0
            .values()
            .map(|v| v.trim())
            .filter(|v| v.chars().count() >= crate::redact::MIN_SECRET_LEN)
            .collect();
        // Longest first, so a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            if out.contains(value) {
                out = Cow::Owned(out.replace(value, "[REDACTED]"));
            }
        }
        match out {
            Cow::Borrowed(text) => crate::redact::redact(text),
            Cow::Owned(masked) => Cow::Owned(crate::redact::redact(&masked).into_owned()),
        }
    }
}

/// Where an adapter finds its key and endpoint: the builder's values, then a
/// [`Secrets`] store, then the environment.
///
/// ```
/// use loomflow_model::secrets::{Endpoint, StaticSecrets};
/// let store = StaticSecrets::from([("ACME_API_KEY", "k-1")]);
/// let e = Endpoint::new("Acme", Some("ACME_API_KEY"), Some("ACME_BASE_URL"), "https://api.acme.test/");
/// let (key, url) = e.resolve("acme-1", None, None, Some(&store)).unwrap();
/// assert_eq!((key.as_deref(), url.as_str()), (Some("k-1"), "https://api.acme.test"));
/// let err = e.resolve("acme-1", None, None, None).unwrap_err().to_string();
/// assert!(err.contains("set ACME_API_KEY"), "{err}");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The provider's name, for messages.
    pub provider: &'a str,
    /// The key's variable name (`ANTHROPIC_API_KEY`); `None` for servers
    /// that take no key (a local Ollama).
    pub key_var: Option<&'a str>,
    /// The base URL's variable name (`ANTHROPIC_BASE_URL`), if the provider
    /// has one.
    pub base_url_var: Option<&'a str>,
    /// The base URL when none is given.
    pub default_base_url: &'a str,
}

impl<'a> Endpoint<'a> {
    /// Describes a provider's key and endpoint variables.
    pub const fn new(
        provider: &'a str,
        key_var: Option<&'a str>,
        base_url_var: Option<&'a str>,
        default_base_url: &'a str,
    ) -> Self {
        Self {
            provider,
            key_var,
            base_url_var,
            default_base_url,
        }
    }

    /// The key (`None` only when the provider takes none) and base URL
    /// (without a trailing `/`) for `model`. A missing key or a base URL
    /// that is not http(s) is a [`ConfigError`] that says what to set.
    pub fn resolve(
        &self,
        model: &str,
        key: Option<String>,
        base_url: Option<String>,
        secrets: Option<&dyn Secrets>,
    ) -> Result<(Option<String>, String), ConfigError> {
        let key = self.resolve_key(model, key, secrets)?;
        let url = self
            .resolve_base_url(base_url, secrets)?
            .unwrap_or_else(|| self.default_base_url.to_owned());
        Ok((key, checked_base_url(&url)?))
    }

    /// The key alone: `key`, else the store, else the environment; `None`
    /// only when the provider takes none. The key is registered for
    /// redaction ([`crate::redact::register_secret`]).
    pub fn resolve_key(
        &self,
        model: &str,
        key: Option<String>,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Option<String>, ConfigError> {
        let key = match (key, self.key_var) {
            (Some(k), _) => Some(k),
            (None, None) => None,
            (None, Some(var)) => Some(lookup(var, secrets).ok_or_else(|| {
                ConfigError::invalid(
                    "api key",
                    format!(
                        "no API key for {} model {model:?}: set {var} in the environment, pass .api_key(...) or provide it through a Secrets store",
                        self.provider
                    ),
                )
            })?),
        };
        // Whatever its shape, the key is masked wherever loomflow redacts.
        if let Some(key) = &key {
            crate::redact::register_secret(key);
        }
        Ok(key)
    }

    /// The base URL given or configured (builder, store, environment),
    /// checked and without its trailing `/`; `None` when nothing sets one
    /// and the provider's default applies.
    pub fn resolve_base_url(
        &self,
        base_url: Option<String>,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Option<String>, ConfigError> {
        base_url
            .or_else(|| self.base_url_var.and_then(|var| lookup(var, secrets)))
            .map(|url| checked_base_url(&url))
            .transpose()
    }
}

/// `var` from the store, else the environment.
fn lookup(var: &str, secrets: Option<&dyn Secrets>) -> Option<String> {
    secrets
        .and_then(|s| s.lookup(var))
        .or_else(|| EnvSecrets.lookup(var))
}

/// `url` without its trailing `/`, or a [`ConfigError`] when it is not an
/// http(s) URL.
pub fn checked_base_url(url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err(ConfigError::invalid(
            "base url",
            format!("{url:?} is not an http(s) URL; pass e.g. \"https://api.example.com/v1\""),
        ))
    }
}
