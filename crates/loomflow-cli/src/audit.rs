//! `loomflow audit verify|show`: check an audit log's signatures and hash
//! chain, or print its entries.

use std::path::PathBuf;

use loomflow::UserId;
use loomflow::audit::{AuditQuery, AuditSecret, FileAuditLog};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every entry's signature, the seq order and the hash chain.
    /// Prints the first bad entry and exits non-zero when the log was
    /// tampered with; prints the head to keep for `--expected-head` when it
    /// is intact.
    Verify {
        /// The JSONL audit log.
        file: PathBuf,
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
        /// The JSONL audit log.
        file: PathBuf,
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

pub(crate) async fn audit(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify {
            file,
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
            if !file.exists() {
                return Err(format!("{}: no such file", file.display()));
            }
            let report = FileAuditLog::verify_file(&file, &secret, expected_head.as_deref())
                .map_err(|e| e.to_string())?;
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
                    file.display(),
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" },
                    report.entries
                )),
            }
        }
        AuditCommand::Show {
            file,
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
            if !file.exists() {
                return Err(format!("{}: no such file", file.display()));
            }
            let lines = FileAuditLog::read_lines(&file).map_err(|e| e.to_string())?;
            for entry in lines
                .into_iter()
                .filter_map(|(_, e)| e)
                .filter(|e| query.matches(e))
            {
                println!(
                    "{}",
                    serde_json::to_string(&entry).map_err(|e| e.to_string())?
                );
            }
            Ok(())
        }
    }
}
