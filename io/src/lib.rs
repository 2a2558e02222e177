//! The byte-moving layer under Portico's proxy and load generator. Callers see the
//! [`Conn`] trait, the [`RecvBuf`] it fills and the [`Socket`] that carries it; how the
//! bytes reach the kernel is this crate's business and nobody else's:
//!
//! * [`uring`]: the per-core io_uring engine. Accept, receive, send, connect, shutdown
//!   and close are ring operations, flushed once per executor tick with deferred task
//!   running; receives are multishot into a per-core provided-buffer ring, so an idle
//!   connection holds no receive buffer.
//! * [`TcpConn`]: glommio's `TcpStream` (`recv`/`send` syscalls plus an io_uring poll),
//!   the fallback where the engine cannot start.
//!
//! It must not interpret the bytes: no HTTP here.

mod buf;
mod clock;
mod glommio_tcp;
pub mod uring;

pub use buf::RecvBuf;
pub use clock::now;
pub use glommio_tcp::TcpConn;
pub use uring::{spawn_local, UringConn};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

/// One piece of a gathered send ([`Conn::send_gather`]): a range of the caller's own
/// bytes or of storage lent by a receive buffer ([`RecvBuf::lend`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Own(Range<usize>),
    Lent(Range<usize>),
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Piece::Own(r) | Piece::Lent(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes this piece names.
    pub fn of<'a>(&self, own: &'a [u8], lent: &'a [u8]) -> &'a [u8] {
        match self {
            Piece::Own(r) => &own[r.clone()],
            Piece::Lent(r) => &lent[r.clone()],
        }
    }
}

/// A connected, bidirectional byte stream owned by one core.
pub trait Conn {
    /// Reads what the peer has sent into the free space of `buf` (growing it up to its
    /// limit when full). Returns the number of bytes read; 0 means end of stream.
    fn recv(&mut self, buf: &mut RecvBuf) -> impl Future<Output = io::Result<usize>>;
    /// Writes all of `data`.
    fn send(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Writes all of `buf`, which the engine may borrow for the operation instead of
    /// copying it; on return `buf` holds the same bytes (or, if the future was dropped
    /// mid-flight, is empty). The caller clears it for reuse.
    fn send_vec(&mut self, buf: &mut Vec<u8>) -> impl Future<Output = io::Result<()>> {
        async move { self.send(buf).await }
    }
    /// [`send_vec`](Self::send_vec) of `buf[range]`.
    fn send_vec_range(
        &mut self,
        buf: &mut Vec<u8>,
        range: Range<usize>,
    ) -> impl Future<Output = io::Result<()>> {
        async move { self.send(&buf[range]).await }
    }
    /// Writes `pieces` in order, each naming bytes of `own` or of `lent`, as one
    /// message: on the ring, one vectored send, so that body bytes left where they were
    /// received go out without being copied next to the framing around them. Like
    /// [`send_vec`](Self::send_vec), the buffers may be borrowed for the operation and
    /// hold the same bytes on return (or are empty if the future was dropped
    /// mid-flight). This default copies the pieces into one buffer.
    fn send_gather(
        &mut self,
        own: &mut Vec<u8>,
        lent: &mut Vec<u8>,
        pieces: &[Piece],
    ) -> impl Future<Output = io::Result<()>> {
        async move {
            let mut all = Vec::with_capacity(pieces.iter().map(Piece::len).sum());
            for p in pieces {
                all.extend_from_slice(p.of(own, lent));
            }
            self.send(&all).await
        }
    }
    /// Signals end of stream to the peer (half close) without dropping the connection.
    fn shutdown_write(&mut self) -> impl Future<Output = io::Result<()>>;
}

/// A connection on whichever path this core runs.
pub enum Socket {
    Uring(UringConn),
    Glommio(TcpConn),
}

impl Socket {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Uring(c) => c.peer_addr(),
            Socket::Glommio(c) => c.peer_addr(),
        }
    }

    /// True when the peer is known to have closed (or failed) while the connection sat
    /// idle: a pooled connection in that state must not be reused. The glommio path
    /// cannot tell without a syscall and answers false.
    pub fn is_closed(&self) -> bool {
        match self {
            Socket::Uring(c) => c.is_closed(),
            Socket::Glommio(_) => false,
        }
    }
}

impl Conn for Socket {
    async fn recv(&mut self, buf: &mut RecvBuf) -> io::Result<usize> {
        match self {
            Socket::Uring(c) => c.recv(buf).await,
            Socket::Glommio(c) => c.recv(buf).await,
        }
    }

    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Socket::Uring(c) => c.send(data).await,
            Socket::Glommio(c) => c.send(data).await,
        }
    }

    async fn send_vec(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Socket::Uring(c) => c.send_vec(buf).await,
            Socket::Glommio(c) => c.send(buf).await,
        }
    }

    async fn send_vec_range(&mut self, buf: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
        match self {
            Socket::Uring(c) => c.send_vec_range(buf, range).await,
            Socket::Glommio(c) => c.send(&buf[range]).await,
        }
    }

    async fn send_gather(
        &mut self,
        own: &mut Vec<u8>,
        lent: &mut Vec<u8>,
        pieces: &[Piece],
    ) -> io::Result<()> {
        match self {
            Socket::Uring(c) => c.send_gather(own, lent, pieces).await,
            Socket::Glommio(c) => c.send_gather(own, lent, pieces).await,
        }
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Socket::Uring(c) => c.shutdown_write().await,
            Socket::Glommio(c) => c.shutdown_write().await,
        }
    }
}
