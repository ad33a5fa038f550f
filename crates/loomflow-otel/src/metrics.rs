//! loomflow's metric events as OpenTelemetry instruments.

use std::collections::HashMap;
use std::sync::Mutex;

use loomflow_core::telemetry::{
    INSTRUMENTS, Instrument, InstrumentKind, METRIC_TARGET, instrument_for,
};
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

#[derive(Clone)]
enum Recorder {
    Counter(Counter<f64>),
    Histogram(Histogram<f64>),
}

impl Recorder {
    fn new(meter: &Meter, name: String, i: &Instrument) -> Self {
        match i.kind {
            InstrumentKind::Histogram => {
                let mut b = meter
                    .f64_histogram(name)
                    .with_unit(i.unit)
                    .with_description(i.description);
                if let Some(buckets) = i.buckets {
                    b = b.with_boundaries(buckets.to_vec());
                }
                Self::Histogram(b.build())
            }
            _ => Self::Counter(
                meter
                    .f64_counter(name)
                    .with_unit(i.unit)
                    .with_description(i.description)
                    .build(),
            ),
        }
    }

    fn record(&self, value: f64, attributes: &[KeyValue]) {
        match self {
            Self::Counter(c) => c.add(value, attributes),
            Self::Histogram(h) => h.record(value, attributes),
        }
    }
}

/// Records each `loom.metric` event on its instrument: loomflow's own made
/// up front, any other made on first use.
pub(crate) struct MetricsBridge {
    meter: Meter,
    known: HashMap<&'static str, Recorder>,
    other: Mutex<HashMap<String, Recorder>>,
}

impl MetricsBridge {
    pub(crate) fn new(provider: &SdkMeterProvider) -> Self {
        let meter = provider.meter("loomflow");
        let known = INSTRUMENTS
            .iter()
            .map(|i| (i.name, Recorder::new(&meter, i.name.to_owned(), i)))
            .collect();
        Self {
            meter,
            known,
            other: Mutex::new(HashMap::new()),
        }
    }

    fn recorder(&self, name: &str) -> Recorder {
        if let Some(r) = self.known.get(name) {
            return r.clone();
        }
        let mut other = self.other.lock().unwrap_or_else(|e| e.into_inner());
        other
            .entry(name.to_owned())
            .or_insert_with(|| Recorder::new(&self.meter, name.to_owned(), &instrument_for(name)))
            .clone()
    }
}

/// A metric event being read: its recorder (looked up by name as soon as
/// the name field is seen, without copying it), value and attributes.
struct Point<'b> {
    bridge: &'b MetricsBridge,
    recorder: Option<Recorder>,
    value: f64,
    attributes: Vec<KeyValue>,
}

impl Point<'_> {
    fn attr(&mut self, field: &Field, value: Value) {
        self.attributes
            .push(KeyValue::new(Key::from_static_str(field.name()), value));
    }
}

impl Visit for Point<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.attr(field, Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "loom.metric" => self.recorder = Some(self.bridge.recorder(value)),
            _ => self.attr(field, Value::from(value.to_owned())),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "loom.value" => self.value = value as f64,
            _ => self.attr(field, Value::I64(value)),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "loom.value" => self.value = value as f64,
            _ => self.attr(field, Value::I64(i64::try_from(value).unwrap_or(i64::MAX))),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "loom.value" => self.value = value,
            _ => self.attr(field, Value::F64(value)),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attr(field, Value::Bool(value));
    }
}

impl<S: Subscriber> Layer<S> for MetricsBridge {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if event.metadata().target() != METRIC_TARGET {
            return;
        }
        let mut point = Point {
            bridge: self,
            recorder: None,
            value: 0.0,
            attributes: Vec::with_capacity(event.fields().count().saturating_sub(2)),
        };
        event.record(&mut point);
        if let Some(recorder) = &point.recorder {
            recorder.record(point.value, &point.attributes);
        }
    }
}
