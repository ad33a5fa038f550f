//! The Chroma memory on a real Chroma server (the pinned `chromadb`
//! package): the shared contract, filtered recall that fills its limit,
//! namespaces and the embedder's size, and the errors a misconfigured
//! deployment sees.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use loomflow::memory::{HashEmbedder, Memory, MemoryError};
use loomflow_chroma::ChromaMemory;
use loomflow_testkit::chroma::TempChroma;
use loomflow_testkit::memory_contract;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_memory_passes_the_memory_contract() {
    let server = TempChroma::start();
    let memory = ChromaMemory::connect(&server.url()).await.unwrap();
    memory_contract::run_all(Arc::new(memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_vector_recall_returns_the_full_limit() {
    let server = TempChroma::start();
    let memory: Arc<dyn Memory> = Arc::new(ChromaMemory::connect(&server.url()).await.unwrap());
    let (u, keep, noise) = memory_contract::seed_two_sessions(&memory, 600).await;
    memory_contract::assert_filtered_recall_is_full(memory.as_ref(), &u, &keep, &noise).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_share_nothing_and_keep_their_embedder() {
    let server = TempChroma::start();
    let base = ChromaMemory::new(&server.url()).unwrap();
    let spec = format!("chroma:{}", server.url());
    memory_contract::assert_namespaces_and_embedder_size(
        &base,
        &base.clone().with_namespace("other bot/ü"),
        loomflow::open_memory(&spec.parse().unwrap())
            .await
            .unwrap()
            .as_ref(),
        &base.clone().with_embedder(Arc::new(HashEmbedder::new(64))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_lazily_and_names_the_url() {
    let url = {
        let server = TempChroma::start();
        server.url()
    };
    let memory = ChromaMemory::new(&url).unwrap();
    memory_contract::assert_unreachable(&memory, &url, "no password").await;

    let err = ChromaMemory::new("./a-local-folder").unwrap_err();
    assert!(matches!(err, MemoryError::Config(_)), "{err}");
    assert!(err.to_string().contains("chroma run --path"), "{err}");
}
