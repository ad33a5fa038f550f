//! The recall graph saved in the file: a fresh handle reopens it instead of
//! re-inserting every vector, takes in what was written since, answers
//! exactly as the writer's own index does, rebuilds from a damaged blob,
//! and `forget` erases it.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Mutex, OnceLock};

use loomflow::SessionId;
use loomflow::UserId;
use loomflow::memory::{Episode, EpisodeMatch, Forget, HashEmbedder, Memory, Recall};
use loomflow_sqlite::SqliteMemory;
use tracing::field::{Field, Visit};

/// Every event's message and fields, as `message k=v k=v`.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        LOG.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The log lines since the last call.
fn take_log() -> Vec<String> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Recorder).unwrap());
    std::mem::take(&mut *LOG.lock().unwrap())
}

const TOPICS: usize = 60;

fn word(topic: usize, i: usize) -> String {
    format!("t{topic}w{i}")
}

/// Episode `i`: six words of its topic and two general ones.
fn episode(i: usize, session: &str) -> Episode {
    let topic = i % TOPICS;
    let mut words: Vec<String> = (0..6)
        .map(|k| word(topic, (i / TOPICS + k * 3) % 10))
        .collect();
    words.push(format!("common{}", i % 7));
    words.push(format!("rare{i}"));
    Episode::new(words.join(" "), format!("noted {i}")).session(SessionId::new(session).unwrap())
}

fn queries() -> Vec<Recall> {
    (0..12)
        .map(|q| {
            let topic = q * 5 % TOPICS;
            Recall::new(format!(
                "{} {} common{}",
                word(topic, q % 10),
                word(topic, (q + 4) % 10),
                q % 7
            ))
            .limit(5)
        })
        .collect()
}

fn summary(hits: &[EpisodeMatch]) -> Vec<(String, String)> {
    hits.iter()
        .map(|h| (h.episode.input.clone(), format!("{:.5}", h.score)))
        .collect()
}

async fn answers(memory: &SqliteMemory, user: &UserId) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for q in queries() {
        out.push(summary(&memory.recall_scored(user, &q).await.unwrap()));
    }
    out
}

/// A handle on the file; 32 dimensions keep the unoptimised test build's
/// graph inserts quick.
fn open(path: &std::path::Path) -> SqliteMemory {
    SqliteMemory::open(path)
        .unwrap()
        .with_embedder(std::sync::Arc::new(HashEmbedder::new(32)))
}

fn saved_row(path: &std::path::Path) -> Option<(usize, Vec<u8>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT length(seqs), links FROM memory_ann", [], |r| {
        Ok((r.get::<_, i64>(0)? as usize, r.get(1)?))
    })
    .ok()
}

fn has(log: &[String], needle: &str) -> bool {
    log.iter().any(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_handle_reopens_the_saved_graph_and_takes_in_later_writes() {
    take_log();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let user = UserId::new("heavy-user").unwrap();
    let writer = open(&path);
    let first: Vec<Episode> = (0..3_000).map(|i| episode(i, "import")).collect();
    for chunk in first.chunks(500) {
        writer.remember_many(&user, chunk.to_vec()).await.unwrap();
    }
    assert!(
        saved_row(&path).is_none(),
        "nothing is saved before an index exists"
    );

    // The writer's first recall builds the index from the rows and saves it.
    let built = answers(&writer, &user).await;
    let log = take_log();
    assert!(
        has(
            &log,
            "built the recall index from the rows user=heavy-user episodes=3000"
        ),
        "{log:#?}"
    );
    let (seqs_len, links) = saved_row(&path).unwrap();
    assert_eq!(seqs_len, 3_000 * 8);
    assert!(links.starts_with(b"LFHNSW1\0"));

    // Another handle (as another process) reopens it: same answers.
    let reader = open(&path);
    assert_eq!(answers(&reader, &user).await, built);
    let log = take_log();
    assert!(
        has(
            &log,
            "reopened the saved recall graph user=heavy-user nodes=3000 added=0 gone=0"
        ),
        "{log:#?}"
    );
    assert!(!has(&log, "built the recall index"), "{log:#?}");

    // The writer replaces five episodes and adds twenty; a third handle
    // reopens the graph saved before those writes, tombstones the replaced
    // rows, inserts the new ones, and answers as the writer does.
    let mut later: Vec<Episode> = (0..5)
        .map(|i| Episode {
            input: format!("{} replaced", first[i * 100].input),
            ..first[i * 100].clone()
        })
        .collect();
    later.extend((3_000..3_020).map(|i| episode(i, "later")));
    writer.remember_many(&user, later).await.unwrap();
    let current = answers(&writer, &user).await;
    assert_ne!(current, built, "the later writes change some answers");
    take_log();
    let third = open(&path);
    assert_eq!(answers(&third, &user).await, current);
    let log = take_log();
    assert!(
        has(
            &log,
            "reopened the saved recall graph user=heavy-user nodes=3000 added=25 gone=5"
        ),
        "{log:#?}"
    );

    // A damaged graph is rebuilt from the rows and saved again: the same
    // answers as a handle that finds no saved graph at all. (A rebuilt
    // graph holds no tombstones, so on these near-duplicate texts its
    // approximate answers may differ from the writer's.)
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE memory_ann SET links = x'00ff'", [])
        .unwrap();
    let fourth = open(&path);
    let rebuilt = answers(&fourth, &user).await;
    let log = take_log();
    assert!(has(&log, "the saved recall graph is not used"), "{log:#?}");
    assert!(
        has(
            &log,
            "built the recall index from the rows user=heavy-user episodes=3020"
        ),
        "{log:#?}"
    );
    let (seqs_len, links) = saved_row(&path).unwrap();
    assert_eq!(seqs_len, 3_020 * 8);
    assert!(links.starts_with(b"LFHNSW1\0"));
    conn.execute("DELETE FROM memory_ann", []).unwrap();
    let unsaved = open(&path);
    assert_eq!(answers(&unsaved, &user).await, rebuilt);

    // Forgetting episodes erases the saved graph (derived from their
    // vectors); the next recall rebuilds from what is left.
    let erased = fourth
        .forget(&Forget::user(user.clone()).session(SessionId::new("later").unwrap()))
        .await
        .unwrap();
    assert_eq!(erased.episodes, 20);
    assert!(saved_row(&path).is_none());
    let fifth = open(&path);
    let hits = fifth
        .recall(&user, &Recall::new(episode(3_001, "x").input).limit(50))
        .await
        .unwrap();
    assert!(
        hits.iter()
            .all(|h| h.session.as_ref().map(SessionId::as_str) == Some("import"))
    );
    assert_eq!(saved_row(&path).unwrap().0, 3_000 * 8);

    // Other users' graphs are their own.
    let other = UserId::new("light-user").unwrap();
    fifth.remember(&other, episode(1, "import")).await.unwrap();
    assert_eq!(
        fifth
            .recall(&other, &Recall::new("t1w0"))
            .await
            .unwrap()
            .len(),
        1
    );
}
