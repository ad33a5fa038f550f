//! The Postgres audit log on a real server: the shared contract, and the
//! tampering cases done in SQL behind the log's back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use loomflow::audit::{AuditLog, AuditSecret};
use loomflow_postgres::PostgresAuditLog;
use loomflow_testkit::audit_contract;
use loomflow_testkit::postgres::TempPostgres;

struct Server(String);

#[async_trait]
impl audit_contract::Sql for Server {
    async fn execute(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.0, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_and_the_tamper_cases_hold() {
    let pg = TempPostgres::start();
    let url = pg.url();
    let open = |name: &'static str| {
        let url = url.clone();
        async move {
            Arc::new(
                PostgresAuditLog::connect_log(&url, name, AuditSecret::new("contract-key"))
                    .await
                    .unwrap(),
            ) as Arc<dyn AuditLog>
        }
    };
    audit_contract::run_all(open).await;
    audit_contract::tamper_cases(open, &Server(url.clone())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_url_names_the_server_without_the_password() {
    let err = PostgresAuditLog::connect(
        "postgres://app:hunter2@127.0.0.1:1/x",
        AuditSecret::new("k"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("postgres://app:***@127.0.0.1:1/x"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
