//! The per-core io_uring engine. Each core owns one ring, created on the core's own
//! thread (so `SINGLE_ISSUER` holds), one provided-buffer ring, and a driver task in
//! the core's glommio executor:
//!
//! * tasks queue socket operations as SQEs (no syscall) and wake the driver;
//! * the driver runs after the tasks of the current tick, submits everything queued and
//!   reaps completions in one `io_uring_enter`, then wakes the tasks they belong to;
//!   only the tasks woken by the first tick after a wait hand their operations to the
//!   kernel as they queue them (they answer requests that reached an idle core);
//! * when a tick finds nothing to do right after one that did, and no other task is
//!   runnable, the driver waits for completions in this ring, for up to [`BLOCK_FOR`]:
//!   a core that is busy but not saturated then skips glommio's upkeep of its own rings
//!   between requests;
//! * when nothing is in flight or ready, the driver sleeps on an eventfd registered with
//!   the ring, read through glommio's own reactor: an idle core sleeps in the kernel,
//!   it never spins. The eventfd is on only for that sleep;
//! * sockets are also installed in the ring's table of registered descriptors and
//!   named by their index there (`fixed`), which spares the kernel a descriptor lookup
//!   per operation;
//! * [`sleep_until`] timers are the driver's own (`timer`): it fires them on its ticks
//!   and bounds its waits by the earliest, so they are on time while it waits.
//!
//! Whether another task is runnable is known by counting polls: the tasks of a core
//! that runs the engine are spawned with [`spawn_local`], which counts each poll.
//!
//! glommio stays the executor: placement, task queues, timers and channels are its.
//! This module owns the ring, the slots of in-flight operations and the sockets; it
//! must not know what the bytes mean.

mod accept;
mod bufring;
mod conn;
mod fixed;
mod op;
mod park;
mod setup;
mod timer;

pub use accept::Acceptor;
pub use conn::{Resume, UringConn};
pub use setup::Flavor;
pub use timer::{sleep_until, Sleep};

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
/// Receive buffers per core and how much the kernel may put in each: 256 allocations
/// of 20 KiB with the head and tail room (`bufring`), touched as the kernel fills them.
const BUF_COUNT: u16 = 256;
const BUF_SIZE: usize = 16 * 1024;
const BUF_GROUP: u16 = 7;

/// The longest the driver waits for completions in its own ring before handing the
/// core back to glommio's reactor (which then sleeps, or runs its timers and the wakes
/// that come from other threads): what those may be delayed by, at most, while the
/// core is busy. The wait's timeout is a kernel timer, armed and (when a completion
/// comes first, as it nearly always does) cancelled on every wait. When it is the
/// earliest timer of the CPU, both reprogram the CPU's timer device, which in a
/// virtual machine is an exit to the hypervisor each: with 1 ms, shorter than the
/// scheduler tick, that was 0.8 exits per request at 20,000 plain requests per second
/// and about 8% more CPU per request than with 10 ms. 10 ms is longer than the tick
/// at any usual `HZ`, so the tick stays the earliest timer; it is also glommio's
/// preemption period in the gateway, which bounds the same delays under steady load.
pub const BLOCK_FOR: std::time::Duration = std::time::Duration::from_millis(10);

/// The kernel runs at most 20 items of deferred completion work per enter
/// (`IO_LOCAL_TW_DEFAULT_MAX`) and leaves the rest without raising the task-run flag.
/// A tick that reaped this many completions may have left some, so the next tick
/// enters even with nothing else to do; after a smaller one, whatever was left (an
/// item can end in no completion) is run by the next enter of any kind, which comes
/// before the driver waits or sleeps. Entering after every busy tick instead cost an
/// extra `io_uring_enter` per request at 10,000 plain requests per second.
const LEFTOVER_AT: usize = 16;

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
    /// Whether the driver may wait for completions in its own ring (up to
    /// [`BLOCK_FOR`]) when the core is idle right after being busy. It delays glommio's
    /// timers by as much; a core whose timers must fire on time (a load generator
    /// pacing its requests) uses the engine's own, [`sleep_until`], which end the wait.
    pub block: bool,
    /// The most slots of the ring's table of registered descriptors (`fixed`): the
    /// sockets of the first this many slots are installed there. 0 turns it off. The
    /// table is smaller when the process may not hold that many descriptors.
    pub fixed_files: u32,
    /// How long the driver, before it waits in the ring (`block`), keeps asking the
    /// kernel for completions without waiting. Zero (the default) waits at once. A
    /// wait that ends in a halt of the CPU costs a wake-up when the next event comes
    /// (16-32 µs on a virtual machine, see docs/io-engine.md, *Polling before the
    /// wait*); polling spends CPU on every idle gap shorter than this instead. An idle
    /// core still sleeps: the poll ends after this long, or sooner when an engine timer
    /// ([`sleep_until`]) is due.
    pub poll: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            flavor: Flavor::Defer,
            block: true,
            fixed_files: fixed::MAX_SLOTS,
            poll: std::time::Duration::ZERO,
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
    /// The last tick reaped enough completions that the kernel may have left deferred
    /// completion work behind ([`LEFTOVER_AT`]): the next one enters even with nothing
    /// queued and no flag.
    busy: Cell<bool>,
    /// The driver waited (in the ring or asleep) since its last tick.
    waited: Cell<bool>,
    /// Operations are handed to the kernel as they are queued, not at the next tick:
    /// on while the tasks woken by the first tick after a wait run (see [`Engine::push`]).
    eager: Cell<bool>,
    /// A tick reaped completions since the driver last waited in the ring: it may
    /// wait there again (once) before sleeping through glommio.
    may_block: Cell<bool>,
    /// `Options::block`.
    block: bool,
    /// `Options::poll`.
    poll: std::time::Duration,
    /// Deadlines of [`sleep_until`], fired by the driver.
    timers: timer::Timers,
    /// Slots in the ring's table of registered descriptors; 0 without one.
    fixed_slots: u32,
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
    /// Parks so far, numbering each park of any socket (see `Sock::seq`).
    pub(crate) park_seq: u64,
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
    // Off until the driver sleeps in glommio's reactor (see `Engine::eventfd_on`).
    ring.completion().disable_eventfd();
    // Saves the descriptor lookup on every enter (5.18+); optional.
    if let Err(e) = ring.submitter().register_ring_fd() {
        tracing::debug!(error = %e, "ring fd not registered");
    }
    let fixed_slots = fixed::register(&ring.submitter(), opts.fixed_files);
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
        waited: Cell::new(false),
        eager: Cell::new(false),
        may_block: Cell::new(false),
        block: opts.block,
        poll: opts.poll,
        timers: timer::Timers::default(),
        fixed_slots,
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(engine.clone()));
    // The driver is not counted: it compares the count across its own yield.
    glommio::spawn_local(drive(Rc::downgrade(&engine))).detach();
    spawn_local(park::sweep(Rc::downgrade(&engine))).detach();
    Ok(engine)
}

impl Engine {
    /// Which ring flags this core runs with.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Slots in the ring's table of registered descriptors (0: sockets are named by
    /// their descriptors only).
    pub fn fixed_slots(&self) -> u32 {
        self.fixed_slots
    }

    /// Queues `sqes` (already tagged) for the next flush. Linked entries stay together.
    ///
    /// Right after a wait the engine is eager: the entries go to the kernel at once, in
    /// their own `io_uring_enter`, instead of at the driver's next tick. The completions
    /// that ended the wait are requests that arrived at an idle core; at the tick their
    /// tasks would each wait for all the others of the batch to run before any send
    /// left, which batching pays for only when the core is saturated (and then it does
    /// not wait, so it stays batched).
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
            if self.eager.get() {
                submit(&mut ring);
            }
        } else {
            // The kernel is not taking entries (completion backlog): keep them in order
            // for the next tick; a linked group stays whole.
            backlog.push_back(sqes.to_vec());
        }
        drop(backlog);
        drop(ring);
        self.wake_driver();
    }

    /// Wakes the driver if it sleeps.
    fn wake_driver(&self) {
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

    /// Submits what is queued, handles every completion that is ready and fires the
    /// timers that are due. Returns the number of completions handled and timers fired.
    fn tick(&self) -> usize {
        // The tasks this tick wakes send eagerly if it follows a wait; later ones batch.
        self.eager.set(self.waited.replace(false));
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
        self.busy.set(handled >= LEFTOVER_AT);
        if handled > 0 {
            crate::clock::note();
        } else {
            crate::clock::forget();
        }
        conn::after_tick(self);
        if !self.timers.is_empty() {
            handled += self.timers.fire(std::time::Instant::now());
        }
        if handled > 0 && self.block {
            self.may_block.set(true);
        }
        handled
    }

    /// How long the driver may wait in its ring: [`BLOCK_FOR`], or less when a timer
    /// is due sooner.
    fn wait_for(&self) -> std::time::Duration {
        match self.timers.earliest() {
            Some(at) => BLOCK_FOR.min(at.saturating_duration_since(std::time::Instant::now())),
            None => BLOCK_FOR,
        }
    }

    /// Nothing queued for the kernel, here or in the backlog.
    fn nothing_queued(&self) -> bool {
        self.ring.borrow_mut().submission().is_empty() && self.backlog.borrow().is_empty()
    }

    /// Turns the eventfd on before the driver sleeps in glommio's reactor, the only
    /// time anything listens to it. While the driver is awake the eventfd stays off:
    /// the kernel would otherwise signal it for every batch of completion work (1.7%
    /// of the core at 20,000 plain requests per second, `perf record`). Work queued
    /// while it was off signalled nothing, so this enters the ring once after turning
    /// it on: the enter runs that work, and anything queued later signals. Returns
    /// false, with the eventfd off again, when the enter found completions to handle
    /// (or something is queued): the driver ticks instead of sleeping.
    fn eventfd_on(&self) -> bool {
        {
            let mut ring = self.ring.borrow_mut();
            ring.completion().enable_eventfd();
            // The kernel adds work, then reads the flag; this writes the flag, then
            // enters and looks for work: with a full fence on both sides, one of them
            // sees the other.
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            enter(&mut ring);
        }
        if self.tick() > 0 || !self.nothing_queued() {
            self.eventfd_off();
            return false;
        }
        true
    }

    /// Turns the eventfd off again once the driver is awake.
    fn eventfd_off(&self) {
        self.ring.borrow_mut().completion().disable_eventfd();
    }

    /// Enters the ring without waiting, again and again for up to `Options::poll` but no
    /// longer than `limit` (the wait's own bound: an engine timer may be due sooner),
    /// until an enter leaves a completion to reap; true when one did. The enters run the
    /// deferred completion work that a wait would have run.
    fn polled(&self, limit: std::time::Duration) -> bool {
        if self.poll.is_zero() {
            return false;
        }
        let until = std::time::Instant::now() + self.poll.min(limit);
        loop {
            {
                let mut ring = self.ring.borrow_mut();
                enter(&mut ring);
                if !ring.completion().is_empty() {
                    return true;
                }
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Waits in the ring until a completion arrives or `dur` passes, running deferred
    /// completion work; the completions are reaped by the next tick.
    fn wait(&self, dur: std::time::Duration) {
        let ts = io_uring::types::Timespec::from(dur);
        let args = io_uring::types::SubmitArgs::new().timespec(&ts);
        if let Err(e) = self
            .ring
            .borrow_mut()
            .submitter()
            .submit_with_args(1, &args)
        {
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME) | Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN)
            ) {
                tracing::error!(error = %e, "io_uring wait failed");
            }
        }
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
async fn drive(weak: std::rc::Weak<Engine>) {
    let Some(strong) = weak.upgrade() else {
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
        let Some(engine) = weak.upgrade() else {
            return;
        };
        if engine.tick() > 0 {
            // Let the tasks just woken queue their next operations, then flush them all
            // in one enter.
            YieldNow(false).await;
            continue;
        }
        if engine.may_block.get() {
            // Busy a moment ago, idle now. Go to the back of the queue: if no other
            // task runs before this one is polled again, nothing else is runnable and
            // the next thing to happen is a completion in this ring (or a timer or a
            // wake from another thread, which wait for at most BLOCK_FOR).
            let polls = task_polls();
            drop(engine);
            YieldNow(false).await;
            let Some(engine) = weak.upgrade() else {
                return;
            };
            if task_polls() == polls && engine.nothing_queued() {
                engine.may_block.set(false);
                let dur = engine.wait_for();
                if !dur.is_zero() {
                    if !engine.polled(dur) {
                        // What is left of the bound once the poll has run.
                        let left = engine.wait_for();
                        if !left.is_zero() {
                            engine.wait(left);
                        }
                    }
                    engine.waited.set(true);
                }
            }
            continue;
        }
        if !engine.eventfd_on() {
            continue;
        }
        // A timer of this engine ends the sleep too, as does one set earlier meanwhile.
        let due = engine.timers.earliest();
        let mut timer = due.map(|at| {
            glommio::timer::Timer::new(at.saturating_duration_since(std::time::Instant::now()))
        });
        let fired = futures_lite::future::poll_fn(|cx| {
            let sooner = engine
                .timers
                .earliest()
                .is_some_and(|now| due.is_none_or(|before| now < before));
            if sooner || !engine.nothing_queued() {
                return Poll::Ready(false);
            }
            if let Some(t) = timer.as_mut() {
                if Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
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
        engine.eventfd_off();
        engine.driver.take();
        engine.waited.set(true);
        drop(engine);
        if fired {
            wake = Box::pin(efd.read_at(0, 8));
        }
    }
}

thread_local! {
    static POLLS: Cell<u64> = const { Cell::new(0) };
}

/// How many times tasks spawned with [`spawn_local`] have been polled on this thread.
fn task_polls() -> u64 {
    POLLS.with(Cell::get)
}

/// Spawns `fut` as a task of this core's glommio executor, like
/// `glommio::spawn_local`, counting its polls: the driver waits in its ring only when
/// no task ran since it last looked. Every task of a core that runs the engine must
/// be spawned with this, or it may wait up to [`BLOCK_FOR`] to be run.
pub fn spawn_local<F: Future + 'static>(fut: F) -> glommio::Task<F::Output> {
    glommio::spawn_local(Counted(fut))
}

struct Counted<F>(F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get().wrapping_add(1)));
        // SAFETY: structural pinning of the only field; `Counted` never moves it out
        // and has no Drop of its own.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
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
