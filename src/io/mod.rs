//! The byte-moving layer under the proxy lives in the `portico-io` crate (shared with
//! the load generator); this module re-exports it so the rest of the gateway names
//! `crate::io`.

pub use portico_io::*;
