//! OTLP export for loomflow's spans and metrics.
//!
//! [`Otlp`] sends what [`loomflow_core::telemetry`] records to any
//! OpenTelemetry backend (a collector, Jaeger, Honeycomb, Datadog, Grafana
//! Tempo, …) over OTLP/HTTP with protobuf bodies or OTLP/gRPC. Spans go
//! through `tracing-opentelemetry` and are named by the GenAI semantic
//! conventions (`invoke_agent <agent>`, `chat <model>` of kind client,
//! `execute_tool <tool>`), keeping loomflow's name as `loom.span.name`;
//! metric points become OpenTelemetry counters and histograms (the
//! conventions' bucket boundaries for `gen_ai.client.*`). Both are batched
//! on background threads.
//!
//! The standard variables configure it when the builder does not:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (and the `_TRACES_` / `_METRICS_`
//! variants), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default,
//! or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! ```no_run
//! use loomflow_core::Agent;
//! use loomflow_core::telemetry::{ConsoleSink, Telemetry};
//! use loomflow_otel::{Otlp, Protocol};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let otlp = Otlp::builder()
//!     .endpoint("http://collector:4317")
//!     .protocol(Protocol::Grpc)
//!     .service_name("support-bot")
//!     .build()?;
//! // Export, and watch the tree on stderr too.
//! let telemetry = otlp.attach(Telemetry::builder().sink(ConsoleSink::stderr())).build();
//! let agent = Agent::builder().model("echo").telemetry(telemetry.clone()).build()?;
//! agent.run("hi").await?;
//! telemetry.flush(); // before the process exits
//! # Ok(()) }
//! ```

mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use loomflow_core::telemetry::{BoxLayer, LoomMetrics, LoomSpans, Telemetry, TelemetryBuilder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::Registry;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`; port 4318 by
    /// convention). The default.
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`; port 4317 by convention).
    Grpc,
}

impl std::str::FromStr for Protocol {
    type Err = OtelError;

    fn from_str(s: &str) -> Result<Self, OtelError> {
        match s.trim() {
            "http/protobuf" | "http" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            other => Err(OtelError::UnsupportedProtocol(other.to_owned())),
        }
    }
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// A protocol other than `http/protobuf` or `grpc`.
    #[error(
        "OTLP protocol {0:?} is not supported: use \"http/protobuf\" or \"grpc\" \
         (OTEL_EXPORTER_OTLP_PROTOCOL or Otlp::builder().protocol(..))"
    )]
    UnsupportedProtocol(String),
    /// The exporter rejected its configuration (a malformed endpoint or
    /// header, …).
    #[error("the OTLP {signal} exporter could not be built: {message}")]
    Build {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What was wrong.
        message: String,
    },
    /// gRPC export was asked for outside a tokio runtime.
    #[error("OTLP over gRPC needs a tokio runtime: build the exporter inside one")]
    NoRuntime,
}

/// Builds the `$exporter` (span or metric) for `$signal` over `$protocol`
/// with the builder's endpoint, headers and timeout. A macro: the two
/// exporters' builders share their methods but no trait to be generic over.
macro_rules! exporter {
    ($this:expr, $protocol:expr, $exporter:path, $signal:literal) => {{
        let this: &OtlpBuilder = $this;
        let built = match $protocol {
            Protocol::HttpProtobuf => {
                let mut b = <$exporter>::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_headers(this.http_headers());
                if let Some(url) = &this.endpoint {
                    b = b.with_endpoint(signal_url(url, $signal));
                }
                if let Some(t) = this.timeout {
                    b = b.with_timeout(t);
                }
                b.build()
            }
            Protocol::Grpc => {
                let mut b = <$exporter>::builder()
                    .with_tonic()
                    .with_metadata(this.grpc_metadata($signal)?);
                if let Some(url) = &this.endpoint {
                    b = b.with_endpoint(url.clone());
                }
                if let Some(t) = this.timeout {
                    b = b.with_timeout(t);
                }
                b.build()
            }
        };
        built.map_err(|e| OtelError::Build {
            signal: $signal,
            message: e.to_string(),
        })
    }};
}

/// Builds an [`Otlp`] exporter. Whatever is not set comes from the
/// standard `OTEL_*` variables, then the OTLP defaults.
#[derive(Debug, Clone)]
pub struct OtlpBuilder {
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    service_name: Option<String>,
    timeout: Option<Duration>,
    metric_interval: Duration,
    metrics: bool,
}

impl Default for OtlpBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: None,
            headers: Vec::new(),
            service_name: None,
            timeout: None,
            metric_interval: Duration::from_secs(60),
            metrics: true,
        }
    }
}

impl OtlpBuilder {
    /// The collector's base URL (`http://host:4318` for HTTP, where
    /// `/v1/traces` and `/v1/metrics` are appended; `http://host:4317` for
    /// gRPC). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`, else localhost.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The transport. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// HTTP/protobuf.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// A header sent with every export (an API key); adds to
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `service.name`. Default: `OTEL_SERVICE_NAME`, else `loomflow`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// How long one export may take. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`,
    /// else 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How often metrics are exported (default 60 s; [`Otlp::flush`]
    /// exports at once).
    pub fn metric_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = interval;
        self
    }

    /// Exports metrics too (default on).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    fn resolved_protocol(&self) -> Result<Protocol, OtelError> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Ok(value) = std::env::var(var)
                && !value.trim().is_empty()
            {
                return value.parse();
            }
        }
        Ok(Protocol::HttpProtobuf)
    }

    fn resource(&self) -> Resource {
        let builder = Resource::builder();
        match (&self.service_name, std::env::var_os("OTEL_SERVICE_NAME")) {
            (Some(name), _) => builder.with_service_name(name.clone()),
            (None, Some(_)) => builder,
            (None, None) => builder.with_service_name("loomflow"),
        }
        .build()
    }

    /// Builds the exporter (gRPC needs to be inside a tokio runtime).
    pub fn build(self) -> Result<Otlp, OtelError> {
        let protocol = self.resolved_protocol()?;
        if protocol == Protocol::Grpc && tokio::runtime::Handle::try_current().is_err() {
            return Err(OtelError::NoRuntime);
        }
        let resource = self.resource();
        let spans = self.span_exporter(protocol)?;
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let meter = match self.metrics {
            true => {
                let exporter = self.metric_exporter(protocol)?;
                let reader = PeriodicReader::builder(exporter)
                    .with_interval(self.metric_interval)
                    .build();
                Some(
                    SdkMeterProvider::builder()
                        .with_reader(reader)
                        .with_resource(resource)
                        .build(),
                )
            }
            false => None,
        };
        Ok(Otlp {
            inner: Arc::new(Inner {
                tracer,
                meter,
                protocol,
            }),
        })
    }

    fn http_headers(&self) -> HashMap<String, String> {
        self.headers.iter().cloned().collect()
    }

    fn grpc_metadata(
        &self,
        signal: &'static str,
    ) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, OtelError> {
        use http::header::{HeaderMap, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let key =
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|e| {
                    OtelError::Build {
                        signal,
                        message: format!("header name {name:?}: {e}"),
                    }
                })?;
            let value = HeaderValue::from_str(value).map_err(|e| OtelError::Build {
                signal,
                message: format!("header {name:?}: {e}"),
            })?;
            headers.insert(key, value);
        }
        let map = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
        Ok(map)
    }

    fn span_exporter(
        &self,
        protocol: Protocol,
    ) -> Result<opentelemetry_otlp::SpanExporter, OtelError> {
        exporter!(self, protocol, opentelemetry_otlp::SpanExporter, "traces")
    }

    fn metric_exporter(
        &self,
        protocol: Protocol,
    ) -> Result<opentelemetry_otlp::MetricExporter, OtelError> {
        exporter!(
            self,
            protocol,
            opentelemetry_otlp::MetricExporter,
            "metrics"
        )
    }
}

/// `base` + `/v1/<signal>`, as the OTLP spec builds HTTP URLs from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

struct Inner {
    tracer: SdkTracerProvider,
    meter: Option<SdkMeterProvider>,
    protocol: Protocol,
}

/// An OTLP exporter: the providers batching spans and metrics, and the
/// layer that feeds them. Cheap to clone; when the last clone and the last
/// layer made from it are dropped, the SDK sends what is left and stops its
/// background threads.
///
/// [`flush`](Self::flush) and the last drop wait for the export. Over gRPC
/// the export runs on the tokio runtime the exporter was built in, so do
/// not call them on the thread of a current-thread runtime (use
/// [`Telemetry::flushed`], which waits on a blocking thread).
#[derive(Clone)]
pub struct Otlp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("protocol", &self.inner.protocol)
            .field("metrics", &self.inner.meter.is_some())
            .finish_non_exhaustive()
    }
}

impl Otlp {
    /// Starts building one.
    pub fn builder() -> OtlpBuilder {
        OtlpBuilder::default()
    }

    /// Configured by the `OTEL_*` variables alone.
    pub fn from_env() -> Result<Self, OtelError> {
        Self::builder().build()
    }

    /// The transport in use.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// The subscriber layer: loomflow's spans to the tracer provider (GenAI
    /// names, no code locations or thread ids), its metric events to the
    /// meter provider. Add it to a [`TelemetryBuilder`] (see
    /// [`attach`](Self::attach)).
    pub fn layer(&self) -> BoxLayer {
        let tracer = self.inner.tracer.tracer("loomflow");
        let spans = tracing_opentelemetry::layer::<Registry>()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(LoomSpans);
        match &self.inner.meter {
            Some(meter) => {
                let bridge = metrics::MetricsBridge::new(meter).with_filter(LoomMetrics);
                Box::new(spans.and_then(bridge))
            }
            None => Box::new(spans),
        }
    }

    /// `builder` with this exporter added (and flushed by
    /// [`Telemetry::flush`]).
    pub fn attach(&self, builder: TelemetryBuilder) -> TelemetryBuilder {
        let flushed = self.clone();
        builder
            .layer(self.layer())
            .on_flush(move || flushed.flush())
    }

    /// A [`Telemetry`] that only exports.
    pub fn telemetry(&self) -> Telemetry {
        self.attach(Telemetry::builder()).build()
    }

    /// Exports everything batched so far; returns when it is sent (or the
    /// export failed; failures are logged by the SDK, never raised into a
    /// run).
    pub fn flush(&self) {
        let _ = self.inner.tracer.force_flush();
        if let Some(meter) = &self.inner.meter {
            let _ = meter.force_flush();
        }
    }
}
