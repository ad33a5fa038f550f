//! A fake LLM provider on a loopback port: it answers each request with the
//! next queued [`Reply`] and records what it was sent. Only the provider HTTP
//! APIs are faked in loomflow's tests; the fixture builders in [`openai`],
//! [`openai_responses`] and [`anthropic`] follow the official wire formats
//! (Chat Completions: `chat.completion.chunk` objects, the `include_usage`
//! usage chunk, `[DONE]`, `{"error": …}` bodies; Responses: sequenced
//! `response.*` events; Messages: named events from `message_start` to
//! `message_stop`, `{"type": "error", …}` bodies). With [`DUMP_VAR`] set,
//! every reply served is written out for `scripts/check_wire.py`.

use std::collections::VecDeque;

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// One queued answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A plain HTTP response.
    Json {
        /// The status code.
        status: u16,
        /// Extra headers (`retry-after`, …).
        headers: Vec<(String, String)>,
        /// The body.
        body: Value,
    },
    /// A `text/event-stream` body: each item is written as one SSE event
    /// (`data: …` plus the blank line; items starting with `event:` are
    /// written as they are).
    Sse {
        /// The events' data.
        events: Vec<String>,
        /// Abort the connection after this many events (a cut mid-stream).
        cut_after: Option<usize>,
    },
    /// Raw bytes with a `text/event-stream` content type (malformed streams).
    RawSse(String),
}

/// What the fake was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request path (`/v1/chat/completions`).
    pub path: String,
    /// The `authorization` header.
    pub authorization: Option<String>,
    /// Every header, names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// The running fake. Dropping it stops the server.
pub struct FakeProvider {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (append `/v1` for OpenAI-style base URLs).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Queues the next answer.
    pub fn push(&self, reply: Reply) -> &Self {
        self.shared
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(reply);
        self
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedRequest {
            path: uri.path().to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
        });
    let next = shared
        .replies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    if let (Some(reply), Some(dir)) = (&next, std::env::var_os(DUMP_VAR)) {
        dump(std::path::Path::new(&dir), uri.path(), reply);
    }
    match next {
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "no reply queued in the fake provider", "type": "invalid_request_error", "code": "no_fixture_match"}})),
        )
            .into_response(),
        Some(Reply::Json {
            status,
            headers,
            body,
        }) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(body),
            )
                .into_response();
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::try_from(k),
                    axum::http::HeaderValue::try_from(v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Some(Reply::RawSse(raw)) => sse_response(Body::from(raw)),
        Some(Reply::Sse { events, cut_after }) => {
            let total = cut_after.unwrap_or(events.len()).min(events.len());
            let cut = cut_after.is_some();
            let frames: Vec<Bytes> = events
                .into_iter()
                .take(total)
                .map(|e| {
                    Bytes::from(if e.starts_with("event:") {
                        format!("{e}\n\n")
                    } else {
                        format!("data: {e}\n\n")
                    })
                })
                .collect();
            let body = futures_util::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
            if cut {
                // Let the frames reach the client, then drop the connection.
                let cut = futures_util::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Err(std::io::Error::other("cut mid-stream"))
                });
                sse_response(Body::from_stream(body.chain(cut)))
            } else {
                sse_response(Body::from_stream(body))
            }
        }
    }
}

/// When set to a directory, every reply the fake serves is also written there
/// as one JSON file, so `scripts/check_wire.py` can check each fixture with
/// the official provider SDKs' own types.
pub const DUMP_VAR: &str = "LOOMFLOW_FIXTURE_DUMP";

/// The provider dialect a request path speaks.
fn dialect(path: &str) -> &'static str {
    if path.ends_with("/messages/count_tokens") {
        "anthropic-count"
    } else if path.ends_with("/responses/input_tokens") {
        "openai-responses-count"
    } else if path.contains(":streamGenerateContent") || path.contains(":generateContent") {
        "gemini"
    } else if path.ends_with("/messages") {
        "anthropic"
    } else if path.ends_with("/responses") {
        "openai-responses"
    } else if path.ends_with("/chat/completions") {
        "openai-chat"
    } else if path.ends_with("/embeddings") {
        "openai-embeddings"
    } else {
        "other"
    }
}

fn dump(dir: &std::path::Path, path: &str, reply: &Reply) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let record = match reply {
        Reply::Json { status, body, .. } => {
            json!({"dialect": dialect(path), "kind": "json", "status": status, "body": body})
        }
        Reply::Sse { events, cut_after } => {
            // The data of each event (named events carry theirs after `data: `).
            let data: Vec<&str> = events
                .iter()
                .map(|e| match e.split_once("\ndata: ") {
                    Some((_, data)) if e.starts_with("event:") => data,
                    _ => e.as_str(),
                })
                .take(cut_after.unwrap_or(usize::MAX))
                .collect();
            json!({"dialect": dialect(path), "kind": "sse", "events": data, "cut": cut_after.is_some()})
        }
        // Deliberately malformed bytes: nothing an SDK could parse.
        Reply::RawSse(_) => json!({"dialect": dialect(path), "kind": "raw"}),
    };
    let name = format!(
        "{}-{}.json",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = std::fs::write(dir.join(name), record.to_string());
    }
}

fn sse_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    resp
}

/// Fixture builders for the OpenAI Chat Completions stream, in the official
/// wire format (`chat.completion.chunk` objects, `stream_options.include_usage`
/// usage chunk, `[DONE]`).
pub mod openai {
    use super::Reply;
    use serde_json::{Value, json};

    /// A `chat.completion.chunk` with the given choices and usage.
    fn envelope(model: &str, choices: Value, usage: Value) -> String {
        json!({
            "id": "chatcmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": 1_763_700_000,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": usage,
        })
        .to_string()
    }

    fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
        let choice =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        envelope(model, choice, Value::Null)
    }

    fn usage_chunk(model: &str, prompt: u64, completion: u64, cached: u64) -> String {
        let usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        });
        envelope(model, json!([]), usage)
    }

    /// The events of a streamed text reply, one chunk per piece.
    pub fn text_events(model: &str, pieces: &[&str], usage: (u64, u64, u64)) -> Vec<String> {
        let mut events = vec![chunk(
            model,
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        events.extend(
            pieces
                .iter()
                .map(|p| chunk(model, json!({"content": p}), None)),
        );
        events.push(chunk(model, json!({}), Some("stop")));
        events.push(usage_chunk(model, usage.0, usage.1, usage.2));
        events.push("[DONE]".into());
        events
    }

    /// A streamed text reply.
    pub fn text(model: &str, pieces: &[&str], usage: (u64, u64, u64)) -> Reply {
        Reply::Sse {
            events: text_events(model, pieces, usage),
            cut_after: None,
        }
    }

    /// A streamed turn with parallel tool calls `(id, name, args)`: each call
    /// opens with its id, name and empty arguments, then its arguments in two
    /// pieces, as the API streams them.
    pub fn tool_calls(model: &str, calls: &[(&str, &str, Value)], usage: (u64, u64, u64)) -> Reply {
        let mut events = vec![chunk(
            model,
            json!({"role": "assistant", "content": null, "refusal": null}),
            None,
        )];
        for (i, (id, name, args)) in calls.iter().enumerate() {
            events.push(chunk(
                model,
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            let text = args.to_string();
            let mid = text.len() / 2;
            let mid = (mid..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            for piece in [&text[..mid], &text[mid..]] {
                events.push(chunk(
                    model,
                    json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
        }
        events.push(chunk(model, json!({}), Some("tool_calls")));
        events.push(usage_chunk(model, usage.0, usage.1, usage.2));
        events.push("[DONE]".into());
        Reply::Sse {
            events,
            cut_after: None,
        }
    }

    /// An error response: `{"error": {"message", "type", "param", "code"}}`.
    pub fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Reply {
        Reply::Json {
            status,
            headers: Vec::new(),
            body: json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        }
    }

    /// An embeddings response (`object: "list"` of `embedding` objects with
    /// their `index`), listing the vectors in the order given by `order`
    /// (indexes into `vectors`), as servers may.
    pub fn embeddings(model: &str, vectors: &[Vec<f32>], order: &[usize], tokens: u64) -> Reply {
        let data: Vec<Value> = order
            .iter()
            .map(|&i| json!({"object": "embedding", "index": i, "embedding": vectors[i]}))
            .collect();
        Reply::Json {
            status: 200,
            headers: Vec::new(),
            body: json!({
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
            }),
        }
    }

    /// An error response with a `retry-after-ms` header.
    pub fn error_with_retry_after_ms(status: u16, kind: &str, message: &str, ms: u64) -> Reply {
        match error(status, kind, None, message) {
            Reply::Json { status, body, .. } => Reply::Json {
                status,
                headers: vec![
                    ("retry-after-ms".into(), ms.to_string()),
                    ("retry-after".into(), "1".into()),
                ],
                body,
            },
            other => other,
        }
    }
}

/// Fixture builders for the Anthropic Messages stream, in the official wire
/// format: `event: <type>` lines with `message_start`, `content_block_start`
/// / `_delta` / `_stop` per block, `message_delta` with the stop reason and
/// cumulative usage, `message_stop`.
pub mod anthropic {
    use super::Reply;
    use serde_json::{Value, json};

    /// One content block of a streamed reply.
    #[derive(Debug, Clone)]
    pub enum Block {
        /// Text, streamed in these pieces.
        Text(Vec<String>),
        /// A thinking block streamed in pieces, closed by its signature.
        Thinking {
            /// The reasoning pieces.
            pieces: Vec<String>,
            /// The signature.
            signature: String,
        },
        /// An encrypted thinking block.
        Redacted(String),
        /// A tool call; its input streams as two `input_json_delta`s.
        ToolUse {
            /// `toolu_…` id.
            id: String,
            /// The tool's name.
            name: String,
            /// The arguments.
            input: Value,
        },
    }

    impl Block {
        /// A text block from pieces.
        pub fn text(pieces: &[&str]) -> Self {
            Block::Text(pieces.iter().map(|p| (*p).to_owned()).collect())
        }

        /// A thinking block from pieces and a signature.
        pub fn thinking(pieces: &[&str], signature: &str) -> Self {
            Block::Thinking {
                pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
                signature: signature.to_owned(),
            }
        }

        /// A tool-use block.
        pub fn tool_use(id: &str, name: &str, input: Value) -> Self {
            Block::ToolUse {
                id: id.to_owned(),
                name: name.to_owned(),
                input,
            }
        }
    }

    /// Token counts of a reply: (input, output, cache read, cache write).
    pub type Tokens = (u64, u64, u64, u64);

    /// One SSE event: `event: <type>` and its JSON data.
    pub fn event(data: &Value) -> String {
        let kind = data["type"].as_str().unwrap_or("unknown");
        format!("event: {kind}\ndata: {data}")
    }

    /// The `message_start` event.
    pub fn message_start(model: &str, tokens: Tokens) -> String {
        event(&json!({
            "type": "message_start",
            "message": {
                "id": "msg_01FakeFakeFakeFakeFake01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": tokens.0,
                    "cache_creation_input_tokens": tokens.3,
                    "cache_read_input_tokens": tokens.2,
                    "output_tokens": 1,
                    "service_tier": "standard"
                }
            }
        }))
    }

    fn halves(text: &str) -> [&str; 2] {
        let mid = text.len() / 2;
        let mid = (mid..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        [&text[..mid], &text[mid..]]
    }

    /// The events of one block at `index`.
    pub fn block_events(index: usize, block: &Block) -> Vec<String> {
        let start = |content: Value| {
            event(&json!({"type": "content_block_start", "index": index, "content_block": content}))
        };
        let delta =
            |d: Value| event(&json!({"type": "content_block_delta", "index": index, "delta": d}));
        let mut out = Vec::new();
        match block {
            Block::Text(pieces) => {
                out.push(start(json!({"type": "text", "text": ""})));
                out.extend(
                    pieces
                        .iter()
                        .map(|p| delta(json!({"type": "text_delta", "text": p}))),
                );
            }
            Block::Thinking { pieces, signature } => {
                out.push(start(
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                ));
                out.extend(
                    pieces
                        .iter()
                        .map(|p| delta(json!({"type": "thinking_delta", "thinking": p}))),
                );
                out.push(delta(
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            Block::Redacted(data) => {
                out.push(start(json!({"type": "redacted_thinking", "data": data})));
            }
            Block::ToolUse { id, name, input } => {
                out.push(start(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                ));
                let text = input.to_string();
                out.push(delta(
                    json!({"type": "input_json_delta", "partial_json": ""}),
                ));
                for piece in halves(&text) {
                    out.push(delta(
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    ));
                }
            }
        }
        out.push(event(
            &json!({"type": "content_block_stop", "index": index}),
        ));
        out
    }

    /// All events of a reply with `blocks`, ending with `stop_reason`.
    pub fn events(model: &str, blocks: &[Block], stop_reason: &str, tokens: Tokens) -> Vec<String> {
        let mut out = vec![message_start(model, tokens)];
        out.push(event(&json!({"type": "ping"})));
        for (i, block) in blocks.iter().enumerate() {
            out.extend(block_events(i, block));
        }
        out.push(event(&json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": tokens.1}
        })));
        out.push(event(&json!({"type": "message_stop"})));
        out
    }

    /// A streamed reply with `blocks`.
    pub fn reply(model: &str, blocks: &[Block], stop_reason: &str, tokens: Tokens) -> Reply {
        Reply::Sse {
            events: events(model, blocks, stop_reason, tokens),
            cut_after: None,
        }
    }

    /// A streamed text reply.
    pub fn text(model: &str, pieces: &[&str], tokens: Tokens) -> Reply {
        reply(model, &[Block::text(pieces)], "end_turn", tokens)
    }

    /// An in-stream `error` event.
    pub fn error_event(kind: &str, message: &str) -> String {
        event(&json!({"type": "error", "error": {"type": kind, "message": message}}))
    }

    /// An error response: `{"type": "error", "error": {"type", "message"}}`.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::Json {
            status,
            headers: vec![("request-id".into(), "req_fake01".into())],
            body: json!({
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_fake01"
            }),
        }
    }

    /// A `count_tokens` reply: `{"input_tokens": n}`.
    pub fn token_count(input_tokens: u64) -> Reply {
        Reply::Json {
            status: 200,
            headers: vec![("request-id".into(), "req_fake01".into())],
            body: json!({"input_tokens": input_tokens}),
        }
    }

    /// An error response with a `retry-after` header (seconds).
    pub fn error_with_retry_after(status: u16, kind: &str, message: &str, secs: u64) -> Reply {
        match error(status, kind, message) {
            Reply::Json {
                status,
                mut headers,
                body,
            } => {
                headers.push(("retry-after".into(), secs.to_string()));
                Reply::Json {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }
}

/// Fixture builders for the OpenAI Responses stream, in the official wire
/// format: `event: <type>` lines, every event with its `sequence_number`,
/// items opened with `response.output_item.added` and closed with
/// `response.output_item.done`, the whole response in `response.created` and
/// `response.completed`.
pub mod openai_responses {
    use super::Reply;
    use serde_json::{Value, json};

    /// One output item of a streamed response.
    #[derive(Debug, Clone)]
    pub enum Item {
        /// An assistant message, its text streamed in pieces.
        Text(Vec<String>),
        /// A reasoning item whose summary streams in pieces.
        Reasoning(Vec<String>),
        /// A function call; its arguments stream in two pieces.
        Call {
            /// `call_…` id.
            call_id: String,
            /// The function's name.
            name: String,
            /// The arguments.
            arguments: Value,
        },
    }

    impl Item {
        /// A message item from text pieces.
        pub fn text(pieces: &[&str]) -> Self {
            Item::Text(pieces.iter().map(|p| (*p).to_owned()).collect())
        }

        /// A function-call item.
        pub fn call(call_id: &str, name: &str, arguments: Value) -> Self {
            Item::Call {
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments,
            }
        }
    }

    struct Seq(u64);

    impl Seq {
        fn event(&mut self, mut data: Value) -> String {
            data["sequence_number"] = json!(self.0);
            self.0 += 1;
            let kind = data["type"].as_str().unwrap_or("unknown").to_owned();
            format!("event: {kind}\ndata: {data}")
        }
    }

    fn response(model: &str, status: &str, output: Value, usage: Value) -> Value {
        json!({
            "id": "resp_fake0001",
            "object": "response",
            "created_at": 1_763_700_000,
            "status": status,
            "model": model,
            "output": output,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
            "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        })
    }

    fn done_item(index: usize, item: &Item) -> Value {
        match item {
            Item::Text(pieces) => json!({
                "type": "message", "id": format!("msg_{index}"), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": pieces.concat(), "annotations": []}]
            }),
            Item::Reasoning(pieces) => json!({
                "type": "reasoning", "id": format!("rs_{index}"),
                "summary": [{"type": "summary_text", "text": pieces.concat()}]
            }),
            Item::Call {
                call_id,
                name,
                arguments,
            } => json!({
                "type": "function_call", "id": format!("fc_{index}"), "call_id": call_id,
                "name": name, "arguments": arguments.to_string(), "status": "completed"
            }),
        }
    }

    /// Token counts: (input (all of it), output, cache reads, cache writes).
    pub type Tokens = (u64, u64, u64, u64);

    /// Every event of a response with `items`; `status` is `completed` or
    /// `incomplete`.
    pub fn events(model: &str, items: &[Item], status: &str, tokens: Tokens) -> Vec<String> {
        let mut seq = Seq(0);
        let mut out = vec![seq.event(json!({
            "type": "response.created",
            "response": response(model, "in_progress", json!([]), Value::Null)
        }))];
        for (i, item) in items.iter().enumerate() {
            let id = done_item(i, item)["id"].clone();
            let added = match item {
                Item::Text(_) => {
                    json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []})
                }
                Item::Reasoning(_) => json!({"type": "reasoning", "id": id, "summary": []}),
                Item::Call { call_id, name, .. } => json!({
                    "type": "function_call", "id": id, "call_id": call_id, "name": name,
                    "arguments": "", "status": "in_progress"
                }),
            };
            out.push(seq.event(
                json!({"type": "response.output_item.added", "output_index": i, "item": added}),
            ));
            match item {
                Item::Text(pieces) => {
                    let empty = json!({"type": "output_text", "text": "", "annotations": []});
                    out.push(seq.event(json!({"type": "response.content_part.added", "item_id": id, "output_index": i, "content_index": 0, "part": empty})));
                    for p in pieces {
                        out.push(seq.event(json!({"type": "response.output_text.delta", "item_id": id, "output_index": i, "content_index": 0, "delta": p, "logprobs": []})));
                    }
                    out.push(seq.event(json!({"type": "response.output_text.done", "item_id": id, "output_index": i, "content_index": 0, "text": pieces.concat(), "logprobs": []})));
                }
                Item::Reasoning(pieces) => {
                    for p in pieces {
                        out.push(seq.event(json!({"type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": i, "summary_index": 0, "delta": p})));
                    }
                }
                Item::Call { arguments, .. } => {
                    let text = arguments.to_string();
                    let mid = (text.len() / 2..text.len())
                        .find(|c| text.is_char_boundary(*c))
                        .unwrap_or(text.len());
                    for piece in [&text[..mid], &text[mid..]] {
                        out.push(seq.event(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": piece})));
                    }
                    out.push(seq.event(json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": i, "name": done_item(i, item)["name"], "arguments": text})));
                }
            }
            out.push(seq.event(json!({"type": "response.output_item.done", "output_index": i, "item": done_item(i, item)})));
        }
        let output: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, it)| done_item(i, it))
            .collect();
        let usage = json!({
            "input_tokens": tokens.0,
            "input_tokens_details": {"cached_tokens": tokens.2, "cache_write_tokens": tokens.3},
            "output_tokens": tokens.1,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens.0 + tokens.1
        });
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.push(seq.event(
            json!({"type": kind, "response": response(model, status, Value::Array(output), usage)}),
        ));
        out
    }

    /// A completed streamed response with `items`.
    pub fn reply(model: &str, items: &[Item], tokens: Tokens) -> Reply {
        Reply::Sse {
            events: events(model, items, "completed", tokens),
            cut_after: None,
        }
    }

    /// A `POST /responses/input_tokens` reply.
    pub fn input_tokens(input_tokens: u64) -> Reply {
        Reply::Json {
            status: 200,
            headers: Vec::new(),
            body: json!({"object": "response.input_tokens", "input_tokens": input_tokens}),
        }
    }

    /// An `error` event (the stream's last).
    pub fn error_event(code: &str, message: &str) -> String {
        let data = json!({"type": "error", "code": code, "message": message, "param": null, "sequence_number": 99});
        format!("event: error\ndata: {data}")
    }
}

/// Fixture builders for Gemini's `streamGenerateContent?alt=sse` stream, in
/// the official wire format: every event a whole `GenerateContentResponse`
/// (`candidates[0].content.parts`, `usageMetadata`, `modelVersion`,
/// `responseId`), the last with its `finishReason`.
pub mod gemini {
    use super::Reply;
    use serde_json::{Value, json};

    /// Token counts: prompt (cached included), output, cached, thoughts.
    pub type Tokens = (u64, u64, u64, u64);

    /// One piece of a reply.
    #[derive(Debug, Clone)]
    pub enum Part {
        /// Text, streamed one event per piece.
        Text(Vec<String>),
        /// A thought summary (`thought: true`).
        Thought(String),
        /// Function calls, all in one event (Gemini sends parallel calls
        /// together); the first carries `signature` as its
        /// `thoughtSignature`.
        Calls {
            /// `(name, args)` per call.
            calls: Vec<(String, Value)>,
            /// The turn's thought signature.
            signature: Option<String>,
        },
    }

    impl Part {
        /// Text from pieces.
        pub fn text(pieces: &[&str]) -> Self {
            Self::Text(pieces.iter().map(|p| (*p).to_owned()).collect())
        }

        /// Function calls with an optional signature on the first.
        pub fn calls(calls: &[(&str, Value)], signature: Option<&str>) -> Self {
            Self::Calls {
                calls: calls
                    .iter()
                    .map(|(n, a)| ((*n).to_owned(), a.clone()))
                    .collect(),
                signature: signature.map(str::to_owned),
            }
        }
    }

    fn usage(tokens: Tokens) -> Value {
        let (prompt, output, cached, thoughts) = tokens;
        let mut usage = json!({
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
        });
        if cached > 0 {
            usage["cachedContentTokenCount"] = json!(cached);
        }
        if thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(thoughts);
        }
        usage
    }

    /// One event: `parts`, and the finish reason and usage when given.
    pub fn event(model: &str, parts: Value, finish: Option<&str>, tokens: Tokens) -> String {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(reason) = finish {
            candidate["finishReason"] = json!(reason);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage(tokens),
            "modelVersion": model,
            "responseId": "fake-response-01"
        })
        .to_string()
    }

    /// The events of a reply: each part in turn, the finish reason and
    /// final usage on the last event.
    pub fn events(model: &str, parts: &[Part], finish: &str, tokens: Tokens) -> Vec<String> {
        let mut values: Vec<Value> = Vec::new();
        for part in parts {
            match part {
                Part::Text(pieces) => values.extend(pieces.iter().map(|p| json!([{"text": p}]))),
                Part::Thought(text) => values.push(json!([{"text": text, "thought": true}])),
                Part::Calls { calls, signature } => values.push(Value::Array(
                    calls
                        .iter()
                        .enumerate()
                        .map(|(i, (name, args))| {
                            let mut part = json!({"functionCall": {"name": name, "args": args}});
                            if let (0, Some(sig)) = (i, signature) {
                                part["thoughtSignature"] = json!(sig);
                            }
                            part
                        })
                        .collect(),
                )),
            }
        }
        let last = values.len().saturating_sub(1);
        let partial = (tokens.0, 0, tokens.2, 0);
        values
            .into_iter()
            .enumerate()
            .map(|(i, parts)| {
                if i == last {
                    event(model, parts, Some(finish), tokens)
                } else {
                    event(model, parts, None, partial)
                }
            })
            .collect()
    }

    /// A streamed reply ending with `STOP`.
    pub fn reply(model: &str, parts: &[Part], tokens: Tokens) -> Reply {
        Reply::Sse {
            events: events(model, parts, "STOP", tokens),
            cut_after: None,
        }
    }

    /// Google's error body: `{"error": {"code", "message", "status"}}`.
    pub fn error(code: u16, status: &str, message: &str) -> Reply {
        Reply::Json {
            status: code,
            headers: Vec::new(),
            body: json!({"error": {"code": code, "message": message, "status": status}}),
        }
    }
}
