//! `check`'s text fits the terminal: `COLUMNS`, else 100 columns when there is no terminal;
//! summaries and verdicts wrap, evidence is cut with `…`; `--help` wraps the same way;
//! `--output short` is one line per credential. Control characters that come from a secret (a
//! user name) or a peer (the registry's error message and challenge) are shown escaped.

use regprobe_testsupport as support;

use std::net::Ipv4Addr;
use support::fake::{always, response, FakeServer, API_VERSION};
use support::{Registry, RegistryOptions};
use unicode_width::UnicodeWidthStr;

const PW: &str = "Width-Passw0rd-5c1d";

fn run(args: &[&str], columns: Option<&str>) -> (i32, String, String) {
    let mut cmd = support::regprobe();
    cmd.args(args).env("NO_COLOR", "1");
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    let out = support::output_with_stdin(&mut cmd, None);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn widest(text: &str) -> usize {
    text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0)
}

struct Setup {
    _registry: Registry,
    _vols: Vec<support::AtomicVolume>,
    _dir: tempfile::TempDir,
    secrets: String,
}

/// A real registry; a good secret, and one whose password is wrong and whose long name and
/// user make long lines.
fn setup() -> Setup {
    let registry = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let key = format!("127.0.0.1:{}", registry.port());
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let vols = vec![
        support::write_secret_volume(&secrets, "good", &[(&key, "alice", PW)]),
        support::write_secret_volume(
            &secrets,
            "a-rather-long-secret-name-for-the-team-registry-credentials",
            &[(&key, "alice", "wrong")],
        ),
    ];
    Setup {
        _registry: registry,
        _vols: vols,
        _dir: dir,
        secrets: secrets.to_str().unwrap().to_string(),
    }
}

#[test]
fn text_output_fits_columns_and_100_when_unknown() {
    let s = setup();
    let args = ["check", "--no-default-paths", "--secrets-dir", &s.secrets];
    let (code, narrow, _) = run(&args, Some("72"));
    assert_eq!(code, 1, "{narrow}");
    assert!(widest(&narrow) <= 72, "wider than 72:\n{narrow}");
    // Evidence (the registry's answer, the secret's file) is cut, not wrapped.
    assert!(narrow.lines().any(|l| l.ends_with('…')), "{narrow}");
    // The verdict is wrapped, not cut: all of it is there.
    let joined = narrow.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains("the password is wrong or expired"),
        "{narrow}"
    );

    let (_, default, _) = run(&args, None);
    assert!(widest(&default) <= 100, "wider than 100:\n{default}");
    assert!(
        widest(&default) > 72,
        "100 columns are used when known:\n{default}"
    );
}

#[test]
fn help_wraps_to_columns() {
    let (code, help, _) = run(&["check", "--help"], Some("70"));
    assert_eq!(code, 0);
    assert!(widest(&help) <= 70, "{help}");
    let (_, help, _) = run(&["check", "--help"], None);
    assert!(widest(&help) <= 100, "{help}");
    assert!(help.contains("--output short"), "{help}");
}

#[test]
fn short_output_is_one_line_per_credential() {
    let s = setup();
    let (code, out, _) = run(
        &[
            "check",
            "--no-default-paths",
            "--secrets-dir",
            &s.secrets,
            "--output",
            "short",
        ],
        Some("80"),
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("FAIL  127.0.0.1:")
            && lines[0].contains("secret=a-rather-long-secret-name"),
        "{out}"
    );
    assert!(lines[0].ends_with('…'), "{out}");
    assert!(
        lines[1].starts_with("ok    127.0.0.1:") && lines[1].contains("secret=good"),
        "{out}"
    );
    assert_eq!(lines[2], "2 probes, 1 ok, 1 failed");
    assert!(widest(&out) <= 80, "{out}");
}

/// Imitates a registry (or anything on its port) that puts terminal escape sequences in its
/// error message: set the window title, clear the screen. (In a header value they never get
/// this far: the HTTP parser refuses control characters there.)
fn escaping_registry() -> FakeServer {
    FakeServer::serve(
        Ipv4Addr::LOCALHOST,
        always(response(
            401,
            b"Unauthorized",
            &[
                API_VERSION,
                ("WWW-Authenticate", b"Basic realm=\"registry\""),
            ],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"denied \\u001b]0;pwned\\u0007 \\u001b[2J\"}]}",
        )),
    )
}

#[test]
fn control_characters_from_secrets_and_peers_are_escaped() {
    let fake = escaping_registry();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let _v = support::write_secret_volume(
        &secrets,
        "evil",
        &[(&fake.host(), "ev\x1b[31mil\x07", "pw")],
    );
    for verbose in [false, true] {
        let mut args = vec![
            "check",
            "--no-default-paths",
            "--timeout",
            "3s",
            "--secrets-dir",
            secrets.to_str().unwrap(),
        ];
        if verbose {
            args.push("-v");
        }
        let (code, out, err) = run(&args, None);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            !out.contains('\x1b') && !out.contains('\x07'),
            "raw control characters in the output:\n{out:?}"
        );
        assert!(out.contains("user=ev\\x1b[31mil\\x07"), "{out}");
        // The registry's message is there, its escape sequences not (escaped, or dropped
        // by the excerpt of the error body).
        assert!(out.contains("UNAUTHORIZED: denied "), "{out}");
    }
}
