//! Test support for the codec: a connection simulator that feeds a byte stream
//! to the parsers in arbitrary pieces the way a read loop would (keep what was
//! not consumed, append the next read), and helpers asserting that every split
//! of an input, including byte by byte, gives the same events as the whole.

use super::body::{BodyDecoder, BodyKind};
use super::error::{BodyError, ParseError};
use super::headers::Header;
use super::limits::Limits;
use super::request::parse_request_head;
use super::response::parse_response_head;

/// Trailer budget the simulators give every body.
pub(crate) const SIM_MAX_TRAILERS: usize = 4096;

/// What a read loop observes. Consecutive `Data` are merged, so the events do
/// not depend on how the payload was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// "METHOD target" or "STATUS reason".
    Head(String),
    Data(Vec<u8>),
    /// Non-empty trailer field lines.
    Trailers(Vec<u8>),
    /// Body complete.
    End,
    HeadError(ParseError),
    BodyError(BodyError),
    /// Bytes left at end of stream that do not make a complete head.
    Partial(usize),
}

pub(crate) fn value<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    super::headers::get(headers, name)
}

fn push_data(events: &mut Vec<Event>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Event::Data(d)) = events.last_mut() {
        d.extend_from_slice(bytes);
    } else {
        events.push(Event::Data(bytes.to_vec()));
    }
}

/// Run one `decode` on `buf`, check its invariants, record its output, drop
/// the consumed bytes. Returns the decoded result.
fn decode_step(
    dec: &mut BodyDecoder,
    buf: &mut Vec<u8>,
    events: &mut Vec<Event>,
) -> Result<(usize, bool), BodyError> {
    let d = dec.decode(buf)?;
    assert!(d.consumed <= buf.len(), "consumed past input");
    assert!(
        d.data.start <= d.data.end && d.data.end <= d.consumed,
        "data {:?} consumed {}",
        d.data,
        d.consumed
    );
    push_data(events, buf.get(d.data.clone()).expect("data in input"));
    if let Some(t) = d.trailers.clone() {
        assert!(d.done, "trailers only at the end");
        assert!(t.start <= t.end && t.end <= d.consumed);
        let t = buf.get(t).expect("trailers in input");
        if !t.is_empty() {
            events.push(Event::Trailers(t.to_vec()));
        }
    }
    assert_eq!(d.done, dec.is_done());
    buf.drain(..d.consumed);
    Ok((d.consumed, d.done))
}

/// Which side of the connection the simulator plays.
#[derive(Clone, Copy)]
enum Side {
    Server,
    Client { head_request: bool },
}

/// Feed `pieces` in order to a server or client read loop; `eof`: the peer
/// closes after the last piece. Returns the events and the Debug form of every
/// head, for exact comparisons.
fn simulate(side: Side, pieces: &[&[u8]], eof: bool) -> (Vec<Event>, Vec<String>) {
    let limits = Limits::default();
    let mut events = Vec::new();
    let mut heads = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut dec: Option<BodyDecoder> = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match dec.as_mut() {
                None => {
                    let parsed = match side {
                        Side::Server => parse_request_head(&buf, &limits).map(|o| {
                            o.map(|(h, n)| {
                                (
                                    format!("{} {}", h.method, h.target),
                                    format!("{h:?}"),
                                    h.body,
                                    n,
                                )
                            })
                        }),
                        Side::Client { head_request } => {
                            parse_response_head(&buf, &limits, head_request).map(|o| {
                                o.map(|(h, n)| {
                                    (
                                        format!("{} {}", h.status, h.reason),
                                        format!("{h:?}"),
                                        h.body,
                                        n,
                                    )
                                })
                            })
                        }
                    };
                    match parsed {
                        Ok(None) => break,
                        Ok(Some((summary, debug, body, n))) => {
                            assert!(n > 0 && n <= buf.len());
                            events.push(Event::Head(summary));
                            heads.push(debug);
                            buf.drain(..n);
                            dec = Some(BodyDecoder::new(body, SIM_MAX_TRAILERS));
                        }
                        Err(e) => {
                            events.push(Event::HeadError(e));
                            return (events, heads);
                        }
                    }
                }
                Some(d) => match decode_step(d, &mut buf, &mut events) {
                    Ok((_, true)) => {
                        events.push(Event::End);
                        dec = None;
                    }
                    Ok((0, false)) => break,
                    Ok((_, false)) => {}
                    Err(e) => {
                        events.push(Event::BodyError(e));
                        return (events, heads);
                    }
                },
            }
        }
    }
    if eof {
        if let Some(d) = dec.as_mut() {
            match d.on_eof() {
                Ok(()) => events.push(Event::End),
                Err(e) => events.push(Event::BodyError(e)),
            }
            return (events, heads);
        }
    }
    if dec.is_none() && !buf.is_empty() {
        events.push(Event::Partial(buf.len()));
    }
    (events, heads)
}

/// Events of a server reading requests from `pieces` (no EOF).
pub(crate) fn run_requests(pieces: &[&[u8]]) -> Vec<Event> {
    simulate(Side::Server, pieces, false).0
}

/// Events of a client reading responses from `pieces`.
pub(crate) fn run_responses(pieces: &[&[u8]], head_request: bool, eof: bool) -> Vec<Event> {
    simulate(Side::Client { head_request }, pieces, eof).0
}

/// Every two-piece split and the byte-by-byte feed of `input` give exactly the
/// events (and heads) of the whole.
fn assert_split_invariant(side: Side, input: &[u8], eof: bool) {
    let whole = simulate(side, &[input], eof);
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        let split = simulate(side, &[a, b], eof);
        assert_eq!(
            split,
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        simulate(side, &bytes, eof),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
}

/// For a request stream (one head, or several pipelined with bodies).
pub(crate) fn assert_request_split_invariant(input: &[u8]) {
    assert_split_invariant(Side::Server, input, false);
}

pub(crate) fn assert_requests_split_invariant(input: &[u8]) {
    assert_split_invariant(Side::Server, input, false);
    assert_split_invariant(Side::Server, input, true);
}

pub(crate) fn assert_responses_split_invariant(input: &[u8], head_request: bool) {
    assert_split_invariant(Side::Client { head_request }, input, false);
    assert_split_invariant(Side::Client { head_request }, input, true);
}

/// How a body decode ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Complete after this many bytes.
    Done(usize),
    NeedMore,
    Err(BodyError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BodyRun {
    pub data: Vec<u8>,
    pub trailers: Option<Vec<u8>>,
    pub outcome: Outcome,
}

/// Decode a body fed in `pieces`; `eof` after the last one.
pub(crate) fn decode_pieces(
    kind: BodyKind,
    max_trailers: usize,
    pieces: &[&[u8]],
    eof: bool,
) -> BodyRun {
    let mut dec = BodyDecoder::new(kind, max_trailers);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut total = 0usize;
    let mut trailers = None;
    let finish = |events: Vec<Event>, trailers, outcome| {
        let mut data = Vec::new();
        for e in &events {
            if let Event::Data(d) = e {
                data.extend_from_slice(d);
            }
        }
        BodyRun {
            data,
            trailers,
            outcome,
        }
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = events.len();
            match decode_step(&mut dec, &mut buf, &mut events) {
                Ok((n, done)) => {
                    total += n;
                    if let Some(Event::Trailers(t)) = events.get(before..).and_then(|e| e.last()) {
                        trailers = Some(t.clone());
                    }
                    if done {
                        if kind == BodyKind::Chunked && trailers.is_none() {
                            trailers = Some(Vec::new());
                        }
                        // Done means done: nothing more is consumed.
                        assert_eq!(dec.decode(b"more").map(|d| d.consumed), Ok(0));
                        return finish(events, trailers, Outcome::Done(total));
                    }
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => return finish(events, trailers, Outcome::Err(e)),
            }
        }
    }
    if eof {
        return match dec.on_eof() {
            Ok(()) => finish(events, trailers, Outcome::Done(total)),
            Err(e) => finish(events, trailers, Outcome::Err(e)),
        };
    }
    finish(events, trailers, Outcome::NeedMore)
}

/// Every two-piece split and the byte-by-byte feed decode like the whole.
pub(crate) fn assert_body_split_invariant(
    kind: BodyKind,
    max_trailers: usize,
    input: &[u8],
    eof: bool,
) -> BodyRun {
    let whole = decode_pieces(kind, max_trailers, &[input], eof);
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        assert_eq!(
            decode_pieces(kind, max_trailers, &[a, b], eof),
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        decode_pieces(kind, max_trailers, &bytes, eof),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

/// Small deterministic PRNG (xorshift64*) for property-style tests.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
