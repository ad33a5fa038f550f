#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The contract every [`AuditLog`] backend passes: signed and chained
//! appends that round-trip exactly, queries by session, action and user
//! (tenants never see each other's entries), separate named logs, many
//! handles appending at once, and, for databases, a set of tampering
//! cases done in SQL behind the log's back, each of which `verify` must
//! report.
//!
//! Call [`run_all`] with a function that opens a log by name (the same
//! name twice opens two handles to one log, as two processes would), and
//! [`tamper_cases`] with the same function and a way to run SQL.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use loomflow::UserId;
use loomflow::audit::{AuditEntry, AuditLog, AuditQuery, AuditRecord, GENESIS_HASH};
use serde_json::json;

/// Runs SQL against the database behind the logs (table `loomflow_audit`).
#[async_trait]
pub trait Sql: Send + Sync {
    /// Runs one statement; panics if it fails.
    async fn execute(&self, sql: &str);
}

fn user(name: &str) -> UserId {
    if name.is_empty() {
        UserId::anonymous()
    } else {
        UserId::new(name).unwrap()
    }
}

fn problems(v: &loomflow::audit::Verification) -> Vec<String> {
    v.problems.iter().map(ToString::to_string).collect()
}

/// Runs every check that needs no SQL. `open(name)` opens the log `name`.
pub async fn run_all<F, Fut>(open: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Arc<dyn AuditLog>>,
{
    round_trip_chain_and_queries(open("contract_basic").await).await;
    named_logs_are_separate(open("contract_a").await, open("contract_b").await).await;
    many_handles_append_one_chain(open("contract_many").await, open("contract_many").await).await;
    floats_survive_the_round_trip(open("contract_floats").await.as_ref()).await;
}

async fn round_trip_chain_and_queries(log: Arc<dyn AuditLog>) {
    let rows = [
        ("alice", "s1", "user", "run_started"),
        ("alice", "s1", "model", "tool_call"),
        ("bob", "s2", "user", "run_started"),
        ("", "s3", "user", "run_started"),
        ("bob", "s2", "model", "tool_call"),
        ("alice", "s1", "system", "run_completed"),
    ];
    let mut written = Vec::new();
    for (i, (u, s, actor, action)) in rows.into_iter().enumerate() {
        let record = AuditRecord::new(&user(u), s, actor, action)
            .with("i", i)
            .with(
                "nested",
                json!({"z": [1, 2.5, "ü ✓"], "a": null, "big": 1e20}),
            )
            .with("text", "line\nbreak \"quoted\" \u{1F600}");
        written.push(log.append(record).await.unwrap());
    }
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(written[0].prev_hash, GENESIS_HASH);
    for pair in written.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].signature, "the chain links");
    }

    // What was appended is what comes back, byte for byte.
    let all = log.query(&AuditQuery::all()).await.unwrap();
    assert_eq!(all, written);

    let seqs = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let q = |query: AuditQuery| {
        let log = log.clone();
        async move { seqs(log.query(&query).await.unwrap()) }
    };
    assert_eq!(q(AuditQuery::all().session("s1")).await, [1, 2, 6]);
    assert_eq!(q(AuditQuery::all().action("tool_call")).await, [2, 5]);
    assert_eq!(q(AuditQuery::all().user(&user("alice"))).await, [1, 2, 6]);
    assert_eq!(q(AuditQuery::all().user(&user("bob"))).await, [3, 5]);
    assert_eq!(
        q(AuditQuery::all().user(&UserId::anonymous())).await,
        [4],
        "the anonymous bucket is a tenant of its own"
    );
    assert_eq!(
        q(AuditQuery::all().user(&user("bob")).action("run_started")).await,
        [3]
    );
    // A user never sees another's entries, even with a shared session id.
    assert_eq!(
        q(AuditQuery::all().user(&user("bob")).session("s1")).await,
        Vec::<u64>::new()
    );

    let check = log.verify(Some(&written[5].signature)).await.unwrap();
    assert!(check.ok, "{:?}", check.problems);
    assert_eq!(check.entries, 6);
    assert_eq!(check.head.as_deref(), Some(written[5].signature.as_str()));
}

async fn named_logs_are_separate(a: Arc<dyn AuditLog>, b: Arc<dyn AuditLog>) {
    let alice = user("alice");
    a.append(AuditRecord::new(&alice, "s", "user", "one"))
        .await
        .unwrap();
    a.append(AuditRecord::new(&alice, "s", "user", "two"))
        .await
        .unwrap();
    let first_b = b
        .append(AuditRecord::new(&alice, "s", "user", "other"))
        .await
        .unwrap();
    assert_eq!(first_b.seq, 1, "each log has its own seq");
    assert_eq!(first_b.prev_hash, GENESIS_HASH, "and its own chain");
    assert_eq!(a.query(&AuditQuery::all()).await.unwrap().len(), 2);
    assert_eq!(b.query(&AuditQuery::all()).await.unwrap().len(), 1);
    assert!(a.verify(None).await.unwrap().ok);
    assert!(b.verify(None).await.unwrap().ok);
}

async fn many_handles_append_one_chain(one: Arc<dyn AuditLog>, two: Arc<dyn AuditLog>) {
    let mut tasks = Vec::new();
    for t in 0..40 {
        let log = if t % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let who = user(&format!("u{}", t % 3));
                log.append(AuditRecord::new(&who, "s", "model", "tool_call").with("i", i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = one.query(&AuditQuery::all()).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>(),
        "no seq repeated or skipped across handles"
    );
    let check = two.verify(None).await.unwrap();
    assert!(check.ok, "one chain, not forked: {:?}", check.problems);
}

/// A log `name` holding five entries (`payload.n` = 1..=5), and its head.
async fn five(log: &Arc<dyn AuditLog>) -> String {
    let mut head = String::new();
    for n in 1..=5 {
        let e = log
            .append(AuditRecord::new(&user("alice"), "s", "model", "tool_call").with("n", n))
            .await
            .unwrap();
        head = e.signature;
    }
    head
}

/// Tampers with logs in SQL, behind their back, and checks that `verify`
/// reports each change with the first bad entry.
pub async fn tamper_cases<F, Fut>(open: F, sql: &dyn Sql)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Arc<dyn AuditLog>>,
{
    let where_ = |log: &str, rest: &str| format!("WHERE log = '{log}' {rest}");

    // An edited payload, an edited actor.
    let log = open("tamper_edit").await;
    five(&log).await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET payload = '{{\"n\":99}}' {}",
        where_("tamper_edit", "AND seq = 3")
    ))
    .await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET actor = 'admin' {}",
        where_("tamper_edit", "AND seq = 5")
    ))
    .await;
    let v = log.verify(None).await.unwrap();
    assert_eq!(
        problems(&v),
        [
            "seq 3: signature does not match the entry's content",
            "seq 5: signature does not match the entry's content"
        ]
    );
    // The edited value is what a query shows; verify is what catches it.
    let third = log.query(&AuditQuery::all()).await.unwrap();
    assert_eq!(third[2].payload["n"], 99);

    // A deleted entry.
    let log = open("tamper_delete").await;
    five(&log).await;
    sql.execute(&format!(
        "DELETE FROM loomflow_audit {}",
        where_("tamper_delete", "AND seq = 3")
    ))
    .await;
    assert_eq!(
        problems(&log.verify(None).await.unwrap()),
        [
            "seq 4: seq 4 where 3 was expected",
            "seq 4: prev_hash does not match the entry before it"
        ]
    );

    // An inserted entry: a validly signed copy of entry 2 placed at 3, the
    // later ones moved up to make room.
    let log = open("tamper_insert").await;
    five(&log).await;
    let w = where_("tamper_insert", "");
    sql.execute(&format!(
        "UPDATE loomflow_audit SET seq = seq + 1000 {w} AND seq >= 3"
    ))
    .await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET seq = seq - 999 {w} AND seq >= 1000"
    ))
    .await;
    sql.execute(&format!(
        "INSERT INTO loomflow_audit (log, seq, created_at, session_id, user_id, actor, action, \
         payload, signature, prev_hash) SELECT log, 3, created_at, session_id, user_id, actor, \
         action, payload, signature, prev_hash FROM loomflow_audit {w} AND seq = 2"
    ))
    .await;
    let v = log.verify(None).await.unwrap();
    assert_eq!(
        problems(&v).first().map(String::as_str),
        Some("seq 3: signature does not match the entry's content"),
        "{v:?}"
    );
    assert_eq!(v.entries, 6);

    // A forged entry appended at the end without the key.
    let log = open("tamper_forge").await;
    let head = five(&log).await;
    sql.execute(&format!(
        "INSERT INTO loomflow_audit (log, seq, created_at, session_id, user_id, actor, action, \
         payload, signature, prev_hash) SELECT log, 6, created_at, session_id, user_id, actor, \
         'approval_granted', payload, '{}', '{head}' FROM loomflow_audit {} AND seq = 5",
        "ab".repeat(32),
        where_("tamper_forge", "")
    ))
    .await;
    assert_eq!(
        problems(&log.verify(None).await.unwrap()),
        ["seq 6: signature does not match the entry's content"]
    );

    // Two entries swapped.
    let log = open("tamper_reorder").await;
    five(&log).await;
    let w = where_("tamper_reorder", "");
    sql.execute(&format!(
        "UPDATE loomflow_audit SET seq = -1 {w} AND seq = 2"
    ))
    .await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET seq = 2 {w} AND seq = 3"
    ))
    .await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET seq = 3 {w} AND seq = -1"
    ))
    .await;
    let v = log.verify(None).await.unwrap();
    assert_eq!(
        problems(&v).first().map(String::as_str),
        Some("seq 2: signature does not match the entry's content"),
        "{v:?}"
    );

    // The tail cut off: a valid chain, exposed by the recorded head.
    let log = open("tamper_truncate").await;
    let head = five(&log).await;
    sql.execute(&format!(
        "DELETE FROM loomflow_audit {}",
        where_("tamper_truncate", "AND seq > 3")
    ))
    .await;
    assert!(log.verify(None).await.unwrap().ok);
    assert_eq!(
        problems(&log.verify(Some(&head)).await.unwrap()),
        ["the expected head is not in the log (entries were removed from its end)"]
    );

    // The front cut off.
    let log = open("tamper_front").await;
    five(&log).await;
    sql.execute(&format!(
        "DELETE FROM loomflow_audit {}",
        where_("tamper_front", "AND seq = 1")
    ))
    .await;
    assert_eq!(
        problems(&log.verify(None).await.unwrap()),
        ["seq 2: entries before this one are missing"]
    );

    // A row edited into something that is not an entry: verify names it,
    // a query skips it and returns the rest.
    let log = open("tamper_garble").await;
    five(&log).await;
    sql.execute(&format!(
        "UPDATE loomflow_audit SET payload = 'not json' {}",
        where_("tamper_garble", "AND seq = 2")
    ))
    .await;
    let v = log.verify(None).await.unwrap();
    let first = problems(&v).remove(0);
    assert!(
        first.starts_with("seq 2: stored row is not a valid entry: payload is not JSON"),
        "{first}"
    );
    assert!(!v.ok);
    assert_eq!(log.query(&AuditQuery::all()).await.unwrap().len(), 4);
}

/// Timings and costs are floats with up to 17 significant digits; each must
/// read back as the same number, or its entry's signature breaks. (A JSON
/// parser that is off by one unit in the last place for some of them made
/// `elapsed_ms` fail verification now and then.)
async fn floats_survive_the_round_trip(log: &dyn AuditLog) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let floats: Vec<f64> = (0..400)
        .map(|i| {
            // xorshift: spread over many magnitudes and all 17 digits.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            unit * 10f64.powi(i % 12 - 3)
        })
        .collect();
    let record = AuditRecord::new(&user("floats"), "s-floats", "system", "run_completed")
        .with("elapsed_ms", floats.clone());
    let written = log.append(record).await.unwrap();
    let back = log
        .query(&AuditQuery::all().session("s-floats"))
        .await
        .unwrap();
    let read = back
        .first()
        .and_then(|e| e.payload["elapsed_ms"].as_array().cloned())
        .unwrap_or_default();
    let off: Vec<(f64, Option<f64>)> = floats
        .iter()
        .zip(read.iter().map(serde_json::Value::as_f64))
        .filter(|(a, b)| Some(**a) != *b)
        .map(|(a, b)| (*a, b))
        .collect();
    assert!(off.is_empty(), "floats read back changed: {off:?}");
    assert_eq!(back, [written]);
    let check = log.verify(None).await.unwrap();
    assert!(check.ok, "{:?}", check.problems);
}
