//! One core's side of the limits: leases of budget drawn from the [`NodeLimiter`],
//! spent per request with plain integers. Owned by the core's executor and never
//! shared; it takes a node lock only when a lease runs out or rolls over, and in
//! [`CoreShard::reconcile`].

use super::node::{Answer, Ask, Held, NodeLimiter, Outcome, Return};
use super::window::{Now, WindowId};
use super::{Decision, IdMap, LimitId, LimitSpec, Params, Remaining};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A core's leases. `!Send`: build it on the core that uses it.
pub struct CoreShard {
    node: Arc<NodeLimiter>,
    core: usize,
    /// Latest time seen, so that this core's time never goes back.
    clock_ms: u64,
    limits: IdMap<CoreLimit>,
    /// Refunds for tokens no longer in a lease, sent home at the next reconcile.
    pending: Vec<Return>,
    /// The reconciler, asleep while the shard holds nothing; woken by the next use.
    on_use: Option<std::task::Waker>,
    _not_send: PhantomData<Rc<()>>,
}

impl CoreShard {
    /// The shard of core `core` (of `node.cores()`; it picks which lock shards this
    /// core sweeps).
    pub fn new(node: Arc<NodeLimiter>, core: usize) -> Self {
        CoreShard {
            node,
            core,
            clock_ms: 0,
            limits: IdMap::default(),
            pending: Vec::new(),
            on_use: None,
            _not_send: PhantomData,
        }
    }

    pub fn core(&self) -> usize {
        self.core
    }

    /// True when the shard holds no lease and owes no refund: reconciling would do
    /// nothing for this core.
    pub fn is_idle(&self) -> bool {
        self.limits.is_empty() && self.pending.is_empty()
    }

    /// Has `waker` woken at the next use of the shard (so an idle core's reconciler
    /// sleeps instead of ticking).
    pub fn wake_on_use(&mut self, waker: &std::task::Waker) {
        self.on_use = Some(waker.clone());
    }

    fn used(&mut self) {
        if let Some(w) = self.on_use.take() {
            w.wake();
        }
    }

    pub fn node(&self) -> &Arc<NodeLimiter> {
        &self.node
    }

    /// Counts `count` calls (`increment-count`) for `key` under `spec`, or with
    /// `count = 0` only asks whether one more call would fit. See [`Decision`].
    pub fn check(&mut self, spec: &LimitSpec, key: &str, count: u64, now: Instant) -> Decision {
        self.used();
        let now = self.now(now);
        let params = spec.params;
        let window = params.geometry.window(now);
        let limit = limit_mut(&mut self.limits, spec.id, &params);
        if let Some(lease) = limit.leases.get_mut(key) {
            if let Some(decision) = lease.spend(&params, count, window, now) {
                return decision;
            }
        }
        let cores = self.node.cores();
        let lease = limit.lease_mut(&self.node, spec.id, key, window);
        let give_back = lease.take(window);
        let need_calls = if params.calls.is_some() {
            count.max(1)
        } else {
            0
        };
        let need_bytes = u64::from(params.bytes.is_some());
        let ask = Ask {
            now,
            window,
            give_back,
            need_calls,
            need_bytes,
            extra_calls: lease.grant_calls.saturating_sub(need_calls),
            extra_bytes: lease.grant_bytes.saturating_sub(need_bytes),
            spent_bytes: 0,
        };
        let answer = self.node.exchange(spec.id, &params, key, &ask);
        lease.heard(&answer);
        match answer.outcome {
            Outcome::Granted { calls, bytes } => {
                lease.held.calls = calls - need_calls.min(count);
                lease.held.bytes = bytes;
                lease.used_calls += count;
                lease.refused = None;
                // Ran dry within a reconcile interval: draw more next time.
                lease.grant_calls = grow(lease.grant_calls, params.calls, cores);
                lease.grant_bytes = grow(lease.grant_bytes, params.bytes, cores);
                Decision::Admitted {
                    remaining: lease.remaining(&params),
                }
            }
            Outcome::Refused { retry_after_ms } => {
                lease.refused = Some(Refusal {
                    window,
                    need: count.max(1),
                    retry_at_ms: now.mono_ms.saturating_add(retry_after_ms),
                });
                Decision::Limited {
                    retry_after: Duration::from_millis(retry_after_ms),
                    remaining: lease.remaining(&params),
                }
            }
        }
    }

    /// Charges `bytes` of a response to `key`'s bandwidth quota, in the window current
    /// now. Does nothing for a limit without bandwidth.
    pub fn record_bandwidth(&mut self, spec: &LimitSpec, key: &str, bytes: u64, now: Instant) {
        self.used();
        let params = spec.params;
        if params.bytes.is_none() || bytes == 0 {
            return;
        }
        let now = self.now(now);
        let window = params.geometry.window(now);
        let limit = limit_mut(&mut self.limits, spec.id, &params);
        if let Some(lease) = limit.leases.get_mut(key) {
            if lease.held.window == window && lease.held.bytes >= bytes {
                lease.held.bytes -= bytes;
                lease.used_bytes += bytes;
                lease.touched = true;
                return;
            }
        }
        let lease = limit.lease_mut(&self.node, spec.id, key, window);
        lease.used_bytes += bytes;
        let (give_back, spent_bytes) = if lease.held.window == window {
            let spent = bytes - lease.held.bytes;
            lease.held.bytes = 0;
            (None, spent)
        } else {
            (lease.take(window), bytes)
        };
        let ask = Ask {
            now,
            window,
            give_back,
            need_calls: 0,
            need_bytes: 0,
            extra_calls: 0,
            extra_bytes: lease.grant_bytes,
            spent_bytes,
        };
        let answer = self.node.exchange(spec.id, &params, key, &ask);
        lease.heard(&answer);
        if let Outcome::Granted { calls, bytes } = answer.outcome {
            lease.held.calls += calls;
            lease.held.bytes += bytes;
        }
    }

    /// Uncounts `count` calls admitted at `admitted_at` (for an `increment-condition`
    /// that turned out false on the response). Nothing happens if their window is
    /// over. Tokens still in this core's lease are reused at once; others go home at
    /// the next reconcile.
    pub fn refund(
        &mut self,
        spec: &LimitSpec,
        key: &str,
        count: u64,
        admitted_at: Instant,
        now: Instant,
    ) {
        let params = spec.params;
        if count == 0 || params.calls.is_none() {
            return;
        }
        let now = self.now(now);
        let current = params.geometry.window(now);
        let charged = params
            .geometry
            .window(self.node.stamp(self.node.mono_ms(admitted_at)));
        if charged > current || (charged != current && spec.kind == super::Kind::QuotaFixed) {
            return;
        }
        let limit = limit_mut(&mut self.limits, spec.id, &params);
        if let Some(lease) = limit.leases.get_mut(key) {
            if lease.held.window == charged {
                lease.held.calls += count;
                lease.used_calls = lease.used_calls.saturating_sub(count);
                return;
            }
        }
        self.pending.push(Return {
            shard: self.node.shard_of(spec.id, key),
            id: spec.id,
            key: key.into(),
            held: Held {
                window: charged,
                calls: count,
                bytes: 0,
            },
        });
    }

    /// Periodic housekeeping (every 50-100 ms, from a low-priority task): gives every
    /// unused token back to the node, sizes the next leases on what each key used
    /// since the last reconcile, drops the leases not used since then, clears cached
    /// refusals, and sweeps this core's share of the node.
    pub fn reconcile(&mut self, now: Instant) {
        let now = self.now(now);
        let cores = self.node.cores();
        let mut returns = std::mem::take(&mut self.pending);
        for (&id, limit) in self.limits.iter_mut() {
            let params = limit.params;
            limit.leases.retain(|key, lease| {
                if !lease.held.is_empty() {
                    returns.push(Return {
                        shard: self.node.shard_of(id, key),
                        id,
                        key: key.clone(),
                        held: lease.held,
                    });
                    lease.held.calls = 0;
                    lease.held.bytes = 0;
                }
                lease.refused = None;
                lease.grant_calls = fit(lease.used_calls, params.calls, cores);
                lease.grant_bytes = fit(lease.used_bytes, params.bytes, cores);
                lease.used_calls = 0;
                lease.used_bytes = 0;
                std::mem::take(&mut lease.touched)
            });
        }
        self.limits.retain(|_, l| !l.leases.is_empty());
        returns.sort_unstable_by_key(|r| r.shard);
        self.node.give_back(&returns);
        self.node.maintain(now, self.core);
    }

    /// Leases this core holds, over all limits (for tests and metrics).
    pub fn tracked_leases(&self) -> usize {
        self.limits.values().map(|l| l.leases.len()).sum()
    }

    fn now(&mut self, at: Instant) -> Now {
        self.clock_ms = self.clock_ms.max(self.node.mono_ms(at));
        self.node.stamp(self.clock_ms)
    }
}

impl Drop for CoreShard {
    /// A core going away hands its budget back.
    fn drop(&mut self) {
        let mut returns = std::mem::take(&mut self.pending);
        for (&id, limit) in &self.limits {
            for (key, lease) in &limit.leases {
                if !lease.held.is_empty() {
                    returns.push(Return {
                        shard: self.node.shard_of(id, key),
                        id,
                        key: key.clone(),
                        held: lease.held,
                    });
                }
            }
        }
        returns.sort_unstable_by_key(|r| r.shard);
        self.node.give_back(&returns);
    }
}

/// One limit's leases on this core.
struct CoreLimit {
    params: Params,
    leases: HashMap<Box<str>, Lease>,
}

/// Budget this core holds for one key, and what it knows about the rest.
#[derive(Debug)]
struct Lease {
    /// Tokens in hand and the window (sliding: bucket) they were charged to and may
    /// be spent in.
    held: Held,
    /// What the node had not leased at our last visit (for `Remaining`).
    calls_left: u64,
    bytes_left: u64,
    /// Lease size to ask for next.
    grant_calls: u64,
    grant_bytes: u64,
    /// Spent since the last reconcile.
    used_calls: u64,
    used_bytes: u64,
    touched: bool,
    refused: Option<Refusal>,
}

/// A refusal remembered until its retry time or the next reconcile, so a key far
/// over its limit does not take the node lock on every request.
#[derive(Clone, Copy, Debug)]
struct Refusal {
    window: WindowId,
    need: u64,
    retry_at_ms: u64,
}

impl CoreLimit {
    /// `key`'s lease, created if needed; at the cap, leases unused since the last
    /// reconcile go home first, and all of them if that is not enough.
    fn lease_mut(
        &mut self,
        node: &NodeLimiter,
        id: LimitId,
        key: &str,
        window: WindowId,
    ) -> &mut Lease {
        let cap = node.max_keys_per_limit();
        if self.leases.len() >= cap && !self.leases.contains_key(key) {
            let mut returns = Vec::new();
            let mut shed = |k: &str, lease: &Lease| {
                if !lease.held.is_empty() {
                    returns.push(Return {
                        shard: node.shard_of(id, k),
                        id,
                        key: k.into(),
                        held: lease.held,
                    });
                }
            };
            self.leases.retain(|k, lease| {
                if !lease.touched {
                    shed(k, lease);
                }
                lease.touched
            });
            if self.leases.len() >= cap {
                self.leases.iter().for_each(|(k, l)| shed(k, l));
                self.leases.clear();
            }
            returns.sort_unstable_by_key(|r| r.shard);
            node.give_back(&returns);
        }
        let lease = self.leases.entry(key.into()).or_insert_with(|| Lease {
            held: Held {
                window,
                calls: 0,
                bytes: 0,
            },
            calls_left: 0,
            bytes_left: 0,
            grant_calls: 1,
            grant_bytes: 1,
            used_calls: 0,
            used_bytes: 0,
            touched: false,
            refused: None,
        });
        lease.touched = true;
        lease
    }
}

impl Lease {
    /// The fast path: decides from the lease alone, or `None` to ask the node.
    fn spend(
        &mut self,
        params: &Params,
        count: u64,
        window: WindowId,
        now: Now,
    ) -> Option<Decision> {
        if self.held.window != window {
            return None;
        }
        self.touched = true;
        let need = count.max(1);
        let calls_ok = params.calls.is_none() || self.held.calls >= need;
        let bytes_ok = params.bytes.is_none() || self.held.bytes >= 1;
        if calls_ok && bytes_ok {
            if params.calls.is_some() {
                self.held.calls -= count;
                self.used_calls += count;
            }
            return Some(Decision::Admitted {
                remaining: self.remaining(params),
            });
        }
        match self.refused {
            Some(r) if r.window == window && need >= r.need && now.mono_ms < r.retry_at_ms => {
                Some(Decision::Limited {
                    retry_after: Duration::from_millis(r.retry_at_ms - now.mono_ms),
                    remaining: self.remaining(params),
                })
            }
            _ => None,
        }
    }

    /// Empties the lease for a visit to the node, returning what it held, and moves
    /// it to `window`.
    fn take(&mut self, window: WindowId) -> Option<Held> {
        let held = std::mem::replace(
            &mut self.held,
            Held {
                window,
                calls: 0,
                bytes: 0,
            },
        );
        (!held.is_empty()).then_some(held)
    }

    fn heard(&mut self, answer: &Answer) {
        self.calls_left = answer.calls_left;
        self.bytes_left = answer.bytes_left;
    }

    fn remaining(&self, params: &Params) -> Remaining {
        Remaining {
            calls: params
                .calls
                .map(|_| self.held.calls.saturating_add(self.calls_left)),
            bytes: params
                .bytes
                .map(|_| self.held.bytes.saturating_add(self.bytes_left)),
        }
    }
}

fn limit_mut<'a>(
    limits: &'a mut IdMap<CoreLimit>,
    id: LimitId,
    params: &Params,
) -> &'a mut CoreLimit {
    let limit = limits.entry(id).or_insert_with(|| CoreLimit {
        params: *params,
        leases: HashMap::new(),
    });
    if limit.params != *params {
        // Same id, other numbers: only a hash collision. The node resets its table
        // too, so the old leases are worthless.
        limit.params = *params;
        limit.leases.clear();
    }
    limit
}

/// The next lease size after running dry: double, up to the base lease.
fn grow(grant: u64, limit: Option<u64>, cores: usize) -> u64 {
    limit.map_or(1, |l| {
        grant.saturating_mul(2).min(Params::base_lease(l, cores))
    })
}

/// The lease size for the next interval: what was used in the last, within bounds.
fn fit(used: u64, limit: Option<u64>, cores: usize) -> u64 {
    limit.map_or(1, |l| used.clamp(1, Params::base_lease(l, cores)))
}
