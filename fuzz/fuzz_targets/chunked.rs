//! `BodyDecoder` for a chunked body, fed arbitrary bytes in arbitrary splits.
//! Checks every returned range lies inside the input it indexes, and that the
//! payload, trailers and outcome equal a reference decode of the whole buffer
//! in one go.
//!
//! Input layout: byte 0 is how many split bytes follow (mod 16); each split
//! byte `b` cuts a piece of `b + 1` bytes; the rest of the body is the last
//! piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http::{BodyDecoder, BodyError, BodyKind};

const MAX_TRAILERS: usize = 64;

#[derive(Debug, PartialEq, Eq)]
enum End {
    Done(usize),
    NeedMore,
    Failed(BodyError),
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    payload: Vec<u8>,
    trailers: Option<Vec<u8>>,
    end: End,
}

/// Decode `pieces` the way a read loop does: keep unconsumed bytes, append the
/// next read, call again while progress is made.
fn run(pieces: &[&[u8]]) -> Run {
    let mut dec = BodyDecoder::new(BodyKind::Chunked, MAX_TRAILERS);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Run {
        payload: Vec::new(),
        trailers: None,
        end: End::NeedMore,
    };
    let mut total = 0usize;
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let d = match dec.decode(&buf) {
                Ok(d) => d,
                Err(e) => {
                    out.end = End::Failed(e);
                    return out;
                }
            };
            assert!(d.consumed <= buf.len());
            assert!(d.data.start <= d.data.end && d.data.end <= d.consumed);
            out.payload.extend_from_slice(&buf[d.data.clone()]);
            if let Some(t) = d.trailers.clone() {
                assert!(d.done);
                assert!(t.start <= t.end && t.end <= d.consumed);
                out.trailers = Some(buf[t].to_vec());
            }
            buf.drain(..d.consumed);
            total += d.consumed;
            if d.done {
                assert!(dec.is_done());
                assert_eq!(dec.decode(b"x").map(|d| d.consumed), Ok(0));
                out.end = End::Done(total);
                return out;
            }
            if d.consumed == 0 {
                break;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);

    let mut pieces = Vec::new();
    let mut left = body;
    for &c in cuts {
        let len = (usize::from(c) + 1).min(left.len());
        let (a, b) = left.split_at(len);
        pieces.push(a);
        left = b;
    }
    pieces.push(left);

    let reference = run(&[body]);
    assert!(reference.payload.len() <= body.len());
    assert_eq!(run(&pieces), reference);
});
