//! What policies use besides the request: per-core state that outlives a request
//! (rate-limit shard, JWT key caches, the clock). One `Services` per core, owned by the
//! core's executor; policies borrow it mutably while a section runs.

use crate::policy::jwt::{KeySet, OpenIdCache};
use crate::ratelimit::CoreShard;
use std::collections::HashMap;
use std::time::Instant;

/// Per-core services for policies.
pub struct Services {
    pub limits: CoreShard,
    /// Monotonic time of the current request.
    pub now: Instant,
    /// This core's copies of the openid-config key sets `validate-jwt` uses.
    pub openid: OpenIdKeys,
}

/// Per-core copies of the key sets of shared [`OpenIdCache`]s (validate-jwt's
/// `openid-config`). A request reads the cache's generation (one atomic load) and
/// copies the published set only when it moved, so cores do not meet on the cache's
/// lock, nor on the set's reference count. Caches are named by a process-unique id,
/// never by address (a dropped cache's address can be reused).
#[derive(Default)]
pub struct OpenIdKeys {
    sets: HashMap<u64, (u64, KeySet)>,
}

/// Copies kept before all are dropped: caches replaced by reloads leave stale entries
/// behind; clearing now and then bounds them.
const MAX_OPENID_SETS: usize = 64;

impl OpenIdKeys {
    /// The current keys of `cache`, known as `id`.
    pub fn get(&mut self, id: u64, cache: &OpenIdCache) -> &KeySet {
        let generation = cache.generation();
        if self.sets.len() >= MAX_OPENID_SETS && !self.sets.contains_key(&id) {
            self.sets.clear();
        }
        let entry = self
            .sets
            .entry(id)
            .or_insert_with(|| (generation, cache.keys()));
        if entry.0 != generation {
            *entry = (generation, cache.keys());
        }
        &entry.1
    }
}
