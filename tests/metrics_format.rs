//! `GET /metrics` negotiates its format by `Accept` as the official client libraries do:
//! OpenMetrics when asked (Prometheus asks), the Prometheus text format 0.0.4 otherwise; and
//! Prometheus' own linter, `promtool check metrics` (Debian's prometheus package), accepts a
//! live scrape of `regprobe serve` against a real registry with good, wrong and malformed
//! secrets.

use regprobe_testsupport as support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Daemon, Registry, RegistryOptions};

const PROMTOOL: &str = "/usr/bin/promtool";
const PW: &str = "Fmt-Passw0rd-31ac";

fn promtool_check(exposition: &str) -> (i32, String) {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: run .ci/install-deps"
    );
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn metrics_negotiate_the_format_and_pass_promtool() {
    let registry = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let key = format!("127.0.0.1:{}", registry.port());
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let _good = support::write_secret_volume(&s, "good", &[(&key, "alice", PW)]);
    let _bad = support::write_secret_volume(&s, "stale", &[(&key, "alice", "wrong")]);
    let mut broken = support::AtomicVolume::new(&s.join("broken"));
    broken.publish(&[(".dockerconfigjson", b"{\"auths\": 1}".as_slice())]);
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
        Stdio::null(),
    );
    let started = Instant::now();
    let plain = loop {
        let r = support::http::request(daemon.addr, "GET", "/metrics", &[], b"");
        if let Ok(r) = r {
            if r.text().matches("regprobe_success{").count() >= 3 {
                break r;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no metrics");
        std::thread::sleep(Duration::from_millis(100));
    };

    // No Accept (curl, promtool, old scrapers): Prometheus text 0.0.4.
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = plain.text();
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE regprobe_probes_total counter"),
        "{text}"
    );
    let (code, said) = promtool_check(&text);
    assert_eq!(code, 0, "promtool check metrics: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool lint findings:\n{said}");

    // Prometheus' Accept: OpenMetrics, which the reference parser reads.
    let om = support::http::get(
        daemon.addr,
        "/metrics",
        &[support::http::ACCEPT_OPENMETRICS],
    );
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        om.header("content-type")
    );
    let om_text = om.text();
    assert!(om_text.ends_with("# EOF\n"), "{om_text}");
    let samples = support::openmetrics::parse(&om_text);
    assert!(samples.iter().any(|s| s["name"] == "regprobe_probes_total"));
}
