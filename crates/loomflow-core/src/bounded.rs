//! Per-user state with a ceiling: at most `max` keys, and keys idle longer
//! than `ttl` dropped. Budgets, rate limiters and remembered approvals keep
//! their per-user entries here, so a flood of distinct users cannot grow
//! memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Bounds for per-user state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most keys kept (the least recently used go first); `None` for no cap.
    pub max_users: Option<usize>,
    /// Keys untouched this long are dropped; `None` to keep them.
    pub idle_ttl: Option<Duration>,
}

impl Default for Bounds {
    /// The reference's defaults: 100,000 users, one day idle.
    fn default() -> Self {
        Self {
            max_users: Some(100_000),
            idle_ttl: Some(Duration::from_secs(86_400)),
        }
    }
}

/// A map bounded by [`Bounds`]. Not synchronised: wrap it in a lock.
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    map: HashMap<K, (V, Instant)>,
    bounds: Bounds,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            map: HashMap::new(),
            bounds,
        }
    }

    fn expired(&self, seen: Instant, now: Instant) -> bool {
        self.bounds
            .idle_ttl
            .is_some_and(|ttl| now.saturating_duration_since(seen) > ttl)
    }

    /// The entry for `key`, touched; `None` when absent or expired.
    pub(crate) fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let seen = self.map.get(key)?.1;
        if self.expired(seen, now) {
            self.map.remove(key);
            return None;
        }
        let (value, seen) = self.map.get_mut(key)?;
        *seen = now;
        Some(value)
    }

    /// The entry for `key`, touched, made with `make` when absent or expired.
    pub(crate) fn entry(&mut self, key: &K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        let fresh = match self.map.get(key) {
            Some((_, seen)) => self.expired(*seen, now),
            None => true,
        };
        if fresh {
            self.map.remove(key);
            self.make_room(now);
        }
        // Absent now exactly when fresh, so `make` runs only then.
        let slot = self.map.entry(key.clone()).or_insert_with(|| (make(), now));
        slot.1 = now;
        &mut slot.0
    }

    /// Inserts or replaces `key`.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Instant) {
        if !self.map.contains_key(&key) {
            self.make_room(now);
        }
        self.map.insert(key, (value, now));
    }

    /// Keys held (expired ones included until the next sweep).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Drops expired keys, then, at the cap, the least recently used
    /// sixteenth (so a full map sweeps once per many inserts, not per insert).
    fn make_room(&mut self, now: Instant) {
        let Some(max) = self.bounds.max_users else {
            return;
        };
        if self.map.len() < max {
            return;
        }
        if let Some(ttl) = self.bounds.idle_ttl {
            self.map
                .retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= ttl);
        }
        if self.map.len() < max {
            return;
        }
        let drop = (max / 16).max(1).min(self.map.len());
        let mut ages: Vec<Instant> = self.map.values().map(|(_, seen)| *seen).collect();
        let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        let mut left = drop;
        self.map.retain(|_, (_, seen)| {
            if left > 0 && *seen <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_idle_expiry_hold() {
        let t0 = Instant::now();
        let mut m = BoundedMap::new(Bounds {
            max_users: Some(32),
            idle_ttl: Some(Duration::from_secs(10)),
        });
        for i in 0..100u32 {
            m.insert(i, i, t0 + Duration::from_millis(i.into()));
        }
        assert!(m.len() <= 32, "{}", m.len());
        // The newest survive, the oldest went.
        assert!(m.get_mut(&99, t0 + Duration::from_secs(1)).is_some());
        assert!(m.get_mut(&0, t0 + Duration::from_secs(1)).is_none());
        // Idle past the TTL: gone, and `entry` starts it afresh.
        let later = t0 + Duration::from_secs(20);
        assert!(m.get_mut(&98, later).is_none());
        assert_eq!(*m.entry(&98, later, || 7), 7);
    }
}
