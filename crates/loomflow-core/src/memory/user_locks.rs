//! [`UserLocks`]: one writer per user at a time, within a process.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

/// Serialises a process's writes per user for backends whose server has no
/// transactions (read-modify-write of facts, block order, statistics).
/// Users hash onto a fixed set of stripes, so memory stays constant however
/// many users there are; two users sharing a stripe merely wait for each
/// other. Clones share the stripes.
///
/// ```
/// use loomflow_core::memory::UserLocks;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let locks = UserLocks::default();
/// let guard = locks.lock("ns:alice").await;
/// assert!(locks.try_lock("ns:alice").is_none()); // held
/// drop(guard);
/// assert!(locks.try_lock("ns:alice").is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct UserLocks {
    stripes: Arc<[Mutex<()>]>,
}

impl std::fmt::Debug for UserLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

impl Default for UserLocks {
    /// 64 stripes.
    fn default() -> Self {
        Self::new(64)
    }
}

impl UserLocks {
    /// `stripes` locks (at least one).
    pub fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let i = hasher.hash_one(key) as usize % self.stripes.len();
        &self.stripes[i]
    }

    /// Waits for the lock of `key` (a user's storage prefix), in line.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.stripe(key).lock().await
    }

    /// The lock of `key` if it is free now.
    pub fn try_lock(&self, key: &str) -> Option<MutexGuard<'_, ()>> {
        self.stripe(key).try_lock().ok()
    }
}
