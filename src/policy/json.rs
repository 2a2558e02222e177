//! JSON string output shared by the policies that write JSON (xml-to-json) and the
//! expression language's JWT claim values: one escaping routine, RFC 8259 section 7.

use std::fmt::Write as _;

/// Appends `s` as a quoted JSON string.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_json_requires() {
        let mut out = String::new();
        super::write_string("a\"b\\c\n\t\u{1}é", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\t\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\n\t\u{1}é");
    }
}
