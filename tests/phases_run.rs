//! Phases that never ran are not reported: a refused connection has no `challenge` (nor `tls`)
//! time, and a token service that refuses the connection has no `token` time, in `check`'s
//! text and JSON and in `serve`'s `regprobe_phase_duration_seconds`.

use regprobe_testsupport as support;

use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use support::fake::{always, response, FakeServer, API_VERSION};
use support::fakes::closed_port;
use support::Daemon;

/// Imitates distribution with token auth whose realm points at `realm_port`, where nothing
/// listens (a token service that is down).
fn registry_with_dead_realm(realm_port: u16) -> FakeServer {
    let challenge =
        format!("Bearer realm=\"http://127.0.0.1:{realm_port}/token\",service=\"fake-registry\"");
    FakeServer::serve(
        Ipv4Addr::LOCALHOST,
        always(response(
            401,
            b"Unauthorized",
            &[API_VERSION, ("WWW-Authenticate", challenge.as_bytes())],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}",
        )),
    )
}

fn check(secrets: &std::path::Path, json: bool) -> String {
    let mut cmd = support::regprobe();
    cmd.args([
        "check",
        "--no-default-paths",
        "--timeout",
        "3s",
        "--secrets-dir",
    ])
    .arg(secrets);
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = support::output_with_stdin(&mut cmd, None);
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn phases_that_never_ran_are_not_reported() {
    let refused = format!("127.0.0.1:{}", closed_port());
    let fake = registry_with_dead_realm(closed_port());
    let token_down = fake.host();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let _a = support::write_secret_volume(&s, "refused", &[(&refused, "u", "pw")]);
    let _b = support::write_secret_volume(&s, "token-down", &[(&token_down, "u", "pw")]);

    // JSON: the phases object holds only what ran.
    let doc: Value = serde_json::from_str(&check(&s, true)).unwrap();
    let phases = |secret: &str| -> Vec<String> {
        let p = doc["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["secret"] == secret)
            .unwrap_or_else(|| panic!("no probe of {secret}: {doc}"));
        p["phases"].as_object().unwrap().keys().cloned().collect()
    };
    let mut refused_phases = phases("refused");
    refused_phases.sort();
    assert_eq!(refused_phases, ["connect", "resolve"], "{doc}");
    let token_phases = phases("token-down");
    assert!(token_phases.contains(&"challenge".to_string()), "{doc}");
    assert!(!token_phases.contains(&"token".to_string()), "{doc}");

    // Text: the phases line of the refused probe.
    let text = check(&s, false);
    let block = text
        .split("\n\n")
        .find(|b| b.contains("secret=refused"))
        .unwrap_or_else(|| panic!("{text}"));
    let line = block
        .lines()
        .find(|l| l.trim_start().starts_with("phases:"))
        .unwrap_or_else(|| panic!("{block}"));
    assert!(line.contains("connect"), "{line}");
    assert!(
        !line.contains("challenge") && !line.contains("tls"),
        "{line}"
    );

    // Metrics: no phase series for what never ran.
    let daemon = Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            s.to_str().unwrap(),
            "--interval",
            "10m",
            "--timeout",
            "3s",
        ],
        std::process::Stdio::null(),
    );
    let started = Instant::now();
    let metrics = loop {
        let m = daemon.metrics();
        if m.contains("regprobe_success{registry=\"127.0.0.1")
            && m.matches("regprobe_success{").count() >= 2
        {
            break m;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{m}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let phase_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("regprobe_phase_duration_seconds{"))
        .collect();
    let of = |secret: &str, phase: &str| {
        phase_lines.iter().any(|l| {
            l.contains(&format!("secret=\"{secret}\"")) && l.contains(&format!("phase=\"{phase}\""))
        })
    };
    assert!(of("refused", "connect"), "{metrics}");
    assert!(!of("refused", "challenge"), "{metrics}");
    assert!(!of("refused", "tls"), "{metrics}");
    assert!(of("token-down", "challenge"), "{metrics}");
    assert!(!of("token-down", "token"), "{metrics}");
}
