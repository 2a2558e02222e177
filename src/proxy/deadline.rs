//! Racing I/O against time. Every wait on a peer in the proxy goes through here, so no
//! read or write can hang a connection forever.

use std::future::Future;
use std::time::Instant;

/// Runs `fut` until `deadline`; `None` when time ran out first.
pub async fn before<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(left).await;
        None
    })
    .await
}
