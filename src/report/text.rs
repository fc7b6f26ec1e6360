//! `regprobe check` text output: the diagnosis of [`crate::report::diagnosis`], one step per
//! line (mark, step, time, what happened), the evidence under a failing step (the server's
//! status, error code and message, its challenge), then the verdict and the fix.
//!
//! With `style.color` the marks are coloured symbols `✓ ✗ ! – ·` (a terminal); without, the
//! words `ok FAIL warn skip -` (a pipe or a file), so the output greps and diffs well. With
//! `style.verbose` every exchange of every step is shown, with the request facts known
//! (`Authorization: Basic <redacted>`). Nothing printed here comes from a credential:
//! [`ProbeResult`] and the diagnosis hold none.

use crate::plan::Skipped;
use crate::probe::{Phase, ProbeResult};
use crate::report::diagnosis::{ExchangeView, ImageDiagnosis, Mark, Step, Verdict, Walk};
use crate::report::width::{cut, wrap, DEFAULT_COLUMNS};
use std::borrow::Cow;
use std::fmt::Write;

/// How to render.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colours and symbols (a terminal that did not set `NO_COLOR`).
    pub color: bool,
    /// Also print every HTTP exchange (method, URL, status, challenge, error, and which
    /// credential the request carried, redacted).
    pub verbose: bool,
    /// Columns to fit ([`crate::report::width::columns`]).
    pub width: usize,
}

impl Default for Style {
    /// Plain words, not verbose, [`DEFAULT_COLUMNS`] wide.
    fn default() -> Self {
        Style {
            color: false,
            verbose: false,
            width: DEFAULT_COLUMNS,
        }
    }
}

/// `s` with every control character (C0 but the space, DEL, C1) escaped as `\xNN` /
/// `\u{NN}`: what a peer or a secret wrote reaches the terminal as text, never as a command.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn paint(style: Style, code: &str, text: &str) -> String {
    if style.color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// Formats seconds as `12ms` or `1.20s`.
pub fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else {
        format!("{s:.2}s")
    }
}

/// The first line of a probe: mark, registry, secret, image, user, auth mode, time, and on
/// failure `reason (class)`.
pub fn header_line(r: &ProbeResult, style: Style) -> String {
    let mark = match (r.success, style.color) {
        (true, true) => paint(style, GREEN, "✓"),
        (false, true) => paint(style, RED, "✗"),
        (true, false) => "ok".into(),
        (false, false) => "FAIL".into(),
    };
    let registry = if r.registry.is_empty() {
        "(secret)"
    } else {
        &r.registry
    };
    let mut head = format!("{mark} {}", paint(style, BOLD, &clean(registry)));
    if let Some(s) = &r.secret {
        let _ = write!(head, "  secret={}", clean(s));
    }
    if let Some(i) = &r.image {
        let _ = write!(head, "  image={}", clean(i));
    }
    if let Some(u) = &r.username {
        let _ = write!(head, "  user={}", clean(u));
    }
    if let Some(m) = &r.auth_mode {
        let _ = write!(head, "  auth={m}");
    }
    let _ = write!(head, "  {}", fmt_secs(r.duration_seconds));
    if let (Some(reason), Some(class)) = (r.reason, r.class) {
        let _ = write!(
            head,
            "  {}",
            paint(style, RED, &format!("{reason} ({class})"))
        );
    }
    head
}

/// [`header_line`] wrapped to the width, continuation lines indented by 4.
fn header_block(r: &ProbeResult, style: Style) -> String {
    wrap(&header_line(r, style), style.width, 0, 4)
}

fn phases_line(r: &ProbeResult) -> Option<String> {
    if r.phases.is_empty() {
        return None;
    }
    let phases: Vec<String> = Phase::ALL
        .iter()
        .filter_map(|p| r.phases.get(p).map(|s| format!("{p} {}", fmt_secs(*s))))
        .collect();
    Some(format!("phases: {}", phases.join(" · ")))
}

/// Width of the mark column: plain words (`FAIL`), or a symbol in colour.
fn mark_width(style: Style) -> usize {
    if style.color {
        2
    } else {
        6
    }
}
/// Width of the step label column.
const LABEL_WIDTH: usize = 10;
/// Width of the time column.
const TIME_WIDTH: usize = 6;

fn mark_cell(mark: Mark, style: Style) -> String {
    let (symbol, word, code) = match mark {
        Mark::Ok => ("✓", "ok", GREEN),
        Mark::Fail => ("✗", "FAIL", RED),
        Mark::Warn => ("!", "warn", YELLOW),
        Mark::Skip => ("–", "skip", DIM),
        Mark::NotReached => ("·", "-", DIM),
    };
    let text = if style.color { symbol } else { word };
    let pad = mark_width(style).saturating_sub(text.chars().count());
    format!("{}{}", paint(style, code, text), " ".repeat(pad))
}

fn exchange_lines(v: &ExchangeView, verbose: bool) -> Vec<String> {
    let e = &v.exchange;
    let mut line = format!(
        "{}{}",
        e.phase.map(|p| format!("[{p}] ")).unwrap_or_default(),
        clean(&e.summary())
    );
    if v.repeated > 1 {
        let _ = write!(line, "  (×{})", v.repeated);
    }
    let mut out = vec![line];
    if verbose {
        out.extend(v.request.iter().map(|r| format!("  {}", clean(r))));
        out.extend(
            e.response_headers
                .iter()
                .map(|(k, val)| format!("  < {}: {}", clean(k), clean(val))),
        );
    }
    if let Some(ch) = &e.challenge {
        out.push(format!("  WWW-Authenticate: {}", clean(ch)));
    }
    out
}

/// Renders the steps of a walk, `indent` spaces in. Consecutive steps that were not reached
/// share one line.
pub fn render_steps(steps: &[Step], style: Style, indent: usize) -> String {
    let mut out = String::new();
    let pad = " ".repeat(indent);
    let detail_pad = " ".repeat(indent + mark_width(style) + LABEL_WIDTH + TIME_WIDTH + 2);
    let mut i = 0;
    while i < steps.len() {
        let s = &steps[i];
        if s.mark == Mark::NotReached {
            let mut labels = vec![s.step.label()];
            while i + 1 < steps.len() && steps[i + 1].mark == Mark::NotReached {
                i += 1;
                labels.push(steps[i].step.label());
            }
            let _ = writeln!(
                out,
                "{pad}{}{}",
                mark_cell(Mark::NotReached, style),
                paint(style, DIM, &format!("{}: not reached", labels.join(", ")))
            );
            i += 1;
            continue;
        }
        let time = s.seconds.map(fmt_secs).unwrap_or_default();
        let _ = writeln!(
            out,
            "{pad}{}{:<lw$}{:>tw$}  {}",
            mark_cell(s.mark, style),
            s.step.label(),
            time,
            wrap(
                &clean(&s.summary),
                style.width,
                detail_pad.len(),
                detail_pad.len()
            ),
            lw = LABEL_WIDTH,
            tw = TIME_WIDTH
        );
        // Evidence is cut to the width (all of it with -v).
        let fit = |line: &str| {
            if style.verbose {
                line.to_string()
            } else {
                cut(line, style.width.saturating_sub(detail_pad.len()))
            }
        };
        for e in &s.evidence {
            let _ = writeln!(out, "{detail_pad}{}", fit(&clean(e)));
        }
        let shown = if style.verbose {
            &s.all_exchanges
        } else {
            &s.exchanges
        };
        for v in shown {
            for line in exchange_lines(v, style.verbose) {
                let _ = writeln!(out, "{detail_pad}{}", fit(&line));
            }
        }
        i += 1;
    }
    out
}

/// Renders a verdict: `verdict:` with the class and reason, `fix:` with the next step, and
/// `also:` lines.
pub fn render_verdict(v: &Verdict, style: Style, indent: usize, label: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let hang = indent + 4;
    let line = |head: String, text: &str| {
        format!(
            "{pad}{}",
            wrap(
                &format!("{head} {}", clean(text)),
                style.width,
                indent,
                hang
            )
        )
    };
    if v.ok {
        let head = format!("{label}: {}:", paint(style, GREEN, "ok"));
        let _ = writeln!(out, "{}", line(head, &v.summary));
    } else {
        let what = match (v.class, v.reason) {
            (Some(c), Some(r)) => format!("FAIL {c} ({r})"),
            _ => "FAIL".to_string(),
        };
        let head = format!("{label}: {}:", paint(style, RED, &what));
        let _ = writeln!(out, "{}", line(head, &v.summary));
    }
    if !v.next.is_empty() {
        let _ = writeln!(out, "{}", line(paint(style, YELLOW, "fix:"), &v.next));
    }
    for a in &v.also {
        let _ = writeln!(out, "{}", line(paint(style, YELLOW, "also:"), a));
    }
    out
}

fn render_notes(r: &ProbeResult, style: Style, out: &mut String) {
    for n in r.notes.iter().filter(|n| {
        style.verbose
            || matches!(
                n,
                crate::probe::Note::InsecureRealm(_)
                    | crate::probe::Note::ContainerdConfigCredential(_)
            )
    }) {
        let note = format!("{} {}", paint(style, DIM, "note:"), clean(&n.to_string()));
        let _ = writeln!(out, "    {}", wrap(&note, style.width, 4, 10));
    }
}

/// Renders the diagnosis of one credential probe (or of a secret that does not parse): the
/// probe's header line, its phase times, the steps, the verdict.
pub fn render_walk(r: &ProbeResult, walk: &Walk, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", header_block(r, style));
    if let Some(p) = phases_line(r) {
        let _ = writeln!(out, "    {}", wrap(&p, style.width, 4, 12));
    }
    out.push_str(&render_steps(&walk.steps, style, 4));
    out.push_str(&render_verdict(&walk.verdict, style, 4, "verdict"));
    render_notes(r, style, &mut out);
    out
}

/// Renders the diagnosis of one image: its pod, secrets, keys and keyring lookup, each
/// credential attempt kubelet makes, and the verdict. `pulls` are the attempts' results.
pub fn render_image_diagnosis(d: &ImageDiagnosis, pulls: &[&ProbeResult], style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", paint(style, BOLD, "image"), clean(&d.image));
    if let Some(w) = &d.workload {
        let text = format!(
            "in {}{}",
            clean(w),
            if d.containers.is_empty() {
                String::new()
            } else {
                format!(" · {}", clean(&d.containers.join(", ")))
            }
        );
        let _ = writeln!(out, "  {}", wrap(&text, style.width, 2, 4));
    }
    out.push_str(&render_steps(&d.steps, style, 4));
    let n = d.attempts.len();
    for (i, a) in d.attempts.iter().enumerate() {
        let title = format!("attempt {} of {n}: {}", i + 1, clean(&a.title));
        let _ = writeln!(out, "  {}", wrap(&title, style.width, 2, 4));
        out.push_str(&render_steps(&a.steps, style, 4));
        if n > 1 {
            out.push_str(&render_verdict(&a.verdict, style, 4, "result"));
        }
        if let Some(r) = pulls.get(i) {
            render_notes(r, style, &mut out);
        }
    }
    out.push_str(&render_verdict(&d.verdict, style, 2, "verdict"));
    out
}

/// Renders what `check` lists after the walks: entries not probed, warnings, and the summary.
pub fn render_footer(
    skipped: &[Skipped],
    warnings: &[String],
    summary: &str,
    failed: bool,
    style: Style,
) -> String {
    let mut out = String::new();
    for s in skipped {
        let line = format!(
            "{} {}  secret={}  {}",
            paint(style, DIM, if style.color { "–" } else { "skip" }),
            if s.registry.is_empty() {
                "(none)".into()
            } else {
                clean(&s.registry)
            },
            clean(&s.secret),
            clean(&s.why)
        );
        let _ = writeln!(out, "{}", wrap(&line, style.width, 0, 4));
    }
    for w in warnings {
        let line = format!("{} {}", paint(style, YELLOW, "warning:"), clean(w));
        let _ = writeln!(out, "{}", wrap(&line, style.width, 0, 4));
    }
    let _ = writeln!(
        out,
        "{}",
        paint(style, if failed { RED } else { GREEN }, summary)
    );
    out
}

/// One line for a credential probe (`check --output short`): mark, registry, secret, user,
/// time, and on failure `reason (class): what the verdict says`, cut to the width.
pub fn render_short(r: &ProbeResult, walk: &Walk, style: Style) -> String {
    let mark = mark_cell(if r.success { Mark::Ok } else { Mark::Fail }, style);
    let registry = if r.registry.is_empty() {
        "(secret)"
    } else {
        &r.registry
    };
    let mut line = clean(registry).into_owned();
    if let Some(s) = &r.secret {
        let _ = write!(line, "  secret={}", clean(s));
    }
    if let Some(u) = &r.username {
        let _ = write!(line, "  user={}", clean(u));
    }
    let _ = write!(line, "  {}", fmt_secs(r.duration_seconds));
    if let (Some(reason), Some(class)) = (r.reason, r.class) {
        let _ = write!(
            line,
            "  {reason} ({class}): {}",
            clean(&walk.verdict.summary)
        );
    }
    format!(
        "{mark}{}",
        cut(&line, style.width.saturating_sub(mark_width(style)))
    )
}

/// One line for an image (`check --output short`): mark, image, and when it would not pull
/// the verdict's class, reason and summary, cut to the width.
pub fn render_image_short(d: &ImageDiagnosis, style: Style) -> String {
    let mark = mark_cell(if d.pullable { Mark::Ok } else { Mark::Fail }, style);
    let mut line = format!("image {}", clean(&d.image));
    if let Some(w) = &d.workload {
        let _ = write!(line, "  in {}", clean(w));
    }
    let v = &d.verdict;
    match (v.ok, v.class, v.reason) {
        (true, _, _) => {
            let _ = write!(line, "  {}", clean(&v.summary));
        }
        (false, Some(c), Some(r)) => {
            let _ = write!(line, "  {r} ({c}): {}", clean(&v.summary));
        }
        (false, _, _) => {
            let _ = write!(line, "  {}", clean(&v.summary));
        }
    }
    format!(
        "{mark}{}",
        cut(&line, style.width.saturating_sub(mark_width(style)))
    )
}

/// `3 probes, 1 ok, 2 failed`.
pub fn probes_summary(results: &[ProbeResult]) -> String {
    let failed = results.iter().filter(|r| !r.success).count();
    format!(
        "{} probe{}, {} ok, {} failed",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        results.len() - failed,
        failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::failure::{Failed, Failure};
    use crate::probe::{Class, Exchange, Reason};
    use crate::report::diagnosis::{diagnose_credential, Context};

    fn failing() -> ProbeResult {
        let mut r = ProbeResult::new("registry.test:5000", Some("bad".into()));
        r.reason = Some(Reason::Unauthorized);
        r.class = Some(Class::Credential);
        r.username = Some("ci-bot".into());
        r.auth_mode = Some(crate::probe::AuthMode::Bearer);
        r.endpoint = Some("https://registry.test:5000/v2/".into());
        r.detail = "the token service rejected user `ci-bot` with 401".into();
        r.add_phase(Phase::Resolve, 0.001);
        r.add_phase(Phase::Token, 0.040);
        r.exchanges.push(Exchange {
            phase: Some(Phase::Challenge),
            method: "GET".into(),
            url: "https://registry.test:5000/v2/".into(),
            status: Some(401),
            challenge: Some("Bearer realm=\"https://auth.test/token\"".into()),
            error_code: None,
            error_message: None,
            response_headers: vec![],
        });
        r.exchanges.push(Exchange {
            phase: Some(Phase::Token),
            method: "GET".into(),
            url: "https://auth.test/token?service=s".into(),
            status: Some(401),
            challenge: None,
            error_code: Some("UNAUTHORIZED".into()),
            error_message: Some("authentication required".into()),
            response_headers: vec![],
        });
        r.failed = Some(Failed {
            failure: Failure::TokenStatus {
                status: 401,
                with_credential: true,
            },
            step: Some(Phase::Token),
            host: "auth.test".into(),
            credential_sent: true,
            exchange: Some(1),
        });
        r
    }

    /// Rendered wide enough that nothing wraps (fitting is tested in `report::width`).
    fn walk(r: &ProbeResult, style: Style) -> String {
        let style = Style {
            width: 1000,
            ..style
        };
        render_walk(r, &diagnose_credential(None, r, &Context::default()), style)
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain · text"), "plain · text");
        assert_eq!(
            clean("ev\x1b[31mil\x07\n\u{9b}2J"),
            "ev\\x1b[31mil\\x07\\n\\u{9b}2J"
        );
        let mut r = failing();
        r.username = Some("ev\x1b]0;title\x07il".into());
        let out = walk(&r, Style::default());
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
        assert!(out.contains("user=ev\\x1b]0;title\\x07il"), "{out}");
    }

    #[test]
    fn plain_output_names_reason_step_and_fix() {
        let out = walk(&failing(), Style::default());
        assert!(
            out.starts_with("FAIL registry.test:5000  secret=bad  user=ci-bot"),
            "{out}"
        );
        assert!(out.contains("unauthorized (credential)"));
        assert!(out.contains("phases: resolve 1ms · token 40ms"), "{out}");
        assert!(out.contains("FAIL  token       40ms  the token service at auth.test answered 401 to user `ci-bot`"), "{out}");
        assert!(out.contains(
            "[token] GET https://auth.test/token?service=s → 401 UNAUTHORIZED: authentication required"
        ), "{out}");
        assert!(out.contains("-     verify: not reached"), "{out}");
        assert!(out.contains("verdict: FAIL credential (unauthorized): the token service at auth.test rejected user `ci-bot`: the password is wrong or expired"), "{out}");
        assert!(
            out.contains("fix: check it with `docker login registry.test:5000 -u ci-bot`"),
            "{out}"
        );
        assert!(!out.contains('\x1b'));
        assert_eq!(probes_summary(&[failing()]), "1 probe, 0 ok, 1 failed");
    }

    #[test]
    fn colour_only_when_asked() {
        let out = walk(
            &failing(),
            Style {
                color: true,
                ..Style::default()
            },
        );
        assert!(out.contains("\x1b[31m✗"));
    }

    #[test]
    fn verbose_shows_every_exchange_with_redacted_authorization() {
        let mut r = failing();
        r.username = Some("ci-bot".into());
        let quiet = walk(&r, Style::default());
        assert!(!quiet.contains("[challenge]"), "{quiet}");
        let loud = walk(
            &r,
            Style {
                verbose: true,
                ..Style::default()
            },
        );
        assert!(
            loud.contains("[challenge] GET https://registry.test:5000/v2/ → 401"),
            "{loud}"
        );
        assert!(loud.contains("WWW-Authenticate: Bearer realm="), "{loud}");
        assert!(
            loud.contains("> Authorization: Basic <redacted> (user ci-bot)"),
            "{loud}"
        );
    }
}
