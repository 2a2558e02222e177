//! Connections: the request loop of one executor thread.
//!
//! Owns what happens per request: when it is sent (closed loop: as soon as a slot is
//! free; open loop: at its intended time from a [`Schedule`]), the write of
//! pre-serialised bytes (one `send` per batch), the read into a per-connection
//! buffer, framing with [`ResponseParser`], and recording into the thread's
//! [`Stats`]. Nothing here allocates per request or touches another thread's data.
//!
//! Latency is measured from the intended send time (the wrk2 correction for
//! coordinated omission) and, separately, from the actual send time. In closed loop
//! the two are the same.
//!
//! Sockets are the thread's io_uring engine's (one `io_uring_enter` per executor tick
//! for all of the thread's connections) or glommio's, see [`crate::transport`].
//!
//! Timeouts and the end of a timed run cost next to nothing per request: a per-thread
//! watchdog task looks at each connection's oldest outstanding request a few times a
//! second and fires the connection's [`Kick`] when it is late (or the run is over);
//! the connection's pending read or write then ends with an error and the loop sees
//! why.
//!
//! When a connection fails, its oldest outstanding request counts as the error;
//! requests pipelined behind it are sent again on the new connection, keeping their
//! intended times. So every request ends exactly once, as a response or as an error,
//! which is what makes `-n` exact.

use crate::engine::IoEngine;
use crate::request::Prepared;
use crate::response::{Eof, ResponseParser};
use crate::stats::{new_histogram, ErrorKind, Stats};
use crate::transport::{connect, sleep_until, Kick, Transport};
use futures_lite::future;
use hdrhistogram::Histogram;
use portico_io::uring::Engine;
use portico_io::RecvBuf;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Read buffer per connection; it grows (up to [`MAX_READ_BUF`]) only for huge heads.
const READ_BUF: usize = 16 * 1024;
const MAX_READ_BUF: usize = 1024 * 1024;
/// Interval of the `--hdr-log` histograms.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One origin (address, TLS settings) and the requests sent to it.
pub struct Target {
    pub addr: SocketAddr,
    /// Printed in error messages, e.g. `127.0.0.1:8080`.
    pub label: String,
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// The URLs of this origin, used round robin.
    pub requests: Vec<Prepared>,
}

/// Settings of a run, identical for every thread.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub connections: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub hdr_log: bool,
    pub progress: bool,
    pub io_engine: IoEngine,
}

/// Carries `(thread, interval index, histogram)` to the main thread for `--hdr-log`.
pub type IntervalSender = mpsc::Sender<(usize, u64, Histogram<u64>)>;

/// State shared by all threads; touched only at start, at the end, and by the
/// watchdogs a few times a second.
pub struct Shared {
    pub start: OnceLock<Instant>,
    pub barrier: Barrier,
    /// Connections whose first attempt to connect succeeded.
    pub connected: AtomicUsize,
    /// Set when the run must stop now (every connection failed).
    pub abort: AtomicBool,
    pub fatal: Mutex<Option<String>>,
    /// Completed responses per thread, for the progress line.
    pub progress: Vec<AtomicU64>,
    /// Interval histograms for `--hdr-log`: (thread, interval index, histogram).
    pub intervals: Mutex<Option<IntervalSender>>,
    /// Threads that have returned (or panicked).
    pub finished: AtomicUsize,
    /// Set by the first Ctrl-C / SIGTERM: end the run now and report what was measured.
    pub interrupted: Arc<AtomicBool>,
}

impl Shared {
    pub fn new(threads: usize, intervals: Option<IntervalSender>) -> Self {
        Shared {
            start: OnceLock::new(),
            barrier: Barrier::new(threads),
            connected: AtomicUsize::new(0),
            abort: AtomicBool::new(false),
            fatal: Mutex::new(None),
            progress: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            intervals: Mutex::new(intervals),
            finished: AtomicUsize::new(0),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Intended send times of one connection in open loop.
///
/// The total rate is split evenly over the connections, and connection `i` starts
/// `i / rate` seconds in, so that the sends of all connections interleave evenly.
/// Times are computed from the start (not by adding intervals) so they never drift.
#[derive(Debug, Clone)]
pub struct Schedule {
    first: Instant,
    interval_ns: f64,
    k: u64,
}

impl Schedule {
    pub fn new(start: Instant, total_rate: f64, connections: usize, index: usize) -> Schedule {
        let per_connection = total_rate / connections as f64;
        let offset_ns = index as f64 * 1e9 / total_rate;
        Schedule {
            first: start + Duration::from_nanos(offset_ns as u64),
            interval_ns: 1e9 / per_connection,
            k: 0,
        }
    }

    /// The intended send time of the next request.
    pub fn next(&self) -> Instant {
        self.first + Duration::from_nanos((self.k as f64 * self.interval_ns) as u64)
    }

    pub fn advance(&mut self) {
        self.k += 1;
    }
}

/// The share of `total` that part `i` of `parts` gets; shares differ by at most one
/// and add up to `total`.
pub fn split_evenly(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    let i = i as u64;
    total / parts + u64::from(i < total % parts)
}

/// Runs one executor thread's connections `first..first + count` (global indices).
pub async fn run_thread(
    thread: usize,
    first: usize,
    count: usize,
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
    targets: Arc<Vec<Target>>,
) -> Stats {
    // Counts this thread as finished however it ends, even by a panic.
    struct Finished(Arc<Shared>);
    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.finished.fetch_add(1, Ordering::Release);
        }
    }
    let _finished = Finished(shared.clone());
    let mut stats = Stats::new();
    let engine = match crate::engine::start(cfg.io_engine) {
        Ok(engine) => engine,
        Err(message) => {
            shared
                .fatal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(message);
            shared.abort.store(true, Ordering::Relaxed);
            // Every thread meets the barrier, so none waits forever for this one.
            shared.barrier.wait();
            return stats;
        }
    };

    // Open every connection first, so that the clock starts with all of them ready
    // and so that a target nobody can reach stops the run at once.
    let attempts: Vec<_> = (first..first + count)
        .map(|i| {
            let targets = targets.clone();
            let timeout = cfg.connect_timeout;
            let engine = engine.clone();
            portico_io::spawn_local(async move {
                let target = &targets[i % targets.len()];
                connect(engine.as_ref(), target, timeout, None).await
            })
        })
        .collect();
    let mut initial = Vec::with_capacity(count);
    for attempt in attempts {
        match attempt.await {
            Ok(t) => {
                shared.connected.fetch_add(1, Ordering::Relaxed);
                initial.push(Some(t));
            }
            Err(e) => {
                stats.error(ErrorKind::Connect, || e.clone());
                initial.push(None);
            }
        }
    }
    // Blocking here is fine: every task of this executor has finished.
    shared.barrier.wait();
    let start = *shared.start.get_or_init(Instant::now);
    if shared.abort.load(Ordering::Relaxed) {
        return stats;
    }
    if shared.connected.load(Ordering::Relaxed) == 0 {
        let mut fatal = shared.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if fatal.is_none() {
            *fatal = stats.error_samples[ErrorKind::Connect as usize].clone();
        }
        shared.abort.store(true, Ordering::Relaxed);
        return stats;
    }

    let record_start = start + cfg.warmup;
    let quota = cfg.requests.map(|n| {
        (first..first + count)
            .map(|i| split_evenly(n, cfg.connections, i))
            .sum::<u64>()
    });
    let t = Rc::new(ThreadState {
        thread,
        record_start,
        deadline: cfg.duration.map(|d| record_start + d),
        quota: Cell::new(quota),
        stop: Cell::new(false),
        live: Cell::new(count),
        slots: RefCell::new(Vec::with_capacity(count)),
        stats: RefCell::new(stats),
        interval: RefCell::new(cfg.hdr_log.then(new_histogram)),
        engine,
        cfg,
        shared,
        targets,
    });

    let watchdog = portico_io::spawn_local(watchdog(t.clone()));
    let tasks: Vec<_> = initial
        .into_iter()
        .enumerate()
        .map(|(k, transport)| {
            let t = t.clone();
            let index = first + k;
            let schedule = t
                .cfg
                .rate
                .map(|r| Schedule::new(start, r, t.cfg.connections, index));
            portico_io::spawn_local(async move {
                Connection::new(t.clone(), index, schedule)
                    .run(transport)
                    .await;
                t.live.set(t.live.get() - 1);
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    t.stop.set(true);
    watchdog.await;
    t.stats.replace(Stats::new())
}

/// Per-thread state shared by its connection tasks (single-threaded: `Cell`s).
struct ThreadState {
    thread: usize,
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
    targets: Arc<Vec<Target>>,
    record_start: Instant,
    deadline: Option<Instant>,
    /// Measured requests this thread may still send (`-n`), shared by its
    /// connections so that fast ones take more.
    quota: Cell<Option<u64>>,
    stop: Cell<bool>,
    live: Cell<usize>,
    slots: RefCell<Vec<Rc<Slot>>>,
    stats: RefCell<Stats>,
    interval: RefCell<Option<Histogram<u64>>>,
    /// This thread's io_uring engine, or `None` on glommio's sockets.
    engine: Option<Rc<Engine>>,
}

impl ThreadState {
    fn recording(&self, intended: Instant) -> bool {
        intended >= self.record_start
    }

    /// Whether a request intended at `intended` may be sent, taking it from the quota.
    fn take(&self, intended: Instant) -> bool {
        if self.stop.get() {
            return false;
        }
        if !self.recording(intended) {
            return true;
        }
        match self.quota.get() {
            None => true,
            Some(0) => false,
            Some(q) => {
                self.quota.set(Some(q - 1));
                true
            }
        }
    }

    /// No more measured requests will be sent.
    fn exhausted(&self) -> bool {
        self.stop.get() || self.quota.get() == Some(0)
    }

    fn record(&self, p: &Pending, status: u16, now: Instant) {
        if !self.recording(p.intended) || self.deadline.is_some_and(|d| now > d) {
            return;
        }
        let corrected = now.saturating_duration_since(p.intended).as_nanos() as u64;
        let uncorrected = now.saturating_duration_since(p.sent).as_nanos() as u64;
        self.stats
            .borrow_mut()
            .record(status, corrected, uncorrected, now);
        if let Some(h) = self.interval.borrow_mut().as_mut() {
            h.saturating_record(corrected.clamp(1, crate::stats::MAX_LATENCY_NS));
        }
    }

    fn error(&self, p: &Pending, kind: ErrorKind, message: impl FnOnce() -> String) {
        if self.recording(p.intended) && !self.stop.get() {
            self.stats.borrow_mut().error(kind, message);
        }
    }
}

/// What the watchdog knows of one connection.
struct Slot {
    /// A connection is open (not between connections).
    open: Cell<bool>,
    /// Actual send time of the oldest outstanding request.
    oldest: Cell<Option<Instant>>,
    /// Set by the watchdog when it kicked the connection for a late response.
    timed_out: Cell<bool>,
    /// Ends the connection's pending read or write.
    kick: Kick,
}

/// A request on the wire (or waiting to be sent again after a reconnect).
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Index into the target's requests.
    request: usize,
    intended: Instant,
    sent: Instant,
}

pub use crate::transport::describe;

/// Enforces `--timeout`, ends timed runs, publishes progress and interval
/// histograms. Wakes a few times a second; costs nothing per request.
async fn watchdog(t: Rc<ThreadState>) {
    let tick = (t.cfg.timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let mut next_interval = t.record_start + LOG_INTERVAL;
    let mut interval_index = 0u64;
    loop {
        let now = Instant::now();
        let over = t.deadline.is_some_and(|d| now >= d)
            || t.shared.abort.load(Ordering::Relaxed)
            || t.shared.interrupted.load(Ordering::Relaxed);
        if over && !t.stop.get() {
            t.stop.set(true);
            for slot in t.slots.borrow().iter() {
                if slot.open.get() {
                    slot.kick.fire();
                }
            }
        }
        for slot in t.slots.borrow().iter() {
            let late = slot
                .oldest
                .get()
                .is_some_and(|sent| now.saturating_duration_since(sent) >= t.cfg.timeout);
            if late && slot.open.get() && !slot.timed_out.get() {
                slot.timed_out.set(true);
                slot.kick.fire();
            }
        }
        if t.cfg.progress {
            t.shared.progress[t.thread].store(t.stats.borrow().requests, Ordering::Relaxed);
        }
        let finished = t.live.get() == 0;
        if t.cfg.hdr_log && now >= t.record_start {
            while now >= next_interval || finished {
                let h = t.interval.borrow_mut().as_mut().map(|h| {
                    let copy = h.clone();
                    h.reset();
                    copy
                });
                let sender = t.shared.intervals.lock().ok().and_then(|s| s.clone());
                if let (Some(h), Some(sender)) = (h, sender) {
                    // The run's last, partial interval is only worth a line if it has data.
                    if !(finished && h.is_empty() && interval_index > 0) {
                        let _ = sender.send((t.thread, interval_index, h));
                    }
                }
                interval_index += 1;
                next_interval += LOG_INTERVAL;
                if finished {
                    break;
                }
            }
        }
        if finished {
            return;
        }
        let mut wake = now + tick;
        if let Some(d) = t.deadline {
            if d > now {
                wake = wake.min(d);
            }
        }
        if t.cfg.hdr_log && next_interval > now {
            wake = wake.min(next_interval);
        }
        sleep_until(wake).await;
    }
}

/// Why [`Connection::drive`] returned.
enum End {
    /// Nothing more to send on any connection.
    Finished,
    /// This connection is unusable; open another and carry on.
    Reconnect,
}

/// One connection's loop, across reconnects.
struct Connection {
    t: Rc<ThreadState>,
    target: usize,
    slot: Rc<Slot>,
    schedule: Option<Schedule>,
    /// Round-robin position over the target's URLs.
    next_request: usize,
    pending: VecDeque<Pending>,
    parser: ResponseParser,
    rbuf: RecvBuf,
    wbuf: Vec<u8>,
}

impl Connection {
    fn new(t: Rc<ThreadState>, index: usize, schedule: Option<Schedule>) -> Connection {
        let slot = Rc::new(Slot {
            open: Cell::new(false),
            oldest: Cell::new(None),
            timed_out: Cell::new(false),
            kick: Kick::default(),
        });
        t.slots.borrow_mut().push(slot.clone());
        let pipeline = t.cfg.pipeline;
        let target = index % t.targets.len();
        Connection {
            target,
            slot,
            schedule,
            next_request: index / t.targets.len(),
            pending: VecDeque::with_capacity(pipeline),
            parser: ResponseParser::new(),
            rbuf: RecvBuf::new(READ_BUF, MAX_READ_BUF),
            wbuf: Vec::new(),
            t,
        }
    }

    async fn run(mut self, mut transport: Option<Transport>) {
        let mut backoff = Duration::from_millis(1);
        loop {
            if self.t.stop.get() || (self.pending.is_empty() && self.t.exhausted()) {
                break;
            }
            let mut tr = match transport.take() {
                Some(tr) => tr,
                None => {
                    let target = &self.t.targets[self.target];
                    let engine = self.t.engine.as_ref();
                    match connect(engine, target, self.t.cfg.connect_timeout, self.t.deadline).await
                    {
                        Ok(tr) => {
                            backoff = Duration::from_millis(1);
                            tr
                        }
                        Err(message) => {
                            if self.t.stop.get() {
                                break;
                            }
                            self.connect_failed(message);
                            sleep_until(Instant::now() + backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(100));
                            continue;
                        }
                    }
                }
            };
            self.slot.kick.reset();
            self.slot.timed_out.set(false);
            self.slot.open.set(true);
            let end = self.drive(&mut tr).await;
            self.slot.open.set(false);
            self.slot.oldest.set(None);
            drop(tr);
            if let End::Finished = end {
                break;
            }
        }
        self.slot.open.set(false);
        self.slot.oldest.set(None);
    }

    /// A failed connection attempt costs one request: the one that could not be sent
    /// (the oldest waiting to be re-sent, or the next new one). So `-n` always ends,
    /// even against a dead server.
    fn connect_failed(&mut self, message: String) {
        let now = Instant::now();
        let p = match self.pending.pop_front() {
            Some(p) => p,
            None => {
                let intended = self.schedule.as_ref().map_or(now, Schedule::next);
                if !self.t.take(intended) {
                    return;
                }
                if let Some(s) = self.schedule.as_mut() {
                    s.advance();
                }
                Pending {
                    request: 0,
                    intended,
                    sent: now,
                }
            }
        };
        if self.t.recording(p.intended) {
            self.t
                .stats
                .borrow_mut()
                .error(ErrorKind::Connect, || message);
        }
    }

    /// Sends and receives on one connection until it must be replaced or the run ends.
    async fn drive(&mut self, tr: &mut Transport) -> End {
        self.parser.reset();
        self.rbuf.consume(self.rbuf.len());
        let slot = self.slot.clone();
        let kick = &slot.kick;
        let pipeline = self.t.cfg.pipeline;
        let open_loop = self.schedule.is_some();

        // Requests that were in flight on the previous connection go first.
        if !self.pending.is_empty() {
            let now = Instant::now();
            self.wbuf.clear();
            let target = &self.t.targets[self.target];
            for p in self.pending.iter_mut() {
                p.sent = now;
                self.wbuf
                    .extend_from_slice(&target.requests[p.request].bytes);
            }
            if let Err(e) = kick.guard(tr.write_all(&self.wbuf)).await {
                return self.failed(ErrorKind::Reset, &e);
            }
        }

        loop {
            // Send what may be sent now, in one write.
            let sent = self.issue(pipeline);
            if sent > 0 {
                let target = &self.t.targets[self.target];
                let bytes = if sent == 1 && self.wbuf.is_empty() {
                    let p = self.pending.back().expect("just pushed");
                    &target.requests[p.request].bytes[..]
                } else {
                    &self.wbuf[..]
                };
                let result = kick.guard(tr.write_all(bytes)).await;
                if let Err(e) = result {
                    return self.failed(ErrorKind::Reset, &e);
                }
            }
            self.slot.oldest.set(self.pending.front().map(|p| p.sent));

            if self.pending.is_empty() {
                if self.t.exhausted() {
                    return End::Finished;
                }
                match &self.schedule {
                    // Open loop, nothing in flight: wait for the next intended time.
                    Some(s) => {
                        let mut when = s.next();
                        if let Some(d) = self.t.deadline {
                            when = when.min(d);
                        }
                        sleep_until(when).await;
                        continue;
                    }
                    None => return End::Finished,
                }
            }

            // Read; in open loop with a free pipeline slot, also wake for the next send.
            let read = if open_loop && self.pending.len() < pipeline && !self.t.exhausted() {
                let when = self
                    .schedule
                    .as_ref()
                    .map(Schedule::next)
                    .expect("open loop");
                let rbuf = &mut self.rbuf;
                let reading = async { Some(kick.guard(tr.read(rbuf)).await) };
                let waiting = async {
                    sleep_until(when).await;
                    None
                };
                match future::or(reading, waiting).await {
                    Some(r) => r,
                    None => continue,
                }
            } else {
                kick.guard(tr.read(&mut self.rbuf)).await
            };
            let now = Instant::now();
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    if self.t.stop.get() {
                        return End::Finished;
                    }
                    let kind = if self.slot.timed_out.get() || e.kind() == io::ErrorKind::TimedOut {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Reset
                    };
                    return self.failed(kind, &e);
                }
            };
            if n == 0 {
                return self.closed(now);
            }
            if self.t.recording(now) && self.t.deadline.is_none_or(|d| now <= d) {
                self.t.stats.borrow_mut().bytes += n as u64;
            }

            // Frame every response the buffer holds.
            let filled = self.rbuf.filled();
            let mut pos = 0;
            while pos < filled.len() {
                let Some(front) = self.pending.front() else {
                    // Bytes nobody asked for.
                    self.t.stats.borrow_mut().error(ErrorKind::Malformed, || {
                        "response bytes without a request".to_string()
                    });
                    return End::Reconnect;
                };
                if self.parser.is_idle() {
                    let target = &self.t.targets[self.target];
                    self.parser
                        .expect(target.requests[front.request].no_response_body);
                }
                match self.parser.feed(&filled[pos..]) {
                    Err(e) => {
                        let p = self.pending.pop_front().expect("front exists");
                        self.t.error(&p, ErrorKind::Malformed, || e.to_string());
                        return End::Reconnect;
                    }
                    Ok(progress) => {
                        pos += progress.consumed;
                        let Some(response) = progress.complete else {
                            break;
                        };
                        let p = self.pending.pop_front().expect("front exists");
                        self.t.record(&p, response.status, now);
                        if !response.keep_alive {
                            // Requests pipelined behind it are sent again.
                            return End::Reconnect;
                        }
                    }
                }
            }
            // Keep an incomplete head at the front of the buffer (it grows up to
            // MAX_READ_BUF for a huge head).
            self.rbuf.consume(pos);
            if self.rbuf.is_full() {
                let p = self.pending.pop_front().expect("a head is in progress");
                self.t.error(&p, ErrorKind::Malformed, || {
                    "response head too large".to_string()
                });
                return End::Reconnect;
            }
            if self.t.stop.get() {
                return End::Finished;
            }
        }
    }

    /// Queues the requests that may go now; returns how many. When more than one, their
    /// bytes are in `wbuf`; a single one is written from its prepared bytes.
    fn issue(&mut self, pipeline: usize) -> usize {
        self.wbuf.clear();
        let mut count = 0;
        let now = Instant::now();
        let target = &self.t.targets[self.target];
        while self.pending.len() < pipeline {
            let intended = match &self.schedule {
                None => now,
                Some(s) if s.next() <= now => s.next(),
                Some(_) => break,
            };
            if !self.t.take(intended) {
                break;
            }
            if let Some(s) = self.schedule.as_mut() {
                s.advance();
            }
            let request = self.next_request % target.requests.len();
            self.next_request = self.next_request.wrapping_add(1);
            self.pending.push_back(Pending {
                request,
                intended,
                sent: now,
            });
            count += 1;
            if count == 2 {
                let first = self.pending[self.pending.len() - 2].request;
                self.wbuf.extend_from_slice(&target.requests[first].bytes);
            }
            if count >= 2 {
                self.wbuf.extend_from_slice(&target.requests[request].bytes);
            }
        }
        count
    }

    /// The server closed the connection.
    fn closed(&mut self, now: Instant) -> End {
        if self.t.stop.get() {
            return End::Finished;
        }
        let timed_out = self.slot.timed_out.get();
        match self.parser.eof(self.rbuf.filled()) {
            Eof::Complete(response) => {
                if let Some(p) = self.pending.pop_front() {
                    self.t.record(&p, response.status, now);
                }
            }
            Eof::Idle | Eof::Truncated => {
                if let Some(p) = self.pending.pop_front() {
                    let (kind, what) = if timed_out {
                        (ErrorKind::Timeout, "no response within the timeout")
                    } else {
                        (
                            ErrorKind::Closed,
                            "connection closed before the response was complete",
                        )
                    };
                    self.t.error(&p, kind, || what.to_string());
                }
            }
        }
        End::Reconnect
    }

    /// A read or write failed: the oldest request counts as the error.
    fn failed(&mut self, kind: ErrorKind, e: &io::Error) -> End {
        if self.t.stop.get() {
            return End::Finished;
        }
        let kind = if self.slot.timed_out.get() {
            ErrorKind::Timeout
        } else {
            kind
        };
        if let Some(p) = self.pending.pop_front() {
            self.t.error(&p, kind, || describe(e));
        }
        End::Reconnect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_evenly_adds_up() {
        for total in [0u64, 1, 7, 1000, 1001] {
            for parts in 1..10 {
                let shares: Vec<u64> = (0..parts).map(|i| split_evenly(total, parts, i)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total);
                let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(max - min <= 1);
            }
        }
        assert_eq!(split_evenly(10, 4, 0), 3);
        assert_eq!(split_evenly(10, 4, 3), 2);
    }

    #[test]
    fn schedule_spreads_rate_over_connections() {
        let start = Instant::now();
        // 1000 req/s over 4 connections: each sends every 4 ms, offset by 1 ms.
        let mut all = Vec::new();
        for i in 0..4 {
            let mut s = Schedule::new(start, 1000.0, 4, i);
            for _ in 0..250 {
                all.push(s.next().duration_since(start).as_nanos() as u64);
                s.advance();
            }
            // One second of schedule per connection is 250 requests.
            assert_eq!(
                s.next().duration_since(start).as_nanos() as u64,
                1_000_000_000 + i as u64 * 1_000_000
            );
        }
        all.sort_unstable();
        // Together: one request every millisecond, exactly.
        for (k, t) in all.iter().enumerate() {
            assert_eq!(*t, k as u64 * 1_000_000, "request {k}");
        }
    }

    #[test]
    fn schedule_does_not_drift() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 3.0, 1, 0);
        for _ in 0..3_000_000 {
            s.advance();
        }
        let at = s.next().duration_since(start);
        // 3 million requests at 3/s take 1 million seconds, to the microsecond.
        assert!((at.as_secs_f64() - 1_000_000.0).abs() < 1e-3, "{at:?}");
    }

    #[test]
    fn describe_strips_os_error() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&e), "Connection refused");
    }
}
