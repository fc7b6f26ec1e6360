//! Running the `regprobe` binary under test: one-shot commands and the daemon.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};

/// The proxy variables a CI environment may set: removed, because test traffic goes to loopback
/// and a proxy must not change any verdict (tests that exercise proxies set them again).
pub const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A `regprobe` command with the environment's proxy variables removed, and `COLUMNS=1000` so
/// that text output does not wrap: tests of content assert on whole lines, whatever terminal
/// runs them (tests of the layout, `tests/check_width.rs`, set or remove `COLUMNS` themselves).
pub fn regprobe() -> Command {
    let mut cmd = Command::new(crate::regprobe_bin());
    for k in PROXY_VARS {
        cmd.env_remove(k);
    }
    cmd.env("COLUMNS", "1000");
    cmd
}

/// Runs `cmd` with `stdin` written to it (standard input closed when `None`) and collects its
/// standard output and error.
pub fn output_with_stdin(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run regprobe");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input)
            .expect("write regprobe's stdin");
    }
    child.wait_with_output().expect("wait for regprobe")
}

/// A running `regprobe serve` on a free loopback port. Killed and reaped on `Drop`.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Daemon {
    /// Starts `regprobe serve ARGS --listen 127.0.0.1:PORT`, its standard error to `stderr`.
    pub fn start(args: &[&str], stderr: Stdio) -> Daemon {
        let port = crate::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = regprobe()
            .arg("serve")
            .args(args)
            .arg("--listen")
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn regprobe serve");
        Daemon { child, addr }
    }

    /// The body of `GET path`, or `""` when it does not answer (yet).
    pub fn get(&self, path: &str) -> String {
        crate::http::request(self.addr, "GET", path, &[], b"")
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// `GET /metrics` as Prometheus scrapes it (OpenMetrics asked for), or `""`.
    pub fn metrics(&self) -> String {
        crate::http::request(
            self.addr,
            "GET",
            "/metrics",
            &[crate::http::ACCEPT_OPENMETRICS],
            b"",
        )
        .map(|r| r.text())
        .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
