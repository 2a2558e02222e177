//! Measurements: latency histograms, counters, and their merge.
//!
//! Each executor thread owns one [`Stats`] and records into it without atomics or
//! locks; the threads' stats are merged once at the end. Latencies are recorded in
//! nanoseconds into HdrHistograms with three significant digits, up to one hour
//! (longer values are clamped). Two histograms: `corrected`, measured from each
//! request's intended send time (coordinated omission corrected), and `uncorrected`,
//! from the actual send.

use hdrhistogram::Histogram;
use std::time::Instant;

/// Highest latency the histograms resolve: one hour, in nanoseconds.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Kinds of failed request, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be opened.
    Connect,
    /// No complete response within `--timeout`.
    Timeout,
    /// A read or write failed (reset, broken pipe, TLS error).
    Reset,
    /// The response broke HTTP/1.1 framing rules.
    Malformed,
    /// The server closed the connection before the response was complete.
    Closed,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Malformed,
        ErrorKind::Closed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Closed => "closed",
        }
    }
}

/// One thread's measurements (or, after [`Stats::merge`], everyone's).
#[derive(Debug, Clone)]
pub struct Stats {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Completed, recorded responses.
    pub requests: u64,
    /// Response bytes read while recording.
    pub bytes: u64,
    /// Count per status code; index is the code (100..=999).
    pub status: Vec<u64>,
    pub errors: [u64; 5],
    /// The first message seen for each error kind, for the summary.
    pub error_samples: [Option<String>; 5],
    /// When the last recorded response completed.
    pub last_completion: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            requests: 0,
            bytes: 0,
            status: vec![0; 1000],
            errors: [0; 5],
            error_samples: Default::default(),
            last_completion: None,
        }
    }

    /// Records one complete response.
    #[inline]
    pub fn record(&mut self, status: u16, corrected_ns: u64, uncorrected_ns: u64, now: Instant) {
        self.corrected
            .saturating_record(corrected_ns.clamp(1, MAX_LATENCY_NS));
        self.uncorrected
            .saturating_record(uncorrected_ns.clamp(1, MAX_LATENCY_NS));
        self.requests += 1;
        if let Some(slot) = self.status.get_mut(usize::from(status)) {
            *slot += 1;
        }
        self.last_completion = Some(now);
    }

    /// Counts a failed request (or connection attempt); keeps the first message.
    pub fn error(&mut self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let i = kind as usize;
        self.errors[i] += 1;
        if self.error_samples[i].is_none() {
            self.error_samples[i] = Some(message());
        }
    }

    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        self.corrected
            .add(&other.corrected)
            .expect("histograms share bounds");
        self.uncorrected
            .add(&other.uncorrected)
            .expect("histograms share bounds");
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        for i in 0..self.errors.len() {
            self.errors[i] += other.errors[i];
            if self.error_samples[i].is_none() {
                self.error_samples[i].clone_from(&other.error_samples[i]);
            }
        }
        self.last_completion = match (self.last_completion, other.last_completion) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Status codes seen, ascending, with their counts.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
    }
}

/// A histogram with the bounds every [`Stats`] uses.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let now = Instant::now();
        let mut a = Stats::new();
        let mut b = Stats::new();
        for i in 1..=1000u64 {
            a.record(200, i * 1000, i * 500, now);
        }
        for i in 1..=1000u64 {
            b.record(503, 1_000_000 + i * 1000, i, now);
        }
        b.bytes = 42;
        a.error(ErrorKind::Timeout, || "first".into());
        b.error(ErrorKind::Timeout, || "second".into());
        b.error(ErrorKind::Connect, || "refused".into());

        let mut m = Stats::new();
        m.merge(&a);
        m.merge(&b);
        assert_eq!(m.requests, 2000);
        assert_eq!(m.bytes, 42);
        assert_eq!(m.corrected.len(), 2000);
        assert_eq!(m.uncorrected.len(), 2000);
        assert_eq!(
            m.statuses().collect::<Vec<_>>(),
            vec![(200, 1000), (503, 1000)]
        );
        assert_eq!(m.error_count(ErrorKind::Timeout), 2);
        assert_eq!(m.error_count(ErrorKind::Connect), 1);
        assert_eq!(m.total_errors(), 3);
        assert_eq!(
            m.error_samples[ErrorKind::Timeout as usize].as_deref(),
            Some("first")
        );
        // The median sits between the two halves; max comes from b.
        let p50 = m.corrected.value_at_quantile(0.5);
        assert!((990_000..=1_010_000).contains(&p50), "p50 {p50}");
        let max = m.corrected.max();
        assert!((1_999_000..=2_001_000).contains(&max), "max {max}");
        assert_eq!(m.last_completion, Some(now));
    }

    #[test]
    fn huge_and_zero_latencies_are_clamped() {
        let mut s = Stats::new();
        s.record(200, 0, u64::MAX, Instant::now());
        assert_eq!(s.corrected.len(), 1);
        assert!(s.uncorrected.max() >= MAX_LATENCY_NS / 2);
    }
}
