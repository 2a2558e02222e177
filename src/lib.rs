//! Portico: a self-hosted API gateway. The library holds every part of the gateway
//! process; `main.rs` is only the command line on top of it.
//!
//! Layers, top down: `runtime` (executors, listeners, signals, config swaps) runs
//! `proxy` (one connection's request pipeline), which reads and writes through `http`
//! (the sans-IO codec) and `io` (sockets), routes with `config` (the compiled document)
//! and reaches backends through `upstream` (per-core pools).
#![deny(unsafe_code)]

pub mod config;
pub mod http;
pub mod io;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod runtime;
pub mod upstream;
