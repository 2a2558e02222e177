//! The bidirectional tunnel a connection becomes after a backend accepts an `Upgrade`
//! (WebSocket and the like) with 101: bytes go both ways, untouched and not copied
//! (each read's buffer is lent to the send), until both sides have finished. Nothing
//! in it is HTTP any more.

use super::Client;
use crate::io::{Conn, RecvBuf, Socket};
use crate::upstream::Upstream;

/// Which side had bytes (or an end) first.
enum Side {
    Client(std::io::Result<usize>),
    Backend(std::io::Result<usize>),
}

/// Runs the tunnel until both directions are closed or one fails.
pub async fn run(client: Client, up: Upstream) {
    let Client {
        conn: mut client_conn,
        buf: mut client_buf,
        ..
    } = client;
    let Upstream {
        conn: mut up_conn,
        buf: mut up_buf,
        ..
    } = up;
    // Bytes that arrived behind the heads belong to the tunnel already.
    if flush(&mut client_buf, &mut up_conn).await.is_err()
        || flush(&mut up_buf, &mut client_conn).await.is_err()
    {
        return;
    }
    let mut client_open = true;
    let mut backend_open = true;
    while client_open || backend_open {
        let side = match (client_open, backend_open) {
            (true, true) => {
                futures_lite::future::or(
                    async { Side::Client(client_conn.recv(&mut client_buf).await) },
                    async { Side::Backend(up_conn.recv(&mut up_buf).await) },
                )
                .await
            }
            (true, false) => Side::Client(client_conn.recv(&mut client_buf).await),
            _ => Side::Backend(up_conn.recv(&mut up_buf).await),
        };
        let moved = match side {
            Side::Client(Ok(n)) if n > 0 => flush(&mut client_buf, &mut up_conn).await,
            Side::Backend(Ok(n)) if n > 0 => flush(&mut up_buf, &mut client_conn).await,
            Side::Client(Ok(_)) => {
                client_open = false;
                up_conn.shutdown_write().await
            }
            Side::Backend(Ok(_)) => {
                backend_open = false;
                client_conn.shutdown_write().await
            }
            Side::Client(Err(_)) | Side::Backend(Err(_)) => return,
        };
        if moved.is_err() {
            return;
        }
    }
}

/// Sends what `buf` holds to `to` and empties it, lending its storage to the send
/// rather than copying the bytes.
async fn flush(buf: &mut RecvBuf, to: &mut Socket) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let (mut storage, range) = buf.lend();
    let sent = to.send_vec_range(&mut storage, range.clone()).await;
    buf.restore(storage, range.end..range.end);
    sent
}
