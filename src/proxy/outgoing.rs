//! An outgoing message assembled without copying its body. The framing the gateway
//! writes (a head, chunk sizes, the last chunk) goes into a buffer of its own; body
//! bytes stay in the receive buffer they arrived in and are named by their range there.
//! [`Outgoing::send`] then writes the lot as one message: when the framing is a single
//! run in front of a single body piece and fits in the consumed space before it, it is
//! written there and the receive buffer's storage goes out in one plain send;
//! otherwise as one gathered (vectored) send. Small body pieces are copied next to the
//! framing instead, since an iovec costs more than copying them.
//!
//! [`frame_body`] is the relay step both directions share: decode what a receive buffer
//! holds and add it, re-chunked or not, to an outgoing message.

use crate::http::write::{write_chunk_header, write_last_chunk};
use crate::http::BodyDecoder;
use crate::io::{Conn, Piece, RecvBuf};
use smallvec::SmallVec;
use std::ops::Range;

/// Body pieces shorter than this are copied into the framing buffer.
const COPY_BELOW: usize = 512;
/// At most this many body pieces are named per message; later ones are copied (a
/// stream of tiny chunks must not make a list of thousands of iovecs).
const MAX_LENT: usize = 64;

/// A message being assembled; see the module comment.
pub struct Outgoing {
    own: Vec<u8>,
    /// Inline for the usual head + body (+ framing): no allocation per message.
    pieces: SmallVec<[Piece; 4]>,
    /// Start of the bytes of `own` that no piece names yet.
    mark: usize,
    lent: usize,
}

impl Outgoing {
    /// A message that starts with the bytes already in `own` (a head).
    pub fn new(own: Vec<u8>) -> Self {
        Self {
            own,
            pieces: SmallVec::new(),
            mark: 0,
            lent: 0,
        }
    }

    /// The framing buffer: bytes appended here go out after everything added so far.
    pub fn own(&mut self) -> &mut Vec<u8> {
        &mut self.own
    }

    /// Adds the body bytes `buf.filled()[range]`, which must stay in `buf`, neither
    /// moved nor overwritten, until [`send`](Self::send), and be consumed by then with
    /// everything in front of them (as [`frame_body`] does): the send may write
    /// framing over the consumed bytes in front of a body piece.
    pub fn body(&mut self, buf: &RecvBuf, range: Range<usize>) {
        if range.len() < COPY_BELOW || self.lent == MAX_LENT {
            self.own.extend_from_slice(&buf.filled()[range]);
            return;
        }
        self.close_own();
        let at = buf.headroom();
        self.pieces
            .push(Piece::Lent(at + range.start..at + range.end));
        self.lent += 1;
    }

    /// Names the framing bytes written since the last piece.
    fn close_own(&mut self) {
        if self.own.len() > self.mark {
            self.pieces.push(Piece::Own(self.mark..self.own.len()));
            self.mark = self.own.len();
        }
    }

    /// Sends the message on `conn`, its body pieces from `buf` (whose unconsumed bytes
    /// stay as they are), and leaves it empty for the next one.
    pub async fn send(&mut self, conn: &mut impl Conn, buf: &mut RecvBuf) -> std::io::Result<()> {
        let result = if self.pieces.is_empty() {
            if self.own.is_empty() {
                Ok(())
            } else {
                conn.send_vec(&mut self.own).await
            }
        } else {
            self.close_own();
            let (mut storage, unconsumed) = buf.lend();
            let sent = match self.pieces.as_slice() {
                [Piece::Own(head), Piece::Lent(body)] if head.len() <= body.start => {
                    // In front of the body lie consumed bytes: its own head or framing.
                    debug_assert!(unconsumed.is_empty() || unconsumed.start >= body.end);
                    let from = body.start - head.len();
                    storage[from..body.start].copy_from_slice(&self.own[head.clone()]);
                    conn.send_vec_range(&mut storage, from..body.end).await
                }
                [Piece::Lent(body)] => conn.send_vec_range(&mut storage, body.clone()).await,
                pieces => conn.send_gather(&mut self.own, &mut storage, pieces).await,
            };
            buf.restore(storage, unconsumed);
            sent
        };
        self.own.clear();
        self.pieces.clear();
        self.mark = 0;
        self.lent = 0;
        result
    }
}

/// What one [`frame_body`] pass did.
pub struct Pass {
    /// Payload bytes added.
    pub bytes: u64,
    /// The body ended (its last chunk is added when re-chunking).
    pub done: bool,
}

/// Decodes what `buf` holds with `decoder` and adds the payload to `out`, framed as
/// chunks when `chunked` (else as it is), consuming it from `buf`. Stops at the end of
/// the body or when `buf` holds no more complete piece.
///
/// When re-chunking, everything one pass decodes goes out as a single chunk, however
/// many chunks it arrived in (nginx does the same): chunk boundaries carry no meaning
/// (RFC 9112 7.1), and one size line in place of several is fewer bytes to write and
/// to parse, and fewer iovecs. On a framing error, what was decoded before it is still
/// added.
pub fn frame_body(
    decoder: &mut BodyDecoder,
    buf: &mut RecvBuf,
    out: &mut Outgoing,
    chunked: bool,
) -> Result<Pass, crate::http::BodyError> {
    // Payload ranges in `buf.filled()`, which is consumed only once they are added.
    let mut data: SmallVec<[Range<usize>; 8]> = SmallVec::new();
    let mut size = 0;
    let mut used = 0;
    // The trailers' range, once the body has ended.
    let mut ended = None;
    let mut failed = None;
    loop {
        let d = match decoder.decode(buf.filled().get(used..).unwrap_or_default()) {
            Ok(d) => d,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        if !d.data.is_empty() {
            size += d.data.len();
            data.push(used + d.data.start..used + d.data.end);
        }
        if d.done {
            ended = Some(d.trailers.map_or(0..0, |r| used + r.start..used + r.end));
        }
        used += d.consumed;
        if d.done || d.consumed == 0 {
            break;
        }
    }
    if chunked && size > 0 {
        write_chunk_header(size, out.own());
    }
    for range in data {
        out.body(buf, range);
    }
    if chunked && size > 0 {
        out.own().extend_from_slice(b"\r\n");
    }
    if let (true, Some(trailers)) = (chunked, ended.clone()) {
        write_last_chunk(buf.filled().get(trailers).unwrap_or_default(), out.own());
    }
    buf.consume(used);
    match failed {
        Some(e) => Err(e),
        None => Ok(Pass {
            bytes: size as u64,
            done: ended.is_some(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;

    /// The bytes `out` would send, in order, with its body pieces read from `buf`.
    fn message(out: &mut Outgoing, buf: &mut RecvBuf) -> Vec<u8> {
        if out.pieces.is_empty() {
            return out.own.clone();
        }
        out.close_own();
        let (storage, unconsumed) = buf.lend();
        let bytes = out
            .pieces
            .iter()
            .flat_map(|p| p.of(&out.own, &storage).to_vec())
            .collect();
        buf.restore(storage, unconsumed);
        bytes
    }

    fn received(bytes: &[u8]) -> RecvBuf {
        let mut buf = RecvBuf::with_headroom(1024, 1 << 20, 256);
        buf.extend_from_slice(bytes);
        buf
    }

    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    }

    #[test]
    fn the_chunks_of_one_pass_go_out_as_one() {
        // Large chunks are lent, small ones copied: both end up in the one chunk.
        let (a, b, c) = (vec![b'a'; 4096], b"tiny".to_vec(), vec![b'c'; 600]);
        let mut input = [chunk(&a), chunk(&b), chunk(&c)].concat();
        input.extend_from_slice(b"0\r\nX-Sum: 1\r\n\r\nGET /next");
        let mut buf = received(&input);
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, 1024);
        let mut out = Outgoing::new(b"HEAD\r\n".to_vec());
        let pass = frame_body(&mut decoder, &mut buf, &mut out, true).unwrap();
        assert!(pass.done);
        assert_eq!(pass.bytes, (a.len() + b.len() + c.len()) as u64);
        let mut want = b"HEAD\r\n".to_vec();
        want.extend_from_slice(&chunk(&[a.as_slice(), &b, &c].concat()));
        want.extend_from_slice(b"0\r\nX-Sum: 1\r\n\r\n");
        assert_eq!(message(&mut out, &mut buf), want);
        // What follows the body stays, unconsumed.
        assert_eq!(buf.filled(), b"GET /next");
    }

    #[test]
    fn decoded_without_rechunking_the_payload_is_concatenated() {
        let input = [chunk(&[b'x'; 700]), chunk(b"yz"), b"0\r\n\r\n".to_vec()].concat();
        let mut buf = received(&input);
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, 1024);
        let mut out = Outgoing::new(Vec::new());
        let pass = frame_body(&mut decoder, &mut buf, &mut out, false).unwrap();
        assert!(pass.done);
        let mut want = vec![b'x'; 700];
        want.extend_from_slice(b"yz");
        assert_eq!(message(&mut out, &mut buf), want);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_partial_chunk_waits_for_the_next_pass() {
        let first = chunk(&[b'p'; 1000]);
        let second = chunk(&[b'q'; 800]);
        let mut input = first.clone();
        input.extend_from_slice(&second[..300]);
        let mut buf = received(&input);
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, 1024);
        let mut out = Outgoing::new(Vec::new());
        let pass = frame_body(&mut decoder, &mut buf, &mut out, true).unwrap();
        assert!(!pass.done);
        // The decoder hands out the complete chunk and what it has of the next.
        let got = message(&mut out, &mut buf);
        let payload = pass.bytes as usize;
        assert!(payload >= 1000, "{payload}");
        let mut want = format!("{payload:x}\r\n").into_bytes();
        want.extend_from_slice(&[b'p'; 1000]);
        want.extend_from_slice(&vec![b'q'; payload - 1000]);
        want.extend_from_slice(b"\r\n");
        assert_eq!(got, want);
    }

    #[test]
    fn what_came_before_a_framing_error_is_still_added() {
        let mut input = [chunk(&[b'g'; 900]), chunk(b"ok")].concat();
        input.extend_from_slice(b"zz\r\nbad");
        let mut buf = received(&input);
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, 1024);
        let mut out = Outgoing::new(Vec::new());
        assert!(frame_body(&mut decoder, &mut buf, &mut out, true).is_err());
        let mut want = vec![b'g'; 900];
        want.extend_from_slice(b"ok");
        assert_eq!(message(&mut out, &mut buf), chunk(&want));
    }
}
