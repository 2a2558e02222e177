//! The ring's table of registered (fixed) descriptors. A socket whose slab key is
//! below the table's length is also installed at that index, and its operations name
//! the index instead of the descriptor: the kernel then skips the descriptor lookup
//! and the reference count it takes and drops on every operation (`fget`/`fput`).
//! The socket keeps its ordinary descriptor too, for `getpeername` and socket options,
//! which a direct descriptor cannot do; closing it closes both.
//!
//! Why the slab key is safe as the index: a key is reused only after its socket was
//! released, and release queues the close of its index before any entry of the next
//! socket in that slot. The ring takes entries in queue order, and an operation
//! resolves its index when it is first issued, so every operation of a socket finds
//! that socket's file, the same argument that makes descriptor number reuse safe.

use super::Engine;
use io_uring::{opcode, squeue, Submitter};
use std::io;
use std::os::fd::RawFd;

/// The most slots a core's table has. The kernel keeps 8 bytes per slot; sockets
/// beyond it use their ordinary descriptor.
pub(crate) const MAX_SLOTS: u32 = 65_536;

/// What an operation names its socket by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The socket's index in the table.
    Fixed(u32),
    /// The socket's ordinary descriptor.
    Fd(RawFd),
}

/// Builds an entry for `$target`, with `$t` bound to `types::Fixed` or `types::Fd`.
macro_rules! on_target {
    ($target:expr, $t:ident => $build:expr) => {
        match $target {
            $crate::uring::fixed::Target::Fixed(i) => {
                let $t = io_uring::types::Fixed(i);
                $build
            }
            $crate::uring::fixed::Target::Fd(fd) => {
                let $t = io_uring::types::Fd(fd);
                $build
            }
        }
    };
}
pub(crate) use on_target;

/// Registers an empty table of up to `most` slots, no more than the process may hold
/// descriptors (the kernel refuses more). Returns its length; 0 when `most` is 0 or
/// (with the reason logged) when the kernel refuses: the engine then names sockets by
/// their descriptors only.
pub(crate) fn register(submitter: &Submitter<'_>, most: u32) -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the struct it is given.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    };
    let len = most.min(u32::try_from(nofile).unwrap_or(u32::MAX));
    if len == 0 {
        return 0;
    }
    match submitter.register_files_sparse(len) {
        Ok(()) => len,
        Err(e) => {
            tracing::debug!(error = %e, "registered descriptors unavailable");
            0
        }
    }
}

/// The entry that installs `fd` at `index`. `fd` must stay where it is until the
/// entry's completion: the kernel reads it when it takes the entry.
pub(crate) fn install(index: u32, fd: &RawFd) -> squeue::Entry {
    opcode::FilesUpdate::new(fd, 1).offset(index as i32).build()
}

/// What the socket in slab slot `key`, with descriptor `fd`, is named by: its index
/// when the slot is inside the engine's table, its descriptor otherwise.
pub(crate) fn target(engine: &Engine, key: usize, fd: RawFd) -> Target {
    match u32::try_from(key) {
        Ok(index) if index < engine.fixed_slots => Target::Fixed(index),
        _ => Target::Fd(fd),
    }
}

/// Whether an install's result says the descriptor is in place.
pub(crate) fn installed(res: i32) -> io::Result<()> {
    match res {
        1 => Ok(()),
        r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
        r => Err(io::Error::other(format!(
            "installed {r} descriptors, not 1"
        ))),
    }
}
