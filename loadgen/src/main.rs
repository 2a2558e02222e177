//! `loadgen`: Portico's HTTP/1.1 load generator, and `loadgen serve`, its backend.
//!
//! This file is the edge: it turns arguments into a validated plan (targets resolved,
//! requests serialised, connections split over threads), starts one pinned glommio
//! executor per thread, shows progress, merges the threads' stats, writes the report
//! and chooses the exit code. Errors become one line on stderr: exit 2 for bad input
//! or an unreachable target, 1 when the run produced no good response.

#![deny(unsafe_code)]

mod cli;
mod conn;
mod engine;
mod report;
mod request;
mod response;
mod serve;
mod stats;
mod tls;
mod transport;
mod url;

use anyhow::{anyhow, bail, Context as _};
use clap::Parser as _;
use cli::{Cli, Command, RunArgs};
use conn::{split_evenly, RunConfig, Shared, Target};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder};
use hdrhistogram::serialization::V2Serializer;
use hdrhistogram::Histogram;
use stats::{new_histogram, ErrorKind, Stats};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use url::{Scheme, Url};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve::run(args).map(|()| 0),
        None => run(cli.run),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// The CPUs this process may run on (its affinity mask, e.g. from `taskset`).
pub fn allowed_cpus() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => ids.into_iter().map(|c| c.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    if args.urls.is_empty() {
        bail!("no target URL given (try: loadgen -c 64 -d 10s http://127.0.0.1:8080/)");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.pipeline == 0 || args.pipeline > 1024 {
        bail!("--pipeline must be between 1 and 1024");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    if args.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        bail!("--duration must be longer than zero");
    }
    if args.timeout.is_zero() || args.connect_timeout.is_zero() {
        bail!("--timeout and --connect-timeout must be longer than zero");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };

    let targets = plan_targets(&args)?;
    let cpus = allowed_cpus();
    let threads = args
        .threads
        .unwrap_or(cpus.len())
        .min(args.connections)
        .max(1);
    let cfg = Arc::new(RunConfig {
        connections: args.connections,
        pipeline: args.pipeline,
        rate: args.rate,
        duration,
        requests: args.requests,
        warmup: args.warmup,
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        hdr_log: args.hdr_log.is_some(),
        progress: std::io::stderr().is_terminal() && !args.json,
        io_engine: args.io_engine,
    });
    let mut hdr_log = match &args.hdr_log {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => None,
    };
    let (interval_tx, interval_rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(threads, cfg.hdr_log.then_some(interval_tx)));
    let targets = Arc::new(targets);
    // First Ctrl-C: stop and report what was measured; a second one exits at once.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, shared.interrupted.clone())?;
        signal_hook::flag::register(signal, shared.interrupted.clone())?;
    }

    let mut handles = Vec::with_capacity(threads);
    let mut first = 0;
    for i in 0..threads {
        let count = split_evenly(args.connections as u64, threads, i) as usize;
        let (cfg, shared, targets) = (cfg.clone(), shared.clone(), targets.clone());
        let cpu = cpus[i % cpus.len()];
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("loadgen-{i}"))
            .io_memory(1 << 20)
            .spawn(move || conn::run_thread(i, first, count, cfg, shared, targets))
            .map_err(|e| anyhow!("cannot start executor on CPU {cpu}: {e}"))?;
        handles.push(handle);
        first += count;
    }

    // While the executors run: progress line and interval log.
    let mut intervals = IntervalMerger::new(threads);
    let mut serializer = V2Serializer::new();
    let mut log_writer = None;
    let mut log_file = hdr_log.as_mut();
    let progress = cfg.progress;
    let mut last_progress = Instant::now();
    loop {
        match interval_rx.recv_timeout(Duration::from_millis(50)) {
            Ok((_, k, h)) => intervals.add(k, h),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // No --hdr-log: nothing will ever come; just wait.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50))
            }
        }
        if shared.finished.load(Ordering::Acquire) == threads {
            break;
        }
        if let (Some(start), true) = (shared.start.get(), log_writer.is_none()) {
            if let Some(file) = log_file.take() {
                log_writer = Some(begin_log(file, &mut serializer, *start + cfg.warmup)?);
            }
        }
        if let Some(writer) = log_writer.as_mut() {
            intervals.write_ready(writer, false)?;
        }
        if progress && last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            show_progress(&shared, &cfg);
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    let mut total = Stats::new();
    for h in handles {
        let stats = h
            .join()
            .map_err(|e| anyhow!("an executor thread failed: {e}"))?;
        total.merge(&stats);
    }
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(message) = fatal {
        bail!("{message}");
    }
    let start = *shared.start.get().expect("threads started the clock");
    let record_start = start + cfg.warmup;
    if let Some(file) = log_file.take() {
        log_writer = Some(begin_log(file, &mut serializer, record_start)?);
    }
    if let Some(writer) = log_writer.as_mut() {
        while let Ok((_, k, h)) = interval_rx.try_recv() {
            intervals.add(k, h);
        }
        intervals.write_ready(writer, true)?;
    }

    let interrupted = shared.interrupted.load(Ordering::Relaxed);
    let measured = match cfg.duration {
        Some(d) => d.min(Instant::now().saturating_duration_since(record_start)),
        None if interrupted => Instant::now().saturating_duration_since(record_start),
        None => total
            .last_completion
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(record_start),
    };
    let summary = report::Summary {
        stats: &total,
        duration: measured,
        connections: cfg.connections,
        threads,
        pipeline: cfg.pipeline,
        rate: cfg.rate,
        urls: &args.urls,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", summary.json())?;
    } else {
        write!(out, "{}", summary.human(args.latency_uncorrected))?;
    }
    out.flush()?;

    if interrupted {
        eprintln!("loadgen: interrupted after {:.2}s", measured.as_secs_f64());
    }
    if total.requests == 0 {
        let errors = total.total_errors();
        if errors == 0 {
            eprintln!("loadgen: no response completed");
        } else {
            let (kind, sample) = ErrorKind::ALL
                .iter()
                .find_map(|&k| total.error_samples[k as usize].clone().map(|m| (k, m)))
                .unwrap_or((ErrorKind::Reset, String::new()));
            eprintln!(
                "loadgen: no good response: {errors} errors, e.g. {}: {sample}",
                kind.name()
            );
        }
        return Ok(1);
    }
    Ok(0)
}

/// Parses the URLs and groups them by origin: a connection talks to one origin and
/// goes round robin over that origin's URLs; connections go round robin over origins.
fn plan_targets(args: &RunArgs) -> anyhow::Result<Vec<Target>> {
    let headers = args
        .headers
        .iter()
        .map(|h| request::parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .with_context(|| format!("cannot read --body-file {}", path.display()))?,
        (None, None) => Vec::new(),
    };
    let mut tls_config = None;
    let mut targets: Vec<(Url, Target)> = Vec::new();
    for raw in &args.urls {
        let url = Url::parse(raw)?;
        let prepared = request::prepare(&args.method, &url, &headers, &body)?;
        if let Some((_, t)) = targets
            .iter_mut()
            .find(|(u, _)| u.scheme == url.scheme && u.host == url.host && u.port == url.port)
        {
            t.requests.push(prepared);
            continue;
        }
        let authority = url.authority();
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| anyhow!("cannot resolve {authority}: {}", conn::describe(&e)))?
            .next()
            .ok_or_else(|| anyhow!("cannot resolve {authority}: no address"))?;
        let tls = match url.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                if tls_config.is_none() {
                    tls_config = Some(tls::client_config(args.insecure)?);
                }
                let config = tls_config.clone().expect("just built");
                Some((config, tls::server_name(&url.host).map_err(|e| anyhow!(e))?))
            }
        };
        let target = Target {
            addr,
            label: authority.clone(),
            tls,
            requests: vec![prepared],
        };
        targets.push((url, target));
    }
    if targets.len() > args.connections {
        bail!(
            "{} origins need at least as many connections (-c)",
            targets.len()
        );
    }
    Ok(targets.into_iter().map(|(_, t)| t).collect())
}

fn show_progress(shared: &Shared, cfg: &RunConfig) {
    let Some(start) = shared.start.get() else {
        return;
    };
    let done: u64 = shared
        .progress
        .iter()
        .map(|p| p.load(Ordering::Relaxed))
        .sum();
    let elapsed = start.elapsed();
    if elapsed < cfg.warmup {
        eprint!(
            "\r\x1b[2Kwarm-up {:.1}s / {:.1}s",
            elapsed.as_secs_f64(),
            cfg.warmup.as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        return;
    }
    let measured = (elapsed - cfg.warmup).as_secs_f64();
    let of = match (cfg.duration, cfg.requests) {
        (Some(d), _) => format!(" / {:.0}s", d.as_secs_f64()),
        (None, Some(n)) => format!(", {} of {}", report::group(done), report::group(n)),
        _ => String::new(),
    };
    let rps = if measured > 0.0 {
        done as f64 / measured
    } else {
        0.0
    };
    eprint!(
        "\r\x1b[2K{measured:.1}s{of}  {} responses  {} req/s",
        report::group(done),
        report::group(rps as u64)
    );
    let _ = std::io::stderr().flush();
}

/// Merges the threads' interval histograms and writes each interval once every
/// thread has sent it.
struct IntervalMerger {
    threads: usize,
    pending: BTreeMap<u64, (usize, Histogram<u64>)>,
}

impl IntervalMerger {
    fn new(threads: usize) -> Self {
        IntervalMerger {
            threads,
            pending: BTreeMap::new(),
        }
    }

    fn add(&mut self, k: u64, h: Histogram<u64>) {
        let entry = self
            .pending
            .entry(k)
            .or_insert_with(|| (0, new_histogram()));
        entry.0 += 1;
        let _ = entry.1.add(&h);
    }

    fn write_ready<W: Write>(
        &mut self,
        writer: &mut IntervalLogWriter<'_, '_, W, V2Serializer>,
        all: bool,
    ) -> anyhow::Result<()> {
        while let Some((_, (count, _))) = self.pending.first_key_value() {
            if *count < self.threads && !all {
                break;
            }
            let (k, (_, h)) = self.pending.pop_first().expect("non-empty");
            writer
                .write_histogram(&h, conn::LOG_INTERVAL * k as u32, conn::LOG_INTERVAL, None)
                .map_err(|e| anyhow!("cannot write the hdr log: {e}"))?;
        }
        Ok(())
    }
}

/// Starts the interval log; timestamps in it are relative to `record_start`.
fn begin_log<'a, 'b>(
    file: &'a mut std::fs::File,
    serializer: &'b mut V2Serializer,
    record_start: Instant,
) -> anyhow::Result<IntervalLogWriter<'a, 'b, std::fs::File, V2Serializer>> {
    let now = SystemTime::now();
    let start = now.checked_sub(record_start.elapsed()).unwrap_or(now);
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(
            "loadgen interval log: corrected latency in nanoseconds, one histogram per second",
        )
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(file, serializer)?;
    writer.write_comment("the max column is in milliseconds")?;
    Ok(writer)
}
