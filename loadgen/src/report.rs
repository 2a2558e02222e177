//! Results, for people and for programs.
//!
//! Turns the merged [`Stats`] into the aligned human summary or the JSON object
//! documented in README.md (its keys are read by the perf harness: change them only
//! together with it). Histograms hold nanoseconds; both outputs show microseconds
//! or larger units. Nothing here measures anything.

use crate::stats::{ErrorKind, Stats};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// Everything a report shows.
pub struct Summary<'a> {
    pub stats: &'a Stats,
    /// Measured time (warm-up excluded).
    pub duration: Duration,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    /// Open-loop rate, or `None` for closed loop.
    pub rate: Option<f64>,
    pub urls: &'a [String],
}

impl Summary<'_> {
    fn secs(&self) -> f64 {
        self.duration.as_secs_f64().max(1e-9)
    }

    pub fn rps(&self) -> f64 {
        self.stats.requests as f64 / self.secs()
    }

    /// The JSON object of `--json` (schema in README.md).
    pub fn json(&self) -> Value {
        let s = self.stats;
        let mut status = Map::new();
        for (code, n) in s.statuses() {
            status.insert(code.to_string(), json!(n));
        }
        let mut errors = Map::new();
        for kind in ErrorKind::ALL {
            errors.insert(kind.name().to_string(), json!(s.error_count(kind)));
        }
        let mut messages = Map::new();
        for kind in ErrorKind::ALL {
            if let Some(m) = &s.error_samples[kind as usize] {
                messages.insert(kind.name().to_string(), json!(m));
            }
        }
        json!({
            "requests": s.requests,
            "duration_s": self.duration.as_secs_f64(),
            "rps": self.rps(),
            "bytes": s.bytes,
            "bytes_per_s": s.bytes as f64 / self.secs(),
            "latency_us": latency_json(&s.corrected),
            "latency_uncorrected_us": latency_json(&s.uncorrected),
            "status": status,
            "errors": errors,
            "error_messages": messages,
            "connections": self.connections,
            "threads": self.threads,
            "pipeline": self.pipeline,
            "rate": self.rate,
            "urls": self.urls,
        })
    }

    /// The human summary.
    pub fn human(&self, show_uncorrected: bool) -> String {
        let s = self.stats;
        let mut o = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {} req/s", group(r.round() as u64)),
            None => "closed loop".to_string(),
        };
        let pipe = if self.pipeline > 1 {
            format!(", pipeline {}", self.pipeline)
        } else {
            String::new()
        };
        let _ = writeln!(o, "Target      {}", self.urls.join(" "));
        let _ = writeln!(
            o,
            "Load        {} connection{} on {} thread{}, {mode}{pipe}",
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            o,
            "Duration    {}",
            fmt_duration_s(self.duration.as_secs_f64())
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Requests    {:>14} total   {:>14}/s",
            group(s.requests),
            group_f(self.rps())
        );
        let _ = writeln!(
            o,
            "Transfer    {:>14} total   {:>14}/s",
            fmt_bytes(s.bytes as f64),
            fmt_bytes(s.bytes as f64 / self.secs())
        );
        let _ = writeln!(o);
        if show_uncorrected {
            let _ = writeln!(o, "Latency     {:>18}   {:>18}", "corrected", "uncorrected");
        } else {
            let _ = writeln!(o, "Latency     {:>18}", "corrected");
        }
        let rows: [(&str, f64); 6] = [
            ("p50", 0.5),
            ("p90", 0.9),
            ("p99", 0.99),
            ("p99.9", 0.999),
            ("p99.99", 0.9999),
            ("max", 1.0),
        ];
        for (label, q) in rows {
            let c = quantile_ns(&s.corrected, q);
            if show_uncorrected {
                let u = quantile_ns(&s.uncorrected, q);
                let _ = writeln!(o, "  {label:<9} {:>18}   {:>18}", fmt_ns(c), fmt_ns(u));
            } else {
                let _ = writeln!(o, "  {label:<9} {:>18}", fmt_ns(c));
            }
        }
        let mean = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{} ± {}", fmt_ns(h.mean()), fmt_ns(h.stdev()))
            }
        };
        if show_uncorrected {
            let _ = writeln!(
                o,
                "  {:<9} {:>18}   {:>18}",
                "mean",
                mean(&s.corrected),
                mean(&s.uncorrected)
            );
        } else {
            let _ = writeln!(o, "  {:<9} {:>18}", "mean", mean(&s.corrected));
        }
        let _ = writeln!(o);
        let statuses: Vec<String> = s
            .statuses()
            .map(|(code, n)| format!("{code}: {}", group(n)))
            .collect();
        let _ = writeln!(
            o,
            "Status      {}",
            if statuses.is_empty() {
                "-".to_string()
            } else {
                statuses.join(", ")
            }
        );
        if s.total_errors() == 0 {
            let _ = writeln!(o, "Errors      none");
        } else {
            let mut first = true;
            for kind in ErrorKind::ALL {
                let n = s.error_count(kind);
                if n == 0 {
                    continue;
                }
                let label = if first { "Errors" } else { "" };
                first = false;
                let sample = s.error_samples[kind as usize].as_deref().unwrap_or("");
                let _ = writeln!(
                    o,
                    "{label:<11} {:<10} {:>10}   {sample}",
                    kind.name(),
                    group(n)
                );
            }
        }
        o
    }
}

fn quantile_ns(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    if q >= 1.0 {
        h.max() as f64
    } else {
        h.value_at_quantile(q) as f64
    }
}

fn latency_json(h: &Histogram<u64>) -> Value {
    let us = |ns: f64| if ns.is_finite() { ns / 1000.0 } else { 0.0 };
    let empty = h.is_empty();
    json!({
        "p50": us(quantile_ns(h, 0.5)),
        "p90": us(quantile_ns(h, 0.9)),
        "p99": us(quantile_ns(h, 0.99)),
        "p999": us(quantile_ns(h, 0.999)),
        "p9999": us(quantile_ns(h, 0.9999)),
        "max": us(quantile_ns(h, 1.0)),
        "mean": if empty { 0.0 } else { h.mean() / 1000.0 },
        "stdev": if empty { 0.0 } else { h.stdev() / 1000.0 },
        "min": if empty { 0.0 } else { h.min() as f64 / 1000.0 },
    })
}

/// `123.4µs`, `12.35ms`, `1.234s`.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".to_string()
    } else if ns < 1_000_000.0 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.3}s", ns / 1e9)
    }
}

fn fmt_duration_s(s: f64) -> String {
    format!("{s:.2}s")
}

/// `512 B`, `1.50 KiB`, `14.10 MiB`.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[0])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn group_f(v: f64) -> String {
    let whole = v.trunc() as u64;
    format!(
        "{}.{}",
        group(whole),
        ((v - v.trunc()) * 10.0).floor() as u64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn formats() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(100), "100");
        assert_eq!(group_f(1234.56), "1,234.5");
        assert_eq!(fmt_ns(1500.0), "1.5µs");
        assert_eq!(fmt_ns(2_500_000.0), "2.50ms");
        assert_eq!(fmt_ns(3e9), "3.000s");
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(1536.0), "1.50 KiB");
    }

    #[test]
    fn json_has_the_required_keys() {
        let mut stats = Stats::new();
        stats.record(200, 100_000, 50_000, Instant::now());
        stats.error(ErrorKind::Closed, || "closed".into());
        let urls = vec!["http://x/".to_string()];
        let s = Summary {
            stats: &stats,
            duration: Duration::from_secs(2),
            connections: 8,
            threads: 1,
            pipeline: 1,
            rate: None,
            urls: &urls,
        };
        let v = s.json();
        for key in [
            "requests",
            "duration_s",
            "rps",
            "bytes",
            "bytes_per_s",
            "latency_us",
            "latency_uncorrected_us",
            "status",
            "errors",
            "connections",
            "threads",
            "rate",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in [
            "p50", "p90", "p99", "p999", "p9999", "max", "mean", "stdev", "min",
        ] {
            assert!(v["latency_us"][key].is_f64(), "latency_us.{key}");
            assert!(
                v["latency_uncorrected_us"][key].is_f64(),
                "uncorrected {key}"
            );
        }
        for key in ["connect", "timeout", "reset", "malformed", "closed"] {
            assert!(v["errors"][key].is_u64(), "errors.{key}");
        }
        assert_eq!(v["requests"], 1);
        assert_eq!(v["rps"], 0.5);
        assert_eq!(v["status"]["200"], 1);
        assert_eq!(v["errors"]["closed"], 1);
        assert!(v["rate"].is_null());
        let p50 = v["latency_us"]["p50"].as_f64().unwrap();
        assert!((99.0..=101.0).contains(&p50), "{p50}");
        let human = s.human(true);
        assert!(human.contains("p99.99"));
        assert!(human.contains("200: 1"));
        assert!(human.contains("closed"));
    }
}
