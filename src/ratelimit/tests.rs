//! Behaviour through the public API, on simulated time: windows, retry-after,
//! remaining counts, increment-count, bandwidth, refunds, identity, eviction and the
//! key cap; then the exactness tests, one OS thread per core shard.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn ident(position: &str) -> PolicyIdentity<'_> {
    PolicyIdentity {
        scope: "test",
        position,
        counter_key: "",
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A node whose origin is Unix time `unix_ms`, and a way to name instants after it.
struct Sim {
    node: Arc<NodeLimiter>,
    origin: Instant,
}

impl Sim {
    fn new(cores: usize, max_keys: usize, unix_ms: i64) -> Self {
        let origin = Instant::now();
        Sim {
            node: NodeLimiter::with_clock(cores, max_keys, origin, unix_ms),
            origin,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    fn core(&self, core: usize) -> CoreShard {
        CoreShard::new(self.node.clone(), core)
    }
}

fn calls(n: u64) -> Remaining {
    Remaining {
        calls: Some(n),
        bytes: None,
    }
}

fn admitted(remaining: Remaining) -> Decision {
    Decision::Admitted { remaining }
}

fn limited(retry_ms: u64, remaining: Remaining) -> Decision {
    Decision::Limited {
        retry_after: ms(retry_ms),
        remaining,
    }
}

// ---- sliding windows (rate-limit) ----

#[test]
fn rate_counts_down_then_refuses_until_the_first_call_leaves_the_window() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 5, secs(10)).unwrap();
    for i in 0..5 {
        let d = core.check(&spec, "k", 1, sim.at(100 * i));
        assert_eq!(d, admitted(calls(4 - i)), "call {i}");
    }
    // Buckets are 250 ms; bucket 0 (three calls) is seen until bucket 40 inclusive.
    let d = core.check(&spec, "k", 1, sim.at(1_000));
    assert_eq!(d, limited(10_250 - 1_000, calls(0)));
    assert_eq!(d.retry_after_secs(), Some(10));
    assert_eq!(spec.kind().refusal_status(), 429);
    // Another key has its own window.
    assert!(core.check(&spec, "other", 1, sim.at(1_000)).is_admitted());
}

#[test]
fn sliding_window_admits_again_as_old_calls_leave() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 4, secs(10)).unwrap();
    for t in [0, 0, 5_000, 5_000] {
        assert!(core.check(&spec, "k", 1, sim.at(t)).is_admitted());
    }
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(9_999)),
        limited(251, calls(0))
    );
    // Cached on the core until the retry time: same answer without the node.
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(10_249)),
        limited(1, calls(0))
    );
    // The two calls at t=0 have left; the two at t=5 s have not.
    assert!(core.check(&spec, "k", 1, sim.at(10_250)).is_admitted());
    assert!(core.check(&spec, "k", 1, sim.at(10_300)).is_admitted());
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(10_400)),
        limited(15_250 - 10_400, calls(0))
    );
    assert!(core.check(&spec, "k", 2, sim.at(15_250)).is_admitted());
}

#[test]
fn increment_count_above_one_spends_several_calls() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 10, secs(10)).unwrap();
    assert_eq!(core.check(&spec, "k", 4, sim.at(0)), admitted(calls(6)));
    assert_eq!(core.check(&spec, "k", 4, sim.at(1)), admitted(calls(2)));
    // Four do not fit in two; the two are still there for a smaller count.
    assert_eq!(
        core.check(&spec, "k", 4, sim.at(2)),
        limited(10_250 - 2, calls(2))
    );
    assert_eq!(core.check(&spec, "k", 2, sim.at(3)), admitted(calls(0)));
    // More than the limit never fits: retry after a period.
    let d = core.check(&spec, "fresh", 11, sim.at(4));
    assert_eq!(d, limited(10_000, calls(10)));
}

#[test]
fn a_peek_counts_nothing_but_is_refused_once_the_limit_is_spent() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 2, secs(10)).unwrap();
    assert_eq!(core.check(&spec, "k", 0, sim.at(0)), admitted(calls(2)));
    assert_eq!(core.check(&spec, "k", 0, sim.at(1)), admitted(calls(2)));
    assert_eq!(core.check(&spec, "k", 1, sim.at(2)), admitted(calls(1)));
    assert_eq!(core.check(&spec, "k", 1, sim.at(3)), admitted(calls(0)));
    assert!(!core.check(&spec, "k", 0, sim.at(4)).is_admitted());
}

#[test]
fn short_periods_use_millisecond_buckets() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 1, ms(10)).unwrap();
    assert!(core.check(&spec, "k", 1, sim.at(0)).is_admitted());
    // Ten 1 ms buckets, plus the one being in: free again at 11 ms.
    assert_eq!(core.check(&spec, "k", 1, sim.at(3)), limited(8, calls(0)));
    assert!(core.check(&spec, "k", 1, sim.at(11)).is_admitted());
}

// ---- fixed windows (quota) ----

#[test]
fn quota_resets_at_the_window_boundary() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::quota_from(&ident("q"), Some(3), None, secs(60), 0).unwrap();
    for i in 0..3 {
        assert_eq!(
            core.check(&spec, "k", 1, sim.at(10_000 + i)),
            admitted(calls(2 - i))
        );
    }
    let d = core.check(&spec, "k", 1, sim.at(10_003));
    assert_eq!(d, limited(49_997, calls(0)));
    assert_eq!(spec.kind().refusal_status(), 403);
    let d = core.check(&spec, "k", 1, sim.at(59_999));
    assert_eq!(d, limited(1, calls(0)));
    assert_eq!(d.retry_after_secs(), Some(1));
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(60_000)),
        admitted(calls(2))
    );
}

#[test]
fn quota_windows_follow_apim_first_period_start() {
    // 2024-05-01T13:00:00Z; a one-day quota renews at UTC midnight, 11 h later.
    let sim = Sim::new(1, 1000, 1_714_568_400_000);
    let mut core = sim.core(0);
    let spec = LimitSpec::quota(&ident("q"), Some(1), None, secs(86_400)).unwrap();
    assert!(core.check(&spec, "k", 1, sim.at(0)).is_admitted());
    let d = core.check(&spec, "k", 1, sim.at(0));
    assert_eq!(d.retry_after_secs(), Some(11 * 3600));
    assert!(core
        .check(&spec, "k", 1, sim.at(11 * 3_600_000))
        .is_admitted());
    // An explicit first-period-start moves the boundary (and names other counters).
    let shifted = LimitSpec::quota_from(
        &ident("q"),
        Some(1),
        None,
        secs(86_400),
        1_714_568_400_000 - 1_000,
    )
    .unwrap();
    assert_ne!(shifted.id(), spec.id());
    let mut core = sim.core(0);
    assert!(core.check(&shifted, "k", 1, sim.at(0)).is_admitted());
    let d = core.check(&shifted, "k", 1, sim.at(0));
    assert_eq!(d.retry_after(), Some(ms(86_400_000 - 1_000)));
}

#[test]
fn bandwidth_quota_counts_reported_bytes_and_refuses_once_spent() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::quota_from(&ident("q"), None, Some(1000), secs(60), 0).unwrap();
    let bytes = |n| Remaining {
        calls: None,
        bytes: Some(n),
    };
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(1_000)),
        admitted(bytes(1000))
    );
    core.record_bandwidth(&spec, "k", 600, sim.at(1_100));
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(1_200)),
        admitted(bytes(400))
    );
    // The response in flight overshoots; the next call is refused until renewal.
    core.record_bandwidth(&spec, "k", 600, sim.at(1_300));
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(2_000)),
        limited(58_000, bytes(0))
    );
    assert_eq!(
        core.check(&spec, "k", 1, sim.at(60_000)),
        admitted(bytes(1000))
    );
    // A limit without bandwidth ignores reports.
    let rate = LimitSpec::rate(&ident("r"), 1, secs(1)).unwrap();
    core.record_bandwidth(&rate, "k", 1 << 40, sim.at(60_000));
    assert!(core.check(&rate, "k", 1, sim.at(60_000)).is_admitted());
}

#[test]
fn quota_with_calls_and_bandwidth_refuses_on_either() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::quota_from(&ident("q"), Some(3), Some(100), secs(60), 0).unwrap();
    let both = |c, b| Remaining {
        calls: Some(c),
        bytes: Some(b),
    };
    assert_eq!(core.check(&spec, "a", 1, sim.at(0)), admitted(both(2, 100)));
    core.record_bandwidth(&spec, "a", 100, sim.at(1));
    assert_eq!(
        core.check(&spec, "a", 1, sim.at(2)),
        limited(59_998, both(2, 0))
    );
    for i in 0..3 {
        assert_eq!(
            core.check(&spec, "b", 1, sim.at(3)),
            admitted(both(2 - i, 100))
        );
    }
    assert_eq!(
        core.check(&spec, "b", 1, sim.at(4)),
        limited(59_996, both(0, 100))
    );
}

// ---- refunds ----

#[test]
fn a_refund_gives_the_call_back() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 2, secs(10)).unwrap();
    let t0 = sim.at(0);
    assert!(core.check(&spec, "k", 1, t0).is_admitted());
    assert!(core.check(&spec, "k", 1, t0).is_admitted());
    assert!(!core.check(&spec, "k", 1, sim.at(100)).is_admitted());
    // Same bucket: straight back into the lease.
    core.refund(&spec, "k", 1, t0, sim.at(150));
    assert!(core.check(&spec, "k", 1, sim.at(200)).is_admitted());
    assert!(!core.check(&spec, "k", 1, sim.at(1_000)).is_admitted());
    // The lease has moved on to a later bucket: back to the node at the next reconcile.
    core.refund(&spec, "k", 1, t0, sim.at(5_000));
    assert!(!core.check(&spec, "k", 1, sim.at(5_000)).is_admitted());
    core.reconcile(sim.at(5_050));
    assert!(core.check(&spec, "k", 1, sim.at(5_100)).is_admitted());
    assert!(!core.check(&spec, "k", 1, sim.at(5_100)).is_admitted());
}

// ---- identity ----

#[test]
fn counters_survive_a_reload_that_keeps_the_policy_and_its_numbers() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let before = LimitSpec::rate(&ident("inbound/0"), 2, secs(60)).unwrap();
    assert!(core.check(&before, "k", 2, sim.at(0)).is_admitted());
    let reloaded = LimitSpec::rate(&ident("inbound/0"), 2, secs(60)).unwrap();
    assert_eq!(reloaded.id(), before.id());
    assert!(!core.check(&reloaded, "k", 1, sim.at(1)).is_admitted());
    // A new core shard (say, after a restart of the executor) sees the same node.
    drop(core);
    let mut core = sim.core(0);
    assert!(!core.check(&reloaded, "k", 1, sim.at(2)).is_admitted());
    // New numbers or a new place are new counters.
    for other in [
        LimitSpec::rate(&ident("inbound/0"), 3, secs(60)).unwrap(),
        LimitSpec::rate(&ident("inbound/0"), 2, secs(61)).unwrap(),
        LimitSpec::rate(&ident("inbound/1"), 2, secs(60)).unwrap(),
        LimitSpec::quota(&ident("inbound/0"), Some(2), None, secs(60)).unwrap(),
    ] {
        assert_ne!(other.id(), before.id());
        assert!(core.check(&other, "k", 1, sim.at(3)).is_admitted());
    }
    let by_key = PolicyIdentity {
        counter_key: "@(context.Request.IpAddress)",
        ..ident("inbound/0")
    };
    assert_ne!(
        LimitSpec::rate(&by_key, 2, secs(60)).unwrap().id(),
        before.id()
    );
}

#[test]
fn limit_ids_are_stable_across_builds() {
    let identity = PolicyIdentity {
        scope: "api:echo",
        position: "inbound/0",
        counter_key: "@(context.Request.IpAddress)",
    };
    let spec = LimitSpec::rate(&identity, 100, secs(60)).unwrap();
    // Pinned: changing it orphans counters shared with other replicas.
    assert_eq!(spec.id().as_u64(), PINNED_ID);
    assert_eq!(spec.identity_hash(), PINNED_IDENTITY);
}

const PINNED_ID: u64 = 1403192099939215377;
const PINNED_IDENTITY: u64 = 9687867259284931741;

#[test]
fn specs_that_cannot_work_are_rejected() {
    let i = ident("x");
    assert_eq!(
        LimitSpec::quota(&i, None, None, secs(60)),
        Err(SpecError::NothingToLimit)
    );
    assert_eq!(
        LimitSpec::rate(&i, 1, Duration::ZERO),
        Err(SpecError::PeriodTooShort)
    );
    assert_eq!(
        LimitSpec::rate(&i, 1, Duration::from_micros(999)),
        Err(SpecError::PeriodTooShort)
    );
    assert_eq!(
        LimitSpec::rate(&i, 1, Duration::MAX),
        Err(SpecError::PeriodTooLong)
    );
}

// ---- several cores on one thread ----

#[test]
fn unused_leases_go_home_at_reconcile_for_other_cores() {
    let sim = Sim::new(2, 1000, 0);
    let (mut a, mut b) = (sim.core(0), sim.core(1));
    let spec = LimitSpec::rate(&ident("a"), 100, secs(10)).unwrap();
    // A's leases grow 1, 2, 4, then 6 (100 / (2 cores * 8)): ten calls leave 3 held.
    for _ in 0..10 {
        assert!(a.check(&spec, "k", 1, sim.at(0)).is_admitted());
    }
    let mut on_b = 0;
    while b.check(&spec, "k", 1, sim.at(10)).is_admitted() {
        on_b += 1;
    }
    assert_eq!(on_b, 87);
    a.reconcile(sim.at(50));
    b.reconcile(sim.at(50));
    while b.check(&spec, "k", 1, sim.at(60)).is_admitted() {
        on_b += 1;
    }
    assert_eq!(10 + on_b, 100);
    assert!(!a.check(&spec, "k", 1, sim.at(60)).is_admitted());
}

#[test]
fn a_lease_is_only_spent_in_the_bucket_it_was_charged_to() {
    let sim = Sim::new(2, 1000, 0);
    let (mut a, mut b) = (sim.core(0), sim.core(1));
    let spec = LimitSpec::rate(&ident("a"), 100, secs(10)).unwrap();
    for _ in 0..10 {
        assert!(a.check(&spec, "k", 1, sim.at(0)).is_admitted());
    }
    // A holds 3 tokens charged to bucket 0. In bucket 1 it gives them back with its
    // next draw (of 6: 89 left with those 6) rather than spending them there.
    assert_eq!(
        a.check(&spec, "k", 1, sim.at(250)).remaining().calls,
        Some(89)
    );
    let mut on_b = 0;
    while b.check(&spec, "k", 1, sim.at(300)).is_admitted() {
        on_b += 1;
    }
    assert_eq!(on_b, 84);
    // A's 5 left are spendable in bucket 1 only.
    let mut on_a = 0;
    while a.check(&spec, "k", 1, sim.at(400)).is_admitted() {
        on_a += 1;
    }
    assert_eq!(on_a, 5);
    assert_eq!(10 + 1 + on_b + on_a, 100);
}

#[test]
fn a_core_far_behind_in_time_is_refused_rather_than_miscounted() {
    let sim = Sim::new(2, 1000, 0);
    let (mut a, mut b) = (sim.core(0), sim.core(1));
    let spec = LimitSpec::rate(&ident("a"), 100, secs(10)).unwrap();
    assert!(a.check(&spec, "k", 1, sim.at(5_000)).is_admitted());
    // Four buckets behind: fine. Twelve (more than 8): refused.
    assert!(b.check(&spec, "k", 1, sim.at(4_000)).is_admitted());
    let mut c = sim.core(1);
    assert!(!c.check(&spec, "k", 1, sim.at(2_000)).is_admitted());
    // The newest time is kept per lock shard, so a key with no history in a shard the
    // lagging core reaches first starts from its own time: nothing of it can be
    // miscounted, since none of its calls were counted in a later window.
}

// ---- memory ----

#[test]
fn quiet_keys_are_forgotten_on_both_sides() {
    let sim = Sim::new(1, 1000, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 5, secs(1)).unwrap();
    for i in 0..100 {
        assert!(core
            .check(&spec, &format!("k{i}"), 1, sim.at(0))
            .is_admitted());
    }
    assert_eq!(sim.node.tracked_keys(spec.id()), 100);
    assert_eq!(core.tracked_leases(), 100);
    core.reconcile(sim.at(50));
    assert_eq!(core.tracked_leases(), 100, "used since the last reconcile");
    core.reconcile(sim.at(100));
    assert_eq!(core.tracked_leases(), 0, "idle for a whole interval");
    core.reconcile(sim.at(1_000));
    assert_eq!(sim.node.tracked_keys(spec.id()), 100, "still in the window");
    // Bucket 0 is seen until bucket 40 and kept 8 more for laggards: 1,225 ms.
    core.reconcile(sim.at(1_300));
    assert_eq!(sim.node.tracked_keys(spec.id()), 0);
}

#[test]
fn a_million_distinct_keys_stay_under_the_cap() {
    const CAP: usize = 10_000;
    let sim = Sim::new(1, CAP, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 5, secs(1)).unwrap();
    let (mut max_node, mut max_core, mut admitted) = (0, 0, 0u64);
    let mut next_reconcile = 50_000_000;
    let mut key = String::new();
    // One call per key, 100,000 new keys a second for ten seconds.
    for i in 0..1_000_000u64 {
        let t = i * 10_000;
        let at = sim.origin + Duration::from_nanos(t);
        if t >= next_reconcile {
            core.reconcile(at);
            next_reconcile += 50_000_000;
        }
        key.clear();
        key.push_str("client-");
        key.push_str(&i.to_string());
        admitted += u64::from(core.check(&spec, &key, 1, at).is_admitted());
        if i % 10_000 == 0 {
            max_node = max_node.max(sim.node.tracked_keys(spec.id()));
            max_core = max_core.max(core.tracked_leases());
        }
    }
    assert!(max_node <= CAP, "node tracked {max_node}");
    assert!(max_core <= CAP, "core tracked {max_core}");
    // The table does fill (10,000 keys in 100 ms): the keys past it share one limit,
    // and the table takes new keys again as old ones go quiet.
    assert!(max_node > CAP / 2, "node tracked {max_node}");
    assert!(admitted > 50_000, "admitted {admitted}");
    // Then, quiet, everything is forgotten.
    core.reconcile(sim.at(20_000));
    core.reconcile(sim.at(20_100));
    sim.node.sweep(sim.at(20_100));
    assert_eq!(sim.node.tracked_keys(spec.id()), 0);
    assert_eq!(core.tracked_leases(), 0);
}

#[test]
fn a_core_at_its_lease_cap_gives_leases_back_before_taking_more() {
    let sim = Sim::new(1, 8, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 100, secs(10)).unwrap();
    // Leases of 1, 2, 4, 8 (base 100 / 8): ten calls leave 5 held.
    for _ in 0..10 {
        assert!(core.check(&spec, "hot", 1, sim.at(0)).is_admitted());
    }
    for i in 0..20 {
        core.check(&spec, &format!("k{i}"), 1, sim.at(1));
        assert!(core.tracked_leases() <= 8);
    }
    assert!(sim.node.tracked_keys(spec.id()) <= 8);
    // "hot" was shed with its 5 tokens, which went home.
    assert_eq!(core.check(&spec, "hot", 1, sim.at(2)), admitted(calls(89)));
}

#[test]
fn a_key_counted_while_the_table_was_full_keeps_its_count_once_tracked() {
    // One shard of one key.
    let sim = Sim::new(1, 1, 0);
    let mut core = sim.core(0);
    let spec = LimitSpec::rate(&ident("a"), 5, secs(1)).unwrap();
    assert!(core.check(&spec, "tracked", 1, sim.at(0)).is_admitted());
    // The table is full: "late" is counted in the shared overflow.
    for _ in 0..5 {
        assert!(core.check(&spec, "late", 1, sim.at(500)).is_admitted());
    }
    assert!(!core.check(&spec, "late", 1, sim.at(500)).is_admitted());
    // Keys past the cap share the overflow's limit.
    assert!(!core.check(&spec, "third", 1, sim.at(500)).is_admitted());
    assert_eq!(sim.node.tracked_keys(spec.id()), 1);
    // "tracked" goes quiet and is swept; "late" gets its own counters, starting from
    // the overflow's: still refused until its calls at 500 ms leave the window.
    core.reconcile(sim.at(1_250));
    core.reconcile(sim.at(1_300));
    let d = core.check(&spec, "late", 1, sim.at(1_300));
    assert_eq!(d, limited(1_525 - 1_300, calls(0)));
    assert_eq!(sim.node.tracked_keys(spec.id()), 1);
    assert!(core.check(&spec, "late", 1, sim.at(1_525)).is_admitted());
}

// ---- exactness: one OS thread per core ----

/// A load: `requests` calls spread evenly over `span` of simulated time, dealt to
/// threads pseudo-randomly with `hot_percent` of them on thread 0.
struct Load {
    threads: usize,
    requests: u64,
    span: Duration,
    hot_percent: u64,
    count: fn(u64) -> u64,
}

/// Runs `load` against `spec` on one key, each thread owning its `CoreShard` and
/// reconciling every 50 ms of its simulated time. Threads stay within 50 ms of each
/// other, as cores of one node do. Returns (time ns, count) of every admitted call.
fn run(sim: &Sim, spec: &LimitSpec, load: &Load) -> Vec<(u64, u64)> {
    const SLACK: u64 = 200;
    const RECONCILE_NS: u64 = 50_000_000;
    let step_ns = load.span.as_nanos() as u64 / load.requests;
    let progress: Vec<AtomicU64> = (0..load.threads).map(|_| AtomicU64::new(0)).collect();
    let owner = |n: u64| -> usize {
        let h = splitmix(n);
        if load.threads == 1 || h % 100 < load.hot_percent {
            0
        } else {
            1 + (splitmix(h) % (load.threads as u64 - 1)) as usize
        }
    };
    thread::scope(|s| {
        let handles: Vec<_> = (0..load.threads)
            .map(|me| {
                let node = sim.node.clone();
                let (progress, owner) = (&progress, &owner);
                s.spawn(move || {
                    let mut shard = CoreShard::new(node, me);
                    let mut admitted = Vec::new();
                    let mut next_reconcile = RECONCILE_NS + me as u64 * 13_000_000;
                    for n in 0..load.requests {
                        progress[me].store(n, Ordering::Release);
                        if owner(n) != me {
                            continue;
                        }
                        for (j, p) in progress.iter().enumerate() {
                            while j != me && p.load(Ordering::Acquire) + SLACK < n {
                                thread::yield_now();
                            }
                        }
                        let t = n * step_ns;
                        while t >= next_reconcile {
                            shard.reconcile(sim.origin + Duration::from_nanos(next_reconcile));
                            next_reconcile += RECONCILE_NS;
                        }
                        let count = (load.count)(n);
                        let at = sim.origin + Duration::from_nanos(t);
                        if shard.check(spec, "the-key", count, at).is_admitted() {
                            admitted.push((t, count));
                        }
                    }
                    progress[me].store(u64::MAX / 2, Ordering::Release);
                    admitted
                })
            })
            .collect();
        let mut all: Vec<(u64, u64)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        all
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The most calls admitted in any interval `[t, t + period)`.
fn busiest_window(admitted: &[(u64, u64)], period: Duration) -> u64 {
    let period = period.as_nanos() as u64;
    let (mut lo, mut sum, mut best) = (0, 0, 0);
    for &(t, n) in admitted {
        sum += n;
        while admitted[lo].0 + period <= t {
            sum -= admitted[lo].1;
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

fn one(_: u64) -> u64 {
    1
}

#[test]
fn rate_limit_is_exact_across_threads_within_one_window() {
    const LIMIT: u64 = 10_000;
    for threads in [2, 4] {
        let sim = Sim::new(threads, 100_000, 0);
        let spec = LimitSpec::rate(&ident("exact"), LIMIT, secs(10)).unwrap();
        let load = Load {
            threads,
            requests: 4 * LIMIT,
            span: secs(10),
            hot_percent: 80,
            count: one,
        };
        let admitted = run(&sim, &spec, &load);
        let total: u64 = admitted.iter().map(|&(_, n)| n).sum();
        assert!(total <= LIMIT, "{threads} threads admitted {total}");
        assert!(
            total * 100 >= LIMIT * 99,
            "{threads} threads admitted {total}"
        );
    }
}

#[test]
fn sliding_window_holds_in_every_interval_over_several_periods() {
    const LIMIT: u64 = 10_000;
    for threads in [2, 4] {
        let sim = Sim::new(threads, 100_000, 0);
        let spec = LimitSpec::rate(&ident("exact"), LIMIT, secs(10)).unwrap();
        let load = Load {
            threads,
            requests: 16 * LIMIT,
            span: secs(40),
            hot_percent: 80,
            count: |n| 1 + n % 3,
        };
        let admitted = run(&sim, &spec, &load);
        let busiest = busiest_window(&admitted, spec.period());
        assert!(
            busiest <= LIMIT,
            "{threads} threads: {busiest} in one period"
        );
        // In steady overload a key gets the limit per 41/40 of the period.
        let total: u64 = admitted.iter().map(|&(_, n)| n).sum();
        let fair = LIMIT * 40 * 40 / 41 / 10;
        assert!(
            total * 100 >= fair * 95,
            "{threads} threads admitted {total} of {fair}"
        );
    }
}

#[test]
fn quota_is_exact_across_threads_in_every_window() {
    const LIMIT: u64 = 10_000;
    for threads in [2, 4] {
        let sim = Sim::new(threads, 100_000, 0);
        let spec = LimitSpec::quota_from(&ident("exact"), Some(LIMIT), None, secs(10), 0).unwrap();
        let load = Load {
            threads,
            requests: 12 * LIMIT,
            span: secs(30),
            hot_percent: 80,
            count: |n| 1 + n % 3,
        };
        let admitted = run(&sim, &spec, &load);
        for w in 0..3u64 {
            let window = w * 10_000_000_000..(w + 1) * 10_000_000_000;
            let total: u64 = admitted
                .iter()
                .filter(|(t, _)| window.contains(t))
                .map(|&(_, n)| n)
                .sum();
            assert!(total <= LIMIT, "{threads} threads, window {w}: {total}");
            assert!(
                total * 100 >= LIMIT * 99,
                "{threads} threads, window {w}: {total}"
            );
        }
    }
}
