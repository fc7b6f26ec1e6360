//! Pulling and running images with the private containerd ([`Containerd::start_with_tasks`]):
//! `ctr images pull` (resolve, fetch, unpack onto the `native` snapshotter) and `ctr run` with
//! Debian's `runc` through `containerd-shim-runc-v2`, the way a node starts a pod's container.
//!
//! ```ignore
//! let ctd = Containerd::start_with_tasks();
//! let ns = ctd.fresh_namespace();
//! let pull = ctd.pull(&ns, "127.0.0.1:5000/regprobe:test", Some(("alice", "pw")));
//! assert!(pull.success, "{}", pull.stderr);
//! let out = ctd.run_container(&ns, "127.0.0.1:5000/regprobe:test", &RunOptions::new().net_host(), &["--version"]);
//! ```
//!
//! In 1.6 `ctr images pull` talks to the registry from the ctr process (as `content fetch`,
//! see [`crate::containerd`]): plain HTTP for `127.0.0.1:PORT` with `--plain-http`, `--user`
//! for a Basic or token registry (the username and password of a pull secret's `auth`).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::containerd::{Containerd, KillOnDrop};

/// Default bound of one `ctr images pull` or `ctr run`.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);

/// What one bounded `ctr` command did.
#[derive(Clone, Debug)]
pub struct CtrOutcome {
    /// ctr exited 0 (and was not killed).
    pub success: bool,
    /// ctr's exit code: for `ctr run`, the container process's exit status.
    pub exit_code: Option<i32>,
    /// ctr was killed after the timeout.
    pub timed_out: bool,
    /// Its stdout (for `ctr run` without a terminal: the container's stdout).
    pub stdout: String,
    /// Its stderr (for `ctr run`: the container's stderr, then ctr's own errors).
    pub stderr: String,
}

/// Options of [`Containerd::run_container`].
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--net-host`: the host's network namespace (and its `/etc/hosts`, `/etc/resolv.conf`),
    /// as a `hostNetwork: true` DaemonSet pod.
    pub net_host: bool,
    /// `--mount type=bind,src=HOST,dst=CONTAINER,options=rbind:ro`, read-only.
    pub ro_binds: Vec<(PathBuf, String)>,
    /// Kill ctr after this long (default [`CTR_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl RunOptions {
    /// No host network, no mounts, the default timeout.
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// Sets [`RunOptions::net_host`].
    pub fn net_host(mut self) -> RunOptions {
        self.net_host = true;
        self
    }

    /// Adds one of [`RunOptions::ro_binds`].
    pub fn ro_bind(mut self, host: &Path, container: &str) -> RunOptions {
        self.ro_binds
            .push((host.to_path_buf(), container.to_string()));
        self
    }
}

impl Containerd {
    /// `ctr -n NS images pull --plain-http --snapshotter native [--user U:P] REF`: resolve,
    /// fetch and unpack, bounded by [`CTR_TIMEOUT`].
    pub fn pull(&self, namespace: &str, image_ref: &str, user: Option<(&str, &str)>) -> CtrOutcome {
        let mut cmd = self.ctr();
        cmd.args(["--namespace", namespace, "images", "pull", "--plain-http"])
            .args(["--snapshotter", "native"]);
        if let Some((u, p)) = user {
            assert!(
                !u.is_empty() && !p.is_empty(),
                "ctr 1.6 --user needs a username and a password (else it prompts)"
            );
            cmd.arg("--user").arg(format!("{u}:{p}"));
        }
        cmd.arg(image_ref);
        self.bounded(cmd, CTR_TIMEOUT)
    }

    /// `ctr -n NS run --rm --snapshotter native [--net-host] [--mount ...] REF ID ARGS...` (with
    /// the FIFOs and runc's state in the temp dir, not under `/run/containerd`), as
    /// the image's user, waiting for the container and removing it. With `args`, they are the
    /// whole command line (`args[0]` is the program): ctr 1.6 `run` applies
    /// `oci.WithProcessArgs(args...)` after the image config, replacing entrypoint and `Cmd`;
    /// without them the image's entrypoint and `Cmd` run.
    pub fn run_container(
        &self,
        namespace: &str,
        image_ref: &str,
        opts: &RunOptions,
        args: &[&str],
    ) -> CtrOutcome {
        let id = format!(
            "c{}",
            self.fresh_namespace().trim_start_matches("regprobe-")
        );
        let mut cmd = self.ctr();
        cmd.args([
            "--namespace",
            namespace,
            "run",
            "--rm",
            "--snapshotter",
            "native",
        ])
        .arg("--fifo-dir")
        .arg(self.dir().join("fifo"))
        .arg("--runc-root")
        .arg(self.dir().join("runc"));
        if opts.net_host {
            cmd.arg("--net-host");
        }
        for (host, container) in &opts.ro_binds {
            cmd.arg("--mount").arg(format!(
                "type=bind,src={},dst={container},options=rbind:ro",
                host.display()
            ));
        }
        cmd.arg(image_ref).arg(&id).args(args);
        self.bounded(cmd, opts.timeout.unwrap_or(CTR_TIMEOUT))
    }

    /// Runs `cmd` (a `ctr` command) with stdout/stderr captured in files, killed after
    /// `timeout`; shared by [`Containerd::fetch`] and the pull/run helpers here.
    pub(crate) fn bounded(&self, mut cmd: Command, timeout: Duration) -> CtrOutcome {
        let scratch = tempfile::Builder::new()
            .prefix("ctr-")
            .tempdir_in(self.dir())
            .unwrap();
        let out_path = scratch.path().join("stdout");
        let err_path = scratch.path().join("stderr");
        cmd.stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap());
        // SAFETY: prctl is async-signal-safe; ctr is waited for (or killed) before this
        // returns, the signal only covers the test process being killed meanwhile.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", crate::containerd::CTR_BIN));
        let mut guard = KillOnDrop(child);
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = guard.0.try_wait().expect("wait for ctr") {
                break status;
            }
            if start.elapsed() >= timeout {
                timed_out = true;
                let _ = guard.0.kill();
                break guard.0.wait().expect("reap ctr");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        CtrOutcome {
            success: status.success() && !timed_out,
            exit_code: status.code(),
            timed_out,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }
}
