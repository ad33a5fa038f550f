//! The cost of observing: the agent run of `agent_overhead` (12 spans and
//! 24 metric points per run) with no sink, with a sink that only counts,
//! with the in-memory sink, and exported over OTLP/HTTP (batched) to the
//! testkit's receiver. Per span = (traced − untraced) / 12, metric points
//! included.
//!
//! cargo bench -p loomflow-bench --bench telemetry_overhead

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use loomflow::telemetry::{InMemorySink, MetricRecord, Sink, SpanRecord, Telemetry};
use loomflow_bench::{bench_agent, bench_agent_traced, runtime};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// Counts what it is given and keeps nothing.
#[derive(Default)]
struct Counting {
    spans: AtomicUsize,
    metrics: AtomicUsize,
}

impl Sink for Counting {
    fn span_ended(&self, _span: &SpanRecord) {
        self.spans.fetch_add(1, Ordering::Relaxed);
    }

    fn metric(&self, _metric: &MetricRecord) {
        self.metrics.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(agent: &loomflow::Agent, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let r = agent.run("prompt").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.turns, 4);
    });
}

/// No telemetry anywhere: the instrumentation's floor.
#[divan::bench]
fn no_sink(bencher: divan::Bencher) {
    let rt = runtime();
    let agent = bench_agent(None);
    bencher.bench_local(|| run(&agent, &rt));
}

/// The layer and a sink that only counts: spans and metric points built
/// and handed over.
#[divan::bench]
fn counting_sink(bencher: divan::Bencher) {
    let rt = runtime();
    let counting = Arc::new(Counting::default());
    let agent = bench_agent_traced(Telemetry::builder().sink_arc(counting.clone()).build());
    run(&agent, &rt);
    assert_eq!(counting.spans.load(Ordering::Relaxed), 12);
    // Per model call: 2 token counters and the GenAI duration and 2 usage
    // points; per tool call 1; per run 1 (the scripted model costs $0).
    assert_eq!(counting.metrics.load(Ordering::Relaxed), 24);
    bencher.bench_local(|| run(&agent, &rt));
}

/// The in-memory sink (cleared after each run so it does not grow).
#[divan::bench]
fn in_memory_sink(bencher: divan::Bencher) {
    let rt = runtime();
    let sink = InMemorySink::new();
    let agent = bench_agent_traced(Telemetry::builder().sink(sink.clone()).build());
    bencher.bench_local(|| {
        run(&agent, &rt);
        sink.clear();
    });
}

/// A receiver on its own runtime for the whole bench.
fn receiver() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let receiver = loomflow_testkit::otlp::OtlpReceiver::start().await;
                tx.send(receiver.http_endpoint().to_owned()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    })
}

/// OTLP/HTTP export, batched on the SDK's thread, to a real receiver.
#[divan::bench]
fn otlp_http_batched(bencher: divan::Bencher) {
    let rt = runtime();
    let otlp = loomflow::otel::Otlp::builder()
        .endpoint(receiver())
        .protocol(loomflow::otel::Protocol::HttpProtobuf)
        .build()
        .unwrap();
    let agent = bench_agent_traced(otlp.telemetry());
    bencher.bench_local(|| run(&agent, &rt));
    otlp.flush();
}

/// The same export with metrics off: what the spans alone cost.
#[divan::bench]
fn otlp_http_batched_spans_only(bencher: divan::Bencher) {
    let rt = runtime();
    let otlp = loomflow::otel::Otlp::builder()
        .endpoint(receiver())
        .protocol(loomflow::otel::Protocol::HttpProtobuf)
        .metrics(false)
        .build()
        .unwrap();
    let agent = bench_agent_traced(otlp.telemetry());
    bencher.bench_local(|| run(&agent, &rt));
    otlp.flush();
}
