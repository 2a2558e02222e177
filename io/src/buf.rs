//! A receive buffer with read and write cursors, so that consuming a request head does
//! not move the bytes behind it (pipelined requests, body bytes). It grows only up to a
//! limit set by its owner, and gives its memory back when a connection goes idle.
//!
//! Two things keep body bytes from being copied or touched more than once. Reads can
//! start a few bytes into the storage ([`RecvBuf::with_headroom`]), so that a rewritten
//! head a little longer than the one received still fits in front of the body that
//! follows it and both go out in one send from this storage. And bytes copied in with
//! [`RecvBuf::fill_from`] land in memory that was never zeroed, in a buffer grown once
//! to what is waiting rather than doubled step by step.

/// Bytes received from a peer and not consumed yet: `data[start..end]`.
///
/// `data.len()` is how much of the storage is initialised (`end <= data.len()`), its
/// capacity how much there is. An unallocated buffer has `start == end == 0`; an
/// allocated one keeps `start >= reserved`.
#[derive(Debug)]
pub struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    max: usize,
    /// Bytes kept free in front of the first byte read into empty storage.
    reserved: usize,
}

impl RecvBuf {
    /// A buffer that allocates `initial` bytes on first use and may grow to `max`.
    pub fn new(initial: usize, max: usize) -> Self {
        Self::with_headroom(initial, max, 0)
    }

    /// Like [`new`](Self::new), with `headroom` bytes kept free in front of the first
    /// byte read into empty storage (besides the `max` bytes the buffer may hold).
    pub fn with_headroom(initial: usize, max: usize, headroom: usize) -> Self {
        Self {
            data: Vec::new(),
            start: 0,
            end: 0,
            initial: initial.max(1),
            max: max.max(initial.max(1)),
            reserved: headroom,
        }
    }

    /// The unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes at the front as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.reset_cursors();
        }
    }

    /// Bytes of storage held (0 when nothing is allocated).
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// True when the buffer holds `max` unconsumed bytes and cannot take more.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max
    }

    /// Empty: reads start again just after the headroom.
    fn reset_cursors(&mut self) {
        let at = if self.data.capacity() == 0 {
            0
        } else {
            self.reserved
        };
        self.start = at;
        self.end = at;
    }

    /// Makes room for up to `want` more bytes after `end` (at least one while the
    /// buffer is not full): allocates on first use, compacts when the end of the
    /// storage is reached, and otherwise grows once, to the next power of two that
    /// holds what is wanted, capped at `max`. Returns the room there is.
    fn make_room(&mut self, want: usize) -> usize {
        let want = want.max(1);
        if self.data.capacity() == 0 {
            let cap = (self.reserved + want)
                .next_power_of_two()
                .clamp(self.reserved + self.initial, self.reserved + self.max);
            self.data = Vec::with_capacity(cap);
            // The headroom is written over before it is sent: zero it once so that
            // every byte before `end` is initialised.
            self.data.resize(self.reserved, 0);
            self.start = self.reserved;
            self.end = self.reserved;
        }
        let room = self.data.capacity() - self.end;
        if room >= want {
            return room;
        }
        if self.start > self.reserved && (room == 0 || self.len() + want <= self.max) {
            self.data.copy_within(self.start..self.end, self.reserved);
            self.end -= self.start - self.reserved;
            self.start = self.reserved;
            self.data.truncate(self.end);
        }
        let room = self.data.capacity() - self.end;
        let limit = self.reserved + self.max;
        if room < want && self.data.capacity() < limit {
            let cap = (self.end + want)
                .next_power_of_two()
                .max(self.data.capacity() * 2)
                .min(limit);
            // Only the initialised bytes up to `end` are worth moving.
            self.data.truncate(self.end);
            self.data.reserve_exact(cap - self.end);
        }
        self.data.capacity() - self.end
    }

    /// Free space to read into, after making room (compacting or growing up to `max`).
    /// Empty only when the buffer is full. The space is zeroed the first time it is
    /// handed out; [`fill_from`](Self::fill_from) is the way in that skips that.
    pub fn spare(&mut self) -> &mut [u8] {
        self.make_room(1);
        let cap = self.data.capacity();
        if self.data.len() < cap {
            self.data.resize(cap, 0);
        }
        &mut self.data[self.end..]
    }

    /// Records that `n` bytes were written into the slice returned by [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Copies as much of `src` as fits in and returns how much that was, making room
    /// first for all of `waiting` bytes (what the caller has queued, `src` included) so
    /// the storage grows at most once for them. Nothing is zeroed on the way.
    pub fn fill_from(&mut self, src: &[u8], waiting: usize) -> usize {
        let room = self.make_room(waiting.max(src.len()));
        let n = room.min(src.len());
        let (src, end) = (&src[..n], self.end + n);
        if end <= self.data.len() {
            self.data[self.end..end].copy_from_slice(src);
        } else {
            // What lies past `end` was never read: write over it.
            self.data.truncate(self.end);
            self.data.extend_from_slice(src);
        }
        self.end = end;
        n
    }

    /// Whether [`adopt`](Self::adopt) may take storage of `capacity` bytes whose bytes
    /// start at `at`: the buffer is empty, its headroom fits in front of `at`, and the
    /// storage is no larger than this buffer may grow to (so `max` still holds).
    pub fn can_adopt(&self, at: usize, capacity: usize) -> bool {
        self.is_empty() && at >= self.reserved && capacity <= self.reserved + self.max
    }

    /// Takes `data` as storage, its bytes being `data[at..]`, and returns the storage
    /// held until now (empty, possibly unallocated). For receiving into memory that
    /// was filled elsewhere (a provided buffer) without copying it. Check
    /// [`can_adopt`](Self::can_adopt) first.
    pub fn adopt(&mut self, data: Vec<u8>, at: usize) -> Vec<u8> {
        assert!(self.can_adopt(at, data.capacity()) && at <= data.len());
        self.start = at;
        self.end = data.len();
        std::mem::replace(&mut self.data, data)
    }

    /// Releases the memory of an empty buffer (an idle keep-alive connection keeps none).
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.data = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Consumed bytes (and the headroom) still in place in front of the unconsumed
    /// ones: room to write a head in front of received bytes that are sent as they are.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Lends the storage out with the range of the unconsumed bytes in it, leaving the
    /// buffer empty: for sending received bytes (and writing framing into consumed space
    /// in front of them) without copying them. Give the storage back with
    /// [`restore`](Self::restore).
    pub fn lend(&mut self) -> (Vec<u8>, std::ops::Range<usize>) {
        let range = self.start..self.end;
        self.start = 0;
        self.end = 0;
        (std::mem::take(&mut self.data), range)
    }

    /// Takes back storage lent by [`lend`](Self::lend), with `unconsumed` (the range
    /// `lend` returned, or a later part of it) its bytes still to read: what follows a
    /// sent body, such as a pipelined request, is kept in place. Storage that came back
    /// empty (a send dropped mid-flight) leaves the buffer to allocate on its next read.
    pub fn restore(&mut self, data: Vec<u8>, unconsumed: std::ops::Range<usize>) {
        debug_assert!(self.is_empty() && self.data.capacity() == 0);
        self.data = data;
        if !unconsumed.is_empty() && unconsumed.end <= self.data.len() {
            debug_assert!(unconsumed.start >= self.reserved);
            self.start = unconsumed.start;
            self.end = unconsumed.end;
            return;
        }
        if self.data.capacity() <= self.reserved {
            // No room past the headroom (or nothing at all): allocate on the next read.
            self.data = Vec::new();
        } else if self.data.len() < self.reserved {
            self.data.resize(self.reserved, 0);
        }
        self.reset_cursors();
    }

    /// Copies bytes in (used by tests and by in-memory callers).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.fill_from(rest, rest.len());
            if n == 0 {
                return;
            }
            rest = &rest[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lend_and_restore_keep_the_storage() {
        let mut b = RecvBuf::new(16, 16);
        b.extend_from_slice(b"HEAD|body");
        b.consume(5);
        assert_eq!(b.headroom(), 5);
        let (mut data, range) = b.lend();
        assert_eq!(&data[range.clone()], b"body");
        assert!(b.is_empty());
        let ptr = data.as_ptr();
        data[range.start - 2..range.start].copy_from_slice(b"h:");
        assert_eq!(&data[range.start - 2..range.end], b"h:body");
        b.restore(data, range.end..range.end);
        assert!(b.is_empty());
        assert_eq!(b.headroom(), 0);
        b.extend_from_slice(b"next");
        assert_eq!(b.filled(), b"next");
        assert_eq!(
            b.spare().len(),
            12,
            "the same 16 bytes, not a new allocation"
        );
        assert_eq!(b.filled().as_ptr(), ptr);
        // Storage lost with a dropped send: the buffer allocates again.
        let (_, range) = b.lend();
        b.restore(Vec::new(), range);
        b.extend_from_slice(b"again");
        assert_eq!(b.filled(), b"again");
    }

    #[test]
    fn restore_keeps_what_follows_the_sent_bytes() {
        let mut b = RecvBuf::with_headroom(64, 64, 8);
        b.extend_from_slice(b"HEAD|body|NEXT");
        b.consume(5);
        let (data, range) = b.lend();
        assert_eq!(&data[range.clone()], b"body|NEXT");
        // "body|" went out; "NEXT" (a pipelined message) is still to read.
        b.restore(data, range.start + 5..range.end);
        assert_eq!(b.filled(), b"NEXT");
        b.extend_from_slice(b"+more");
        assert_eq!(b.filled(), b"NEXT+more");
        b.consume(9);
        assert!(b.is_empty());
        assert_eq!(b.headroom(), 8);
        // Storage lost with a dropped send: nothing can be kept.
        b.extend_from_slice(b"abc");
        let (_, range) = b.lend();
        b.restore(Vec::new(), range);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn headroom_is_kept_in_front_of_what_is_read() {
        let mut b = RecvBuf::with_headroom(8, 64, 16);
        assert_eq!(b.headroom(), 0, "nothing allocated yet");
        b.extend_from_slice(b"HEAD|body");
        assert_eq!(b.filled(), b"HEAD|body");
        assert_eq!(b.headroom(), 16);
        b.consume(5);
        assert_eq!(b.headroom(), 21);
        // A head 20 bytes long fits in front of the body, in the same storage.
        let (mut data, range) = b.lend();
        data[range.start - 20..range.start].copy_from_slice(b"a longer head, 20 b|");
        assert_eq!(
            &data[range.start - 20..range.end],
            b"a longer head, 20 b|body"
        );
        b.restore(data, range.end..range.end);
        assert!(b.is_empty());
        assert_eq!(b.headroom(), 16, "back to the reserve once empty");
        // Compaction keeps the reserve too.
        b.extend_from_slice(&[b'x'; 60]);
        b.consume(50);
        b.extend_from_slice(&[b'y'; 50]);
        assert_eq!(b.len(), 60);
        assert_eq!(b.headroom(), 16);
        assert_eq!(&b.filled()[..10], &[b'x'; 10]);
        assert_eq!(&b.filled()[10..], &[b'y'; 50][..]);
    }

    #[test]
    fn fill_from_grows_once_to_what_is_waiting() {
        let mut b = RecvBuf::with_headroom(1024, 40 * 1024, 256);
        let chunk = vec![7u8; 16 * 1024];
        // 20 KiB waiting, 16 KiB in this chunk: one allocation that holds it all.
        assert_eq!(b.fill_from(&chunk, 20 * 1024), chunk.len());
        let cap = b.capacity();
        assert!(cap >= 256 + 20 * 1024, "{cap}");
        assert_eq!(b.fill_from(&chunk[..4096], 4096), 4096);
        assert_eq!(b.capacity(), cap, "no second allocation");
        assert_eq!(b.len(), 20 * 1024);
        assert!(b.filled().iter().all(|&x| x == 7));
        // Never past `max`, however much is waiting.
        let big = vec![1u8; 64 * 1024];
        let n = b.fill_from(&big, big.len());
        assert_eq!(b.len(), 40 * 1024);
        assert_eq!(n, 20 * 1024);
        assert!(b.is_full());
        assert_eq!(b.fill_from(&big, big.len()), 0);
        // spare() hands out zeroed bytes even where fill_from left memory unwritten.
        let mut b = RecvBuf::new(8, 32);
        assert_eq!(b.fill_from(b"abc", 20), 3);
        let spare = b.spare();
        assert!(spare.iter().all(|&x| x == 0));
        spare[..2].copy_from_slice(b"de");
        b.commit(2);
        assert_eq!(b.filled(), b"abcde");
    }

    #[test]
    fn adopt_takes_storage_filled_elsewhere() {
        let mut b = RecvBuf::with_headroom(64, 1024, 16);
        let mut filled = Vec::with_capacity(512);
        filled.resize(32, 0);
        filled.extend_from_slice(b"HTTP/1.1 200 OK");
        let ptr = filled.as_ptr();
        assert!(b.can_adopt(32, filled.capacity()));
        assert!(!b.can_adopt(8, filled.capacity()), "headroom would not fit");
        assert!(!b.can_adopt(32, 2048), "larger than the buffer may grow");
        let old = b.adopt(filled, 32);
        assert_eq!(old.capacity(), 0, "nothing was allocated before");
        assert_eq!(b.filled(), b"HTTP/1.1 200 OK");
        assert_eq!(b.filled().as_ptr(), unsafe { ptr.add(32) });
        assert_eq!(b.headroom(), 32);
        assert!(!b.can_adopt(32, 512), "only an empty buffer adopts");
        // More bytes are appended in the adopted storage, which keeps its capacity.
        b.extend_from_slice(b"\r\n");
        assert_eq!(b.filled(), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(b.capacity(), 512);
        b.consume(b.len());
        assert_eq!(b.headroom(), 16, "back to its own headroom once empty");
        // Adopting again hands back the storage adopted before.
        let mut next = vec![0u8; 16];
        next.extend_from_slice(b"x");
        let old = b.adopt(next, 16);
        assert_eq!(old.as_ptr(), ptr);
        assert_eq!(b.filled(), b"x");
    }

    #[test]
    fn consume_compact_and_grow() {
        let mut b = RecvBuf::new(4, 8);
        b.extend_from_slice(b"abcd");
        assert_eq!(b.filled(), b"abcd");
        b.consume(2);
        b.extend_from_slice(b"efgh");
        assert_eq!(b.filled(), b"cdefgh");
        b.extend_from_slice(b"ijkl");
        assert_eq!(b.filled(), b"cdefghij", "stops at max");
        assert!(b.is_full());
        assert!(b.spare().is_empty());
        b.consume(8);
        assert!(b.is_empty());
        b.release_if_empty();
        assert_eq!(b.data.capacity(), 0);
    }
}
