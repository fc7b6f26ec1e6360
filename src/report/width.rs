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
/// spaces. A word longer than a whole line (a long path) is split where the line ends.
/// Lines carry no trailing spaces.
pub fn wrap(text: &str, width: usize, first: usize, indent: usize) -> String {
    let room = width.saturating_sub(indent).max(10);
    let mut out = String::new();
    let mut col = first;
    let mut line_empty = true;
    let newline = |out: &mut String, col: &mut usize, line_empty: &mut bool| {
        let kept = out.trim_end_matches(' ').len();
        out.truncate(kept);
        out.push('\n');
        out.push_str(&" ".repeat(indent));
        *col = indent;
        *line_empty = true;
    };
    for word in text.split(' ') {
        // A run of spaces (`a  b`) is kept, except where a line breaks.
        if word.is_empty() && line_empty && col == indent && !out.is_empty() {
            continue;
        }
        let mut word = word.to_string();
        let mut w = display_width(&word);
        if !line_empty && col + 1 + w > width {
            newline(&mut out, &mut col, &mut line_empty);
        }
        if !line_empty {
            out.push(' ');
            col += 1;
        }
        // Split a word that cannot fit on a line of its own.
        while w > room && col + w > width {
            let fits = width.saturating_sub(col).max(1);
            let (head, tail) = split_at_width(&word, fits);
            out.push_str(&head);
            word = tail;
            w = display_width(&word);
            newline(&mut out, &mut col, &mut line_empty);
        }
        out.push_str(&word);
        col += w;
        line_empty = false;
    }
    out
}

/// `s` split after `width` display columns (at least one character in the head).
fn split_at_width(s: &str, width: usize) -> (String, String) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > width && i > 0 {
            return (s[..i].to_string(), s[i..].to_string());
        }
        used += w;
    }
    (s.to_string(), String::new())
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
        // A word longer than a line is split where the line ends.
        assert_eq!(
            wrap("see /a/very/long/path/that/does/not/fit x", 14, 0, 2),
            "see\n  /a/very/long\n  /path/that/d\n  oes/not/fit\n  x"
        );
        // No trailing spaces where a double space breaks.
        assert_eq!(wrap("aaaa  bbbb", 6, 0, 0), "aaaa\nbbbb");
    }

    #[test]
    fn cuts_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(display_width(&cut("0123456789abc", 10)), 10);
    }
}
