//! Fail closed (issue 13): a probe that panics is a failed result with reason `internal_error`
//! (class `config`), never a missing one; the daemon's slot is released and probed again; a
//! scheduler that dies makes `serve` exit non-zero. Panics are injected through the debug-build
//! hook `REGPROBE_TEST_PANIC` (`src/failclosed.rs`).

use regprobe_testsupport as support;

use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A registry key whose probe the hook makes panic (never contacted: the panic comes first).
const PANICKING: &str = "panic.registry.invalid";

fn secrets(dir: &std::path::Path) -> std::path::PathBuf {
    let s = dir.join("secrets");
    // The second key is a closed loopback port: an ordinary, quick failure.
    let closed = format!("127.0.0.1:{}", support::fakes::closed_port());
    support::write_dockerconfigjson(
        &s,
        "pull",
        &[
            (PANICKING, "u", "p4ssword"),
            (closed.as_str(), "u", "p4ssword"),
        ],
    );
    s
}

fn reason_of<'a>(probes: &'a [Value], registry: &str) -> Option<&'a str> {
    probes
        .iter()
        .find(|p| p["registry"] == registry)
        .and_then(|p| p["reason"].as_str())
}

#[test]
fn check_reports_a_panicking_probe_as_internal_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = secrets(dir.path());
    let mut cmd = support::regprobe();
    cmd.env("REGPROBE_TEST_PANIC", PANICKING).args([
        "check",
        "--no-default-paths",
        "--secrets-dir",
        s.to_str().unwrap(),
        "--timeout",
        "2s",
        "--output",
        "json",
    ]);
    let out = support::output_with_stdin(&mut cmd, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 2, "{stdout}");
    let p = probes.iter().find(|p| p["registry"] == PANICKING).unwrap();
    assert_eq!(p["success"], false, "{stdout}");
    assert_eq!(p["reason"], "internal_error", "{stdout}");
    assert_eq!(p["class"], "config", "{stdout}");
    // The other probe ran as usual.
    let other = probes.iter().find(|p| p["registry"] != PANICKING).unwrap();
    let other = other["registry"].as_str().unwrap();
    assert_eq!(
        reason_of(probes, other),
        Some("connect_refused"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}

#[test]
fn serve_reports_internal_error_and_probes_the_slot_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = secrets(dir.path());
    let port = support::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = support::regprobe()
        .env("REGPROBE_TEST_PANIC", PANICKING)
        .args([
            "serve",
            "--no-default-paths",
            "--secrets-dir",
            s.to_str().unwrap(),
            "--interval",
            "1s",
            "--timeout",
            "2s",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = support::Daemon { child, addr };
    let timestamp = |body: &str| -> Option<f64> {
        let v: Value = serde_json::from_str(body).ok()?;
        let p = v["probes"]
            .as_array()?
            .iter()
            .find(|p| p["registry"] == PANICKING)?
            .clone();
        assert_eq!(p["reason"], "internal_error", "{body}");
        assert_eq!(p["success"], false, "{body}");
        p["timestamp"].as_f64()
    };
    let start = Instant::now();
    let first = loop {
        if let Some(t) = timestamp(&daemon.get("/status")) {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no internal_error result"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(daemon
        .metrics()
        .contains(&format!(r#"regprobe_failure_reason{{registry="{PANICKING}",secret="pull",reason="internal_error",class="config"}} 1"#)));
    // The slot was released (not left in flight): it is probed again, and panics again.
    loop {
        if timestamp(&daemon.get("/status")).is_some_and(|t| t > first) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the slot was never probed again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(daemon.get("/-/healthy").trim(), "OK");
}

#[test]
fn serve_exits_non_zero_when_its_scheduler_dies() {
    let dir = tempfile::tempdir().unwrap();
    let s = secrets(dir.path());
    let mut child = support::regprobe()
        .env("REGPROBE_TEST_PANIC", "scheduler")
        .args([
            "serve",
            "--no-default-paths",
            "--secrets-dir",
            s.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", support::free_port()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with a dead scheduler");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
}
