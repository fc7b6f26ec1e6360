//! Fitting `check`'s text and `--help` to the terminal: the width is `COLUMNS` when set, else
//! the terminal's (standard output, then standard error), else [`DEFAULT_COLUMNS`]; long
//! lines wrap at spaces with a hanging indent ([`wrap`]), evidence lines are cut with an
//! ellipsis ([`cut`]). Widths are display columns (`unicode-width`), ANSI colour sequences
//! count as zero.

use unicode_width::UnicodeWidthChar;

/// The width when neither `COLUMNS` nor a terminal says.
pub const DEFAULT_COLUMNS: usize = 100;

/// Narrowest width honoured: below it lines are laid out as if 40 columns were there.
pub const MIN_COLUMNS: usize = 40;

/// The output width: `COLUMNS` (a positive number), else the terminal size of standard
/// output or standard error, else [`DEFAULT_COLUMNS`]; never below [`MIN_COLUMNS`].
pub fn columns() -> usize {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    let from_tty = || {
        terminal_size::terminal_size_of(std::io::stdout())
            .or_else(|| terminal_size::terminal_size_of(std::io::stderr()))
            .map(|(w, _)| w.0 as usize)
            .filter(|w| *w > 0)
    };
    from_env
        .or_else(from_tty)
        .unwrap_or(DEFAULT_COLUMNS)
        .max(MIN_COLUMNS)
}

/// Display width of `s`, not counting ANSI escape sequences (`ESC [ … letter`).
pub fn display_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        width += c.width().unwrap_or(0);
    }
    width
}

/// `s` cut to at most `width` display columns, its end replaced by `…` when cut. `s` holds
/// no escape sequences (evidence lines are not coloured).
pub fn cut(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` wrapped at spaces to lines of at most `width` columns: the first line starts at
/// column `first` (what precedes it on the line), the others are indented by `indent`
/// spaces. A word longer than a line stays whole on its own line.
pub fn wrap(text: &str, width: usize, first: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = first;
    let mut line_empty = true;
    for word in text.split(' ') {
        let w = display_width(word);
        if !line_empty && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        line_empty = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_with_a_hanging_indent() {
        assert_eq!(
            wrap("verdict: the password is wrong or expired", 20, 0, 4),
            "verdict: the\n    password is\n    wrong or expired"
        );
        // Colour codes take no room.
        assert_eq!(display_width("\x1b[31mFAIL\x1b[0m"), 4);
        assert_eq!(
            wrap("a-very-long-word-that-does-not-fit x", 10, 0, 2),
            "a-very-long-word-that-does-not-fit\n  x"
        );
    }

    #[test]
    fn cuts_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(display_width(&cut("0123456789abc", 10)), 10);
    }
}
