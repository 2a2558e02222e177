//! One core's response cache (cache-lookup / cache-store): whole responses by key,
//! each with its own time to live, within a byte budget; when a new entry does not
//! fit, the least recently used entries go first. No locks, no atomics: each core has
//! its own, so a response cached on one core is not seen by the others (a client
//! whose connections land on several cores fills several caches).
//!
//! This file knows nothing of policies or HTTP semantics (what may be cached, what the
//! key is made of): `builtin/cache.rs` decides those.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Bytes charged per entry beyond its key, headers and body (map and list overhead).
const ENTRY_OVERHEAD: u64 = 160;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CachedResponse {
    fn size(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        (self.reason.len() + headers + self.body.len()) as u64
    }
}

/// A hit: the response, how long it has been stored and how long it stays fresh.
#[derive(Debug)]
pub struct Hit<'a> {
    pub response: &'a CachedResponse,
    pub age: Duration,
    pub fresh_for: Duration,
}

/// The cache of one core.
#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: HashMap<String, Entry>,
    /// Entries by last use, oldest first: use number -> key.
    by_use: BTreeMap<u64, String>,
    bytes: u64,
    uses: u64,
}

#[derive(Debug)]
struct Entry {
    response: CachedResponse,
    stored: Instant,
    expires: Instant,
    size: u64,
    last_use: u64,
}

impl ResponseCache {
    /// The fresh response under `key`; an expired one is dropped.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Hit<'_>> {
        let expired = self.entries.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        self.uses += 1;
        let entry = self.entries.get_mut(key)?;
        self.by_use.remove(&entry.last_use);
        entry.last_use = self.uses;
        self.by_use.insert(self.uses, key.to_string());
        Some(Hit {
            response: &entry.response,
            age: now.saturating_duration_since(entry.stored),
            fresh_for: entry.expires.saturating_duration_since(now),
        })
    }

    /// Stores `response` under `key` for `ttl`, evicting the least recently used
    /// entries until it fits in `budget` bytes. False when it cannot fit at all.
    pub fn insert(
        &mut self,
        key: &str,
        response: CachedResponse,
        ttl: Duration,
        now: Instant,
        budget: u64,
    ) -> bool {
        self.remove(key);
        let size = response.size() + 2 * key.len() as u64 + ENTRY_OVERHEAD;
        if size > budget || ttl.is_zero() {
            return false;
        }
        while self.bytes + size > budget {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.size;
            }
        }
        self.uses += 1;
        self.by_use.insert(self.uses, key.to_string());
        self.entries.insert(
            key.to_string(),
            Entry {
                response,
                stored: now,
                expires: now.checked_add(ttl).unwrap_or(now),
                size,
                last_use: self.uses,
            },
        );
        self.bytes += size;
        true
    }

    /// Bytes held, as charged against the budget.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remove(&mut self, key: &str) {
        if let Some(gone) = self.entries.remove(key) {
            self.by_use.remove(&gone.last_use);
            self.bytes -= gone.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body_len: usize) -> CachedResponse {
        CachedResponse {
            status: 200,
            reason: String::new(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: vec![b'x'; body_len],
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn entries_are_fresh_until_their_ttl() {
        let mut c = ResponseCache::default();
        let t0 = Instant::now();
        assert!(c.insert("k", response(10), MIN, t0, 1 << 20));
        let hit = c.get("k", t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(hit.age, Duration::from_secs(20));
        assert_eq!(hit.fresh_for, Duration::from_secs(40));
        assert_eq!(hit.response.body.len(), 10);
        assert!(c.get("k", t0 + MIN).is_none());
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        assert!(c.get("other", t0).is_none());
    }

    #[test]
    fn the_least_recently_used_entries_make_room() {
        let mut c = ResponseCache::default();
        let t0 = Instant::now();
        let one = response(1000).size() + 2 + ENTRY_OVERHEAD;
        let budget = 3 * one;
        for k in ["a", "b", "c"] {
            assert!(c.insert(k, response(1000), MIN, t0, budget));
        }
        assert_eq!(c.bytes(), budget);
        // Using a makes b the least recently used.
        assert!(c.get("a", t0).is_some());
        assert!(c.insert("d", response(1000), MIN, t0, budget));
        assert!(c.get("b", t0).is_none());
        for k in ["a", "c", "d"] {
            assert!(c.get(k, t0).is_some(), "{k}");
        }
        // A big entry pushes out as many as it needs.
        assert!(c.insert("big", response(2500), MIN, t0, budget));
        assert_eq!(c.len(), 1);
        assert!(c.bytes() <= budget);
        // Replacing an entry does not count it twice.
        assert!(c.insert("big", response(2500), MIN, t0, budget));
        assert_eq!(c.len(), 1);
        assert!(c.bytes() <= budget);
    }

    #[test]
    fn what_cannot_fit_is_not_stored() {
        let mut c = ResponseCache::default();
        let t0 = Instant::now();
        assert!(!c.insert("k", response(100), MIN, t0, 50));
        assert!(!c.insert("k", response(1), Duration::ZERO, t0, 1 << 20));
        assert!(!c.insert("k", response(1), MIN, t0, 0));
        assert!(c.is_empty());
        // A smaller budget later (a reload) evicts down to it on the next store.
        for i in 0..100 {
            c.insert(&format!("k{i}"), response(100), MIN, t0, 1 << 20);
        }
        let before = c.bytes();
        assert!(c.insert("new", response(100), MIN, t0, before / 10));
        assert!(c.bytes() <= before / 10);
    }
}
