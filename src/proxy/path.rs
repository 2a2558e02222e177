//! Request path checks done before routing. A path with dot segments (`/a/../b`,
//! also percent-encoded) could reach a backend path outside the API's base path once
//! the backend normalises it, so such requests are refused instead of forwarded.

/// True when a segment of `path` is `.` or `..`, literally or percent-encoded.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let decoded = decode_dots(seg);
        decoded == "." || decoded == ".."
    })
}

/// Replaces `%2e`/`%2E` with '.', enough to recognise dot segments.
fn decode_dots(seg: &str) -> std::borrow::Cow<'_, str> {
    if seg.len() > 6 || !seg.contains('%') {
        return std::borrow::Cow::Borrowed(seg);
    }
    std::borrow::Cow::Owned(seg.replace("%2e", ".").replace("%2E", "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_dot_segments() {
        for bad in [
            "/a/../b",
            "/..",
            "/a/.",
            "/./a",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a/.%2e/",
            "/%2e",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for good in [
            "/",
            "/a/b",
            "/a/..b",
            "/a/b.",
            "/.well-known/x",
            "/a/%2e%2e%2e",
            "",
        ] {
            assert!(!has_dot_segment(good), "{good}");
        }
    }
}
