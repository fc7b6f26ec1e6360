//! `serve` with nothing to probe (an empty secrets mount) says so: a warning at start and at
//! each reload, and `regprobe_configured_probes 0` for the `RegprobeNothingToProbe` alert;
//! once a secret appears, the gauge counts it and the warning stops.

use regprobe_testsupport as support;

use std::time::{Duration, Instant};
use support::Daemon;

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn warnings(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("nothing to probe"))
        .count()
}

fn reload(d: &Daemon) {
    let r = support::http::request(d.addr, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn serve_with_nothing_to_probe_warns_and_exports_zero() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let log = dir.path().join("serve.log");
    let daemon = Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--reload-interval",
            "1h",
            "--web.enable-lifecycle",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    wait_for("the warning at start", || warnings(&log) == 1);
    wait_for("the gauge at 0", || {
        daemon
            .metrics()
            .lines()
            .any(|l| l == "regprobe_configured_probes 0")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("secrets_dirs={}", secrets.display())),
        "{text}"
    );

    reload(&daemon);
    wait_for("the warning at the reload", || warnings(&log) == 2);

    // A secret appears (nothing listens on its registry: the probe fails, but it is a probe).
    let port = support::fakes::closed_port();
    let _v = support::write_secret_volume(
        &secrets,
        "regcred",
        &[(format!("127.0.0.1:{port}"), "u", "pw")],
    );
    reload(&daemon);
    wait_for("the gauge at 1", || {
        daemon
            .metrics()
            .lines()
            .any(|l| l == "regprobe_configured_probes 1")
    });
    assert_eq!(
        warnings(&log),
        2,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}
