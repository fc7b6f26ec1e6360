//! `regprobe check` text output: one block per probe, each phase with its time, the failing
//! step with the server's status, error code and message, the detail and the hint.
//!
//! With `style.color` the marks are coloured `✓`/`✗` (a terminal); without, the words `ok` and
//! `FAIL` (a pipe or a file), so the output greps and diffs well. Nothing printed here comes
//! from a credential: [`ProbeResult`] holds none.

use crate::plan::Skipped;
use crate::probe::{Phase, ProbeResult};
use std::fmt::Write;

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colours and symbols (a terminal that did not set `NO_COLOR`).
    pub color: bool,
    /// Also print every HTTP exchange (method, URL, status, challenge, error).
    pub verbose: bool,
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

/// Renders a whole `check` run: every result, the skipped entries and warnings, and a
/// summary line.
pub fn render(
    results: &[ProbeResult],
    skipped: &[Skipped],
    warnings: &[String],
    style: Style,
) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&render_one(r, style));
        out.push('\n');
    }
    for s in skipped {
        let _ = writeln!(
            out,
            "{} {}  secret={}  {}",
            paint(style, DIM, if style.color { "–" } else { "skip" }),
            if s.registry.is_empty() {
                "(none)"
            } else {
                &s.registry
            },
            s.secret,
            s.why
        );
    }
    for w in warnings {
        let _ = writeln!(out, "{} {w}", paint(style, YELLOW, "warning:"));
    }
    let failed = results.iter().filter(|r| !r.success).count();
    let summary = format!(
        "{} probe{}, {} ok, {} failed",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        results.len() - failed,
        failed
    );
    let _ = writeln!(
        out,
        "{}",
        paint(style, if failed > 0 { RED } else { GREEN }, &summary)
    );
    out
}

/// Renders kubelet's pull loop for one image: every key of the keyring with why it does or
/// does not apply, each credential attempt, and the verdict.
pub fn render_image(image: &str, results: &[ProbeResult], style: Style) -> String {
    let mut out = String::new();
    let ok = results.iter().any(|r| r.success);
    let _ = writeln!(out, "{} {}", paint(style, BOLD, "image"), image);
    if let Some(first) = results.first() {
        for v in &first.key_verdicts {
            let _ = writeln!(out, "    {v}");
        }
        if first.key_verdicts.is_empty() {
            let _ = writeln!(out, "    no registry keys in the secrets");
        }
    }
    for (i, r) in results.iter().enumerate() {
        let _ = writeln!(
            out,
            "  attempt {} of {}: {}",
            i + 1,
            results.len(),
            match (&r.secret, &r.username) {
                (Some(s), Some(u)) => format!("secret {s}, user {u}"),
                (Some(s), None) =>
                    format!("secret {s}, no username (containerd pulls anonymously)"),
                _ => "no credential (anonymous)".to_string(),
            }
        );
        for line in render_one(r, style).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let verdict = if ok {
        paint(style, GREEN, "pullable: kubelet's pull would succeed")
    } else {
        paint(style, RED, "not pullable: every credential attempt failed")
    };
    let _ = writeln!(out, "  {verdict}\n");
    out
}

/// Renders one probe.
pub fn render_one(r: &ProbeResult, style: Style) -> String {
    let mut out = String::new();
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
    let mut head = format!("{mark} {}", paint(style, BOLD, registry));
    if let Some(s) = &r.secret {
        let _ = write!(head, "  secret={s}");
    }
    if let Some(i) = &r.image {
        let _ = write!(head, "  image={i}");
    }
    if let Some(u) = &r.username {
        let _ = write!(head, "  user={u}");
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
    let _ = writeln!(out, "{head}");
    if let Some(e) = &r.endpoint {
        let _ = writeln!(out, "    endpoint: {e}");
    }
    if !r.phases.is_empty() {
        let phases: Vec<String> = Phase::ALL
            .iter()
            .filter_map(|p| r.phases.get(p).map(|s| format!("{p} {}", fmt_secs(*s))))
            .collect();
        let _ = writeln!(out, "    phases: {}", phases.join(" · "));
    }
    if r.image.is_some() {
        if r.matched_keys.is_empty() {
            let _ = writeln!(
                out,
                "    keys: none of the secrets' keys match this image: kubelet pulls anonymously"
            );
        } else {
            let keys: Vec<String> = r
                .matched_keys
                .iter()
                .map(|k| format!("{} ({})", k.key, k.secret))
                .collect();
            let _ = writeln!(
                out,
                "    keys matched, in kubelet's order: {}",
                keys.join(", ")
            );
        }
        for h in &r.hosts {
            let verdict = match (h.success, h.reason) {
                (true, _) => paint(style, GREEN, "ok"),
                (false, Some(reason)) => paint(style, RED, reason.as_str()),
                (false, None) => paint(style, RED, "failed"),
            };
            let _ = writeln!(
                out,
                "    host {}{}: {verdict} — {}",
                h.host,
                if h.mirror { " (mirror)" } else { "" },
                h.detail
            );
        }
        if let Some(d) = &r.digest {
            let _ = writeln!(out, "    digest: {d}");
        }
        if let Some(rl) = &r.ratelimit {
            let _ = writeln!(
                out,
                "    Docker Hub rate limit: {} of {} pulls left{}",
                rl.remaining,
                rl.limit,
                rl.window_seconds
                    .map(|w| format!(" per {}h", w / 3600))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(t) = &r.tls {
        let _ = writeln!(
            out,
            "    tls: subject {} · issuer {} · expires {}{}",
            t.subject,
            t.issuer,
            fmt_time(t.leaf_not_after),
            if t.verified_by.is_empty() {
                String::new()
            } else {
                format!(" · trust: {}", t.verified_by)
            }
        );
    }
    if style.verbose || !r.success {
        let shown: Vec<&crate::probe::Exchange> = if style.verbose {
            r.exchanges.iter().collect()
        } else {
            r.exchanges.last().into_iter().collect()
        };
        for e in shown {
            let mut line = format!(
                "    {}{} {} → {}",
                e.phase.map(|p| format!("[{p}] ")).unwrap_or_default(),
                e.method,
                e.url,
                e.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no response".into())
            );
            if let Some(c) = &e.error_code {
                let _ = write!(line, " {c}");
            }
            if let Some(m) = &e.error_message {
                let _ = write!(line, ": {m}");
            }
            let _ = writeln!(out, "{line}");
            if let Some(ch) = &e.challenge {
                let _ = writeln!(out, "      WWW-Authenticate: {ch}");
            }
        }
    }
    if !r.detail.is_empty() {
        let _ = writeln!(out, "    {}", r.detail);
    }
    if !r.success && !r.hint.is_empty() {
        let _ = writeln!(out, "    {} {}", paint(style, YELLOW, "fix:"), r.hint);
    }
    for n in r
        .notes
        .iter()
        .filter(|n| style.verbose || !n.starts_with("TLS trust:"))
    {
        let _ = writeln!(out, "    {} {n}", paint(style, DIM, "note:"));
    }
    out
}

fn fmt_time(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Class, Exchange, Reason};

    fn failing() -> ProbeResult {
        let mut r = ProbeResult::new("registry.test:5000", Some("bad".into()));
        r.reason = Some(Reason::Unauthorized);
        r.class = Some(Class::Credential);
        r.username = Some("ci-bot".into());
        r.detail = "the token service rejected user `ci-bot` with 401".into();
        r.hint = "recreate the secret".into();
        r.add_phase(Phase::Resolve, 0.001);
        r.add_phase(Phase::Token, 0.040);
        r.exchanges.push(Exchange {
            phase: Some(Phase::Token),
            method: "GET".into(),
            url: "http://127.0.0.1:1/token?service=s".into(),
            status: Some(401),
            challenge: None,
            error_code: Some("UNAUTHORIZED".into()),
            error_message: Some("authentication required".into()),
        });
        r
    }

    #[test]
    fn plain_output_names_reason_step_and_fix() {
        let out = render(&[failing()], &[], &[], Style::default());
        assert!(
            out.starts_with("FAIL registry.test:5000  secret=bad  user=ci-bot"),
            "{out}"
        );
        assert!(out.contains("unauthorized (credential)"));
        assert!(out.contains("phases: resolve 1ms · token 40ms"));
        assert!(out.contains(
            "[token] GET http://127.0.0.1:1/token?service=s → 401 UNAUTHORIZED: authentication required"
        ));
        assert!(out.contains("fix: recreate the secret"));
        assert!(out.contains("1 probe, 0 ok, 1 failed"));
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn image_probe_lists_keys_and_hosts() {
        use crate::probe::{HostVerdict, KeyRef};
        let mut r = ProbeResult::new("registry.test", Some("team".into()));
        r.image = Some("registry.test/team/app:1".into());
        r.matched_keys = vec![
            KeyRef {
                secret: "team".into(),
                key: "registry.test/team".into(),
            },
            KeyRef {
                secret: "all".into(),
                key: "registry.test".into(),
            },
        ];
        r.hosts = vec![
            HostVerdict {
                host: "http://mirror.test:5000/v2".into(),
                mirror: true,
                success: false,
                reason: Some(Reason::ConnectRefused),
                detail: "down".into(),
            },
            HostVerdict {
                host: "https://registry.test/v2".into(),
                mirror: false,
                success: true,
                reason: None,
                detail: "resolved".into(),
            },
        ];
        r.success = true;
        let out = render_one(&r, Style::default());
        assert!(
            out.contains(
                "keys matched, in kubelet's order: registry.test/team (team), registry.test (all)"
            ),
            "{out}"
        );
        assert!(
            out.contains("host http://mirror.test:5000/v2 (mirror): connect_refused — down"),
            "{out}"
        );
        assert!(
            out.contains("host https://registry.test/v2: ok — resolved"),
            "{out}"
        );
        r.matched_keys.clear();
        let out = render_one(&r, Style::default());
        assert!(
            out.contains("none of the secrets' keys match this image"),
            "{out}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let out = render(
            &[failing()],
            &[],
            &[],
            Style {
                color: true,
                verbose: false,
            },
        );
        assert!(out.contains("\x1b[31m✗"));
    }

    #[test]
    fn success_hides_exchanges_unless_verbose() {
        let mut r = ProbeResult::new("ghcr.io", Some("good".into()));
        r.success = true;
        r.exchanges = failing().exchanges;
        let out = render_one(&r, Style::default());
        assert!(out.starts_with("ok ghcr.io"));
        assert!(!out.contains("[token]"));
        let out = render_one(
            &r,
            Style {
                color: false,
                verbose: true,
            },
        );
        assert!(out.contains("[token]"));
    }
}
