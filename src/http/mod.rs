//! The sans-IO HTTP/1.1 codec: request and response head parsing, body framing
//! (Content-Length, chunked, until-close) and serialisation helpers, all as plain
//! functions and small state machines over byte slices (RFC 9112). It owns the
//! strictness rules that keep the gateway safe from request smuggling: ambiguous
//! framing, bare CR/LF, obs-fold, control bytes and malformed targets are errors,
//! never guesses. It must not do I/O, know about sockets or runtimes, allocate per
//! byte, or panic on any input: bad bytes from the network become a `ParseError`
//! (mapped to a status code in one place) or a `BodyError`.

pub mod body;
pub mod error;
pub mod headers;
pub mod limits;
pub mod request;
pub mod response;
pub mod write;

mod head;
mod syntax;

#[cfg(test)]
mod robustness;
#[cfg(test)]
mod testutil;

pub use body::{BodyDecoder, BodyKind, Decoded};
pub use error::{BodyError, ParseError};
pub use headers::{Header, HeaderName, HeaderValue};
pub use limits::Limits;
pub use request::{parse_request_head, RequestHead};
pub use response::{parse_response_head, ResponseHead};

/// The HTTP versions the codec speaks (RFC 9112 section 2.3). Anything else in a
/// well-formed `HTTP/x.y` is `ParseError::UnsupportedVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}
