//! Bounded work (issue 13, `src/plan/caps.rs`): caps on secrets, entries per secret and probes
//! per cycle; hitting one leaves the excess out with a warning and sets
//! `regprobe_inputs_capped{cap}`.

use regprobe_testsupport as support;

use std::time::{Duration, Instant};

/// `n` entries on closed loopback ports (each probe fails at once with `connect_refused`).
fn entries(n: usize) -> Vec<(String, &'static str, &'static str)> {
    let port = support::fakes::closed_port();
    (0..n)
        .map(|i| (format!("127.0.0.{}:{port}", i + 1), "u", "p4ssword"))
        .collect()
}

fn check(secrets: &std::path::Path, extra: &[&str]) -> (usize, String) {
    let mut cmd = support::regprobe();
    cmd.args([
        "check",
        "--no-default-paths",
        "--secrets-dir",
        secrets.to_str().unwrap(),
        "--timeout",
        "2s",
        "--output",
        "json",
    ])
    .args(extra);
    let out = support::output_with_stdin(&mut cmd, None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["probes"].as_array().unwrap().len(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn caps_leave_the_excess_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    for name in ["a", "b", "c"] {
        support::write_dockerconfigjson(&s, name, &entries(5));
    }
    assert_eq!(check(&s, &[]).0, 15);

    let (n, err) = check(&s, &["--max-entries-per-secret", "2"]);
    assert_eq!(n, 6);
    assert!(
        err.contains("input cap reached") && err.contains("entries"),
        "{err}"
    );

    let (n, err) = check(&s, &["--max-secrets", "1"]);
    assert_eq!(n, 5);
    assert!(err.contains("secrets"), "{err}");

    let (n, err) = check(&s, &["--max-probes", "4"]);
    assert_eq!(n, 4);
    assert!(err.contains("probes"), "{err}");

    // A cap of 0 is a usage error.
    let out = support::output_with_stdin(
        support::regprobe().args(["check", "--max-secrets", "0"]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serve_exports_the_capped_metric() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    support::write_dockerconfigjson(&s, "many", &entries(5));
    let daemon = support::Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            s.to_str().unwrap(),
            "--max-probes",
            "3",
        ],
        std::process::Stdio::null(),
    );
    let start = Instant::now();
    let metrics = loop {
        let m = daemon.metrics();
        if m.contains("regprobe_inputs_capped") {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains(r#"regprobe_inputs_capped{cap="probes"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"regprobe_inputs_capped{cap="secrets"} 0"#),
        "{metrics}"
    );
}
