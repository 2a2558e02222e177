//! The bidirectional tunnel a connection becomes after a backend accepts an `Upgrade`
//! (WebSocket and the like) with 101: bytes are copied both ways, untouched, until both
//! sides have finished. Nothing in it is HTTP any more.

use super::Client;
use crate::io::Conn;
use crate::upstream::Upstream;
use futures_lite::{io, AsyncWriteExt};

/// Runs the tunnel until both directions are closed or one fails.
pub async fn run(mut client: Client, mut up: Upstream) {
    // Bytes that arrived behind the heads belong to the tunnel already.
    if !client.buf.is_empty() {
        if up.conn.send(client.buf.filled()).await.is_err() {
            return;
        }
        let n = client.buf.len();
        client.buf.consume(n);
    }
    if !up.buf.is_empty() {
        if client.conn.send(up.buf.filled()).await.is_err() {
            return;
        }
        let n = up.buf.len();
        up.buf.consume(n);
    }
    let (client_rx, mut client_tx) = io::split(client.conn.into_inner());
    let (up_rx, mut up_tx) = io::split(up.conn.into_inner());
    let upstream_bound = async {
        let r = io::copy(client_rx, &mut up_tx).await;
        let _ = up_tx.close().await;
        r
    };
    let client_bound = async {
        let r = io::copy(up_rx, &mut client_tx).await;
        let _ = client_tx.close().await;
        r
    };
    let _ = futures_lite::future::zip(upstream_bound, client_bound).await;
}
