//! Policies: APIM policy documents compiled once, at config load, into per-operation
//! pipelines (inbound, backend, outbound, on-error), and the engines behind them
//! (expressions, JWT validation). Nothing here parses XML or expressions per request,
//! and nothing here does network I/O on a data-plane core.

pub mod builtin;
pub mod context;
pub mod document;
pub mod expr;
pub(crate) mod json;
pub mod jwt;
pub mod pipeline;
pub mod response_cache;
pub mod services;
pub mod xml;
