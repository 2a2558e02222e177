//! The per-core provided-buffer ring: fixed-size receive buffers the kernel picks from
//! when a multishot receive has data, so no connection owns a receive buffer while it
//! waits. A buffer is handed back (its id re-published at the ring's tail) as soon as
//! its bytes have been copied out to the connection that received them, or *adopted*:
//! a large chunk read by an empty `RecvBuf` becomes that buffer's storage as it is,
//! and the id goes back to the ring with other memory behind it. Each buffer is a heap
//! allocation with room in front of where the kernel writes (for a rewritten head) and
//! behind (for the few bytes that often follow a full buffer), so an adopted buffer is
//! sent on without being copied or grown.

use io_uring::types::BufRingEntry;
use std::cell::{Cell, RefCell};
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

/// Bytes kept in front of where the kernel writes into a buffer: a head rewritten a
/// little longer than the one received fits there (the gateway's `RecvBuf`s keep the
/// same headroom).
pub(crate) const HEAD_ROOM: usize = 256;
/// Bytes kept behind the `size` the kernel may fill, so that the tail of a message a
/// little larger than one buffer is appended to the adopted one without growing it.
const TAIL_ROOM: usize = 4096 - HEAD_ROOM;
/// Buffers swapped out of adopting `RecvBuf`s, kept to stand in for adopted ones.
const SPARE_MAX: usize = 64;

/// The buffer ring and the buffers behind it.
pub(crate) struct BufRing {
    entries: Mapping,
    /// Buffer `bid` is `slots[bid]`: empty (`len() == 0`), the kernel writes from
    /// `HEAD_ROOM`. No reference into the part the kernel writes is ever held while the
    /// buffer is published.
    slots: RefCell<Vec<Vec<u8>>>,
    spare: RefCell<Vec<Vec<u8>>>,
    count: u16,
    size: usize,
    /// Our copy of the tail: the next entry we publish.
    tail: Cell<u16>,
    /// Buffers the kernel may still fill (published and not yet seen in a completion).
    in_ring: Cell<u16>,
    pub(crate) group: u16,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and registers them as buffer group
    /// `group`.
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
        let slots = (0..count)
            .map(|_| Vec::with_capacity(slot_capacity(size)))
            .collect();
        // SAFETY: `entries` is page-aligned, sized for `count` entries, and outlives the
        // registration: `Engine` drops its ring (which unregisters) before this struct.
        unsafe {
            submitter.register_buf_ring_with_flags(entries.ptr.as_ptr() as u64, count, group, 0)?;
        }
        let ring = Self {
            entries,
            slots: RefCell::new(slots),
            spare: RefCell::default(),
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
            entry.set_addr(self.slot_ptr(bid) as u64);
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

    /// Where the kernel writes into buffer `bid`.
    fn slot_ptr(&self, bid: u16) -> *mut u8 {
        let mut slots = self.slots.borrow_mut();
        // SAFETY: every slot has room for HEAD_ROOM + size bytes (`slot_capacity`).
        unsafe { slots[bid as usize].as_mut_ptr().add(HEAD_ROOM) }
    }

    /// The `len` bytes the kernel wrote into buffer `bid`, from `offset`. The slice must
    /// be dropped before the buffer is recycled or adopted.
    pub(crate) fn bytes(&self, bid: u16, offset: usize, len: usize) -> &[u8] {
        assert!(bid < self.count && offset + len <= self.size);
        // SAFETY: inside buffer `bid`; the kernel finished writing these bytes (we saw
        // the completion) and does not touch the buffer until it is recycled, which the
        // caller does only after it is done with the slice; the allocation is replaced
        // only by `adopt`, under the same rule.
        unsafe { std::slice::from_raw_parts(self.slot_ptr(bid).add(offset), len) }
    }

    /// Takes buffer `bid`, which holds `len` bytes the kernel wrote, as a `Vec` whose
    /// bytes are `[HEAD_ROOM, HEAD_ROOM + len)` (the headroom zeroed), and gives the id
    /// back to the ring with a spare buffer behind it.
    pub(crate) fn adopt(&self, bid: u16, len: usize) -> Vec<u8> {
        assert!(bid < self.count && len <= self.size);
        let fresh = self
            .spare
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(slot_capacity(self.size)));
        let mut taken = std::mem::replace(&mut self.slots.borrow_mut()[bid as usize], fresh);
        // SAFETY: the capacity holds HEAD_ROOM + size bytes; the headroom is written
        // here and the `len` bytes after it were written by the kernel, whose write
        // completed (we saw the completion) and which no longer owns the buffer: its
        // id is published again below, with the new allocation behind it.
        unsafe {
            std::ptr::write_bytes(taken.as_mut_ptr(), 0, HEAD_ROOM);
            taken.set_len(HEAD_ROOM + len);
        }
        self.recycle(bid);
        taken
    }

    /// The allocation size of a buffer (what an adopting `RecvBuf` receives).
    pub(crate) fn capacity(&self) -> usize {
        slot_capacity(self.size)
    }

    /// Keeps `buf` to stand in for a buffer adopted later, if it is one of ours and
    /// there are not many kept already; otherwise it is freed.
    pub(crate) fn give_back(&self, mut buf: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if buf.capacity() == slot_capacity(self.size) && spare.len() < SPARE_MAX {
            buf.clear();
            spare.push(buf);
        }
    }
}

/// The allocation behind a buffer of `size` bytes.
fn slot_capacity(size: usize) -> usize {
    HEAD_ROOM + size + TAIL_ROOM
}
