//! What the sinks receive: finished spans and metric points.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A trace id: 128 random bits, printed as 32 hex digits (OpenTelemetry's
/// format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

/// A span id: 64 random bits, printed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for SpanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A flag.
    Bool(bool),
}

impl AttrValue {
    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a whole number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The flag, if this is a flag.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A span's or a metric point's attributes, in the order they were set
/// (serialised as a JSON object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Vec<(&'static str, AttrValue)>);

impl Attributes {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The text value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(AttrValue::as_str)
    }

    /// The whole-number value of `key`.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(AttrValue::as_i64)
    }

    /// True when `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The attributes in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &AttrValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` (replacing an earlier value).
    pub(crate) fn set(&mut self, key: &'static str, value: AttrValue) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Whether a span ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    /// No error recorded.
    Ok,
    /// An `error.type` was recorded.
    Error,
}

/// A span as it began: what a live view prints.
#[derive(Debug)]
#[non_exhaustive]
pub struct SpanStart<'a> {
    /// `loom.run`, `loom.tool`, …
    pub name: &'static str,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent, `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// How many loomflow spans enclose it (0 for a root).
    pub depth: usize,
    /// The attributes known when it began.
    pub attributes: &'a Attributes,
}

/// A finished span.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SpanRecord {
    /// `loom.run`, `loom.turn`, `loom.model.stream`, `loom.model.complete`,
    /// `loom.tool`, `loom.workflow`, `loom.workflow.step`.
    pub name: &'static str,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent, `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// How many loomflow spans enclosed it (0 for a root).
    pub depth: usize,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// `error` when an `error.type` was recorded.
    pub status: SpanStatus,
    /// Every attribute, those set when it began first.
    pub attributes: Attributes,
    /// How many of `attributes` were set when it began.
    #[serde(skip)]
    pub(crate) start_len: usize,
}

impl SpanRecord {
    /// The attributes set after the span began (results: tokens, cost,
    /// decisions, errors).
    pub fn late_attributes(&self) -> impl Iterator<Item = (&'static str, &AttrValue)> {
        self.attributes.iter().skip(self.start_len)
    }
}

/// What a metric instrument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// A monotonic sum.
    Counter,
    /// A distribution.
    Histogram,
}

/// One recorded metric point.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MetricRecord {
    /// `loom.tokens.input`, `gen_ai.client.operation.duration`, …
    pub name: Cow<'static, str>,
    /// The value added (counter) or observed (histogram).
    pub value: f64,
    /// Counter or histogram.
    pub instrument: InstrumentKind,
    /// The unit (`ms`, `s`, `{token}`, `USD`, or empty).
    pub unit: &'static str,
    /// Its attributes (never a session or run id).
    pub attributes: Attributes,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}
