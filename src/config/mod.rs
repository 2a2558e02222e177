//! Configuration: the document (YAML or JSON), its serde [`model`], the [`compile`]
//! step that checks all of it and builds the route table, and the immutable
//! [`CompiledConfig`] the data plane serves from (shared behind an `Arc`, replaced
//! whole on reload). This module owns the meaning of every configuration field and
//! every configuration error message; it must not do I/O on the request path, hold
//! global state, or hand the data plane anything it would still have to validate.
//! Loading from a file or a control plane, and publishing to cores, belong to the
//! callers of [`load_str`] / [`load_file`] / [`compile`].

pub mod compile;
pub mod duration;
pub mod model;
pub mod route;

mod error;
mod syntax;

pub use compile::{
    compile, compile_with, Access, Api, Backend, CompiledConfig, MockResponse, Operation, Resolve,
    Settings, SystemResolver, Timeouts, UpstreamSettings,
};
pub use error::{ConfigError, ConfigErrors};
pub use route::{RouteMatch, UrlTemplate};

/// The configuration used when none is given: a mocked `hello` API that needs no
/// other process. Compiles by construction (tested).
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");

/// Parses YAML or JSON text (JSON is YAML) and compiles it. `revision` is stamped
/// into the result. A syntax or shape error stops at the first problem (with its
/// path); compile errors are all reported.
pub fn load_str(text: &str, revision: u64) -> Result<CompiledConfig, ConfigErrors> {
    compile(&parse_str(text)?, revision)
}

/// [`load_str`] where policy files are read relative to `base_dir`.
pub fn load_str_in(
    text: &str,
    revision: u64,
    base_dir: Option<&std::path::Path>,
) -> Result<CompiledConfig, ConfigErrors> {
    compile::compile_in(&parse_str(text)?, revision, &SystemResolver, base_dir)
}

/// Reads and loads a file; an unreadable file is an error whose path is the file.
pub fn load_file(path: &std::path::Path, revision: u64) -> Result<CompiledConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: e.to_string(),
        }])
    })?;
    load_str_in(&text, revision, path.parent())
}

/// Parses YAML or JSON text into the [`model`] without compiling it. An empty
/// document (only whitespace and comments) is an empty configuration.
pub fn parse_str(text: &str) -> Result<model::Document, ConfigErrors> {
    let is_blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if is_blank {
        return Ok(model::Document::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        let message = strip_path_prefix(&message, &path).to_owned();
        ConfigErrors(vec![ConfigError { path, message }])
    })
}

/// serde_yaml_ng starts its messages with its own idea of the path (the enclosing
/// item, not the offending key); ours is exact, so drop theirs.
fn strip_path_prefix<'m>(message: &'m str, path: &str) -> &'m str {
    let ends = path
        .char_indices()
        .filter(|&(_, c)| c == '.' || c == '[')
        .map(|(i, _)| i)
        .chain([path.len()]);
    for end in ends {
        if let Some(rest) = message
            .strip_prefix(&path[..end])
            .and_then(|r| r.strip_prefix(": "))
        {
            return rest;
        }
    }
    message
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
