//! One core's memory of token signatures it has already verified, so that a client
//! presenting the same token again (the common case: an access token is reused for its
//! whole lifetime) costs a hash and a comparison instead of an RSA or EC verification.
//!
//! What is remembered is the token decoded and its signature verified (a
//! [`VerifiedToken`], both pure functions of the token bytes and the keys); lifetime,
//! audience, issuer and required claims are checked on every request by the caller. An entry is keyed by the exact
//! token bytes and by the [`KeySetTag`] of the keys it was verified with (a new tag on
//! every config compile and every openid-config refresh), so a token verified under
//! keys that have since changed is verified again. An entry is good until the token's
//! `exp`; tokens without one are not remembered. The table holds at most `capacity`
//! entries and evicts the oldest. It belongs to one core: no locks, no atomics.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use super::validate::VerifiedToken;

/// Entries kept per core.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Longest token remembered: bounds the table's memory (capacity x this) whatever
/// signed tokens clients present.
pub const MAX_CACHED_TOKEN: usize = 8 * 1024;

/// Bytes at the end of a token that go into its hash (see `VerifiedTokens::hash`).
const HASHED_TAIL: usize = 32;

/// The keys a signature was verified with: a validator (one compiled `validate-jwt`,
/// process-unique) and the generation of its openid-config key set (0 without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetTag {
    pub validator: u64,
    pub openid_generation: u64,
}

/// Verified tokens of one core (`T` is what is kept per token; a test may keep less).
#[derive(Debug)]
pub struct VerifiedTokens<T = Arc<VerifiedToken>> {
    /// Keyed per table, so collisions cannot be planned from outside.
    hasher: RandomState,
    entries: HashMap<u64, Entry<T>>,
    /// Insertion order, oldest first; records of replaced or removed entries are
    /// skipped when met (their sequence number no longer matches).
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
    capacity: usize,
}

#[derive(Debug)]
struct Entry<T> {
    tag: KeySetTag,
    /// The whole token: a hit must match it byte for byte, not only its hash.
    token: Box<str>,
    /// The token's `exp` (NumericDate seconds): the entry is not used from then on.
    expires: f64,
    seq: u64,
    value: T,
}

impl<T: Clone> Default for VerifiedTokens<T> {
    fn default() -> Self {
        VerifiedTokens::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<T: Clone> VerifiedTokens<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        VerifiedTokens {
            hasher: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            capacity,
        }
    }

    /// Entries held (expired ones included until they are met or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What was kept for `token` verified under `tag`, if the entry is still good at
    /// `now` (NumericDate seconds). An expired entry is dropped.
    pub fn get(&mut self, tag: KeySetTag, token: &str, now: f64) -> Option<T> {
        let hash = self.hash(tag, token);
        let entry = self.entries.get(&hash)?;
        if entry.tag != tag || *entry.token != *token {
            return None;
        }
        if now < entry.expires {
            return Some(entry.value.clone());
        }
        self.entries.remove(&hash);
        None
    }

    /// Whether [`get`](Self::get) would answer (the tests' view of the table).
    #[cfg(test)]
    pub fn contains(&mut self, tag: KeySetTag, token: &str, now: f64) -> bool {
        self.get(tag, token, now).is_some()
    }

    /// Remembers `value` for `token` verified under `tag`, until `expires`.
    pub fn insert(&mut self, tag: KeySetTag, token: &str, expires: f64, now: f64, value: T) {
        if self.capacity == 0
            || token.len() > MAX_CACHED_TOKEN
            || expires.is_nan()
            || expires <= now
        {
            return;
        }
        let hash = self.hash(tag, token);
        if !self.entries.contains_key(&hash) {
            while self.entries.len() >= self.capacity {
                self.evict_oldest();
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            hash,
            Entry {
                tag,
                token: token.into(),
                expires,
                seq,
                value,
            },
        );
        self.order.push_back((hash, seq));
        if self.order.len() > 2 * self.capacity + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(h, s)| entries.get(h).is_some_and(|e| e.seq == *s));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((hash, seq)) = self.order.pop_front() {
            if self.entries.get(&hash).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&hash);
                return;
            }
        }
        // Only reachable if the order lost track: start over rather than loop.
        self.entries.clear();
    }

    /// Hashes the tag, the length and the last [`HASHED_TAIL`] bytes: the end of a
    /// signed token is its signature, which differs between any two tokens, and a hit
    /// still compares the whole token. Hashing all of a 700-byte token with SipHash was
    /// 1.4% of a validate-jwt request. Tokens made to share a tail only collide with
    /// each other: a lookup that collides misses (the comparison fails), and only
    /// tokens whose signature verified are ever inserted.
    fn hash(&self, tag: KeySetTag, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(HASHED_TAIL)..];
        self.hasher.hash_one((tag, bytes.len(), tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: KeySetTag = KeySetTag {
        validator: 1,
        openid_generation: 0,
    };

    #[test]
    fn a_hit_needs_the_same_token_and_key_set_and_an_unexpired_entry() {
        let mut t = VerifiedTokens::<()>::default();
        t.insert(TAG, "a.b.c", 100.0, 10.0, ());
        assert!(t.contains(TAG, "a.b.c", 10.0));
        assert!(t.contains(TAG, "a.b.c", 99.9));
        assert!(!t.contains(TAG, "a.b.d", 10.0));
        let refreshed = KeySetTag {
            openid_generation: 1,
            ..TAG
        };
        assert!(!t.contains(refreshed, "a.b.c", 10.0));
        let recompiled = KeySetTag {
            validator: 2,
            ..TAG
        };
        assert!(!t.contains(recompiled, "a.b.c", 10.0));
        // At exp the entry is gone for good.
        assert!(!t.contains(TAG, "a.b.c", 100.0));
        assert!(!t.contains(TAG, "a.b.c", 10.0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_token_sharing_only_the_hashed_tail_is_neither_a_hit_nor_harm() {
        let sig = "S".repeat(HASHED_TAIL);
        let (real, forged) = (format!("aaaa.bbbb.{sig}"), format!("aaaa.bbbc.{sig}"));
        let mut t = VerifiedTokens::<u8>::default();
        t.insert(TAG, &real, 100.0, 10.0, 1);
        // Same length and tail, so the same hash: the comparison turns it away ...
        assert_eq!(t.get(TAG, &forged, 10.0), None);
        // ... and looking it up leaves the real token's entry in place.
        assert_eq!(t.get(TAG, &real, 10.0), Some(1));
        // Different lengths or tails are different hashes: both entries are kept.
        t.insert(TAG, &format!("aaaa.bbbb.{sig}T"), 100.0, 10.0, 2);
        assert_eq!(t.get(TAG, &real, 10.0), Some(1));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn expired_huge_or_zero_capacity_entries_are_not_kept() {
        let mut t = VerifiedTokens::<()>::default();
        t.insert(TAG, "old", 5.0, 10.0, ());
        t.insert(TAG, "nan", f64::NAN, 10.0, ());
        t.insert(TAG, &"x".repeat(MAX_CACHED_TOKEN + 1), 100.0, 10.0, ());
        assert!(t.is_empty());
        let mut none = VerifiedTokens::<()>::with_capacity(0);
        none.insert(TAG, "t", 100.0, 10.0, ());
        assert!(!none.contains(TAG, "t", 10.0));
    }

    #[test]
    fn the_oldest_entry_is_evicted_at_capacity() {
        let mut t = VerifiedTokens::<()>::with_capacity(3);
        for name in ["t0", "t1", "t2"] {
            t.insert(TAG, name, 100.0, 0.0, ());
        }
        // Re-inserting t0 makes it the newest; t1 is now the oldest.
        t.insert(TAG, "t0", 100.0, 0.0, ());
        t.insert(TAG, "t3", 100.0, 0.0, ());
        assert_eq!(t.len(), 3);
        assert!(!t.contains(TAG, "t1", 0.0));
        for name in ["t0", "t2", "t3"] {
            assert!(t.contains(TAG, name, 0.0), "{name}");
        }
    }

    #[test]
    fn memory_stays_bounded_under_churn() {
        let mut t = VerifiedTokens::<()>::with_capacity(8);
        for i in 0..10_000u32 {
            t.insert(TAG, &format!("token-{}", i % 20), 1e9, 0.0, ());
            if i % 3 == 0 {
                // Expired hits remove entries and leave stale order records behind.
                t.contains(TAG, &format!("token-{}", i % 20), 2e9);
            }
        }
        assert!(t.len() <= 8);
        assert!(t.order.len() <= 2 * 8 + 16 + 1);
    }
}
