//! Responses the gateway writes itself: errors (one place maps every failure to a
//! status and an APIM-style JSON body), the health probe and mocked operations.

use crate::http::write::{reason_phrase, write_header, write_status_line};

/// The health probe path, as in APIM's self-hosted gateway.
pub const STATUS_PATH: &str = "/status-0123456789abcdef";

/// Everything that can stop a request short of a backend's response, and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request could not be parsed (status from the codec: 400, 414, 431, 505).
    BadRequest(u16, &'static str),
    /// The client did not send its head or body in time.
    ClientTimeout,
    /// Dot segments in the path.
    BadPath,
    NoApi,
    NoOperation,
    BodyTooLarge,
    /// No config loaded yet.
    NotReady,
    SubscriptionMissing,
    SubscriptionInvalid,
    SubscriptionInactive,
    /// The backend refused or reset the connection, or answered with something not HTTP.
    BadGateway(&'static str),
    /// The backend did not connect or answer in time.
    GatewayTimeout(&'static str),
}

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest(status, _) => status,
            Failure::ClientTimeout => 408,
            Failure::BadPath => 400,
            Failure::NoApi | Failure::NoOperation => 404,
            Failure::BodyTooLarge => 413,
            Failure::NotReady => 503,
            Failure::SubscriptionMissing | Failure::SubscriptionInvalid => 401,
            Failure::SubscriptionInactive => 403,
            Failure::BadGateway(_) => 502,
            Failure::GatewayTimeout(_) => 504,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Failure::BadRequest(_, why) => why,
            Failure::ClientTimeout => "Request timed out",
            Failure::BadPath => "Invalid path",
            Failure::NoApi => "Resource not found",
            Failure::NoOperation => "Operation not found",
            Failure::BodyTooLarge => "Request entity too large",
            Failure::NotReady => "Gateway has no configuration yet",
            Failure::SubscriptionMissing => "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
            Failure::SubscriptionInvalid => "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
            Failure::SubscriptionInactive => "Access denied due to inactive subscription. Make sure the subscription is active.",
            Failure::BadGateway(why) | Failure::GatewayTimeout(why) => why,
        }
    }
}

/// A complete JSON error response, `{ "statusCode": 404, "message": "..." }`.
pub fn error_response(failure: Failure, keep_alive: bool, out: &mut Vec<u8>) {
    let status = failure.status();
    let body = error_body(status, failure.message());
    simple_response(
        status,
        Some("application/json"),
        body.as_bytes(),
        false,
        keep_alive,
        out,
    );
}

/// APIM's JSON error body.
pub fn error_body(status: u16, message: &str) -> String {
    format!(
        "{{ \"statusCode\": {status}, \"message\": \"{}\" }}",
        json_escape(message)
    )
}

/// A response with a fixed body. `head_only` leaves the body out (HEAD requests) but
/// keeps its Content-Length.
pub fn simple_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
    out: &mut Vec<u8>,
) {
    write_status_line(out, status, reason_phrase(status));
    if let Some(ct) = content_type {
        write_header(out, "content-type", ct.as_bytes());
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if !no_body {
        write_header(out, "content-length", body.len().to_string().as_bytes());
    }
    if !keep_alive {
        write_header(out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !no_body {
        out.extend_from_slice(body);
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_apim_json() {
        let mut out = Vec::new();
        error_response(Failure::NoApi, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            body,
            r#"{ "statusCode": 404, "message": "Resource not found" }"#
        );
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[test]
    fn head_only_keeps_length_drops_body() {
        let mut out = Vec::new();
        simple_response(200, None, b"hello", true, true, &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    }

    #[test]
    fn escapes_quotes_and_controls() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
