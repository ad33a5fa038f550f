#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The contract every [`Memory`] backend passes: the same assertions for the
//! in-memory, SQLite, Postgres, Redis and Chroma memories, tenant isolation
//! included.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty memory that
//! embeds with the [`HashEmbedder`](loomflow::memory::HashEmbedder) (the
//! labelled recall set is tuned to it).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use loomflow::memory::{
    Consolidator, Episode, Extractor, Fact, FactQuery, Forget, Memory, MemoryError, Recall,
};
use loomflow::{Role, SessionId, UserId};

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn session(id: &str) -> SessionId {
    SessionId::new(id).unwrap()
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
}

fn month(m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, 1, 0, 0, 0).unwrap()
}

/// Runs every contract check on `memory`, which must be empty.
pub async fn run_all(memory: Arc<dyn Memory>) {
    working_blocks(memory.as_ref()).await;
    episodes_and_sessions(memory.as_ref()).await;
    facts_supersede_in_either_order(memory.as_ref()).await;
    fact_queries(memory.as_ref()).await;
    hybrid_recall_ranks_a_labelled_set(memory.as_ref()).await;
    remember_many_matches_one_by_one(memory.as_ref()).await;
    keyword_recall_matches_the_reference(memory.as_ref()).await;
    forget_export_profile(memory.as_ref()).await;
    forget_stops_background_extraction(Arc::clone(&memory)).await;
    fifty_users_stay_isolated(memory).await;
}

/// Background extraction (as agents run it after each stored episode)
/// writes no facts for data that `forget` erased while it was in flight, or
/// between the episode's write and the extraction's start; what `forget`
/// did not select is extracted.
async fn forget_stops_background_extraction(m: Arc<dyn Memory>) {
    let model = crate::GatedModel::new(
        r#"[{"subject":"user","predicate":"likes","object":"tea","confidence":0.9}]"#,
    );
    let extractor = Extractor::new(Consolidator::new(Arc::new(model.clone())));
    let (gone, kept) = (user("extract-gone"), user("extract-kept"));
    let store = |u: &UserId, s: &str| {
        let episode = Episode::new("I drink tea every day", "Noted.").session(session(s));
        let claim = extractor.claim(u, &episode);
        let (m, u) = (Arc::clone(&m), u.clone());
        async move {
            let id = m.remember(&u, episode.clone()).await.unwrap();
            (claim, u, episode, id)
        }
    };
    let mut ids = Vec::new();
    for (u, s) in [
        (&gone, "extract-s1"),
        (&gone, "extract-s2"),
        (&kept, "extract-s1"),
    ] {
        let (claim, u, episode, id) = store(u, s).await;
        extractor.spawn(claim, Arc::clone(&m), u, episode);
        ids.push(id);
    }
    // Bounded, so a lost extraction fails the test with what it saw
    // instead of hanging it.
    let waited =
        tokio::time::timeout(std::time::Duration::from_secs(60), model.wait_for_calls(3)).await;
    assert!(
        waited.is_ok(),
        "only {} of 3 background extractions reached the model within 60 s ({} pending)",
        model.calls(),
        extractor.pending()
    );
    assert_eq!(extractor.pending(), 3);
    // Only the first session of `gone`: its extraction is dropped mid-call.
    m.forget(&Forget::user(gone.clone()).session(session("extract-s1")))
        .await
        .unwrap();
    model.open();
    assert_eq!(extractor.drain(std::time::Duration::from_secs(30)).await, 0);
    let sources =
        |facts: Vec<Fact>| -> Vec<Vec<String>> { facts.into_iter().map(|f| f.sources).collect() };
    let all = FactQuery::new().limit(10);
    let got = sources(m.query_facts(&gone, &all).await.unwrap());
    assert_eq!(got, [vec![ids[1].clone()]], "only the kept session's facts");
    let got = sources(m.query_facts(&kept, &all).await.unwrap());
    assert_eq!(got, [vec![ids[2].clone()]], "another user is untouched");

    // Stored, then erased before its extraction starts: nothing comes back.
    let (claim, u, episode, _) = store(&gone, "extract-s3").await;
    let erased = m.forget(&Forget::user(gone.clone())).await.unwrap();
    assert_eq!(erased.facts, 1, "{erased:?}");
    extractor.spawn(claim, Arc::clone(&m), u, episode);
    assert_eq!(extractor.drain(std::time::Duration::from_secs(30)).await, 0);
    assert!(m.query_facts(&gone, &all).await.unwrap().is_empty());
    m.forget(&Forget::user(kept)).await.unwrap();
}

async fn working_blocks(m: &dyn Memory) {
    let u = user("blocks-user");
    assert!(m.working(&u).await.unwrap().is_empty());
    m.update_block(&u, "persona", "You are terse.")
        .await
        .unwrap();
    m.append_block(&u, "preferences", "likes tea")
        .await
        .unwrap();
    m.append_block(&u, "preferences", "hates mornings")
        .await
        .unwrap();
    let b = m
        .update_block(&u, "persona", "You are kind.")
        .await
        .unwrap();
    assert_eq!(b.pinned_order, 0, "updating keeps the block's place");
    let blocks = m.working(&u).await.unwrap();
    let got: Vec<(&str, &str, u32)> = blocks
        .iter()
        .map(|b| (b.name.as_str(), b.content.as_str(), b.pinned_order))
        .collect();
    assert_eq!(
        got,
        [
            ("persona", "You are kind.", 0),
            ("preferences", "likes tea\nhates mornings", 1)
        ]
    );
    let err = m.update_block(&u, "  ", "x").await.unwrap_err();
    assert!(matches!(err, MemoryError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("1 to 64 characters"), "{err}");
    assert_eq!(
        m.working(&u).await.unwrap().len(),
        2,
        "a refused write loses nothing"
    );
}

async fn episodes_and_sessions(m: &dyn Memory) {
    let u = user("episodes-user");
    let s1 = session("s1");
    let s2 = session("s2");
    let mut first = Episode::new("My cat is called Miso", "Miso is a lovely name.")
        .session(s1.clone())
        .occurred_at(day(1));
    first.tool_calls = vec!["lookup".into()];
    first.tool_transcript = vec![loomflow::Message::assistant("", vec![])];
    let id = m.remember(&u, first.clone()).await.unwrap();
    assert_eq!(id, first.id);
    m.remember(
        &u,
        Episode::new("What food does Miso like?", "Cats like fish.")
            .session(s1.clone())
            .occurred_at(day(2)),
    )
    .await
    .unwrap();
    m.remember(
        &u,
        Episode::new("Book a table for two", "Done, 8pm.")
            .session(s2.clone())
            .occurred_at(day(3)),
    )
    .await
    .unwrap();

    // Session history: oldest first, the last N.
    let eps = m.session_episodes(&u, &s1, 10).await.unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0], first, "an episode comes back exactly as stored");
    let last = m.session_episodes(&u, &s1, 1).await.unwrap();
    assert_eq!(last[0].input, "What food does Miso like?");
    let msgs = m.session_messages(&u, &s1, 10).await.unwrap();
    let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::User,
            Role::Assistant,
            Role::Assistant,
            Role::User,
            Role::Assistant
        ],
        "input, tool transcript, answer per turn"
    );
    assert_eq!(msgs[2].text_content(), "Miso is a lovely name.");

    // Recall by text, with filters.
    let hits = m.recall(&u, &Recall::new("Miso the cat")).await.unwrap();
    assert_eq!(hits[0].id, first.id, "{hits:#?}");
    let hits = m
        .recall(&u, &Recall::new("Miso").excluding_session(s1.clone()))
        .await
        .unwrap();
    assert!(
        hits.iter().all(|e| e.session.as_ref() != Some(&s1)),
        "{hits:#?}"
    );
    let hits = m
        .recall(
            &u,
            &Recall::new("Miso cat food table").between(day(2), day(3)),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].occurred_at, day(2));
    assert!(
        m.recall(&u, &Recall::new("Miso").limit(0))
            .await
            .unwrap()
            .is_empty()
    );

    // Remembering the same id replaces the episode.
    let mut edited = first.clone();
    edited.output = "Miso is a great name.".into();
    m.remember(&u, edited).await.unwrap();
    let eps = m.session_episodes(&u, &s1, 10).await.unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0].output, "Miso is a great name.");
    let hits = m.recall(&u, &Recall::new("lovely")).await.unwrap();
    assert!(
        hits.iter().all(|e| !e.output.contains("lovely")),
        "the replaced text is no longer indexed: {hits:#?}"
    );
}

/// A fact's object and validity.
type Interval<'a> = (&'a str, DateTime<Utc>, Option<DateTime<Utc>>);

async fn facts_supersede_in_either_order(m: &dyn Memory) {
    for (name, order) in [
        ("forward", [0, 1, 2]),
        ("backward", [2, 1, 0]),
        ("mixed", [1, 2, 0]),
    ] {
        let u = user(&format!("facts-{name}"));
        let facts = [
            Fact::new("alice", "LivesIn", "Paris")
                .unwrap()
                .valid_from(month(1)),
            Fact::new("alice", "lives-in", "Rome")
                .unwrap()
                .valid_from(month(6)),
            Fact::new("alice", "lives in", "Oslo")
                .unwrap()
                .valid_from(month(9)),
        ];
        for i in order {
            let stored = m.append_fact(&u, facts[i].clone()).await.unwrap();
            assert_eq!(stored.predicate, "lives_in");
        }
        let mut all = m
            .query_facts(&u, &FactQuery::new().subject("alice").limit(10))
            .await
            .unwrap();
        all.sort_by_key(|f| f.valid_from);
        let intervals: Vec<Interval<'_>> = all
            .iter()
            .map(|f| (f.object.as_str(), f.valid_from, f.valid_until))
            .collect();
        assert_eq!(
            intervals,
            [
                ("Paris", month(1), Some(month(6))),
                ("Rome", month(6), Some(month(9))),
                ("Oslo", month(9), None)
            ],
            "arrival order {name}"
        );
        // Valid-at queries see the right city at each time.
        for (at, city) in [(month(3), "Paris"), (month(7), "Rome"), (month(12), "Oslo")] {
            let now = m
                .query_facts(&u, &FactQuery::new().predicate("LIVES_IN").valid_at(at))
                .await
                .unwrap();
            assert_eq!(now.len(), 1, "{name} at {at}: {now:#?}");
            assert_eq!(now[0].object, city);
        }
    }
}

async fn fact_queries(m: &dyn Memory) {
    let u = user("facts-queries");
    let f = Fact::new("bob", "works_at", "Acme")
        .unwrap()
        .valid_from(month(2))
        .confidence(0.8)
        .source("ep_1");
    let stored = m.append_fact(&u, f.clone()).await.unwrap();
    assert_eq!(stored, f);
    m.append_fact(
        &u,
        Fact::new("bob", "likes", "green tea")
            .unwrap()
            .valid_from(month(3)),
    )
    .await
    .unwrap();
    m.append_fact(
        &u,
        Fact::new("carol", "likes", "coffee")
            .unwrap()
            .valid_from(month(4)),
    )
    .await
    .unwrap();
    // A repeat of the same value does not close the first.
    m.append_fact(
        &u,
        Fact::new("bob", "likes", "green tea")
            .unwrap()
            .valid_from(month(5)),
    )
    .await
    .unwrap();

    let by_object = m
        .query_facts(&u, &FactQuery::new().object("coffee"))
        .await
        .unwrap();
    assert_eq!(by_object.len(), 1);
    assert_eq!(by_object[0].subject, "carol");
    let bobs = m
        .query_facts(&u, &FactQuery::new().subject("bob"))
        .await
        .unwrap();
    let order: Vec<DateTime<Utc>> = bobs.iter().map(|f| f.valid_from).collect();
    assert_eq!(order, [month(5), month(3), month(2)], "newest first");
    assert!(bobs.iter().all(|f| f.valid_until.is_none()));
    let one = m.query_facts(&u, &FactQuery::new().limit(1)).await.unwrap();
    assert_eq!(one.len(), 1);

    let found = m
        .recall_facts(&u, "Where does Bob work?", 5, None)
        .await
        .unwrap();
    assert_eq!(found[0].object, "Acme", "{found:#?}");
    let tea = m
        .recall_facts(&u, "green tea", 5, Some(month(4)))
        .await
        .unwrap();
    assert_eq!(
        tea.len(),
        1,
        "valid at April: only the first tea fact, {tea:#?}"
    );
    assert!(
        m.recall_facts(&u, "quantum", 5, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(m.recall_facts(&u, "", 2, None).await.unwrap().len(), 2);

    // Bad facts are typed errors and change nothing.
    let mut bad = Fact::new("bob", "likes", "x").unwrap();
    bad.predicate = "--".into();
    let err = m.append_fact(&u, bad).await.unwrap_err();
    assert!(matches!(err, MemoryError::InvalidFact(_)), "{err:?}");
    let backwards = Fact::new("bob", "likes", "x")
        .unwrap()
        .valid_from(month(6))
        .valid_until(month(1));
    let err = m.append_fact(&u, backwards).await.unwrap_err();
    assert!(err.to_string().contains("before it starts"), "{err}");
    let err = m
        .query_facts(&u, &FactQuery::new().predicate("!!"))
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::InvalidFact(_)), "{err:?}");
    assert_eq!(m.query_facts(&u, &FactQuery::new()).await.unwrap().len(), 4);
}

/// Ten episodes on distinct topics and queries whose right answer is known.
const LABELLED: &[&str] = &[
    "Booked a flight to Tokyo for the March conference",
    "Recipe for sourdough bread with a long cold proof",
    "The quarterly tax return is due on April 15",
    "Ran a half marathon in 1 hour 52 minutes",
    "Dentist appointment moved to Thursday morning",
    "Planning a hiking trip in the Dolomites this summer",
    "Kubernetes pods keep crashing with OOMKilled errors",
    "Bought running shoes for marathon training",
    "Learning Japanese vocabulary before the Tokyo trip",
    "Sourdough starter needs feeding twice a day",
];

async fn hybrid_recall_ranks_a_labelled_set(m: &dyn Memory) {
    let u = user("labelled");
    let mut ids = Vec::new();
    for (i, text) in LABELLED.iter().enumerate() {
        let ep = Episode::new(*text, "ok").occurred_at(day(1) + Duration::minutes(i as i64));
        ids.push(m.remember(&u, ep).await.unwrap());
    }
    let cases: &[(&str, usize)] = &[
        ("flight to Tokyo", 0),
        ("bread recipe", 1),
        ("when is my tax return due", 2),
        ("half marathon time", 3),
        ("dentist thursday", 4),
        ("hiking in the Dolomites", 5),
        ("pods OOMKilled", 6),
        ("new running shoes", 7),
        ("japanese vocabulary", 8),
        ("feeding the sourdough starter", 9),
    ];
    for &(query, want) in cases {
        let hits = m
            .recall_scored(&u, &Recall::new(query).limit(3))
            .await
            .unwrap();
        assert_eq!(hits[0].episode.id, ids[want], "query {query:?}: {hits:#?}");
        assert!(hits.len() <= 3);
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{hits:#?}"
        );
        let top = &hits[0];
        assert!(top.bm25_score.is_some_and(|s| s > 0.0), "{top:#?}");
        assert!(top.vector_score.is_some_and(|s| s > 0.0), "{top:#?}");
    }
    // Both lists contribute: "Tokyo" alone ranks the two Tokyo episodes first.
    let hits = m
        .recall_scored(&u, &Recall::new("Tokyo").limit(2))
        .await
        .unwrap();
    let mut got: Vec<&str> = hits.iter().map(|h| h.episode.id.as_str()).collect();
    got.sort();
    let mut want = vec![ids[0].as_str(), ids[8].as_str()];
    want.sort();
    assert_eq!(got, want);
    // Keywords only, vectors only.
    let kw = m
        .recall_scored(&u, &Recall::new("marathon").alpha(0.0).limit(5))
        .await
        .unwrap();
    assert_eq!(kw.len(), 2, "exactly the two marathon episodes: {kw:#?}");
    assert!(
        kw.iter()
            .all(|h| h.vector_score.is_none() && h.bm25_score.is_some())
    );
    let vec_only = m
        .recall_scored(&u, &Recall::new("marathon").alpha(1.0).limit(5))
        .await
        .unwrap();
    assert!(
        vec_only
            .iter()
            .all(|h| h.bm25_score.is_none() && h.vector_score.is_some())
    );
    assert!(matches!(
        vec_only[0].episode.input.as_str(),
        "Ran a half marathon in 1 hour 52 minutes" | "Bought running shoes for marathon training"
    ));
}

/// A batch stores exactly what one `remember` after another stores: the
/// same recall results and scores (so the same keyword statistics), a
/// repeated id keeping its last episode, a replaced episode leaving its old
/// session.
async fn remember_many_matches_one_by_one(m: &dyn Memory) {
    let (batch, single) = (user("batch-writer"), user("single-writer"));
    let old_session = session("before-the-import");
    let mut episodes: Vec<Episode> = LABELLED
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Episode::new(*text, "noted")
                .session(session("import"))
                .occurred_at(day(1) + Duration::minutes(i as i64))
        })
        .collect();
    // The first episode was stored before, in another session, and the
    // batch names the fourth twice: the later version wins.
    let earlier = Episode {
        session: Some(old_session.clone()),
        output: "an older answer about Tokyo".into(),
        ..episodes[0].clone()
    };
    let mut twice = episodes[3].clone();
    twice.output = "a first draft, replaced within the batch".into();
    episodes.insert(3, twice);

    assert!(
        m.remember_many(&batch, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    m.remember(&batch, earlier.clone()).await.unwrap();
    let ids = m.remember_many(&batch, episodes.clone()).await.unwrap();
    let want: Vec<String> = episodes.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want, "one id per episode, in order, repeats included");

    m.remember(&single, earlier).await.unwrap();
    for episode in episodes {
        m.remember(&single, episode).await.unwrap();
    }

    for user in [&batch, &single] {
        let profile = m.profile(user).await.unwrap();
        assert_eq!(profile.episode_count, LABELLED.len() as u64, "{profile:#?}");
        assert!(
            m.session_episodes(user, &old_session, 10)
                .await
                .unwrap()
                .is_empty(),
            "the replaced episode left its old session"
        );
    }
    let imported = m
        .session_episodes(&batch, &session("import"), 20)
        .await
        .unwrap();
    assert_eq!(imported.len(), LABELLED.len());
    assert_eq!(imported[3].output, "noted", "the batch's later version");
    for query in [
        "Tokyo trip",
        "marathon training shoes",
        "sourdough",
        "Japanese vocabulary",
    ] {
        let got = m
            .recall_scored(&batch, &Recall::new(query).limit(4))
            .await
            .unwrap();
        let want = m
            .recall_scored(&single, &Recall::new(query).limit(4))
            .await
            .unwrap();
        let summary = |hits: &[loomflow::memory::EpisodeMatch]| -> Vec<(String, String)> {
            hits.iter()
                .map(|h| (h.episode.id.clone(), format!("{:.5}", h.score)))
                .collect()
        };
        assert_eq!(summary(&got), summary(&want), "query {query:?}");
        assert!(!got.is_empty(), "query {query:?}");
    }
}

/// Keyword recall ranks exactly as the in-memory reference scores BM25
/// over every episode, on 300 episodes where one query word is in most of
/// them (backends that skip reading what cannot rank must skip nothing
/// that could), with a time filter too.
async fn keyword_recall_matches_the_reference(m: &dyn Memory) {
    let u = user("keyword-ranking");
    let episodes: Vec<Episode> = (0..300)
        .map(|i| {
            let mut words = Vec::new();
            if i % 5 != 0 {
                words.push("common".to_owned());
            }
            if i % 3 == 0 {
                words.push("often".to_owned());
            }
            words.push(format!("mid{}", i % 20));
            words.push(format!("rare{}", i % 97));
            if i % 4 == 0 {
                words.push(format!("mid{}", i % 20));
            }
            words.extend((0..i % 7).map(|k| format!("filler{k}")));
            Episode::new(words.join(" "), "ok").occurred_at(day(1) + Duration::minutes(i))
        })
        .collect();
    let reference = loomflow::memory::InMemoryMemory::new();
    reference.remember_many(&u, episodes.clone()).await.unwrap();
    m.remember_many(&u, episodes).await.unwrap();
    let rounded = |s: Option<f32>| format!("{:.4}", s.unwrap_or(0.0));
    let queries = [
        Recall::new("common mid3"),
        Recall::new("common often rare5"),
        Recall::new("often mid7 rare11 rare12"),
        Recall::new("common"),
        Recall::new("common mid4").between(
            day(1) + Duration::minutes(100),
            day(1) + Duration::minutes(200),
        ),
    ];
    for query in queries {
        let query = query.alpha(0.0);
        let all: std::collections::HashMap<String, String> = reference
            .recall_scored(&u, &query.clone().limit(300))
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.episode.id, rounded(h.bm25_score)))
            .collect();
        let want: Vec<String> = reference
            .recall_scored(&u, &query.clone().limit(8))
            .await
            .unwrap()
            .iter()
            .map(|h| rounded(h.bm25_score))
            .collect();
        let hits = m.recall_scored(&u, &query.clone().limit(8)).await.unwrap();
        let got: Vec<String> = hits.iter().map(|h| rounded(h.bm25_score)).collect();
        assert_eq!(got, want, "the best scores for {:?}", query.text);
        for h in &hits {
            assert_eq!(
                all.get(&h.episode.id),
                Some(&rounded(h.bm25_score)),
                "{:?}: {}",
                query.text,
                h.episode.input
            );
            if let Some((from, to)) = query.time_range {
                assert!(from <= h.episode.occurred_at && h.episode.occurred_at < to);
            }
        }
    }
}

async fn forget_export_profile(m: &dyn Memory) {
    let u = user("gdpr-user");
    let other = user("gdpr-bystander");
    let (s1, s2) = (session("gdpr-s1"), session("gdpr-s2"));
    let e1 = Episode::new("I live in Lyon", "Noted.")
        .session(s1.clone())
        .occurred_at(day(1));
    let e2 = Episode::new("I moved to Nice", "Noted.")
        .session(s2.clone())
        .occurred_at(day(5));
    let e3 = Episode::new("Favourite colour: teal", "Noted.")
        .session(s2.clone())
        .occurred_at(day(9));
    for e in [&e1, &e2, &e3] {
        m.remember(&u, e.clone()).await.unwrap();
        m.remember(&other, e.clone()).await.unwrap();
    }
    let lyon = Fact::new("me", "lives_in", "Lyon")
        .unwrap()
        .valid_from(day(1))
        .source(&e1.id);
    let nice = Fact::new("me", "lives_in", "Nice")
        .unwrap()
        .valid_from(day(5))
        .source(&e2.id);
    let teal = Fact::new("me", "likes_colour", "teal")
        .unwrap()
        .valid_from(day(9))
        .source(&e3.id)
        .source(&e1.id);
    for f in [&lyon, &nice, &teal] {
        m.append_fact(&u, f.clone()).await.unwrap();
        m.append_fact(&other, f.clone()).await.unwrap();
    }
    m.update_block(&u, "persona", "terse").await.unwrap();
    m.update_block(&other, "persona", "terse").await.unwrap();

    let p = m.profile(&u).await.unwrap();
    assert_eq!(p.user, u);
    assert_eq!((p.episode_count, p.fact_count, p.block_count), (3, 3, 1));
    assert_eq!(p.last_seen, Some(day(9)));
    assert_eq!(p.recent_sessions, [s2.clone(), s1.clone()]);
    let mut sample: Vec<&str> = p.sample_facts.iter().map(|f| f.object.as_str()).collect();
    sample.sort();
    assert_eq!(sample, ["Nice", "teal"], "only facts that hold now");
    assert_eq!(p.backend, m.backend());
    assert!(!p.vector_search.is_empty());

    let export = m.export(&u).await.unwrap();
    assert_eq!(export.user, u);
    let eps: Vec<&str> = export.episodes.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        eps,
        [e1.id.as_str(), e2.id.as_str(), e3.id.as_str()],
        "oldest first"
    );
    assert_eq!(export.facts.len(), 3);
    assert_eq!(
        export.facts[0].valid_until,
        Some(day(5)),
        "superseded facts are exported too"
    );
    assert_eq!(export.blocks.len(), 1);
    let json = serde_json::to_value(&export).unwrap();
    assert_eq!(json["episodes"][0]["input"], "I live in Lyon");

    // One session: its episodes, and facts drawn only from them.
    let gone = m
        .forget(&Forget::user(u.clone()).session(s1.clone()))
        .await
        .unwrap();
    assert_eq!((gone.episodes, gone.facts, gone.blocks), (1, 1, 0));
    assert!(m.session_episodes(&u, &s1, 10).await.unwrap().is_empty());
    let facts = m.query_facts(&u, &FactQuery::new()).await.unwrap();
    let mut objects: Vec<&str> = facts.iter().map(|f| f.object.as_str()).collect();
    objects.sort();
    assert_eq!(
        objects,
        ["Nice", "teal"],
        "teal also came from a kept episode"
    );
    assert!(
        m.recall(&u, &Recall::new("Lyon"))
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != e1.id)
    );

    // Before a time: older episodes and facts, blocks last updated before.
    let gone = m
        .forget(&Forget::user(u.clone()).before(day(6)))
        .await
        .unwrap();
    assert_eq!(
        (gone.episodes, gone.facts, gone.blocks),
        (1, 0, 0),
        "{gone:?}"
    );
    assert_eq!(m.profile(&u).await.unwrap().episode_count, 1);

    // Everything else of the user.
    let gone = m.forget(&Forget::user(u.clone())).await.unwrap();
    assert_eq!(
        (gone.episodes, gone.facts, gone.blocks),
        (1, 2, 1),
        "{gone:?}"
    );
    assert_eq!(gone.total(), 4);
    let p = m.profile(&u).await.unwrap();
    assert_eq!((p.episode_count, p.fact_count, p.block_count), (0, 0, 0));
    let export = m.export(&u).await.unwrap();
    assert!(export.episodes.is_empty() && export.facts.is_empty() && export.blocks.is_empty());
    assert!(m.session_messages(&u, &s2, 10).await.unwrap().is_empty());
    assert!(
        m.recall(&u, &Recall::new("Nice teal Lyon"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(m.forget(&Forget::user(u.clone())).await.unwrap().total(), 0);

    // The bystander with identical data kept all of it.
    let p = m.profile(&other).await.unwrap();
    assert_eq!((p.episode_count, p.fact_count, p.block_count), (3, 3, 1));
}

/// Ids that must stay plain data in every backend: SQL, key patterns,
/// path pieces, and the anonymous bucket.
fn tricky_users() -> Vec<UserId> {
    vec![
        UserId::anonymous(),
        user("x');DROP_TABLE_episodes;--"),
        user("*"),
        user("user:*"),
        user("a?b[c]"),
        user("%"),
        user("../etc"),
        user("{alice}"),
    ]
}

async fn fifty_users_stay_isolated(m: Arc<dyn Memory>) {
    let mut users: Vec<UserId> = (0..42).map(|i| user(&format!("tenant-{i:02}"))).collect();
    users.extend(tricky_users());
    assert_eq!(users.len(), 50);
    let mut tasks = Vec::new();
    for (i, u) in users.iter().cloned().enumerate() {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let marker = format!("zebra{i:02}");
            for n in 0..4 {
                let ep = Episode::new(
                    format!("shared words about zebras {marker} note {n}"),
                    format!("answer {marker}"),
                )
                .session(SessionId::new("same-session").unwrap());
                m.remember(&u, ep).await.unwrap();
            }
            m.append_fact(&u, Fact::new("me", "marker", marker.clone()).unwrap())
                .await
                .unwrap();
            m.update_block(&u, "persona", &marker).await.unwrap();
            // Recall with words every tenant used: only this tenant's come back.
            let hits = m
                .recall(&u, &Recall::new("shared words about zebras note").limit(50))
                .await
                .unwrap();
            assert_eq!(hits.len(), 4, "{u}: {hits:#?}");
            assert!(
                hits.iter().all(|e| e.output == format!("answer {marker}")),
                "{u}"
            );
            let facts = m.recall_facts(&u, "marker", 50, None).await.unwrap();
            assert_eq!(facts.len(), 1, "{u}");
            assert_eq!(facts[0].object, marker);
            let history = m
                .session_messages(&u, &SessionId::new("same-session").unwrap(), 50)
                .await
                .unwrap();
            assert_eq!(history.len(), 8, "{u}");
            assert!(
                history
                    .iter()
                    .all(|msg| msg.text_content().contains(&marker))
            );
            let blocks = m.working(&u).await.unwrap();
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].content, marker);
            let export = m.export(&u).await.unwrap();
            assert_eq!(export.episodes.len(), 4);
            assert!(export.episodes.iter().all(|e| e.input.contains(&marker)));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Forgetting one tricky id erases nobody else (no pattern, no wildcard).
    for u in tricky_users() {
        let gone = m.forget(&Forget::user(u.clone())).await.unwrap();
        assert_eq!((gone.episodes, gone.facts, gone.blocks), (4, 1, 1), "{u}");
    }
    for u in users.iter().take(42) {
        let p = m.profile(u).await.unwrap();
        assert_eq!(
            (p.episode_count, p.fact_count, p.block_count),
            (4, 1, 1),
            "{u}"
        );
    }
}

/// The session [`seed_two_sessions`] fills with the query's nearest
/// neighbours (quotes and a backslash in its id, for backends that put it
/// in a filter expression).
pub const NOISE_SESSION: &str = "noise\"quoted\"\\session";

/// Stores `n` episodes for one user (`traveller`), alternating between
/// session `keep` ("visit the paris museum, day i") and
/// [`NOISE_SESSION`] ("plan the rome trip, day i"), 16 writers at a time.
/// Every episode's answer is "noted". Returns (user, keep, noise).
pub async fn seed_two_sessions(
    memory: &Arc<dyn Memory>,
    n: usize,
) -> (UserId, SessionId, SessionId) {
    let u = user("traveller");
    let keep = session("keep");
    let noise = session(NOISE_SESSION);
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        futures_util::future::join_all(chunk.iter().map(|i| {
            let (memory, u) = (memory.clone(), u.clone());
            let (s, text) = if i % 2 == 0 {
                (keep.clone(), format!("visit the paris museum, day {i}"))
            } else {
                (noise.clone(), format!("plan the rome trip, day {i}"))
            };
            async move {
                memory
                    .remember(&u, Episode::new(text, "noted").session(s))
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
    (u, keep, noise)
}

/// After [`seed_two_sessions`]: a recall whose nearest neighbours all sit
/// in the excluded session still returns its full limit, by vectors alone
/// and by keywords alone. (HNSW filters after it walks the graph; a backend
/// that does not keep walking returns fewer rows, or none.)
pub async fn assert_filtered_recall_is_full(
    memory: &dyn Memory,
    u: &UserId,
    keep: &SessionId,
    noise: &SessionId,
) {
    // Every episode shares "noted" with the query, so all score above zero.
    let query = Recall::new("rome trip plan noted")
        .alpha(1.0)
        .limit(25)
        .excluding_session(noise.clone());
    let hits = memory.recall_scored(u, &query).await.unwrap();
    assert_eq!(hits.len(), 25, "the filter must not shorten the answer");
    assert!(
        hits.iter()
            .all(|h| h.episode.session.as_ref() == Some(keep) && h.vector_score.is_some())
    );
    let hits = memory
        .recall_scored(u, &query.clone().alpha(0.0))
        .await
        .unwrap();
    assert_eq!(hits.len(), 25, "keywords are filtered the same way");
    assert!(
        hits.iter()
            .all(|h| h.episode.session.as_ref() == Some(keep) && h.bm25_score.is_some())
    );
    // Unfiltered, the nearest are the excluded session's.
    let hits = memory
        .recall_scored(u, &Recall::new("rome trip plan").alpha(1.0).limit(25))
        .await
        .unwrap();
    assert!(
        hits.iter()
            .all(|h| h.episode.session.as_ref() == Some(noise))
    );
}

/// Namespaces and the embedder's size on one store: `base` (empty, default
/// namespace, 384-dimension hash embedder), `other_namespace` (the same
/// store, another namespace), `resolved` (the same store opened by
/// [`loomflow::open_memory`] from its spec string), `wide` (the default
/// namespace with a 64-dimension embedder). The other namespace sees
/// nothing, the resolved handle sees everything, and `wide` is refused
/// with [`MemoryError::Dimensions`] without losing what is stored.
pub async fn assert_namespaces_and_embedder_size(
    base: &dyn Memory,
    other_namespace: &dyn Memory,
    resolved: &dyn Memory,
    wide: &dyn Memory,
) {
    let u = user("shared");
    base.remember(&u, Episode::new("The wifi password is on the fridge", "ok"))
        .await
        .unwrap();
    let wifi = Recall::new("wifi");
    assert!(other_namespace.recall(&u, &wifi).await.unwrap().is_empty());
    assert_eq!(other_namespace.profile(&u).await.unwrap().episode_count, 0);
    assert_eq!(resolved.backend(), base.backend());
    assert_eq!(resolved.recall(&u, &wifi).await.unwrap().len(), 1);
    let err = wide.remember(&u, Episode::new("x", "y")).await.unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Dimensions {
                stored: 384,
                made: 64,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        base.profile(&u).await.unwrap().episode_count,
        1,
        "nothing lost"
    );
}

/// `memory` points at a server that is gone: its first operation fails
/// with [`MemoryError::Unreachable`] naming `host`, and never shows
/// `password`.
pub async fn assert_unreachable(memory: &dyn Memory, host: &str, password: &str) {
    let err = memory
        .recall(&user("alice"), &Recall::new("x"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MemoryError::Unreachable { .. }), "{text}");
    assert!(text.contains(host), "{text}");
    assert!(!text.contains(password), "{text}");
}
