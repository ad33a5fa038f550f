//! Memory: insert throughput and recall latency (p50 / p99) at a given size,
//! for every memory backend, with the hash embedder.
//!
//! `cargo run --release -p loomflow-bench --bin memory_recall -- [BACKEND] [N] [QUERIES]`
//!
//! BACKEND is `inmemory`, `sqlite`, `postgres`, `redis` or `chroma` (default
//! `inmemory`; the servers are the testkit's: Postgres with fsync on, Redis
//! 8, the pinned Chroma, each on loopback), N the number of
//! episodes of one user (default 10 000), QUERIES how many recalls to time
//! (default 500). The episodes are synthetic but topical, as a user's memory
//! is: each of 200 topics has 25 words, and an episode takes 8 words from its
//! topic and 4 from a Zipf-like general vocabulary. A query is three topic
//! words and one general word. Prints one `RESULT {json}` line.
//!
//! `EMBEDDER=minilm` embeds with the local all-MiniLM-L6-v2 model
//! (`inmemory` and `sqlite`; the files from `scripts/services/minilm.sh`)
//! instead of the hash embedder: every insert and every recall then pays
//! one model call.
//!
//! `BATCH=N` stores the episodes N at a time with `Memory::remember_many`
//! (one embedder call and one transaction or round trip per batch) instead
//! of one `remember` each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use loomflow::UserId;
use loomflow::memory::{Episode, InMemoryMemory, Memory, Recall};
use loomflow_testkit::chroma::TempChroma;
use loomflow_testkit::postgres::TempPostgres;
use loomflow_testkit::redis::TempRedis;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TOPICS: u64 = 200;
const TOPIC_WORDS: u64 = 25;
const GENERAL: u64 = 5000;

fn word(i: u64) -> String {
    // Pronounceable, distinct, and never a stop-word or a plural.
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ten", "ru", "sa", "vo", "pel", "di", "nor", "gu", "fe", "zan", "qi",
        "bo", "ux",
    ];
    let mut w = String::new();
    let mut n = i + 16;
    while n > 0 {
        w.push_str(SYL[(n % 16) as usize]);
        n /= 16;
    }
    w
}

fn general(rng: &mut Rng) -> String {
    // Zipf-like: the product of two uniforms favours small ranks.
    let r = rng.below(GENERAL) * rng.below(GENERAL) / GENERAL;
    word(TOPICS * TOPIC_WORDS + r)
}

fn episode_text(rng: &mut Rng) -> String {
    let topic = rng.below(TOPICS);
    let mut words: Vec<String> = (0..8)
        .map(|_| word(topic * TOPIC_WORDS + rng.below(TOPIC_WORDS)))
        .collect();
    words.extend((0..4).map(|_| general(rng)));
    words.join(" ")
}

fn query_text(rng: &mut Rng) -> String {
    let topic = rng.below(TOPICS);
    let mut words: Vec<String> = (0..3)
        .map(|_| word(topic * TOPIC_WORDS + rng.below(TOPIC_WORDS)))
        .collect();
    words.push(general(rng));
    words.join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "inmemory".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The servers stay up until the end of main.
    let mut _servers: (Option<TempPostgres>, Option<TempRedis>, Option<TempChroma>) =
        (None, None, None);
    let embedder: Option<Arc<dyn loomflow::Embedder>> = match std::env::var("EMBEDDER").as_deref() {
        Ok("minilm") => Some(Arc::new(
            loomflow::minilm::MiniLmEmbedder::open(loomflow_testkit::minilm::model_dir()).unwrap(),
        )),
        Ok("hash") | Err(_) => None,
        Ok(other) => panic!("unknown EMBEDDER {other}: hash or minilm"),
    };
    let embedder_name = embedder.as_ref().map_or("hash", |e| e.name()).to_owned();
    let embedder_again = embedder.clone();
    if embedder.is_some() && !matches!(backend.as_str(), "inmemory" | "sqlite") {
        panic!("EMBEDDER=minilm is wired for inmemory and sqlite");
    }
    let memory: Arc<dyn Memory> = match backend.as_str() {
        "inmemory" => match embedder {
            Some(e) => Arc::new(InMemoryMemory::with_embedder(e)),
            None => Arc::new(InMemoryMemory::new()),
        },
        "sqlite" => {
            let m = loomflow::sqlite::SqliteMemory::open(dir.path().join("m.db")).unwrap();
            match embedder {
                Some(e) => Arc::new(m.with_embedder(e)),
                None => Arc::new(m),
            }
        }
        "postgres" => {
            let pg = TempPostgres::start_durable();
            let m = loomflow::postgres::PostgresMemory::new(&pg.url()).unwrap();
            _servers.0 = Some(pg);
            Arc::new(m)
        }
        "redis" => {
            let r = TempRedis::start();
            let m = loomflow::redis::RedisMemory::new(&r.url()).unwrap();
            _servers.1 = Some(r);
            Arc::new(m)
        }
        "chroma" => {
            let c = TempChroma::start();
            let m = loomflow::chroma::ChromaMemory::new(&c.url()).unwrap();
            _servers.2 = Some(c);
            Arc::new(m)
        }
        other => panic!("unknown backend {other}: inmemory, sqlite, postgres, redis or chroma"),
    };
    // BATCH=N stores the episodes N at a time with `remember_many`.
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(1)
        .max(1);
    let user = UserId::new("bench-user").unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    runtime.block_on(async {
        let started = Instant::now();
        let mut stored = 0;
        let mut reported = 0;
        while stored < n {
            let take = batch.min(n - stored);
            let episodes: Vec<Episode> = (0..take)
                .map(|_| Episode::new(episode_text(&mut rng), "ok"))
                .collect();
            if batch == 1 {
                for ep in episodes {
                    memory.remember(&user, ep).await.unwrap();
                }
            } else {
                memory.remember_many(&user, episodes).await.unwrap();
            }
            stored += take;
            if stored / 20_000 > reported {
                reported = stored / 20_000;
                eprintln!(
                    "{stored} episodes in {:.1}s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let insert = started.elapsed();
        // The first recall builds SQLite's index from the rows; time it
        // apart from the steady state.
        let cold = Instant::now();
        memory
            .recall(&user, &Recall::new(query_text(&mut rng)))
            .await
            .unwrap();
        let cold = cold.elapsed();
        let mut times = Vec::with_capacity(queries);
        let mut found = 0;
        for _ in 0..queries {
            let q = Recall::new(query_text(&mut rng)).limit(5);
            let t = Instant::now();
            let hits = memory.recall_scored(&user, &q).await.unwrap();
            times.push(t.elapsed());
            found += hits.len();
        }
        times.sort();
        // SQLite: a fresh handle on the file (as a restarted process) opens
        // the graph the first recall saved instead of rebuilding it.
        let reopen_ms = if backend == "sqlite" {
            let fresh = loomflow::sqlite::SqliteMemory::open(dir.path().join("m.db")).unwrap();
            let fresh = match &embedder_again {
                Some(e) => fresh.with_embedder(e.clone()),
                None => fresh,
            };
            let t = Instant::now();
            fresh
                .recall(&user, &Recall::new(query_text(&mut rng)))
                .await
                .unwrap();
            Some(t.elapsed().as_secs_f64() * 1000.0)
        } else {
            None
        };
        println!(
            "RESULT {}",
            serde_json::json!({
                "backend": backend,
                "embedder": embedder_name,
                "episodes": n,
                "batch": batch,
                "insert_per_s": (n as f64 / insert.as_secs_f64()).round(),
                "insert_us_each": (insert.as_secs_f64() * 1e6 / n as f64).round(),
                "first_recall_ms": cold.as_secs_f64() * 1000.0,
                "reopened_first_recall_ms": reopen_ms,
                "recall_p50_ms": percentile(&times, 0.50),
                "recall_p99_ms": percentile(&times, 0.99),
                "mean_hits": found as f64 / queries as f64,
            })
        );
    });
}
