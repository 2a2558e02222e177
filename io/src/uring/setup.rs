//! Creating a core's ring with the best flags the kernel accepts, and proving the
//! operations the engine relies on work before any connection depends on them.

use io_uring::{cqueue, opcode, types, IoUring};
use std::io;
use std::os::fd::AsRawFd;

/// How completions are run, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (6.1+): completion work runs only
    /// when the core asks for events, in one batch.
    Defer,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (5.19+): no interrupts to post completions.
    Coop,
    /// No task-run flags.
    Plain,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Defer => "single-issuer+defer-taskrun",
            Flavor::Coop => "coop-taskrun",
            Flavor::Plain => "plain",
        }
    }

    /// Parses `defer`, `coop` or `plain` (the `PORTICO_RING_FLAGS` setting).
    pub fn parse(s: &str) -> Option<Flavor> {
        match s {
            "defer" => Some(Flavor::Defer),
            "coop" => Some(Flavor::Coop),
            "plain" => Some(Flavor::Plain),
            _ => None,
        }
    }
}

/// Builds a ring, trying `Defer`, then `Coop`, then `Plain`, starting at `best`.
pub(crate) fn build(entries: u32, best: Flavor) -> io::Result<(IoUring, Flavor)> {
    let order = [Flavor::Defer, Flavor::Coop, Flavor::Plain];
    let start = order.iter().position(|f| *f == best).unwrap_or(0);
    let mut last = None;
    for flavor in &order[start..] {
        let mut b = IoUring::builder();
        b.setup_cqsize(entries * 4).setup_submit_all();
        match flavor {
            Flavor::Defer => {
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_taskrun_flag();
            }
            Flavor::Coop => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            Flavor::Plain => {}
        }
        match b.build(entries) {
            Ok(ring) => return Ok((ring, *flavor)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no ring flavor")))
}

/// Checks, on a socket pair, that a multishot receive with buffer selection delivers
/// data and stays armed: kernels before 6.0 accept the ring but not the operation.
/// Returns the id of the buffer the probe used, to be given back.
pub(crate) fn probe_multishot_recv(ring: &mut IoUring, group: u16) -> io::Result<Option<u16>> {
    let (a, b) = socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    let probe = 1u64;
    let recv = opcode::RecvMulti::new(types::Fd(a.as_raw_fd()), group)
        .build()
        .user_data(probe);
    // SAFETY: the entry refers to no memory of ours (the kernel picks a buffer).
    unsafe { ring.submission().push(&recv) }.map_err(|_| io::Error::other("ring full"))?;
    ring.submit()?;
    b.send(b"x")?;
    ring.submit_and_wait(1)?;
    let (result, flags) = ring
        .completion()
        .next()
        .map(|c| (c.result(), c.flags()))
        .ok_or_else(|| io::Error::other("no completion"))?;
    let bid = cqueue::buffer_select(flags);
    if cqueue::more(flags) {
        let cancel = opcode::AsyncCancel::new(probe).build().user_data(2);
        // SAFETY: as above.
        unsafe { ring.submission().push(&cancel) }.map_err(|_| io::Error::other("ring full"))?;
        ring.submit_and_wait(2)?;
        ring.completion().for_each(drop);
    }
    if result == 1 && bid.is_some() && cqueue::more(flags) {
        Ok(bid)
    } else {
        Err(io::Error::other(format!(
            "multishot receive unsupported (result {result}, flags {flags:#x})"
        )))
    }
}
