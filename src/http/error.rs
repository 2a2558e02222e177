//! Errors of the HTTP/1.1 codec. `ParseError` is what a bad message head becomes,
//! and `ParseError::status` is the single place where it maps to an HTTP status
//! (the proxy answers with it and closes; for a backend response it logs and
//! answers 502 instead). `BodyError` covers body framing. Both are small `Copy`
//! values with static reasons, so producing one never allocates.

use thiserror::Error;

/// Why a message head was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The request line is longer than `Limits::max_request_line` (414).
    #[error("request line too long")]
    RequestLineTooLong,
    /// The head is larger than `Limits::max_header_bytes` (431).
    #[error("header section too large")]
    HeadersTooLarge,
    /// More than `Limits::max_headers` field lines (431).
    #[error("too many header fields")]
    TooManyHeaders,
    /// Malformed or ambiguous message (400); the reason is for logs only.
    #[error("invalid HTTP message: {0}")]
    Invalid(&'static str),
    /// A well-formed `HTTP/x.y` version other than 1.0 and 1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
}

impl ParseError {
    /// The status code a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::RequestLineTooLong => 414,
            ParseError::HeadersTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::Invalid(_) => 400,
            ParseError::UnsupportedVersion => 505,
        }
    }

    /// A short human reason, fit for a log line or an error body.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::RequestLineTooLong => "request line too long",
            ParseError::HeadersTooLarge => "header section too large",
            ParseError::TooManyHeaders => "too many header fields",
            ParseError::Invalid(why) => why,
            ParseError::UnsupportedVersion => "unsupported HTTP version",
        }
    }
}

/// Why a message body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BodyError {
    /// Framing violation: bad chunk size or extension, missing CRLF, invalid or
    /// oversized trailers.
    #[error("invalid body framing: {0}")]
    Invalid(&'static str),
    /// The peer closed before the framing said the body was complete.
    #[error("body truncated by end of stream")]
    Truncated,
}

impl BodyError {
    /// A short human reason, fit for a log line or an error body.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Invalid(why) => why,
            BodyError::Truncated => "body truncated by end of stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ParseError::RequestLineTooLong.status(), 414);
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);
        assert_eq!(ParseError::TooManyHeaders.status(), 431);
        assert_eq!(ParseError::Invalid("x").status(), 400);
        assert_eq!(ParseError::UnsupportedVersion.status(), 505);
    }

    #[test]
    fn reasons() {
        assert_eq!(
            ParseError::Invalid("bare LF in head").reason(),
            "bare LF in head"
        );
        assert_eq!(
            ParseError::TooManyHeaders.reason(),
            "too many header fields"
        );
        assert_eq!(BodyError::Invalid("bad").reason(), "bad");
        assert_eq!(
            BodyError::Truncated.reason(),
            "body truncated by end of stream"
        );
    }

    #[test]
    fn display_carries_reason() {
        let e = ParseError::Invalid("duplicate Content-Length");
        assert_eq!(
            e.to_string(),
            "invalid HTTP message: duplicate Content-Length"
        );
        assert_eq!(
            BodyError::Invalid("bad chunk size").to_string(),
            "invalid body framing: bad chunk size"
        );
    }
}
