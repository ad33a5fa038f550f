//! [`RuntimeSpec`]: where a journal lives, as written in config files and on
//! the command line.

use std::path::PathBuf;

use crate::error::ConfigError;

/// The default journal file of the CLI and of `runtime = "sqlite"`.
pub const DEFAULT_SQLITE_PATH: &str = ".loomflow/journal.db";

/// A journal location: `"memory"` (or the reference's `"inproc"`),
/// `"sqlite"` (`.loomflow/journal.db`), `"sqlite:<path>"`, or a
/// `postgres://…` / `postgresql://…` URL. The `loomflow` facade opens it
/// (`loomflow::open_journal`), with the backend's feature on.
///
/// ```
/// use loomflow_core::journal::RuntimeSpec;
///
/// assert_eq!("sqlite:./j.db".parse::<RuntimeSpec>().unwrap(), RuntimeSpec::Sqlite("./j.db".into()));
/// assert!(matches!("postgres://u@localhost/db".parse(), Ok(RuntimeSpec::Postgres(_))));
/// let err = "redis://x".parse::<RuntimeSpec>().unwrap_err();
/// assert!(err.to_string().contains("valid choices are"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeSpec {
    /// In this process's memory.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Postgres database URL.
    Postgres(String),
}

impl std::str::FromStr for RuntimeSpec {
    type Err = ConfigError;

    fn from_str(spec: &str) -> Result<Self, ConfigError> {
        let spec = spec.trim();
        match spec {
            "memory" | "inproc" => return Ok(Self::Memory),
            "sqlite" => return Ok(Self::Sqlite(DEFAULT_SQLITE_PATH.into())),
            _ => {}
        }
        if let Some(path) = spec.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(ConfigError::invalid(
                    "runtime",
                    "`sqlite:` needs a path, e.g. \"sqlite:./journal.db\"",
                ));
            }
            return Ok(Self::Sqlite(path.into()));
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Self::Postgres(spec.to_owned()));
        }
        Err(ConfigError::invalid(
            "runtime",
            format!(
                "unknown runtime {spec:?}; valid choices are \"memory\", \"sqlite\", \"sqlite:<path>\" and \"postgres://…\""
            ),
        ))
    }
}

impl std::fmt::Display for RuntimeSpec {
    /// The spec as written, with a Postgres password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// `url` with the password (if any) replaced by `***`.
///
/// ```
/// use loomflow_core::journal::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
/// assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
