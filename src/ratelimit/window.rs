//! Window arithmetic for one key's counters: which window a time falls in, what is
//! used in it, when it frees up. No locks, no clocks, no leases: the node calls these
//! under its lock with times the cores passed in.

use std::collections::VecDeque;

/// A window's number: the bucket (sliding) or the period (fixed) since the origin.
pub(crate) type WindowId = i64;

/// Buckets per sliding period (fewer when the period is shorter than this many ms).
pub(crate) const SLIDING_BUCKETS: u64 = 40;

/// How many buckets a sliding draw may lag the newest time its key has seen. Older
/// buckets are kept that much longer so a lagging core still sees everything.
pub(crate) const LAG_BUCKETS: i64 = 8;

/// A time as the node reads it: monotonic milliseconds since the node's origin, and
/// the wall clock derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    pub mono_ms: u64,
    pub unix_ms: i64,
}

/// How a limit cuts time into windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Geometry {
    /// The period is `buckets * bucket_ms` (rounded up from the configured one).
    Sliding { bucket_ms: u64, buckets: u64 },
    /// Windows `[anchor + k * period, anchor + (k + 1) * period)` in Unix ms.
    Fixed { period_ms: u64, anchor_unix_ms: i64 },
}

impl Geometry {
    pub fn sliding(period_ms: u64) -> Self {
        let buckets = SLIDING_BUCKETS.min(period_ms).max(1);
        Geometry::Sliding {
            bucket_ms: period_ms.div_ceil(buckets),
            buckets,
        }
    }

    pub fn window(&self, now: Now) -> WindowId {
        match *self {
            Geometry::Sliding { bucket_ms, .. } => (now.mono_ms / bucket_ms) as WindowId,
            Geometry::Fixed {
                period_ms,
                anchor_unix_ms,
            } => now
                .unix_ms
                .saturating_sub(anchor_unix_ms)
                .div_euclid(period_ms as i64),
        }
    }

    pub fn period_ms(&self) -> u64 {
        match *self {
            Geometry::Sliding { bucket_ms, buckets } => bucket_ms * buckets,
            Geometry::Fixed { period_ms, .. } => period_ms,
        }
    }

    /// Empty counters of this geometry's kind, at window `w`.
    pub fn empty(&self, w: WindowId) -> Counters {
        match self {
            Geometry::Sliding { .. } => Counters::Sliding(Sliding {
                newest: w,
                ..Sliding::default()
            }),
            Geometry::Fixed { .. } => Counters::Fixed(Fixed {
                window: w,
                ..Fixed::default()
            }),
        }
    }

    /// Milliseconds from `now` to the end of fixed window `w` (at least 1).
    pub fn ms_to_end(&self, w: WindowId, now: Now) -> u64 {
        match *self {
            Geometry::Sliding { bucket_ms, .. } => ((w + 1) as u64 * bucket_ms)
                .saturating_sub(now.mono_ms)
                .max(1),
            Geometry::Fixed {
                period_ms,
                anchor_unix_ms,
            } => {
                let end = anchor_unix_ms.saturating_add((w + 1).saturating_mul(period_ms as i64));
                (end.saturating_sub(now.unix_ms)).max(1) as u64
            }
        }
    }
}

/// One key's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Counters {
    Sliding(Sliding),
    Fixed(Fixed),
}

impl Counters {
    /// Moves to `w` if it is newer and forgets what no draw can see any more.
    pub fn advance(&mut self, geometry: &Geometry, w: WindowId) {
        match (self, geometry) {
            (Counters::Sliding(s), Geometry::Sliding { buckets, .. }) => s.advance(w, *buckets),
            (Counters::Fixed(f), _) => f.advance(w),
            (Counters::Sliding(_), Geometry::Fixed { .. }) => {}
        }
    }

    /// Nothing counted in any window a draw can still see (after `advance`).
    pub fn is_empty(&self) -> bool {
        match self {
            Counters::Sliding(s) => s.is_empty(),
            Counters::Fixed(f) => f.is_empty(),
        }
    }
}

/// Calls charged per bucket, oldest first; only buckets with a count are stored, so
/// a key that made one call costs one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sliding {
    buckets: VecDeque<(WindowId, u64)>,
    sum: u64,
    newest: WindowId,
}

impl Sliding {
    pub fn advance(&mut self, w: WindowId, buckets: u64) {
        self.newest = self.newest.max(w);
        let horizon = self.newest - buckets as i64 - LAG_BUCKETS;
        while let Some(&(b, n)) = self.buckets.front() {
            if b >= horizon {
                break;
            }
            self.sum -= n;
            self.buckets.pop_front();
        }
    }

    /// Whether a draw at bucket `w` is recent enough for what is still kept.
    pub fn accepts(&self, w: WindowId) -> bool {
        w >= self.newest - LAG_BUCKETS
    }

    /// Calls counted against a draw at bucket `w`: every bucket from `w - buckets` on,
    /// later ones included (a core ahead in time may have charged them).
    pub fn used(&self, w: WindowId, buckets: u64) -> u64 {
        let from = w - buckets as i64;
        let stale: u64 = self
            .buckets
            .iter()
            .take_while(|&&(b, _)| b < from)
            .map(|&(_, n)| n)
            .sum();
        self.sum - stale
    }

    pub fn charge(&mut self, w: WindowId, n: u64) {
        if n == 0 {
            return;
        }
        self.sum += n;
        // Nearly always the newest bucket; a lagging core lands a few places back.
        let at = self
            .buckets
            .iter()
            .rposition(|&(b, _)| b <= w)
            .map_or(0, |i| i + 1);
        match at.checked_sub(1).and_then(|i| self.buckets.get_mut(i)) {
            Some((b, count)) if *b == w => *count += n,
            _ => self.buckets.insert(at, (w, n)),
        }
    }

    /// Takes back up to `n` tokens charged to bucket `w`, if it is still kept.
    pub fn refund(&mut self, w: WindowId, n: u64) {
        let Some(i) = self.buckets.iter().rposition(|&(b, _)| b == w) else {
            return;
        };
        let count = &mut self.buckets[i].1;
        let back = n.min(*count);
        *count -= back;
        self.sum -= back;
        if *count == 0 {
            self.buckets.remove(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sum == 0
    }

    /// Milliseconds from `now_ms` until a draw of `need` at bucket `w` would fit in
    /// `limit`: until enough of the oldest buckets have left the window. A need over
    /// the limit never fits; the answer is then one period.
    pub fn retry_after_ms(
        &self,
        w: WindowId,
        bucket_ms: u64,
        buckets: u64,
        limit: u64,
        need: u64,
        now_ms: u64,
    ) -> u64 {
        if need > limit {
            return bucket_ms * buckets;
        }
        let from = w - buckets as i64;
        let mut free = limit.saturating_sub(self.used(w, buckets));
        for &(b, n) in self.buckets.iter().filter(|&&(b, _)| b >= from) {
            free += n;
            if free >= need {
                // Bucket b is last seen by draws at bucket b + buckets.
                let gone_at = (b + buckets as i64 + 1) as u64 * bucket_ms;
                return gone_at.saturating_sub(now_ms).max(1);
            }
        }
        // Unreachable while the counts add up; a period is a safe answer.
        bucket_ms * buckets
    }
}

/// Calls and bytes charged in the current fixed window and in the one before (kept
/// for a core that is a moment behind at the boundary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fixed {
    window: WindowId,
    current: Usage,
    previous: Usage,
}

/// What a fixed window has charged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub calls: u64,
    pub bytes: u64,
}

impl Fixed {
    pub fn advance(&mut self, w: WindowId) {
        if w <= self.window {
            return;
        }
        self.previous = if w == self.window + 1 {
            self.current
        } else {
            Usage::default()
        };
        self.current = Usage::default();
        self.window = w;
    }

    /// The usage of window `w`, if still kept (the current one or the one before).
    pub fn usage_mut(&mut self, w: WindowId) -> Option<&mut Usage> {
        if w == self.window {
            Some(&mut self.current)
        } else if w == self.window - 1 {
            Some(&mut self.previous)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.current == Usage::default() && self.previous == Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mono_ms: u64) -> Now {
        Now {
            mono_ms,
            unix_ms: mono_ms as i64,
        }
    }

    #[test]
    fn sliding_geometry_rounds_the_bucket_up() {
        assert_eq!(
            Geometry::sliding(10_000),
            Geometry::Sliding {
                bucket_ms: 250,
                buckets: 40
            }
        );
        assert_eq!(
            Geometry::sliding(1_001),
            Geometry::Sliding {
                bucket_ms: 26,
                buckets: 40
            }
        );
        assert_eq!(
            Geometry::sliding(7),
            Geometry::Sliding {
                bucket_ms: 1,
                buckets: 7
            }
        );
        assert_eq!(Geometry::sliding(1_001).period_ms(), 1_040);
    }

    #[test]
    fn fixed_windows_follow_the_anchor_including_before_it() {
        let g = Geometry::Fixed {
            period_ms: 1_000,
            anchor_unix_ms: 500,
        };
        assert_eq!(g.window(at(499)), -1);
        assert_eq!(g.window(at(500)), 0);
        assert_eq!(g.window(at(1_499)), 0);
        assert_eq!(g.window(at(1_500)), 1);
        assert_eq!(g.ms_to_end(1, at(1_700)), 800);
    }

    #[test]
    fn a_bucket_counts_until_a_full_period_after_it_ends() {
        let mut s = Sliding::default();
        s.advance(3, 10);
        s.charge(3, 5);
        for w in 3..=13 {
            s.advance(w, 10);
            assert_eq!(s.used(w, 10), 5, "bucket 3 is seen at bucket {w}");
        }
        s.advance(14, 10);
        assert_eq!(s.used(14, 10), 0);
        // Kept for laggards until LAG_BUCKETS later, then dropped.
        assert!(!s.is_empty());
        s.advance(14 + LAG_BUCKETS, 10);
        assert!(s.is_empty());
    }

    #[test]
    fn out_of_order_charges_and_refunds_land_in_their_bucket() {
        let mut s = Sliding::default();
        s.charge(5, 1);
        s.charge(7, 2);
        s.charge(6, 3);
        s.charge(7, 1);
        s.charge(4, 4);
        let got: Vec<_> = s.buckets.iter().copied().collect();
        assert_eq!(got, vec![(4, 4), (5, 1), (6, 3), (7, 3)]);
        assert_eq!(s.sum, 11);
        s.refund(6, 10);
        s.refund(9, 1);
        assert_eq!(s.sum, 8);
        assert_eq!(s.buckets.len(), 3);
        // A draw at bucket 14 (period 10) sees buckets 4.. ; at 15 it does not see 4.
        assert_eq!(s.used(14, 10), 8);
        assert_eq!(s.used(15, 10), 4);
    }

    #[test]
    fn retry_after_waits_for_enough_buckets_to_leave() {
        let mut s = Sliding::default();
        s.charge(0, 4);
        s.charge(2, 6);
        s.advance(5, 10);
        // Limit 10, all used. One call fits when bucket 0 leaves: at bucket 11.
        assert_eq!(s.retry_after_ms(5, 100, 10, 10, 1, 560), 1_100 - 560);
        // Five calls need bucket 2 gone as well: bucket 13.
        assert_eq!(s.retry_after_ms(5, 100, 10, 10, 5, 560), 1_300 - 560);
        // Never fits: one period.
        assert_eq!(s.retry_after_ms(5, 100, 10, 10, 11, 560), 1_000);
    }

    #[test]
    fn fixed_rolls_keep_one_previous_window() {
        let mut f = Fixed::default();
        f.advance(10);
        f.usage_mut(10).unwrap().calls = 3;
        f.advance(11);
        assert_eq!(f.usage_mut(10).unwrap().calls, 3);
        assert_eq!(f.usage_mut(11).unwrap().calls, 0);
        assert!(f.usage_mut(9).is_none());
        f.advance(13);
        assert_eq!(f.usage_mut(12).unwrap().calls, 0);
        assert!(f.is_empty());
        // Going back in time does not roll back.
        f.advance(12);
        assert!(f.usage_mut(13).is_some());
    }
}
