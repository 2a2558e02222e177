//! Size limits for message heads. They bound how much a peer can make the
//! gateway buffer before a head is complete: the parsers enforce them on
//! incomplete input too, so an endless request line or header section is
//! rejected as soon as it crosses the limit, not when it ends.

/// Limits applied by `parse_request_head` and `parse_response_head`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request line, excluding its CRLF (414 beyond). Not applied to
    /// status lines, which only count towards `max_header_bytes`.
    pub max_request_line: usize,
    /// Largest head: leading empty lines, start line, field lines and the final
    /// empty line (431 beyond).
    pub max_header_bytes: usize,
    /// Most field lines in a head (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_header_bytes: 65536,
            max_headers: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(l.max_request_line, 8192);
        assert_eq!(l.max_header_bytes, 65536);
        assert_eq!(l.max_headers, 100);
    }
}
