//! The live console tree.

use std::io::Write;
use std::sync::Mutex;

use super::layer::Sink;
use super::record::{AttrValue, Attributes, MetricRecord, SpanRecord, SpanStart, SpanStatus};

/// Prints a live tree of spans: a `▸` line when a span begins (what it is)
/// and a `✓` or `✗` line when it ends (how long it took and what it
/// produced), indented by depth. Writes to stderr unless given a writer.
/// For development; a production service exports over OTLP.
///
/// ```text
/// ▸ loom.run  agent=assistant model=scripted user=alice
///   ▸ loom.turn  turn=1
///     ▸ loom.model.complete  model=scripted
///     ✓ loom.model.complete  0.1 ms  input_tokens=12 output_tokens=9 cost_usd=0 finish=tool_calls
///     ▸ loom.tool  tool=get_weather
///     ✓ loom.tool tool=get_weather  0.2 ms
///   ✓ loom.turn  0.4 ms
/// ✓ loom.run  1.1 ms  turns=2 input_tokens=40 output_tokens=21 cost_usd=0
/// ```
pub struct ConsoleSink {
    out: Mutex<Box<dyn Write + Send>>,
    metrics: bool,
}

impl std::fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSink")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleSink {
    fn default() -> Self {
        Self::stderr()
    }
}

impl ConsoleSink {
    /// Prints to stderr.
    pub fn stderr() -> Self {
        Self::to_writer(std::io::stderr())
    }

    /// Prints to `out`.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
            metrics: false,
        }
    }

    /// Prints metric points too (off by default).
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    fn write(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A console that cannot be written to is not worth failing a run.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// The attributes that say what a span is, shown when it begins.
const LABELS: &[(&str, &str)] = &[
    ("gen_ai.agent.name", "agent"),
    ("loom.workflow.name", "workflow"),
    ("loom.workflow.node", "node"),
    ("loom.workflow.step", "step"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.tool.name", "tool"),
    ("loom.turn", "turn"),
    ("loom.user_id", "user"),
];

/// Identifiers, left off the console's end lines.
const IDS: &[&str] = &[
    "gen_ai.conversation.id",
    "loom.session_id",
    "loom.run_id",
    "loom.user_id",
];

/// Short names for result attributes, shown when a span ends.
fn short(key: &str) -> &str {
    match key {
        "gen_ai.usage.input_tokens" => "input_tokens",
        "gen_ai.usage.output_tokens" => "output_tokens",
        "gen_ai.usage.cache_read.input_tokens" => "cached_tokens",
        "gen_ai.usage.cache_creation.input_tokens" => "cache_write_tokens",
        "gen_ai.response.finish_reasons" => "finish",
        other => other.strip_prefix("loom.").unwrap_or(other),
    }
}

fn push_value(line: &mut String, value: &AttrValue) {
    use std::fmt::Write as _;
    match value {
        AttrValue::Str(s) if s.chars().count() > 80 => {
            let cut: String = s.chars().take(77).collect();
            let _ = write!(line, "{cut:?}…");
        }
        AttrValue::Str(s) if s.contains(' ') || s.is_empty() => {
            let _ = write!(line, "{s:?}");
        }
        AttrValue::Float(x) => {
            let _ = write!(line, "{}", (x * 1e6).round() / 1e6);
        }
        other => {
            let _ = write!(line, "{other}");
        }
    }
}

fn labels(line: &mut String, attributes: &Attributes) {
    let mut first = true;
    for (key, label) in LABELS {
        if let Some(value) = attributes.get(key) {
            line.push_str(if first { "  " } else { " " });
            first = false;
            line.push_str(label);
            line.push('=');
            push_value(line, value);
        }
    }
}

impl Sink for ConsoleSink {
    fn span_started(&self, span: &SpanStart<'_>) {
        let mut line = "  ".repeat(span.depth);
        line.push_str("▸ ");
        line.push_str(span.name);
        labels(&mut line, span.attributes);
        line.push('\n');
        self.write(&line);
    }

    fn span_ended(&self, span: &SpanRecord) {
        use std::fmt::Write as _;
        let mut line = "  ".repeat(span.depth);
        line.push_str(match span.status {
            SpanStatus::Ok => "✓ ",
            SpanStatus::Error => "✗ ",
        });
        line.push_str(span.name);
        // Which one ended, where siblings interleave (concurrent tools, a
        // fan-out's nodes).
        for (key, label) in [("gen_ai.tool.name", "tool"), ("loom.workflow.step", "step")] {
            if let Some(value) = span.attributes.get(key) {
                line.push(' ');
                line.push_str(label);
                line.push('=');
                push_value(&mut line, value);
            }
        }
        let _ = write!(line, "  {:.1} ms", span.duration_ms);
        let mut first = true;
        // Results only: flags when set (`interrupted=true`), and not the
        // ids a run records once it has them (the JSONL file and exporters
        // keep those).
        let shown = span
            .late_attributes()
            .filter(|(k, v)| !matches!(v, AttrValue::Bool(false)) && !IDS.contains(k));
        for (key, value) in shown {
            line.push_str(if first { "  " } else { " " });
            first = false;
            line.push_str(short(key));
            line.push('=');
            push_value(&mut line, value);
        }
        line.push('\n');
        self.write(&line);
    }

    fn metric(&self, metric: &MetricRecord) {
        if !self.metrics {
            return;
        }
        let mut line = format!("  metric {} = {}", metric.name, metric.value);
        if !metric.unit.is_empty() {
            line.push(' ');
            line.push_str(metric.unit);
        }
        for (key, value) in metric.attributes.iter() {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            push_value(&mut line, value);
        }
        line.push('\n');
        self.write(&line);
    }
}
