//! Large bodies stream through with flat memory: a 1 GiB upload and a 1 GiB download
//! while the gateway's VmRSS is sampled; it must stay under 64 MiB. That is a memory
//! bound, not a timing one. Bytes are generated and checked on the fly (see
//! `common::pattern`). `PORTICO_BIG_BYTES` overrides the size (default 1 GiB); the
//! elapsed time is printed for information only.

mod common;

use common::{Backend, Client, Gateway, Pattern, PatternCheck, Reply};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn big_bytes() -> u64 {
    std::env::var("PORTICO_BIG_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

/// Samples the gateway's VmRSS every 20 ms until dropped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: i32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let (s, m, n) = (stop.clone(), max.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = common::gateway::rss_kib(pid) {
                    m.fetch_max(kib, Ordering::Relaxed);
                    n.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            stop,
            max,
            samples,
            thread: Some(thread),
        }
    }

    /// (max KiB, number of samples)
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.max.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

fn config(backend: &Backend) -> String {
    format!(
        r#"
apis:
  - id: big
    path: big
    serviceUrl: {}
    timeout: 600s
    maxRequestBodySize: 1099511627776
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    )
}

fn report(what: &str, n: u64, started: Instant, max_kib: u64, samples: u64, baseline: Option<u64>) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{what}: {n} bytes in {secs:.1} s ({:.0} MiB/s); gateway VmRSS max {} KiB over {samples} samples (before: {baseline:?} KiB)",
        n as f64 / 1048576.0 / secs.max(0.001),
        max_kib
    );
}

#[test]
fn a_large_upload_streams_with_flat_memory() {
    let n = big_bytes();
    let backend = Backend::start(|r| Reply::ok(format!("{} {}", r.body_len, r.body_is_pattern)));
    let gw = Gateway::builder(&config(&backend)).cores(2).start();
    let baseline = gw.rss_kib();
    let sampler = RssSampler::start(gw.pid());
    let started = Instant::now();

    let mut c = Client::connect(gw.addr);
    c.timeout = Duration::from_secs(1800);
    c.send(format!(
        "POST /big/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n"
    ));
    Pattern::write_to(&mut c.stream, n).expect("upload interrupted");
    c.stream.flush().unwrap();
    let r = c.read_response_for("POST");
    let (max_kib, samples) = sampler.finish();
    report("upload", n, started, max_kib, samples, baseline);

    assert_eq!(r.status, 200, "{:?}", r.body_str());
    assert_eq!(
        r.body_str(),
        format!("{n} true"),
        "backend got (length, intact)"
    );
    assert!(samples > 0, "no RSS sample taken");
    assert!(
        max_kib < RSS_LIMIT_KIB,
        "gateway VmRSS reached {max_kib} KiB during a {n}-byte upload (limit {RSS_LIMIT_KIB} KiB)"
    );
}

#[test]
fn a_large_download_streams_with_flat_memory() {
    let n = big_bytes();
    let backend = Backend::start(move |_| {
        Reply::Stream(Box::new(move |w| {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            w.write_all(head.as_bytes()).is_ok() && Pattern::write_to(w, n).is_ok()
        }))
    });
    let gw = Gateway::builder(&config(&backend)).cores(2).start();
    let baseline = gw.rss_kib();
    let sampler = RssSampler::start(gw.pid());
    let started = Instant::now();

    let mut c = Client::connect(gw.addr);
    c.timeout = Duration::from_secs(1800);
    c.send(common::get_req("/big/download"));
    let mut check = PatternCheck::new();
    let r = c
        .try_read_response("GET", Some(&mut |d: &[u8]| check.feed(d)))
        .unwrap_or_else(|e| panic!("download: {e}"));
    let (max_kib, samples) = sampler.finish();
    report("download", n, started, max_kib, samples, baseline);

    assert_eq!(r.status, 200);
    assert_eq!(r.body_len, n);
    assert_eq!(
        check.first_bad(),
        None,
        "downloaded bytes differ from what the backend sent"
    );
    assert!(samples > 0, "no RSS sample taken");
    assert!(
        max_kib < RSS_LIMIT_KIB,
        "gateway VmRSS reached {max_kib} KiB during a {n}-byte download (limit {RSS_LIMIT_KIB} KiB)"
    );
}
