//! `gateway:` compiled into [`Settings`]: defaults filled in, every number and
//! duration range-checked, so the runtime reads plain values and never re-checks.

use std::time::Duration;

use super::Errors;
use crate::config::duration;
use crate::config::model::{DurationValue, GatewayDoc};
use crate::http::Limits;

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub gateway_id: String,
    pub limits: Limits,
    /// Connections a core accepts before it stops accepting (backpressure).
    pub connections_per_core: usize,
    /// Bytes of responses each core's cache (cache-store) may hold.
    pub response_cache_bytes_per_core: u64,
    pub timeouts: Timeouts,
    pub upstream: UpstreamSettings,
}

/// Client-side and lifecycle timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Whole request head must arrive within this (slowloris; 408).
    pub request_head: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keep_alive: Duration,
    /// No request body bytes for this long: 408 / close.
    pub body_idle: Duration,
    /// Connecting to a backend takes longer: 504.
    pub upstream_connect: Duration,
    /// Graceful shutdown waits at most this long for requests in flight.
    pub drain: Duration,
}

/// Per-core upstream connection pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Idle keep-alive connections kept per backend per core (0: no reuse).
    pub max_idle_per_backend: usize,
    /// Idle upstream connections are closed after this.
    pub idle_timeout: Duration,
}

pub const DEFAULT_GATEWAY_ID: &str = "portico";
pub const DEFAULT_CONNECTIONS_PER_CORE: usize = 10_000;

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request_head: Duration::from_secs(10),
            keep_alive: Duration::from_secs(75),
            body_idle: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
            drain: Duration::from_secs(30),
        }
    }
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            max_idle_per_backend: 64,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gateway_id: DEFAULT_GATEWAY_ID.to_owned(),
            limits: Limits::default(),
            connections_per_core: DEFAULT_CONNECTIONS_PER_CORE,
            response_cache_bytes_per_core: crate::policy::builtin::DEFAULT_RESPONSE_CACHE_BYTES,
            timeouts: Timeouts::default(),
            upstream: UpstreamSettings::default(),
        }
    }
}

/// Upper bound for byte limits: beyond this one connection could pin that much memory.
const MAX_HEAD_BYTES: u64 = 16 * 1024 * 1024;
/// Upper bound for a core's response cache (64 GiB).
const MAX_CACHE_BYTES: u64 = 1 << 36;

pub(super) fn compile_settings(doc: &GatewayDoc, errors: &mut Errors) -> Settings {
    let defaults = Settings::default();
    let gateway_id = match &doc.id {
        None => defaults.gateway_id,
        Some(id) => {
            if let Err(e) = crate::config::syntax::check_id(id) {
                errors.push("gateway.id", e);
            }
            id.clone()
        }
    };
    let limits = &doc.limits;
    let d = &defaults.limits;
    let limits_out = Limits {
        max_request_line: count(
            errors,
            "gateway.limits.requestLine",
            limits.request_line,
            d.max_request_line,
            1..=MAX_HEAD_BYTES,
        ),
        max_header_bytes: count(
            errors,
            "gateway.limits.headerBytes",
            limits.header_bytes,
            d.max_header_bytes,
            1..=MAX_HEAD_BYTES,
        ),
        max_headers: count(
            errors,
            "gateway.limits.headerCount",
            limits.header_count,
            d.max_headers,
            1..=10_000,
        ),
    };
    let connections_per_core = count(
        errors,
        "gateway.limits.connectionsPerCore",
        limits.connections_per_core,
        defaults.connections_per_core,
        1..=10_000_000,
    );
    let response_cache_bytes_per_core = count(
        errors,
        "gateway.limits.responseCacheBytesPerCore",
        limits.response_cache_bytes_per_core,
        defaults.response_cache_bytes_per_core as usize,
        0..=MAX_CACHE_BYTES,
    ) as u64;

    let t = &doc.timeouts;
    let dt = defaults.timeouts;
    let timeouts = Timeouts {
        request_head: timeout(
            errors,
            "gateway.timeouts.requestHead",
            &t.request_head,
            dt.request_head,
            false,
        ),
        keep_alive: timeout(
            errors,
            "gateway.timeouts.keepAlive",
            &t.keep_alive,
            dt.keep_alive,
            false,
        ),
        body_idle: timeout(
            errors,
            "gateway.timeouts.bodyIdle",
            &t.body_idle,
            dt.body_idle,
            false,
        ),
        upstream_connect: timeout(
            errors,
            "gateway.timeouts.upstreamConnect",
            &t.upstream_connect,
            dt.upstream_connect,
            false,
        ),
        // Zero is meaningful: stop at once without waiting for requests in flight.
        drain: timeout(errors, "gateway.timeouts.drain", &t.drain, dt.drain, true),
    };

    let u = &doc.upstream;
    let du = defaults.upstream;
    let upstream = UpstreamSettings {
        max_idle_per_backend: count(
            errors,
            "gateway.upstream.maxIdlePerBackend",
            u.max_idle_per_backend,
            du.max_idle_per_backend,
            0..=1_000_000,
        ),
        idle_timeout: timeout(
            errors,
            "gateway.upstream.idleTimeout",
            &u.idle_timeout,
            du.idle_timeout,
            false,
        ),
    };

    Settings {
        gateway_id,
        limits: limits_out,
        connections_per_core,
        response_cache_bytes_per_core,
        timeouts,
        upstream,
    }
}

/// A count with a default and an allowed range; on error the default is used so
/// compilation can go on and report the next problem.
fn count(
    errors: &mut Errors,
    path: &str,
    value: Option<u64>,
    default: usize,
    range: std::ops::RangeInclusive<u64>,
) -> usize {
    let Some(v) = value else { return default };
    if !range.contains(&v) {
        errors.push(
            path,
            format!("{v} is out of range {}..={}", range.start(), range.end()),
        );
        return default;
    }
    usize::try_from(v).unwrap_or(default)
}

/// A duration with a default; zero is an error unless `zero_ok`.
pub(super) fn timeout(
    errors: &mut Errors,
    path: &str,
    value: &Option<DurationValue>,
    default: Duration,
    zero_ok: bool,
) -> Duration {
    let Some(v) = value else { return default };
    match duration::parse(v) {
        Ok(d) if d.is_zero() && !zero_ok => {
            errors.push(path, "must be greater than zero");
            default
        }
        Ok(d) => d,
        Err(e) => {
            errors.push(path, e);
            default
        }
    }
}
