//! `loadgen serve`'s HTTP: the responses it sends, serialised once at start (200,
//! N body bytes with `Content-Length` or, to HTTP/1.1 keep-alive requests when asked,
//! in chunks of a set size; in each keep-alive style, with and without a body, and a
//! 400), and the parsing of request heads in place with httparse, which decides
//! the framing of a request body (RFC 9112 section 6) and whether the connection stays
//! open. No I/O here.

use crate::response::parse_content_length;
use std::mem::MaybeUninit;

const MAX_HEADERS: usize = 64;

/// Every response the backend sends, serialised once.
#[derive(Clone)]
pub struct Responses {
    /// Indexed by [`Responses::index`]: (keep-alive style) x (with body, HEAD).
    pub variants: [Box<[u8]>; 6],
    pub bad_request: Box<[u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// HTTP/1.1, persistent by default: no Connection header.
    Default,
    /// The client asked to close, or HTTP/1.0 without keep-alive.
    Close,
    /// HTTP/1.0 with `Connection: keep-alive`.
    KeepAlive10,
}

impl Responses {
    /// Responses with `body_size` body bytes. With `chunk_size` > 0 the body of the
    /// HTTP/1.1 keep-alive response goes in chunks of that many bytes (the others keep
    /// `Content-Length`: an HTTP/1.0 client cannot take chunks).
    pub fn build(body_size: usize, chunk_size: usize) -> Responses {
        let pattern = b"Hello world\n";
        let body: Vec<u8> = pattern.iter().copied().cycle().take(body_size).collect();
        let make = |connection: &str, head_only: bool| -> Box<[u8]> {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nServer: loadgen\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n",
                body.len()
            )
            .into_bytes();
            if !head_only {
                r.extend_from_slice(&body);
            }
            r.into_boxed_slice()
        };
        let chunked = |head_only: bool| -> Box<[u8]> {
            let mut r = b"HTTP/1.1 200 OK\r\nServer: loadgen\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            if !head_only {
                for chunk in body.chunks(chunk_size) {
                    r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    r.extend_from_slice(chunk);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
            }
            r.into_boxed_slice()
        };
        let default = |head_only| {
            if chunk_size > 0 {
                chunked(head_only)
            } else {
                make("", head_only)
            }
        };
        Responses {
            variants: [
                default(false),
                default(true),
                make("Connection: close\r\n", false),
                make("Connection: close\r\n", true),
                make("Connection: keep-alive\r\n", false),
                make("Connection: keep-alive\r\n", true),
            ],
            bad_request:
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec()
                    .into_boxed_slice(),
        }
    }

    fn index(persistence: Persistence, head: bool) -> usize {
        let base = match persistence {
            Persistence::Default => 0,
            Persistence::Close => 2,
            Persistence::KeepAlive10 => 4,
        };
        base + usize::from(head)
    }
}

/// What a parsed head asks for.
pub struct Head {
    /// Bytes of the head.
    pub len: usize,
    /// The response to send, an index into [`Responses::variants`].
    pub response: usize,
    pub close: bool,
    pub body: Body,
    pub expect_continue: bool,
}

pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Parses one request head. `Ok(None)`: incomplete. `Err`: answer 400 and close.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let http11 = req.version == Some(1);
    let head = req.method == Some("HEAD");
    let mut length = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(h.value).map_err(|_| ())?;
            if length.is_some_and(|l| l != v) {
                return Err(());
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                close |= token.trim_ascii().eq_ignore_ascii_case(b"close");
                keep_alive |= token.trim_ascii().eq_ignore_ascii_case(b"keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    // RFC 9112 section 6.1: a request with Transfer-Encoding whose final coding is not
    // chunked, or with both framings, cannot be delimited safely.
    if transfer_encoding && (!chunked || length.is_some()) {
        return Err(());
    }
    let persistence = if close || (!http11 && !keep_alive) {
        Persistence::Close
    } else if !http11 {
        Persistence::KeepAlive10
    } else {
        Persistence::Default
    };
    let body = if chunked {
        Body::Chunked
    } else {
        match length {
            None | Some(0) => Body::None,
            Some(l) => Body::Length(l),
        }
    };
    Ok(Some(Head {
        len,
        response: Responses::index(persistence, head),
        close: persistence == Persistence::Close,
        body,
        expect_continue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_well_formed() {
        let r = Responses::build(30, 0);
        let get = &r.variants[0];
        assert!(get.ends_with(b"\r\n\r\nHello world\nHello world\nHello "));
        assert!(std::str::from_utf8(get)
            .unwrap()
            .contains("Content-Length: 30\r\n"));
        assert!(!r.variants[1].ends_with(b"Hello "));
        assert!(std::str::from_utf8(&r.variants[2])
            .unwrap()
            .contains("Connection: close"));
    }

    #[test]
    fn chunked_responses_are_well_formed() {
        let r = Responses::build(30, 12);
        let get = std::str::from_utf8(&r.variants[0]).unwrap();
        assert!(get.contains("Transfer-Encoding: chunked\r\n"), "{get}");
        assert!(!get.contains("Content-Length"), "{get}");
        assert!(get.ends_with(
            "\r\n\r\nc\r\nHello world\n\r\nc\r\nHello world\n\r\n6\r\nHello \r\n0\r\n\r\n"
        ));
        assert!(std::str::from_utf8(&r.variants[1])
            .unwrap()
            .ends_with("chunked\r\n\r\n"));
        // HTTP/1.0 and close-delimited answers keep Content-Length.
        for v in &r.variants[2..] {
            assert!(std::str::from_utf8(v)
                .unwrap()
                .contains("Content-Length: 30\r\n"));
        }
    }

    #[test]
    fn request_heads() {
        let h = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        assert!(matches!(h.body, Body::None));
        assert_eq!(h.response, 0);

        let h = parse_request_head(b"HEAD / HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        assert_eq!(h.response, Responses::index(Persistence::Close, true));

        let h = parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::Length(5)));

        let h = parse_request_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::Chunked));

        assert!(parse_request_head(b"GET / HTTP/1.1\r\nHost")
            .unwrap()
            .is_none());
        assert!(parse_request_head(
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .is_err());
        assert!(parse_request_head(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
        assert!(parse_request_head(b"\x01garbage\r\n\r\n").is_err());
    }
}
