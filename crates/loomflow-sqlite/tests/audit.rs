//! The SQLite audit log: the shared contract, and the tampering cases done
//! in SQL on the file behind the log's back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use loomflow::audit::{AuditLog, AuditSecret};
use loomflow_sqlite::SqliteAuditLog;
use loomflow_testkit::audit_contract;

struct File(PathBuf);

#[async_trait]
impl audit_contract::Sql for File {
    async fn execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(sql, []).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_and_the_tamper_cases_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let open = |name: &'static str| {
        let path = path.clone();
        async move {
            Arc::new(
                SqliteAuditLog::open_log(path, name, AuditSecret::new("contract-key")).unwrap(),
            ) as Arc<dyn AuditLog>
        }
    };
    audit_contract::run_all(open).await;
    audit_contract::tamper_cases(open, &File(path.clone())).await;
}

#[tokio::test]
async fn an_unwritable_place_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteAuditLog::open(
        dir.path().join("missing/dir/audit.db"),
        AuditSecret::new("k"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("audit log "), "{err}");
    assert!(err.contains("missing/dir/audit.db"), "{err}");
}
