//! The subscriber layer that turns loomflow's spans and metric events into
//! records for the sinks.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes as SpanAttrs, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::record::{
    AttrValue, Attributes, MetricRecord, SpanId, SpanRecord, SpanStart, SpanStatus, TraceId,
};
use super::semconv::{METRIC_TARGET, instrument_for};

/// Where finished spans and metric points go. Implement it for your own
/// destination; the built-in ones are [`InMemorySink`](super::InMemorySink),
/// [`ConsoleSink`](super::ConsoleSink) and [`JsonlSink`](super::JsonlSink).
///
/// Calls come from the thread that ended the span: keep them short (queue
/// slow work, as [`JsonlSink`](super::JsonlSink) does).
pub trait Sink: Send + Sync + 'static {
    /// A span began (for live views; most sinks ignore it).
    fn span_started(&self, _span: &SpanStart<'_>) {}

    /// A span ended.
    fn span_ended(&self, span: &SpanRecord);

    /// A metric point was recorded.
    fn metric(&self, _metric: &MetricRecord) {}

    /// Writes out anything buffered; returns when it is written.
    fn flush(&self) {}
}

/// Lets only loomflow's own spans through (names starting `loom.`), so a
/// sink or exporter never sees other libraries' spans.
///
/// Its interest in loomflow's callsites is "sometimes", never "always":
/// `tracing` caches interest per callsite across every dispatcher that ever
/// lived, and "always" would keep the spans of an agent without telemetry
/// (or outlive a dropped one) switched on with nothing to record them. With
/// "sometimes", the dispatcher current at each span decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoomSpans;

impl<S> Filter<S> for LoomSpans {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        meta.is_span() && meta.name().starts_with("loom.")
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        match meta.is_span() && meta.name().starts_with("loom.") {
            true => tracing::subscriber::Interest::sometimes(),
            false => tracing::subscriber::Interest::never(),
        }
    }
}

/// Lets only loomflow's metric events through (target `loom.metric`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoomMetrics;

impl<S> Filter<S> for LoomMetrics {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        meta.is_event() && meta.target() == METRIC_TARGET
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        match meta.is_event() && meta.target() == METRIC_TARGET {
            true => tracing::subscriber::Interest::sometimes(),
            false => tracing::subscriber::Interest::never(),
        }
    }
}

/// Lets loomflow's spans and its metric events through.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoomSpansAndMetrics;

fn spans_or_metrics(meta: &Metadata<'_>) -> bool {
    match meta.is_span() {
        true => meta.name().starts_with("loom."),
        false => meta.target() == METRIC_TARGET,
    }
}

impl<S> Filter<S> for LoomSpansAndMetrics {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        spans_or_metrics(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        match spans_or_metrics(meta) {
            true => tracing::subscriber::Interest::sometimes(),
            false => tracing::subscriber::Interest::never(),
        }
    }
}

/// What the layer keeps for an open span.
struct Open {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    depth: usize,
    started_at: chrono::DateTime<Utc>,
    clock: Instant,
    attributes: Attributes,
    start_len: usize,
}

/// A [`Layer`] that records loomflow's spans and metric points and hands
/// them to [`Sink`]s. All sinks see the same ids. Use it behind
/// [`LoomSpansAndMetrics`] (what [`Telemetry`](super::Telemetry) does) so
/// other libraries' spans cost nothing.
pub struct SinkLayer {
    sinks: Arc<[Arc<dyn Sink>]>,
}

impl SinkLayer {
    /// A layer feeding `sinks`.
    pub fn new(sinks: impl Into<Arc<[Arc<dyn Sink>]>>) -> Self {
        Self {
            sinks: sinks.into(),
        }
    }
}

impl std::fmt::Debug for SinkLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkLayer")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id;
        }
    }
}

impl<S> Layer<S> for SinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &SpanAttrs<'_>, id: &Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else {
            return;
        };
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<Open>()
                .map(|o| (o.trace_id, o.span_id, o.depth))
        });
        let (trace_id, parent_span_id, depth) = match parent {
            Some((trace, parent, depth)) => (trace, Some(parent), depth + 1),
            None => (TraceId(nonzero_u128()), None, 0),
        };
        let mut attributes = Attributes::with_capacity(attrs.fields().len());
        attrs.record(&mut Collect(&mut attributes));
        let open = Open {
            trace_id,
            span_id: SpanId(nonzero_u64()),
            parent_span_id,
            depth,
            started_at: Utc::now(),
            clock: Instant::now(),
            start_len: attributes.len(),
            attributes,
        };
        let start = SpanStart {
            name: span.name(),
            trace_id: open.trace_id,
            span_id: open.span_id,
            parent_span_id: open.parent_span_id,
            depth: open.depth,
            attributes: &open.attributes,
        };
        for sink in self.sinks.iter() {
            sink.span_started(&start);
        }
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        if let Some(open) = ext.get_mut::<Open>() {
            values.record(&mut Collect(&mut open.attributes));
        }
    }

    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if event.metadata().target() != METRIC_TARGET {
            return;
        }
        let mut point = Point {
            name: None,
            value: 0.0,
            attributes: Attributes::with_capacity(event.fields().count().saturating_sub(2)),
        };
        event.record(&mut point);
        let Some(name) = point.name else {
            return;
        };
        let instrument = instrument_for(&name);
        let record = MetricRecord {
            name,
            value: point.value,
            instrument: instrument.kind,
            unit: instrument.unit,
            attributes: point.attributes,
            at: Utc::now(),
        };
        for sink in self.sinks.iter() {
            sink.metric(&record);
        }
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(&id) else {
            return;
        };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let status = match open.attributes.contains("error.type") {
            true => SpanStatus::Error,
            false => SpanStatus::Ok,
        };
        let record = SpanRecord {
            name: span.name(),
            trace_id: open.trace_id,
            span_id: open.span_id,
            parent_span_id: open.parent_span_id,
            depth: open.depth,
            started_at: open.started_at,
            ended_at: Utc::now(),
            duration_ms: open.clock.elapsed().as_secs_f64() * 1000.0,
            status,
            attributes: open.attributes,
            start_len: open.start_len,
        };
        for sink in self.sinks.iter() {
            sink.span_ended(&record);
        }
    }
}

/// Fields meant for exporters only (`otel.name`, `otel.kind`,
/// `loom.span.name`): skipped without formatting them.
fn exporter_only(name: &str) -> bool {
    name.starts_with("otel.") || name == "loom.span.name"
}

/// Collects span fields into attributes.
struct Collect<'a>(&'a mut Attributes);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !exporter_only(field.name()) {
            self.0
                .set(field.name(), AttrValue::Str(format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !exporter_only(field.name()) {
            self.0.set(field.name(), AttrValue::Str(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), AttrValue::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(
            field.name(),
            AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), AttrValue::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), AttrValue::Bool(value));
    }
}

/// Collects a metric event: `loom.metric` (its name: loomflow's own are
/// borrowed from the instrument table, not copied), `loom.value`, and the
/// rest as attributes.
struct Point {
    name: Option<Cow<'static, str>>,
    value: f64,
    attributes: Attributes,
}

impl Visit for Point {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.attributes
            .set(field.name(), AttrValue::Str(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "loom.metric" => {
                let known = instrument_for(value).name;
                self.name = Some(match known.is_empty() {
                    true => Cow::Owned(value.to_owned()),
                    false => Cow::Borrowed(known),
                });
            }
            name => self.attributes.set(name, AttrValue::Str(value.to_owned())),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "loom.value" => self.value = value as f64,
            name => self.attributes.set(name, AttrValue::Int(value)),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "loom.value" => self.value = value as f64,
            name => self.attributes.set(
                name,
                AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
            ),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "loom.value" => self.value = value,
            name => self.attributes.set(name, AttrValue::Float(value)),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.set(field.name(), AttrValue::Bool(value));
    }
}
