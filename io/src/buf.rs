//! A receive buffer with read and write cursors, so that consuming a request head does
//! not move the bytes behind it (pipelined requests, body bytes). It grows only up to a
//! limit set by its owner, and gives its memory back when a connection goes idle.

/// Bytes received from a peer and not consumed yet: `data[start..end]`.
#[derive(Debug)]
pub struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    max: usize,
}

impl RecvBuf {
    /// A buffer that allocates `initial` bytes on first use and may grow to `max`.
    pub fn new(initial: usize, max: usize) -> Self {
        Self {
            data: Vec::new(),
            start: 0,
            end: 0,
            initial: initial.max(1),
            max: max.max(initial.max(1)),
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
            self.start = 0;
            self.end = 0;
        }
    }

    /// True when the buffer holds `max` unconsumed bytes and cannot take more.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max
    }

    /// Free space to read into, after making room (compacting or growing up to `max`).
    /// Empty only when the buffer is full.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = vec![0; self.initial];
        }
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.len() < self.max {
                let new_len = (self.data.len() * 2).min(self.max);
                self.data.resize(new_len, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Records that `n` bytes were written into the slice returned by [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Releases the memory of an empty buffer (an idle keep-alive connection keeps none).
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.data = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Consumed bytes still in place in front of the unconsumed ones: room to write a
    /// few bytes (a response head) in front of received bytes that are sent as they are.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Lends the storage out with the range of the unconsumed bytes in it, leaving the
    /// buffer empty (everything consumed): for sending received bytes without copying
    /// them. Give the storage back with [`restore`](Self::restore).
    pub fn lend(&mut self) -> (Vec<u8>, std::ops::Range<usize>) {
        let range = self.start..self.end;
        self.start = 0;
        self.end = 0;
        (std::mem::take(&mut self.data), range)
    }

    /// Takes back storage lent by [`lend`](Self::lend) (empty when the send that held it
    /// was dropped mid-flight: the buffer then allocates again on its next read).
    pub fn restore(&mut self, data: Vec<u8>) {
        debug_assert!(self.is_empty() && self.data.is_empty());
        self.data = data;
        self.start = 0;
        self.end = 0;
    }

    /// Copies bytes in (used by tests and by in-memory callers).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let spare = self.spare();
            if spare.is_empty() {
                return;
            }
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            self.commit(n);
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
        b.restore(data);
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
        let (_, _) = b.lend();
        b.restore(Vec::new());
        b.extend_from_slice(b"again");
        assert_eq!(b.filled(), b"again");
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
