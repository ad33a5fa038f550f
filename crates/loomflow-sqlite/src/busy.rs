//! Waiting out another connection's lock while a file is being set up.

use std::time::{Duration, Instant};

/// True for "database is busy" and "database is locked".
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` again while the file is busy, for up to `timeout`. Some locks
/// (a file being switched to WAL, or its WAL recovered, by another
/// connection) fail at once instead of invoking the busy handler, so
/// several processes opening one new file at the same moment would
/// otherwise see "database is locked".
pub(crate) fn patiently<T>(
    timeout: Duration,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}
