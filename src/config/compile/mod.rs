//! Compilation: a [`Document`](crate::config::model::Document) in, an immutable
//! [`CompiledConfig`] out, or every problem found, each naming the item it is about
//! (`apis[2].operations[0].urlTemplate: unbalanced '{'`). Everything the data plane
//! needs is decided here (defaults, durations, addresses, route table) so that the
//! request path never parses or validates configuration. Compile never panics and
//! never returns a partial result. One file per concern: `settings` (`gateway:`),
//! `api` (one API and its operations), `backend` (`serviceUrl`); this file holds the
//! checks that span several APIs and assembles the result.

mod access;
mod api;
mod backend;
mod policies;
mod settings;

use std::collections::HashMap;

pub use access::{Access, KeyCheck, Product, Subscription, SubscriptionScope};
pub use api::{Api, MockResponse, Operation, DEFAULT_API_TIMEOUT};
pub use backend::{Backend, Resolve, SystemResolver};
pub use policies::Pipelines;
pub use settings::{Settings, Timeouts, UpstreamSettings};

use super::model::Document;
use super::route::{HostPattern, RouteMatch, Router};
use super::{ConfigError, ConfigErrors};
use crate::policy::builtin::CompileEnv;
use backend::BackendTable;

/// A configuration ready to serve: immutable, stamped with the revision it was
/// compiled from. The data plane shares it behind an `Arc`.
#[derive(Debug)]
pub struct CompiledConfig {
    pub revision: u64,
    pub settings: Settings,
    pub apis: Vec<Api>,
    /// Products and subscriptions (keys as digests only).
    pub access: Access,
    /// One compiled policy pipeline per operation (and product).
    pub pipelines: Pipelines,
    backends: Vec<Backend>,
    router: Router,
}

impl CompiledConfig {
    /// Finds the API and operation for a request. `host` is the Host header value
    /// (port allowed), `path` the request-target path (a query is ignored), `method`
    /// the request method (case-sensitive). Allocates only when parameters are
    /// captured.
    pub fn route<'a>(&'a self, host: &str, path: &'a str, method: &str) -> RouteMatch<'a> {
        self.router.route(&self.apis, host, path, method)
    }

    /// Every distinct backend; `Backend::index` is the position in this slice.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The backend an API forwards to, if it has one.
    pub fn backend_of(&self, api: &Api) -> Option<&Backend> {
        api.backend.and_then(|i| self.backends.get(i))
    }
}

/// Compiles a document, resolving backend host names with the system resolver.
pub fn compile(doc: &Document, revision: u64) -> Result<CompiledConfig, ConfigErrors> {
    compile_with(doc, revision, &SystemResolver)
}

/// [`compile`] with a chosen resolver (tests, offline validation).
pub fn compile_with(
    doc: &Document,
    revision: u64,
    resolver: &dyn Resolve,
) -> Result<CompiledConfig, ConfigErrors> {
    compile_in(doc, revision, resolver, None)
}

/// [`compile_with`] where policy files are read relative to `base_dir`.
pub fn compile_in(
    doc: &Document,
    revision: u64,
    resolver: &dyn Resolve,
    base_dir: Option<&std::path::Path>,
) -> Result<CompiledConfig, ConfigErrors> {
    let mut errors = Errors::default();
    let settings = settings::compile_settings(&doc.gateway, &mut errors);

    let mut backends = BackendTable::new(resolver);
    let mut apis = Vec::with_capacity(doc.apis.len());
    let mut hosts = Vec::with_capacity(doc.apis.len());
    for (i, api_doc) in doc.apis.iter().enumerate() {
        let (mut api, patterns) =
            api::compile_api(&format!("apis[{i}]"), api_doc, &mut backends, &mut errors);
        api.index = i;
        apis.push(api);
        hosts.push(patterns);
    }
    check_unique_ids(&apis, &mut errors);
    check_path_conflicts(&apis, &hosts, &mut errors);
    let named_backends = backend::compile_named(&doc.backends, &mut backends, &mut errors);
    let access = access::compile_access(&doc.products, &doc.subscriptions, &apis, &mut errors);
    let env = CompileEnv {
        backends: &named_backends,
        response_cache_bytes: settings.response_cache_bytes_per_core,
    };
    let pipelines = policies::compile_policies(doc, &apis, &access, &env, base_dir, &mut errors);

    errors.into_result()?;
    let hosts = hosts
        .into_iter()
        .map(|h| h.into_iter().map(|(_, p)| p).collect())
        .collect();
    let router = Router::new(&apis, hosts);
    Ok(CompiledConfig {
        revision,
        settings,
        apis,
        access,
        pipelines,
        backends: backends.finish(),
        router,
    })
}

/// Accumulates errors; compile functions push and carry on.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

fn check_unique_ids(apis: &[Api], errors: &mut Errors) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, api) in apis.iter().enumerate() {
        if let Some(&first) = seen.get(api.id.as_str()) {
            errors.push(
                format!("apis[{i}].id"),
                format!("duplicate API id {:?} (first at apis[{first}])", api.id),
            );
        } else {
            seen.insert(&api.id, i);
        }
    }
}

/// Two APIs on the same path must be told apart by host: at most one without
/// hostnames, and no host may match the patterns of two of them.
fn check_path_conflicts(apis: &[Api], hosts: &[Vec<(usize, HostPattern)>], errors: &mut Errors) {
    let mut by_path: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, api) in apis.iter().enumerate() {
        let earlier = by_path.entry(api.path.as_str()).or_default();
        for &j in earlier.iter() {
            let shown = if api.path.is_empty() {
                "\"\" (the root)".to_owned()
            } else {
                format!("{:?}", api.path)
            };
            if hosts[i].is_empty() && hosts[j].is_empty() {
                errors.push(
                    format!("apis[{i}].path"),
                    format!(
                        "path {shown} is already used by API {:?} (apis[{j}]); give one of them hostnames",
                        apis[j].id
                    ),
                );
                continue;
            }
            for (k, mine) in &hosts[i] {
                if let Some((_, theirs)) = hosts[j].iter().find(|(_, t)| t.overlaps(mine)) {
                    errors.push(
                        format!("apis[{i}].hostnames[{k}]"),
                        format!(
                            "{:?} overlaps {:?} of API {:?} (apis[{j}]) on the same path {shown}",
                            mine.to_text(),
                            theirs.to_text(),
                            apis[j].id
                        ),
                    );
                }
            }
        }
        earlier.push(i);
    }
}

#[cfg(test)]
mod tests;
