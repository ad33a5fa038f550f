//! The in-memory sink, for tests and tinkering.

use std::sync::{Arc, Mutex, MutexGuard};

use super::layer::Sink;
use super::record::{MetricRecord, SpanId, SpanRecord};

#[derive(Debug, Default)]
struct Store {
    spans: Vec<SpanRecord>,
    metrics: Vec<MetricRecord>,
}

/// Keeps every span and metric point in memory, for assertions. Clones
/// share the store. Not for production: it grows without bound.
///
/// ```
/// use loomflow_core::Agent;
/// use loomflow_core::telemetry::{InMemorySink, Telemetry};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let spans = InMemorySink::new();
/// let agent = Agent::builder()
///     .model("echo")
///     .telemetry(Telemetry::builder().sink(spans.clone()).build())
///     .build()
///     .unwrap();
/// agent.run("hi").await.unwrap();
/// let run = spans.named("loom.run").pop().unwrap();
/// assert_eq!(run.attributes.str("gen_ai.request.model"), Some("echo"));
/// assert_eq!(spans.children_of(&run)[0].name, "loom.turn");
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemorySink {
    store: Arc<Mutex<Store>>,
}

impl InMemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every finished span, in the order they ended (children before
    /// parents).
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.store().spans.clone()
    }

    /// The finished spans called `name`, in the order they ended.
    pub fn named(&self, name: &str) -> Vec<SpanRecord> {
        self.store()
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The finished spans whose parent is `parent`, in the order they
    /// began.
    pub fn children_of(&self, parent: &SpanRecord) -> Vec<SpanRecord> {
        self.children_of_id(parent.span_id)
    }

    fn children_of_id(&self, parent: SpanId) -> Vec<SpanRecord> {
        let mut children: Vec<SpanRecord> = self
            .store()
            .spans
            .iter()
            .filter(|s| s.parent_span_id == Some(parent))
            .cloned()
            .collect();
        children.sort_by_key(|s| s.started_at);
        children
    }

    /// The span with id `id`.
    pub fn span(&self, id: SpanId) -> Option<SpanRecord> {
        self.store().spans.iter().find(|s| s.span_id == id).cloned()
    }

    /// Every metric point, in the order they were recorded.
    pub fn metrics(&self) -> Vec<MetricRecord> {
        self.store().metrics.clone()
    }

    /// The sum of metric `name`'s points.
    pub fn metric_total(&self, name: &str) -> f64 {
        self.store()
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.value)
            .sum()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        let mut store = self.store();
        store.spans.clear();
        store.metrics.clear();
    }
}

impl Sink for InMemorySink {
    fn span_ended(&self, span: &SpanRecord) {
        self.store().spans.push(span.clone());
    }

    fn metric(&self, metric: &MetricRecord) {
        self.store().metrics.push(metric.clone());
    }
}
