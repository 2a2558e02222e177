//! `portico validate FILE`: exit 0 on a good document, non-zero with every error and
//! its item path on a bad one; and `portico gateway` refusing to start on a bad one.

mod common;

use common::gateway::{run_cli, LISTENING_PREFIX};
use common::TempDir;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn validate(path: &Path) -> (bool, String) {
    let (status, out, err) = run_cli(&[OsStr::new("validate"), path.as_os_str()]);
    (status.success(), format!("{out}{err}"))
}

const GOOD_YAML: &str = r#"
gateway:
  limits: { requestLine: 8192, headerBytes: 65536, headerCount: 100, connectionsPerCore: 10000 }
  timeouts: { requestHead: 10s, keepAlive: 75, bodyIdle: "60s", upstreamConnect: 500ms, drain: 30s }
  upstream: { maxIdlePerBackend: 64, idleTimeout: 60s }
apis:
  - id: echo
    path: echo
    serviceUrl: http://127.0.0.1:9000/v1
    timeout: 300s
    maxRequestBodySize: 1048576
    hostnames: [a.example]
    operations:
      - { id: get-item,    method: GET,  urlTemplate: "/items/{id}" }
      - { id: create-item, method: POST, urlTemplate: "/items" }
      - { id: anything,    method: "*",  urlTemplate: "/*" }
      - { id: mocked, method: GET, urlTemplate: "/mock", mock: { statusCode: 200, contentType: application/json, body: '{"m":1}' } }
"#;

#[test]
fn a_good_yaml_document_validates() {
    let dir = TempDir::new();
    let (ok, out) = validate(&dir.write("good.yaml", GOOD_YAML));
    assert!(ok, "exit non-zero for a good document: {out}");
}

#[test]
fn a_good_json_document_validates() {
    let dir = TempDir::new();
    let json = r#"{
      "gateway": { "timeouts": { "requestHead": "10s", "keepAlive": 75 } },
      "apis": [ { "id": "echo", "path": "echo", "serviceUrl": "http://127.0.0.1:9000",
                  "operations": [ { "id": "any", "method": "*", "urlTemplate": "/*" } ] } ]
    }"#;
    let (ok, out) = validate(&dir.write("good.json", json));
    assert!(ok, "exit non-zero for a good JSON document: {out}");
}

#[test]
fn an_empty_api_list_validates() {
    let dir = TempDir::new();
    let (ok, out) = validate(&dir.write("empty.yaml", "apis: []\n"));
    assert!(ok, "{out}");
}

#[test]
fn the_embedded_default_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/default.yaml");
    assert!(path.exists(), "{} is missing", path.display());
    let (ok, out) = validate(&path);
    assert!(ok, "the default config does not validate: {out}");
}

#[test]
fn a_bad_url_template_is_reported_with_its_path() {
    let dir = TempDir::new();
    let doc = r#"
apis:
  - id: echo
    path: echo
    serviceUrl: http://127.0.0.1:9000
    operations:
      - { id: x, method: GET, urlTemplate: "items/{id" }
"#;
    let (ok, out) = validate(&dir.write("bad.yaml", doc));
    assert!(!ok, "exit 0 for a bad document: {out}");
    assert!(out.contains("apis[0].operations[0].urlTemplate"), "{out}");
}

#[test]
fn every_error_is_reported_with_its_path() {
    let dir = TempDir::new();
    let doc = r#"
gateway:
  timeouts: { requestHead: "10x" }
apis:
  - id: a
    path: a
    serviceUrl: http://127.0.0.1:9000
    operations:
      - { id: x, method: GET, urlTemplate: "no-slash" }
      - { id: y, method: "GE T", urlTemplate: "/y" }
  - id: b
    path: b
    serviceUrl: "ftp://127.0.0.1:21"
    operations:
      - { id: x, method: GET, urlTemplate: "/x" }
  - id: a
    path: c
    serviceUrl: http://127.0.0.1:9000
    operations:
      - { id: x, method: GET, urlTemplate: "/x" }
"#;
    let (ok, out) = validate(&dir.write("bad.yaml", doc));
    assert!(!ok, "{out}");
    for path in [
        "gateway.timeouts.requestHead",
        "apis[0].operations[0].urlTemplate",
        "apis[0].operations[1].method",
        "apis[1].serviceUrl",
        "apis[2].id",
    ] {
        assert!(out.contains(path), "{path} missing from:\n{out}");
    }
}

#[test]
fn an_unknown_field_is_an_error() {
    let dir = TempDir::new();
    let doc =
        "apis:\n  - id: a\n    path: a\n    serviceUrl: http://127.0.0.1:9000\n    bogusField: 1\n";
    let (ok, out) = validate(&dir.write("bad.yaml", doc));
    assert!(!ok, "{out}");
    assert!(out.contains("bogusField"), "{out}");
}

#[test]
fn a_syntax_error_is_an_error() {
    let dir = TempDir::new();
    let (ok, out) = validate(&dir.write("bad.yaml", "apis: [ { id: broken\n"));
    assert!(!ok, "{out}");
    assert!(!out.trim().is_empty());
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = TempDir::new();
    let path = dir.path().join("does-not-exist.yaml");
    let (ok, out) = validate(&path);
    assert!(!ok, "{out}");
    assert!(out.contains("does-not-exist.yaml"), "{out}");
}

#[test]
fn the_gateway_refuses_to_start_on_a_bad_document() {
    let dir = TempDir::new();
    let path = dir.write(
        "bad.yaml",
        "apis:\n  - id: a\n    path: a\n    operations:\n      - { id: x, method: GET, urlTemplate: \"nope\" }\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--config",
        ])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = status.expect("the gateway kept running on a bad document");
    assert!(!status.success(), "exit 0 on a bad document");
    assert!(!stdout.contains(LISTENING_PREFIX), "it listened: {stdout}");
    assert!(
        stderr.contains("apis[0].operations[0].urlTemplate"),
        "{stderr}"
    );
}
