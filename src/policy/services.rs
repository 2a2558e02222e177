//! What policies use besides the request: per-core state that outlives a request
//! (rate-limit shard, JWT key caches and verified tokens, the clock). One `Services`
//! per core, owned by the core's executor; policies borrow it mutably while a section
//! runs.

use crate::policy::builtin::concurrency::ConcurrencySlots;
use crate::policy::jwt::{KeySet, OpenIdCache, VerifiedTokens};
use crate::policy::response_cache::ResponseCache;
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
    /// This core's tables of what policies remember between requests.
    pub tables: Tables,
}

/// What policies remember between requests on one core. Each table bounds its own
/// memory.
#[derive(Debug, Default)]
pub struct Tables {
    /// validate-jwt: tokens whose signature verified, by key set.
    pub verified_tokens: VerifiedTokens,
    /// limit-concurrency: calls in flight, by policy and key.
    pub concurrency: ConcurrencySlots,
    /// cache-lookup / cache-store: responses, within the configured byte budget.
    pub responses: ResponseCache,
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
        self.get_with_generation(id, cache).1
    }

    /// The current keys of `cache` and the generation they were published as.
    pub fn get_with_generation(&mut self, id: u64, cache: &OpenIdCache) -> (u64, &KeySet) {
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
        (entry.0, &entry.1)
    }
}
