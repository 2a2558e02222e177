//! `openid-config`: signing keys published by identity providers (OpenID Connect
//! Discovery 1.0 §3-4: the configuration document's `jwks_uri` and `issuer`; RFC 7517 §5
//! JWKS), fetched and parsed on a thread of their own, never on a data-plane core.
//!
//! [`OpenIdCache`] refreshes every `refresh_every`, retries sooner after a failure, and
//! keeps each URL's last good keys when a fetch fails. It publishes a whole new
//! [`KeySet`] at a time. Readers either clone the current set (a read lock held for one
//! `Arc` clone) or, on the hot path, compare [`OpenIdCache::generation`] (one atomic load)
//! with the generation of a set they keep per core and clone only when it moved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::keys::{parse_jwks, VerifyKey};

/// Longest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: u64 = 1 << 20;
/// Per-request budget (connect, TLS, headers and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry after a failure; doubles up to [`LAST_RETRY`] (and never beyond
/// `refresh_every`).
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(300);
/// Fewest seconds between refreshes asked for by [`OpenIdCache::request_refresh`]: tokens
/// with made-up `kid`s must not turn the gateway into a load generator against the IdP.
const MIN_REQUESTED_INTERVAL: Duration = Duration::from_secs(30);

/// Keys (and issuers) from openid-config documents. Cheap to clone; replaced whole.
#[derive(Clone, Default)]
pub struct KeySet(Arc<[Arc<Source>]>);

/// What one openid-config URL gave on its last good fetch.
struct Source {
    url: String,
    issuer: Option<String>,
    keys: Vec<VerifyKey>,
}

impl KeySet {
    /// A set from a JWKS document given directly (no discovery): a static `jwks_uri`
    /// body, or tests. `issuer`, when given, becomes an allowed issuer.
    pub fn from_jwks(jwks: &str, issuer: Option<String>) -> Result<KeySet, String> {
        Ok(KeySet(Arc::new([Arc::new(Source {
            url: String::new(),
            issuer,
            keys: parse_jwks(jwks)?,
        })])))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.iter().map(|s| s.keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `kid`s of the keys (diagnostics).
    pub fn key_ids(&self) -> Vec<Option<&str>> {
        self.keys().map(VerifyKey::id).collect()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &VerifyKey> {
        self.0.iter().flat_map(|s| s.keys.iter())
    }

    /// The `issuer`s of the discovery documents.
    pub(crate) fn issuers(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| s.issuer.as_deref())
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for s in self.0.iter() {
            l.entry(&(&s.url, &s.issuer, &s.keys));
        }
        l.finish()
    }
}

/// The keys of a policy's openid-config URLs, kept fresh by a background thread that
/// stops when this is dropped.
pub struct OpenIdCache {
    shared: Arc<Shared>,
}

struct Shared {
    urls: Vec<String>,
    refresh_every: Duration,
    min_requested_interval: Duration,
    agent: ureq::Agent,
    published: RwLock<KeySet>,
    generation: AtomicU64,
    /// Each URL's last good source; holding the lock serializes refreshes.
    last_good: Mutex<Vec<Option<Arc<Source>>>>,
    control: Mutex<Control>,
    wake: Condvar,
}

#[derive(Default)]
struct Control {
    stop: bool,
    refresh_requested: bool,
}

impl OpenIdCache {
    /// Starts the refresh thread; its first fetch begins at once. Until it succeeds the set
    /// is empty: call [`OpenIdCache::refresh_now`] first to start with keys.
    pub fn start(urls: Vec<String>, refresh_every: Duration) -> Self {
        OpenIdCache::start_with(urls, refresh_every, MIN_REQUESTED_INTERVAL)
    }

    fn start_with(urls: Vec<String>, refresh_every: Duration, min_requested: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .build()
            .into();
        let shared = Arc::new(Shared {
            last_good: Mutex::new(vec![None; urls.len()]),
            urls,
            refresh_every: refresh_every.max(Duration::from_secs(1)),
            min_requested_interval: min_requested,
            agent,
            published: RwLock::new(KeySet::default()),
            generation: AtomicU64::new(0),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
        });
        if shared.urls.is_empty() {
            return OpenIdCache { shared };
        }
        let worker = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("portico-openid".into())
            .spawn(move || worker.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "openid-config refresh thread not started; keys refresh only on demand");
        }
        OpenIdCache { shared }
    }

    /// The current keys.
    pub fn keys(&self) -> KeySet {
        self.shared
            .published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Bumped each time a new set is published; 0 until the first success.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Fetches every URL now, on the calling thread (startup, tests). A failing URL keeps
    /// its last good keys and is reported in the error.
    pub fn refresh_now(&self) -> Result<(), String> {
        self.shared.refresh()
    }

    /// Asks the refresh thread for an early refresh (e.g. after `TokenSignatureKeyNotFound`,
    /// as the IdP may have rotated keys). Never blocks; at most one such refresh per 30 s.
    pub fn request_refresh(&self) {
        self.shared.control().refresh_requested = true;
        self.shared.wake.notify_all();
    }

    pub fn urls(&self) -> &[String] {
        &self.shared.urls
    }
}

impl Drop for OpenIdCache {
    fn drop(&mut self) {
        self.shared.control().stop = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The refresh thread: fetch, then sleep until the next refresh is due, a requested
    /// refresh is allowed, or the cache is dropped.
    fn run(&self) {
        let mut retry = FIRST_RETRY;
        loop {
            if self.control().stop {
                return;
            }
            let started = Instant::now();
            let wait = match self.refresh() {
                Ok(()) => {
                    retry = FIRST_RETRY;
                    self.refresh_every
                }
                Err(_) => {
                    let wait = retry.min(self.refresh_every);
                    retry = (retry * 2).min(LAST_RETRY);
                    wait
                }
            };
            let due = started + wait;
            let earliest_requested = started + self.min_requested_interval;
            let mut ctl = self.control();
            loop {
                if ctl.stop {
                    return;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if ctl.refresh_requested && now >= earliest_requested {
                    break;
                }
                let until = if ctl.refresh_requested {
                    earliest_requested.min(due)
                } else {
                    due
                };
                ctl = self
                    .wake
                    .wait_timeout(ctl, until - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            ctl.refresh_requested = false;
        }
    }

    fn refresh(&self) -> Result<(), String> {
        let mut last_good = self
            .last_good
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut errors = Vec::new();
        let mut fetched = false;
        for (i, url) in self.urls.iter().enumerate() {
            match fetch_source(&self.agent, url) {
                Ok(source) => {
                    tracing::info!(url = %url, keys = source.keys.len(), "openid-config keys refreshed");
                    last_good[i] = Some(Arc::new(source));
                    fetched = true;
                }
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "openid-config refresh failed; keeping the previous keys");
                    errors.push(format!("{url}: {e}"));
                }
            }
        }
        if fetched {
            let set = KeySet(last_good.iter().flatten().cloned().collect());
            *self
                .published
                .write()
                .unwrap_or_else(PoisonError::into_inner) = set;
            self.generation.fetch_add(1, Ordering::Release);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Discovery document, then its `jwks_uri`. An `issuer` that is a template (Entra's
/// multi-tenant `{tenantid}`) is not used as an allowed issuer.
fn fetch_source(agent: &ureq::Agent, url: &str) -> Result<Source, String> {
    let doc: Value = serde_json::from_str(&get(agent, url)?)
        .map_err(|e| format!("configuration is not JSON: {e}"))?;
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("configuration has no jwks_uri")?;
    let issuer = doc
        .get("issuer")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty() && !i.contains('{'))
        .map(str::to_string);
    let keys = parse_jwks(&get(agent, jwks_uri)?).map_err(|e| format!("{jwks_uri}: {e}"))?;
    Ok(Source {
        url: url.to_string(),
        issuer,
        keys,
    })
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_to_string()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::AtomicBool;
    use std::thread::JoinHandle;
    use std::time::SystemTime;

    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::super::config::JwtPolicyConfig;
    use super::super::reason;
    use super::super::testkeys;
    use super::super::validate::JwtValidator;
    use super::*;

    /// A minimal identity provider on 127.0.0.1: discovery document and JWKS, one request
    /// per connection. Stops (and frees its port) on `shutdown` or drop.
    struct TestIdp {
        addr: SocketAddr,
        jwks: Arc<Mutex<String>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl TestIdp {
        fn start(jwks: Value) -> TestIdp {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let jwks = Arc::new(Mutex::new(jwks.to_string()));
            let stop = Arc::new(AtomicBool::new(false));
            let (j, s) = (Arc::clone(&jwks), Arc::clone(&stop));
            let thread = std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, addr, &j);
                    }
                }
            });
            TestIdp {
                addr,
                jwks,
                stop,
                thread: Some(thread),
            }
        }

        fn url(&self) -> String {
            format!("http://{}/.well-known/openid-configuration", self.addr)
        }

        fn issuer(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn set_jwks(&self, jwks: Value) {
            *self.jwks.lock().unwrap() = jwks.to_string();
        }

        fn shutdown(&mut self) {
            if let Some(t) = self.thread.take() {
                self.stop.store(true, Ordering::SeqCst);
                let _ = TcpStream::connect(self.addr);
                t.join().unwrap();
            }
        }
    }

    impl Drop for TestIdp {
        fn drop(&mut self) {
            self.shutdown();
        }
    }

    fn serve(mut conn: TcpStream, addr: SocketAddr, jwks: &Mutex<String>) {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&req);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = match path {
            "/.well-known/openid-configuration" => (
                "200 OK",
                json!({"issuer": format!("http://{addr}"), "jwks_uri": format!("http://{addr}/jwks")})
                    .to_string(),
            ),
            "/jwks" => ("200 OK", jwks.lock().unwrap().clone()),
            _ => ("404 Not Found", String::new()),
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(resp.as_bytes());
    }

    fn validator(url: String) -> JwtValidator {
        JwtValidator::compile(JwtPolicyConfig {
            openid_config_urls: vec![url],
            audiences: vec!["api://portico".into()],
            ..JwtPolicyConfig::default()
        })
        .unwrap()
    }

    fn claims(iss: &str) -> Value {
        json!({"iss": iss, "aud": "api://portico", "sub": "alice", "exp": 4_000_000_000u64})
    }

    #[test]
    fn discovery_rotation_and_outage() {
        let mut idp = TestIdp::start(json!({"keys": [testkeys::rsa().jwk(Some("k1"))]}));
        let v = validator(idp.url());
        let cache = OpenIdCache::start(vec![idp.url()], Duration::from_secs(3600));
        cache.refresh_now().unwrap();
        let gen1 = cache.generation();
        assert!(gen1 >= 1);
        let now = SystemTime::now();

        let old = testkeys::sign(
            Algorithm::RS256,
            Some("k1"),
            &claims(&idp.issuer()),
            &testkeys::rsa().encoding,
        );
        let jwt = v.validate(&old, now, &cache.keys()).unwrap();
        assert_eq!(jwt.subject.as_deref(), Some("alice"));

        // The discovery document's issuer is enforced.
        let other_iss = testkeys::sign(
            Algorithm::RS256,
            Some("k1"),
            &claims("https://evil.example"),
            &testkeys::rsa().encoding,
        );
        let e = v.validate(&other_iss, now, &cache.keys()).unwrap_err();
        assert_eq!(e.reason, reason::TOKEN_ISSUER_NOT_ALLOWED);

        // Rotation: the IdP now publishes only k2.
        idp.set_jwks(json!({"keys": [testkeys::rsa2().jwk(Some("k2"))]}));
        cache.refresh_now().unwrap();
        assert!(cache.generation() > gen1);
        let keys = cache.keys();
        assert_eq!(keys.key_ids(), vec![Some("k2")]);
        let e = v.validate(&old, now, &keys).unwrap_err();
        assert_eq!(e.reason, reason::TOKEN_SIGNATURE_KEY_NOT_FOUND);
        let new = testkeys::sign(
            Algorithm::RS256,
            Some("k2"),
            &claims(&idp.issuer()),
            &testkeys::rsa2().encoding,
        );
        v.validate(&new, now, &keys).unwrap();
        // The old key under the new kid: a bad signature, not a match.
        let forged = testkeys::sign(
            Algorithm::RS256,
            Some("k2"),
            &claims(&idp.issuer()),
            &testkeys::rsa().encoding,
        );
        let e = v.validate(&forged, now, &keys).unwrap_err();
        assert_eq!(e.reason, reason::TOKEN_SIGNATURE_INVALID);

        // Outage: the refresh fails, the last good keys stay.
        idp.shutdown();
        let gen2 = cache.generation();
        assert!(cache.refresh_now().is_err());
        assert_eq!(cache.generation(), gen2);
        v.validate(&new, now, &cache.keys()).unwrap();
    }

    #[test]
    fn background_thread_fetches_and_honours_requested_refresh() {
        let idp = TestIdp::start(json!({"keys": [testkeys::p256().jwk(Some("e1"))]}));
        let cache =
            OpenIdCache::start_with(vec![idp.url()], Duration::from_secs(3600), Duration::ZERO);
        let wait_for = |generation: u64| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while cache.generation() < generation {
                assert!(Instant::now() < deadline, "no refresh within 20 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for(1);
        assert_eq!(cache.keys().key_ids(), vec![Some("e1")]);
        idp.set_jwks(json!({"keys": [testkeys::p384().jwk(Some("e2"))]}));
        cache.request_refresh();
        wait_for(2);
        assert_eq!(cache.keys().key_ids(), vec![Some("e2")]);
    }

    #[test]
    fn partial_failure_keeps_the_failing_urls_keys() {
        let a = TestIdp::start(json!({"keys": [testkeys::rsa().jwk(Some("a"))]}));
        let mut b = TestIdp::start(json!({"keys": [testkeys::p256().jwk(Some("b"))]}));
        let cache = OpenIdCache::start(vec![a.url(), b.url()], Duration::from_secs(3600));
        cache.refresh_now().unwrap();
        assert_eq!(cache.keys().len(), 2);
        b.shutdown();
        a.set_jwks(json!({"keys": [testkeys::rsa2().jwk(Some("a2"))]}));
        let err = cache.refresh_now().unwrap_err();
        assert!(err.contains(&b.url()), "{err}");
        let keys = cache.keys();
        let mut ids = keys.key_ids();
        ids.sort();
        assert_eq!(ids, vec![Some("a2"), Some("b")]);
        assert_eq!(keys.issuers().count(), 2);
    }

    #[test]
    fn bad_documents_are_errors_and_publish_nothing() {
        let idp = TestIdp::start(json!({"keys": []}));
        let cache = OpenIdCache::start(vec![idp.url()], Duration::from_secs(3600));
        assert!(cache
            .refresh_now()
            .unwrap_err()
            .contains("no usable signing key"));
        let missing = format!("http://{}/nothing-here", idp.addr);
        let cache2 = OpenIdCache::start(vec![missing], Duration::from_secs(3600));
        assert!(cache2.refresh_now().is_err());
        assert_eq!(cache.generation(), 0);
        assert!(cache.keys().is_empty());
    }
}
