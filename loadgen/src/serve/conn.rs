//! One `loadgen serve` connection: read, answer every request the bytes complete, repeat.
//!
//! Bytes go into a [`RecvBuf`] that holds nothing while the connection is idle; request
//! heads are parsed in place, bodies skipped (Content-Length or chunked), and every
//! response a read completes goes out in one send of bytes serialised at start (no copy
//! when there is exactly one). On the io_uring engine an idle keep-alive connection is
//! parked with the engine (`--idle park`, the default): its task ends, and a new one
//! starts when the next bytes arrive. Network input never panics: anything that does not
//! parse gets a 400 and a close.

use super::http::{parse_request_head, Body, Responses};
use crate::cli::Idle;
use crate::response::ChunkedDecoder;
use portico_io::{Conn, RecvBuf, Socket, UringConn};
use std::rc::Rc;
use std::time::Duration;

/// First allocation of a connection's buffer, and its limit (a larger head gets a 400).
const BUF_INITIAL: usize = 1024;
const BUF_MAX: usize = 16 * 1024;
/// A parked connection idle this long is closed.
const PARKED_IDLE: Duration = Duration::from_secs(24 * 3600);

/// What every connection of an executor shares.
pub struct Ctx {
    responses: Responses,
    delay: Duration,
    park: bool,
}

impl Ctx {
    pub fn new(responses: Responses, delay: Duration, idle: Idle) -> Ctx {
        Ctx {
            responses,
            delay,
            park: idle == Idle::Park,
        }
    }
}

/// Where the connection is in the current request.
enum Reading {
    Head,
    /// Skipping a body; the response (by variant index) goes out when it ends.
    Length {
        remaining: u64,
        response: usize,
    },
    Chunked {
        decoder: ChunkedDecoder,
        response: usize,
    },
}

/// The responses one read completed: their bytes are `out`, or, when there is exactly
/// one, `variants[single]` (no copy).
struct Due {
    count: usize,
    single: usize,
    out: Vec<u8>,
}

impl Due {
    fn push(&mut self, responses: &Responses, variant: usize) {
        if self.count == 1 {
            self.out.extend_from_slice(&responses.variants[self.single]);
        }
        if self.count >= 1 {
            self.out.extend_from_slice(&responses.variants[variant]);
        }
        self.single = variant;
        self.count += 1;
    }

    fn bytes<'a>(&'a self, responses: &'a Responses) -> &'a [u8] {
        if self.count == 1 {
            &responses.variants[self.single]
        } else {
            &self.out
        }
    }
}

/// What a parked connection does when bytes arrive: a new task serves it.
fn resume(ctx: Rc<Ctx>) -> Box<dyn FnOnce(UringConn)> {
    Box::new(move |conn| {
        portico_io::spawn_local(serve_connection(Socket::Uring(conn), ctx)).detach();
    })
}

/// Serves `conn` until it closes, fails, or is parked.
pub async fn serve_connection(mut conn: Socket, ctx: Rc<Ctx>) {
    let responses = &ctx.responses;
    let mut buf = RecvBuf::new(BUF_INITIAL, BUF_MAX);
    let mut due = Due {
        count: 0,
        single: 0,
        out: Vec::new(),
    };
    let mut reading = Reading::Head;
    loop {
        if buf.is_empty() && matches!(reading, Reading::Head) {
            if ctx.park && matches!(&conn, Socket::Uring(c) if !c.readable()) {
                if let Socket::Uring(c) = conn {
                    c.park(PARKED_IDLE, resume(ctx.clone()));
                }
                return;
            }
            // Idle: hold no buffer while waiting.
            buf.release_if_empty();
        }
        match conn.recv(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }

        // Answer every request the buffer completes.
        let data = buf.filled();
        let mut pos = 0;
        let mut close = false;
        let mut send_continue = false;
        let mut bad = false;
        due.count = 0;
        due.out.clear();
        while !close {
            match &mut reading {
                Reading::Length {
                    remaining,
                    response,
                } => {
                    let take = (*remaining).min((data.len() - pos) as u64);
                    *remaining -= take;
                    pos += take as usize;
                    if *remaining > 0 {
                        break;
                    }
                    due.push(responses, *response);
                    reading = Reading::Head;
                }
                Reading::Chunked { decoder, response } => match decoder.feed(&data[pos..]) {
                    Ok((n, done)) => {
                        pos += n;
                        if !done {
                            break;
                        }
                        due.push(responses, *response);
                        reading = Reading::Head;
                    }
                    Err(_) => {
                        // Bad chunk framing: what was complete before it is not answered.
                        due.count = 0;
                        bad = true;
                        break;
                    }
                },
                Reading::Head => {
                    if pos == data.len() {
                        break;
                    }
                    let head = match parse_request_head(&data[pos..]) {
                        Ok(Some(h)) => h,
                        Ok(None) => break,
                        Err(()) => {
                            bad = true;
                            break;
                        }
                    };
                    pos += head.len;
                    close = head.close;
                    match head.body {
                        Body::None => due.push(responses, head.response),
                        Body::Length(remaining) => {
                            reading = Reading::Length {
                                remaining,
                                response: head.response,
                            };
                            send_continue |= head.expect_continue && pos == data.len();
                        }
                        Body::Chunked => {
                            reading = Reading::Chunked {
                                decoder: ChunkedDecoder::new(),
                                response: head.response,
                            };
                            send_continue |= head.expect_continue && pos == data.len();
                        }
                    }
                }
            }
        }
        buf.consume(pos);
        // A head larger than the buffer can hold.
        bad |= buf.is_full();
        if bad {
            if due.count > 0 {
                let _ = conn.send(due.bytes(responses)).await;
            }
            let _ = conn.send(&responses.bad_request).await;
            let _ = conn.shutdown_write().await;
            return;
        }
        // A request that asked to close is answered once its body is read.
        let close = close && matches!(reading, Reading::Head);

        if due.count > 0 {
            if !ctx.delay.is_zero() {
                portico_io::uring::sleep_until(std::time::Instant::now() + ctx.delay).await;
            }
            if conn.send(due.bytes(responses)).await.is_err() {
                return;
            }
        } else if send_continue && conn.send(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return;
        }
        if close {
            let _ = conn.shutdown_write().await;
            return;
        }
    }
}
