//! [`MemorySpec`]: where memory lives, as written in config files and on the
//! command line.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::journal::redact_url;

/// The memory backend a spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryBackend {
    /// In this process ([`InMemoryMemory`](super::InMemoryMemory)).
    InMemory,
    /// A SQLite file; `":memory:"` for a private in-memory database.
    Sqlite(PathBuf),
    /// A Postgres (pgvector) URL.
    Postgres(String),
    /// A Redis URL.
    Redis(String),
    /// A Chroma server: its URL (`None`: `http://localhost:8000`).
    Chroma(Option<String>),
}

/// Which embedder a memory computes vectors with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbedderSpec {
    /// [`HashEmbedder`](super::HashEmbedder) with this many dimensions
    /// (`"hash"` = 384, `"hash:<n>"`): offline and deterministic.
    Hash(usize),
    /// An OpenAI embedding model (`"openai"` = `text-embedding-3-small`,
    /// `"openai-large"`, or `"openai:<model>"`).
    OpenAi(String),
    /// The local all-MiniLM-L6-v2 model from a folder of its files
    /// (`"local:<dir>"`): `loomflow-minilm`, feature `minilm` of the
    /// `loomflow` crate.
    Local(PathBuf),
}

impl std::str::FromStr for EmbedderSpec {
    type Err = ConfigError;

    fn from_str(spec: &str) -> Result<Self, ConfigError> {
        let spec = spec.trim();
        let bad = || {
            ConfigError::invalid(
                "memory.embedder",
                format!(
                    "unknown embedder {spec:?}; valid choices are \"hash\", \"hash:<dimensions>\", \
                     \"openai\", \"openai-small\", \"openai-large\", \"openai:<model>\" and \"local:<dir>\""
                ),
            )
        };
        Ok(match spec {
            "hash" => Self::Hash(384),
            "openai" | "openai-small" => Self::OpenAi("text-embedding-3-small".into()),
            "openai-large" => Self::OpenAi("text-embedding-3-large".into()),
            _ => match spec.split_once(':') {
                Some(("hash", n)) => match n.parse::<usize>() {
                    Ok(n) if (8..=8192).contains(&n) => Self::Hash(n),
                    _ => {
                        return Err(ConfigError::invalid(
                            "memory.embedder",
                            format!("`hash:` needs a dimension from 8 to 8192, got {n:?}"),
                        ));
                    }
                },
                Some(("openai", model)) if !model.is_empty() => Self::OpenAi(model.into()),
                Some(("local", dir)) if !dir.is_empty() => Self::Local(dir.into()),
                _ => return Err(bad()),
            },
        })
    }
}

impl EmbedderSpec {
    /// The embedder named by `LOOMFLOW_EMBEDDER`, else the hash embedder.
    ///
    /// Unlike the reference, an `OPENAI_API_KEY` in the environment does not
    /// switch the default to OpenAI: stored vectors would silently stop
    /// matching new ones when the key comes and goes.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("LOOMFLOW_EMBEDDER") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Self::Hash(384)),
        }
    }
}

/// A memory location and its options: the reference's strings
/// (`"inmemory"`, `"sqlite"`, `"sqlite:./bot.db"`, `"chroma"`,
/// `"chroma:http://host:8000"`, `"postgres://…"`, `"redis://…"`) or table
/// (`{ backend, path | url, namespace, embedder, with_facts }`).
///
/// ```
/// use loomflow_core::memory::{MemoryBackend, MemorySpec};
///
/// let spec: MemorySpec = "sqlite:./bot.db".parse().unwrap();
/// assert_eq!(spec.backend, MemoryBackend::Sqlite("./bot.db".into()));
/// let err = "mongo://x".parse::<MemorySpec>().unwrap_err();
/// assert!(err.to_string().contains("valid choices are"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemorySpec {
    /// Where.
    pub backend: MemoryBackend,
    /// Keeps several bots' memories apart in one store.
    pub namespace: Option<String>,
    /// The embedder (`None`: [`EmbedderSpec::from_env`]).
    pub embedder: Option<EmbedderSpec>,
    /// Whether agents recall facts from this memory (default true). With
    /// `false` the caller sets the agent's
    /// [`MemoryOptions::facts`](crate::agent::MemoryOptions::facts) to 0, as
    /// `loomflow run` does; a store still keeps any fact it is given.
    pub with_facts: bool,
}

impl MemorySpec {
    /// A spec for `backend` with the defaults.
    pub fn new(backend: MemoryBackend) -> Self {
        Self {
            backend,
            namespace: None,
            embedder: None,
            with_facts: true,
        }
    }

    /// The embedder to use: the spec's, else the environment's.
    pub fn embedder(&self) -> Result<EmbedderSpec, ConfigError> {
        match &self.embedder {
            Some(e) => Ok(e.clone()),
            None => EmbedderSpec::from_env(),
        }
    }

    /// Reads the table form.
    pub fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(alias = "type")]
            backend: String,
            path: Option<String>,
            #[serde(alias = "dsn")]
            url: Option<String>,
            namespace: Option<String>,
            embedder: Option<String>,
            with_facts: Option<bool>,
        }
        let t = Table::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| ConfigError::invalid("memory", e.message().to_owned()))?;
        let location = t.url.or(t.path);
        let backend = match (t.backend.as_str(), location) {
            ("inmemory" | "memory", _) => MemoryBackend::InMemory,
            ("sqlite", None) => MemoryBackend::Sqlite(":memory:".into()),
            ("sqlite", Some(p)) => MemoryBackend::Sqlite(p.into()),
            ("chroma", url) => MemoryBackend::Chroma(url),
            ("postgres" | "postgresql", Some(u)) => MemoryBackend::Postgres(u),
            ("redis", Some(u)) => MemoryBackend::Redis(u),
            ("postgres" | "postgresql" | "redis", None) => {
                return Err(ConfigError::invalid(
                    "memory",
                    format!("backend {:?} needs a `url`", t.backend),
                ));
            }
            (other, _) => {
                return Err(ConfigError::invalid(
                    "memory.backend",
                    format!(
                        "unknown backend {other:?}; valid choices are \"inmemory\", \"sqlite\", \
                         \"chroma\", \"postgres\" and \"redis\""
                    ),
                ));
            }
        };
        Ok(Self {
            backend,
            namespace: t.namespace,
            embedder: t.embedder.as_deref().map(str::parse).transpose()?,
            with_facts: t.with_facts.unwrap_or(true),
        })
    }
}

impl std::str::FromStr for MemorySpec {
    type Err = ConfigError;

    fn from_str(spec: &str) -> Result<Self, ConfigError> {
        let spec = spec.trim();
        let backend = match spec {
            "inmemory" | "memory" => MemoryBackend::InMemory,
            "sqlite" => MemoryBackend::Sqlite(":memory:".into()),
            "chroma" => MemoryBackend::Chroma(None),
            _ if spec.starts_with("postgres://") || spec.starts_with("postgresql://") => {
                MemoryBackend::Postgres(spec.to_owned())
            }
            _ if spec.starts_with("redis://") || spec.starts_with("rediss://") => {
                MemoryBackend::Redis(spec.to_owned())
            }
            _ => match spec.split_once(':') {
                Some(("sqlite", path)) if !path.is_empty() => {
                    MemoryBackend::Sqlite(path.strip_prefix("//").unwrap_or(path).into())
                }
                Some(("chroma", url)) if !url.is_empty() => MemoryBackend::Chroma(Some(url.into())),
                _ => {
                    return Err(ConfigError::invalid(
                        "memory",
                        format!(
                            "unknown memory {spec:?}; valid choices are \"inmemory\", \"sqlite\", \
                             \"sqlite:<path>\", \"chroma\", \"chroma:<url>\", \"postgres://…\" and \"redis://…\""
                        ),
                    ));
                }
            },
        };
        Ok(Self::new(backend))
    }
}

impl std::fmt::Display for MemorySpec {
    /// The location as written, passwords masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            MemoryBackend::InMemory => f.write_str("inmemory"),
            MemoryBackend::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            MemoryBackend::Postgres(u) | MemoryBackend::Redis(u) => f.write_str(&redact_url(u)),
            MemoryBackend::Chroma(None) => f.write_str("chroma"),
            MemoryBackend::Chroma(Some(u)) => write!(f, "chroma:{}", redact_url(u)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strings_and_tables_parse_like_the_reference() {
        let cases = [
            ("inmemory", MemoryBackend::InMemory),
            ("sqlite", MemoryBackend::Sqlite(":memory:".into())),
            ("sqlite:./bot.db", MemoryBackend::Sqlite("./bot.db".into())),
            ("chroma", MemoryBackend::Chroma(None)),
            (
                "chroma:http://127.0.0.1:8000",
                MemoryBackend::Chroma(Some("http://127.0.0.1:8000".into())),
            ),
            (
                "postgresql://u:p@h/db",
                MemoryBackend::Postgres("postgresql://u:p@h/db".into()),
            ),
            (
                "rediss://h:6379",
                MemoryBackend::Redis("rediss://h:6379".into()),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<MemorySpec>().unwrap().backend, want, "{s}");
        }
        let spec: MemorySpec = "postgres://app:s3cret@db/x".parse().unwrap();
        assert_eq!(spec.to_string(), "postgres://app:***@db/x");

        let table: toml::Table = toml::from_str(
            r#"backend = "sqlite"
               path = "m.db"
               namespace = "support"
               embedder = "hash:128"
               with_facts = false"#,
        )
        .unwrap();
        let spec = MemorySpec::from_table(&table).unwrap();
        assert_eq!(spec.backend, MemoryBackend::Sqlite("m.db".into()));
        assert_eq!(spec.namespace.as_deref(), Some("support"));
        assert_eq!(spec.embedder, Some(EmbedderSpec::Hash(128)));
        assert!(!spec.with_facts);

        let bad: toml::Table = toml::from_str(r#"backend = "redis""#).unwrap();
        let err = MemorySpec::from_table(&bad).unwrap_err();
        assert!(err.to_string().contains("needs a `url`"), "{err}");
        let bad: toml::Table = toml::from_str("backend = \"sqlite\"\npaht = \"x\"").unwrap();
        assert!(
            MemorySpec::from_table(&bad)
                .unwrap_err()
                .to_string()
                .contains("paht")
        );
        assert!("hash:3".parse::<EmbedderSpec>().is_err());
        assert_eq!(
            "openai-large".parse::<EmbedderSpec>().unwrap(),
            EmbedderSpec::OpenAi("text-embedding-3-large".into())
        );
    }
}
