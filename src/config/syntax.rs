//! Character-level grammar shared by the compile steps: identifiers, HTTP tokens,
//! RFC 3986 path segments and DNS names. Pure predicates and small parsers over `&str`;
//! they describe what is wrong in a short message and leave the item path to the caller.

/// `[A-Za-z0-9._-]+`: ids of APIs, operations and the gateway.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_owned());
    }
    match id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "invalid character {c:?} in id {id:?} (allowed: A-Z a-z 0-9 . _ -)"
        )),
        None => Ok(()),
    }
}

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 9110 §9.1: a method is a `token` (`1*tchar`).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// RFC 3986 §3.3 `pchar` minus `pct-encoded` (checked separately):
/// `unreserved / sub-delims / ":" / "@"`.
fn is_pchar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Checks that `segment` is `*pchar` (RFC 3986 §3.3), percent-escapes included.
pub fn check_segment(segment: &str) -> Result<(), String> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(format!("invalid percent-escape in segment {segment:?}"));
            }
            i += 3;
        } else if is_pchar_byte(b) {
            i += 1;
        } else {
            let c = segment[i..].chars().next().unwrap_or('?');
            return Err(format!("invalid character {c:?} in segment {segment:?}"));
        }
    }
    Ok(())
}

/// Checks a DNS name as used in a Host header or URL: dot-separated labels of
/// letters, digits, '-' and '_' (underscore appears in real internal names), each
/// 1..=63 bytes, at most 253 bytes in all. Case is not checked.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".to_owned());
    }
    if name.len() > 253 {
        return Err(format!("host name {name:?} is longer than 253 bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in host name {name:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in host name {name:?}"));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!("invalid character {c:?} in host name {name:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "a label of host name {name:?} starts or ends with '-'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("echo-v1.2_x").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a b").unwrap_err().contains("' '"));
        assert!(check_id("é").is_err());
    }

    #[test]
    fn tokens() {
        assert!(is_token("GET"));
        assert!(is_token("get"));
        assert!(is_token("M-SEARCH"));
        assert!(!is_token(""));
        assert!(!is_token("GE T"));
        assert!(!is_token("GET/"));
    }

    #[test]
    fn segments() {
        assert!(check_segment("items").is_ok());
        assert!(check_segment("a%20b:c@d;e=f").is_ok());
        assert!(check_segment("").is_ok());
        assert!(check_segment("%2").is_err());
        assert!(check_segment("%zz").is_err());
        assert!(check_segment("a b").is_err());
        assert!(check_segment("a?b").is_err());
        assert!(check_segment("ü").unwrap_err().contains("'ü'"));
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_name("example.com").is_ok());
        assert!(check_dns_name("my_host.internal").is_ok());
        assert!(check_dns_name("localhost").is_ok());
        assert!(check_dns_name("").is_err());
        assert!(check_dns_name("a..b").is_err());
        assert!(check_dns_name("-a.b").is_err());
        assert!(check_dns_name("a b").is_err());
        assert!(check_dns_name(&"a".repeat(64)).is_err());
        assert!(check_dns_name(&["a"; 130].join(".")).is_err());
    }
}
