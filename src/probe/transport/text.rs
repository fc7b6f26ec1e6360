//! Printable text from a peer's bytes, for errors and evidence.

/// Longest excerpt kept (characters), before the `…` that marks a cut.
pub const EXCERPT_CHARS: usize = 200;

/// A one-line excerpt of `body`: invalid UTF-8 replaced, control characters (NUL included)
/// replaced by spaces, whitespace folded, cut to [`EXCERPT_CHARS`].
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
        if out.chars().count() >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_string()
}
