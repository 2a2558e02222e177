//! Request routing over a compiled configuration: which API (by Host and the longest
//! API path on a segment boundary) and which operation (by method and URL template).
//! The route table is built once at compile time; [`Router::route`] only reads it,
//! hashes at most a bounded number of path prefixes, and allocates nothing unless the
//! matched template captures parameters. It must not know about sockets, policies or
//! backends: it answers "who handles this request", nothing else.
//!
//! Rules (docs/configuration.md has examples):
//! 1. APIs whose `hostnames` match the Host win over APIs without `hostnames`.
//! 2. Within that choice, the longest API path that is a prefix of the request path on
//!    a segment boundary wins (`/echo` serves `/echo`, `/echo/`, `/echo/x`, not
//!    `/echoes`); `""` serves everything.
//! 3. Within the API, the first operation in precedence order whose method and
//!    template match: literal segments before `{params}` at the first place they
//!    differ, wildcards last, an exact method before `*`. No match is `NoOperation`,
//!    never a fall back to an API with a shorter path.

mod host;
mod template;

use foldhash::HashMap;
use foldhash::HashMapExt;

pub(crate) use host::{normalize_host, HostPattern};
pub use template::{Segment, UrlTemplate};

use super::compile::{Api, Operation};

/// The outcome of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch<'a> {
    /// No API serves this host and path (APIM answers 404).
    NoApi,
    /// The API was found but none of its operations matches (404).
    NoOperation { api: &'a Api },
    Found {
        api: &'a Api,
        operation: &'a Operation,
        /// The request path after the API path: starts with '/' or is `""`. No query.
        suffix: &'a str,
        /// Template parameters in template order: (name, raw value, not decoded).
        params: Vec<(&'a str, &'a str)>,
    },
}

/// The precomputed route table of one [`CompiledConfig`](super::CompiledConfig).
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// API path -> the APIs on it. foldhash (seeded per process) rather than SipHash:
    /// requests only look paths up, the config alone decides what the table holds.
    by_path: HashMap<Box<str>, PathEntry>,
    /// Most segments in any API path: longer request prefixes need not be looked up.
    max_depth: usize,
    /// Per API: host patterns, parallel to `apis`.
    hosts: Vec<Vec<HostPattern>>,
    /// Per API: operation indices in precedence order.
    order: Vec<Box<[usize]>>,
}

#[derive(Debug, Default)]
struct PathEntry {
    /// APIs with hostnames on this path (their patterns never overlap).
    with_hosts: Vec<usize>,
    /// The API without hostnames on this path, if any.
    any_host: Option<usize>,
}

impl Router {
    /// Builds the table. Expects the checks of `compile` to have passed (unique
    /// path/host combinations); if they did not, the first API wins, never a panic.
    pub(crate) fn new(apis: &[Api], hosts: Vec<Vec<HostPattern>>) -> Self {
        let mut by_path: HashMap<Box<str>, PathEntry> = HashMap::new();
        let mut max_depth = 0;
        for (i, api) in apis.iter().enumerate() {
            max_depth = max_depth.max(api.path.matches('/').count());
            let entry = by_path.entry(api.path.as_str().into()).or_default();
            if hosts.get(i).is_some_and(|h| !h.is_empty()) {
                entry.with_hosts.push(i);
            } else if entry.any_host.is_none() {
                entry.any_host = Some(i);
            }
        }
        let order = apis
            .iter()
            .map(|api| {
                let ops = &api.operations;
                let mut idx: Vec<usize> = (0..ops.len()).collect();
                idx.sort_by(|&a, &b| {
                    let (x, y) = (&ops[a], &ops[b]);
                    x.template
                        .precedence(&y.template)
                        .then(x.method.is_none().cmp(&y.method.is_none()))
                        .then(a.cmp(&b))
                });
                idx.into_boxed_slice()
            })
            .collect();
        Router {
            by_path,
            max_depth,
            hosts,
            order,
        }
    }

    pub(crate) fn route<'a>(
        &'a self,
        apis: &'a [Api],
        host: &str,
        path: &'a str,
        method: &str,
    ) -> RouteMatch<'a> {
        let path = match path.find('?') {
            Some(i) => &path[..i],
            None => path,
        };
        let Some(index) = self.find_api(host, path) else {
            return RouteMatch::NoApi;
        };
        let (Some(api), Some(order)) = (apis.get(index), self.order.get(index)) else {
            return RouteMatch::NoApi;
        };
        let suffix = path.get(api.path.len()..).unwrap_or("");
        let mut params = Vec::new();
        for &i in order.iter() {
            let Some(op) = api.operations.get(i) else {
                continue;
            };
            if op.method.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            if op.template.match_into(suffix, &mut params) {
                return RouteMatch::Found {
                    api,
                    operation: op,
                    suffix,
                    params,
                };
            }
        }
        RouteMatch::NoOperation { api }
    }

    /// The API for a host and path: the longest matching path among APIs whose
    /// hostnames match, else the longest among APIs without hostnames.
    fn find_api(&self, host: &str, path: &str) -> Option<usize> {
        if !path.starts_with('/') || self.by_path.is_empty() {
            return None;
        }
        let host = normalize_host(host);
        let mut with_host = None;
        let mut any_host = None;
        let mut consider = |prefix: &str| {
            if let Some(entry) = self.by_path.get(prefix) {
                if let Some(&i) = entry.with_hosts.iter().find(|&&i| {
                    self.hosts
                        .get(i)
                        .is_some_and(|h| h.iter().any(|p| p.matches(host)))
                }) {
                    with_host = Some(i);
                }
                if entry.any_host.is_some() {
                    any_host = entry.any_host;
                }
            }
        };
        // Prefixes from the shortest ("") to the longest, each ending on a segment
        // boundary; a later (longer) hit replaces an earlier one.
        consider("");
        // Searched as bytes: a str search for a char goes through a general searcher
        // that costs more than these short segments do ('/' is ASCII, so every cut is a
        // char boundary).
        let bytes = path.as_bytes();
        let mut start = 1;
        for _ in 0..self.max_depth {
            let end = bytes
                .get(start..)
                .and_then(|rest| rest.iter().position(|&b| b == b'/'))
                .map_or(path.len(), |j| start + j);
            consider(path.get(..end).unwrap_or(path));
            if end == path.len() {
                break;
            }
            start = end + 1;
        }
        with_host.or(any_host)
    }
}

#[cfg(test)]
mod tests;
