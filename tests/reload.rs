//! Hot reload, end to end: `regprobe serve` follows kubelet's atomic updates of mounted Secrets
//! (a new timestamped directory and a rename of `..data`) in both mount layouts, without any
//! reload signal (`--reload-interval 1h`: only the directory watch can notice).

use regprobe_testsupport as support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{dockerconfigjson, AtomicVolume, Daemon, Registry, RegistryOptions};

const PW: &str = "Rel0ad-Passw0rd-77";
const WRONG: &str = "Rel0ad-Wr0ng-88";

fn serve(dir: &std::path::Path) -> Daemon {
    Daemon::start(
        &[
            "--no-default-paths",
            "--interval",
            "10m",
            "--reload-interval",
            "1h",
            "--secrets-dir",
            dir.to_str().unwrap(),
        ],
        Stdio::null(),
    )
}

fn wait_metrics(s: &Daemon, what: &str, f: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let m = s.metrics();
        if f(&m) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn line(key: &str, secret: &str) -> String {
    format!("regprobe_success{{registry=\"{key}\",secret=\"{secret}\"}}")
}

#[test]
fn per_secret_volumes_reload_on_kubelet_updates() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let key = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let mut a = support::write_secret_volume(dir.path(), "a", &[(&key, "alice", PW)]);
    let _b = support::write_secret_volume(dir.path(), "b", &[(&key, "alice", PW)]);
    let s = serve(dir.path());
    wait_metrics(&s, "both secrets ok", |m| {
        m.contains(&format!("{} 1", line(&key, "a")))
            && m.contains(&format!("{} 1", line(&key, "b")))
    });

    // The password of `a` is rotated to a wrong one: re-probed within seconds.
    a.publish(&[(
        ".dockerconfigjson",
        dockerconfigjson(&[(&key, "alice", WRONG)]).as_bytes(),
    )]);
    wait_metrics(&s, "a failing", |m| {
        m.contains(&format!("{} 0", line(&key, "a")))
    });

    // A half-written update: `a` reports secret_invalid, its last good credential keeps being
    // probed, `b` is untouched, and the reload is marked unsuccessful.
    a.publish(&[(".dockerconfigjson", b"{\"auths\": {\"")]);
    let m = wait_metrics(&s, "a invalid", |m| {
        m.contains("regprobe_secret_valid{secret=\"a\"} 0")
            && m.contains("regprobe_config_last_reload_successful 0")
    });
    assert!(m.contains(r#"reason="secret_invalid""#), "{m}");
    assert!(
        m.contains(&line(&key, "a")),
        "last good state of a is kept:\n{m}"
    );
    assert!(m.contains(&format!("{} 1", line(&key, "b"))), "{m}");

    // Fixed: valid again, reload successful, and it works again.
    a.publish(&[(
        ".dockerconfigjson",
        dockerconfigjson(&[(&key, "alice", PW)]).as_bytes(),
    )]);
    wait_metrics(&s, "a valid and ok", |m| {
        m.contains("regprobe_secret_valid{secret=\"a\"} 1")
            && m.contains("regprobe_config_last_reload_successful 1")
            && m.contains(&format!("{} 1", line(&key, "a")))
            && !m.contains(r#"reason="secret_invalid""#)
    });

    // Removed: its series disappear. Added: a new one appears.
    std::fs::remove_dir_all(dir.path().join("b")).unwrap();
    let _c = support::write_secret_volume(dir.path(), "c", &[(&key, "alice", PW)]);
    wait_metrics(&s, "b gone, c present", |m| {
        !m.contains("secret=\"b\"") && m.contains(&format!("{} 1", line(&key, "c")))
    });
    assert!(!s.metrics().contains(PW));
}

#[test]
fn projected_volume_reloads_on_kubelet_updates() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let key = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let mut vol = AtomicVolume::new(dir.path());
    let one = dockerconfigjson(&[(&key, "alice", PW)]);
    vol.publish(&[("one/.dockerconfigjson", one.as_bytes())]);
    let s = serve(dir.path());
    wait_metrics(&s, "one ok", |m| {
        m.contains(&format!("{} 1", line(&key, "one")))
    });

    // The projected volume gains a second secret and the first one's password changes, in
    // one swap of the single `..data`.
    let bad = dockerconfigjson(&[(&key, "alice", WRONG)]);
    vol.publish(&[
        ("one/.dockerconfigjson", bad.as_bytes()),
        ("two/.dockerconfigjson", one.as_bytes()),
    ]);
    wait_metrics(&s, "one failing, two ok", |m| {
        m.contains(&format!("{} 0", line(&key, "one")))
            && m.contains(&format!("{} 1", line(&key, "two")))
    });

    // SIGHUP also reloads (here after a change the watch would see anyway; the point is the
    // daemon survives the signal and stays consistent).
    unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    vol.publish(&[("two/.dockerconfigjson", one.as_bytes())]);
    wait_metrics(&s, "one gone", |m| {
        !m.contains("secret=\"one\"") && m.contains(&line(&key, "two"))
    });
}
