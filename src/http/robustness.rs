//! Property-style tests over the whole codec: random bytes and mutations of
//! valid messages, driven by a deterministic xorshift PRNG so failures replay.
//! They assert what the fuzz targets assert, on stable and in every `cargo
//! test`: no panic, ranges inside their input, and the same events whatever the
//! split.

use super::body::{BodyDecoder, BodyKind};
use super::limits::Limits;
use super::request::parse_request_head;
use super::response::parse_response_head;
use super::testutil::{decode_pieces, Outcome, XorShift};
use super::write::{write_chunk_header, write_last_chunk};

const VALID_REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"y\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n",
    b"GET http://h.example/x?y HTTP/1.1\r\nHost: h.example\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"PUT /u HTTP/1.1\r\nHost: [::1]:80\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
];

const VALID_RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b\r\nok\r\n0\r\nX: y\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
];

/// Bytes that sit on grammar boundaries: mutations mostly use these.
const SPECIAL: &[u8] = b"\r\n \t:;,=\"\\/?#%@[]0fFxX-+\x00\x01\x7f\x80\xff";

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        let byte = if rng.below(4) == 0 {
            rng.next() as u8
        } else {
            SPECIAL[rng.below(SPECIAL.len())]
        };
        match rng.below(5) {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                // Duplicate a slice: repeated fields, repeated chunks.
                let len = rng.below(24);
                let end = (at + len).min(out.len());
                let copy = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Cut `input` into random pieces.
fn random_pieces<'a>(rng: &mut XorShift, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(16));
        let (a, b) = rest.split_at(n);
        pieces.push(a);
        rest = b;
    }
    pieces
}

/// Parse `input` whole and check every prefix agrees with it.
fn check_head_prefixes(input: &[u8], rng: &mut XorShift) {
    let limits = Limits {
        max_request_line: 64,
        max_header_bytes: 256,
        max_headers: 8,
    };
    let whole_req = parse_request_head(input, &limits);
    let whole_res = parse_response_head(input, &limits, false);
    if let Ok(Some((_, n))) = &whole_req {
        assert!(*n <= input.len());
    }
    if let Ok(Some((_, n))) = &whole_res {
        assert!(*n <= input.len());
    }
    for _ in 0..4 {
        let k = rng.below(input.len() + 1);
        let prefix = &input[..k];
        match parse_request_head(prefix, &limits) {
            Ok(None) => {}
            other => assert_eq!(other, whole_req, "prefix {k} of {input:?}"),
        }
        match parse_response_head(prefix, &limits, false) {
            Ok(None) => {}
            other => assert_eq!(other, whole_res, "prefix {k} of {input:?}"),
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift::new(0x5eed_0001);
    for _ in 0..3000 {
        let len = rng.below(300);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(3) == 0 {
                    SPECIAL[rng.below(SPECIAL.len())]
                } else {
                    rng.next() as u8
                }
            })
            .collect();
        check_head_prefixes(&input, &mut rng);
        for kind in [BodyKind::Chunked, BodyKind::Length(7), BodyKind::UntilClose] {
            let whole = decode_pieces(kind, 32, &[&input], true);
            let pieces = random_pieces(&mut rng, &input);
            assert_eq!(decode_pieces(kind, 32, &pieces, true), whole, "{input:?}");
        }
    }
}

#[test]
fn mutated_requests_split_invariant() {
    let mut rng = XorShift::new(0x5eed_0002);
    for round in 0..4000 {
        let base = VALID_REQUESTS[round % VALID_REQUESTS.len()];
        let input = mutate(&mut rng, base);
        check_head_prefixes(&input, &mut rng);
        let whole = super::testutil::run_requests(&[&input]);
        for _ in 0..2 {
            let pieces = random_pieces(&mut rng, &input);
            assert_eq!(
                super::testutil::run_requests(&pieces),
                whole,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
        if round % 50 == 0 {
            super::testutil::assert_requests_split_invariant(&input);
        }
    }
}

#[test]
fn mutated_responses_split_invariant() {
    let mut rng = XorShift::new(0x5eed_0003);
    for round in 0..3000 {
        let base = VALID_RESPONSES[round % VALID_RESPONSES.len()];
        let input = mutate(&mut rng, base);
        check_head_prefixes(&input, &mut rng);
        for head_request in [false, true] {
            let whole = super::testutil::run_responses(&[&input], head_request, true);
            let pieces = random_pieces(&mut rng, &input);
            assert_eq!(
                super::testutil::run_responses(&pieces, head_request, true),
                whole,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

/// A random valid chunked body and the payload and trailers it carries.
fn random_chunked(rng: &mut XorShift) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut payload = Vec::new();
    for _ in 0..rng.below(6) {
        let len = 1 + rng.below(40);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(3) == 0 {
            // Leading zeros and upper-case hex are valid chunk sizes.
            wire.extend_from_slice(format!("00{len:X}").as_bytes());
        } else {
            let mut line = Vec::new();
            write_chunk_header(len, &mut line);
            line.truncate(line.len() - 2);
            wire.extend_from_slice(&line);
        }
        match rng.below(4) {
            0 => wire.extend_from_slice(b";name"),
            1 => wire.extend_from_slice(b";n=v;m=\"q \\\" t\""),
            _ => {}
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
        payload.extend_from_slice(&data);
    }
    let trailers: &[u8] = match rng.below(3) {
        0 => b"",
        1 => b"X-Checksum: abc\r\n",
        _ => b"A: 1\r\nB:\t2 \r\n",
    };
    write_last_chunk(trailers, &mut wire);
    (wire, payload, trailers.to_vec())
}

#[test]
fn chunked_matches_reference_and_splits() {
    let mut rng = XorShift::new(0x5eed_0004);
    for round in 0..3000 {
        let (wire, payload, trailers) = random_chunked(&mut rng);
        let whole = decode_pieces(BodyKind::Chunked, 64, &[&wire], false);
        assert_eq!(whole.data, payload);
        assert_eq!(whole.trailers.as_deref(), Some(&trailers[..]));
        assert_eq!(whole.outcome, Outcome::Done(wire.len()));
        let pieces = random_pieces(&mut rng, &wire);
        assert_eq!(decode_pieces(BodyKind::Chunked, 64, &pieces, false), whole);

        // A mutation decodes the same whatever the split, and never yields
        // more payload than there are input bytes.
        let bad = mutate(&mut rng, &wire);
        let whole = decode_pieces(BodyKind::Chunked, 64, &[&bad], true);
        assert!(whole.data.len() <= bad.len());
        for _ in 0..2 {
            let pieces = random_pieces(&mut rng, &bad);
            assert_eq!(
                decode_pieces(BodyKind::Chunked, 64, &pieces, true),
                whole,
                "{bad:?}"
            );
        }
        if round % 100 == 0 {
            super::testutil::assert_body_split_invariant(BodyKind::Chunked, 64, &bad, true);
        }
    }
}

#[test]
fn decoder_contract_on_random_input() {
    // Drive the decoder by its documented contract and check it terminates:
    // each call either consumes bytes, finishes, asks for more, or fails.
    let mut rng = XorShift::new(0x5eed_0005);
    for _ in 0..2000 {
        let (wire, _, _) = random_chunked(&mut rng);
        let input = mutate(&mut rng, &wire);
        let mut d = BodyDecoder::new(BodyKind::Chunked, 16);
        let mut rest = &input[..];
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls <= input.len() + 2, "no progress on {input:?}");
            match d.decode(rest) {
                Ok(r) => {
                    assert!(r.consumed <= rest.len());
                    assert!(r.data.end <= r.consumed);
                    if r.done || r.consumed == 0 {
                        break;
                    }
                    rest = &rest[r.consumed..];
                }
                Err(_) => break,
            }
        }
    }
}
