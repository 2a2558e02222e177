//! The per-core provided-buffer ring: fixed-size receive buffers the kernel picks from
//! when a multishot receive has data, so no connection owns a receive buffer while it
//! waits. A buffer is handed back (its id re-published at the ring's tail) as soon as
//! its bytes have been copied out to the connection that received them.

use io_uring::types::BufRingEntry;
use std::cell::Cell;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// Anonymous, page-aligned memory, unmapped on drop. Pages are touched (and count in
/// RSS) only when written.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The buffer ring and the buffers behind it.
pub(crate) struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    count: u16,
    size: usize,
    /// Our copy of the tail: the next entry we publish.
    tail: Cell<u16>,
    /// Buffers the kernel may still fill (published and not yet seen in a completion).
    in_ring: Cell<u16>,
    pub(crate) group: u16,
}

impl BufRing {
    /// Maps `count` buffers of `size` bytes and registers them as buffer group `group`.
    /// `count` must be a power of two, at most 32768.
    pub(crate) fn new(
        submitter: &io_uring::Submitter<'_>,
        count: u16,
        size: usize,
        group: u16,
    ) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer count must be a power of two up to 32768",
            ));
        }
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let buffers = Mapping::new(count as usize * size)?;
        // SAFETY: `entries` is page-aligned, sized for `count` entries, and outlives the
        // registration: `Engine` drops its ring (which unregisters) before this struct.
        unsafe {
            submitter.register_buf_ring_with_flags(entries.ptr.as_ptr() as u64, count, group, 0)?;
        }
        let ring = Self {
            entries,
            buffers,
            count,
            size,
            tail: Cell::new(0),
            in_ring: Cell::new(0),
            group,
        };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    fn base(&self) -> *mut BufRingEntry {
        self.entries.ptr.as_ptr().cast()
    }

    /// Writes buffer `bid` at the tail without publishing it yet.
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let index = (tail & (self.count - 1)) as usize;
        // SAFETY: index < count, inside the mapping; the kernel reads entries only up to
        // the published tail, and this one is past it until `publish`.
        unsafe {
            let entry = &mut *self.base().add(index);
            entry.set_addr(self.buffers.ptr.as_ptr().add(bid as usize * self.size) as u64);
            entry.set_len(self.size as u32);
            entry.set_bid(bid);
        }
        self.tail.set(tail.wrapping_add(1));
        self.in_ring.set(self.in_ring.get() + 1);
    }

    /// Makes pushed entries visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of our mapping; the kernel
        // reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.base()) as *const AtomicU16;
            (*tail).store(self.tail.get(), Ordering::Release);
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Notes that the kernel filled buffer `bid` (seen in a completion).
    pub(crate) fn taken(&self) {
        self.in_ring.set(self.in_ring.get().saturating_sub(1));
    }

    /// Buffers the kernel can still fill.
    pub(crate) fn available(&self) -> u16 {
        self.in_ring.get()
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`, from `offset`.
    pub(crate) fn bytes(&self, bid: u16, offset: usize, len: usize) -> &[u8] {
        assert!(bid < self.count && offset + len <= self.size);
        // SAFETY: inside buffer `bid`; the kernel finished writing it (we saw its
        // completion) and does not touch it until it is recycled.
        unsafe {
            std::slice::from_raw_parts(
                self.buffers
                    .ptr
                    .as_ptr()
                    .add(bid as usize * self.size + offset),
                len,
            )
        }
    }
}
