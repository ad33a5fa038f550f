//! [`AuditSpec`]: the `audit_log` key of a config file, and where a log
//! lives ([`AuditBackend`]).

use std::path::PathBuf;
use std::sync::Arc;

use super::{AuditLog, AuditSecret, FileAuditLog, FullTranscripts};
use crate::error::ConfigError;
use crate::journal::redact_url;

/// The log a database backend writes when no `log` name is given.
pub const DEFAULT_LOG_NAME: &str = "main";

/// Where an audit log lives: a JSONL file (a plain path, or `file:<path>`),
/// a SQLite file (`sqlite:<path>`), or a Postgres database
/// (`postgres://…` / `postgresql://…`). The `loomflow` facade opens every
/// kind (`loomflow::open_audit_log`); this crate opens files.
///
/// ```
/// use loomflow_core::audit::AuditBackend;
///
/// assert_eq!("./audit.jsonl".parse::<AuditBackend>().unwrap(), AuditBackend::File("./audit.jsonl".into()));
/// assert_eq!("sqlite:./audit.db".parse::<AuditBackend>().unwrap(), AuditBackend::Sqlite("./audit.db".into()));
/// let pg: AuditBackend = "postgres://app:pw@db/audit".parse().unwrap();
/// assert_eq!(pg.to_string(), "postgres://app:***@db/audit");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditBackend {
    /// A JSONL file.
    File(PathBuf),
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Postgres database URL.
    Postgres(String),
}

impl AuditBackend {
    /// True for the backends that hold several named logs (databases).
    pub fn holds_named_logs(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

impl std::str::FromStr for AuditBackend {
    type Err = ConfigError;

    fn from_str(spec: &str) -> Result<Self, ConfigError> {
        let spec = spec.trim();
        let nonempty = |path: &str, example: &str| {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                Err(ConfigError::invalid(
                    "audit_log.path",
                    format!("needs a path, e.g. \"{example}\""),
                ))
            } else {
                Ok(PathBuf::from(path))
            }
        };
        if let Some(path) = spec.strip_prefix("sqlite:") {
            return nonempty(path, "sqlite:./audit.db").map(Self::Sqlite);
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Self::Postgres(spec.to_owned()));
        }
        if let Some((scheme, _)) = spec.split_once("://")
            && scheme != "file"
            && !scheme.contains(['/', '\\', '.'])
        {
            return Err(ConfigError::invalid(
                "audit_log.path",
                format!(
                    "unknown audit log location {spec:?}; valid choices are a file path, \
                     \"sqlite:<path>\" and \"postgres://…\""
                ),
            ));
        }
        let path = spec.strip_prefix("file:").unwrap_or(spec);
        nonempty(path, "./audit.jsonl").map(Self::File)
    }
}

impl std::fmt::Display for AuditBackend {
    /// The location as written, with a Postgres password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// The `audit_log` key of an agent config: a location, or a table
/// `{ path = "./audit.jsonl", secret_env = "AUDIT_KEY", full_transcripts =
/// false }` (`name` and `scope_full`, the reference's spellings, are
/// accepted too). The location is a JSONL file, `sqlite:<path>` or a
/// `postgres://…` URL (see [`AuditBackend`]); a database holds several
/// logs, told apart by `log = "<name>"` ([`DEFAULT_LOG_NAME`] when unset).
///
/// The secret is never in the file: `secret_env` names the environment
/// variable that holds it.
///
/// ```
/// use loomflow_core::audit::{AuditBackend, AuditSpec};
///
/// let table: toml::Table =
///     toml::from_str(r#"audit_log = { path = "./audit.jsonl", secret_env = "AUDIT_KEY" }"#).unwrap();
/// let spec = AuditSpec::try_from(table["audit_log"].clone()).unwrap();
/// assert_eq!(spec.backend, AuditBackend::File("./audit.jsonl".into()));
/// assert_eq!(spec.secret_env.as_deref(), Some("AUDIT_KEY"));
///
/// let table: toml::Table =
///     toml::from_str(r#"audit_log = { path = "sqlite:./audit.db", log = "2026-q4" }"#).unwrap();
/// let spec = AuditSpec::try_from(table["audit_log"].clone()).unwrap();
/// assert_eq!(spec.log_name(), "2026-q4");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSpec {
    /// Where the log lives.
    pub backend: AuditBackend,
    /// The log's name inside a database (files hold one log).
    pub log: Option<String>,
    /// The environment variable holding the signing key (none: an empty,
    /// forgeable key, with a warning).
    pub secret_env: Option<String>,
    /// Keep full prompts, outputs and tool results.
    pub full_transcripts: bool,
}

impl AuditSpec {
    /// A spec for `backend`, with no secret variable and summaries only.
    pub fn new(backend: AuditBackend) -> Self {
        Self {
            backend,
            log: None,
            secret_env: None,
            full_transcripts: false,
        }
    }

    /// The log's name inside a database.
    pub fn log_name(&self) -> &str {
        self.log.as_deref().unwrap_or(DEFAULT_LOG_NAME)
    }

    /// The signing key, read from `secret_env` (an empty key when unset).
    pub fn secret(&self) -> Result<AuditSecret, ConfigError> {
        match &self.secret_env {
            Some(var) => AuditSecret::from_env(var),
            None => Ok(AuditSecret::new("")),
        }
    }

    /// `log`, keeping full transcripts when the spec says so.
    pub fn wrap<L: AuditLog>(&self, log: L) -> Arc<dyn AuditLog> {
        match self.full_transcripts {
            true => Arc::new(FullTranscripts(log)),
            false => Arc::new(log),
        }
    }

    /// Opens a file log: reads the secret from the environment and opens
    /// the file. A database log is opened by `loomflow::open_audit_log`
    /// (with the `sqlite` or `postgres` feature); here it is an error that
    /// says so.
    pub fn open(&self) -> Result<Arc<dyn AuditLog>, ConfigError> {
        let AuditBackend::File(path) = &self.backend else {
            return Err(ConfigError::invalid(
                "audit_log",
                format!(
                    "`{}` is a database: open it with `loomflow::open_audit_log(&spec).await` \
                     and pass it to `AgentBuilder::audit_log_arc` (`loomflow run --config` does this)",
                    self.backend
                ),
            ));
        };
        let log = FileAuditLog::open(path, self.secret()?)
            .map_err(|e| ConfigError::invalid("audit_log", e.to_string()))?;
        Ok(self.wrap(log))
    }
}

impl TryFrom<toml::Value> for AuditSpec {
    type Error = ConfigError;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        const KEYS: &[&str] = &[
            "path",
            "name",
            "log",
            "secret_env",
            "full_transcripts",
            "scope_full",
        ];
        let table = match value {
            toml::Value::String(path) => return Ok(Self::new(path.parse()?)),
            toml::Value::Table(t) => t,
            other => {
                return Err(ConfigError::invalid(
                    "audit_log",
                    format!(
                        "must be a location or a table {{ path, secret_env, full_transcripts }}, not a {}",
                        other.type_str()
                    ),
                ));
            }
        };
        let mut backend: Option<AuditBackend> = None;
        let mut spec = Self::new(AuditBackend::File(PathBuf::new()));
        for (key, value) in table {
            match (key.as_str(), value) {
                ("path" | "name", toml::Value::String(p)) => backend = Some(p.parse()?),
                ("log", toml::Value::String(name)) => {
                    if name.trim().is_empty() {
                        return Err(ConfigError::invalid(
                            "audit_log.log",
                            "is empty: name the log, e.g. log = \"main\"",
                        ));
                    }
                    spec.log = Some(name);
                }
                ("secret_env", toml::Value::String(v)) => spec.secret_env = Some(v),
                ("full_transcripts" | "scope_full", toml::Value::Boolean(b)) => {
                    spec.full_transcripts = b
                }
                ("secret", _) => {
                    return Err(ConfigError::invalid(
                        "audit_log.secret",
                        "a signing key does not belong in a config file: put it in an \
                         environment variable and name that variable with secret_env = \"VAR\"",
                    ));
                }
                (k, v) if KEYS.contains(&k) => {
                    return Err(ConfigError::invalid(
                        format!("audit_log.{k}"),
                        format!("has the wrong type ({})", v.type_str()),
                    ));
                }
                (k, _) => {
                    return Err(ConfigError::invalid(
                        format!("audit_log.{k}"),
                        format!(
                            "unknown key{}; the keys are path, log, secret_env and full_transcripts",
                            crate::error::closest(k, KEYS.iter().copied())
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        let Some(backend) = backend else {
            return Err(ConfigError::invalid(
                "audit_log.path",
                "missing: say where the log goes, e.g. path = \"./audit.jsonl\"",
            ));
        };
        if spec.log.is_some() && !backend.holds_named_logs() {
            return Err(ConfigError::invalid(
                "audit_log.log",
                format!(
                    "names a log inside a database, but `{backend}` is a file, which holds one \
                     log: drop `log`, or use a new file for a new log"
                ),
            ));
        }
        spec.backend = backend;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<AuditSpec, String> {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        AuditSpec::try_from(table["audit_log"].clone()).map_err(|e| e.to_string())
    }

    #[test]
    fn locations_and_mistakes() {
        assert_eq!(
            parse(r#"audit_log = "postgres://u:p@h/db""#)
                .unwrap()
                .backend,
            AuditBackend::Postgres("postgres://u:p@h/db".into())
        );
        assert_eq!(
            parse(r#"audit_log = "file:./a.jsonl""#).unwrap().backend,
            AuditBackend::File("./a.jsonl".into())
        );
        let e = parse(r#"audit_log = "redis://h""#).unwrap_err();
        assert!(e.contains("valid choices are a file path"), "{e}");
        let e = parse(r#"audit_log = "sqlite:""#).unwrap_err();
        assert!(e.contains("needs a path"), "{e}");
        let e = parse(r#"audit_log = { path = "./a.jsonl", log = "x" }"#).unwrap_err();
        assert!(e.contains("holds one log"), "{e}");
        let e = parse(r#"audit_log = { path = "./a.jsonl", secret = "x" }"#).unwrap_err();
        assert!(e.contains("does not belong in a config file"), "{e}");
        let e = parse(r#"audit_log = { paht = "./a.jsonl" }"#).unwrap_err();
        assert!(e.contains("did you mean `path`"), "{e}");
        let e = parse(r#"audit_log = { log = "x" }"#).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        let Err(e) = AuditSpec::new("sqlite:./a.db".parse().unwrap()).open() else {
            panic!("a database spec opened in core")
        };
        let e = e.to_string();
        assert!(e.contains("loomflow::open_audit_log"), "{e}");
    }
}
