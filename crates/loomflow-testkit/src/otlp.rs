//! A real OTLP receiver on loopback ports: the collector services of the
//! official `opentelemetry-proto` definitions, served over gRPC (tonic) and
//! over HTTP with protobuf bodies (`POST /v1/traces`, `POST /v1/metrics`).
//! It decodes what it is sent and keeps it for assertions. No collector
//! binary is installable here; this is the receiving end of the protocol,
//! the same messages a collector decodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use serde_json::Value;

/// How a batch arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf body.
    Http,
}

/// One received span, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Its (exported) name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root.
    pub parent_span_id: String,
    /// The OTLP span kind (1 internal, 2 server, 3 client, …).
    pub kind: i32,
    /// Its attributes, as JSON values.
    pub attributes: BTreeMap<String, Value>,
    /// The status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The resource's attributes (`service.name`, …).
    pub resource: BTreeMap<String, Value>,
    /// How it arrived.
    pub transport: Transport,
}

impl ReceivedSpan {
    /// The text attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// One received metric data point, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    /// The metric's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// `sum` or `histogram` (or another OTLP data kind).
    pub kind: &'static str,
    /// The point's attributes.
    pub attributes: BTreeMap<String, Value>,
    /// A sum's value, or a histogram's sum.
    pub value: f64,
    /// A histogram's count (1 for a sum).
    pub count: u64,
    /// A histogram's explicit bucket bounds.
    pub bounds: Vec<f64>,
    /// How it arrived.
    pub transport: Transport,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    points: Vec<ReceivedPoint>,
}

type Store = Arc<Mutex<Received>>;

fn json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| json(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|k| (k.key.clone(), json(k.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::from(hex(b)),
        _ => Value::Null,
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), json(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn keep_spans(store: &Store, request: ExportTraceServiceRequest, transport: Transport) {
    let mut received = store.lock().unwrap();
    for rs in request.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                received.spans.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    status_code: span.status.map_or(0, |s| s.code),
                    resource: resource.clone(),
                    transport,
                });
            }
        }
    }
}

fn keep_metrics(store: &Store, request: ExportMetricsServiceRequest, transport: Transport) {
    let mut received = store.lock().unwrap();
    for rm in request.resource_metrics {
        for sm in rm.scope_metrics {
            for metric in sm.metrics {
                let point = |kind, attrs: &[KeyValue], value, count, bounds| ReceivedPoint {
                    name: metric.name.clone(),
                    unit: metric.unit.clone(),
                    kind,
                    attributes: attributes(attrs),
                    value,
                    count,
                    bounds,
                    transport,
                };
                match &metric.data {
                    Some(Data::Sum(sum)) => {
                        for p in &sum.data_points {
                            use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
                            let value = match p.value {
                                Some(N::AsDouble(d)) => d,
                                Some(N::AsInt(i)) => i as f64,
                                None => 0.0,
                            };
                            received
                                .points
                                .push(point("sum", &p.attributes, value, 1, Vec::new()));
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            received.points.push(point(
                                "histogram",
                                &p.attributes,
                                p.sum.unwrap_or_default(),
                                p.count,
                                p.explicit_bounds.clone(),
                            ));
                        }
                    }
                    Some(_) => received
                        .points
                        .push(point("other", &[], 0.0, 0, Vec::new())),
                    None => {}
                }
            }
        }
    }
}

struct Grpc(Store);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep_spans(&self.0, request.into_inner(), Transport::Grpc);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        keep_metrics(&self.0, request.into_inner(), Transport::Grpc);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"))
}

async fn http_traces(State(store): State<Store>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_protobuf(&headers) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            keep_spans(&store, request, Transport::Http);
            protobuf(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn http_metrics(State(store): State<Store>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_protobuf(&headers) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            keep_metrics(&store, request, Transport::Http);
            protobuf(ExportMetricsServiceResponse::default().encode_to_vec())
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The running receiver: gRPC and HTTP on two loopback ports. Dropping it
/// stops both.
pub struct OtlpReceiver {
    grpc: String,
    http: String,
    store: Store,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl OtlpReceiver {
    /// Starts both listeners on free loopback ports.
    pub async fn start() -> Self {
        let store: Store = Arc::default();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = format!("http://{}", grpc_listener.local_addr().unwrap());
        let service = Grpc(store.clone());
        let shared = Arc::new(service);
        let traces = TraceServiceServer::from_arc(shared.clone());
        let metrics = MetricsServiceServer::from_arc(shared);
        let grpc_task = tokio::spawn(async move {
            let incoming = tokio_stream_listener(grpc_listener);
            let _ = tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(metrics)
                .serve_with_incoming(incoming)
                .await;
        });
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .route("/v1/metrics", axum::routing::post(http_metrics))
            .with_state(store.clone());
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = format!("http://{}", http_listener.local_addr().unwrap());
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http_listener, app).await;
        });
        Self {
            grpc,
            http,
            store,
            tasks: vec![grpc_task, http_task],
        }
    }

    /// The gRPC endpoint (`http://127.0.0.1:PORT`).
    pub fn grpc_endpoint(&self) -> &str {
        &self.grpc
    }

    /// The HTTP base URL (`http://127.0.0.1:PORT`; the exporter appends
    /// `/v1/traces` and `/v1/metrics`).
    pub fn http_endpoint(&self) -> &str {
        &self.http
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.lock().unwrap().spans.clone()
    }

    /// Every metric point received so far.
    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.store.lock().unwrap().points.clone()
    }

    /// Waits (up to `timeout`) until `ready` holds for the spans received,
    /// and returns them; panics with what did arrive otherwise.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        ready: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                panic!(
                    "the OTLP receiver did not get the spans expected in {timeout:?}; got {names:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The accepted connections of `listener`, as tonic's server wants them.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
