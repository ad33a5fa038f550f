//! The audit log: append-only entries, each signed with HMAC-SHA256 and
//! carrying the previous entry's signature, so the log is a hash chain.
//!
//! [`verify_chain`] (and [`AuditLog::verify`]) detects an edited, deleted,
//! inserted or reordered entry. Entries cut off the *end* leave a valid
//! chain: record the [`Verification::head`] somewhere the log's writer
//! cannot change and pass it back as `expected_head` to detect that too.
//!
//! The signed body is the reference's canonical JSON, byte for byte, so
//! files written by the Python LoomFlow verify here and the other way round.
//!
//! Backends: [`InMemoryAuditLog`], [`FileAuditLog`] (JSONL, safe with several
//! processes appending), SQLite (`loomflow-sqlite`) and Postgres
//! (`loomflow-postgres`). The agent writes `run_started`, `run_completed`,
//! `tool_call`, `tool_result`, `tool_call_edited` and `guardrail_blocked`;
//! workflows write `step_started`, `step_completed` and `step_failed`.
//!
//! ## Keys
//!
//! The tamper evidence is only as strong as the secret: with an empty one
//! anybody who can edit the log can recompute the signatures (a warning says
//! so, once per process). Keep the secret outside the log's host, and pass
//! it by environment variable ([`AuditSecret::from_env`]); never in a config
//! file.
//!
//! **Rotating the key**: a log is verified with one key. To rotate, verify
//! the current log with the old key and record its head, then start a new
//! log (a new file, or a new table) under the new key; keep the old log, its
//! head and the old key (in your secret store) for as long as the records
//! must be kept. Verify each log with the key it was written under.
//!
//! ```
//! use loomflow_core::audit::{AuditLog, AuditRecord, AuditSecret, InMemoryAuditLog};
//! use loomflow_core::UserId;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let log = InMemoryAuditLog::new(AuditSecret::new("k3y"));
//! let alice = UserId::new("alice").unwrap();
//! log.append(AuditRecord::new(&alice, "sess_1", "user", "run_started")).await.unwrap();
//! let check = log.verify(None).await.unwrap();
//! assert!(check.ok);
//! assert_eq!(check.entries, 1);
//! # });
//! ```

mod canonical;
mod file;
mod spec;

use crate::redact::Redacted;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use file::FileAuditLog;
pub use spec::{AuditBackend, AuditSpec, DEFAULT_LOG_NAME};

use crate::id::UserId;

/// The `prev_hash` of a log's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One signed entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, never repeated.
    pub seq: u64,
    /// When it was appended (UTC, microseconds).
    pub timestamp: DateTime<Utc>,
    /// The session it belongs to.
    pub session_id: String,
    /// The tenant (`null` for the anonymous bucket).
    #[serde(default)]
    pub user_id: UserId,
    /// Who acted: `user`, `model`, `system`, …
    pub actor: String,
    /// What happened: `run_started`, `tool_call`, …
    pub action: String,
    /// The details.
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// HMAC-SHA256 (hex) over the canonical body, `prev_hash` included.
    pub signature: String,
    /// The previous entry's signature ([`GENESIS_HASH`] for the first).
    #[serde(default)]
    pub prev_hash: String,
}

/// What to append: the log adds the seq, the timestamp and the signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The tenant.
    pub user_id: UserId,
    /// The session.
    pub session_id: String,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// The details.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

impl AuditRecord {
    /// A record with an empty payload.
    pub fn new(
        user: &UserId,
        session: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user.clone(),
            session_id: session.into(),
            actor: actor.into(),
            action: action.into(),
            payload: serde_json::Map::new(),
        }
    }

    /// Adds a payload field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.payload.insert(key.to_owned(), value.into());
        self
    }
}

/// An entry as a database stores it: plain columns, the timestamp as
/// RFC 3339 text (microseconds, UTC), the payload as JSON text, the user as
/// its id (`None` for the anonymous bucket). Backends convert with
/// [`AuditRow::from_entry`] and [`AuditRow::into_entry`], so every database
/// stores and reads entries the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The entry's seq.
    pub seq: i64,
    /// RFC 3339, microseconds, `Z`.
    pub timestamp: String,
    /// The session.
    pub session_id: String,
    /// The tenant's id, `None` for the anonymous bucket.
    pub user_id: Option<String>,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// The payload, as JSON.
    pub payload: String,
    /// The entry's signature.
    pub signature: String,
    /// The previous entry's signature.
    pub prev_hash: String,
}

impl AuditRow {
    /// The columns a database stores a row in, in this struct's order
    /// (besides the log's name, which the backend adds).
    pub const COLUMNS: &'static str =
        "seq, created_at, session_id, user_id, actor, action, payload, signature, prev_hash";

    /// The indexes every database backend creates on `loomflow_audit`, for
    /// queries by session, user and action within a log.
    pub const INDEXES: &'static str = "
CREATE INDEX IF NOT EXISTS loomflow_audit_session ON loomflow_audit (log, session_id, seq);
CREATE INDEX IF NOT EXISTS loomflow_audit_user ON loomflow_audit (log, user_id, seq);
CREATE INDEX IF NOT EXISTS loomflow_audit_action ON loomflow_audit (log, action, seq);
";

    /// The columns of `entry`.
    pub fn from_entry(entry: &AuditEntry) -> Self {
        Self {
            seq: i64::try_from(entry.seq).unwrap_or(i64::MAX),
            timestamp: entry
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            session_id: entry.session_id.clone(),
            user_id: entry.user_id.as_str().map(str::to_owned),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            payload: serde_json::Value::Object(entry.payload.clone()).to_string(),
            signature: entry.signature.clone(),
            prev_hash: entry.prev_hash.clone(),
        }
    }

    /// The entry these columns hold, or what is wrong with them (a row
    /// edited in the database into something that is not an entry).
    pub fn into_entry(self) -> Result<AuditEntry, AuditProblem> {
        let seq = u64::try_from(self.seq).ok();
        let bad = |what: String| AuditProblem {
            reason: format!("stored row is not a valid entry: {what}"),
            seq,
            line: None,
        };
        let Some(seq_value) = seq else {
            return Err(bad(format!("seq {} is negative", self.seq)));
        };
        let timestamp = DateTime::parse_from_rfc3339(&self.timestamp)
            .map_err(|e| bad(format!("timestamp {:?}: {e}", self.timestamp)))?
            .with_timezone(&Utc);
        let user_id = match self.user_id {
            None => UserId::anonymous(),
            Some(id) => UserId::new(&id).map_err(|e| bad(format!("user id: {e}")))?,
        };
        let payload = match serde_json::from_str(&self.payload) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(bad("payload is not a JSON object".to_owned())),
            Err(e) => return Err(bad(format!("payload is not JSON: {e}"))),
        };
        Ok(AuditEntry {
            seq: seq_value,
            timestamp,
            session_id: self.session_id,
            user_id,
            actor: self.actor,
            action: self.action,
            payload,
            signature: self.signature,
            prev_hash: self.prev_hash,
        })
    }
}

/// A filter for [`AuditLog::query`]; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this tenant.
    pub user_id: Option<UserId>,
}

impl AuditQuery {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only `session`.
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session_id = Some(session.into());
        self
    }

    /// Only `action`.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only `user`.
    pub fn user(mut self, user: &UserId) -> Self {
        self.user_id = Some(user.clone());
        self
    }

    /// True when `entry` passes.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.session_id
            .as_ref()
            .is_none_or(|s| *s == entry.session_id)
            && self.action.as_ref().is_none_or(|a| *a == entry.action)
            && self.user_id.as_ref().is_none_or(|u| *u == entry.user_id)
    }
}

/// What went wrong with an audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the backing store failed.
    #[error("audit log {location}: {message}")]
    Storage {
        /// The file, table or URL.
        location: String,
        /// What failed.
        message: String,
    },
}

impl AuditError {
    /// A storage error at `location`.
    pub fn storage(location: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Storage {
            location: location.into(),
            message: message.to_string(),
        }
    }
}

/// An append-only, signed, hash-chained log.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Signs `record` as the next entry and stores it.
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError>;

    /// The entries `query` matches, in seq order.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError>;

    /// Checks the whole log (see [`verify_chain`]).
    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError>;

    /// True when entries should carry full prompts, outputs and tool
    /// results rather than the summary fields (see [`FullTranscripts`]).
    fn full_transcripts(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for dyn AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("full_transcripts", &self.full_transcripts())
            .finish_non_exhaustive()
    }
}

/// Appends `record` to `log` the way runs do: secrets redacted from every
/// payload value first, and a failed append logged (a warning) rather than
/// returned, since the audit log records a run, it does not gate it.
pub async fn append_redacted(log: &dyn AuditLog, mut record: AuditRecord) {
    for value in record.payload.values_mut() {
        crate::redact::redact_value(value);
    }
    if let Err(e) = log.append(record).await {
        tracing::warn!(error = %Redacted(&e), "audit append failed");
    }
}

/// Any log, keeping full transcripts: prompts uncut, the final output,
/// tool result bodies and durations. The default (summaries only) suits
/// regimes that forbid logging customer data verbatim.
#[derive(Debug, Clone)]
pub struct FullTranscripts<L>(pub L);

#[async_trait]
impl<L: AuditLog> AuditLog for FullTranscripts<L> {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        self.0.append(record).await
    }
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        self.0.query(query).await
    }
    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        self.0.verify(expected_head).await
    }
    fn full_transcripts(&self) -> bool {
        true
    }
}

#[async_trait]
impl<L: AuditLog + ?Sized> AuditLog for Arc<L> {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        (**self).append(record).await
    }
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        (**self).query(query).await
    }
    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        (**self).verify(expected_head).await
    }
    fn full_transcripts(&self) -> bool {
        (**self).full_transcripts()
    }
}

static EMPTY_SECRET_WARNED: AtomicBool = AtomicBool::new(false);

/// The HMAC key, held as the keyed HMAC state (computed once, cloned per
/// entry). Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AuditSecret {
    keyed: Arc<Hmac<Sha256>>,
    empty: bool,
}

impl std::fmt::Debug for AuditSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.empty {
            "AuditSecret(<empty>)"
        } else {
            "AuditSecret([REDACTED])"
        })
    }
}

impl AuditSecret {
    /// `key` as the secret. An empty key warns once per process: its
    /// signatures can be forged by anyone who can edit the log.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        // The key is masked wherever loomflow redacts (long enough keys).
        if let Ok(text) = std::str::from_utf8(key) {
            crate::redact::register_secret(text);
        }
        if key.is_empty() && !EMPTY_SECRET_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "audit log built with an empty signing secret: anyone who can edit the log can \
                 recompute its signatures, so verify() proves nothing. Set a random key (32 bytes \
                 or more) through an environment variable (`secret_env`)."
            );
        }
        // HMAC takes keys of any length, so `new_from_slice` cannot fail;
        // the fallback keeps this total without a panic.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        Self {
            keyed: Arc::new(keyed),
            empty: key.is_empty(),
        }
    }

    /// The secret in environment variable `var`; an error naming it when
    /// it is unset or not UTF-8.
    pub fn from_env(var: &str) -> Result<Self, crate::error::ConfigError> {
        match std::env::var(var) {
            Ok(v) => Ok(Self::new(v)),
            Err(e) => Err(crate::error::ConfigError::invalid(
                "audit secret",
                format!(
                    "environment variable {var} {}: set it to the audit log's signing key",
                    match e {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                    }
                ),
            )),
        }
    }

    /// True for the empty (forgeable) key.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = (*self.keyed).clone();
        mac.update(body);
        mac
    }

    /// The signature `entry` should carry.
    pub fn sign(&self, entry: &AuditEntry) -> String {
        let body = canonical::signed_body(entry);
        hex(&self.mac(body.as_bytes()).finalize().into_bytes())
    }

    /// True when `entry`'s signature matches its content (compared in
    /// constant time).
    pub fn verify_signature(&self, entry: &AuditEntry) -> bool {
        let Some(expected) = unhex(&entry.signature) else {
            return false;
        };
        let body = canonical::signed_body(entry);
        self.mac(body.as_bytes()).verify_slice(&expected).is_ok()
    }

    /// Builds and signs the entry after (`seq`, `prev_hash`).
    pub fn seal(&self, record: AuditRecord, seq: u64, prev_hash: String) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            // Microseconds: what the canonical form (and Python) keeps.
            timestamp: Utc::now().trunc_subsecs(6),
            session_id: record.session_id,
            user_id: record.user_id,
            actor: record.actor,
            action: record.action,
            payload: record.payload,
            signature: String::new(),
            prev_hash,
        };
        entry.signature = self.sign(&entry);
        entry
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// What is wrong.
    pub reason: String,
    /// The entry's seq, when it could be read.
    pub seq: Option<u64>,
    /// The 1-based line of a JSONL file.
    pub line: Option<usize>,
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.seq) {
            (Some(line), Some(seq)) => write!(f, "line {line} (seq {seq}): {}", self.reason),
            (Some(line), None) => write!(f, "line {line}: {}", self.reason),
            (None, Some(seq)) => write!(f, "seq {seq}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

/// The result of checking a whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// No problems.
    pub ok: bool,
    /// Entries read.
    pub entries: usize,
    /// The last entry's signature: store it outside the log and pass it
    /// back as `expected_head` to detect entries cut off the end.
    pub head: Option<String>,
    /// Everything wrong, in log order.
    pub problems: Vec<AuditProblem>,
}

/// Checks entries in stored order: every signature, a seq that starts at 1
/// and goes up by one, each `prev_hash` linking to the entry before, and
/// `expected_head` (a head recorded earlier) still in the log. Entries
/// written before the chain existed (`prev_hash` empty) are checked for
/// signature and seq only.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    secret: &AuditSecret,
    expected_head: Option<&str>,
) -> Verification {
    verify_rows(
        entries.into_iter().map(|e| (None, e)),
        secret,
        expected_head,
        Vec::new(),
    )
}

/// [`verify_chain`] for a backend's stored rows: each entry with the line
/// it was read from (files) or `None`, and the `problems` found while
/// reading (rows that are not valid entries). The report lists problems in
/// log order (by line, else by seq).
pub fn verify_rows<'a>(
    rows: impl IntoIterator<Item = (Option<usize>, &'a AuditEntry)>,
    secret: &AuditSecret,
    expected_head: Option<&str>,
    mut problems: Vec<AuditProblem>,
) -> Verification {
    let mut prev: Option<&AuditEntry> = None;
    let mut entries = 0;
    let mut head_seen = expected_head.is_none();
    for (line, entry) in rows {
        entries += 1;
        let mut found = Vec::new();
        if !secret.verify_signature(entry) {
            found.push("signature does not match the entry's content".to_owned());
        }
        let expected_seq = prev.map_or(1, |p| p.seq + 1);
        if prev.is_none() && !entry.prev_hash.is_empty() && entry.prev_hash != GENESIS_HASH {
            found.push("entries before this one are missing".to_owned());
        } else if entry.seq != expected_seq {
            found.push(format!(
                "seq {} where {expected_seq} was expected",
                entry.seq
            ));
        }
        if let Some(p) = prev {
            if !entry.prev_hash.is_empty() && entry.prev_hash != p.signature {
                found.push("prev_hash does not match the entry before it".to_owned());
            } else if entry.prev_hash.is_empty() && !p.prev_hash.is_empty() {
                found.push("unchained entry after chained ones".to_owned());
            }
        }
        problems.extend(found.into_iter().map(|reason| AuditProblem {
            reason,
            seq: Some(entry.seq),
            line,
        }));
        head_seen |= expected_head == Some(entry.signature.as_str());
        prev = Some(entry);
    }
    if !head_seen {
        problems.push(AuditProblem {
            reason: "the expected head is not in the log (entries were removed from its end)"
                .to_owned(),
            seq: None,
            line: None,
        });
    }
    // Stable: an entry's own problems keep their order.
    problems.sort_by_key(|p| (p.line.is_none() && p.seq.is_none(), p.line, p.seq));
    Verification {
        ok: problems.is_empty(),
        entries,
        head: prev.map(|p| p.signature.clone()),
        problems,
    }
}

/// [`verify_chain`] over a database's rows in seq order: each one an entry,
/// or what made it unreadable (see [`AuditRow::into_entry`]).
pub fn verify_stored(
    rows: impl IntoIterator<Item = Result<AuditEntry, AuditProblem>>,
    secret: &AuditSecret,
    expected_head: Option<&str>,
) -> Verification {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for row in rows {
        match row {
            Ok(entry) => entries.push(entry),
            Err(problem) => problems.push(problem),
        }
    }
    verify_rows(
        entries.iter().map(|e| (None, e)),
        secret,
        expected_head,
        problems,
    )
}

/// The readable entries among a database's `rows`, with one warning naming
/// `location` when some were not (`verify` reports them).
pub fn readable_entries(
    rows: Vec<Result<AuditEntry, AuditProblem>>,
    location: &str,
) -> Vec<AuditEntry> {
    let skipped = rows.iter().filter(|r| r.is_err()).count();
    if skipped > 0 {
        tracing::warn!(
            location,
            skipped,
            "audit log: skipped rows that are not valid entries; run verify for details"
        );
    }
    rows.into_iter().filter_map(Result::ok).collect()
}

/// A log in memory, for tests and development.
#[derive(Debug)]
pub struct InMemoryAuditLog {
    secret: AuditSecret,
    entries: tokio::sync::Mutex<Vec<AuditEntry>>,
}

impl InMemoryAuditLog {
    /// An empty log signed with `secret`.
    pub fn new(secret: AuditSecret) -> Self {
        Self {
            secret,
            entries: tokio::sync::Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        let mut entries = self.entries.lock().await;
        let (seq, prev) = entries.last().map_or((1, GENESIS_HASH.to_owned()), |e| {
            (e.seq + 1, e.signature.clone())
        });
        let entry = self.secret.seal(record, seq, prev);
        entries.push(entry.clone());
        Ok(entry)
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let entries = self.entries.lock().await;
        Ok(entries
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect())
    }

    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        let entries = self.entries.lock().await;
        Ok(verify_chain(entries.iter(), &self.secret, expected_head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> (AuditSecret, Vec<AuditEntry>) {
        let secret = AuditSecret::new("s3cret");
        let user = UserId::new("alice").unwrap();
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map_or(GENESIS_HASH.to_owned(), |e| e.signature.clone());
            let record = AuditRecord::new(&user, "s1", "system", "tool_call").with("n", seq);
            out.push(secret.seal(record, seq, prev));
        }
        (secret, out)
    }

    fn reasons(v: &Verification) -> Vec<String> {
        v.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_tampering_is_caught() {
        let (secret, good) = chain(5);
        let head = good[4].signature.clone();
        assert!(verify_chain(&good, &secret, Some(&head)).ok);

        let mut edited = good.clone();
        edited[2].payload.insert("n".into(), 99.into());
        assert_eq!(
            reasons(&verify_chain(&edited, &secret, None)),
            ["seq 3: signature does not match the entry's content"]
        );

        let mut deleted = good.clone();
        deleted.remove(2);
        assert_eq!(
            reasons(&verify_chain(&deleted, &secret, None)),
            [
                "seq 4: seq 4 where 3 was expected",
                "seq 4: prev_hash does not match the entry before it"
            ]
        );

        // An inserted entry, even one signed with the right key.
        let mut inserted = good.clone();
        let extra = secret.seal(
            AuditRecord::new(&UserId::anonymous(), "s1", "system", "x"),
            3,
            good[1].signature.clone(),
        );
        inserted.insert(2, extra);
        let r = reasons(&verify_chain(&inserted, &secret, None));
        assert_eq!(r[0], "seq 3: seq 3 where 4 was expected", "{r:?}");

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert!(!verify_chain(&reordered, &secret, None).ok);

        // Cutting the tail keeps a valid chain; the recorded head exposes it.
        let cut = &good[..3];
        assert!(verify_chain(cut, &secret, None).ok);
        assert_eq!(
            reasons(&verify_chain(cut, &secret, Some(&head))),
            ["the expected head is not in the log (entries were removed from its end)"]
        );

        // Cutting the front.
        assert_eq!(
            reasons(&verify_chain(&good[1..], &secret, None)),
            ["seq 2: entries before this one are missing"]
        );

        // Another key.
        assert!(!verify_chain(&good, &AuditSecret::new("other"), None).ok);
    }
}
