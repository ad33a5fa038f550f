//! The `telemetry` configuration key.

use std::path::PathBuf;
use std::str::FromStr;

use super::Telemetry;
use crate::error::ConfigError;

const CHOICES: &str = "\"none\", \"console\", \"file:./spans.jsonl\" or \"otel\"";

/// What `telemetry = "…"` names in a config file.
///
/// ```
/// use loomflow_core::telemetry::TelemetrySpec;
///
/// assert_eq!("console".parse::<TelemetrySpec>().unwrap(), TelemetrySpec::Console);
/// assert_eq!(
///     "file:./spans.jsonl".parse::<TelemetrySpec>().unwrap(),
///     TelemetrySpec::File("./spans.jsonl".into()),
/// );
/// let err = "consol".parse::<TelemetrySpec>().unwrap_err().to_string();
/// assert!(err.contains("did you mean \"console\""), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TelemetrySpec {
    /// `"none"`: nothing recorded.
    None,
    /// `"console"`: the live tree on stderr.
    Console,
    /// `"file:<path>"`: JSONL lines appended to the file.
    File(PathBuf),
    /// `"otel"`: OTLP export, configured by the standard
    /// `OTEL_EXPORTER_OTLP_*` variables (needs the `loomflow` crate's `otel`
    /// feature; open it with `loomflow::open_telemetry`).
    Otel,
}

impl FromStr for TelemetrySpec {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(ConfigError::invalid(
                    "telemetry",
                    "`file:` needs a path, as in \"file:./spans.jsonl\"",
                ));
            }
            return Ok(Self::File(path.into()));
        }
        match lower.as_str() {
            "none" | "noop" | "off" => Ok(Self::None),
            "console" => Ok(Self::Console),
            "otel" | "otlp" => Ok(Self::Otel),
            _ => {
                let hint = crate::error::closest(&lower, ["none", "console", "otel", "file:"])
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                Err(ConfigError::invalid(
                    "telemetry",
                    format!("unknown telemetry {s:?}{hint}; use {CHOICES}"),
                ))
            }
        }
    }
}

impl TelemetrySpec {
    /// Adds the sink this names to `builder`. `Otel` is a [`ConfigError`]
    /// here (see [`build`](Self::build)); `None` adds nothing.
    pub fn attach(
        &self,
        builder: super::TelemetryBuilder,
    ) -> Result<super::TelemetryBuilder, ConfigError> {
        match self {
            Self::None => Ok(builder),
            Self::Console => Ok(builder.sink(super::ConsoleSink::stderr())),
            Self::File(path) => {
                let sink = super::JsonlSink::create(path).map_err(|e| {
                    ConfigError::invalid(
                        "telemetry",
                        format!("cannot open `{}` for spans: {e}", path.display()),
                    )
                })?;
                Ok(builder.sink(sink))
            }
            Self::Otel => Err(otel_needs_facade()),
        }
    }

    /// Opens the sinks this names. `Otel` is opened by
    /// `loomflow::open_telemetry` (the exporter lives in `loomflow-otel`);
    /// here it is a [`ConfigError`] saying so. `None` gives `Ok(None)`.
    pub fn build(&self) -> Result<Option<Telemetry>, ConfigError> {
        match self {
            Self::None => Ok(None),
            other => Ok(Some(other.attach(Telemetry::builder())?.build())),
        }
    }
}

fn otel_needs_facade() -> ConfigError {
    ConfigError::invalid(
        "telemetry",
        "\"otel\" needs the loomflow crate's `otel` feature; open it with \
         loomflow::open_telemetry",
    )
}

impl std::fmt::Display for TelemetrySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Console => f.write_str("console"),
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Otel => f.write_str("otel"),
        }
    }
}
