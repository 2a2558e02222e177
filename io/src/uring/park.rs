//! Idle deadlines of parked connections. A parked connection costs a socket slot and
//! one heap entry; a sweeper task sleeps until the earliest deadline (or forever when
//! nothing is parked) and closes what has been idle too long. Entries of connections
//! that woke up earlier are skipped by their sequence number (engine-wide, so that a
//! stale entry never matches a later socket in the same slot) and compacted away when
//! they outnumber the live ones.

use super::{conn, Engine, State};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Weak;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Parked {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Connections parked now.
    live: usize,
    /// When the sweeper means to wake next, and its waker.
    next: Option<Instant>,
    sweeper: Option<Waker>,
    kicked: bool,
}

impl Parked {
    /// Notes that a parked connection left the parked set (resumed or closed).
    pub(crate) fn forget(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    pub(crate) fn count(&self) -> usize {
        self.live
    }
}

/// Records that socket `key` parked at `seq` for at most `idle`.
pub(crate) fn add(st: &mut State, key: usize, seq: u64, idle: Duration) {
    let deadline = Instant::now() + idle;
    st.parked.heap.push(Reverse((deadline, key, seq)));
    st.parked.live += 1;
    if st.parked.heap.len() > 2 * st.parked.live + 1024 {
        let socks = &st.socks;
        st.parked.heap.retain(|Reverse((_, k, s))| {
            socks
                .get(*k)
                .is_some_and(|sock| sock.parked.is_some() && sock.seq == *s)
        });
    }
    if st.parked.next.is_none_or(|next| deadline < next) {
        st.parked.kicked = true;
        if let Some(w) = st.parked.sweeper.take() {
            w.wake();
        }
    }
}

/// Closes every parked connection.
pub(crate) fn close_all(engine: &Engine) {
    let keys: Vec<usize> = engine
        .st
        .borrow()
        .socks
        .iter()
        .filter(|(_, s)| s.parked.is_some())
        .map(|(k, _)| k)
        .collect();
    for key in keys {
        conn::close_parked(engine, key, None);
    }
}

/// The sweeper task of one engine.
pub(crate) async fn sweep(engine: Weak<Engine>) {
    loop {
        let next = {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let now = Instant::now();
            let mut expired = Vec::new();
            {
                let mut st = engine.st.borrow_mut();
                while let Some(Reverse((at, key, seq))) = st.parked.heap.peek().copied() {
                    if at > now {
                        break;
                    }
                    st.parked.heap.pop();
                    expired.push((key, seq));
                }
            }
            for (key, seq) in expired {
                conn::close_parked(&engine, key, Some(seq));
            }
            let mut st = engine.st.borrow_mut();
            let next = st.parked.heap.peek().map(|Reverse((at, _, _))| *at);
            st.parked.next = next;
            st.parked.kicked = false;
            next
        };
        let timer = async {
            match next {
                Some(at) => {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await
                }
                None => std::future::pending::<()>().await,
            }
        };
        let kicked = std::future::poll_fn(|cx| {
            let Some(engine) = engine.upgrade() else {
                return Poll::Ready(());
            };
            let mut st = engine.st.borrow_mut();
            if st.parked.kicked {
                return Poll::Ready(());
            }
            st.parked.sweeper = Some(cx.waker().clone());
            Poll::Pending
        });
        futures_lite::future::or(timer, kicked).await;
    }
}
