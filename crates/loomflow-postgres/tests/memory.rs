//! The Postgres memory on a real server with pgvector: the shared contract,
//! filtered vector recall that still fills its LIMIT, two handles as two
//! processes, namespaces, and the errors a misconfigured deployment sees.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use loomflow::UserId;
use loomflow::memory::{Episode, Forget, HashEmbedder, Memory, MemoryError, Recall};
use loomflow_postgres::PostgresMemory;
use loomflow_testkit::memory_contract;
use loomflow_testkit::postgres::TempPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_memory_passes_the_memory_contract() {
    let pg = TempPostgres::start();
    let memory = PostgresMemory::connect(&pg.url()).await.unwrap();
    let profile = memory
        .profile(&UserId::new("nobody").unwrap())
        .await
        .unwrap();
    assert_eq!(
        profile.vector_search,
        "pgvector hnsw (cosine, hnsw.iterative_scan = relaxed_order)"
    );
    memory_contract::run_all(Arc::new(memory)).await;
}

/// HNSW filters after it walks the graph: without pgvector's iterative scan
/// a query whose nearest neighbours the filter removes returns fewer rows
/// than asked (none, when the 64 nearest are all in the excluded session).
/// Whether the planner walks the index or sorts the rows the filter keeps
/// (it sorts at this size), the answer must be full; the profile shows the
/// connection setting that makes the index walk full too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_vector_recall_returns_the_full_limit() {
    let pg = TempPostgres::start();
    let memory: Arc<dyn Memory> = Arc::new(PostgresMemory::connect(&pg.url()).await.unwrap());
    let (u, keep, noise) = memory_contract::seed_two_sessions(&memory, 3000).await;
    // Fresh statistics, as autovacuum keeps them, so the planner knows the
    // filter keeps half the rows.
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute("ANALYZE").await.unwrap();
    memory_contract::assert_filtered_recall_is_full(memory.as_ref(), &u, &keep, &noise).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_share_one_database() {
    let pg = TempPostgres::start();
    let a = PostgresMemory::new(&pg.url()).unwrap();
    let b = PostgresMemory::new(&pg.url()).unwrap();
    let u = UserId::new("shared").unwrap();
    a.remember(&u, Episode::new("The wifi password is on the fridge", "ok"))
        .await
        .unwrap();
    assert_eq!(b.recall(&u, &Recall::new("wifi")).await.unwrap().len(), 1);
    // The keyword statistics follow every writer's changes.
    b.forget(&Forget::user(u.clone())).await.unwrap();
    assert!(a.recall(&u, &Recall::new("wifi")).await.unwrap().is_empty());
    a.remember(&u, Episode::new("wifi router in the hall", "ok"))
        .await
        .unwrap();
    let hits = b
        .recall_scored(&u, &Recall::new("wifi").alpha(0.0))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].bm25_score.unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_share_nothing_and_keep_their_embedder() {
    let pg = TempPostgres::start();
    let base = PostgresMemory::new(&pg.url()).unwrap();
    memory_contract::assert_namespaces_and_embedder_size(
        &base,
        &base.clone().with_namespace("other-bot"),
        loomflow::open_memory(&pg.url().parse().unwrap())
            .await
            .unwrap()
            .as_ref(),
        &base.clone().with_embedder(Arc::new(HashEmbedder::new(64))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_lazily_and_names_the_url_without_its_password() {
    // Nothing listens on this port once the server is dropped.
    let url = {
        let pg = TempPostgres::start();
        format!("postgres://bot:hunter2@127.0.0.1:{}/postgres", pg.port())
    };
    let memory = PostgresMemory::new(&url).unwrap();
    memory_contract::assert_unreachable(&memory, "127.0.0.1", "hunter2").await;

    let err = PostgresMemory::new("postgres://bot:hunter2@host:notaport/db").unwrap_err();
    assert!(matches!(err, MemoryError::Config(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
