//! Message body framing (RFC 9112 6 and 7): a `BodyDecoder` turns the bytes after
//! a head into payload ranges, for Content-Length, chunked and until-close
//! bodies. It never copies or buffers payload: it points into the caller's
//! buffer and keeps only a small state enum between calls, so the caller decides
//! where bytes live. It must not decode content codings, interpret trailers or
//! accept framing it is unsure of: every deviation from the chunked grammar is a
//! `BodyError`.

use std::ops::Range;

use super::error::BodyError;
use super::syntax::{is_field_value_byte, is_tchar};

/// How a message body is delimited (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

/// The outcome of one `BodyDecoder::decode` call; ranges index its `input`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of `input` used, payload and framing.
    pub consumed: usize,
    /// Payload bytes inside `input` (may be empty).
    pub data: Range<usize>,
    /// When a chunked body ends: its raw trailer field lines, each ending in
    /// CRLF, without the final empty line. `Some(empty range)` when there are
    /// none; `None` in every other call.
    pub trailers: Option<Range<usize>>,
    /// The body is complete.
    pub done: bool,
}

/// Longest run of chunk extensions on one chunk-size line. Extensions carry
/// nothing a gateway uses; the cap stops a peer from streaming framing forever.
const MAX_CHUNK_EXT_BYTES: usize = 4096;

/// Most hex digits in a chunk-size: 16 fill a u64.
const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// Decodes one body. Feed it the bytes that follow the head.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    kind: BodyKind,
    max_trailer_bytes: usize,
    state: State,
}

/// Where the decoder is. The chunked states follow RFC 9112 7.1:
/// `chunk-size [ chunk-ext ] CRLF chunk-data CRLF`, then
/// `last-chunk trailer-section CRLF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length {
        remaining: u64,
    },
    UntilClose,
    /// Reading the hex digits of a chunk-size.
    ChunkSize {
        size: u64,
        digits: u8,
    },
    /// Reading chunk extensions; `len` counts their bytes.
    ChunkExt {
        size: u64,
        ext: Ext,
        len: usize,
    },
    /// Saw the CR that ends a chunk-size line.
    ChunkSizeLf {
        size: u64,
    },
    ChunkData {
        remaining: u64,
    },
    /// Expecting the CRLF after chunk data.
    ChunkDataCr,
    ChunkDataLf,
    /// After the last-chunk line: the whole trailer section must be in one
    /// input so it can be handed out as one range.
    Trailers,
    Done,
    /// An error was found; every later call reports it again.
    Failed(BodyError),
}

/// Position inside `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`
/// (RFC 9112 7.1.1). BWS (spaces and tabs) is accepted where the grammar puts it and
/// nowhere else: not before the CRLF, not inside a name or token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// After BWS following a size or a value: only more BWS or ";" may come.
    BeforeSemi,
    /// After ";": a token must start.
    NameStart,
    Name,
    /// After BWS following a name: "=", ";" or more BWS.
    AfterName,
    /// After "=": a token or a quoted-string must start.
    ValueStart,
    Token,
    Quoted,
    /// After a backslash inside a quoted-string.
    QuotedPair,
    /// After the closing quote.
    AfterQuoted,
}

impl BodyDecoder {
    /// A decoder for a body of `kind`. `max_trailer_bytes` bounds the trailer
    /// field lines of a chunked body (their CRLFs included, the final empty
    /// line not).
    pub fn new(kind: BodyKind, max_trailer_bytes: usize) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::ChunkSize { size: 0, digits: 0 },
            BodyKind::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            kind,
            max_trailer_bytes,
            state,
        }
    }

    /// Decode from the front of `input`. Returns at most one contiguous data
    /// range per call. Call again with `input[consumed..]` while `consumed > 0`
    /// and not `done`; `consumed == 0 && !done` means "need more bytes". After
    /// `done`, returns `consumed == 0`. Payload that precedes a framing error is
    /// still returned; the error comes on the next call.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        let mut out = Decoded::default();
        let mut pos = 0usize;
        let mut has_data = false;
        loop {
            let rest = input.get(pos..).unwrap_or(&[]);
            let step = match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Length { remaining } => {
                    let n = clamp(remaining, rest.len());
                    out.data = pos..pos + n;
                    pos += n;
                    self.state = match remaining.saturating_sub(n as u64) {
                        0 => State::Done,
                        remaining => State::Length { remaining },
                    };
                    break;
                }
                State::UntilClose => {
                    out.data = pos..input.len();
                    pos = input.len();
                    break;
                }
                State::ChunkData { remaining } => {
                    if has_data || rest.is_empty() {
                        break;
                    }
                    let n = clamp(remaining, rest.len());
                    out.data = pos..pos + n;
                    pos += n;
                    has_data = true;
                    Ok(match remaining.saturating_sub(n as u64) {
                        0 => State::ChunkDataCr,
                        remaining => State::ChunkData { remaining },
                    })
                }
                State::Trailers => match scan_trailers(rest, self.max_trailer_bytes) {
                    Ok(Some((lines, total))) => {
                        out.trailers = Some(pos..pos + lines);
                        pos += total;
                        Ok(State::Done)
                    }
                    Ok(None) => break,
                    Err(e) => Err(e),
                },
                framing => match rest.first() {
                    Some(&b) => {
                        let next = step_framing(framing, b);
                        if next.is_ok() {
                            pos += 1;
                        }
                        next
                    }
                    None => break,
                },
            };
            match step {
                Ok(next) => self.state = next,
                Err(e) => {
                    self.state = State::Failed(e);
                    if has_data {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        out.consumed = pos;
        out.done = self.state == State::Done;
        Ok(out)
    }

    /// The peer closed. `Ok(())` if the body is complete (or delimited by the
    /// close), `Err(Truncated)` otherwise (RFC 9112 8: an incomplete message).
    pub fn on_eof(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Failed(e) => Err(e),
            _ => {
                self.state = State::Failed(BodyError::Truncated);
                Err(BodyError::Truncated)
            }
        }
    }

    /// Bytes of the current chunk announced by its chunk-size line and not decoded yet
    /// (0 outside chunk data), so a caller can refuse a body over a limit as soon as
    /// its size is announced, before any of it arrives.
    pub fn announced_remaining(&self) -> u64 {
        match self.state {
            State::ChunkData { remaining } => remaining,
            State::ChunkSizeLf { size } => size,
            State::ChunkExt { size, .. } => size,
            _ => 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn kind(&self) -> BodyKind {
        self.kind
    }
}

/// `min(remaining, available)` without truncating casts.
fn clamp(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

/// One byte of chunk framing (RFC 9112 7.1): size digits, extensions, and the
/// CRLFs around chunk data.
fn step_framing(state: State, b: u8) -> Result<State, BodyError> {
    match state {
        State::ChunkSize { size, digits } => {
            if let Some(d) = hex_value(b) {
                if digits >= MAX_CHUNK_SIZE_DIGITS {
                    return Err(BodyError::Invalid("chunk size too long"));
                }
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(d)))
                    .ok_or(BodyError::Invalid("chunk size overflow"))?;
                return Ok(State::ChunkSize {
                    size,
                    digits: digits + 1,
                });
            }
            match b {
                _ if digits == 0 => Err(BodyError::Invalid("invalid chunk size")),
                b';' => Ok(State::ChunkExt {
                    size,
                    ext: Ext::NameStart,
                    len: 1,
                }),
                b' ' | b'\t' => Ok(State::ChunkExt {
                    size,
                    ext: Ext::BeforeSemi,
                    len: 1,
                }),
                b'\r' => Ok(State::ChunkSizeLf { size }),
                b'\n' => Err(BodyError::Invalid("bare LF in chunk size line")),
                _ => Err(BodyError::Invalid("invalid chunk size")),
            }
        }
        State::ChunkExt { size, ext, len } => {
            let ext = match (ext, b) {
                (Ext::Name | Ext::Token | Ext::AfterQuoted, b'\r') => {
                    return Ok(State::ChunkSizeLf { size })
                }
                _ if len >= MAX_CHUNK_EXT_BYTES => {
                    return Err(BodyError::Invalid("chunk extensions too long"))
                }
                (
                    Ext::BeforeSemi | Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterQuoted,
                    b';',
                ) => Ext::NameStart,
                (Ext::BeforeSemi | Ext::Token | Ext::AfterQuoted, b' ' | b'\t') => Ext::BeforeSemi,
                (Ext::NameStart, b' ' | b'\t') => Ext::NameStart,
                (Ext::Name | Ext::AfterName, b' ' | b'\t') => Ext::AfterName,
                (Ext::ValueStart, b' ' | b'\t') => Ext::ValueStart,
                (Ext::NameStart | Ext::Name, _) if is_tchar(b) => Ext::Name,
                (Ext::Name | Ext::AfterName, b'=') => Ext::ValueStart,
                (Ext::ValueStart, b'"') => Ext::Quoted,
                (Ext::ValueStart | Ext::Token, _) if is_tchar(b) => Ext::Token,
                (Ext::Quoted, b'"') => Ext::AfterQuoted,
                (Ext::Quoted, b'\\') => Ext::QuotedPair,
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                (Ext::Quoted, _) if is_field_value_byte(b) => Ext::Quoted,
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                (Ext::QuotedPair, _) if is_field_value_byte(b) => Ext::Quoted,
                (_, b'\n') => return Err(BodyError::Invalid("bare LF in chunk size line")),
                _ => return Err(BodyError::Invalid("invalid chunk extension")),
            };
            Ok(State::ChunkExt {
                size,
                ext,
                len: len + 1,
            })
        }
        State::ChunkSizeLf { size } => match (b, size) {
            (b'\n', 0) => Ok(State::Trailers),
            (b'\n', remaining) => Ok(State::ChunkData { remaining }),
            _ => Err(BodyError::Invalid("bare CR in chunk size line")),
        },
        State::ChunkDataCr => match b {
            b'\r' => Ok(State::ChunkDataLf),
            _ => Err(BodyError::Invalid("missing CRLF after chunk data")),
        },
        State::ChunkDataLf => match b {
            b'\n' => Ok(State::ChunkSize { size: 0, digits: 0 }),
            _ => Err(BodyError::Invalid("missing CRLF after chunk data")),
        },
        // The other states never reach byte-level framing.
        _ => Err(BodyError::Invalid("decoder state error")),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Position inside a trailer section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trailer {
    LineStart,
    Name,
    Value,
    ValueCr,
    FinalCr,
}

/// Find the end of a trailer section (RFC 9112 7.1.2: `*( field-line CRLF )
/// CRLF`) at the front of `t`, checking each field line like a head's: a token
/// name directly followed by ":", a value of VCHAR / obs-text / SP / HTAB, CRLF
/// line ends, no obs-fold. Returns the length of the field lines and of the whole
/// section, or `None` when more bytes are needed. Decisions are taken in byte
/// order, so a prefix gives `None` or the same answer as the whole.
fn scan_trailers(t: &[u8], max: usize) -> Result<Option<(usize, usize)>, BodyError> {
    let mut st = Trailer::LineStart;
    let mut i = 0;
    while let Some(&b) = t.get(i) {
        st = match (st, b) {
            (Trailer::LineStart, b'\r') => Trailer::FinalCr,
            (Trailer::FinalCr, b'\n') => return Ok(Some((i.saturating_sub(1), i + 1))),
            (Trailer::FinalCr, _) => return Err(BodyError::Invalid("bare CR in trailers")),
            _ if i >= max => return Err(BodyError::Invalid("trailers too large")),
            (Trailer::LineStart, b' ' | b'\t') => {
                return Err(BodyError::Invalid("obs-fold in trailers"))
            }
            (Trailer::LineStart | Trailer::Name, _) if is_tchar(b) => Trailer::Name,
            (Trailer::Name, b':') => Trailer::Value,
            (Trailer::Value, b'\r') => Trailer::ValueCr,
            (Trailer::Value, _) if is_field_value_byte(b) => Trailer::Value,
            (Trailer::ValueCr, b'\n') => Trailer::LineStart,
            (Trailer::ValueCr, _) => return Err(BodyError::Invalid("bare CR in trailers")),
            (_, b'\n') => return Err(BodyError::Invalid("bare LF in trailers")),
            (Trailer::Value, _) => return Err(BodyError::Invalid("control character in trailers")),
            _ => return Err(BodyError::Invalid("invalid trailer field name")),
        };
        i += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testutil::{assert_body_split_invariant, decode_pieces, Outcome};

    fn chunked(input: &[u8]) -> (Vec<u8>, Option<Vec<u8>>, Outcome) {
        let run = assert_body_split_invariant(BodyKind::Chunked, 64, input, false);
        (run.data, run.trailers, run.outcome)
    }

    fn chunked_err(input: &[u8]) -> BodyError {
        match chunked(input).2 {
            Outcome::Err(e) => e,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn empty_is_done_immediately() {
        let mut d = BodyDecoder::new(BodyKind::Empty, 0);
        assert!(d.is_done());
        assert_eq!(
            d.decode(b"GET / HTTP/1.1\r\n"),
            Ok(Decoded {
                done: true,
                ..Decoded::default()
            })
        );
        assert_eq!(d.on_eof(), Ok(()));
        assert_eq!(d.kind(), BodyKind::Empty);
        assert!(BodyDecoder::new(BodyKind::Length(0), 0).is_done());
    }

    #[test]
    fn length_body() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), 0);
        assert_eq!(
            d.decode(b"hel"),
            Ok(Decoded {
                consumed: 3,
                data: 0..3,
                trailers: None,
                done: false
            })
        );
        assert_eq!(d.decode(b""), Ok(Decoded::default()));
        assert_eq!(
            d.decode(b"loGET"),
            Ok(Decoded {
                consumed: 2,
                data: 0..2,
                trailers: None,
                done: true
            })
        );
        assert_eq!(
            d.decode(b"GET"),
            Ok(Decoded {
                done: true,
                ..Decoded::default()
            })
        );
        let run = assert_body_split_invariant(BodyKind::Length(5), 0, b"helloNEXT", false);
        assert_eq!(run.data, b"hello");
        assert_eq!(run.outcome, Outcome::Done(5));
    }

    #[test]
    fn length_truncated() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), 0);
        d.decode(b"hel").unwrap();
        assert_eq!(d.on_eof(), Err(BodyError::Truncated));
        let run = assert_body_split_invariant(BodyKind::Length(5), 0, b"hel", true);
        assert_eq!(run.outcome, Outcome::Err(BodyError::Truncated));
    }

    #[test]
    fn huge_length() {
        let mut d = BodyDecoder::new(BodyKind::Length(u64::MAX), 0);
        let r = d.decode(b"abc").unwrap();
        assert_eq!((r.consumed, r.data, r.done), (3, 0..3, false));
    }

    #[test]
    fn until_close() {
        let mut d = BodyDecoder::new(BodyKind::UntilClose, 0);
        let r = d.decode(b"abc").unwrap();
        assert_eq!((r.consumed, r.data, r.done), (3, 0..3, false));
        assert!(!d.is_done());
        assert_eq!(d.on_eof(), Ok(()));
        assert!(d.is_done());
        assert_eq!(d.decode(b"x").unwrap().consumed, 0);
        let run = assert_body_split_invariant(BodyKind::UntilClose, 0, b"all of it", true);
        assert_eq!(run.data, b"all of it");
        assert_eq!(run.outcome, Outcome::Done(9));
    }

    #[test]
    fn chunked_whole_body_in_one_call() {
        let input = b"5\r\nhello\r\n0\r\n\r\nNEXT";
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0);
        assert_eq!(
            d.decode(input),
            Ok(Decoded {
                consumed: 15,
                data: 3..8,
                trailers: Some(13..13),
                done: true
            })
        );
        assert_eq!(d.decode(b"NEXT").unwrap().consumed, 0);
    }

    #[test]
    fn chunked_one_data_range_per_call() {
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0);
        let r = d.decode(input).unwrap();
        assert_eq!((r.consumed, r.data.clone(), r.done), (11, 3..6, false));
        let rest = &input[r.consumed..];
        let r = d.decode(rest).unwrap();
        assert_eq!(&rest[r.data.clone()], b"de");
        assert!(r.done);
        assert_eq!(r.consumed, rest.len());
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input = b"4;a=b;c;d=\"x y\\\"z\"\r\nWiki\r\n5;ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n000;last=1\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT";
        let (data, trailers, outcome) = chunked(input);
        assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(
            trailers.as_deref(),
            Some(&b"Expires: never\r\nX-Sum: 1\r\n"[..])
        );
        assert_eq!(outcome, Outcome::Done(input.len() - 4));
    }

    #[test]
    fn chunked_size_limits() {
        let (data, _, outcome) = chunked(b"0000000000000001\r\nx\r\n0\r\n\r\n");
        assert_eq!(data, b"x");
        assert!(matches!(outcome, Outcome::Done(_)));
        assert_eq!(
            chunked_err(b"00000000000000001\r\nx\r\n0\r\n\r\n"),
            BodyError::Invalid("chunk size too long")
        );
        // 16 hex digits is u64::MAX: accepted, just never completes.
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0);
        let r = d.decode(b"ffffffffffffffff\r\nabc").unwrap();
        assert_eq!((r.data, r.done), (18..21, false));
    }

    #[test]
    fn chunked_rejections() {
        let cases: &[(&[u8], &str)] = &[
            (b"\r\n", "invalid chunk size"),
            (b" 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            (b"5 \r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            (b"5;a \r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=b \r\nhello\r\n", "invalid chunk extension"),
            (b"5;a b\r\nhello\r\n", "invalid chunk extension"),
            (b"+5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            (b"-5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            (b"0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            (b"g\r\n", "invalid chunk size"),
            (b";a\r\n", "invalid chunk size"),
            (b"5\nhello\r\n0\r\n\r\n", "bare LF in chunk size line"),
            (b"5\rhello\r\n0\r\n\r\n", "bare CR in chunk size line"),
            (b"5;a\nhello\r\n", "bare LF in chunk size line"),
            (b"5;\r\nhello\r\n", "invalid chunk extension"),
            (b"5;=b\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=\"b\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=\"b\"c\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=b c\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=\"\x00\"\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a=\"\\\x01\"\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a@b\r\nhello\r\n", "invalid chunk extension"),
            (b"5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data"),
            (b"5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data"),
            (b"5\r\nhello\rX0\r\n\r\n", "missing CRLF after chunk data"),
            (b"5\r\nhello\r\n0\r\nX: y\n\r\n", "bare LF in trailers"),
            (b"5\r\nhello\r\n0\r\nX: y\rz\r\n\r\n", "bare CR in trailers"),
            (b"5\r\nhello\r\n0\r\n\rX", "bare CR in trailers"),
            (b"5\r\nhello\r\n0\r\n\n", "bare LF in trailers"),
            (
                b"5\r\nhello\r\n0\r\nX: y\r\n z\r\n\r\n",
                "obs-fold in trailers",
            ),
            (
                b"5\r\nhello\r\n0\r\nX : y\r\n\r\n",
                "invalid trailer field name",
            ),
            (
                b"5\r\nhello\r\n0\r\n: y\r\n\r\n",
                "invalid trailer field name",
            ),
            (
                b"5\r\nhello\r\n0\r\nX\r\n\r\n",
                "invalid trailer field name",
            ),
            (
                b"5\r\nhello\r\n0\r\nX: \x00\r\n\r\n",
                "control character in trailers",
            ),
            (
                b"5\r\nhello\r\n0\r\nX: \x7f\r\n\r\n",
                "control character in trailers",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                chunked_err(input),
                BodyError::Invalid(reason),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunk_extensions_accept_bws_where_the_grammar_allows_it() {
        for input in [
            &b"2 ; a=b ; c=\"d;e\"\r\nok\r\n0\r\n\r\n"[..],
            b"2\t;a=b\r\nok\r\n0\r\n\r\n",
            b"2; a = b\r\nok\r\n0\r\n\r\n",
            b"2;a ;b\r\nok\r\n0\r\n\r\n",
        ] {
            let (data, _, outcome) = chunked(input);
            assert_eq!(data, b"ok", "{:?}", String::from_utf8_lossy(input));
            assert!(
                matches!(outcome, Outcome::Done(_)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn announced_chunk_size_is_visible_before_the_data() {
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0);
        let r = d.decode(b"100001\r\n").unwrap();
        assert_eq!((r.consumed, r.data.len(), r.done), (8, 0, false));
        assert_eq!(d.announced_remaining(), 0x100001);
        let r = d.decode(b"abc").unwrap();
        assert_eq!(r.data, 0..3);
        assert_eq!(d.announced_remaining(), 0x100001 - 3);
    }

    #[test]
    fn data_before_error_is_delivered() {
        let input = b"5\r\nhello\r\nZ\r\n";
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0);
        let r = d.decode(input).unwrap();
        assert_eq!((r.data, r.consumed, r.done), (3..8, 10, false));
        assert_eq!(
            d.decode(&input[10..]),
            Err(BodyError::Invalid("invalid chunk size"))
        );
        // The error sticks.
        assert_eq!(
            d.decode(b"0\r\n\r\n"),
            Err(BodyError::Invalid("invalid chunk size"))
        );
        assert_eq!(d.on_eof(), Err(BodyError::Invalid("invalid chunk size")));
        let (data, _, outcome) = chunked(input);
        assert_eq!(data, b"hello");
        assert_eq!(
            outcome,
            Outcome::Err(BodyError::Invalid("invalid chunk size"))
        );
    }

    #[test]
    fn chunk_extension_cap() {
        let mut input = b"1;a=".to_vec();
        input.resize(4 + MAX_CHUNK_EXT_BYTES, b'b');
        assert_eq!(
            chunked_err(&input),
            BodyError::Invalid("chunk extensions too long")
        );
        let mut input = b"1;a=".to_vec();
        input.resize(MAX_CHUNK_EXT_BYTES + 1, b'b');
        input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        let (data, _, _) = chunked(&input);
        assert_eq!(data, b"x");
    }

    #[test]
    fn trailer_limit() {
        // 64 bytes of field lines pass, 65 do not.
        let mut ok = b"0\r\nX: ".to_vec();
        ok.resize(3 + 62, b'v');
        ok.extend_from_slice(b"\r\n\r\n");
        let (_, trailers, outcome) = chunked(&ok);
        assert_eq!(trailers.map(|t| t.len()), Some(64));
        assert!(matches!(outcome, Outcome::Done(_)));
        let mut bad = b"0\r\nX: ".to_vec();
        bad.resize(3 + 63, b'v');
        bad.extend_from_slice(b"\r\n\r\n");
        assert_eq!(chunked_err(&bad), BodyError::Invalid("trailers too large"));
        // Also when the section never ends.
        let mut endless = b"0\r\nX: ".to_vec();
        endless.resize(200, b'v');
        assert_eq!(
            chunked_err(&endless),
            BodyError::Invalid("trailers too large")
        );
    }

    #[test]
    fn chunked_truncated() {
        for input in [
            &b""[..],
            b"5",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n",
            b"5\r\nhello\r\n0\r\nX: y\r\n",
        ] {
            let run = assert_body_split_invariant(BodyKind::Chunked, 64, input, true);
            assert_eq!(run.outcome, Outcome::Err(BodyError::Truncated), "{input:?}");
            let run = decode_pieces(BodyKind::Chunked, 64, &[input], false);
            assert_eq!(run.outcome, Outcome::NeedMore, "{input:?}");
        }
    }

    #[test]
    fn trailers_wait_for_whole_section() {
        let mut d = BodyDecoder::new(BodyKind::Chunked, 64);
        let r = d.decode(b"0\r\nX: y\r\n").unwrap();
        // The last-chunk line is consumed; the trailer section waits.
        assert_eq!((r.consumed, r.done, r.trailers), (3, false, None));
        assert_eq!(d.decode(b"X: y\r\n").unwrap(), Decoded::default());
        let r = d.decode(b"X: y\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Decoded {
                consumed: 8,
                data: 0..0,
                trailers: Some(0..6),
                done: true
            }
        );
    }
}
