//! `loomflow signal` and `loomflow journal show|prune`.

use std::time::Duration;

use loomflow::journal::{DEFAULT_SQLITE_PATH, Prune, RuntimeSpec, Scope};
use loomflow::{SessionId, UserId};

/// Where to find the journal (shared by the journal commands).
#[derive(Debug, clap::Args)]
pub(crate) struct Where {
    /// The journal: memory, sqlite, sqlite:PATH or postgres://… (default
    /// sqlite:.loomflow/journal.db).
    #[arg(long, value_name = "SPEC")]
    runtime: Option<String>,
    /// The user the session belongs to (default: the anonymous bucket).
    #[arg(long, short)]
    user: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SignalArgs {
    /// The parked run's session.
    session: String,
    /// The signal's name (what the run waits for).
    name: String,
    /// The payload: JSON, or plain text sent as a JSON string (default null).
    payload: Option<String>,
    #[command(flatten)]
    place: Where,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum JournalCommand {
    /// Print a session's runs and steps.
    Show {
        /// The session.
        session: String,
        #[command(flatten)]
        place: Where,
        /// One JSON object with the runs and steps.
        #[arg(long)]
        json: bool,
    },
    /// Delete journal entries by age, by session, or both.
    Prune {
        /// Delete runs finished (or started, if they never finished),
        /// checkpoints and signals older than this: 90s, 30m, 12h, 7d, 2w.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Only this session (of --user).
        #[arg(long)]
        session: Option<String>,
        #[command(flatten)]
        place: Where,
    },
}

/// The journal to use: the flag, else the config's, else the default file.
pub(crate) fn spec(
    flag: Option<&str>,
    configured: Option<RuntimeSpec>,
) -> Result<RuntimeSpec, String> {
    match flag {
        Some(s) => s.parse().map_err(|e: loomflow::ConfigError| e.to_string()),
        None => Ok(configured.unwrap_or_else(|| RuntimeSpec::Sqlite(DEFAULT_SQLITE_PATH.into()))),
    }
}

/// Parses `90s`, `30m`, `12h`, `7d` or `2w`.
pub(crate) fn age(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("`{text}` is not an age; write a number and a unit: 90s, 30m, 12h, 7d or 2w");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// The `--user` flag's tenant: the anonymous bucket when it is absent.
pub(crate) fn user(flag: Option<&str>) -> Result<UserId, String> {
    flag.map_or(Ok(UserId::anonymous()), |u| {
        UserId::new(u).map_err(|e| e.to_string())
    })
}

fn scope(place: &Where, session: &str) -> Result<Scope, String> {
    let user = user(place.user.as_deref())?;
    let session = SessionId::new(session).map_err(|e| e.to_string())?;
    Ok(Scope::new(user, session))
}

async fn open(place: &Where) -> Result<std::sync::Arc<dyn loomflow::Journal>, String> {
    let spec = spec(place.runtime.as_deref(), None)?;
    loomflow::open_journal(&spec)
        .await
        .map_err(|e| e.to_string())
}

pub(crate) async fn signal(args: SignalArgs) -> Result<(), String> {
    let scope = scope(&args.place, &args.session)?;
    let payload = match &args.payload {
        None => serde_json::Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| text.clone().into()),
    };
    let journal = open(&args.place).await?;
    journal
        .send_signal(&scope, &args.name, &payload.to_string())
        .await
        .map_err(|e| e.to_string())?;
    journal.flush().await.map_err(|e| e.to_string())?;
    println!("signal `{}` sent to session {}", args.name, args.session);
    Ok(())
}

pub(crate) async fn journal(command: JournalCommand) -> Result<(), String> {
    match command {
        JournalCommand::Show {
            session,
            place,
            json,
        } => {
            let scope = scope(&place, &session)?;
            let journal = open(&place).await?;
            let runs = journal.runs(&scope).await.map_err(|e| e.to_string())?;
            let steps = journal
                .steps(&scope, None)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let out = serde_json::json!({ "runs": runs, "steps": steps });
                println!("{out}");
                return Ok(());
            }
            if runs.is_empty() {
                println!("no journaled runs for session {session}");
            }
            for run in &runs {
                let state = match run.finished_at {
                    Some(t) => format!("finished {}", t.to_rfc3339()),
                    None => "unfinished".to_owned(),
                };
                println!(
                    "run {} (started {}, {state}) input {}",
                    run.epoch,
                    run.started_at.to_rfc3339(),
                    run.input
                );
                for step in steps.iter().filter(|s| s.epoch == run.epoch) {
                    let value: String = step.value.chars().take(80).collect();
                    let more = if value.len() < step.value.len() {
                        "…"
                    } else {
                        ""
                    };
                    println!("  {}  {value}{more}", step.key);
                }
            }
            Ok(())
        }
        JournalCommand::Prune {
            older_than,
            session,
            place,
        } => {
            let older_than = match &older_than {
                Some(text) => {
                    let age = chrono::Duration::from_std(age(text)?).map_err(|e| e.to_string())?;
                    Some(chrono::Utc::now() - age)
                }
                None => None,
            };
            let scope = session.as_deref().map(|s| scope(&place, s)).transpose()?;
            let journal = open(&place).await?;
            let pruned = journal
                .prune(&Prune { older_than, scope })
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "pruned {} runs, {} steps, {} checkpoints, {} signals",
                pruned.runs, pruned.steps, pruned.checkpoints, pruned.signals
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::age;
    use std::time::Duration;

    #[test]
    fn ages_read_as_a_number_and_a_unit() {
        assert_eq!(age("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert!(
            age("7 days")
                .unwrap_err()
                .contains("90s, 30m, 12h, 7d or 2w")
        );
        assert!(age("d").is_err());
    }
}
