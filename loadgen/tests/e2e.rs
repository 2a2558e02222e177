//! End-to-end tests: the built `loadgen` binary against `loadgen serve` and against
//! tiny misbehaving std::net backends in this file. Everything binds 127.0.0.1 on
//! ephemeral ports; child processes are killed when their guard drops.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{loadgen, Guard, BIN, MIN};

/// Starts `loadgen serve` on an ephemeral port; returns the guard and the port.
fn serve(extra: &[&str]) -> (Guard, u16) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn loadgen serve");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve prints its address");
    let port = line
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (guard, port)
}

fn assert_no_errors(v: &Value) {
    for kind in ["connect", "timeout", "reset", "malformed", "closed"] {
        assert_eq!(v["errors"][kind], 0, "errors.{kind} in {v}");
    }
}

#[test]
fn exact_count_closed_loop() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(&["-n", "1000", "-c", "8", "-t", "1", "--json", &url], MIN);
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 1000);
    assert_eq!(v["status"], serde_json::json!({"200": 1000}));
    assert_no_errors(&v);
    assert_eq!(v["connections"], 8);
    assert_eq!(v["threads"], 1);
    assert!(v["rate"].is_null());
    // Every response is 12 body bytes plus a head.
    assert!(v["bytes"].as_u64().unwrap() > 12 * 1000);
    let lat = &v["latency_us"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0);
    assert!(lat["p50"].as_f64() <= lat["p99"].as_f64());
    assert!(lat["p99"].as_f64() <= lat["max"].as_f64());
    assert!(lat["min"].as_f64() <= lat["p50"].as_f64());
    // Closed loop: intended time is the send time.
    assert_eq!(v["latency_us"], v["latency_uncorrected_us"]);
}

#[test]
fn open_loop_holds_the_rate() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(
        &[
            "-R", "2000", "-d", "2s", "-c", "8", "-t", "1", "--json", &url,
        ],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["rate"], 2000.0);
    // An open-loop generator never sends ahead of its schedule, however fast the
    // server: at most rate x duration requests (plus one in flight per connection).
    // How close it gets to the rate depends on the machine and is left to benchmarks.
    let requests = v["requests"].as_f64().unwrap();
    let duration = v["duration_s"].as_f64().unwrap();
    assert!(duration >= 1.9, "ended early: {duration}");
    assert!(requests > 0.0);
    assert!(
        requests <= 2000.0 * duration + 8.0,
        "{requests} requests in {duration} s exceed the 2000/s schedule"
    );
    assert_no_errors(&v);
}

#[test]
fn open_loop_corrects_for_a_slow_server() {
    // 50 ms per response on one connection, asked for 100 req/s: requests queue up
    // behind each other, and the corrected latency must show that wait.
    let (_server, port) = serve(&["--delay", "50"]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(
        &[
            "-R", "100", "-d", "1s", "-c", "1", "-t", "1", "--json", &url,
        ],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    let corrected = v["latency_us"]["max"].as_f64().unwrap();
    let uncorrected = v["latency_uncorrected_us"]["max"].as_f64().unwrap();
    assert!(
        corrected > 2.0 * uncorrected,
        "corrected {corrected} vs {uncorrected}"
    );
}

#[test]
fn pipelining_is_exact() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(
        &[
            "--pipeline",
            "4",
            "-n",
            "400",
            "-c",
            "3",
            "-t",
            "1",
            "--json",
            &url,
        ],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 400);
    assert_eq!(v["status"]["200"], 400);
    assert_no_errors(&v);
}

/// Both socket paths on both sides (io_uring engine, glommio fallback), and both ways
/// `loadgen serve` holds an idle connection, count exactly, pipelined or not.
#[test]
fn every_io_path_is_exact() {
    for (serve_args, client_engine) in [
        (&["--io-engine", "glommio"][..], "uring"),
        (&["--io-engine", "uring", "--idle", "task"][..], "glommio"),
        (&["--io-engine", "uring", "--idle", "park"][..], "auto"),
    ] {
        let (_server, port) = serve(serve_args);
        let url = format!("http://127.0.0.1:{port}/");
        for pipeline in ["1", "3"] {
            let args = [
                "--io-engine",
                client_engine,
                "--pipeline",
                pipeline,
                "-n",
                "600",
                "-c",
                "5",
                "-t",
                "1",
                "--json",
                &url,
            ];
            let out = loadgen(&args, MIN);
            assert!(
                out.status.success(),
                "{args:?} {serve_args:?}: {}",
                out.stderr
            );
            let v = out.json();
            assert_eq!(v["requests"], 600, "{args:?} {serve_args:?}");
            assert_eq!(v["status"]["200"], 600, "{args:?} {serve_args:?}");
            assert_no_errors(&v);
        }
    }
}

#[test]
fn several_urls_and_head() {
    let (_server, port) = serve(&["--body-size", "100000"]);
    let a = format!("http://127.0.0.1:{port}/a");
    let b = format!("http://127.0.0.1:{port}/b?x=1");
    let out = loadgen(&["-n", "90", "-c", "2", "--json", &a, &b], MIN);
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 90);
    assert!(v["bytes"].as_u64().unwrap() >= 90 * 100_000);
    // HEAD: the Content-Length says 100000 but no body follows.
    let out = loadgen(
        &[
            "-m",
            "HEAD",
            "--pipeline",
            "3",
            "-n",
            "60",
            "-c",
            "2",
            "--json",
            &a,
        ],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 60);
    assert!(v["bytes"].as_u64().unwrap() < 60 * 1000);
    assert_no_errors(&v);
}

#[test]
fn human_summary_is_printed() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(
        &["-d", "300ms", "-c", "2", "--latency-uncorrected", &url],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    for needle in [
        "Requests",
        "p99.9",
        "uncorrected",
        "200: ",
        "Errors      none",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle} missing from\n{}",
            out.stdout
        );
    }
    // Not a terminal: no progress line.
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn hdr_log_is_written() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let path = std::env::temp_dir().join(format!("loadgen-test-{}.hlog", std::process::id()));
    let p = path.to_str().unwrap();
    let out = loadgen(
        &["-d", "2s", "-c", "2", "--hdr-log", p, "--json", &url],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let log = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut total = 0u64;
    let mut intervals = 0;
    for h in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(i) = h.unwrap() {
            let bytes = base64_decode(i.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut &bytes[..])
                .unwrap();
            total += h.len();
            intervals += 1;
        }
    }
    assert!(intervals >= 2, "{intervals} intervals");
    assert_eq!(total, out.json()["requests"].as_u64().unwrap());
}

/// Standard base64 (the interval log's encoding), to avoid a dependency.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}

/// What the test backend does with the k-th request it receives.
enum Reply {
    /// Write these bytes and keep the connection.
    Send(Vec<u8>),
    /// Write these bytes and close.
    SendAndClose(Vec<u8>),
    /// Read the request, never answer.
    Silence,
}

/// A small threaded std::net backend; `handler(k, body)` answers request k.
struct Backend {
    port: u16,
    requests: Arc<AtomicUsize>,
}

fn backend(handler: impl Fn(usize, &[u8]) -> Reply + Send + Sync + 'static) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let handler = handler.clone();
            let counter = counter.clone();
            thread::spawn(move || serve_one(stream, &*handler, &counter));
        }
    });
    Backend { port, requests }
}

fn serve_one(mut s: TcpStream, handler: &dyn Fn(usize, &[u8]) -> Reply, counter: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request: head, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let k = counter.fetch_add(1, Ordering::SeqCst);
        let reply = handler(k, &buf[head_end..head_end + len]);
        buf.drain(..head_end + len);
        match reply {
            Reply::Send(bytes) => {
                if s.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = s.write_all(&bytes);
                return;
            }
            Reply::Silence => {}
        }
    }
}

fn ok_response() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
}

#[test]
fn post_body_reaches_the_server() {
    let b = backend(|_, body| {
        if body == b"hello world" {
            Reply::Send(ok_response())
        } else {
            Reply::Send(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n".to_vec())
        }
    });
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = loadgen(
        &[
            "-m",
            "POST",
            "--body",
            "hello world",
            "-n",
            "200",
            "-c",
            "4",
            "--json",
            &url,
        ],
        MIN,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 200);
    assert_eq!(v["status"], serde_json::json!({"200": 200}));
    assert_eq!(b.requests.load(Ordering::SeqCst), 200);

    // And against `loadgen serve`, with a body from a file and pipelining.
    let (_server, port) = serve(&[]);
    let path = std::env::temp_dir().join(format!("loadgen-body-{}", std::process::id()));
    std::fs::write(&path, vec![b'x'; 20_000]).unwrap();
    let url = format!("http://127.0.0.1:{port}/upload");
    let out = loadgen(
        &[
            "-m",
            "PUT",
            "--body-file",
            path.to_str().unwrap(),
            "--pipeline",
            "2",
            "-n",
            "100",
            "-c",
            "2",
            "--json",
            &url,
        ],
        MIN,
    );
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.json()["requests"], 100);
}

#[test]
fn closed_mid_response_counts_errors_exactly() {
    // Every third request gets half a response, then the connection closes.
    let cut = Arc::new(AtomicUsize::new(0));
    let cut2 = cut.clone();
    let b = backend(move |k, _| {
        if k % 3 == 2 {
            cut2.fetch_add(1, Ordering::SeqCst);
            Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec())
        } else {
            Reply::Send(ok_response())
        }
    });
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = loadgen(&["-n", "300", "-c", "4", "-t", "1", "--json", &url], MIN);
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    let cut = cut.load(Ordering::SeqCst) as u64;
    let served = b.requests.load(Ordering::SeqCst) as u64;
    assert_eq!(served, 300);
    assert_eq!(v["errors"]["closed"].as_u64().unwrap(), cut);
    assert_eq!(v["requests"].as_u64().unwrap(), 300 - cut);
    assert_eq!(v["status"]["200"].as_u64().unwrap(), 300 - cut);
    assert!(cut >= 90);
}

#[test]
fn connection_close_chunked_and_until_close_responses() {
    let b = backend(|k, _| {
        match k % 3 {
        0 => Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
        1 => Reply::Send(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n"
                .to_vec(),
        ),
        _ => Reply::SendAndClose(b"HTTP/1.0 202 Accepted\r\n\r\nbody until close".to_vec()),
    }
    });
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = loadgen(&["-n", "150", "-c", "3", "--json", &url], MIN);
    assert!(out.status.success(), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 150);
    assert_eq!(
        v["status"],
        serde_json::json!({"200": 50, "201": 50, "202": 50})
    );
    assert_no_errors(&v);
}

#[test]
fn garbage_backend_fails_with_a_message() {
    let b = backend(|_, _| Reply::Send(b"SPDY/9 what is this\r\n\r\n".to_vec()));
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = loadgen(&["-n", "50", "-c", "2", "--json", &url], MIN);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("malformed"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requests"], 0);
    assert_eq!(v["errors"]["malformed"], 50);
}

#[test]
fn timeouts_are_counted_and_end_the_run() {
    let b = backend(|_, _| Reply::Silence);
    let url = format!("http://127.0.0.1:{}/", b.port);
    let out = loadgen(
        &["-n", "4", "-c", "2", "--timeout", "300ms", "--json", &url],
        MIN,
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.json()["errors"]["timeout"], 4);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}

#[test]
fn unreachable_target_exits_quickly() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let out = loadgen(&["-d", "30s", "-c", "4", &url], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        out.stderr.trim(),
        format!("loadgen: connect to 127.0.0.1:{port}: Connection refused")
    );
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}

#[test]
fn bad_input_is_rejected() {
    for args in [
        &["not-a-url"][..],
        &["http://127.0.0.1:99999/"],
        &["ftp://127.0.0.1/"],
        &["-c", "0", "http://127.0.0.1:1/"],
        &["-R", "-5", "http://127.0.0.1:1/"],
        &["-d", "ten", "http://127.0.0.1:1/"],
        &["-H", "NoColon", "http://127.0.0.1:1/"],
        &["--body-file", "/nonexistent/file", "http://127.0.0.1:1/"],
        &[],
    ] {
        let out = loadgen(args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    let out = loadgen(&["http://exa mple/"], Duration::from_secs(10));
    assert!(out.stderr.contains("malformed URL"), "{}", out.stderr);
}

#[test]
fn serve_handles_pipelined_and_chunked_requests() {
    let (_server, port) = serve(&["--body-size", "5"]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /c HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody\
          HEAD /d HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
    assert_eq!(text.matches("Hello").count(), 3, "{text}");
    assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
}

#[test]
fn ctrl_c_reports_what_was_measured() {
    let (_server, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}/");
    let child = Command::new(BIN)
        .args(["-d", "60s", "-c", "2", "--json", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut guard = Guard(child);
    thread::sleep(Duration::from_millis(1500));
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGINT"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut stdout = String::new();
    guard
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["requests"].as_u64().unwrap() > 0);
    assert!(v["duration_s"].as_f64().unwrap() < 10.0);
    assert!(stderr.contains("interrupted"), "{stderr}");
}
