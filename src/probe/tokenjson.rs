//! A token service's 2xx answer decoded as containerd decodes it: Go's `encoding/json`
//! `Decoder.Decode` into containerd's response structs (`core/remotes/docker/auth/fetch.go`:
//! `OAuthTokenResponse` for the POST of `FetchTokenWithOAuth`, `FetchTokenResponse` for the GET
//! of `FetchToken`).
//!
//! A small decoder of its own rather than serde: the rules that decide whether containerd's pull
//! goes on are Go's, and serde's differ on most of them.
//!
//! * Only the first JSON value of the body is read; bytes after it are ignored (`Decode`).
//!   The whole value is checked for syntax first (`Decoder.readValue`): a syntax error anywhere
//!   fails, even in a key nobody reads.
//! * Keys match the struct's `json` tags exactly or case-insensitively (Go's `foldName`: ASCII
//!   case, and `ſ` → `S`, `K` (Kelvin) → `K`, `İ`/`ı` → `I`), after unescaping. Unknown keys are
//!   skipped. A repeated key is decoded again: the last value wins, and `null` leaves the
//!   previous value in place.
//! * `token`, `access_token`, `refresh_token`, `scope` are Go `string`s: a JSON string (escapes
//!   decoded, invalid UTF-8 and lone surrogates become U+FFFD) or `null`; any other type is an
//!   `UnmarshalTypeError`, which fails the decode once the value is read.
//! * `expires_in` is a Go `int`: a JSON number `strconv.ParseInt` accepts (no fraction, no
//!   exponent, within 64 bits), or `null`.
//! * `issued_at` is a `time.Time`: `Time.UnmarshalJSON` takes `null`, or a JSON string whose raw
//!   bytes are an RFC 3339 date-time (`time.parseStrictRFC3339`); anything else fails the decode
//!   at once.
//! * The top-level value must be an object or `null` (`null` decodes to the zero struct).
//!
//! Nesting deeper than Go's 10000 levels is an error, as in Go's scanner. No message quotes a
//! value from the body (a token is a secret).

/// Which of containerd's structs the body is decoded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `OAuthTokenResponse` (the POST answer): `access_token`, `refresh_token`, `expires_in`,
    /// `issued_at`, `scope`.
    OAuth,
    /// `FetchTokenResponse` (the GET answer): `token`, `access_token`, `expires_in`,
    /// `issued_at`, `refresh_token`.
    Fetch,
}

/// The decoded fields. `None`: the key was absent (or only `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFields {
    /// `token` (GET only).
    pub token: Option<String>,
    /// `access_token`.
    pub access_token: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `expires_in`, seconds.
    pub expires_in: Option<i64>,
    /// `issued_at`, as sent (validated as RFC 3339).
    pub issued_at: Option<String>,
    /// `scope` (POST only).
    pub scope: Option<String>,
}

/// Why Go's decoder refuses the body. No variant carries a value from the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoJsonError {
    /// Not JSON (Go's `SyntaxError`), at byte `offset`.
    #[error("invalid JSON at byte {offset}")]
    Syntax {
        /// 0-based byte offset.
        offset: usize,
    },
    /// The body ends inside the value (Go's `unexpected EOF`) or holds none (`EOF`).
    #[error("unexpected end of JSON input")]
    Eof,
    /// Nested more than 10000 levels (Go's "exceeded max depth").
    #[error("exceeded max depth")]
    TooDeep,
    /// The top-level value is not an object (nor `null`).
    #[error("json: cannot unmarshal {found} into Go value of type auth.{go_struct}")]
    TopLevel {
        /// The JSON type found (`array`, `string`, `number`, `bool`).
        found: &'static str,
        /// `OAuthTokenResponse` or `FetchTokenResponse`.
        go_struct: &'static str,
    },
    /// A field of the wrong type (Go's `UnmarshalTypeError`).
    #[error(
        "json: cannot unmarshal {found} into Go struct field {go_struct}.{field} of type {go_type}"
    )]
    Field {
        /// The `json` tag of the field.
        field: &'static str,
        /// The JSON type found (`number` also for a number `int` refuses).
        found: &'static str,
        /// `string` or `int`.
        go_type: &'static str,
        /// `OAuthTokenResponse` or `FetchTokenResponse`.
        go_struct: &'static str,
    },
    /// `issued_at` is not `null` nor an RFC 3339 string (`Time.UnmarshalJSON`).
    #[error("issued_at: {0}")]
    IssuedAt(&'static str),
}

/// Go's maximum nesting depth (`encoding/json/scanner.go` `maxNestingDepth`).
const MAX_DEPTH: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Token,
    AccessToken,
    RefreshToken,
    ExpiresIn,
    IssuedAt,
    Scope,
}

impl Field {
    fn tag(self) -> &'static str {
        match self {
            Field::Token => "token",
            Field::AccessToken => "access_token",
            Field::RefreshToken => "refresh_token",
            Field::ExpiresIn => "expires_in",
            Field::IssuedAt => "issued_at",
            Field::Scope => "scope",
        }
    }
}

impl Shape {
    fn fields(self) -> &'static [Field] {
        match self {
            Shape::OAuth => &[
                Field::AccessToken,
                Field::RefreshToken,
                Field::ExpiresIn,
                Field::IssuedAt,
                Field::Scope,
            ],
            Shape::Fetch => &[
                Field::Token,
                Field::AccessToken,
                Field::ExpiresIn,
                Field::IssuedAt,
                Field::RefreshToken,
            ],
        }
    }

    fn go_struct(self) -> &'static str {
        match self {
            Shape::OAuth => "OAuthTokenResponse",
            Shape::Fetch => "FetchTokenResponse",
        }
    }
}

/// Decodes `body` as `json.NewDecoder(body).Decode(&resp)` does for `shape`.
///
/// Errors: [`GoJsonError`], in Go's precedence: a syntax error (or end of input) anywhere in the
/// first value, else an `issued_at` error, else the first type error.
pub fn decode(body: &[u8], shape: Shape) -> Result<TokenFields, GoJsonError> {
    let mut p = Parser { b: body, i: 0 };
    p.ws();
    if p.i >= p.b.len() {
        return Err(GoJsonError::Eof);
    }
    // Go checks the whole value's syntax before decoding any of it.
    let start = p.i;
    p.skip_value()?;
    let mut p = Parser { b: body, i: start };
    let mut out = TokenFields::default();
    match p.b[p.i] {
        b'{' => {}
        b'n' => return Ok(out),
        c => {
            return Err(GoJsonError::TopLevel {
                found: kind_of(c),
                go_struct: shape.go_struct(),
            })
        }
    }
    p.i += 1;
    let mut type_error: Option<GoJsonError> = None;
    let mut time_error: Option<GoJsonError> = None;
    loop {
        p.ws();
        if p.b[p.i] == b'}' {
            break;
        }
        if p.b[p.i] == b',' {
            p.i += 1;
            p.ws();
        }
        let key = p.string()?;
        p.ws();
        p.i += 1; // ':'
        p.ws();
        let field = shape
            .fields()
            .iter()
            .copied()
            .find(|f| fold_eq(&key, f.tag()));
        let value_start = p.i;
        p.skip_value()?;
        let raw = &body[value_start..p.i];
        let Some(field) = field else { continue };
        if raw == b"null" {
            continue;
        }
        let mismatch = |go_type| GoJsonError::Field {
            field: field.tag(),
            found: kind_of(raw[0]),
            go_type,
            go_struct: shape.go_struct(),
        };
        match field {
            Field::ExpiresIn => match parse_go_int(raw) {
                Some(n) => out.expires_in = Some(n),
                None => {
                    type_error.get_or_insert(mismatch("int"));
                }
            },
            Field::IssuedAt => {
                if raw.len() < 2 || raw[0] != b'"' || raw[raw.len() - 1] != b'"' {
                    time_error.get_or_insert(GoJsonError::IssuedAt(
                        "Time.UnmarshalJSON: input is not a JSON string",
                    ));
                } else if !is_rfc3339(&raw[1..raw.len() - 1]) {
                    time_error
                        .get_or_insert(GoJsonError::IssuedAt("cannot parse the value as RFC 3339"));
                } else {
                    out.issued_at =
                        Some(String::from_utf8_lossy(&raw[1..raw.len() - 1]).into_owned());
                }
            }
            _ if raw[0] != b'"' => {
                type_error.get_or_insert(mismatch("string"));
            }
            _ => {
                let text = Parser { b: raw, i: 0 }.string()?;
                let slot = match field {
                    Field::Token => &mut out.token,
                    Field::AccessToken => &mut out.access_token,
                    Field::RefreshToken => &mut out.refresh_token,
                    _ => &mut out.scope,
                };
                *slot = Some(text);
            }
        }
        if time_error.is_some() {
            // `Time.UnmarshalJSON`'s error ends the decode at once.
            break;
        }
    }
    match time_error.or(type_error) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The JSON type a value starting with `c` has, in Go's words.
fn kind_of(c: u8) -> &'static str {
    match c {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "bool",
        _ => "number",
    }
}

/// Go's `foldName` equality for an ASCII `tag`: ASCII letters without case, and the four
/// non-ASCII runes whose `unicode.ToUpper(unicode.ToLower(r))` is an ASCII letter.
fn fold_eq(key: &str, tag: &str) -> bool {
    let mut k = key.chars();
    for t in tag.bytes() {
        let Some(c) = k.next() else { return false };
        let folded = match c {
            '\u{17F}' => 'S',
            '\u{212A}' => 'K',
            '\u{130}' | '\u{131}' => 'I',
            c if c.is_ascii() => c.to_ascii_uppercase(),
            _ => return false,
        };
        if folded != (t as char).to_ascii_uppercase() {
            return false;
        }
    }
    k.next().is_none()
}

/// `strconv.ParseInt(s, 10, 64)` on a JSON number's text: an optional `-`, digits, in range.
fn parse_go_int(raw: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(raw).ok()?;
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    text.parse::<i64>().ok()
}

/// Go's `time.parseStrictRFC3339` on the raw bytes between the quotes:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, fields in range (the day within its month).
pub fn is_rfc3339(s: &[u8]) -> bool {
    let num = |r: std::ops::Range<usize>, lo: u32, hi: u32| -> Option<u32> {
        let part = s.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        (lo..=hi).contains(&n).then_some(n)
    };
    if s.len() < 20 {
        return false;
    }
    let (Some(year), Some(month)) = (num(0..4, 0, 9999), num(5..7, 1, 12)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let fields_ok = num(8..10, 1, days).is_some()
        && num(11..13, 0, 23).is_some()
        && num(14..16, 0, 59).is_some()
        && num(17..19, 0, 59).is_some();
    if !fields_ok || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':'
    {
        return false;
    }
    let mut rest = &s[19..];
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let n = 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        rest = &rest[n..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            };
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, GoJsonError> {
        self.b.get(self.i).copied().ok_or(GoJsonError::Eof)
    }

    fn syntax(&self) -> GoJsonError {
        GoJsonError::Syntax { offset: self.i }
    }

    /// Skips one value, checking its syntax as Go's scanner does (iteratively: a deep body
    /// cannot overflow the stack).
    fn skip_value(&mut self) -> Result<(), GoJsonError> {
        // Open containers: `true` for an object.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // A value.
            self.ws();
            match self.peek()? {
                b'{' | b'[' => {
                    let object = self.b[self.i] == b'{';
                    stack.push(object);
                    if stack.len() > MAX_DEPTH {
                        return Err(GoJsonError::TooDeep);
                    }
                    self.i += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.i += 1;
                        stack.pop();
                    } else {
                        if object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(self.syntax()),
            }
            // After a value: close containers, or a `,` and the next value.
            loop {
                let Some(&object) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if object => {
                        self.i += 1;
                        stack.pop();
                    }
                    b']' if !object => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return Err(self.syntax()),
                }
            }
        }
    }

    /// `"key"` and `:` of an object member.
    fn member_key(&mut self) -> Result<(), GoJsonError> {
        if self.peek()? != b'"' {
            return Err(self.syntax());
        }
        self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return Err(self.syntax());
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), GoJsonError> {
        for &w in word {
            if self.peek()? != w {
                return Err(self.syntax());
            }
            self.i += 1;
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), GoJsonError> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(self.syntax()),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.peek()?;
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek()?, b'+' | b'-') {
                self.i += 1;
            }
            self.peek()?;
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        Ok(())
    }

    /// A string, unescaped as Go's `unquote` does (invalid UTF-8 and lone surrogates become
    /// U+FFFD). Control characters below U+0020 and unknown escapes are syntax errors.
    fn string(&mut self) -> Result<String, GoJsonError> {
        if self.peek()? != b'"' {
            return Err(self.syntax());
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(String::from_utf8(out)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek()?;
                    self.i += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(GoJsonError::Syntax { offset: self.i - 1 }),
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let first = self.hex4()?;
                    let ch = if (0xD800..0xDC00).contains(&first)
                        && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                    {
                        // A pair only if the next escape is a low surrogate; else U+FFFD and the
                        // next escape stands alone (Go's `utf16.DecodeRune`).
                        let save = self.i;
                        self.i += 2;
                        let second = self.hex4()?;
                        if (0xDC00..0xE000).contains(&second) {
                            char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                        } else {
                            self.i = save;
                            None
                        }
                    } else {
                        char::from_u32(first)
                    };
                    let ch = ch.unwrap_or('\u{FFFD}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1F => return Err(self.syntax()),
                _ => {
                    // The run of plain bytes up to the next quote, escape or control byte, at
                    // once (a token is a kilobyte or more of them).
                    let rest = &self.b[self.i..];
                    let run = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                    let run = rest[..run].iter().position(|&b| b < 0x20).unwrap_or(run);
                    out.extend_from_slice(&rest[..run]);
                    self.i += run;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, GoJsonError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let c = self.peek()?;
            let d = (c as char).to_digit(16).ok_or_else(|| self.syntax())?;
            n = n * 16 + d;
            self.i += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
