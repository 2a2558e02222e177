//! Command-line arguments.
//!
//! Owns the clap definitions and the parsing of human durations (`10s`, `500ms`,
//! `1m`). It validates what clap cannot (ranges, combinations) so that `main` works
//! with values that make sense; it knows nothing about sockets or executors.

use crate::engine::IoEngine;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Portico's HTTP/1.1 load generator: thread-per-core, closed or open loop (-R),
/// latency corrected for coordinated omission, HdrHistogram percentiles.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A minimal, fast HTTP/1.1 backend for benchmarks and tests.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URLs (http:// or https://); several are used round robin per request.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// Executor threads, each pinned to one CPU [default: every CPU this process may use]
    #[arg(short = 't', long)]
    pub threads: Option<usize>,

    /// Connections to keep open, spread over the threads.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,

    /// Measured duration (e.g. 10s, 500ms, 1m) [default: 10s unless -n is given]
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Send exactly this many measured requests, then stop.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,

    /// Run this long before measuring; those requests are not recorded.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Open loop: a constant total rate in requests/s, split over the connections.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,

    /// Also print the latency measured from the actual send time.
    #[arg(long)]
    pub latency_uncorrected: bool,

    /// Requests in flight per connection (HTTP/1.1 pipelining).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,

    /// Extra request header "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Request body (Content-Length is set).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Request body read from a file (Content-Length is set).
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,

    /// HTTPS: accept any server certificate.
    #[arg(long)]
    pub insecure: bool,

    /// Give up on a connection attempt after this long.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,

    /// A request without a complete response after this long is an error; its
    /// connection is closed and reopened.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// Print one JSON object (schema in README.md) instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// Write an HdrHistogram interval log (one corrected histogram per second).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,

    /// Socket path: io_uring engine, glommio sockets, or the engine when available.
    #[arg(long, value_enum, default_value_t = IoEngine::Auto)]
    pub io_engine: IoEngine,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    pub listen: String,

    /// Bytes in each response body.
    #[arg(long, default_value_t = 12)]
    pub body_size: usize,

    /// Send the body of HTTP/1.1 keep-alive responses chunked, in chunks of this many
    /// bytes (0: Content-Length).
    #[arg(long, default_value_t = 0)]
    pub chunk_size: usize,

    /// Milliseconds to wait before answering.
    #[arg(long, default_value_t = 0)]
    pub delay: u64,

    /// Executor threads [default: every CPU this process may use]
    #[arg(long)]
    pub threads: Option<usize>,

    /// Socket path: io_uring engine, glommio sockets, or the engine when available.
    #[arg(long, value_enum, default_value_t = IoEngine::Auto)]
    pub io_engine: IoEngine,

    /// On the io_uring engine, hand idle keep-alive connections to the engine
    /// (no task, no buffer) instead of keeping a task waiting on each.
    #[arg(long, value_enum, default_value_t = Idle::Park)]
    pub idle: Idle,
}

/// What `loadgen serve` does with an idle keep-alive connection on the io_uring engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Idle {
    /// Park it: a new task serves it when bytes arrive.
    Park,
    /// Keep its task waiting in `recv` (its buffer is released while idle).
    Task,
}

/// Parses `1.5s`, `500ms`, `250us`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 10s, 500ms, 1m)"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "bad duration unit in {s:?} (use us, ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
