//! The byte-moving layer under the proxy. The proxy, the codec and (later) the
//! policies only see the [`Conn`] trait and the [`RecvBuf`] it fills: how the bytes
//! reach the socket (glommio's `TcpStream` today, a batched io_uring engine next) is
//! this module's business and nobody else's. It must not interpret the bytes.

mod buf;
mod glommio_tcp;

pub use buf::RecvBuf;
pub use glommio_tcp::TcpConn;

use std::future::Future;
use std::io;

/// A connected, bidirectional byte stream owned by one core.
pub trait Conn {
    /// Reads what the peer has sent into the free space of `buf` (growing it up to its
    /// limit when full). Returns the number of bytes read; 0 means end of stream.
    fn recv(&mut self, buf: &mut RecvBuf) -> impl Future<Output = io::Result<usize>>;
    /// Writes all of `data`.
    fn send(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Signals end of stream to the peer (half close) without dropping the connection.
    fn shutdown_write(&mut self) -> impl Future<Output = io::Result<()>>;
}
