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

mod agent {
    use std::sync::Arc;

    use loomflow::journal::{InMemoryJournal, Journal, Scope};
    use loomflow::memory::{Episode, Fact, InMemoryMemory, Memory, Recall};
    use loomflow::{Agent, EchoModel, Role, SessionId, UserId};
    use loomflow_testkit::RecordingModel;

    fn transcript(call: &loomflow_testkit::RecordedCall) -> Vec<(Role, String)> {
        call.messages
            .iter()
            .map(|m| (m.role, m.text_content()))
            .collect()
    }

    #[tokio::test]
    async fn runs_are_seeded_from_memory_and_stored_as_episodes() {
        let memory = Arc::new(InMemoryMemory::new());
        let model = RecordingModel::new(EchoModel::new());
        let agent = Agent::builder()
            .instructions("You are helpful.")
            .model(model.clone())
            .memory(memory.clone())
            .build()
            .unwrap();
        let alice = UserId::new("alice").unwrap();
        memory
            .update_block(&alice, "persona", "Answer in French.")
            .await
            .unwrap();
        memory
            .append_fact(&alice, Fact::new("alice", "lives in", "Lyon").unwrap())
            .await
            .unwrap();
        // An episode from another session, and one from another user.
        memory
            .remember(
                &alice,
                Episode::new("Recommend a bakery in Lyon", "Try Pralus.")
                    .session(SessionId::new("older").unwrap()),
            )
            .await
            .unwrap();
        memory
            .remember(
                &UserId::new("bob").unwrap(),
                Episode::new("Bakery in Lyon for bob?", "Bob's secret bakery."),
            )
            .await
            .unwrap();

        agent
            .run("Which bakery in Lyon?")
            .user("alice")
            .session("s1")
            .await
            .unwrap();
        let first = transcript(&model.calls()[0]);
        let recalled = first[2].1.clone();
        assert_eq!(first[0], (Role::System, "You are helpful.".into()));
        assert_eq!(
            first[1],
            (
                Role::System,
                "<persona>\nAnswer in French.\n</persona>".into()
            )
        );
        assert_eq!(first[2].0, Role::System);
        assert!(
            recalled.starts_with("Known facts:\n- alice lives_in Lyon (since "),
            "{recalled}"
        );
        assert!(
            recalled.contains("Relevant past episodes:\n- ")
                && recalled.contains("User: Recommend a bakery in Lyon | Assistant: Try Pralus."),
            "{recalled}"
        );
        assert!(
            !recalled.contains("Bob"),
            "another user's episode leaked: {recalled}"
        );
        assert_eq!(first[3], (Role::User, "Which bakery in Lyon?".into()));
        assert_eq!(first.len(), 4);

        // The second run of s1 replays s1's turn as history and does not
        // recall it again as a "past episode".
        agent
            .run("And a cafe?")
            .user("alice")
            .session("s1")
            .await
            .unwrap();
        let second = transcript(&model.calls()[1]);
        let n = second.len();
        assert_eq!(second[n - 3], (Role::User, "Which bakery in Lyon?".into()));
        assert_eq!(
            second[n - 2],
            (Role::Assistant, "Echo: Which bakery in Lyon?".into())
        );
        assert_eq!(second[n - 1], (Role::User, "And a cafe?".into()));
        assert!(
            second
                .iter()
                .all(|(_, t)| !t.contains("User: Which bakery")),
            "{second:#?}"
        );

        // Both runs are episodes of s1, under alice only.
        let s1 = SessionId::new("s1").unwrap();
        let eps = memory.session_episodes(&alice, &s1, 10).await.unwrap();
        let got: Vec<(&str, &str)> = eps
            .iter()
            .map(|e| (e.input.as_str(), e.output.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Which bakery in Lyon?", "Echo: Which bakery in Lyon?"),
                ("And a cafe?", "Echo: And a cafe?")
            ]
        );
        let bob = UserId::new("bob").unwrap();
        assert!(
            memory
                .session_episodes(&bob, &s1, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let hits = memory.recall(&bob, &Recall::new("cafe")).await.unwrap();
        assert!(hits.is_empty(), "{hits:#?}");
    }

    #[tokio::test]
    async fn memory_steps_are_journaled_and_a_replayed_run_does_not_store_twice() {
        let memory = Arc::new(InMemoryMemory::new());
        let journal = Arc::new(InMemoryJournal::new());
        let agent = Agent::builder()
            .model("echo")
            .memory(memory.clone())
            .journal(journal.clone())
            .build()
            .unwrap();
        agent
            .run("hello")
            .user("carol")
            .session("j1")
            .await
            .unwrap();
        let scope = Scope::new(UserId::new("carol").unwrap(), SessionId::new("j1").unwrap());
        let keys: Vec<String> = journal
            .steps(&scope, None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key.split('@').next().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["recall_memory", "model_call_1", "persist_episode_1"]);
        let carol = UserId::new("carol").unwrap();
        let eps = memory
            .session_episodes(&carol, &SessionId::new("j1").unwrap(), 10)
            .await
            .unwrap();
        assert_eq!(eps.len(), 1);
        // The id comes from the step's idempotency key: a re-execution of the
        // step after a crash replaces the episode instead of adding one.
        assert!(
            eps[0].id.starts_with("ep_") && eps[0].id.len() == 3 + 16,
            "{}",
            eps[0].id
        );
    }

    #[tokio::test]
    async fn tool_transcripts_are_kept_when_asked_and_replayed_with_the_session() {
        use loomflow::agent::MemoryOptions;
        use loomflow_testkit::ToolLoopModel;

        /// Looks up the weather.
        #[loomflow::tool]
        async fn weather(n: u32) -> String {
            format!("sunny in Oslo, reading {n}")
        }

        let memory = Arc::new(InMemoryMemory::new());
        let agent = Agent::builder()
            .model(ToolLoopModel::new("weather", 1))
            .tool(weather)
            .memory(memory.clone())
            .memory_options(MemoryOptions::default().persist_tool_transcripts(true))
            .build()
            .unwrap();
        agent
            .run("Weather?")
            .user("dave")
            .session("t1")
            .await
            .unwrap();
        let dave = UserId::new("dave").unwrap();
        let t1 = SessionId::new("t1").unwrap();
        let eps = memory.session_episodes(&dave, &t1, 10).await.unwrap();
        assert_eq!(eps[0].tool_calls, ["weather"]);
        let roles: Vec<Role> = eps[0].tool_transcript.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::Assistant, Role::Tool]);
        assert!(
            eps[0].tool_transcript[1]
                .text_content()
                .contains("sunny in Oslo")
        );
        let history = memory.session_messages(&dave, &t1, 10).await.unwrap();
        let roles: Vec<Role> = history.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
        );
    }
}

mod extraction {
    use std::sync::Arc;
    use std::time::Duration;

    use loomflow::memory::{Consolidator, FactQuery, Forget, InMemoryMemory, Memory};
    use loomflow::{Agent, ScriptedModel, ScriptedTurn, UserId};
    use loomflow_testkit::GatedModel;

    const FACTS: &str =
        r#"[{"subject":"user","predicate":"Lives In","object":"Lyon","confidence":0.9}]"#;

    #[tokio::test]
    async fn local_models_do_not_extract_unless_asked() {
        let memory = Arc::new(InMemoryMemory::new());
        let alice = UserId::new("alice").unwrap();
        // Off by default: the second scripted turn is never asked for.
        let model = ScriptedModel::new([
            ScriptedTurn::text("Lyon is lovely."),
            ScriptedTurn::text(FACTS),
        ]);
        let agent = Agent::builder()
            .model(model)
            .memory(memory.clone())
            .build()
            .unwrap();
        assert!(agent.extractor().is_none());
        agent.run("I live in Lyon").user("alice").await.unwrap();
        assert_eq!(agent.drain(Duration::from_secs(5)).await, 0);
        let facts = memory.query_facts(&alice, &FactQuery::new()).await.unwrap();
        assert!(facts.is_empty(), "{facts:?}");

        // Asked for: the run's answer, then the extraction call.
        let model = ScriptedModel::new([
            ScriptedTurn::text("Lyon is lovely."),
            ScriptedTurn::text(FACTS),
        ]);
        let agent = Agent::builder()
            .model(model)
            .memory(memory.clone())
            .auto_extract(true)
            .build()
            .unwrap();
        let result = agent.run("I live in Lyon").user("alice").await.unwrap();
        assert_eq!(result.output, "Lyon is lovely.");
        assert_eq!(agent.drain(Duration::from_secs(5)).await, 0);
        let facts = memory.query_facts(&alice, &FactQuery::new()).await.unwrap();
        let got: Vec<(&str, &str, &str)> = facts
            .iter()
            .map(|f| (f.subject.as_str(), f.predicate.as_str(), f.object.as_str()))
            .collect();
        assert_eq!(got, [("user", "lives_in", "Lyon")]);
        let episodes = memory.export(&alice).await.unwrap().episodes;
        // The second run's episode (the first run stored one too).
        let stored = episodes.iter().max_by_key(|e| e.occurred_at).unwrap();
        assert_eq!(facts[0].sources, std::slice::from_ref(&stored.id));
        assert_eq!(facts[0].valid_from, stored.occurred_at);
    }

    #[tokio::test]
    async fn the_run_never_waits_and_forget_cancels_what_is_in_flight() {
        let memory = Arc::new(InMemoryMemory::new());
        let extractor_model = GatedModel::new(FACTS);
        let agent = Agent::builder()
            .model("echo")
            .memory(memory.clone())
            .consolidator(Consolidator::new(Arc::new(extractor_model.clone())))
            .build()
            .unwrap();
        // Both runs return while their extractions are held at the gate.
        agent.run("I live in Lyon").user("alice").await.unwrap();
        agent.run("I live in Oslo").user("bob").await.unwrap();
        extractor_model.wait_for_calls(2).await;
        assert_eq!(agent.extractor().unwrap().pending(), 2);
        assert_eq!(agent.drain(Duration::from_millis(20)).await, 2);

        let alice = UserId::new("alice").unwrap();
        let bob = UserId::new("bob").unwrap();
        memory.forget(&Forget::user(alice.clone())).await.unwrap();
        extractor_model.open();
        assert_eq!(agent.drain(Duration::from_secs(5)).await, 0);
        assert!(
            memory
                .query_facts(&alice, &FactQuery::new())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            memory
                .query_facts(&bob, &FactQuery::new())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

mod workflow {
    use std::sync::Arc;

    use loomflow::memory::{InMemoryMemory, Memory};
    use loomflow::{Agent, EchoModel, Role, SessionId, Step, UserId, Workflow};
    use loomflow_testkit::RecordingModel;

    #[tokio::test]
    async fn workflow_memory_reaches_nested_agents_without_their_own() {
        let shared = Arc::new(InMemoryMemory::new());
        let own = Arc::new(InMemoryMemory::new());
        let model = RecordingModel::new(EchoModel::new());
        let plain = Agent::builder().model(model.clone()).build().unwrap();
        let private = Agent::builder()
            .model("echo")
            .memory(own.clone())
            .build()
            .unwrap();
        let inner = Workflow::chain([Step::named("plain", plain)])
            .build()
            .unwrap();
        let wf = Workflow::builder("outer")
            .memory(shared.clone())
            .add_node("nested", inner)
            .add_node("private", private)
            .set_start("nested")
            .add_edge("nested", "private")
            .add_edge("private", loomflow::END)
            .build()
            .unwrap();
        for input in ["my name is Ada", "what is my name?"] {
            wf.run(input).user("ada").session("s1").await.unwrap();
        }
        let ada = UserId::new("ada").unwrap();
        let s1 = SessionId::new("s1").unwrap();
        let in_shared = shared.session_episodes(&ada, &s1, 10).await.unwrap();
        let inputs: Vec<&str> = in_shared.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(
            inputs,
            ["my name is Ada", "what is my name?"],
            "the nested agent's runs"
        );
        let in_own = own.session_episodes(&ada, &s1, 10).await.unwrap();
        assert_eq!(
            in_own.len(),
            2,
            "the agent with its own memory keeps using it"
        );

        // The nested agent's second run was seeded with the session so far.
        let second = &model.calls()[1];
        let history: Vec<(Role, String)> = second
            .messages
            .iter()
            .map(|m| (m.role, m.text_content()))
            .collect();
        assert_eq!(
            history,
            [
                (Role::User, "my name is Ada".to_owned()),
                (Role::Assistant, "Echo: my name is Ada".to_owned()),
                (Role::User, "what is my name?".to_owned()),
            ]
        );
        // Nothing leaks to another user.
        let eve = UserId::new("eve").unwrap();
        assert!(
            shared
                .session_episodes(&eve, &s1, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// `with_facts = false` on a workflow's memory reaches the agents that
    /// use it: no facts in their prompts, no extraction after their runs;
    /// with the default, both happen.
    #[tokio::test]
    async fn a_workflow_memory_without_facts_turns_facts_off_for_its_agents() {
        use loomflow::memory::{Consolidator, Fact, FactQuery};
        use loomflow::{ScriptedModel, ScriptedTurn};
        use std::time::Duration;

        const FACTS: &str =
            r#"[{"subject":"user","predicate":"likes","object":"tea","confidence":0.9}]"#;
        let ada = UserId::new("ada").unwrap();
        for with_facts in [false, true] {
            let shared = Arc::new(InMemoryMemory::new());
            shared
                .append_fact(&ada, Fact::new("user", "lives in", "Lyon").unwrap())
                .await
                .unwrap();
            let model = RecordingModel::new(EchoModel::new());
            let extraction = ScriptedModel::new([ScriptedTurn::text(FACTS)]);
            let agent = Agent::builder()
                .model(model.clone())
                .consolidator(Consolidator::new(Arc::new(extraction)))
                .build()
                .unwrap();
            let wf = Workflow::chain([Step::named("answer", agent.clone())])
                .memory(shared.clone())
                .memory_facts(with_facts)
                .build()
                .unwrap();
            wf.run("where do I live?").user("ada").await.unwrap();
            assert_eq!(agent.drain(Duration::from_secs(5)).await, 0);
            let prompt: String = model.calls()[0]
                .messages
                .iter()
                .map(|m| m.text_content())
                .collect();
            assert_eq!(
                prompt.contains("user lives_in Lyon"),
                with_facts,
                "with_facts = {with_facts}: {prompt}"
            );
            let facts = shared.query_facts(&ada, &FactQuery::new()).await.unwrap();
            assert_eq!(
                facts.len(),
                if with_facts { 2 } else { 1 },
                "with_facts = {with_facts}: {facts:?}"
            );
            assert_eq!(
                shared.export(&ada).await.unwrap().episodes.len(),
                1,
                "the run is stored either way"
            );
        }
    }
}
