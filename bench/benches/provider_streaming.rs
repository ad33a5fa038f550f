//! What the provider adapters add to a stream: a 10,000-chunk text reply
//! served by the testkit's fake provider, read as raw bytes (the baseline)
//! and through each adapter into `ModelChunk`s. The difference divided by
//! 10,000 is the per-chunk cost of parsing; the allocation counts (server
//! included, the same in both) give allocations per chunk the same way.
//!
//! cargo bench -p loomflow-bench --bench provider_streaming

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use loomflow::anthropic::AnthropicModel;
use loomflow::model::ModelRequest;
use loomflow::openai::OpenAiModel;
use loomflow::{Message, Model};
use loomflow_testkit::fake_provider::{FakeProvider, Reply, anthropic, openai};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

const CHUNKS: usize = 10_000;

fn main() {
    divan::main();
}

struct Setup {
    rt: tokio::runtime::Runtime,
    fake: FakeProvider,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    Setup { rt, fake }
}

fn pieces() -> Vec<String> {
    (0..CHUNKS).map(|i| format!("w{} ", i % 97)).collect()
}

/// The whole body in one buffer, so the loopback transport costs the same
/// few microseconds in both measurements and the difference is parsing.
fn one_body(reply: Reply) -> Reply {
    let Reply::Sse { events, .. } = reply else {
        unreachable!("text fixtures are SSE")
    };
    let mut body = String::new();
    for e in events {
        if !e.starts_with("event:") {
            body.push_str("data: ");
        }
        body.push_str(&e);
        body.push_str("\n\n");
    }
    Reply::RawSse(body)
}

fn openai_reply() -> Reply {
    let pieces = pieces();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    one_body(openai::text("gpt-4.1-mini", &refs, (100, CHUNKS as u64, 0)))
}

fn anthropic_reply() -> Reply {
    let pieces = pieces();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    one_body(anthropic::text(
        "claude-haiku-4-5",
        &refs,
        (100, CHUNKS as u64, 0, 0),
    ))
}

/// Baseline: POST and read every byte of the body, parsing nothing.
fn read_raw(bencher: divan::Bencher, reply: fn() -> Reply, path: &str) {
    let s = setup();
    let client = reqwest::Client::new();
    let url = format!("{}{path}", s.fake.url());
    let reply = reply();
    bencher
        .with_inputs(|| {
            s.fake.push(reply.clone());
        })
        .bench_local_values(|()| {
            s.rt.block_on(async {
                let resp = client.post(&url).body("{}").send().await.unwrap();
                let mut body = resp.bytes_stream();
                let mut n = 0usize;
                while let Some(b) = body.next().await {
                    n += b.unwrap().len();
                }
                assert!(n > CHUNKS);
            })
        });
}

fn through_adapter(bencher: divan::Bencher, reply: fn() -> Reply, model: &dyn Model, s: &Setup) {
    let reply = reply();
    let messages = [Message::user("go")];
    bencher
        .with_inputs(|| {
            s.fake.push(reply.clone());
        })
        .bench_local_values(|()| {
            s.rt.block_on(async {
                let mut stream = model.stream(ModelRequest::new(&messages)).await.unwrap();
                let mut n = 0usize;
                while let Some(chunk) = stream.next().await {
                    chunk.unwrap();
                    n += 1;
                }
                assert_eq!(n, CHUNKS + 1);
            })
        });
}

/// Chat Completions body, raw bytes.
#[divan::bench(sample_count = 30)]
fn openai_raw_bytes(bencher: divan::Bencher) {
    read_raw(bencher, openai_reply, "/v1/chat/completions");
}

/// Chat Completions body through `OpenAiModel::stream`.
#[divan::bench(sample_count = 30)]
fn openai_adapter(bencher: divan::Bencher) {
    let s = setup();
    let model = OpenAiModel::builder("gpt-4.1-mini")
        .api_key("sk-bench")
        .base_url(format!("{}/v1", s.fake.url()))
        .build()
        .unwrap();
    through_adapter(bencher, openai_reply, &model, &s);
}

/// Messages body, raw bytes.
#[divan::bench(sample_count = 30)]
fn anthropic_raw_bytes(bencher: divan::Bencher) {
    read_raw(bencher, anthropic_reply, "/v1/messages");
}

/// Messages body through `AnthropicModel::stream`.
#[divan::bench(sample_count = 30)]
fn anthropic_adapter(bencher: divan::Bencher) {
    let s = setup();
    let model = AnthropicModel::builder("claude-haiku-4-5")
        .api_key("sk-ant-bench")
        .base_url(s.fake.url())
        .build()
        .unwrap();
    through_adapter(bencher, anthropic_reply, &model, &s);
}
