//! A deterministic byte stream for large transfers, generated and checked block by
//! block with memcpy/memcmp so that a debug build moves a GiB in reasonable time
//! without holding it in memory. Block `i` (64 KiB) is a fixed filler whose first
//! 8 bytes are `i` little-endian: a reordered, duplicated or dropped block is caught.

const BLOCK: usize = 64 * 1024;

fn template() -> Vec<u8> {
    (0..BLOCK).map(|i| (i.wrapping_mul(31) + 7) as u8).collect()
}

fn block(template: &[u8], index: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(template);
    out[..8].copy_from_slice(&index.to_le_bytes());
}

/// Produces the pattern.
pub struct Pattern {
    template: Vec<u8>,
    current: Vec<u8>,
    index: u64,
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    pub fn new() -> Pattern {
        let template = template();
        let mut current = Vec::with_capacity(BLOCK);
        block(&template, 0, &mut current);
        Pattern {
            template,
            current,
            index: 0,
        }
    }

    /// The next full block (call `advance` to move on).
    pub fn block(&self) -> &[u8] {
        &self.current
    }

    pub fn advance(&mut self) {
        self.index += 1;
        block(&self.template, self.index, &mut self.current);
    }

    /// The first `n` bytes of the pattern in memory (small sizes only).
    pub fn bytes(n: usize) -> Vec<u8> {
        let mut p = Pattern::new();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let take = (n - out.len()).min(BLOCK);
            out.extend_from_slice(&p.block()[..take]);
            p.advance();
        }
        out
    }

    /// Writes the first `n` bytes of the pattern to `w`.
    pub fn write_to(w: &mut impl std::io::Write, n: u64) -> std::io::Result<()> {
        let mut p = Pattern::new();
        let mut left = n;
        while left > 0 {
            let take = left.min(BLOCK as u64) as usize;
            w.write_all(&p.block()[..take])?;
            left -= take as u64;
            p.advance();
        }
        Ok(())
    }
}

/// Checks that a stream fed in arbitrary pieces is a prefix of the pattern.
pub struct PatternCheck {
    template: Vec<u8>,
    expected: Vec<u8>,
    pending: Vec<u8>,
    index: u64,
    bad_at: Option<u64>,
    len: u64,
}

impl Default for PatternCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl PatternCheck {
    pub fn new() -> PatternCheck {
        PatternCheck {
            template: Vec::new(),
            expected: Vec::new(),
            pending: Vec::new(),
            index: 0,
            bad_at: None,
            len: 0,
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.bad_at.is_some() {
            return;
        }
        if self.template.is_empty() {
            self.template = template();
            block(&self.template, 0, &mut self.expected);
            self.pending.reserve(BLOCK);
        }
        while !data.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == BLOCK {
                if self.pending != self.expected {
                    self.mark_bad();
                    return;
                }
                self.pending.clear();
                self.index += 1;
                block(&self.template, self.index, &mut self.expected);
            }
        }
    }

    fn mark_bad(&mut self) {
        let off = self
            .pending
            .iter()
            .zip(self.expected.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        self.bad_at = Some(self.index * BLOCK as u64 + off as u64);
    }

    /// True if everything fed so far matches the pattern.
    pub fn ok(&self) -> bool {
        if self.bad_at.is_some() {
            return false;
        }
        self.pending[..] == self.expected[..self.pending.len().min(self.expected.len())]
    }

    /// Offset of the first wrong byte, if any.
    pub fn first_bad(&self) -> Option<u64> {
        if let Some(b) = self.bad_at {
            return Some(b);
        }
        let off = self
            .pending
            .iter()
            .zip(self.expected.iter())
            .position(|(a, b)| a != b)?;
        Some(self.index * BLOCK as u64 + off as u64)
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}
