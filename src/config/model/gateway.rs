//! `gateway:` settings of the document: the gateway id, protocol limits, timeouts and
//! upstream pool settings. Every field is optional; `compile` supplies the defaults.

use serde::Deserialize;

use super::DurationValue;

/// `gateway:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayDoc {
    pub id: Option<String>,
    #[serde(default)]
    pub limits: LimitsDoc,
    #[serde(default)]
    pub timeouts: TimeoutsDoc,
    #[serde(default)]
    pub upstream: UpstreamDoc,
}

/// `gateway.limits:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsDoc {
    pub request_line: Option<u64>,
    pub header_bytes: Option<u64>,
    pub header_count: Option<u64>,
    pub connections_per_core: Option<u64>,
    pub response_cache_bytes_per_core: Option<u64>,
}

/// `gateway.timeouts:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimeoutsDoc {
    pub request_head: Option<DurationValue>,
    pub keep_alive: Option<DurationValue>,
    pub body_idle: Option<DurationValue>,
    pub upstream_connect: Option<DurationValue>,
    pub drain: Option<DurationValue>,
}

/// `gateway.upstream:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamDoc {
    pub max_idle_per_backend: Option<u64>,
    pub idle_timeout: Option<DurationValue>,
}
