//! No derived form of a credential survives an echoing registry (issue 13, "Redaction"): the
//! password, base64 `user:password` (the `Basic` value, the dockerconfigjson `auth`), the
//! URL-encoded password of the token POST form, the bearer token and the refresh token, in
//! `check --output json`, `check -v` text, debug logs, and `serve`'s `/status` and logs.
//!
//! The peer is `support::hostile::echoing_registry` (a registry behind a debugging proxy that
//! reflects each request into its 401 answers); `src/probe/redact.rs` has the unit-level
//! oracle over many generated credentials.

use regprobe_testsupport as support;

use base64::Engine;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::hostile::{echoing_registry, EchoAuth, ECHO_REFRESH_TOKEN, ECHO_TOKEN};

const USER: &str = "echo-user";
/// Space, `+`, `/`, `&`, `@`, `"` and a non-ASCII letter: every encoding differs from the raw.
const PW: &str = "Ech0 p@ss+w/rd&\"é-42";

/// Every spelling of the credential and tokens that must not appear.
fn forbidden() -> Vec<String> {
    let pair = format!("{USER}:{PW}");
    let form: String = url::form_urlencoded::byte_serialize(PW.as_bytes()).collect();
    let json = serde_json::to_string(PW).unwrap();
    let mut out = vec![
        PW.to_string(),
        json[1..json.len() - 1].to_string(),
        form.clone(),
        form.replace('+', "%20"),
        form.to_lowercase(),
        // The distinctive middle of the password, raw and URL-encoded, catches partial echoes.
        "p@ss+w/rd".to_string(),
        "p%40ss".to_string(),
        ECHO_TOKEN.to_string(),
        ECHO_REFRESH_TOKEN.to_string(),
    ];
    for e in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        out.push(e.encode(&pair));
    }
    out
}

fn assert_no_leak(what: &str, text: &str) {
    for f in forbidden() {
        assert!(!text.contains(&f), "{what} leaks {f:?}:\n{text}");
    }
}

fn secrets_for(dir: &Path, registry: &str) -> std::path::PathBuf {
    let s = dir.join("secrets");
    support::write_dockerconfigjson(&s, "echoed", &[(registry, USER, PW)]);
    s
}

fn check(secrets: &Path, extra: &[&str]) -> (String, String) {
    let mut cmd = support::cli::regprobe();
    cmd.args([
        "--log-level",
        "debug",
        "check",
        "--no-default-paths",
        "--secrets-dir",
        secrets.to_str().unwrap(),
        "--timeout",
        "3s",
    ])
    .args(extra);
    let out = support::cli::output_with_stdin(&mut cmd, None);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn echoing_registry_leaks_no_form_of_the_credential_to_check() {
    for auth in [EchoAuth::Basic, EchoAuth::Bearer, EchoAuth::BearerTokenEcho] {
        let fake = echoing_registry(auth);
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets_for(dir.path(), &fake.host());

        let (json, log) = check(&secrets, &["--output", "json"]);
        let v: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{auth:?}: {e}: {json} {log}"));
        let probe = &v["probes"][0];
        assert_eq!(probe["success"], false, "{auth:?}: {json}");
        assert!(probe["reason"].is_string(), "{auth:?}: {json}");
        // The echo reached the evidence, and was cut out of it.
        assert!(json.contains("<redacted>"), "{auth:?}: {json}");
        // The fake really was sent the credential (so the test can fail).
        let sent = fake.seen().iter().any(|s| {
            s.contains(USER.as_bytes())
                || s.header("authorization").is_some()
                || s.body.windows(4).any(|w| w == b"Ech0")
        });
        assert!(sent, "{auth:?}: the fake never saw the credential");
        assert_no_leak(&format!("{auth:?} check --output json"), &json);
        assert_no_leak(&format!("{auth:?} check debug log"), &log);

        let (text, log) = check(&secrets, &["-v"]);
        assert_no_leak(&format!("{auth:?} check -v"), &text);
        assert_no_leak(&format!("{auth:?} check -v debug log"), &log);
    }
}

#[test]
fn echoing_registry_leaks_no_form_of_the_credential_to_serve() {
    let fake = echoing_registry(EchoAuth::Bearer);
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_for(dir.path(), &fake.host());
    let log_path = dir.path().join("serve.log");
    let daemon = support::Daemon::start(
        &[
            "--log-level",
            "debug",
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--timeout",
            "3s",
        ],
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    let start = Instant::now();
    let status = loop {
        let s = daemon.get("/status");
        if s.contains("\"reason\"") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no result: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains("<redacted>"), "{status}");
    assert_no_leak("/status", &status);
    assert_no_leak("/metrics", &daemon.metrics());
    drop(daemon);
    assert_no_leak("serve log", &std::fs::read_to_string(&log_path).unwrap());
}
