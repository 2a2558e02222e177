//! The node-wide allowance: every limit's per-key counters, behind sharded mutexes.
//! Cores come here only to draw or give back leases (see the module above); nothing
//! here runs per request in the common case, and nothing here knows about cores' own
//! state.

use super::window::{Counters, Geometry, Now, WindowId, LAG_BUCKETS};
use super::{IdMap, LimitId, Params};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Node-wide counters, shared by every core's [`CoreShard`](super::CoreShard).
pub struct NodeLimiter {
    cores: usize,
    max_keys_per_limit: usize,
    keys_per_shard: usize,
    origin: Instant,
    origin_unix_ms: i64,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl NodeLimiter {
    /// A limiter for `cores` core shards tracking at most `max_keys_per_limit` keys
    /// per limit. Wall time (for quota windows) is read once, here.
    pub fn new(cores: usize, max_keys_per_limit: usize) -> Arc<Self> {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self::with_clock(cores, max_keys_per_limit, Instant::now(), unix_ms)
    }

    /// [`NodeLimiter::new`] with the clock given: `origin` is the instant that is
    /// `origin_unix_ms` on the wall clock. Tests use it to place window boundaries.
    pub fn with_clock(
        cores: usize,
        max_keys_per_limit: usize,
        origin: Instant,
        origin_unix_ms: i64,
    ) -> Arc<Self> {
        let cores = cores.max(1);
        let max_keys_per_limit = max_keys_per_limit.max(1);
        let mut shards = cores.saturating_mul(4).min(64).next_power_of_two();
        while shards > 1 && shards > max_keys_per_limit {
            shards /= 2;
        }
        Arc::new(NodeLimiter {
            cores,
            max_keys_per_limit,
            keys_per_shard: max_keys_per_limit / shards,
            origin,
            origin_unix_ms,
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::default()).collect(),
        })
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    pub fn max_keys_per_limit(&self) -> usize {
        self.max_keys_per_limit
    }

    /// Keys the node tracks for limit `id` (takes every lock: for tests and metrics).
    pub fn tracked_keys(&self, id: LimitId) -> usize {
        (0..self.shards.len())
            .map(|ix| self.lock(ix).tables.get(&id).map_or(0, |t| t.keys.len()))
            .sum()
    }

    /// Forgets every key whose window is empty now, whatever the sweep schedule.
    pub fn sweep(&self, now: Instant) {
        let now = self.stamp(self.mono_ms(now));
        for ix in 0..self.shards.len() {
            self.lock(ix).sweep(now, true);
        }
    }

    /// Milliseconds from the origin to `at` (0 before it).
    pub(crate) fn mono_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn stamp(&self, mono_ms: u64) -> Now {
        Now {
            mono_ms,
            unix_ms: self
                .origin_unix_ms
                .saturating_add(i64::try_from(mono_ms).unwrap_or(i64::MAX)),
        }
    }

    /// The lock shard holding (`id`, `key`).
    pub(crate) fn shard_of(&self, id: LimitId, key: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        id.hash(&mut h);
        key.hash(&mut h);
        (h.finish() as usize) & (self.shards.len() - 1)
    }

    /// Gives back what a core holds, charges bandwidth it spent, and draws a new
    /// lease, all in one visit to the key's lock shard.
    pub(crate) fn exchange(&self, id: LimitId, params: &Params, key: &str, ask: &Ask) -> Answer {
        let cap = self.keys_per_shard;
        let cores = self.cores as u64;
        let mut shard = self.lock(self.shard_of(id, key));
        let table = shard.table(id, params, ask.now);
        table.newest = table.newest.max(ask.window);
        if let Some(held) = ask.give_back {
            table.refund(key, held);
        }
        table.with_counters(key, ask.window, ask.now, cap, |counters| {
            settle(counters, params, ask, cores)
        })
    }

    /// Gives back unused leases, sorted by shard so each lock is taken once.
    pub(crate) fn give_back(&self, returns: &[Return]) {
        for group in returns.chunk_by(|a, b| a.shard == b.shard) {
            let mut shard = self.lock(group[0].shard);
            for r in group {
                if let Some(table) = shard.tables.get_mut(&r.id) {
                    table.refund(&r.key, r.held);
                }
            }
        }
    }

    /// This core's share of the housekeeping: sweeps the tables due in the shards it
    /// looks after, skipping a shard that is busy (it will be back next time).
    pub(crate) fn maintain(&self, now: Now, core: usize) {
        let n = self.shards.len();
        for ix in (core % n..n).step_by(self.cores) {
            let mut shard = match self.shards[ix].try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            shard.sweep(now, false);
        }
    }

    fn lock(&self, ix: usize) -> MutexGuard<'_, Shard> {
        // A panic under the lock leaves counts that are at worst conservative.
        self.shards[ix]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A core's request to the node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ask {
    pub now: Now,
    /// The window the core is in: what it will spend the lease in.
    pub window: WindowId,
    /// Tokens the core held, given back before the draw.
    pub give_back: Option<Held>,
    /// Calls (bytes) the draw must yield, or be refused.
    pub need_calls: u64,
    pub need_bytes: u64,
    /// Lease the core would like on top of the need.
    pub extra_calls: u64,
    pub extra_bytes: u64,
    /// Bandwidth spent beyond the core's bytes lease, charged whatever is left.
    pub spent_bytes: u64,
}

/// Tokens a core holds, charged to `window`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub window: WindowId,
    pub calls: u64,
    pub bytes: u64,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.calls == 0 && self.bytes == 0
    }
}

/// Unused tokens going home at reconcile.
#[derive(Debug)]
pub(crate) struct Return {
    pub shard: usize,
    pub id: LimitId,
    pub key: Box<str>,
    pub held: Held,
}

/// The node's answer to an [`Ask`]; `*_left` is what remains unleased after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub outcome: Outcome,
    pub calls_left: u64,
    pub bytes_left: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Granted { calls: u64, bytes: u64 },
    Refused { retry_after_ms: u64 },
}

#[derive(Default)]
struct Shard {
    tables: IdMap<Table>,
}

/// One limit's keys within a shard.
struct Table {
    params: Params,
    keys: HashMap<Box<str>, Counters>,
    /// Shared by every key the full table cannot track: their calls, summed.
    overflow: Option<Counters>,
    /// Which keys the overflow counted lately: such a key, once tracked, starts from a
    /// copy of the overflow, so it can never exceed its limit by having been counted
    /// there first. Other keys start empty.
    overflowed: Option<Seen>,
    /// The latest window any core drew in. Counters are moved up to it before use,
    /// so every key judges a lagging core against the same time.
    newest: WindowId,
    next_sweep_ms: u64,
    /// Last sweep forced by a full table (they are spaced out).
    full_sweep_ms: Option<u64>,
}

impl Shard {
    fn table(&mut self, id: LimitId, params: &Params, now: Now) -> &mut Table {
        let table = self
            .tables
            .entry(id)
            .or_insert_with(|| Table::new(*params, now));
        if table.params != *params {
            // Only a hash collision or a caller bypassing `LimitSpec` gets here.
            *table = Table::new(*params, now);
        }
        table
    }

    fn sweep(&mut self, now: Now, force: bool) {
        self.tables.retain(|_, t| {
            if force || now.mono_ms >= t.next_sweep_ms {
                t.sweep(now);
            }
            !(t.keys.is_empty() && t.overflow.is_none())
        });
    }
}

impl Table {
    fn new(params: Params, now: Now) -> Self {
        Table {
            params,
            keys: HashMap::new(),
            overflow: None,
            overflowed: None,
            newest: WindowId::MIN,
            next_sweep_ms: now.mono_ms + sweep_interval_ms(&params.geometry),
            full_sweep_ms: None,
        }
    }

    /// Runs `f` on `key`'s counters: its own, created (from a copy of the overflow)
    /// if there is room, else the shared overflow.
    fn with_counters<R>(
        &mut self,
        key: &str,
        w: WindowId,
        now: Now,
        cap: usize,
        f: impl FnOnce(&mut Counters) -> R,
    ) -> R {
        let geometry = self.params.geometry;
        let newest = self.newest.max(w);
        if let Some(counters) = self.keys.get_mut(key) {
            counters.advance(&geometry, newest);
            return f(counters);
        }
        if self.keys.len() >= cap {
            self.sweep_when_full(now);
        }
        let generation = Seen::generation(&geometry, now);
        if self.keys.len() >= cap {
            self.overflowed
                .get_or_insert_with(|| Seen::new(cap))
                .insert(key, generation);
            let overflow = self.overflow.get_or_insert_with(|| geometry.empty(w));
            overflow.advance(&geometry, newest);
            return f(overflow);
        }
        let seen = self
            .overflowed
            .as_mut()
            .is_some_and(|s| s.contains(key, generation));
        let mut counters = match &mut self.overflow {
            Some(o) if seen => {
                o.advance(&geometry, newest);
                o.clone()
            }
            _ => geometry.empty(newest),
        };
        let r = f(&mut counters);
        self.keys.insert(key.into(), counters);
        r
    }

    /// Takes back unused tokens from `key`'s counters, or from the overflow when the
    /// key is not tracked. Either is safe: a key's counters were copied from the
    /// overflow when it was not tracked before, so they hold at least what the
    /// overflow charged for it; and a key forgotten since holds nothing a draw can
    /// still see.
    /// Counters are first moved up to the table's newest window, so a bucket no draw
    /// can see any more is forgotten rather than refunded into.
    fn refund(&mut self, key: &str, held: Held) {
        let counters = match self.keys.get_mut(key) {
            Some(c) => c,
            None => match &mut self.overflow {
                Some(o) => o,
                None => return,
            },
        };
        counters.advance(&self.params.geometry, self.newest);
        refund(counters, held);
    }

    /// A full table sweeps, but at most every eighth of its sweep interval, so that
    /// a flood of new keys does not walk it on every call.
    fn sweep_when_full(&mut self, now: Now) {
        let gap = sweep_interval_ms(&self.params.geometry) / 8;
        if self
            .full_sweep_ms
            .is_none_or(|last| now.mono_ms >= last + gap)
        {
            self.full_sweep_ms = Some(now.mono_ms);
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Now) {
        let geometry = self.params.geometry;
        let w = geometry.window(now);
        self.keys.retain(|_, c| {
            c.advance(&geometry, w);
            !c.is_empty()
        });
        if let Some(o) = &mut self.overflow {
            o.advance(&geometry, w);
            if o.is_empty() {
                // Nothing it counted can be seen: neither can who it counted.
                self.overflow = None;
                self.overflowed = None;
            }
        }
        self.next_sweep_ms = now.mono_ms + sweep_interval_ms(&geometry);
    }
}

/// Keys charged to the overflow lately: two Bloom filters, the current generation
/// and the one before, so a key is remembered at least as long as a draw can see its
/// charge. A false positive only makes a key start from the overflow's counts.
struct Seen {
    hasher: RandomState,
    generation: i64,
    current: Vec<u64>,
    previous: Vec<u64>,
}

impl Seen {
    /// 16 bits per key the shard can track: few false positives until the overflow
    /// has seen several times more keys than the table holds.
    fn new(cap: usize) -> Self {
        let words = cap
            .saturating_mul(16)
            .clamp(1 << 10, 1 << 30)
            .next_power_of_two()
            / 64;
        Seen {
            hasher: RandomState::new(),
            generation: i64::MIN,
            current: vec![0; words],
            previous: vec![0; words],
        }
    }

    /// A generation lasts as long as a charge stays visible: for a sliding window,
    /// the period plus one bucket plus the lag allowance; for a fixed one, a window
    /// (the previous one is kept as well).
    fn generation(geometry: &Geometry, now: Now) -> i64 {
        match *geometry {
            Geometry::Sliding { bucket_ms, buckets } => {
                let span = (buckets + 1 + LAG_BUCKETS as u64) * bucket_ms;
                (now.mono_ms / span) as i64
            }
            Geometry::Fixed { .. } => geometry.window(now),
        }
    }

    fn insert(&mut self, key: &str, generation: i64) {
        self.rotate(generation);
        for (word, bit) in self.probes(key) {
            self.current[word] |= bit;
        }
    }

    fn contains(&mut self, key: &str, generation: i64) -> bool {
        self.rotate(generation);
        let probes = self.probes(key);
        [&self.current, &self.previous]
            .iter()
            .any(|f| probes.iter().all(|&(word, bit)| f[word] & bit != 0))
    }

    fn rotate(&mut self, generation: i64) {
        if generation <= self.generation {
            return;
        }
        if generation == self.generation + 1 {
            std::mem::swap(&mut self.current, &mut self.previous);
        } else {
            self.previous.fill(0);
        }
        self.current.fill(0);
        self.generation = generation;
    }

    /// Three probes by double hashing, as (word, bit mask).
    fn probes(&self, key: &str) -> [(usize, u64); 3] {
        let h = self.hasher.hash_one(key);
        let (h1, h2) = (h, (h >> 32) | 1);
        let bits = self.current.len() as u64 * 64;
        std::array::from_fn(|i| {
            let b = h1.wrapping_add((i as u64).wrapping_mul(h2)) % bits;
            ((b / 64) as usize, 1 << (b % 64))
        })
    }
}

/// A quarter period, between 100 ms and 10 s: a key is forgotten soon after it goes
/// quiet, and a large table is not walked too often.
fn sweep_interval_ms(geometry: &Geometry) -> u64 {
    (geometry.period_ms() / 4).clamp(100, 10_000)
}

/// The draw itself, on one key's counters.
fn settle(counters: &mut Counters, params: &Params, ask: &Ask, cores: u64) -> Answer {
    counters.advance(&params.geometry, ask.window);
    match (counters, params.geometry) {
        (Counters::Sliding(s), Geometry::Sliding { bucket_ms, buckets }) => {
            let limit = params.calls.unwrap_or(0);
            if !s.accepts(ask.window) {
                return refused(params.geometry.ms_to_end(ask.window, ask.now), 0, 0);
            }
            let avail = limit.saturating_sub(s.used(ask.window, buckets));
            if avail < ask.need_calls {
                let retry = s.retry_after_ms(
                    ask.window,
                    bucket_ms,
                    buckets,
                    limit,
                    ask.need_calls,
                    ask.now.mono_ms,
                );
                return refused(retry, avail, 0);
            }
            let give = lease(avail, ask.need_calls, ask.extra_calls, cores);
            s.charge(ask.window, give);
            Answer {
                outcome: Outcome::Granted {
                    calls: give,
                    bytes: 0,
                },
                calls_left: avail - give,
                bytes_left: 0,
            }
        }
        (Counters::Fixed(f), geometry) => {
            let Some(usage) = f.usage_mut(ask.window) else {
                return refused(geometry.ms_to_end(ask.window, ask.now), 0, 0);
            };
            usage.bytes = usage.bytes.saturating_add(ask.spent_bytes);
            let avail_calls = params.calls.map_or(0, |l| l.saturating_sub(usage.calls));
            let avail_bytes = params.bytes.map_or(0, |l| l.saturating_sub(usage.bytes));
            let fits = params.calls.is_none_or(|_| avail_calls >= ask.need_calls)
                && params.bytes.is_none_or(|_| avail_bytes >= ask.need_bytes);
            if !fits {
                return refused(
                    geometry.ms_to_end(ask.window, ask.now),
                    avail_calls,
                    avail_bytes,
                );
            }
            let calls = match params.calls {
                Some(_) => lease(avail_calls, ask.need_calls, ask.extra_calls, cores),
                None => 0,
            };
            let bytes = match params.bytes {
                Some(_) => lease(avail_bytes, ask.need_bytes, ask.extra_bytes, cores),
                None => 0,
            };
            usage.calls += calls;
            usage.bytes += bytes;
            Answer {
                outcome: Outcome::Granted { calls, bytes },
                calls_left: avail_calls - calls,
                bytes_left: avail_bytes - bytes,
            }
        }
        // A table's counters always match its geometry (`Table::new`).
        (Counters::Sliding(_), Geometry::Fixed { .. }) => refused(1, 0, 0),
    }
}

/// The need, plus as much of the wanted extra as fits in a `1 / cores` share of
/// what is left: the last tokens are spread over cores, not stranded on one.
fn lease(avail: u64, need: u64, extra: u64, cores: u64) -> u64 {
    need + extra.min((avail - need) / cores)
}

fn refused(retry_after_ms: u64, calls_left: u64, bytes_left: u64) -> Answer {
    Answer {
        outcome: Outcome::Refused { retry_after_ms },
        calls_left,
        bytes_left,
    }
}

/// Takes back unused tokens from the window they were charged to, if still kept.
fn refund(counters: &mut Counters, held: Held) {
    match counters {
        Counters::Sliding(s) => s.refund(held.window, held.calls),
        Counters::Fixed(f) => {
            if let Some(u) = f.usage_mut(held.window) {
                u.calls -= held.calls.min(u.calls);
                u.bytes -= held.bytes.min(u.bytes);
            }
        }
    }
}
