//! The Redis memory on real servers: Redis 8 (vector recall through Vector
//! Sets) and Debian's Redis 7 (no Vector Sets: client-side scoring), each
//! through the shared contract; filtered recall that fills its limit; keys
//! that a hostile user id cannot reach; and the errors a misconfigured
//! deployment sees.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use loomflow::UserId;
use loomflow::memory::{Forget, HashEmbedder, Memory, MemoryError};
use loomflow_redis::RedisMemory;
use loomflow_testkit::memory_contract;
use loomflow_testkit::redis::TempRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_8_memory_passes_the_memory_contract_with_vector_sets() {
    let server = TempRedis::start();
    let memory = RedisMemory::connect(&server.url()).await.unwrap();
    let profile = memory.profile(&UserId::anonymous()).await.unwrap();
    assert_eq!(
        profile.vector_search,
        "redis vector sets (VSIM, unbounded filtered walk)"
    );
    memory_contract::run_all(Arc::new(memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_7_memory_passes_the_memory_contract_scoring_on_the_client() {
    let server = TempRedis::start_without_vector_sets();
    let memory = RedisMemory::connect(&server.url()).await.unwrap();
    let profile = memory.profile(&UserId::anonymous()).await.unwrap();
    assert!(
        profile.vector_search.starts_with("client-side cosine"),
        "{}",
        profile.vector_search
    );
    memory_contract::run_all(Arc::new(memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_vector_recall_returns_the_full_limit() {
    let server = TempRedis::start();
    let memory: Arc<dyn Memory> = Arc::new(RedisMemory::connect(&server.url()).await.unwrap());
    let (u, keep, noise) = memory_contract::seed_two_sessions(&memory, 2000).await;
    memory_contract::assert_filtered_recall_is_full(memory.as_ref(), &u, &keep, &noise).await;
    let erased = memory
        .forget(&Forget::user(u.clone()).session(noise))
        .await
        .unwrap();
    assert_eq!(erased.episodes, 1000);
    assert_eq!(memory.profile(&u).await.unwrap().episode_count, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_share_nothing_and_keep_their_embedder() {
    let server = TempRedis::start();
    let base = RedisMemory::new(&server.url()).unwrap();
    memory_contract::assert_namespaces_and_embedder_size(
        &base,
        &base.clone().with_namespace("other:bot}"),
        loomflow::open_memory(&server.url().parse().unwrap())
            .await
            .unwrap()
            .as_ref(),
        &base.clone().with_embedder(Arc::new(HashEmbedder::new(64))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_lazily_and_names_the_url_without_its_password() {
    let url = {
        let server = TempRedis::start();
        format!("redis://:hunter2@127.0.0.1:{}/0", server.port())
    };
    let memory = RedisMemory::new(&url).unwrap();
    memory_contract::assert_unreachable(&memory, "127.0.0.1", "hunter2").await;

    let err = RedisMemory::new("redis://:hunter2@host:notaport/0").unwrap_err();
    assert!(matches!(err, MemoryError::Config(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
