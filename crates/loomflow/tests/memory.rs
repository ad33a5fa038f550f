//! The in-memory memory: the shared contract, and the per-user bounds.

use std::sync::Arc;
use std::time::Duration;

use loomflow::UserId;
use loomflow::memory::{Episode, InMemoryMemory, Memory, Recall};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_passes_the_memory_contract() {
    loomflow_testkit::memory_contract::run_all(Arc::new(InMemoryMemory::new())).await;
}

#[tokio::test]
async fn users_beyond_the_cap_evict_the_least_recently_used() {
    let memory = InMemoryMemory::new().max_users(200);
    let first = UserId::new("u0").unwrap();
    for i in 0..200 {
        let u = UserId::new(format!("u{i}")).unwrap();
        memory
            .remember(&u, Episode::new("hello", "hi"))
            .await
            .unwrap();
        // u0 stays warm.
        memory.recall(&first, &Recall::new("hello")).await.unwrap();
    }
    assert_eq!(memory.user_count(), 200);
    memory
        .remember(&UserId::new("late").unwrap(), Episode::new("hello", "hi"))
        .await
        .unwrap();
    // At the cap a hundredth (2) of the least recently used go; u0 was used last.
    assert_eq!(memory.user_count(), 199);
    assert_eq!(memory.profile(&first).await.unwrap().episode_count, 1);
    assert_eq!(
        memory
            .profile(&UserId::new("u1").unwrap())
            .await
            .unwrap()
            .episode_count,
        0
    );
}

#[tokio::test]
async fn idle_users_expire() {
    let memory = InMemoryMemory::new().idle_ttl(Duration::from_millis(30));
    let u = UserId::new("sleepy").unwrap();
    memory.update_block(&u, "persona", "x").await.unwrap();
    assert_eq!(memory.working(&u).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(memory.working(&u).await.unwrap().is_empty());
    // A write after expiry starts the user afresh.
    memory.append_block(&u, "notes", "y").await.unwrap();
    let blocks = memory.working(&u).await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].name, "notes");
}

#[tokio::test]
async fn forgetting_most_episodes_compacts_the_indexes_and_recall_still_works() {
    let memory = InMemoryMemory::new();
    let u = UserId::new("compact").unwrap();
    let s = loomflow::SessionId::new("old").unwrap();
    for i in 0..300 {
        let mut ep = Episode::new(format!("note number {i} about llamas"), "ok");
        if i >= 10 {
            ep = ep.session(s.clone());
        }
        memory.remember(&u, ep).await.unwrap();
    }
    let gone = memory
        .forget(&loomflow::memory::Forget::user(u.clone()).session(s))
        .await
        .unwrap();
    assert_eq!(gone.episodes, 290);
    let hits = memory
        .recall(&u, &Recall::new("llamas").limit(20))
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    let hits = memory
        .recall(&u, &Recall::new("note number 7").limit(1))
        .await
        .unwrap();
    assert_eq!(hits[0].input, "note number 7 about llamas");
}
