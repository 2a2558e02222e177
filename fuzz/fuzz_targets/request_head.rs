//! `parse_request_head` on arbitrary bytes: it must not panic, must report a
//! head no longer than its input, and a prefix of the input must give either
//! "incomplete" or the same answer as the whole (the result never depends on
//! how reads split the stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http::{parse_request_head, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let whole = parse_request_head(data, &limits);
    if let Ok(Some((_, consumed))) = &whole {
        assert!(*consumed <= data.len());
        assert!(*consumed > 0);
    }
    // One prefix, chosen from the data itself so the fuzzer can steer it.
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) * data.len() / 256);
    match parse_request_head(&data[..cut], &limits) {
        Ok(None) => {}
        prefix => assert_eq!(prefix, whole, "prefix of {cut} bytes"),
    }
    // Small limits reach the limit paths with short inputs.
    let tight = Limits {
        max_request_line: 32,
        max_header_bytes: 128,
        max_headers: 4,
    };
    if let Ok(Some((_, consumed))) = parse_request_head(data, &tight) {
        assert!(consumed <= data.len().min(128));
    }
});
