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
pub fn frame_body(
    decoder: &mut BodyDecoder,
    buf: &mut RecvBuf,
    out: &mut Outgoing,
    chunked: bool,
) -> Result<Pass, crate::http::BodyError> {
    let mut pass = Pass {
        bytes: 0,
        done: false,
    };
    loop {
        let d = decoder.decode(buf.filled())?;
        if !d.data.is_empty() {
            pass.bytes += d.data.len() as u64;
            if chunked {
                write_chunk_header(d.data.len(), out.own());
                out.body(buf, d.data.clone());
                out.own().extend_from_slice(b"\r\n");
            } else {
                out.body(buf, d.data.clone());
            }
        }
        if d.done && chunked {
            let trailers = d.trailers.clone().map(|r| &buf.filled()[r]).unwrap_or(b"");
            write_last_chunk(trailers, out.own());
        }
        buf.consume(d.consumed);
        if d.done {
            pass.done = true;
            return Ok(pass);
        }
        if d.consumed == 0 {
            return Ok(pass);
        }
    }
}
