//! Shared helpers of the end-to-end suites: a gateway process started on a temporary
//! config (`gateway`), a recording backend on std::net threads (`backend`), a raw TCP
//! client that reads responses with exact framing (`client`), and a deterministic byte
//! pattern for large transfers (`pattern`).
//!
//! Everything binds to 127.0.0.1 ephemeral ports. A gateway is killed when its guard is
//! dropped (also while a test panics), and it also gets SIGKILL if the thread that
//! started it dies, so no process outlives the test run.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod gateway;
pub mod pattern;

pub use backend::{Backend, ConnLog, Gate, Reply, Request};
pub use client::{Client, Closed, Response};
pub use gateway::{Gateway, TempDir};
pub use pattern::{Pattern, PatternCheck};

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it is true or `timeout` passes; returns whether it
/// became true. For things that must happen, with a generous bound.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shows bytes readably in failure messages (escapes, truncated to `max`).
pub fn show(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push_str(&format!("...({} bytes in all)", bytes.len()));
    }
    s
}

/// A minimal HTTP/1.1 GET with a Host header, as bytes.
pub fn get_req(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").into_bytes()
}

/// The YAML (flow style, safe to paste inside a document) of an operation forwarding
/// every method and path.
pub const ANY_OP: &str = r#"{ id: any, method: "*", urlTemplate: "/*" }"#;
