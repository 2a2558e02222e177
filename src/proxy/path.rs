//! Request path checks done before routing. A path with dot segments (`/a/../b`,
//! also percent-encoded) could reach a backend path outside the API's base path once
//! the backend normalises it, so such requests are refused instead of forwarded.

/// True when a segment of `path` is `.` or `..`, literally or percent-encoded.
pub fn has_dot_segment(path: &str) -> bool {
    path.as_bytes().split(|&b| b == b'/').any(is_dot_segment)
}

/// `.` or `..`, each dot written as itself or as `%2e` / `%2E`.
fn is_dot_segment(seg: &[u8]) -> bool {
    let dot = |s: &[u8]| match s {
        [b'.', ..] => Some(1),
        [b'%', b'2', b'e' | b'E', ..] => Some(3),
        _ => None,
    };
    let Some(first) = dot(seg) else {
        return false;
    };
    let rest = seg.get(first..).unwrap_or_default();
    rest.is_empty() || dot(rest) == Some(rest.len())
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
            "/a/%2E.",
            "/a/..",
            "../a",
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
            "/a/%2e.x",
            "/a/...",
            "/a/%2",
            "/a/%2f",
            "/a/%",
            "",
        ] {
            assert!(!has_dot_segment(good), "{good}");
        }
    }
}
