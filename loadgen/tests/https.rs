//! HTTPS end to end: the built `loadgen` binary against a real rustls server in this
//! file, with a self-signed certificate generated when the test runs. Checks exact
//! counts over TLS on both I/O paths and with pipelining, that certificates are
//! verified unless `--insecure` is given, and that a target which does not speak TLS
//! gives a clear message and a non-zero exit. Binds 127.0.0.1 on ephemeral ports.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

mod common;

use common::{loadgen, MIN};

const BODY: &[u8] = b"hello over tls";

/// A threaded HTTPS/1.1 server: answers every request on a keep-alive connection
/// with 200 and [`BODY`]; counts requests and completed handshakes.
struct TlsServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

fn tls_server() -> TlsServer {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (req, hs) = (requests.clone(), handshakes.clone());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (config, req, hs) = (config.clone(), req.clone(), hs.clone());
            thread::spawn(move || serve_tls(stream, config, &req, &hs));
        }
    });
    TlsServer {
        port,
        requests,
        handshakes,
    }
}

fn serve_tls(tcp: TcpStream, config: Arc<ServerConfig>, req: &AtomicUsize, hs: &AtomicUsize) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut counted_handshake = false;
    loop {
        // Answer every complete head in the buffer (pipelined requests included).
        while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..i + 4);
            req.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
                BODY.len()
            );
            let mut reply = head.into_bytes();
            reply.extend_from_slice(BODY);
            if tls.write_all(&reply).and_then(|_| tls.flush()).is_err() {
                return;
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if !counted_handshake && !tls.conn.is_handshaking() {
            counted_handshake = true;
            hs.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn https_counts_are_exact_on_both_io_paths_and_pipelined() {
    let server = tls_server();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let mut expected = 0;
    for engine in ["uring", "glommio"] {
        for pipeline in ["1", "4"] {
            let args = [
                "--insecure",
                "--io-engine",
                engine,
                "--pipeline",
                pipeline,
                "-n",
                "400",
                "-c",
                "4",
                "-t",
                "1",
                "--json",
                &url,
            ];
            let out = loadgen(&args, MIN);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
            let v = out.json();
            assert_eq!(v["requests"], 400, "{args:?}: {v}");
            assert_eq!(v["status"], serde_json::json!({"200": 400}), "{args:?}");
            for kind in ["connect", "timeout", "reset", "malformed", "closed"] {
                assert_eq!(v["errors"][kind], 0, "errors.{kind} {args:?}: {v}");
            }
            // Decrypted bytes: every response carries the body.
            assert!(
                v["bytes"].as_u64().unwrap() >= 400 * BODY.len() as u64,
                "{v}"
            );
            // No warm-up: the server saw exactly the requests loadgen counted.
            expected += 400;
            assert_eq!(server.requests.load(Ordering::SeqCst), expected, "{args:?}");
        }
    }
    // Four keep-alive connections per run, each one handshake.
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 16);
}

#[test]
fn certificates_are_verified_unless_insecure() {
    let server = tls_server();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let out = loadgen(&["-n", "10", "-c", "1", "-t", "1", &url], MIN);
    assert_eq!(out.status.code(), Some(2), "{}", out.stdout);
    let msg = out.stderr.trim();
    assert!(
        msg.starts_with(&format!("loadgen: connect to 127.0.0.1:{}:", server.port))
            && msg.contains("certificate"),
        "{msg}"
    );
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}

#[test]
fn a_target_that_does_not_speak_tls_fails_clearly() {
    // A plain HTTP server: it answers the ClientHello with an HTTP 400 and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = format!("https://127.0.0.1:{port}/");
    let out = loadgen(
        &["--insecure", "-d", "30s", "-c", "2", "-t", "1", &url],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stdout);
    let msg = out.stderr.trim();
    assert!(
        msg.starts_with(&format!("loadgen: connect to 127.0.0.1:{port}:"))
            && msg.contains("corrupt message"),
        "{msg}"
    );
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}
