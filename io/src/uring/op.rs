//! One-shot ring operations (send, vectored send, connect, shutdown) and the futures
//! that wait for them. An operation owns the memory its SQE points to until the kernel
//! is done with it: a future dropped early (a timeout, a closed peer) leaves the slot
//! orphaned, and the completion frees it. That is what makes dropping a ring future
//! safe.

use super::{user_data, Engine, TAG_OP};
use io_uring::squeue;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Memory an in-flight operation points to.
pub(crate) enum Keep {
    None,
    /// Bytes being sent.
    Buf(Vec<u8>),
    /// A vectored send's buffers, iovecs and message header.
    Gather(Box<super::conn::Gather>),
    /// A connect's address and its linked timeout's duration: held, never read.
    #[allow(dead_code)]
    Connect(Box<socket2::SockAddr>, Box<io_uring::types::Timespec>),
    /// The descriptor an install into the ring's table reads.
    Install(Box<std::os::fd::RawFd>),
}

pub(crate) struct OneShot {
    res: Option<i32>,
    waker: Option<Waker>,
    orphan: bool,
    keep: Keep,
}

/// Queues `sqes` (the first is the operation, any others are linked to it and must be
/// tagged by the caller) and returns a future for the first one's result.
///
/// # Safety
/// The entries may point only into `keep` (or to memory that outlives the engine).
pub(crate) unsafe fn submit(engine: &Rc<Engine>, sqes: &mut [squeue::Entry], keep: Keep) -> Op {
    let key = engine.st.borrow_mut().ops.insert(OneShot {
        res: None,
        waker: None,
        orphan: false,
        keep,
    });
    sqes[0].set_user_data(user_data(TAG_OP, key));
    // SAFETY: the memory is in the slot, which lives until the completion.
    unsafe { engine.push(sqes) };
    Op {
        engine: engine.clone(),
        key,
        done: false,
    }
}

/// Queues `sqe` with nobody waiting for its result: the slot keeps `keep` until the
/// completion, which frees it.
///
/// # Safety
/// As for [`submit`].
pub(crate) unsafe fn submit_detached(engine: &Engine, mut sqe: squeue::Entry, keep: Keep) {
    let key = engine.st.borrow_mut().ops.insert(OneShot {
        res: None,
        waker: None,
        orphan: true,
        keep,
    });
    sqe = sqe.user_data(user_data(TAG_OP, key));
    // SAFETY: the memory is in the slot, which lives until the completion.
    unsafe { engine.push(&[sqe]) };
}

/// Records a completion.
pub(crate) fn complete(engine: &Engine, key: usize, res: i32) {
    let mut st = engine.st.borrow_mut();
    let Some(op) = st.ops.get_mut(key) else {
        return;
    };
    if op.orphan {
        let op = st.ops.remove(key);
        if let (Keep::Install(fd), Err(e)) = (&op.keep, super::fixed::installed(res)) {
            // The socket's operations fail (its index is empty) and it is closed.
            tracing::warn!(fd = **fd, error = %e, "socket not installed in the ring's table");
        }
        return;
    }
    op.res = Some(res);
    let waker = op.waker.take();
    drop(st);
    if let Some(w) = waker {
        w.wake();
    }
}

/// The result of one operation and the memory it held.
pub(crate) struct Op {
    engine: Rc<Engine>,
    key: usize,
    done: bool,
}

impl Future for Op {
    type Output = (i32, Keep);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.engine.st.borrow_mut();
        let op = &mut st.ops[self.key];
        if let Some(res) = op.res {
            let op = st.ops.remove(self.key);
            drop(st);
            self.done = true;
            return Poll::Ready((res, op.keep));
        }
        match &op.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => op.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.engine.st.borrow_mut();
        if let Some(op) = st.ops.get_mut(self.key) {
            if op.res.is_some() {
                st.ops.remove(self.key);
            } else {
                op.orphan = true;
                op.waker = None;
            }
        }
    }
}
