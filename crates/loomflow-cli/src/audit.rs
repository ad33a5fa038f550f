//! `loomflow audit verify|show`: check an audit log's signatures and hash
//! chain, or print its entries. The log is a JSONL file, `sqlite:<path>` or
//! a `postgres://…` URL (with `--log` naming the log in a database).

use loomflow::UserId;
use loomflow::audit::{
    AuditBackend, AuditEntry, AuditQuery, AuditSecret, AuditSpec, FileAuditLog, Verification,
};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every entry's signature, the seq order and the hash chain.
    /// Prints the first bad entry and exits non-zero when the log was
    /// tampered with; prints the head to keep for `--expected-head` when it
    /// is intact.
    Verify {
        /// The log: a JSONL file, `sqlite:<path>` or `postgres://…`.
        #[arg(value_name = "LOG")]
        file: String,
        /// The log's name in a database (default `main`).
        #[arg(long, value_name = "NAME")]
        log: Option<String>,
        /// The environment variable holding the signing key.
        #[arg(long, value_name = "VAR")]
        secret_env: String,
        /// A head recorded by an earlier verify: detects entries cut off the
        /// end since.
        #[arg(long, value_name = "SIGNATURE")]
        expected_head: Option<String>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print entries (JSON lines), filtered.
    Show {
        /// The log: a JSONL file, `sqlite:<path>` or `postgres://…`.
        #[arg(value_name = "LOG")]
        file: String,
        /// The log's name in a database (default `main`).
        #[arg(long, value_name = "NAME")]
        log: Option<String>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Only this action (`tool_call`, `run_completed`, …).
        #[arg(long)]
        action: Option<String>,
        /// Only this user.
        #[arg(long, short)]
        user: Option<String>,
    },
}

/// Where the log is, checked: a file must exist (verifying a missing file
/// would report an empty, valid log); `--log` only for databases.
fn locate(location: &str, log: Option<String>) -> Result<AuditSpec, String> {
    let backend: AuditBackend = location.parse().map_err(|e| format!("{e}"))?;
    match &backend {
        AuditBackend::File(path) | AuditBackend::Sqlite(path) if !path.exists() => {
            return Err(format!("{}: no such file", path.display()));
        }
        AuditBackend::File(_) if log.is_some() => {
            return Err("--log names a log in a database; a JSONL file holds one log".into());
        }
        _ => {}
    }
    let mut spec = AuditSpec::new(backend);
    spec.log = log;
    Ok(spec)
}

/// The entries `query` matches.
async fn entries(spec: &AuditSpec, query: &AuditQuery) -> Result<Vec<AuditEntry>, String> {
    if let AuditBackend::File(path) = &spec.backend {
        let lines = FileAuditLog::read_lines(path).map_err(|e| e.to_string())?;
        return Ok(lines
            .into_iter()
            .filter_map(|(_, e)| e)
            .filter(|e| query.matches(e))
            .collect());
    }
    // Reading signs nothing: the key is never used.
    let mut spec = spec.clone();
    spec.secret_env = None;
    let log = open(&spec, AuditSecret::new("unused: reading signs nothing")).await?;
    log.query(query).await.map_err(|e| e.to_string())
}

async fn open(
    spec: &AuditSpec,
    secret: AuditSecret,
) -> Result<std::sync::Arc<dyn loomflow::audit::AuditLog>, String> {
    match &spec.backend {
        AuditBackend::Sqlite(path) => {
            loomflow::sqlite::SqliteAuditLog::open_log(path, spec.log_name(), secret)
                .map(|l| std::sync::Arc::new(l) as _)
                .map_err(|e| e.to_string())
        }
        AuditBackend::Postgres(url) => {
            loomflow::postgres::PostgresAuditLog::connect_log(url, spec.log_name(), secret)
                .await
                .map(|l| std::sync::Arc::new(l) as _)
                .map_err(|e| e.to_string())
        }
        other => Err(format!("{other} is a file, not a database")),
    }
}

async fn verification(
    spec: &AuditSpec,
    secret: AuditSecret,
    expected_head: Option<&str>,
) -> Result<Verification, String> {
    match &spec.backend {
        AuditBackend::File(path) => {
            FileAuditLog::verify_file(path, &secret, expected_head).map_err(|e| e.to_string())
        }
        _ => open(spec, secret)
            .await?
            .verify(expected_head)
            .await
            .map_err(|e| e.to_string()),
    }
}

pub(crate) async fn audit(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify {
            file,
            log,
            secret_env,
            expected_head,
            json,
        } => {
            let secret = AuditSecret::from_env(&secret_env).map_err(|e| e.to_string())?;
            if secret.is_empty() {
                return Err(format!(
                    "{secret_env} is empty: verifying with an empty key proves nothing"
                ));
            }
            let spec = locate(&file, log)?;
            let report = verification(&spec, secret, expected_head.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            }
            match report.problems.first() {
                None => {
                    if !json {
                        println!(
                            "ok: {} entries, head {}",
                            report.entries,
                            report.head.as_deref().unwrap_or("(empty log)")
                        );
                    }
                    Ok(())
                }
                Some(first) => Err(format!(
                    "{}: tampered: {first} ({} problem{} in {} entries)",
                    spec.backend,
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" },
                    report.entries
                )),
            }
        }
        AuditCommand::Show {
            file,
            log,
            session,
            action,
            user,
        } => {
            let user = user
                .map(UserId::new)
                .transpose()
                .map_err(|e| e.to_string())?;
            let query = AuditQuery {
                session_id: session,
                action,
                user_id: user,
            };
            let spec = locate(&file, log)?;
            for entry in entries(&spec, &query).await? {
                println!(
                    "{}",
                    serde_json::to_string(&entry).map_err(|e| e.to_string())?
                );
            }
            Ok(())
        }
    }
}
