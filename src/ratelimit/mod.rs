//! Rate limits and quotas (APIM's `rate-limit`, `rate-limit-by-key`, `quota`,
//! `quota-by-key`): who may make one more call, how many are left, and when to come
//! back. This module owns the counters; it does not evaluate policy expressions, build
//! responses or read the clock. The caller evaluates `counter-key` and
//! `increment-condition`, passes `now`, and turns a [`Decision`] into a 429 (rate) or
//! 403 (quota) with the headers and variables the policy names.
//!
//! # Shape
//!
//! * [`LimitSpec`]: one compiled policy instance (calls and/or bandwidth per period,
//!   sliding or fixed window) with a stable [`LimitId`].
//! * [`NodeLimiter`]: the node-wide allowance, `Send + Sync`, one per process behind an
//!   `Arc`. Its state sits behind sharded mutexes; a core touches it only when its
//!   lease runs out, on a window roll, and from [`CoreShard::reconcile`].
//! * [`CoreShard`]: one per core, `!Send`, owned by the core's executor. It holds, per
//!   (limit, key), a *lease*: budget already drawn from the node. [`CoreShard::check`]
//!   spends from the lease with plain integer arithmetic, no atomics and no locks.
//!
//! ```text
//! let node = NodeLimiter::new(cores, 100_000);              // once, shared by Arc
//! let mut shard = CoreShard::new(node.clone(), core);       // inside each executor
//! let spec = LimitSpec::rate(&identity, 100, Duration::from_secs(60))?;  // at compile
//! match shard.check(&spec, key, 1, now) {                   // per request
//!     Decision::Admitted { remaining } => ..,
//!     Decision::Limited { retry_after, remaining } => .., // 429 + Retry-After
//! }
//! shard.record_bandwidth(&quota, key, response_bytes, now); // after the response
//! shard.reconcile(now);                                     // every 50-100 ms, low priority
//! ```
//!
//! `check(spec, key, count, now)` takes the `increment-count` as `count`; a call whose
//! `increment-condition` is false passes `count = 0` (a peek: refused only when the
//! limit is already spent, counts nothing). A condition evaluated on the response is
//! served by counting at request time and [`CoreShard::refund`]ing if it turns false,
//! so concurrent requests can never overshoot. For `rate-limit` and `quota` (not
//! by-key) the key is the subscription id, or `""` without one.
//!
//! # Exactness: leases
//!
//! A core admits a call only against tokens it holds, and every token it holds was
//! charged to the node's counters when leased, so the node never admits more than the
//! limit whichever cores the calls land on. A draw asks for what the call needs plus a
//! lease of up to `max(1, limit / (cores * 8))`, adapted to what the core used in the
//! last reconcile interval, and never more than `1 / cores` of what the node has left
//! beyond the need, so the last tokens are spread thin instead of stranded. A draw
//! first gives back what the core still held for the key, so a refused draw leaves
//! nothing stranded on the refused core. The core caches a refusal until its retry
//! time or its next reconcile, so a key hammered far over its limit does not take the
//! lock on every request.
//!
//! [`CoreShard::reconcile`] gives every unused token back to the node and drops the
//! leases not used since the previous reconcile. A lease is also valid only in the
//! window (sliding: the bucket) it was charged to; at a roll the core gives it back
//! with its next draw. Unused budget therefore goes home within one reconcile interval,
//! which is why admitted calls reach 99% of the limit under load.
//!
//! # Windows
//!
//! *Sliding (rate-limit).* The period is cut into 40 buckets (fewer for periods under
//! 40 ms; the bucket is rounded up to whole milliseconds). The node keeps, per key,
//! the tokens charged in each bucket. A draw at bucket `k` sees the buckets
//! `k - 40 ..= k` (plus any later one a core ahead in time charged): one bucket more
//! than the period, so that *any* interval of one period contains at most `calls`
//! admitted calls, measured at the time each call was admitted. The price is that in
//! steady overload a key gets `calls` per 41/40 of the period. Leased tokens count as
//! admitted when leased; tokens given back are subtracted from the bucket they were
//! charged to while it is still tracked, and forgotten with it otherwise. A refused
//! call's retry-after is the time until enough buckets leave the window to fit its
//! count (the full period when the count exceeds `calls`).
//!
//! *Fixed (quota).* Windows are aligned to APIM's `first-period-start`, by default
//! 0001-01-01T00:00:00Z, so a one-day quota renews at UTC midnight and every replica
//! agrees on the boundaries. Wall time is the system clock read once when the
//! [`NodeLimiter`] is built, advanced by the monotonic clock (a later wall-clock step
//! does not move windows). Retry-after is the time to the window's end. Bandwidth is
//! charged when the caller reports it, to the window current at that time; a call is
//! admitted while the window's bandwidth is not spent, so the responses in flight at
//! the moment it runs out can overshoot it (as in APIM).
//!
//! Cores are allowed to be a little apart in time: a sliding draw may lag the newest
//! time the key has seen by up to 8 buckets (a fifth of the period) and a fixed draw by
//! one window. A draw further behind than that is refused rather than counted in a window
//! that was already forgotten.
//!
//! # Memory
//!
//! Node side, a key is forgotten once nothing it was charged can be seen by a draw
//! (sliding: a period, a bucket and the lag allowance after its last charge; fixed:
//! the window after its last one). Each core sweeps its share of the lock shards
//! from `reconcile`, each table at most every quarter period (100 ms to 10 s). Core
//! side, a lease not used for a whole reconcile interval is given back and dropped.
//!
//! Each limit tracks at most `max_keys_per_limit` keys on the node (enforced per
//! lock shard, `max_keys_per_limit / shards` each) and as many leases per core. A
//! tracked key is never evicted while it has counts in its window: forgetting them
//! could admit it beyond its limit. When a shard is full it sweeps (at most every
//! eighth of its sweep interval); keys it still has no room for share one *overflow*
//! counter with the limit's numbers, so together they get `calls` per window. Keys
//! the overflow counted are remembered in two rotating Bloom filters (16 bits per
//! key of the shard's cap); when such a key is tracked later it starts from a copy of
//! the overflow's counters, so it can never get more than its limit by having been
//! counted there first. Other new keys start empty (a false positive only starts a
//! key conservatively). Under a flood of distinct keys the node therefore stays
//! within the cap and keeps serving the keys it tracks exactly; new keys get a share
//! of one limit until room frees up as tracked keys go quiet (fails safe, never
//! open). Size the cap above the number of keys active in one period. A core at its
//! lease cap gives back the leases unused since the last reconcile, or all of them.
//!
//! # Identity and reloads
//!
//! [`LimitId`] is a stable 64-bit FNV-1a hash of the policy's identity
//! ([`PolicyIdentity`]: scope, position, `counter-key` expression text) and of its
//! parameters (kind, calls, bandwidth, period, first-period-start). The caller builds
//! the identity; the id is computed by the [`LimitSpec`] constructors. A reload that
//! keeps a policy where it was with the same numbers keeps its counters; one that
//! changes them starts fresh, and the old counters are swept when they go quiet. The
//! hash is stable across builds so it can name counters shared between replicas.

mod node;
mod shard;
mod window;

#[cfg(test)]
mod tests;

pub use node::NodeLimiter;
pub use shard::CoreShard;

use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;
use window::Geometry;

/// APIM's default `first-period-start` (0001-01-01T00:00:00Z) in Unix milliseconds.
pub const APIM_FIRST_PERIOD_START_UNIX_MS: i64 = -62_135_596_800_000;

/// Whether a limit counts in a sliding window (rate) or a fixed one (quota).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `rate-limit`, `rate-limit-by-key`: sliding window, refused with 429.
    RateSliding,
    /// `quota`, `quota-by-key`: fixed window, refused with 403.
    QuotaFixed,
}

impl Kind {
    /// The status APIM answers when this kind of limit refuses a call.
    pub fn refusal_status(self) -> u16 {
        match self {
            Kind::RateSliding => 429,
            Kind::QuotaFixed => 403,
        }
    }
}

/// Where a policy instance sits in the compiled configuration and what it counts by.
/// Together with the limit's numbers it names the counters (see [`LimitId`]).
#[derive(Clone, Copy, Debug)]
pub struct PolicyIdentity<'a> {
    /// The scope holding the policy, e.g. `"api:echo/op:get"` or `"global"`.
    pub scope: &'a str,
    /// The policy's place in the scope, e.g. `"inbound/3"`.
    pub position: &'a str,
    /// The `counter-key` expression text; `""` for `rate-limit` and `quota`.
    pub counter_key: &'a str,
}

/// Stable name of one limit's counters (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitId(u64);

impl LimitId {
    /// The 64-bit value, e.g. to name the counters in a store shared by replicas.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A compiled limit. Built once per config; cannot be invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSpec {
    id: LimitId,
    identity_hash: u64,
    kind: Kind,
    calls: Option<u64>,
    bandwidth_bytes: Option<u64>,
    period: Duration,
    first_period_start_unix_ms: i64,
    params: Params,
}

/// Why a limit could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("renewal-period must be at least 1 ms")]
    PeriodTooShort,
    #[error("renewal-period is too long")]
    PeriodTooLong,
    #[error("a quota needs calls, bandwidth or both")]
    NothingToLimit,
}

impl LimitSpec {
    /// `rate-limit` / `rate-limit-by-key`: `calls` per `period`, sliding window.
    pub fn rate(
        identity: &PolicyIdentity<'_>,
        calls: u64,
        period: Duration,
    ) -> Result<Self, SpecError> {
        Self::build(identity, Kind::RateSliding, Some(calls), None, period, 0)
    }

    /// `quota` / `quota-by-key`: `calls` and/or `bandwidth_bytes` per `period`, fixed
    /// windows aligned to APIM's default first-period-start. APIM's `bandwidth` is in
    /// kilobytes: the caller multiplies by 1024.
    pub fn quota(
        identity: &PolicyIdentity<'_>,
        calls: Option<u64>,
        bandwidth_bytes: Option<u64>,
        period: Duration,
    ) -> Result<Self, SpecError> {
        Self::quota_from(
            identity,
            calls,
            bandwidth_bytes,
            period,
            APIM_FIRST_PERIOD_START_UNIX_MS,
        )
    }

    /// [`LimitSpec::quota`] with an explicit `first-period-start` (Unix milliseconds).
    pub fn quota_from(
        identity: &PolicyIdentity<'_>,
        calls: Option<u64>,
        bandwidth_bytes: Option<u64>,
        period: Duration,
        first_period_start_unix_ms: i64,
    ) -> Result<Self, SpecError> {
        if calls.is_none() && bandwidth_bytes.is_none() {
            return Err(SpecError::NothingToLimit);
        }
        Self::build(
            identity,
            Kind::QuotaFixed,
            calls,
            bandwidth_bytes,
            period,
            first_period_start_unix_ms,
        )
    }

    fn build(
        identity: &PolicyIdentity<'_>,
        kind: Kind,
        calls: Option<u64>,
        bandwidth_bytes: Option<u64>,
        period: Duration,
        first_period_start_unix_ms: i64,
    ) -> Result<Self, SpecError> {
        let period_ms = u64::try_from(period.as_millis()).map_err(|_| SpecError::PeriodTooLong)?;
        if period_ms == 0 {
            return Err(SpecError::PeriodTooShort);
        }
        // Fixed windows compute in i64 milliseconds: keep well inside it.
        if period_ms > i64::MAX as u64 / 4 {
            return Err(SpecError::PeriodTooLong);
        }
        let geometry = match kind {
            Kind::RateSliding => Geometry::sliding(period_ms),
            Kind::QuotaFixed => Geometry::Fixed {
                period_ms,
                anchor_unix_ms: first_period_start_unix_ms,
            },
        };
        let mut h = Fnv::new();
        h.field(identity.scope.as_bytes());
        h.field(identity.position.as_bytes());
        h.field(identity.counter_key.as_bytes());
        let identity_hash = h.0;
        h.field(&[kind as u8]);
        for v in [calls, bandwidth_bytes] {
            h.field(&v.map_or([0; 9], |n| {
                let mut b = [1; 9];
                b[1..].copy_from_slice(&n.to_le_bytes());
                b
            }));
        }
        h.field(&period_ms.to_le_bytes());
        if kind == Kind::QuotaFixed {
            h.field(&first_period_start_unix_ms.to_le_bytes());
        }
        Ok(LimitSpec {
            id: LimitId(h.0),
            identity_hash,
            kind,
            calls,
            bandwidth_bytes,
            period,
            first_period_start_unix_ms,
            params: Params {
                geometry,
                calls,
                bytes: bandwidth_bytes,
            },
        })
    }

    pub fn id(&self) -> LimitId {
        self.id
    }

    /// Hash of the [`PolicyIdentity`] alone (same policy, whatever its numbers).
    pub fn identity_hash(&self) -> u64 {
        self.identity_hash
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn calls(&self) -> Option<u64> {
        self.calls
    }

    pub fn bandwidth_bytes(&self) -> Option<u64> {
        self.bandwidth_bytes
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn first_period_start_unix_ms(&self) -> i64 {
        self.first_period_start_unix_ms
    }
}

/// What is left of a limit; `None` for a dimension the limit does not count.
///
/// An estimate: the tokens this core holds plus what the node had not yet leased at
/// this core's last visit. Exact on a single core; otherwise never off by more than
/// what other cores hold or drew since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    pub calls: Option<u64>,
    pub bytes: Option<u64>,
}

/// The answer to [`CoreShard::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The call may proceed; `remaining` is after counting it.
    Admitted { remaining: Remaining },
    /// Refuse with [`Kind::refusal_status`]; `retry_after` is when the limit is
    /// expected to fit this call again (sliding: when enough of the window has
    /// passed; fixed: the window's end).
    Limited {
        retry_after: Duration,
        remaining: Remaining,
    },
}

impl Decision {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Decision::Admitted { .. })
    }

    pub fn remaining(&self) -> Remaining {
        match *self {
            Decision::Admitted { remaining } | Decision::Limited { remaining, .. } => remaining,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match *self {
            Decision::Admitted { .. } => None,
            Decision::Limited { retry_after, .. } => Some(retry_after),
        }
    }

    /// Retry-after in whole seconds for the `Retry-After` header and
    /// `retry-after-variable-name`: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|d| {
            let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            s.max(1)
        })
    }
}

/// What the counters need from a spec, shared by node and cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub geometry: Geometry,
    pub calls: Option<u64>,
    pub bytes: Option<u64>,
}

impl Params {
    /// Lease size a core asks for at most: small enough that budget stranded on idle
    /// cores is a small share of the limit.
    pub fn base_lease(limit: u64, cores: usize) -> u64 {
        (limit / (cores as u64).saturating_mul(8)).max(1)
    }
}

/// 64-bit FNV-1a with length-prefixed fields: stable across builds and platforms,
/// unlike `std`'s hashers.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.bytes(b"portico.ratelimit.v1");
        h
    }

    fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `LimitId`s are already hashes: maps keyed by them skip rehashing. Only ids from
/// the configuration go in such maps, never request data.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &x in bytes {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

pub(crate) type IdMap<V> = std::collections::HashMap<LimitId, V, BuildHasherDefault<IdHasher>>;
