//! Config reloads: on SIGHUP, when the file is edited in place or replaced, a bad
//! document rejected while the old config keeps serving, requests in flight finishing
//! on the config they started with, and 20 reloads under continuous keep-alive load
//! without a single failed request.

mod common;

use common::client::get;
use common::{get_req, Backend, Client, Gate, Gateway, Reply};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RELOAD_BOUND: Duration = Duration::from_secs(15);

/// A config with one mocked API `name` answering `name`.
fn mock_cfg(name: &str) -> String {
    format!(
        r#"
apis:
  - id: {name}
    path: {name}
    operations:
      - {{ id: root, method: GET, urlTemplate: "/*", mock: {{ statusCode: 200, body: {name} }} }}
"#
    )
}

fn serves(gw: &Gateway, name: &str) -> bool {
    let r = get(gw.addr, &format!("/{name}/"));
    r.status == 200 && r.body_str() == name
}

fn wait_served(gw: &Gateway, name: &str) {
    assert!(
        common::wait_until(RELOAD_BOUND, || serves(gw, name)),
        "/{name}/ not served within {RELOAD_BOUND:?} after the config changed"
    );
}

#[test]
fn sighup_reloads_the_config() {
    let mut gw = Gateway::start(&mock_cfg("one"));
    assert!(serves(&gw, "one"));
    // Same length, same inode, same mtime: only the signal can tell the gateway.
    let path = gw.config_path.clone().unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    gw.write_config_in_place(&mock_cfg("two"));
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    gw.signal(libc::SIGHUP);
    wait_served(&gw, "two");
    assert_eq!(get(gw.addr, "/one/").status, 404);
    assert!(gw.is_running(), "SIGHUP must not stop the gateway");
}

/// A supervisor may signal as soon as the gateway says it listens; SIGHUP's default
/// action would kill the process, so the handler must be in place by then.
#[test]
fn sighup_right_after_start_reloads_and_does_not_kill() {
    for round in 0..5 {
        let mut gw = Gateway::start(&mock_cfg("one"));
        gw.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            gw.is_running(),
            "round {round}: SIGHUP sent right after the listening line stopped the gateway: {:?}",
            gw.wait_exit(Duration::from_millis(100))
        );
        assert!(serves(&gw, "one"));
    }
}

/// The file may change right after the gateway announced it listens; that change
/// must not be lost (the watch must start from the version that was loaded).
#[test]
fn a_change_right_after_start_is_not_lost() {
    for round in 0..3 {
        let gw = Gateway::start(&mock_cfg("one"));
        gw.replace_config(&mock_cfg("two"));
        assert!(
            common::wait_until(RELOAD_BOUND, || serves(&gw, "two")),
            "round {round}: a config file replaced right after start was never loaded"
        );
    }
}

#[test]
fn editing_the_file_in_place_reloads_the_config() {
    let gw = Gateway::start(&mock_cfg("one"));
    assert!(serves(&gw, "one"));
    gw.write_config_in_place(&mock_cfg("edited"));
    wait_served(&gw, "edited");
    assert_eq!(get(gw.addr, "/one/").status, 404);
}

#[test]
fn replacing_the_file_reloads_the_config() {
    let gw = Gateway::start(&mock_cfg("one"));
    gw.replace_config(&mock_cfg("replaced"));
    wait_served(&gw, "replaced");
    assert_eq!(get(gw.addr, "/one/").status, 404);
    // And again: the watch follows the new file, not the old inode.
    gw.replace_config(&mock_cfg("again"));
    wait_served(&gw, "again");
}

#[test]
fn a_bad_document_is_rejected_and_the_old_config_keeps_serving() {
    let mut gw = Gateway::start(&mock_cfg("one"));
    let bad_docs = [
        // Compiles badly: a URL template without a leading '/'.
        "apis:\n  - id: bad\n    path: bad\n    operations:\n      - { id: x, method: GET, urlTemplate: \"nope\", mock: { statusCode: 200 } }\n",
        // Not YAML.
        "apis: [ { id: broken\n",
        // Unknown field.
        "apis: []\nwhatever: 1\n",
    ];
    for bad in bad_docs {
        gw.replace_config(bad);
        gw.signal(libc::SIGHUP);
        // Over several watch intervals, every request still gets the old config.
        let until = std::time::Instant::now() + Duration::from_millis(1500);
        while std::time::Instant::now() < until {
            let r = get(gw.addr, "/one/");
            assert_eq!(
                (r.status, r.body_str().as_str()),
                (200, "one"),
                "old config stopped serving after a bad document:\n{bad}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            gw.is_running(),
            "a bad document stopped the gateway:\n{bad}"
        );
    }
    // The reloader still works after rejections.
    gw.replace_config(&mock_cfg("fixed"));
    wait_served(&gw, "fixed");
}

#[test]
fn a_keep_alive_connection_sees_the_new_config_on_its_next_request() {
    let gw = Gateway::start(&mock_cfg("one"));
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/one/"));
    assert_eq!(c.read_response().body_str(), "one");
    gw.replace_config(&mock_cfg("two"));
    wait_served(&gw, "two");
    c.send(get_req("/two/"));
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "two"));
    c.send(get_req("/one/"));
    assert_eq!(c.read_response().status, 404);
}

#[test]
fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let gate = Gate::new();
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        if r.target.ends_with("/slow") {
            g.wait(Duration::from_secs(30));
        }
        Reply::ok(format!("backend {}", r.target))
    });
    let with_api = format!(
        r#"
apis:
  - id: old
    path: old
    serviceUrl: {}/v1
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    );
    let gw = Gateway::start(&with_api);
    let addr = gw.addr;
    let inflight = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.timeout = Duration::from_secs(40);
        c.send(get_req("/old/slow"));
        c.try_read_response("GET", None)
    });
    backend.wait_requests(1, Duration::from_secs(10));
    // The API the request is using disappears.
    gw.replace_config(&mock_cfg("new"));
    wait_served(&gw, "new");
    assert_eq!(
        get(gw.addr, "/old/other").status,
        404,
        "new requests use the new config"
    );
    gate.open();
    let r = inflight
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("in-flight request failed across the reload: {e}"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "backend /v1/slow"));
}

/// Config `i` of the load test: the stable API alternates between two backends, and a
/// mocked API `gen{i}` proves that revision `i` is live.
fn load_cfg(i: usize, a: &Backend, b: &Backend) -> String {
    let url = if i % 2 == 0 { a.url() } else { b.url() };
    format!(
        r#"
gateway:
  timeouts: {{ keepAlive: 60s }}
apis:
  - id: stable
    path: stable
    serviceUrl: {url}
    operations:
      - {{ id: any, method: GET, urlTemplate: "/*" }}
  - id: gen{i}
    path: gen{i}
    operations:
      - {{ id: root, method: GET, urlTemplate: "/*", mock: {{ statusCode: 200, body: gen{i} }} }}
"#
    )
}

#[test]
fn twenty_reloads_under_keep_alive_load_fail_no_request() {
    let a = Backend::echo();
    let b = Backend::echo();
    let gw = Gateway::builder(&load_cfg(0, &a, &b)).cores(2).start();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (stop, done, failures, addr) = (stop.clone(), done.clone(), failures.clone(), gw.addr);
        threads.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            c.timeout = Duration::from_secs(10);
            let mut n = 0u64;
            let mut mine = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let path = format!("/stable/{t}/{n}");
                let outcome = match c.try_send(get_req(&path)) {
                    Err(e) => Err(format!("send: {e}")),
                    Ok(()) => c.try_read_response("GET", None),
                };
                match outcome {
                    Ok(r) if r.status == 200 && r.body_str() == format!("GET /{t}/{n}") => {
                        mine += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failures.lock().unwrap().push(format!(
                            "thread {t} {path}: {} {:?}",
                            r.status,
                            r.body_str()
                        ));
                        c = Client::connect(addr);
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(format!(
                            "thread {t} {path} (after {mine} ok on this thread): {e}"
                        ));
                        c = Client::connect(addr);
                    }
                }
            }
            mine
        }));
    }
    // Let the load start.
    assert!(common::wait_until(Duration::from_secs(10), || done
        .load(Ordering::Relaxed)
        > 20));
    for i in 1..=20 {
        gw.replace_config(&load_cfg(i, &a, &b));
        if i % 3 == 0 {
            gw.signal(libc::SIGHUP);
        }
        wait_served(&gw, &format!("gen{i}"));
    }
    // Some more load on the final config.
    let at_end = done.load(Ordering::Relaxed);
    assert!(common::wait_until(Duration::from_secs(10), || done
        .load(Ordering::Relaxed)
        > at_end + 20));
    stop.store(true, Ordering::Relaxed);
    let per_thread: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed request(s) out of {} during 20 reloads:\n{}",
        failures.len(),
        done.load(Ordering::Relaxed) + failures.len() as u64,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        per_thread.iter().all(|&n| n > 0),
        "a load thread made no progress: {per_thread:?}"
    );
    assert!(
        !a.requests().is_empty() && !b.requests().is_empty(),
        "both backends must have been used"
    );
    // The final config is the one served, on every core.
    for _ in 0..10 {
        assert!(serves(&gw, "gen20"));
        assert_eq!(get(gw.addr, "/gen19/").status, 404);
    }
}
