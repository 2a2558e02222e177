//! The byte-moving layer under the proxy lives in the `portico-io` crate (shared with
//! the load generator); this module re-exports it so the rest of the gateway names
//! `crate::io`.

pub use portico_io::*;

/// Bytes a receive buffer keeps free in front of what it reads (see
/// [`RecvBuf::with_headroom`]): the gateway rewrites a head before forwarding it, adding
/// `X-Forwarded-*` fields and the like, and a rewritten head up to this much longer than
/// the received one still goes out in one send with the body bytes behind it, without
/// copying them.
pub const HEAD_GROWTH: usize = 256;
