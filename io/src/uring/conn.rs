//! A TCP connection on the ring. Receiving is one multishot receive per socket, armed
//! on first read and left armed: each completion carries a provided buffer, queued here
//! until the owner reads it (the bytes are copied into the owner's `RecvBuf` and the
//! buffer goes straight back to the ring; a large chunk read into an empty `RecvBuf`
//! becomes its storage instead, and the ring gets other memory for that buffer id). A
//! reader that falls behind stops the multishot (backpressure) until it catches up.
//! A send's bytes are owned by the operation (copied into a buffer it owns, or lent to it
//! with the caller's buffers), so dropping a send future never leaves the kernel reading
//! freed memory. A gathered send is one `IORING_OP_SENDMSG` over iovecs into the two
//! buffers it was lent.
//!
//! A connection with nothing to do can be *parked*: no task holds it, only a slot with
//! its descriptor and a resume callback, called when bytes arrive.

use super::bufring;
use super::fixed::{self, on_target, Target};
use super::op::{self, Keep};
use super::{park, user_data, Engine, TAG_NONE, TAG_RECV};
use crate::{Conn, RecvBuf};
use io_uring::{cqueue, opcode, squeue, types};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Bytes queued for a slow reader before its multishot receive is stopped.
const HIGH_WATER: usize = 64 * 1024;
/// When fewer provided buffers than this are left, queued bytes are moved to the heap.
const SPILL_BELOW: u16 = super::BUF_COUNT / 4;
/// Chunks at least this large, read into an empty buffer, are adopted (not copied).
const ADOPT_MIN: usize = 4096;
/// Sends keep a buffer up to this size for the next send.
const KEEP_SEND_BUF: usize = 64 * 1024;

/// At most this many iovecs go in one vectored send (the kernel's `UIO_MAXIOV`); a
/// longer list goes out in several.
const MAX_IOV: usize = 1024;

/// What a vectored send points to, boxed so that the header's and the iovecs' addresses
/// hold while the operation owns it.
pub(crate) struct Gather {
    own: Vec<u8>,
    lent: Vec<u8>,
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
}

impl Gather {
    /// Points the header at the bytes of `pieces` that follow the first `skip`.
    fn aim(&mut self, pieces: &[crate::Piece], mut skip: usize) {
        self.iov.clear();
        for p in pieces {
            let bytes = p.of(&self.own, &self.lent);
            if skip >= bytes.len() {
                skip -= bytes.len();
                continue;
            }
            let rest = &bytes[skip..];
            skip = 0;
            self.iov.push(libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            });
            if self.iov.len() == MAX_IOV {
                break;
            }
        }
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() as _;
    }
}

/// What a parked connection does when bytes arrive.
pub type Resume = Box<dyn FnOnce(UringConn)>;

/// Received bytes waiting in a provided buffer.
struct Chunk {
    bid: u16,
    offset: u32,
    len: u32,
}

/// A socket's slot.
pub(crate) struct Sock {
    fd: RawFd,
    /// Bytes copied out of provided buffers when the ring ran low (`spill[spill_at..]`);
    /// they come before `chunks`.
    spill: Vec<u8>,
    spill_at: usize,
    chunks: VecDeque<Chunk>,
    /// Bytes in `spill` and `chunks` together.
    queued: usize,
    /// Listed in `State::holding`.
    holding: bool,
    armed: bool,
    cancelling: bool,
    eof: bool,
    error: i32,
    reader: Option<Waker>,
    /// A `UringConn` owns the slot.
    owned: bool,
    pub(crate) parked: Option<Resume>,
    /// The engine-wide number of this socket's latest park, so that an idle deadline
    /// left from an earlier park (of this socket, or of an earlier socket in the same
    /// slot) is recognised as stale.
    pub(crate) seq: u64,
}

impl Sock {
    fn readable(&self) -> bool {
        self.queued > 0 || self.eof || self.error != 0
    }
}

/// A connection owned by a task on this core.
pub struct UringConn {
    engine: Rc<Engine>,
    key: usize,
    fd: RawFd,
    send_buf: Vec<u8>,
    /// False once parked: the slot is the engine's again.
    live: bool,
}

impl UringConn {
    /// Takes ownership of a connected socket. When its slot has an index in the
    /// ring's table of registered descriptors, the socket is installed there (the
    /// entry goes before any operation on it) and named by that index from then on.
    pub fn from_fd(engine: &Rc<Engine>, fd: RawFd) -> Self {
        let key = engine.st.borrow_mut().socks.insert(Sock {
            fd,
            spill: Vec::new(),
            spill_at: 0,
            chunks: VecDeque::new(),
            queued: 0,
            holding: false,
            armed: false,
            cancelling: false,
            eof: false,
            error: 0,
            reader: None,
            owned: true,
            parked: None,
            seq: 0,
        });
        if let Target::Fixed(index) = fixed::target(engine, key, fd) {
            let fd = Box::new(fd);
            let sqe = fixed::install(index, &fd);
            // SAFETY: the entry points to `fd`, which the operation's slot keeps.
            unsafe { op::submit_detached(engine, sqe, Keep::Install(fd)) };
        }
        Self::for_slot(engine, key, fd)
    }

    fn for_slot(engine: &Rc<Engine>, key: usize, fd: RawFd) -> Self {
        Self {
            engine: engine.clone(),
            key,
            fd,
            send_buf: Vec::new(),
            live: true,
        }
    }

    /// Connects to `addr`; the connect carries a linked ring timeout of `timeout`.
    pub async fn connect(
        engine: &Rc<Engine>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<UringConn> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_tcp_nodelay(true)?;
        let conn = UringConn::from_fd(engine, socket.into_raw_fd());
        let sockaddr = Box::new(socket2::SockAddr::from(addr));
        let ts = Box::new(
            types::Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos()),
        );
        let connect = on_target!(conn.target(), t => opcode::Connect::new(
            t,
            sockaddr.as_ptr().cast(),
            sockaddr.len()
        )
        .build())
        .flags(squeue::Flags::IO_LINK);
        let limit = opcode::LinkTimeout::new(&*ts)
            .build()
            .user_data(user_data(TAG_NONE, 0));
        // SAFETY: the address and timespec live in the operation's slot.
        let (res, _) =
            unsafe { op::submit(engine, &mut [connect, limit], Keep::Connect(sockaddr, ts)) }.await;
        match res {
            0 => Ok(conn),
            r if r == -libc::ECANCELED || r == -libc::ETIME => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            }
            r => Err(io::Error::from_raw_os_error(-r)),
        }
    }

    /// What this socket's operations name it by.
    fn target(&self) -> Target {
        fixed::target(&self.engine, self.key, self.fd)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: the descriptor is open for as long as `self` is live.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        socket2::SockRef::from(&fd)
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("peer is not an IP socket"))
    }

    /// True when the peer closed or the socket failed and nothing is left to read.
    pub fn is_closed(&self) -> bool {
        let st = self.engine.st.borrow();
        let sock = &st.socks[self.key];
        sock.queued == 0 && (sock.eof || sock.error != 0)
    }

    /// True when a read would not wait: bytes are queued, or the peer closed, or the
    /// socket failed.
    pub fn readable(&self) -> bool {
        self.engine.st.borrow().socks[self.key].readable()
    }

    /// Hands the idle connection to the engine until bytes arrive (then `resume` gets
    /// it back, in the driver's tick) or `idle` passes (then it is closed and `resume`
    /// dropped). A connection with bytes already waiting is resumed at once.
    pub fn park(mut self, idle: Duration, resume: Resume) {
        let engine = self.engine.clone();
        let mut st = engine.st.borrow_mut();
        if st.socks[self.key].readable() {
            drop(st);
            resume(self);
            return;
        }
        st.park_seq += 1;
        let seq = st.park_seq;
        let sock = &mut st.socks[self.key];
        sock.owned = false;
        sock.reader = None;
        sock.parked = Some(resume);
        sock.seq = seq;
        if !sock.armed {
            arm(&engine, &mut st, self.key);
        }
        park::add(&mut st, self.key, seq, idle);
        self.live = false;
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut RecvBuf) -> Poll<io::Result<usize>> {
        let engine = self.engine.clone();
        let mut st = engine.st.borrow_mut();
        let sock = &mut st.socks[self.key];
        if sock.queued > 0 {
            let mut copied = 0;
            if sock.spill_at < sock.spill.len() {
                let n = buf.fill_from(&sock.spill[sock.spill_at..], sock.queued);
                copied += n;
                sock.spill_at += n;
                if sock.spill_at == sock.spill.len() {
                    sock.spill = Vec::new();
                    sock.spill_at = 0;
                }
            }
            while let Some(chunk) = sock.chunks.front_mut() {
                if chunk.offset == 0
                    && chunk.len as usize >= ADOPT_MIN
                    && buf.can_adopt(bufring::HEAD_ROOM, engine.bufs.capacity())
                {
                    // A large chunk into an empty buffer: the provided buffer becomes
                    // the buffer's storage, and the ring gets another in its place.
                    let data = engine.bufs.adopt(chunk.bid, chunk.len as usize);
                    copied += chunk.len as usize;
                    sock.chunks.pop_front();
                    engine.bufs.give_back(buf.adopt(data, bufring::HEAD_ROOM));
                    continue;
                }
                let src = engine
                    .bufs
                    .bytes(chunk.bid, chunk.offset as usize, chunk.len as usize);
                let n = buf.fill_from(src, sock.queued - copied);
                if n == 0 {
                    break;
                }
                copied += n;
                chunk.offset += n as u32;
                chunk.len -= n as u32;
                if chunk.len == 0 {
                    engine.bufs.recycle(chunk.bid);
                    sock.chunks.pop_front();
                }
            }
            sock.queued -= copied;
            if copied == 0 {
                return Poll::Ready(Err(io::Error::other("receive buffer full")));
            }
            if !sock.armed && !sock.eof && sock.error == 0 && sock.queued < HIGH_WATER / 2 {
                arm(&engine, &mut st, self.key);
            }
            return Poll::Ready(Ok(copied));
        }
        if sock.error != 0 {
            return Poll::Ready(Err(io::Error::from_raw_os_error(sock.error)));
        }
        if sock.eof {
            return Poll::Ready(Ok(0));
        }
        match &sock.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => sock.reader = Some(cx.waker().clone()),
        }
        if !sock.armed {
            arm(&engine, &mut st, self.key);
        }
        Poll::Pending
    }

    async fn send_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.send_buf);
        buf.clear();
        buf.extend_from_slice(data);
        let len = buf.len();
        let result = self.send_owned(&mut buf, 0..len).await;
        if buf.capacity() <= KEEP_SEND_BUF {
            self.send_buf = buf;
        }
        result
    }

    /// Sends `buf[range]` with the operation owning `buf` meanwhile (no copy); `buf`
    /// comes back, whether the send succeeded or not.
    async fn send_owned(&mut self, out: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
        let mut buf = std::mem::take(out);
        let end = range.end.min(buf.len());
        let mut sent = range.start.min(end);
        let mut result = Ok(());
        while sent < end {
            // SAFETY (of the pointer): it points into `buf`, which moves into the
            // operation's slot with its heap allocation unchanged.
            let ptr = buf[sent..end].as_ptr();
            let len = (end - sent).min(u32::MAX as usize) as u32;
            let sqe = on_target!(self.target(), t => opcode::Send::new(t, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build());
            // SAFETY: the entry points into `buf`, kept by the slot until completion.
            let (res, keep) = unsafe { op::submit(&self.engine, &mut [sqe], Keep::Buf(buf)) }.await;
            buf = match keep {
                Keep::Buf(b) => b,
                _ => unreachable!("a send keeps its buffer"),
            };
            match took(res) {
                Ok(n) => sent += n,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        *out = buf;
        result
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        let sqe = on_target!(self.target(), t => opcode::Shutdown::new(t, libc::SHUT_WR).build());
        // SAFETY: the entry points to no memory.
        let (res, _) = unsafe { op::submit(&self.engine, &mut [sqe], Keep::None) }.await;
        if res < 0 {
            return Err(io::Error::from_raw_os_error(-res));
        }
        Ok(())
    }
}

impl Conn for UringConn {
    async fn recv(&mut self, buf: &mut RecvBuf) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_all(data).await
    }

    async fn send_vec(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len();
        self.send_owned(buf, 0..len).await
    }

    async fn send_vec_range(&mut self, buf: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        self.send_owned(buf, range).await
    }

    /// Sends `pieces` with one `IORING_OP_SENDMSG` (more when the kernel takes part of
    /// them), the operation owning both buffers meanwhile; they come back.
    async fn send_gather(
        &mut self,
        own: &mut Vec<u8>,
        lent: &mut Vec<u8>,
        pieces: &[crate::Piece],
    ) -> io::Result<()> {
        let total: usize = pieces.iter().map(crate::Piece::len).sum();
        let mut g = Box::new(Gather {
            own: std::mem::take(own),
            lent: std::mem::take(lent),
            iov: Vec::with_capacity(pieces.len().min(MAX_IOV)),
            // SAFETY: an all-zero msghdr is a valid empty one (no name, no control).
            msg: unsafe { std::mem::zeroed() },
        });
        let mut sent = 0;
        let mut result = Ok(());
        while sent < total {
            g.aim(pieces, sent);
            let msg: *const libc::msghdr = &g.msg;
            let sqe = on_target!(self.target(), t => opcode::SendMsg::new(t, msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build());
            // SAFETY: the entry points to the header in `g`, which points to iovecs in
            // `g`, which point into `g`'s buffers; the slot keeps `g` until completion.
            let (res, keep) =
                unsafe { op::submit(&self.engine, &mut [sqe], Keep::Gather(g)) }.await;
            g = match keep {
                Keep::Gather(g) => g,
                _ => unreachable!("a vectored send keeps its buffers"),
            };
            match took(res) {
                Ok(n) => sent += n,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        *own = std::mem::take(&mut g.own);
        *lent = std::mem::take(&mut g.lent);
        result
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown().await
    }
}

impl Drop for UringConn {
    fn drop(&mut self) {
        if self.live {
            release(&self.engine, self.key);
        }
    }
}

/// The bytes a send's result says the kernel took (a send that took none is an error:
/// the peer is gone).
fn took(res: i32) -> io::Result<usize> {
    match res {
        r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
        0 => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "peer took no bytes",
        )),
        n => Ok(n as usize),
    }
}

/// Queues the multishot receive of socket `key` (or notes it starved of buffers).
fn arm(engine: &Engine, st: &mut super::State, key: usize) {
    if engine.bufs.available() == 0 {
        st.starved.push(key);
        return;
    }
    let sock = &mut st.socks[key];
    sock.armed = true;
    let target = fixed::target(engine, key, sock.fd);
    let sqe = on_target!(target, t => opcode::RecvMulti::new(t, engine.bufs.group).build())
        .user_data(user_data(TAG_RECV, key));
    // SAFETY: the kernel picks a provided buffer; the entry points to no memory.
    unsafe { engine.push(&[sqe]) };
}

/// Closes socket `key`: its buffers go back, its receive is cancelled, its index and
/// descriptor closed; the slot goes when the receive's last completion has arrived.
pub(crate) fn release(engine: &Engine, key: usize) {
    let mut st = engine.st.borrow_mut();
    let sock = &mut st.socks[key];
    sock.owned = false;
    sock.reader = None;
    for chunk in sock.chunks.drain(..) {
        engine.bufs.recycle(chunk.bid);
    }
    sock.spill = Vec::new();
    sock.spill_at = 0;
    sock.queued = 0;
    let cancel = sock
        .armed
        .then(|| opcode::AsyncCancel::new(user_data(TAG_RECV, key)).build());
    let close_index = match fixed::target(engine, key, sock.fd) {
        Target::Fixed(index) => Some(opcode::Close::new(types::Fixed(index)).build()),
        Target::Fd(_) => None,
    };
    let close_fd = opcode::Close::new(types::Fd(sock.fd)).build();
    if sock.armed {
        sock.cancelling = true;
    } else {
        st.socks.remove(key);
    }
    drop(st);
    // In this order, not linked: each runs whatever the others' results.
    for sqe in [cancel, close_index, Some(close_fd)].into_iter().flatten() {
        // SAFETY: none of the entries points to memory.
        unsafe { engine.push(&[sqe.user_data(user_data(TAG_NONE, 0))]) };
    }
}

/// Handles a completion of socket `key`'s multishot receive.
pub(crate) fn complete_recv(engine: &Engine, key: usize, res: i32, flags: u32) {
    let more = cqueue::more(flags);
    let mut guard = engine.st.borrow_mut();
    let st = &mut *guard;
    let Some(sock) = st.socks.get_mut(key) else {
        return;
    };
    if let Some(bid) = cqueue::buffer_select(flags) {
        engine.bufs.taken();
        if res > 0 && (sock.owned || sock.parked.is_some()) {
            sock.chunks.push_back(Chunk {
                bid,
                offset: 0,
                len: res as u32,
            });
            sock.queued += res as usize;
            if !sock.holding {
                sock.holding = true;
                st.holding.push(key);
            }
        } else {
            engine.bufs.recycle(bid);
        }
    }
    let mut starved = false;
    match res {
        0 => sock.eof = true,
        r if r < 0 => match -r {
            libc::ENOBUFS => starved = true,
            libc::ECANCELED => {}
            e => sock.error = e,
        },
        _ => {}
    }
    if !more {
        sock.armed = false;
        sock.cancelling = false;
    }
    if !sock.owned && sock.parked.is_none() {
        // Released: the slot was waiting for this last completion.
        if !sock.armed {
            st.socks.remove(key);
        }
        return;
    }
    if more && !sock.cancelling && sock.queued >= HIGH_WATER {
        // The reader is behind: stop receiving until it has caught up.
        sock.cancelling = true;
        let cancel = opcode::AsyncCancel::new(user_data(TAG_RECV, key))
            .build()
            .user_data(user_data(TAG_NONE, 0));
        // SAFETY: the entry points to no memory.
        unsafe { engine.push(&[cancel]) };
    }
    let readable = sock.readable();
    let waker = sock.reader.take();
    let parked = sock.parked.is_some();
    if starved && !sock.armed {
        st.starved.push(key);
    }
    if parked && readable {
        st.resumes.push(key);
    }
    drop(guard);
    if let Some(w) = waker {
        w.wake();
    }
}

/// Work left for after a tick's completions: resume parked sockets that became
/// readable, re-arm receives that ran out of buffers.
pub(crate) fn after_tick(engine: &Engine) {
    let resumes = std::mem::take(&mut engine.st.borrow_mut().resumes);
    if !resumes.is_empty() {
        let Some(rc) = engine.self_rc() else {
            return;
        };
        for key in resumes {
            let taken = {
                let mut st = engine.st.borrow_mut();
                let st = &mut *st;
                st.socks.get_mut(key).and_then(|sock| {
                    let resume = sock.parked.take()?;
                    sock.owned = true;
                    st.parked.forget();
                    Some((resume, sock.fd))
                })
            };
            if let Some((resume, fd)) = taken {
                let conn = UringConn::for_slot(&rc, key, fd);
                if conn.is_closed() {
                    // The peer left while idle: close without waking anything.
                    drop(resume);
                    drop(conn);
                } else {
                    resume(conn);
                }
            }
        }
    }
    let mut st = engine.st.borrow_mut();
    if engine.bufs.available() < SPILL_BELOW {
        spill_all(engine, &mut st);
    }
    while engine.bufs.available() > 0 {
        let Some(key) = st.starved.pop() else {
            break;
        };
        let wants = st.socks.get(key).is_some_and(|s| {
            !s.armed && !s.eof && s.error == 0 && (s.reader.is_some() || s.parked.is_some())
        });
        if wants {
            arm(engine, &mut st, key);
        }
    }
}

/// Copies the bytes of every socket still holding provided buffers onto the heap and
/// gives the buffers back. Runs only when the ring runs low: readers that keep up never
/// pay the extra copy, and readers that do not (a slow upstream, a full head buffer, a
/// client that pipelines and waits) cannot starve other connections of buffers.
fn spill_all(engine: &Engine, st: &mut super::State) {
    for key in std::mem::take(&mut st.holding) {
        let Some(sock) = st.socks.get_mut(key) else {
            continue;
        };
        sock.holding = false;
        if sock.chunks.is_empty() {
            continue;
        }
        if sock.spill_at > 0 {
            sock.spill.drain(..sock.spill_at);
            sock.spill_at = 0;
        }
        for chunk in sock.chunks.drain(..) {
            sock.spill.extend_from_slice(engine.bufs.bytes(
                chunk.bid,
                chunk.offset as usize,
                chunk.len as usize,
            ));
            engine.bufs.recycle(chunk.bid);
        }
    }
}

/// Closes parked socket `key` if it is still parked at `seq`; used by the sweeper.
pub(crate) fn close_parked(engine: &Engine, key: usize, seq: Option<u64>) -> bool {
    let resume = {
        let mut st = engine.st.borrow_mut();
        let Some(sock) = st.socks.get_mut(key) else {
            return false;
        };
        if seq.is_some_and(|s| s != sock.seq) {
            return false;
        }
        let Some(resume) = sock.parked.take() else {
            return false;
        };
        st.parked.forget();
        resume
    };
    release(engine, key);
    drop(resume);
    true
}
