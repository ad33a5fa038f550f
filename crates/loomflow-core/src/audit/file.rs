//! The JSONL audit log: one entry per line, appended under an exclusive
//! `flock`, continuing the seq and the chain from the file's last entry, so
//! several processes (or several handles) can append to one file without
//! repeating a seq or forking the chain.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    AuditEntry, AuditError, AuditLog, AuditProblem, AuditQuery, AuditRecord, AuditSecret,
    GENESIS_HASH, Verification, verify_rows,
};

/// An audit log in a JSONL file.
///
/// Appends hold the file open and take an exclusive advisory lock (`flock`)
/// for each entry; the tail (last seq and signature) is cached and read
/// again only when another writer has grown the file. Entries are written,
/// not fsynced: a machine crash can lose the last ones, which
/// `expected_head` then reports.
///
/// ```
/// use loomflow_core::audit::{AuditLog, AuditQuery, AuditRecord, AuditSecret, FileAuditLog};
/// use loomflow_core::UserId;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("audit-doc-{}", std::process::id()));
/// let log = FileAuditLog::open(dir.join("audit.jsonl"), AuditSecret::new("k3y")).unwrap();
/// let bob = UserId::new("bob").unwrap();
/// log.append(AuditRecord::new(&bob, "s1", "model", "tool_call").with("tool", "search")).await.unwrap();
/// let calls = log.query(&AuditQuery::all().user(&bob)).await.unwrap();
/// assert_eq!(calls[0].payload["tool"], "search");
/// assert!(log.verify(None).await.unwrap().ok);
/// # std::fs::remove_dir_all(dir).unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FileAuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    secret: AuditSecret,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    tail: Option<Tail>,
}

/// The file's last entry, as of `size`.
#[derive(Debug, Clone)]
struct Tail {
    size: u64,
    seq: u64,
    head: String,
    ends_with_newline: bool,
}

impl FileAuditLog {
    /// Opens (creating it and its directory if needed) the log at `path`.
    pub fn open(path: impl Into<PathBuf>, secret: AuditSecret) -> Result<Self, AuditError> {
        let path = path.into();
        let at = |e: std::io::Error| AuditError::storage(path.display().to_string(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(at)?;
        }
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(at)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                secret,
                state: Mutex::new(State { file, tail: None }),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every line of the file, parsed: `(line number, entry or None)`.
    pub fn read_lines(path: &Path) -> Result<Vec<(usize, Option<AuditEntry>)>, AuditError> {
        let at = |e: std::io::Error| AuditError::storage(path.display().to_string(), e);
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(at(e)),
        };
        let _lock = FileLock::shared(&file).map_err(at)?;
        let mut text = Vec::new();
        (&file).read_to_end(&mut text).map_err(at)?;
        Ok(text
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, raw)| !raw.trim_ascii().is_empty())
            .map(|(i, raw)| (i + 1, serde_json::from_slice::<AuditEntry>(raw).ok()))
            .collect())
    }

    /// Checks the file at `path` with `secret`: unreadable lines, signatures,
    /// seq order and the chain (what `loomflow audit verify` runs).
    pub fn verify_file(
        path: &Path,
        secret: &AuditSecret,
        expected_head: Option<&str>,
    ) -> Result<Verification, AuditError> {
        let lines = Self::read_lines(path)?;
        let mut problems = Vec::new();
        let mut rows = Vec::with_capacity(lines.len());
        for (line, entry) in &lines {
            match entry {
                Some(e) => rows.push((Some(*line), e)),
                None => problems.push(AuditProblem {
                    reason: "not a valid entry".into(),
                    seq: None,
                    line: Some(*line),
                }),
            }
        }
        Ok(verify_rows(rows, secret, expected_head, problems))
    }

    fn append_blocking(inner: &Inner, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        let at = |e: std::io::Error| AuditError::storage(inner.path.display().to_string(), e);
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        let _lock = FileLock::exclusive(&state.file).map_err(at)?;
        let size = state.file.metadata().map_err(at)?.len();
        let tail = match &state.tail {
            Some(t) if t.size == size => t.clone(),
            _ => recover_tail(&state.file, size).map_err(at)?,
        };
        let entry = inner.secret.seal(record, tail.seq + 1, tail.head);
        let mut line = Vec::with_capacity(512);
        if !tail.ends_with_newline {
            // Never glue onto a torn last line.
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &entry)
            .map_err(|e| AuditError::storage(inner.path.display().to_string(), e))?;
        line.push(b'\n');
        (&state.file).write_all(&line).map_err(at)?;
        state.tail = Some(Tail {
            size: size + line.len() as u64,
            seq: entry.seq,
            head: entry.signature.clone(),
            ends_with_newline: true,
        });
        Ok(entry)
    }
}

/// The seq and signature of the last valid entry, read backwards from the end.
fn recover_tail(mut file: &File, size: u64) -> std::io::Result<Tail> {
    let empty = |ends_with_newline| Tail {
        size,
        seq: 0,
        head: GENESIS_HASH.to_owned(),
        ends_with_newline,
    };
    if size == 0 {
        return Ok(empty(true));
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    let ends_with_newline = last[0] == b'\n';
    let mut block: u64 = 1 << 16;
    loop {
        let start = size.saturating_sub(block);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; (size - start) as usize];
        file.read_exact(&mut buf)?;
        let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
        if start > 0 && !lines.is_empty() {
            // The first piece may be the end of a longer line.
            lines.remove(0);
        }
        for raw in lines.iter().rev() {
            if raw.trim_ascii().is_empty() {
                continue;
            }
            if let Ok(entry) = serde_json::from_slice::<AuditEntry>(raw) {
                return Ok(Tail {
                    size,
                    seq: entry.seq,
                    head: entry.signature,
                    ends_with_newline,
                });
            }
        }
        if start == 0 {
            return Ok(empty(ends_with_newline));
        }
        block = block.saturating_mul(4);
    }
}

#[async_trait]
impl AuditLog for FileAuditLog {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || Self::append_blocking(&inner, record))
            .await
            .map_err(|e| AuditError::storage(self.inner.path.display().to_string(), e))?
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let path = self.inner.path.clone();
        let lines = tokio::task::spawn_blocking(move || Self::read_lines(&path))
            .await
            .map_err(|e| AuditError::storage(self.inner.path.display().to_string(), e))??;
        let skipped = lines.iter().filter(|(_, e)| e.is_none()).count();
        if skipped > 0 {
            tracing::warn!(
                path = %self.inner.path.display(),
                skipped,
                "audit log: skipped unreadable lines; run verify for details"
            );
        }
        Ok(lines
            .into_iter()
            .filter_map(|(_, e)| e)
            .filter(|e| query.matches(e))
            .collect())
    }

    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        let inner = self.inner.clone();
        let head = expected_head.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            Self::verify_file(&inner.path, &inner.secret, head.as_deref())
        })
        .await
        .map_err(|e| AuditError::storage(self.inner.path.display().to_string(), e))?
    }
}

/// An advisory lock on a file, released on drop.
struct FileLock<'a>(#[cfg_attr(not(unix), allow(dead_code))] &'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> std::io::Result<Self> {
        #[cfg(unix)]
        rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Self(file))
    }

    fn shared(file: &'a File) -> std::io::Result<Self> {
        #[cfg(unix)]
        rustix::fs::flock(file, rustix::fs::FlockOperation::LockShared)?;
        Ok(Self(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = rustix::fs::flock(self.0, rustix::fs::FlockOperation::Unlock);
    }
}
