//! Several handles (as several processes starting at once) opening one new
//! file at the same moment all succeed, for the journal, the memory and the
//! audit log: switching the file to WAL and creating the tables wait for
//! each other instead of failing with "database is locked".

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use loomflow::audit::AuditSecret;
use loomflow_sqlite::{SqliteAuditLog, SqliteJournal, SqliteMemory};

fn race(open: fn(&Path) -> Result<(), String>) {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join(format!("store{round}.db"));
        let start = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (path, start) = (path.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    open(&path)
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}

#[test]
fn journals_opened_at_once_all_open() {
    race(|p| SqliteJournal::open(p).map(drop).map_err(|e| e.to_string()));
}

#[test]
fn memories_opened_at_once_all_open() {
    race(|p| SqliteMemory::open(p).map(drop).map_err(|e| e.to_string()));
}

#[test]
fn audit_logs_opened_at_once_all_open() {
    race(|p| {
        SqliteAuditLog::open(p, AuditSecret::new("race-key"))
            .map(drop)
            .map_err(|e| e.to_string())
    });
}
