//! The JSONL audit log: compatibility with the reference's files, several
//! writers on one file, torn lines, tamper detection.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::Path;

use loomflow_core::UserId;
use loomflow_core::audit::{AuditLog, AuditQuery, AuditRecord, AuditSecret, FileAuditLog};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/python_audit.jsonl"
);

fn problems(path: &Path, secret: &str, head: Option<&str>) -> Vec<String> {
    FileAuditLog::verify_file(path, &AuditSecret::new(secret), head)
        .unwrap()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_log_written_by_the_python_reference_verifies() {
    // Written by LoomFlow 0.20's FileAuditLog: non-ASCII text, floats in
    // both notations, nested arguments, an anonymous user.
    let v = FileAuditLog::verify_file(
        Path::new(FIXTURE),
        &AuditSecret::new("fixture-secret"),
        None,
    )
    .unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.entries, 3);
    assert_eq!(
        v.head.as_deref(),
        Some("e59158aebd8066a8bebd843891db60e3458a996d165a484aed8e8acb896e8b5b")
    );
    assert_eq!(
        problems(Path::new(FIXTURE), "wrong", None)[0],
        "line 1 (seq 1): signature does not match the entry's content"
    );

    // One character of one payload changed.
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("edited.jsonl");
    let text = std::fs::read_to_string(FIXTURE)
        .unwrap()
        .replace("\"tokens_in\": 12", "\"tokens_in\": 13");
    std::fs::write(&edited, text).unwrap();
    assert_eq!(
        problems(&edited, "fixture-secret", None),
        ["line 3 (seq 3): signature does not match the entry's content"]
    );
}

#[tokio::test]
async fn appends_continue_the_chain_across_handles_and_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/audit.jsonl");
    let secret = AuditSecret::new("k");
    let alice = UserId::new("alice").unwrap();

    let first = FileAuditLog::open(&path, secret.clone()).unwrap();
    first
        .append(AuditRecord::new(&alice, "s1", "user", "run_started"))
        .await
        .unwrap();
    // A writer that died mid-line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"seq\": 2, \"timest")
        .unwrap();
    // Another handle (another process, as far as the file is concerned)
    // continues after the last whole entry, on a fresh line.
    let second = FileAuditLog::open(&path, secret.clone()).unwrap();
    let e = second
        .append(AuditRecord::new(&alice, "s1", "system", "run_completed"))
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    // The first handle notices the file grew and follows.
    let e = first
        .append(AuditRecord::new(
            &UserId::anonymous(),
            "s2",
            "user",
            "run_started",
        ))
        .await
        .unwrap();
    assert_eq!(e.seq, 3);

    assert_eq!(
        problems(&path, "k", None),
        ["line 2: not a valid entry"],
        "the torn line is reported, the chain around it holds"
    );
    let mine = first
        .query(&AuditQuery::all().user(&alice).action("run_completed"))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].seq, 2);
    let anon = first
        .query(&AuditQuery::all().user(&UserId::anonymous()))
        .await
        .unwrap();
    assert_eq!(anon.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
}

#[test]
fn concurrent_writers_on_separate_handles_never_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let secret = AuditSecret::new("k");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..4 {
            // Four open file descriptions: flock serialises them like it
            // serialises four processes.
            let log = FileAuditLog::open(&path, secret.clone()).unwrap();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let user = UserId::new(format!("u{w}")).unwrap();
                    log.append(AuditRecord::new(&user, "s", "system", "step").with("i", i))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let v = FileAuditLog::verify_file(&path, &secret, None).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.entries, 200);
}

#[test]
fn tampering_with_a_file_is_reported_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let head = rt.block_on(async {
        let log = FileAuditLog::open(&path, AuditSecret::new("k")).unwrap();
        let mut last = None;
        for i in 1..=4 {
            let user = UserId::new("u").unwrap();
            let e = log
                .append(AuditRecord::new(&user, "s", "system", "step").with("i", i))
                .await
                .unwrap();
            last = Some(e.signature);
        }
        last.unwrap()
    });
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let write = |ls: &[&String]| {
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, ls.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        problems(&p, "k", Some(&head))
    };
    let l: Vec<&String> = lines.iter().collect();
    assert_eq!(
        write(&[l[0], l[2], l[3]]),
        [
            "line 2 (seq 3): seq 3 where 2 was expected",
            "line 2 (seq 3): prev_hash does not match the entry before it"
        ]
    );
    assert_eq!(
        write(&[l[0], l[2], l[1], l[3]]),
        [
            "line 2 (seq 3): seq 3 where 2 was expected",
            "line 2 (seq 3): prev_hash does not match the entry before it",
            "line 3 (seq 2): seq 2 where 4 was expected",
            "line 3 (seq 2): prev_hash does not match the entry before it",
            "line 4 (seq 4): seq 4 where 3 was expected",
            "line 4 (seq 4): prev_hash does not match the entry before it",
        ]
    );
    assert_eq!(
        write(&[l[0], l[1], l[2]]),
        ["the expected head is not in the log (entries were removed from its end)"]
    );
}
