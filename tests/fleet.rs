//! Fleet-safe load, end to end with `regprobe serve`: a `429` holds every probe of that
//! registry until its `Retry-After`, and a stalled registry does not delay the others.

use regprobe_testsupport as support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{fakes, Daemon, Registry, RegistryOptions};

const PW: &str = "Fleet-Passw0rd-41";

fn serve(dir: &std::path::Path, extra: &[&str]) -> Daemon {
    let mut args = vec!["--no-default-paths", "--interval", "1s", "--secrets-dir"];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    Daemon::start(&args, Stdio::null())
}

/// `regprobe_probes_total` of one pair, or 0.
fn probes(s: &Daemon, registry: &str, secret: &str) -> f64 {
    let m = s.metrics();
    let prefix = format!("regprobe_probes_total{{registry=\"{registry}\",secret=\"{secret}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_429_holds_the_registry_until_retry_after() {
    let limited = fakes::rate_limited_429(3600);
    let healthy = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let lk = limited.host();
    let hk = healthy.host();
    support::write_dockerconfigjson(dir.path(), "a", &[(&lk, "u", PW)]);
    support::write_dockerconfigjson(dir.path(), "b", &[(&lk, "u", PW)]);
    support::write_dockerconfigjson(dir.path(), "ok", &[(&hk, "alice", PW)]);
    let s = serve(dir.path(), &[]);
    let start = Instant::now();
    while probes(&s, &hk, "ok") < 4.0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the healthy registry is probed on its interval"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Over the same ~4 intervals the rate-limited registry was asked once per pair at most:
    // the first 429 holds every pair of that registry (Retry-After: 3600).
    let a = probes(&s, &lk, "a");
    let b = probes(&s, &lk, "b");
    assert!(
        a <= 1.0 && b <= 1.0,
        "rate-limited registry probed again: a={a} b={b}"
    );
    assert!(a + b >= 1.0, "the rate-limited registry was probed at all");
    // Requests that reached it: never a retry within a probe.
    let reqs = limited.request_count();
    assert!(
        reqs <= 4,
        "{reqs} requests reached the rate-limited registry"
    );
}

#[test]
fn a_stalled_registry_does_not_delay_the_others() {
    let stalled = fakes::hang();
    let healthy = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let sk = stalled.host();
    let hk = healthy.host();
    for i in 0..6 {
        support::write_dockerconfigjson(dir.path(), &format!("stuck-{i}"), &[(&sk, "u", PW)]);
    }
    support::write_dockerconfigjson(dir.path(), "ok", &[(&hk, "alice", PW)]);
    // Two probes in flight overall, one per registry: the stalled registry's six queued
    // probes must not take the global permits the healthy one needs.
    let s = serve(
        dir.path(),
        &[
            "--concurrency",
            "2",
            "--registry-concurrency",
            "1",
            "--timeout",
            "10s",
        ],
    );
    let start = Instant::now();
    while probes(&s, &hk, "ok") < 3.0 {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "the healthy registry waited behind the stalled one: {} probes in {:?}",
            probes(&s, &hk, "ok"),
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
