//! Printable text from a peer's bytes, for errors and evidence.

/// Longest excerpt kept (characters), before the `…` that marks a cut.
pub const EXCERPT_CHARS: usize = 200;

/// A one-line excerpt of `body`: invalid UTF-8 replaced, control characters (NUL included)
/// replaced by spaces, whitespace folded, cut to [`EXCERPT_CHARS`].
pub fn excerpt(body: &[u8]) -> String {
    let mut out = String::new();
    let mut kept = 0;
    let mut last_space = true;
    // `from_utf8_lossy`'s replacement, decoded lazily: only as much as the excerpt keeps.
    let chars = body.utf8_chunks().flat_map(|chunk| {
        let bad = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
        chunk.valid().chars().chain(bad)
    });
    for c in chars {
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
        kept += 1;
        if kept >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_string()
}
