//! The per-core io_uring engine. Each core owns one ring, created on the core's own
//! thread (so `SINGLE_ISSUER` holds), one provided-buffer ring, and a driver task in
//! the core's glommio executor:
//!
//! * tasks queue socket operations as SQEs (no syscall) and wake the driver;
//! * the driver runs after the tasks of the current tick, submits everything queued and
//!   reaps completions in one `io_uring_enter`, then wakes the tasks they belong to;
//! * when nothing is in flight or ready, the driver sleeps on an eventfd registered with
//!   the ring, read through glommio's own reactor: an idle core sleeps in the kernel,
//!   it never spins.
//!
//! glommio stays the executor: placement, task queues, timers and channels are its.
//! This module owns the ring, the slots of in-flight operations and the sockets; it
//! must not know what the bytes mean.

mod accept;
mod bufring;
mod conn;
mod op;
mod park;
mod setup;

pub use accept::Acceptor;
pub use conn::{Resume, UringConn};
pub use setup::Flavor;

use bufring::BufRing;
use io_uring::{squeue, IoUring};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Submission queue entries per ring (the completion queue has four times as many).
const RING_ENTRIES: u32 = 1024;
/// Receive buffers per core and their size: 4 MiB of address space, touched as used.
const BUF_COUNT: u16 = 256;
const BUF_SIZE: usize = 16 * 1024;
const BUF_GROUP: u16 = 7;

/// What a completion's `user_data` refers to: the top byte is the kind, the rest a slot.
const TAG_SHIFT: u32 = 56;
const TAG_OP: u64 = 1;
const TAG_RECV: u64 = 2;
const TAG_ACCEPT: u64 = 3;
/// Completions nobody waits for (cancellations, closes, linked timeouts).
const TAG_NONE: u64 = 4;

fn user_data(tag: u64, key: usize) -> u64 {
    (tag << TAG_SHIFT) | key as u64
}

/// Options for starting a core's engine.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The best ring flavor to try; weaker ones are tried when the kernel refuses it.
    pub flavor: Flavor,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            flavor: Flavor::Defer,
        }
    }
}

/// One core's ring and everything in flight on it.
pub struct Engine {
    // Field order matters: the ring (and with it the buffer registration) goes before
    // the buffer memory.
    ring: RefCell<IoUring>,
    bufs: BufRing,
    st: RefCell<State>,
    /// The driver's waker while it sleeps; taken by whoever queues an operation.
    driver: Cell<Option<Waker>>,
    /// Entries queued while the submission queue could not take them.
    backlog: RefCell<std::collections::VecDeque<Vec<squeue::Entry>>>,
    eventfd: OwnedFd,
    flavor: Flavor,
    /// The last tick reaped completions: the next one enters the kernel even with
    /// nothing queued and no flag, because the kernel runs at most a batch of deferred
    /// completion work per enter and leaves the rest without raising the flag again.
    busy: Cell<bool>,
    me: std::rc::Weak<Engine>,
}

/// Slots of what is in flight, keyed by the `user_data` of their SQEs.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) ops: slab::Slab<op::OneShot>,
    pub(crate) socks: slab::Slab<conn::Sock>,
    pub(crate) accepts: slab::Slab<accept::AcceptSlot>,
    pub(crate) parked: park::Parked,
    /// Sockets whose receive stopped for want of buffers, to re-arm when some return.
    pub(crate) starved: Vec<usize>,
    /// Sockets that received into provided buffers (candidates for a spill).
    pub(crate) holding: Vec<usize>,
    /// Parked sockets that became readable (or closed) in this tick.
    pub(crate) resumes: Vec<usize>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Engine>>> = const { RefCell::new(None) };
}

/// The engine of the calling core, if [`start`] succeeded on it.
pub fn current() -> Option<Rc<Engine>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Creates this core's ring and starts its driver and idle sweeper. Must run inside
/// the core's glommio executor. Fails (and the caller falls back to glommio's sockets)
/// when io_uring is unavailable, forbidden, or lacks multishot receive.
pub fn start(opts: Options) -> io::Result<Rc<Engine>> {
    let (mut ring, flavor) = setup::build(RING_ENTRIES, opts.flavor)?;
    let bufs = BufRing::new(&ring.submitter(), BUF_COUNT, BUF_SIZE, BUF_GROUP)?;
    if let Some(bid) = setup::probe_multishot_recv(&mut ring, BUF_GROUP)? {
        bufs.taken();
        bufs.recycle(bid);
    }
    // SAFETY: eventfd(2) with valid flags; the result is checked.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
    ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
    // Saves the descriptor lookup on every enter (5.18+); optional.
    if let Err(e) = ring.submitter().register_ring_fd() {
        tracing::debug!(error = %e, "ring fd not registered");
    }
    let engine = Rc::new_cyclic(|me| Engine {
        me: me.clone(),
        ring: RefCell::new(ring),
        bufs,
        st: RefCell::new(State::default()),
        driver: Cell::new(None),
        backlog: RefCell::default(),
        eventfd,
        flavor,
        busy: Cell::new(false),
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(engine.clone()));
    glommio::spawn_local(drive(Rc::downgrade(&engine))).detach();
    glommio::spawn_local(park::sweep(Rc::downgrade(&engine))).detach();
    Ok(engine)
}

impl Engine {
    /// Which ring flags this core runs with.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Queues `sqes` (already tagged) for the next flush. Linked entries stay together.
    ///
    /// # Safety
    /// Any memory an entry points to must stay valid until its completion is reaped.
    pub(crate) unsafe fn push(&self, sqes: &[squeue::Entry]) {
        let mut ring = self.ring.borrow_mut();
        let mut backlog = self.backlog.borrow_mut();
        if backlog.is_empty() && room(&mut ring) < sqes.len() {
            // Full: hand what is queued to the kernel now to make room.
            submit(&mut ring);
        }
        if backlog.is_empty() && room(&mut ring) >= sqes.len() {
            // SAFETY: room was checked; memory validity is the caller's promise.
            unsafe { ring.submission().push_multiple(sqes) }.expect("room was checked");
        } else {
            // The kernel is not taking entries (completion backlog): keep them in order
            // for the next tick; a linked group stays whole.
            backlog.push_back(sqes.to_vec());
        }
        drop(backlog);
        drop(ring);
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Moves entries that did not fit earlier into the submission queue.
    fn refill(&self, ring: &mut IoUring) {
        let mut backlog = self.backlog.borrow_mut();
        while !backlog.is_empty() {
            let group_len = backlog[0].len();
            if room(ring) < group_len {
                submit(ring);
                if room(ring) < group_len {
                    return;
                }
            }
            let group = backlog.pop_front().expect("not empty");
            // SAFETY: room was checked; these entries were pushed under `push`'s contract.
            unsafe { ring.submission().push_multiple(&group) }.expect("room was checked");
        }
    }

    /// Submits what is queued and handles every completion that is ready. Returns the
    /// number of completions handled.
    fn tick(&self) -> usize {
        {
            let mut ring = self.ring.borrow_mut();
            self.refill(&mut ring);
            let (queued, taskrun, overflow) = {
                let sq = ring.submission();
                (sq.len(), sq.taskrun(), sq.cq_overflow())
            };
            // With TASKRUN_FLAG the kernel says when completion work waits for us; with
            // nothing queued, nothing flagged and a quiet last tick there is no reason to
            // enter at all.
            if queued > 0 || taskrun || overflow || self.busy.get() || self.flavor == Flavor::Plain
            {
                enter(&mut ring);
            }
        }
        let mut handled = 0;
        loop {
            let mut batch = [(0u64, 0i32, 0u32); 64];
            let mut n = 0;
            {
                let mut ring = self.ring.borrow_mut();
                for cqe in ring.completion().take(batch.len()) {
                    batch[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                    n += 1;
                }
            }
            if n == 0 {
                break;
            }
            for &(ud, res, flags) in &batch[..n] {
                let key = (ud & ((1 << TAG_SHIFT) - 1)) as usize;
                match ud >> TAG_SHIFT {
                    TAG_OP => op::complete(self, key, res),
                    TAG_RECV => conn::complete_recv(self, key, res, flags),
                    TAG_ACCEPT => accept::complete(self, key, res, flags),
                    _ => {}
                }
            }
            handled += n;
        }
        self.busy.set(handled > 0);
        conn::after_tick(self);
        handled
    }

    pub(crate) fn self_rc(&self) -> Option<Rc<Engine>> {
        self.me.upgrade()
    }

    /// Number of connections parked (idle, held by no task).
    pub fn parked(&self) -> usize {
        self.st.borrow().parked.count()
    }

    /// Number of sockets this engine tracks (connected, parked or closing).
    pub fn sockets(&self) -> usize {
        self.st.borrow().socks.len()
    }

    /// Closes every parked (idle) connection: used when the core drains.
    pub fn close_parked(&self) {
        park::close_all(self);
    }
}

fn room(ring: &mut IoUring) -> usize {
    let sq = ring.submission();
    sq.capacity() - sq.len()
}

/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;

/// Hands queued entries to the kernel and runs deferred completion work, in one
/// `io_uring_enter` that does not wait.
fn enter(ring: &mut IoUring) {
    let to_submit = ring.submission().len() as u32;
    // SAFETY: no argument pointer; the queued entries were pushed under `push`'s contract.
    let res = unsafe {
        ring.submitter()
            .enter::<libc::sigset_t>(to_submit, 0, ENTER_GETEVENTS, None)
    };
    if let Err(e) = res {
        if !matches!(
            e.raw_os_error(),
            Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN)
        ) {
            tracing::error!(error = %e, "io_uring enter failed");
        }
    }
}

/// Hands queued entries to the kernel (running deferred completion work when the
/// kernel flags some). Transient refusals are retried on the next tick.
fn submit(ring: &mut IoUring) {
    if let Err(e) = ring.submit() {
        if !matches!(
            e.raw_os_error(),
            Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN)
        ) {
            tracing::error!(error = %e, "io_uring submit failed");
        }
    }
}

/// The driver: flushes queued operations and dispatches completions once per tick.
async fn drive(engine: std::rc::Weak<Engine>) {
    let Some(strong) = engine.upgrade() else {
        return;
    };
    // glommio reads the eventfd with its own ring; the read completes when this ring
    // has completion work, which is what wakes an idle core.
    // SAFETY: dup(2) of a descriptor we own; the copy is glommio's to close.
    let dup = unsafe { libc::dup(strong.eventfd.as_raw_fd()) };
    if dup < 0 {
        tracing::error!(error = %io::Error::last_os_error(), "cannot duplicate the ring eventfd");
        return;
    }
    // SAFETY: a fresh descriptor handed to glommio.
    let efd = unsafe { <glommio::io::BufferedFile as FromRawFd>::from_raw_fd(dup) };
    drop(strong);
    let mut wake = Box::pin(efd.read_at(0, 8));
    loop {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if engine.tick() > 0 {
            // Let the tasks just woken queue their next operations, then flush them all
            // in one enter.
            YieldNow(false).await;
            continue;
        }
        let fired = futures_lite::future::poll_fn(|cx| {
            if !engine.ring.borrow_mut().submission().is_empty()
                || !engine.backlog.borrow().is_empty()
            {
                return Poll::Ready(false);
            }
            match wake.as_mut().poll(cx) {
                Poll::Ready(_) => Poll::Ready(true),
                Poll::Pending => {
                    engine.driver.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await;
        engine.driver.take();
        drop(engine);
        if fired {
            wake = Box::pin(efd.read_at(0, 8));
        }
    }
}

/// Gives the executor one turn: the task goes to the back of its queue.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
