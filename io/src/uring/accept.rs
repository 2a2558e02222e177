//! A listening socket with a multishot accept: one SQE accepts until it is cancelled.
//! Accepted descriptors queue here until the owner takes them; [`Acceptor::pause`]
//! stops the multishot so that a core at its connection limit leaves new clients in the
//! kernel's backlog instead of accepting them.

use super::{user_data, Engine, TAG_ACCEPT, TAG_NONE};
use crate::uring::UringConn;
use io_uring::{cqueue, opcode, types};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

pub(crate) struct AcceptSlot {
    ready: VecDeque<RawFd>,
    armed: bool,
    error: i32,
    waker: Option<Waker>,
    /// The `Acceptor` is gone; the slot waits for the last completion.
    closed: bool,
}

/// A listener on this core's ring.
pub struct Acceptor {
    engine: Rc<Engine>,
    key: usize,
    socket: socket2::Socket,
}

impl Acceptor {
    /// Binds `addr` with `SO_REUSEPORT` (each core has its own listener) and listens.
    pub fn bind(engine: &Rc<Engine>, addr: SocketAddr, backlog: i32) -> io::Result<Self> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        let key = engine.st.borrow_mut().accepts.insert(AcceptSlot {
            ready: VecDeque::new(),
            armed: false,
            error: 0,
            waker: None,
            closed: false,
        });
        Ok(Self {
            engine: engine.clone(),
            key,
            socket,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener is not an IP socket"))
    }

    /// The next accepted connection.
    pub async fn accept(&self) -> io::Result<UringConn> {
        let fd = poll_fn(|cx| {
            let mut st = self.engine.st.borrow_mut();
            let slot = &mut st.accepts[self.key];
            if let Some(fd) = slot.ready.pop_front() {
                return Poll::Ready(Ok(fd));
            }
            if slot.error != 0 {
                let e = std::mem::take(&mut slot.error);
                return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
            }
            slot.waker = Some(cx.waker().clone());
            if !slot.armed {
                slot.armed = true;
                let sqe = opcode::AcceptMulti::new(types::Fd(self.socket.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(user_data(TAG_ACCEPT, self.key));
                drop(st);
                // SAFETY: a multishot accept points to no memory.
                unsafe { self.engine.push(&[sqe]) };
            }
            Poll::Pending
        })
        .await?;
        // SAFETY: a socket the kernel just accepted for us.
        let _ = socket2::SockRef::from(&unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .set_tcp_nodelay(true);
        Ok(UringConn::from_fd(&self.engine, fd))
    }

    /// Stops accepting until the next [`accept`](Self::accept).
    pub fn pause(&self) {
        let st = self.engine.st.borrow_mut();
        if st.accepts[self.key].armed {
            drop(st);
            cancel(&self.engine, self.key);
        }
    }
}

fn cancel(engine: &Engine, key: usize) {
    let sqe = opcode::AsyncCancel::new(user_data(TAG_ACCEPT, key))
        .build()
        .user_data(user_data(TAG_NONE, 0));
    // SAFETY: the entry points to no memory.
    unsafe { engine.push(&[sqe]) };
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut st = self.engine.st.borrow_mut();
        let slot = &mut st.accepts[self.key];
        for fd in slot.ready.drain(..) {
            // SAFETY: accepted descriptors nobody took.
            unsafe { libc::close(fd) };
        }
        if slot.armed {
            slot.closed = true;
            slot.waker = None;
            drop(st);
            cancel(&self.engine, self.key);
        } else {
            st.accepts.remove(self.key);
        }
    }
}

/// Handles a completion of listener `key`'s multishot accept.
pub(crate) fn complete(engine: &Engine, key: usize, res: i32, flags: u32) {
    let mut st = engine.st.borrow_mut();
    let Some(slot) = st.accepts.get_mut(key) else {
        return;
    };
    if res >= 0 {
        if slot.closed {
            // SAFETY: accepted after the listener's owner left.
            unsafe { libc::close(res) };
        } else {
            slot.ready.push_back(res);
        }
    } else if res != -libc::ECANCELED {
        slot.error = -res;
    }
    if !cqueue::more(flags) {
        slot.armed = false;
        if slot.closed {
            st.accepts.remove(key);
            return;
        }
    }
    let waker = slot.waker.take();
    drop(st);
    if let Some(w) = waker {
        w.wake();
    }
}
