//! The C# lexer: source text to tokens, each with the byte range it came from. It knows
//! C# literals (regular, verbatim and interpolated strings, chars with escapes, numbers
//! with suffixes), comments, and which operators exist; operators the language does not
//! support are refused here with a message that names them. It also holds the scanner
//! that skips literals and balanced brackets without tokenizing, which `expression_end`
//! and interpolation holes use. Works on bytes for structure (every delimiter is ASCII) and
//! on chars for content; never indexes outside the text.

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword (`true`, `null`, `var`, `return`... are identifiers here).
    Ident(String),
    Int(i64),
    Double(f64),
    Str(String),
    /// A char literal, kept as a one-character string.
    Char(String),
    /// An interpolated string `$"..."`.
    Interp(Vec<InterpPart>),
    P(P),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InterpPart {
    Text(String),
    /// A hole `{expr}` or `{expr:format}`: the byte range of `expr` in the source.
    Hole {
        start: usize,
        end: usize,
        format: Option<String>,
    },
}

/// Punctuation and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum P {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Semi,
    Colon,
    Question,
    QDot,
    QQ,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Assign,
    PlusAssign,
}

impl P {
    pub(crate) fn text(self) -> &'static str {
        match self {
            P::LParen => "(",
            P::RParen => ")",
            P::LBracket => "[",
            P::RBracket => "]",
            P::LBrace => "{",
            P::RBrace => "}",
            P::Dot => ".",
            P::Comma => ",",
            P::Semi => ";",
            P::Colon => ":",
            P::Question => "?",
            P::QDot => "?.",
            P::QQ => "??",
            P::Plus => "+",
            P::Minus => "-",
            P::Star => "*",
            P::Slash => "/",
            P::Percent => "%",
            P::Bang => "!",
            P::EqEq => "==",
            P::NotEq => "!=",
            P::Lt => "<",
            P::Le => "<=",
            P::Gt => ">",
            P::Ge => ">=",
            P::AndAnd => "&&",
            P::OrOr => "||",
            P::Assign => "=",
            P::PlusAssign => "+=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the first byte.
    pub at: usize,
}

/// Tokenizes `src[start..end]`; offsets stay those of `src`. The last token is `Eof` at `end`.
pub(crate) fn lex(src: &str, start: usize, end: usize) -> Result<Vec<Token>, ExprError> {
    let end = end.min(src.len());
    if start > end || !src.is_char_boundary(start) || !src.is_char_boundary(end) {
        return Err(ExprError::new(start, "invalid source range"));
    }
    let mut lx = Lexer {
        src: &src[..end],
        pos: start,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let at = lx.pos;
        match lx.next_token()? {
            Some(tok) => out.push(Token { tok, at }),
            None => {
                out.push(Token { tok: Tok::Eof, at });
                return Ok(out);
            }
        }
    }
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().nth(n))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), ExprError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let at = self.pos;
                    match self.src.get(self.pos + 2..).and_then(|s| s.find("*/")) {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return Err(ExprError::new(at, "unterminated comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Tok>, ExprError> {
        let at = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let c1 = self.peek_at(1);
        let c2 = self.peek_at(2);
        if c == '_' || c.is_alphabetic() {
            return Ok(Some(Tok::Ident(self.ident())));
        }
        if c.is_ascii_digit() || (c == '.' && c1.is_some_and(|d| d.is_ascii_digit())) {
            return self.number().map(Some);
        }
        match (c, c1, c2) {
            ('"', _, _) => {
                self.bump();
                return self.string(at, false).map(|s| Some(Tok::Str(s)));
            }
            ('@', Some('"'), _) => {
                self.pos += 2;
                return self.string(at, true).map(|s| Some(Tok::Str(s)));
            }
            ('$', Some('"'), _) => {
                self.pos += 2;
                return self.interpolated(at, false).map(Some);
            }
            ('$', Some('@'), Some('"')) | ('@', Some('$'), Some('"')) => {
                self.pos += 3;
                return self.interpolated(at, true).map(Some);
            }
            ('@', Some(d), _) if d == '_' || d.is_alphabetic() => {
                self.bump();
                return Ok(Some(Tok::Ident(self.ident())));
            }
            ('\'', _, _) => {
                self.bump();
                return self.char_literal(at).map(Some);
            }
            _ => {}
        }
        let two = |p: P, lx: &mut Lexer| {
            lx.pos += 2;
            Ok(Some(Tok::P(p)))
        };
        let one = |p: P, lx: &mut Lexer| {
            lx.pos += 1;
            Ok(Some(Tok::P(p)))
        };
        let refuse = |what: &str| Err(ExprError::new(at, what.to_string()));
        match (c, c1) {
            ('?', Some('.')) if !c2.is_some_and(|d| d.is_ascii_digit()) => two(P::QDot, self),
            ('?', Some('?')) if c2 == Some('=') => refuse("operator '??=' is not supported"),
            ('?', Some('?')) => two(P::QQ, self),
            ('=', Some('=')) => two(P::EqEq, self),
            ('=', Some('>')) => refuse("lambdas ('=>') are not supported"),
            ('!', Some('=')) => two(P::NotEq, self),
            ('<', Some('=')) => two(P::Le, self),
            ('>', Some('=')) => two(P::Ge, self),
            ('<', Some('<')) | ('>', Some('>')) => refuse("shift operators are not supported"),
            ('&', Some('&')) => two(P::AndAnd, self),
            ('|', Some('|')) => two(P::OrOr, self),
            ('+', Some('=')) => two(P::PlusAssign, self),
            ('+', Some('+')) | ('-', Some('-')) => {
                refuse("increment and decrement operators are not supported")
            }
            ('-', Some('=')) | ('*', Some('=')) | ('/', Some('=')) | ('%', Some('=')) => {
                refuse("compound assignment other than '+=' is not supported")
            }
            ('&', _) | ('|', _) | ('^', _) | ('~', _) => {
                refuse("bitwise and non-short-circuit operators are not supported")
            }
            ('(', _) => one(P::LParen, self),
            (')', _) => one(P::RParen, self),
            ('[', _) => one(P::LBracket, self),
            (']', _) => one(P::RBracket, self),
            ('{', _) => one(P::LBrace, self),
            ('}', _) => one(P::RBrace, self),
            ('.', _) => one(P::Dot, self),
            (',', _) => one(P::Comma, self),
            (';', _) => one(P::Semi, self),
            (':', _) => one(P::Colon, self),
            ('?', _) => one(P::Question, self),
            ('+', _) => one(P::Plus, self),
            ('-', _) => one(P::Minus, self),
            ('*', _) => one(P::Star, self),
            ('/', _) => one(P::Slash, self),
            ('%', _) => one(P::Percent, self),
            ('!', _) => one(P::Bang, self),
            ('<', _) => one(P::Lt, self),
            ('>', _) => one(P::Gt, self),
            ('=', _) => one(P::Assign, self),
            _ => refuse(&format!("unexpected character {c:?}")),
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '_' || c.is_alphanumeric() {
                self.bump();
            } else {
                break;
            }
        }
        self.src[start..self.pos].to_string()
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let at = self.pos;
        let b = self.src.as_bytes();
        let get = |i: usize| b.get(i).copied().unwrap_or(0);
        // Hexadecimal integers.
        if get(self.pos) == b'0' && matches!(get(self.pos + 1), b'x' | b'X') {
            self.pos += 2;
            let digits_start = self.pos;
            while get(self.pos).is_ascii_hexdigit() || get(self.pos) == b'_' {
                self.pos += 1;
            }
            let digits: String = self.src[digits_start..self.pos]
                .chars()
                .filter(|&c| c != '_')
                .collect();
            self.int_suffix();
            return u64::from_str_radix(&digits, 16)
                .ok()
                .and_then(|v| i64::try_from(v).ok())
                .map(Tok::Int)
                .ok_or_else(|| ExprError::new(at, "invalid or too large hexadecimal literal"));
        }
        let mut is_double = false;
        while get(self.pos).is_ascii_digit() || get(self.pos) == b'_' {
            self.pos += 1;
        }
        if get(self.pos) == b'.' && get(self.pos + 1).is_ascii_digit() {
            is_double = true;
            self.pos += 1;
            while get(self.pos).is_ascii_digit() || get(self.pos) == b'_' {
                self.pos += 1;
            }
        }
        if matches!(get(self.pos), b'e' | b'E') {
            let mut p = self.pos + 1;
            if matches!(get(p), b'+' | b'-') {
                p += 1;
            }
            if get(p).is_ascii_digit() {
                is_double = true;
                self.pos = p;
                while get(self.pos).is_ascii_digit() {
                    self.pos += 1;
                }
            }
        }
        let text: String = self.src[at..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        match get(self.pos) {
            b'd' | b'D' | b'f' | b'F' => {
                self.pos += 1;
                is_double = true;
            }
            b'm' | b'M' => {
                return Err(ExprError::new(at, "decimal literals are not supported"));
            }
            _ => {}
        }
        if is_double {
            return text
                .parse::<f64>()
                .map(Tok::Double)
                .map_err(|_| ExprError::new(at, "invalid number"));
        }
        self.int_suffix();
        if get(self.pos).is_ascii_alphanumeric() || get(self.pos) == b'_' {
            return Err(ExprError::new(at, "invalid number suffix"));
        }
        text.parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| ExprError::new(at, "integral constant is too large"))
    }

    fn int_suffix(&mut self) {
        let b = self.src.as_bytes();
        for _ in 0..2 {
            if matches!(b.get(self.pos), Some(b'l' | b'L' | b'u' | b'U')) {
                self.pos += 1;
            }
        }
    }

    /// The body of a string literal, after its opening quote.
    fn string(&mut self, at: usize, verbatim: bool) -> Result<String, ExprError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ExprError::new(at, "unterminated string literal"));
            };
            match c {
                '"' if verbatim && self.peek() == Some('"') => {
                    self.bump();
                    out.push('"');
                }
                '"' => return Ok(out),
                '\\' if !verbatim => self.escape(&mut out)?,
                '\n' if !verbatim => {
                    return Err(ExprError::new(at, "newline in string literal"));
                }
                c => out.push(c),
            }
        }
    }

    fn char_literal(&mut self, at: usize) -> Result<Tok, ExprError> {
        let mut out = String::new();
        match self.bump() {
            Some('\\') => self.escape(&mut out)?,
            Some('\'') | Some('\n') | None => {
                return Err(ExprError::new(at, "empty or unterminated char literal"));
            }
            Some(c) => out.push(c),
        }
        if self.bump() != Some('\'') || out.chars().count() != 1 {
            return Err(ExprError::new(
                at,
                "a char literal holds exactly one character",
            ));
        }
        Ok(Tok::Char(out))
    }

    /// One escape sequence, after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), ExprError> {
        let at = self.pos.saturating_sub(1);
        let bad = || ExprError::new(at, "unrecognized escape sequence");
        let c = self.bump().ok_or_else(bad)?;
        let simple = match c {
            '\'' => Some('\''),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '0' => Some('\0'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            return Ok(());
        }
        let code = match c {
            'u' => self.hex(4, 4).ok_or_else(bad)?,
            'U' => self.hex(8, 8).ok_or_else(bad)?,
            'x' => self.hex(1, 4).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if (0xD800..0xDC00).contains(&code) {
            // A high surrogate: C# strings are UTF-16, so "\uD83D\uDE00" is one char.
            let save = self.pos;
            if self.peek() == Some('\\') && self.peek_at(1) == Some('u') {
                self.pos += 2;
                if let Some(low) = self.hex(4, 4).filter(|l| (0xDC00..0xE000).contains(l)) {
                    let cp = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                    return Ok(());
                }
            }
            self.pos = save;
        }
        out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
        Ok(())
    }

    fn hex(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v.checked_mul(16)?.checked_add(d)?;
                    self.bump();
                    n += 1;
                }
                None => break,
            }
        }
        (n >= min).then_some(v)
    }

    fn interpolated(&mut self, at: usize, verbatim: bool) -> Result<Tok, ExprError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ExprError::new(at, "unterminated interpolated string"));
            };
            match c {
                '"' if verbatim && self.peek() == Some('"') => {
                    self.bump();
                    text.push('"');
                }
                '"' => break,
                '\\' if !verbatim => self.escape(&mut text)?,
                '\n' if !verbatim => {
                    return Err(ExprError::new(at, "newline in string literal"));
                }
                '{' if self.peek() == Some('{') => {
                    self.bump();
                    text.push('{');
                }
                '}' if self.peek() == Some('}') => {
                    self.bump();
                    text.push('}');
                }
                '}' => {
                    return Err(ExprError::new(
                        self.pos - 1,
                        "'}' in an interpolated string must be doubled",
                    ))
                }
                '{' => {
                    if !text.is_empty() {
                        parts.push(InterpPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(self.hole()?);
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(InterpPart::Text(text));
        }
        Ok(Tok::Interp(parts))
    }

    /// An interpolation hole, after its '{': the expression, an optional `:format`, '}'.
    fn hole(&mut self) -> Result<InterpPart, ExprError> {
        let start = self.pos;
        let b = self.src.as_bytes();
        let mut i = start;
        let mut stack: Vec<u8> = Vec::new();
        let unterminated = || ExprError::new(start, "unterminated interpolation hole");
        loop {
            if let Some(next) = skip_literal(b, i).map_err(|_| unterminated())? {
                i = next;
                continue;
            }
            let Some(&c) = b.get(i) else {
                return Err(unterminated());
            };
            match c {
                b'(' => stack.push(b')'),
                b'[' => stack.push(b']'),
                b'{' => stack.push(b'}'),
                b')' | b']' | b'}' if !stack.is_empty() => match stack.pop() {
                    Some(expected) if expected == c => {}
                    _ => return Err(ExprError::new(i, "mismatched bracket")),
                },
                b'}' | b':' | b',' if stack.is_empty() => break,
                b')' | b']' => return Err(ExprError::new(i, "mismatched bracket")),
                _ => {}
            }
            i += 1;
        }
        let end = i;
        if b.get(i) == Some(&b',') {
            return Err(ExprError::new(
                i,
                "alignment in interpolation holes is not supported",
            ));
        }
        let mut format = None;
        if b.get(i) == Some(&b':') {
            let fstart = i + 1;
            match self.src.get(fstart..).and_then(|s| s.find('}')) {
                Some(n) => {
                    format = Some(self.src[fstart..fstart + n].to_string());
                    i = fstart + n;
                }
                None => return Err(unterminated()),
            }
        }
        // b[i] == '}'
        self.pos = i + 1;
        Ok(InterpPart::Hole { start, end, format })
    }
}

/// If a C# string, char literal or comment starts at `b[i]`, the index just after it.
/// `Ok(None)` when none starts there; `Err` when one starts but does not end.
pub(crate) fn skip_literal(b: &[u8], i: usize) -> Result<Option<usize>, ()> {
    skip_literal_at(b, i, 0)
}

/// Interpolated strings nest code, which nests strings: bounded, so no input exhausts
/// the stack of a scan.
const MAX_SCAN_DEPTH: u32 = 32;

fn skip_literal_at(b: &[u8], i: usize, depth: u32) -> Result<Option<usize>, ()> {
    let at = |k: usize| b.get(k).copied();
    match (at(i), at(i + 1), at(i + 2)) {
        (Some(b'"'), _, _) => skip_string(b, i + 1, false, false, depth).map(Some),
        (Some(b'@'), Some(b'"'), _) => skip_string(b, i + 2, true, false, depth).map(Some),
        (Some(b'$'), Some(b'"'), _) => skip_string(b, i + 2, false, true, depth).map(Some),
        (Some(b'$'), Some(b'@'), Some(b'"')) | (Some(b'@'), Some(b'$'), Some(b'"')) => {
            skip_string(b, i + 3, true, true, depth).map(Some)
        }
        (Some(b'\''), _, _) => {
            let mut k = i + 1;
            loop {
                match at(k) {
                    None | Some(b'\n') => return Err(()),
                    Some(b'\\') => k += 2,
                    Some(b'\'') => return Ok(Some(k + 1)),
                    Some(_) => k += 1,
                }
            }
        }
        (Some(b'/'), Some(b'/'), _) => {
            let mut k = i + 2;
            while let Some(c) = at(k) {
                if c == b'\n' {
                    break;
                }
                k += 1;
            }
            Ok(Some(k))
        }
        (Some(b'/'), Some(b'*'), _) => {
            let mut k = i + 2;
            loop {
                match (at(k), at(k + 1)) {
                    (Some(b'*'), Some(b'/')) => return Ok(Some(k + 2)),
                    (None, _) => return Err(()),
                    _ => k += 1,
                }
            }
        }
        _ => Ok(None),
    }
}

/// Skips a string body starting after its opening quote.
fn skip_string(
    b: &[u8],
    mut k: usize,
    verbatim: bool,
    interpolated: bool,
    depth: u32,
) -> Result<usize, ()> {
    loop {
        let c = *b.get(k).ok_or(())?;
        match c {
            b'"' if verbatim && b.get(k + 1) == Some(&b'"') => k += 2,
            b'"' => return Ok(k + 1),
            b'\\' if !verbatim => k += 2,
            b'{' if interpolated && b.get(k + 1) == Some(&b'{') => k += 2,
            b'{' if interpolated => k = skip_balanced_at(b, k + 1, b'}', depth + 1)?,
            _ => k += 1,
        }
    }
}

/// Scans C# code from `b[i]` to the `close` byte that balances an already opened bracket,
/// skipping literals and comments; returns the index just after it.
pub(crate) fn skip_balanced(b: &[u8], i: usize, close: u8) -> Result<usize, ()> {
    skip_balanced_at(b, i, close, 0)
}

fn skip_balanced_at(b: &[u8], mut i: usize, close: u8, depth: u32) -> Result<usize, ()> {
    if depth > MAX_SCAN_DEPTH {
        return Err(());
    }
    let mut stack: Vec<u8> = vec![close];
    loop {
        if let Some(next) = skip_literal_at(b, i, depth)? {
            i = next;
            continue;
        }
        let c = *b.get(i).ok_or(())?;
        match c {
            b'(' => stack.push(b')'),
            b'[' => stack.push(b']'),
            b'{' => stack.push(b'}'),
            b')' | b']' | b'}' => {
                if stack.pop() != Some(c) {
                    return Err(());
                }
                if stack.is_empty() {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src, 0, src.len())
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn err(src: &str) -> ExprError {
        lex(src, 0, src.len()).unwrap_err()
    }

    #[test]
    fn identifiers_numbers_and_operators() {
        assert_eq!(
            toks("a.b?.c ?? 1 >= 2.5e1"),
            vec![
                Tok::Ident("a".into()),
                Tok::P(P::Dot),
                Tok::Ident("b".into()),
                Tok::P(P::QDot),
                Tok::Ident("c".into()),
                Tok::P(P::QQ),
                Tok::Int(1),
                Tok::P(P::Ge),
                Tok::Double(25.0),
                Tok::Eof,
            ]
        );
        assert_eq!(toks("10L 0x1F 1_000 2d .5"), {
            vec![
                Tok::Int(10),
                Tok::Int(31),
                Tok::Int(1000),
                Tok::Double(2.0),
                Tok::Double(0.5),
                Tok::Eof,
            ]
        });
        // `?.` before a digit is a conditional and a number, as in C#.
        assert_eq!(
            toks("a?.5:1"),
            vec![
                Tok::Ident("a".into()),
                Tok::P(P::Question),
                Tok::Double(0.5),
                Tok::P(P::Colon),
                Tok::Int(1),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\t\u0041\x42""#),
            vec![Tok::Str("a\"b\\c\n\tAB".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""\uD83D\uDE00""#),
            vec![Tok::Str("😀".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#"@"c:\dir ""q""""#),
            vec![Tok::Str("c:\\dir \"q\"".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r"'a' '\'' ')'"),
            vec![
                Tok::Char("a".into()),
                Tok::Char("'".into()),
                Tok::Char(")".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn interpolated_strings() {
        let src = r#"$"a{x}b{{c}}{y:yyyy}""#;
        let t = toks(src);
        let Tok::Interp(parts) = &t[0] else {
            panic!("{t:?}")
        };
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], InterpPart::Text("a".into()));
        assert_eq!(
            parts[1],
            InterpPart::Hole {
                start: 4,
                end: 5,
                format: None
            }
        );
        assert_eq!(parts[2], InterpPart::Text("b{c}".into()));
        assert!(matches!(&parts[3], InterpPart::Hole { format: Some(f), .. } if f == "yyyy"));
        // Strings and braces inside holes.
        let t = toks(r#"$"{ d["k"] }""#);
        assert!(matches!(&t[0], Tok::Interp(p) if p.len() == 1));
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            toks("1 // one\n + /* two */ 2"),
            vec![Tok::Int(1), Tok::P(P::Plus), Tok::Int(2), Tok::Eof]
        );
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(err("1 + \"abc").offset, 4);
        assert_eq!(err("a & b").offset, 2);
        assert!(err("x => x").message.contains("lambda"));
        assert_eq!(err("  #").offset, 2);
        assert!(err("'ab'").message.contains("one character"));
        assert!(err("99999999999999999999").message.contains("too large"));
        assert!(err(r#""\q""#).message.contains("escape"));
        assert!(err("/* open").message.contains("comment"));
        assert!(err("1.5m").message.contains("decimal"));
    }

    #[test]
    fn sub_range_keeps_offsets() {
        let src = "xx(a + b)yy";
        let t = lex(src, 3, 8).unwrap();
        assert_eq!(t[0].at, 3);
        assert_eq!(t[2].at, 7);
        assert_eq!(t.last().unwrap().at, 8);
    }

    #[test]
    fn balanced_scan() {
        let b = br#"a("x)", ')', (b[1]) /* ) */) tail"#;
        assert_eq!(skip_balanced(b, 2, b')'), Ok(28));
        assert_eq!(skip_balanced(b"(]", 1, b')'), Err(()));
        assert_eq!(skip_balanced(b"\"open", 0, b')'), Err(()));
        // Nested interpolations are bounded.
        let deep = format!("{}1{})", "$\"{".repeat(10_000), "}\"".repeat(10_000));
        assert_eq!(skip_balanced(deep.as_bytes(), 0, b')'), Err(()));
        let ok = format!("{}1{})", "$\"{".repeat(5), "}\"".repeat(5));
        assert_eq!(skip_balanced(ok.as_bytes(), 0, b')'), Ok(ok.len()));
    }
}
