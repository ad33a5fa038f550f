//! `loomflow memory profile|export|forget`: serve a data-protection request
//! without writing code.

use std::io::Write;

use chrono::{DateTime, Utc};
use loomflow::SessionId;
use loomflow::memory::{Forget, MemorySpec};

use crate::journal::{age, user};

/// Which user's memory, and where it lives (shared by the memory commands).
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The memory: inmemory, sqlite:PATH, postgres://…, redis://…, chroma:URL.
    #[arg(long, value_name = "SPEC")]
    memory: String,
    /// Whose memory (default: the anonymous bucket).
    #[arg(long, short)]
    user: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MemoryCommand {
    /// Summarise what memory holds about a user (JSON).
    Profile {
        #[command(flatten)]
        target: Target,
    },
    /// Print everything memory holds about a user (JSON): episodes, facts
    /// and working blocks.
    Export {
        #[command(flatten)]
        target: Target,
    },
    /// Erase a user's memory, narrowed by session and/or age, and print
    /// what was erased (JSON). Without a filter the user's whole memory
    /// goes.
    Forget {
        #[command(flatten)]
        target: Target,
        /// Only this session's episodes (and facts drawn only from them).
        #[arg(long)]
        session: Option<String>,
        /// Only what is older than this: an RFC 3339 time
        /// (2026-01-31T00:00:00Z) or an age (90s, 30m, 12h, 7d, 2w).
        #[arg(long, value_name = "TIME|AGE")]
        before: Option<String>,
    },
}

fn before(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = age(text).map_err(|_| {
        format!("`{text}` is neither an RFC 3339 time (2026-01-31T00:00:00Z) nor an age (7d)")
    })?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| format!("`{text}` reaches too far back"))
}

fn print(value: &impl serde::Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let _ = writeln!(std::io::stdout().lock(), "{json}");
    Ok(())
}

pub(crate) async fn memory(command: MemoryCommand) -> Result<(), String> {
    let target = match &command {
        MemoryCommand::Profile { target }
        | MemoryCommand::Export { target }
        | MemoryCommand::Forget { target, .. } => target,
    };
    let spec: MemorySpec = target
        .memory
        .parse()
        .map_err(|e: loomflow::ConfigError| e.to_string())?;
    let who = user(target.user.as_deref())?;
    let memory = loomflow::open_memory(&spec)
        .await
        .map_err(|e| e.to_string())?;
    match command {
        MemoryCommand::Profile { .. } => {
            print(&memory.profile(&who).await.map_err(|e| e.to_string())?)
        }
        MemoryCommand::Export { .. } => {
            print(&memory.export(&who).await.map_err(|e| e.to_string())?)
        }
        MemoryCommand::Forget {
            session, before: b, ..
        } => {
            let mut forget = Forget::user(who);
            if let Some(s) = session {
                forget = forget.session(SessionId::new(s).map_err(|e| e.to_string())?);
            }
            if let Some(b) = b {
                forget = forget.before(before(&b)?);
            }
            let gone = memory.forget(&forget).await.map_err(|e| e.to_string())?;
            print(&serde_json::json!({
                "user": forget.user,
                "session": forget.session,
                "before": forget.before,
                "erased": gone,
                "total": gone.total(),
            }))
        }
    }
}
