//! Racing I/O against time. Every wait on a peer in the proxy goes through here, so no
//! read or write can hang a connection forever.
//!
//! The deadlines of a core live in one table checked by a single ticker task every
//! [`TICK`] while any is pending, not in a glommio timer per wait: a proxied request
//! waits on its backend with a deadline, and a glommio timer costs a B-tree insert and
//! removal, a map entry and clock reads each time (about 7% of the instructions of a
//! plain proxied request), and makes every executor loop split its timer tree. Here a
//! wait that ends in time costs a slab insert and removal. A deadline fires up to one
//! tick late; the ticker stops when nothing waits, so an idle core still sleeps. The
//! proxy sets deadlines from `portico_io::now()`, the engine's time of the current
//! tick, so a deadline may end up to one pass of the task queue early; the ticker
//! checks them against the real clock.

use slab::Slab;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How often pending deadlines are checked: how late one may fire.
pub const TICK: Duration = Duration::from_millis(10);

struct Entry {
    at: Instant,
    waker: Waker,
    expired: bool,
}

#[derive(Default)]
struct Table {
    entries: Slab<Entry>,
    ticking: bool,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::default();
}

/// Runs `fut` until `deadline`; `None` when time ran out first.
pub async fn before<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    let mut slot = Slot(None);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            match slot.0 {
                Some(key) => {
                    let e = &mut t.entries[key];
                    if e.expired {
                        return Poll::Ready(None);
                    }
                    if !e.waker.will_wake(cx.waker()) {
                        e.waker = cx.waker().clone();
                    }
                }
                None => {
                    slot.0 = Some(t.entries.insert(Entry {
                        at: deadline,
                        waker: cx.waker().clone(),
                        expired: false,
                    }));
                    if !t.ticking {
                        t.ticking = true;
                        portico_io::spawn_local(ticker()).detach();
                    }
                }
            }
            Poll::Pending
        })
    })
    .await
}

/// A wait's entry in the table, removed when the wait ends however it ends.
struct Slot(Option<usize>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            // The table outlives every wait on its thread; `try_with` only guards the
            // thread's own teardown.
            let _ = TABLE.try_with(|t| t.borrow_mut().entries.remove(key));
        }
    }
}

/// Wakes the waits whose deadline has passed, every tick, until none is left.
async fn ticker() {
    let mut due = Vec::new();
    loop {
        glommio::timer::sleep(TICK).await;
        let now = Instant::now();
        let done = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            for (_, e) in t.entries.iter_mut() {
                if !e.expired && e.at <= now {
                    e.expired = true;
                    due.push(e.waker.clone());
                }
            }
            if t.entries.is_empty() {
                t.ticking = false;
                return true;
            }
            false
        });
        for w in due.drain(..) {
            w.wake();
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_wins_and_leaves_nothing_behind() {
        let left = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async {
                let got = before(Instant::now(), async { 7 }).await;
                assert_eq!(got, Some(7), "ready at once: the deadline is not consulted");
                TABLE.with(|t| t.borrow().entries.len())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn deadlines_fire_in_order_and_the_ticker_stops() {
        let (results, left, ticking) =
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .spawn(|| async {
                    let start = Instant::now();
                    let never = || std::future::pending::<()>();
                    let a = glommio::spawn_local(async move {
                        let r = before(start + Duration::from_millis(80), never()).await;
                        (r.is_none(), start.elapsed())
                    });
                    let b = glommio::spawn_local(async move {
                        let r = before(start + Duration::from_millis(30), never()).await;
                        (r.is_none(), start.elapsed())
                    });
                    // Finishes before its deadline: gets its value.
                    let c = glommio::spawn_local(async move {
                        let r = before(
                            start + Duration::from_millis(500),
                            glommio::timer::sleep(Duration::from_millis(20)),
                        )
                        .await;
                        (r.is_some(), start.elapsed())
                    });
                    let results = vec![a.await, b.await, c.await];
                    // Let the ticker see the empty table.
                    glommio::timer::sleep(TICK * 3).await;
                    let (left, ticking) = TABLE.with(|t| {
                        let t = t.borrow();
                        (t.entries.len(), t.ticking)
                    });
                    (results, left, ticking)
                })
                .unwrap()
                .join()
                .unwrap();
        let [(a_out, a_at), (b_out, b_at), (c_ok, c_at)] = results[..] else {
            unreachable!()
        };
        assert!(a_out && b_out && c_ok);
        assert!(a_at >= Duration::from_millis(80), "{a_at:?}");
        assert!(b_at >= Duration::from_millis(30), "{b_at:?}");
        assert!(b_at < a_at, "{b_at:?} {a_at:?}");
        assert!(c_at >= Duration::from_millis(20), "{c_at:?}");
        assert_eq!(left, 0, "every wait removed its entry");
        assert!(!ticking, "the ticker stops when nothing waits");
    }
}
