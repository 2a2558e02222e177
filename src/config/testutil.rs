//! Test helpers shared by the config tests: a resolver that never touches the
//! network, and one-liners to load a document or get its errors.

use std::net::SocketAddr;

use super::{compile_with, parse_str, CompiledConfig, ConfigErrors, Resolve};

/// Resolves `localhost` and names ending in `.test` to 127.0.0.1; nothing else.
pub(crate) struct FakeResolver;

impl Resolve for FakeResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if host == "localhost" || host.ends_with(".test") {
            Ok(SocketAddr::from(([127, 0, 0, 1], port)))
        } else {
            Err(format!("host {host:?} does not resolve"))
        }
    }
}

/// Parses and compiles with [`FakeResolver`].
pub(crate) fn try_load(text: &str) -> Result<CompiledConfig, ConfigErrors> {
    compile_with(&parse_str(text)?, 1, &FakeResolver)
}

/// Loads a document that must be valid.
pub(crate) fn load(text: &str) -> CompiledConfig {
    try_load(text).unwrap_or_else(|e| panic!("document should compile:\n{e}\n---\n{text}"))
}

/// The errors of a document that must be invalid, as "path: message" lines.
pub(crate) fn errors(text: &str) -> Vec<String> {
    match try_load(text) {
        Ok(_) => panic!("document should not compile:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The paths of the errors of an invalid document.
pub(crate) fn error_paths(text: &str) -> Vec<String> {
    match try_load(text) {
        Ok(_) => panic!("document should not compile:\n{text}"),
        Err(e) => e.0.into_iter().map(|e| e.path).collect(),
    }
}
