//! One safe file reader for every input (issue 13, `src/fsread.rs`): a FIFO named
//! `.dockerconfigjson` (what a hostile or broken volume can hold) is a clear per-secret error,
//! not a hang, in `check` and in `serve` (whose `/-/healthy` keeps answering and which still
//! ends on SIGTERM); `--pod-spec /dev/zero` is a usage error, not 1 GB of memory.

use regprobe_testsupport as support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `DIR/secrets/fifo/.dockerconfigjson` as a FIFO nobody writes to.
fn fifo_secret(dir: &Path) -> std::path::PathBuf {
    let secrets = dir.join("secrets");
    let one = secrets.join("fifo");
    std::fs::create_dir_all(&one).unwrap();
    let fifo = one.join(".dockerconfigjson");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    secrets
}

/// Waits for `child` at most `limit`; kills it (and fails) when it outlives that.
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_reports_a_fifo_secret_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = fifo_secret(dir.path());
    let out = dir.path().join("out.json");
    let mut child = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--output",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_at_most(
        &mut child,
        Duration::from_secs(20),
        "check on a FIFO secret",
    );
    let json = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let p = &v["probes"][0];
    assert_eq!(p["secret"], "fifo", "{json}");
    assert_eq!(p["reason"], "secret_invalid", "{json}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not a regular file (a FIFO)"),
        "{json}"
    );
    assert_eq!(status.code(), Some(1), "{json}");
}

#[test]
fn serve_stays_healthy_and_stops_on_sigterm_with_a_fifo_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = fifo_secret(dir.path());
    let mut daemon = support::Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--reload-interval",
            "1s",
        ],
        Stdio::null(),
    );
    let start = Instant::now();
    loop {
        if support::http::request(daemon.addr, "GET", "/-/healthy", &[], b"")
            .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "/-/healthy never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Across a few reloads of the FIFO.
    std::thread::sleep(Duration::from_millis(2_500));
    let r = support::http::request(daemon.addr, "GET", "/-/healthy", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let status = daemon.get("/status");
    assert!(status.contains("a FIFO"), "{status}");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) },
        0
    );
    let s = wait_at_most(
        &mut daemon.child,
        Duration::from_secs(20),
        "serve after SIGTERM",
    );
    assert!(s.success(), "{s:?}");
}

#[test]
fn pod_spec_dev_zero_is_a_clear_usage_error() {
    let mut child = support::regprobe()
        .args(["check", "--no-default-paths", "--pod-spec", "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_at_most(
        &mut child,
        Duration::from_secs(20),
        "check --pod-spec /dev/zero",
    );
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(
        err.contains("not a regular file (a character device)"),
        "{err}"
    );
}
