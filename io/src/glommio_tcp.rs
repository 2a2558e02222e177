//! [`Conn`] over glommio's `TcpStream`: `recv`/`send` syscalls with an io_uring poll
//! when a socket is not ready. This is the portable path; it works wherever glommio
//! runs.

use super::{Conn, RecvBuf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::Shutdown;

/// A TCP connection driven by glommio's reactor.
pub struct TcpConn {
    stream: TcpStream,
}

impl TcpConn {
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Self { stream }
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.peer_addr().map_err(io::Error::from)
    }

    /// Gives back the stream, e.g. to split it for a tunnel.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl Conn for TcpConn {
    async fn recv(&mut self, buf: &mut RecvBuf) -> io::Result<usize> {
        let spare = buf.spare();
        if spare.is_empty() {
            return Err(io::Error::other("receive buffer full"));
        }
        let n = self.stream.read(spare).await?;
        buf.commit(n);
        Ok(n)
    }

    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream
            .shutdown(Shutdown::Write)
            .await
            .map_err(io::Error::from)
    }
}
