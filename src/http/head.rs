//! What request and response heads have in common: finding where a head ends
//! while enforcing the line-level rules httparse is lenient about, and the single
//! pass over the parsed field lines that decides framing (RFC 9112 6), Host and
//! the Connection options.
//!
//! httparse 1.10 already rejects, with the default `ParserConfig`: non-token
//! methods and field names, whitespace between a field name and its colon, empty
//! field names, a line starting with whitespace (obs-fold, or whitespace before
//! the first field), control bytes and DEL in targets and values, a CR not
//! followed by LF inside a line, versions other than HTTP/1.0 and HTTP/1.1, and
//! status codes that are not three digits. It accepts bare LF as a line ending
//! (request line, fields, leading empty lines), bare-LF empty lines before the
//! start line, "#" and any UTF-8 in the request-target, and values made only of
//! whitespace. `scan_head` closes the line-level gaps before httparse runs;
//! `syntax` closes the target gaps.

use std::mem::MaybeUninit;

use super::error::ParseError;
use super::headers::Header;
use super::syntax::{is_token, list_items, parse_content_length};
use super::Version;

/// Where the head lies in the buffer: `start` is the first byte of the start
/// line (after any skipped empty lines), `end` is one past the CRLF of the empty
/// line that ends the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadSpan {
    pub start: usize,
    pub line_end: usize,
    pub end: usize,
}

/// Byte classes for the head scanner.
const ORD: u8 = 0;
const CR: u8 = 1;
const LF: u8 = 2;
const CTL: u8 = 3;
const WS: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [ORD; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = CTL;
        i += 1;
    }
    t[0x7f] = CTL;
    t[b'\r' as usize] = CR;
    t[b'\n' as usize] = LF;
    t[b'\t' as usize] = WS;
    t[b' ' as usize] = WS;
    t
};

/// Where the scanner is in the head. One byte moves it one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Before the start line: empty lines may be skipped (RFC 9112 2.2).
    Leading,
    LeadingCr,
    StartLine,
    StartLineCr,
    /// At the first byte of a field line or of the final empty line.
    LineStart,
    Field,
    FieldCr,
    FinalCr,
}

/// Find the end of a head in `buf`, checking on the way, in byte order, that
/// every line ends in CRLF (RFC 9112 2.2: no bare CR, and this parser treats a
/// bare LF as invalid too), that no control byte other than HTAB appears
/// (RFC 9110 5.5, RFC 9112 3), that no field line starts with whitespace
/// (obs-fold, RFC 9112 5.2, or whitespace after the start line, RFC 9112 2.2), and
/// the size limits. `max_line` bounds the start line without its CRLF.
///
/// Every decision depends only on the bytes up to the position where it is
/// taken, so a prefix of a buffer gives either `Ok(None)` or the same answer as
/// the whole buffer: the result never depends on how the input was split.
pub(crate) fn scan_head(
    buf: &[u8],
    max_line: usize,
    max_head: usize,
) -> Result<Option<HeadSpan>, ParseError> {
    let mut state = Scan::Leading;
    let mut start = 0;
    let mut line_end = 0;
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        if i >= max_head {
            return Err(ParseError::HeadersTooLarge);
        }
        let class = CLASS[usize::from(b)];
        state = match (state, class) {
            (_, CTL) => return Err(ParseError::Invalid("control character in head")),
            (Scan::LeadingCr | Scan::StartLineCr | Scan::FieldCr | Scan::FinalCr, c) if c != LF => {
                return Err(ParseError::Invalid("bare CR in head"))
            }
            (Scan::Leading | Scan::StartLine | Scan::LineStart | Scan::Field, LF) => {
                return Err(ParseError::Invalid("bare LF in head"))
            }
            (Scan::Leading, CR) => Scan::LeadingCr,
            (Scan::LeadingCr, _) => Scan::Leading,
            (Scan::Leading, _) => {
                start = i;
                Scan::StartLine
            }
            (Scan::StartLine, CR) => {
                line_end = i;
                Scan::StartLineCr
            }
            (Scan::StartLine, _) => Scan::StartLine,
            (Scan::StartLineCr, _) => Scan::LineStart,
            (Scan::LineStart, CR) => Scan::FinalCr,
            (Scan::LineStart, WS) => {
                return Err(ParseError::Invalid(
                    "field line starts with whitespace (obs-fold)",
                ))
            }
            (Scan::Field, CR) => Scan::FieldCr,
            (Scan::LineStart | Scan::Field, _) => Scan::Field,
            (Scan::FieldCr, _) => Scan::LineStart,
            (Scan::FinalCr, _) => {
                return Ok(Some(HeadSpan {
                    start,
                    line_end,
                    end: i + 1,
                }))
            }
        };
        // Inside a line, runs of ordinary bytes change nothing: skip them a
        // word at a time, but never past a limit, so the limit checks still
        // see the byte that crosses it.
        let limit = buf.len().min(max_head);
        i = match state {
            Scan::StartLine => {
                if i.saturating_sub(start) >= max_line {
                    return Err(ParseError::RequestLineTooLong);
                }
                skip_ordinary(buf, i + 1, limit.min(start.saturating_add(max_line)))
            }
            Scan::Field => skip_ordinary(buf, i + 1, limit),
            _ => i + 1,
        };
    }
    Ok(None)
}

/// The index of the first byte in `buf[from..end]` that is a CR, LF or other
/// control byte (HTAB aside) or DEL, or `end` when there is none (or `from`
/// when `from >= end`). Eight bytes at a time with the SWAR "has a byte less
/// than n" and "has a zero byte" tricks. In each test the lowest flagged byte is
/// exact (a borrow can only flag bytes above a real hit), so the first hit of
/// either is the lowest bit of both together: the scan jumps there, and steps
/// over it when it is an HTAB. Fewer than eight bytes left go byte by byte.
fn skip_ordinary(buf: &[u8], mut from: usize, end: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while from.saturating_add(8) <= end {
        let Some(Ok(word)) = buf.get(from..from + 8).map(<[u8; 8]>::try_from) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let below_space = x.wrapping_sub(LO * 0x20) & !x & HI;
        let d = x ^ (LO * 0x7f);
        let del = d.wrapping_sub(LO) & !d & HI;
        let hits = below_space | del;
        if hits != 0 {
            let at = from + (hits.trailing_zeros() / 8) as usize;
            if buf.get(at) != Some(&b'\t') {
                return at;
            }
            from = at + 1;
            continue;
        }
        from += 8;
    }
    while from < end {
        match buf.get(from) {
            Some(&b) if matches!(CLASS[usize::from(b)], ORD | WS) => from += 1,
            _ => break,
        }
    }
    from
}

/// How many httparse header slots fit on the stack; beyond, a Vec.
const STACK_SLOTS: usize = 128;

/// Run `f` with a slot array for httparse sized so that httparse reports
/// `TooManyHeaders` exactly when the head has more than `max_headers` field
/// lines. A field line takes at least 4 bytes ("a:" CRLF), so a head of
/// `head_len` bytes never needs more than `head_len / 4 + 1` slots: that bound
/// keeps a huge configured limit from turning into a huge allocation.
pub(crate) fn with_slots<'b, R>(
    max_headers: usize,
    head_len: usize,
    f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    let n = max_headers.min(head_len / 4 + 1);
    let mut stack: [MaybeUninit<httparse::Header<'b>>; STACK_SLOTS] =
        [const { MaybeUninit::uninit() }; STACK_SLOTS];
    match stack.get_mut(..n) {
        Some(slots) => f(slots),
        None => {
            let mut heap = Vec::with_capacity(n);
            heap.resize_with(n, MaybeUninit::uninit);
            f(&mut heap)
        }
    }
}

/// Map an httparse error that needs no context.
pub(crate) fn map_httparse(e: httparse::Error) -> ParseError {
    match e {
        httparse::Error::HeaderName => ParseError::Invalid("invalid field name"),
        httparse::Error::HeaderValue => ParseError::Invalid("invalid field value"),
        httparse::Error::NewLine => ParseError::Invalid("invalid start line"),
        httparse::Error::Status => ParseError::Invalid("invalid status line"),
        httparse::Error::Token => ParseError::Invalid("invalid start line"),
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => ParseError::Invalid("invalid HTTP version"),
    }
}

/// Message framing as the headers declare it, already validated (RFC 9112 6.1,
/// 6.3). Whether it applies depends on the message (HEAD, 204, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Neither Transfer-Encoding nor Content-Length.
    None,
    Length(u64),
    Chunked,
}

/// Everything the head parsers need from the field lines, from one pass.
#[derive(Debug)]
pub(crate) struct Fields {
    pub headers: Vec<Header>,
    pub framing: Framing,
    /// Connection options (RFC 9112 9.3, RFC 9110 7.6.1).
    pub conn_close: bool,
    pub conn_keep_alive: bool,
    pub conn_upgrade: bool,
    /// Index in `headers` of the first Host field, and how many there are.
    pub host: Option<usize>,
    pub host_count: usize,
    pub expect_continue: bool,
    /// Index in `headers` of the first Upgrade field, and how many there are.
    pub upgrade: Option<usize>,
    pub upgrade_count: usize,
}

/// Copy the field lines out of httparse's borrowed view and, in the same pass,
/// collect what framing, Host and Connection handling need. Validates framing:
/// rejects Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1), Transfer-Encoding with
/// Content-Length (RFC 9112 6.1, 6.3 rule 3: a proxy must not guess), anything
/// but a single "chunked" coding, and repeated, list-valued or non-numeric
/// Content-Length (RFC 9112 6.3 rule 5).
pub(crate) fn collect_fields(
    parsed: &[httparse::Header<'_>],
    version: Version,
) -> Result<Fields, ParseError> {
    let mut f = Fields {
        headers: Vec::with_capacity(parsed.len()),
        framing: Framing::None,
        conn_close: false,
        conn_keep_alive: false,
        conn_upgrade: false,
        host: None,
        host_count: 0,
        expect_continue: false,
        upgrade: None,
        upgrade_count: 0,
    };
    let mut cl_count = 0usize;
    let mut cl_value: Option<u64> = None;
    let mut te_count = 0usize;
    let mut te_chunked = false;

    for h in parsed {
        let name = h.name.as_bytes();
        let value = h.value;
        // Dispatch on length first: most fields match no arm after one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                f.host_count += 1;
                if f.host.is_none() {
                    f.host = Some(f.headers.len());
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect")
                && value.eq_ignore_ascii_case(b"100-continue") =>
            {
                f.expect_continue = true;
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                f.upgrade_count += 1;
                if f.upgrade.is_none() {
                    f.upgrade = Some(f.headers.len());
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in list_items(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        f.conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.conn_keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        f.conn_upgrade = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                cl_count += 1;
                if cl_count == 1 {
                    cl_value = parse_content_length(value);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                te_count += 1;
                te_chunked = value.eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
        f.headers.push(Header::new(h.name, value));
    }

    f.framing = if te_count > 0 {
        if version == Version::Http10 {
            return Err(ParseError::Invalid("Transfer-Encoding in HTTP/1.0 message"));
        }
        if cl_count > 0 {
            return Err(ParseError::Invalid(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if te_count > 1 {
            return Err(ParseError::Invalid("multiple Transfer-Encoding fields"));
        }
        if !te_chunked {
            return Err(ParseError::Invalid(
                "Transfer-Encoding is not exactly chunked",
            ));
        }
        Framing::Chunked
    } else if cl_count > 0 {
        if cl_count > 1 {
            return Err(ParseError::Invalid("duplicate Content-Length"));
        }
        match cl_value {
            Some(n) => Framing::Length(n),
            None => return Err(ParseError::Invalid("invalid Content-Length")),
        }
    } else {
        Framing::None
    };
    Ok(f)
}

/// The value of the Upgrade field(s), joined with ", " when repeated
/// (RFC 9110 7.8: a list of protocol tokens, so it must be ASCII).
pub(crate) fn upgrade_value(f: &Fields) -> Result<Option<String>, ParseError> {
    let Some(first) = f.upgrade else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for h in f
        .headers
        .iter()
        .skip(first)
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(&h.value);
    }
    if out.is_empty() || !list_items(&out).all(is_protocol) {
        return Err(ParseError::Invalid("invalid Upgrade"));
    }
    String::from_utf8(out)
        .map(Some)
        .map_err(|_| ParseError::Invalid("invalid Upgrade"))
}

/// `protocol = protocol-name ["/" protocol-version]` (RFC 9110 7.8).
fn is_protocol(p: &[u8]) -> bool {
    match p.iter().position(|&b| b == b'/') {
        Some(slash) => {
            let (name, version) = p.split_at(slash);
            is_token(name) && is_token(version.get(1..).unwrap_or(&[]))
        }
        None => is_token(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(buf: &[u8]) -> Result<Option<HeadSpan>, ParseError> {
        scan_head(buf, 8192, 65536)
    }

    #[test]
    fn finds_end_of_head() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(
            scan(buf),
            Ok(Some(HeadSpan {
                start: 0,
                line_end: 14,
                end: 27
            }))
        );
        assert_eq!(scan(&buf[..26]), Ok(None));
    }

    #[test]
    fn skips_leading_empty_lines() {
        let buf = b"\r\n\r\nGET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            scan(buf),
            Ok(Some(HeadSpan {
                start: 4,
                line_end: 18,
                end: 22
            }))
        );
        assert_eq!(
            scan(b"\n\nGET / HTTP/1.0\r\n\r\n"),
            Err(ParseError::Invalid("bare LF in head"))
        );
    }

    #[test]
    fn line_rules() {
        for (buf, reason) in [
            (&b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..], "bare LF in head"),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", "bare LF in head"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", "bare LF in head"),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", "bare CR in head"),
            (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "bare CR in head"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\rx", "bare CR in head"),
            (b"\rGET / HTTP/1.1\r\n\r\n", "bare CR in head"),
            (
                b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n",
                "control character in head",
            ),
            (
                b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
                "control character in head",
            ),
            (b"GET /\x01 HTTP/1.1\r\n\r\n", "control character in head"),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
                "field line starts with whitespace (obs-fold)",
            ),
            (
                b"GET / HTTP/1.1\r\n\tA: b\r\n\r\n",
                "field line starts with whitespace (obs-fold)",
            ),
        ] {
            assert_eq!(scan(buf), Err(ParseError::Invalid(reason)), "{buf:?}");
        }
        // HTAB inside a value is fine.
        assert!(scan(b"GET / HTTP/1.1\r\nA: b\tc\r\n\r\n")
            .unwrap()
            .is_some());
    }

    #[test]
    fn limits_apply_to_incomplete_input() {
        // Start line of exactly the limit passes, one more byte fails, even
        // before the CRLF arrives.
        assert_eq!(scan_head(b"GET /abc", 8, 100), Ok(None));
        assert_eq!(
            scan_head(b"GET /abc\r\n\r\n", 8, 100).map(|s| s.map(|s| s.end)),
            Ok(Some(12))
        );
        assert_eq!(
            scan_head(b"GET /abcd", 8, 100),
            Err(ParseError::RequestLineTooLong)
        );
        // A head of exactly the limit passes; one more byte fails.
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\n\r\n", 100, 18).map(|s| s.map(|s| s.end)),
            Ok(Some(18))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\nA", 100, 16),
            Err(ParseError::HeadersTooLarge)
        );
        assert_eq!(scan_head(b"GET / HTTP/1.1\r\n", 100, 16), Ok(None));
        // Leading empty lines count towards the head.
        assert_eq!(
            scan_head(b"\r\n\r\n\r\n\r\n\r\n", 100, 8),
            Err(ParseError::HeadersTooLarge)
        );
    }

    #[test]
    fn skip_ordinary_stops_at_specials() {
        let mut line = b"0123456789abcdef0123456789abcdef".to_vec();
        assert_eq!(skip_ordinary(&line, 0, line.len()), line.len());
        assert_eq!(skip_ordinary(&line, 3, 20), 20);
        assert_eq!(skip_ordinary(&line, 20, 3), 20);
        for special in [b'\r', b'\n', 0u8, 0x1f, 0x7f] {
            for at in 0..line.len() {
                let keep = line[at];
                line[at] = special;
                assert_eq!(skip_ordinary(&line, 0, line.len()), at, "{special} at {at}");
                line[at] = keep;
            }
        }
        // HTAB, SP and obs-text are ordinary.
        let mixed = b"a\tb c\x80\xff\x7e d\te\tf\tg\th\x20\r";
        assert_eq!(skip_ordinary(mixed, 0, mixed.len()), mixed.len() - 1);
    }

    /// Against a byte-by-byte scan, on lines mixing the bytes that border the tests
    /// (HTAB, SP, DEL's neighbours, obs-text) with a special at every place, and
    /// from every start: the jump to the lowest flagged byte must land where a
    /// byte-by-byte scan stops.
    #[test]
    fn skip_ordinary_agrees_with_a_byte_scan() {
        let reference = |buf: &[u8], from: usize, end: usize| {
            (from..end)
                .find(|&i| !matches!(CLASS[usize::from(buf[i])], ORD | WS))
                .unwrap_or(end.max(from))
        };
        let fill = [b'\t', b' ', 0x7e, 0x80, 0xff, b'a', 0x21, b'\t', 0xa0];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..2000 {
            let len = 1 + round % 40;
            let mut line: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    fill[(state % fill.len() as u64) as usize]
                })
                .collect();
            if round % 3 != 0 {
                let at = (state >> 20) as usize % len;
                line[at] = [b'\r', b'\n', 0, 0x1f, 0x7f, 0x0b][(state >> 40) as usize % 6];
            }
            for from in 0..=len {
                assert_eq!(
                    skip_ordinary(&line, from, len),
                    reference(&line, from, len),
                    "{line:?} from {from}"
                );
            }
        }
    }

    #[test]
    fn slot_sizing() {
        assert_eq!(with_slots(100, 1000, |s| s.len()), 100);
        assert_eq!(with_slots(100, 40, |s| s.len()), 11);
        assert_eq!(with_slots(usize::MAX, 400, |s| s.len()), 101);
        assert_eq!(with_slots(1000, 100_000, |s| s.len()), 1000);
        assert_eq!(with_slots(0, 100, |s| s.len()), 0);
    }
}
