//! containerd itself as the reference client: Debian's `containerd` 1.6.20 (`/usr/bin/containerd`,
//! `/usr/bin/ctr`) runs as a child process with a private config, and `ctr content fetch` pulls
//! the same image regprobe probes, so parity tests compare regprobe's verdict with containerd's
//! own error text.
//!
//! ```ignore
//! let ctd = Containerd::start();
//! let out = ctd.fetch(&img.reference, FetchOptions::new().plain_http().user("alice", "pw"));
//! assert!(out.success, "{}", out.stderr);
//! let bad = ctd.fetch(&img.reference, FetchOptions::new().plain_http().user("alice", "nope"));
//! assert!(bad.containerd_error().unwrap().contains("401 Unauthorized"));
//! ```
//!
//! # How the daemon runs
//! Never as the system service: `containerd --config DIR/config.toml` with `root`, `state`, the
//! gRPC socket `DIR/containerd.sock` and the ttrpc socket all inside a temp dir, an empty
//! environment, killed and the dir removed on `Drop`. Plugins that need privileges, kernel
//! features or paths outside the temp dir are disabled ([`DISABLED_PLUGINS`]: CRI, `opt` (it
//! creates `/opt/containerd`), every snapshotter but `native`, runtimes, task service, cgroup
//! monitor, restart monitor). What `ctr content fetch` needs stays: content store, bolt metadata
//! (needs at least one snapshotter: `native`), namespaces, leases, images, gc. With that list
//! 1.6.20 starts as root in the sandbox without a warning or error in its log.
//!
//! # Where the pull happens
//! In 1.6 `ctr content fetch` resolves and downloads **in the ctr process** (the daemon only
//! stores content), so the registry traffic, its DNS lookups and its proxy environment are
//! ctr's. [`Containerd::fetch`] runs ctr with an empty environment (no `HTTP(S)_PROXY` of the
//! caller, only `PATH` and `HOME`). Use `127.0.0.1:PORT` references and
//! hosts.toml `server`/`host` URLs with IPs: ctr resolves names with the system resolver.
//!
//! # No cache between fetches
//! `Client.Fetch` (1.6 `client.go`, then `pull.go` `fetch`) always calls `Resolver.Resolve` first, i.e. a `HEAD` of the
//! manifest on the registry with the full auth handshake, even when every blob is already
//! stored: content already present is only skipped for the blob downloads. On top of that every
//! fetch runs in a fresh namespace (`regprobe-N`) and the metadata plugin uses
//! `content_sharing_policy = "isolated"`, so a blob fetched in one namespace is invisible to the
//! next fetch. The self-test proves it: a fetch with a wrong password in the namespace of a
//! successful one still fails. (Within one fetch 1.6 authenticates twice: the resolve's HEAD
//! and the fetcher's manifest GET each start from a 401, so a token registry sees two POSTs
//! for one successful fetch.)
//!
//! # Loopback registries and hosts.toml in 1.6.20 (measured)
//! * A `127.0.0.1:PORT` (or `localhost`) host without a hosts.toml is contacted over **plain
//!   HTTP only**, with or without `--plain-http`: no HTTPS attempt and no HTTP fallback (later
//!   versions differ, see `docs/containerd-kubelet.md` §6.3). A TLS registry on loopback answers `400 Bad Request` to that; reach it with
//!   a hosts.toml whose URLs say `https://` (plus `ca = "…"` for the test CA).
//! * A hosts.toml must hold at least one `[host."…"]` table: a file with only `server = …` is
//!   rejected (`level=error msg="failed to decode hosts.toml" error="invalid `host` tree"` on
//!   ctr's stderr) and the default host is used instead. Write mirrors with
//!   [`mirror_hosts_toml`].
//! * Mirrors get `?ns=<namespace host>` on every request; a mirror that fails is logged as
//!   `msg="trying next host"` ([`FetchOutcome::host_errors`]) and the next host is tried.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildProcess;

/// The containerd daemon (Debian's `containerd` package).
pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
/// containerd's client, `ctr` (same package).
pub const CTR_BIN: &str = "/usr/bin/ctr";

/// How long [`Containerd::start`] waits for `ctr version` to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Default bound of one `ctr content fetch` (killed after that).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Plugins disabled in the private config (containerd 1.6.20 as root in the sandbox).
pub const DISABLED_PLUGINS: &[&str] = &[
    // CRI: needs CNI, cgroups, starts a streaming server; not used by `ctr content fetch`.
    "io.containerd.grpc.v1.cri",
    // Creates /opt/containerd/{bin,lib} (its default path is outside `root`).
    "io.containerd.internal.v1.opt",
    // Container restart monitor: needs tasks.
    "io.containerd.internal.v1.restart",
    // Snapshotters that need modprobe, a btrfs/zfs filesystem, devmapper or overlay mounts.
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.snapshotter.v1.zfs",
    // Runtimes, tasks and the cgroup monitor: need cgroups and shims; no containers here.
    "io.containerd.runtime.v1.linux",
    "io.containerd.runtime.v2.task",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.service.v1.tasks-service",
    "io.containerd.grpc.v1.tasks",
];

/// Plugins disabled by [`Containerd::start_with_tasks`]: as [`DISABLED_PLUGINS`], but the task
/// service, the runtimes (1.6's task service refuses to load without the v1 `linux` runtime
/// plugin, though containers run on v2: `containerd-shim-runc-v2` with Debian's `runc`) and the
/// cgroup monitor stay, so `ctr run` can start containers (on the `native` snapshotter).
pub const TASK_DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.snapshotter.v1.zfs",
];

/// A running containerd 1.6 with a private config and state. Killed, and its temp dir removed,
/// on `Drop`.
pub struct Containerd {
    // Field order matters: the process dies before its directory is removed.
    process: ChildProcess,
    socket: PathBuf,
    next_namespace: AtomicUsize,
    dir: TempDir,
}

/// Options of one `ctr content fetch`.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// `--user user:password`. ctr 1.6 prompts on the terminal when the password is empty (and
    /// reads `":secret"` as the username), so both must be non-empty (an identity token would
    /// need ctr's `--refresh`).
    pub user: Option<(String, String)>,
    /// `--plain-http`: default scheme `http` for hosts without a hosts.toml.
    pub plain_http: bool,
    /// `--hosts-dir DIR`: containerd's `certs.d` layout (`DIR/HOST[:PORT]/hosts.toml`, see
    /// [`hosts_dir`]).
    pub hosts_dir: Option<PathBuf>,
    /// `--debug` (global): ctr logs every registry request and response (`msg="do request"`,
    /// `msg="fetch response received"`, see [`FetchOutcome::requests`]) without changing what
    /// it does. (The progress table on stdout is then off.)
    pub debug: bool,
    /// Run in this namespace instead of a fresh one (to test what a second fetch sees).
    pub namespace: Option<String>,
    /// Kill ctr after this long (default [`FETCH_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl FetchOptions {
    /// No options: a fresh namespace, HTTPS first, no credentials, the default timeout.
    pub fn new() -> FetchOptions {
        FetchOptions::default()
    }

    /// Sets [`FetchOptions::user`].
    pub fn user(mut self, user: &str, password: &str) -> FetchOptions {
        assert!(
            !user.is_empty() && !password.is_empty(),
            "ctr 1.6 --user needs a username and a password (else it prompts)"
        );
        self.user = Some((user.to_string(), password.to_string()));
        self
    }

    /// Sets [`FetchOptions::plain_http`].
    pub fn plain_http(mut self) -> FetchOptions {
        self.plain_http = true;
        self
    }

    /// Sets [`FetchOptions::hosts_dir`].
    pub fn hosts_dir(mut self, dir: &Path) -> FetchOptions {
        self.hosts_dir = Some(dir.to_path_buf());
        self
    }

    /// Sets [`FetchOptions::debug`].
    pub fn debug(mut self) -> FetchOptions {
        self.debug = true;
        self
    }

    /// Sets [`FetchOptions::namespace`].
    pub fn namespace(mut self, ns: &str) -> FetchOptions {
        self.namespace = Some(ns.to_string());
        self
    }

    /// Sets [`FetchOptions::timeout`].
    pub fn timeout(mut self, t: Duration) -> FetchOptions {
        self.timeout = Some(t);
        self
    }
}

/// What one `ctr content fetch` did.
#[derive(Clone, Debug)]
pub struct FetchOutcome {
    /// ctr exited 0.
    pub success: bool,
    /// ctr's exit code (`None` when killed by a signal, e.g. on timeout).
    pub exit_code: Option<i32>,
    /// ctr was killed after the timeout.
    pub timed_out: bool,
    /// Progress table (`resolved`, `done`, `elapsed: …`).
    pub stdout: String,
    /// Error line `ctr: …` (and, with `debug`, the debug log).
    pub stderr: String,
    /// The namespace the fetch ran in.
    pub namespace: String,
    /// How long ctr ran.
    pub elapsed: Duration,
}

impl FetchOutcome {
    /// containerd's error text: the last `ctr: …` line of stderr without the `ctr: ` prefix
    /// (`None` when ctr printed none, e.g. on success or timeout).
    pub fn containerd_error(&self) -> Option<String> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ctr: "))
            .map(|s| s.trim_end().to_string())
    }

    /// [`FetchOutcome::containerd_error`], panicking with the whole output when there is none
    /// or when the fetch succeeded.
    pub fn expect_error(&self) -> String {
        assert!(
            !self.success,
            "expected ctr content fetch to fail; it succeeded:\n{}",
            self.stdout
        );
        self.containerd_error().unwrap_or_else(|| {
            panic!(
                "ctr failed without a `ctr: ` line (timed out: {}); stderr:\n{}",
                self.timed_out, self.stderr
            )
        })
    }

    /// ctr's log lines on stderr (logrus text format: `time=… level=… msg=… key=value`), each
    /// as its fields (quoted values unescaped). At the default level ctr logs `info` and up,
    /// e.g. `msg="trying next host"`; with [`FetchOptions::debug`] also every request.
    pub fn log_entries(&self) -> Vec<BTreeMap<String, String>> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("time="))
            .map(parse_logfmt)
            .collect()
    }

    /// `(host, error)` of every host containerd gave up on (`msg="trying next host"`, logged at
    /// info level): the per-host errors behind the final one, e.g. a mirror that is down.
    pub fn host_errors(&self) -> Vec<(String, String)> {
        self.log_entries()
            .into_iter()
            .filter(|e| e.get("msg").map(String::as_str) == Some("trying next host"))
            .map(|e| {
                (
                    e.get("host").cloned().unwrap_or_default(),
                    e.get("error").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Registry requests in the order ctr made them, `"HEAD http://127.0.0.1:PORT/v2/…"`
    /// (needs [`FetchOptions::debug`]; `msg="do request"`). Token requests are not logged by
    /// 1.6: read them from the [`crate::TokenIssuer`]. Blob downloads run concurrently, so
    /// only the resolve phase (manifest `HEAD`s) has a fixed order.
    pub fn requests(&self) -> Vec<String> {
        self.log_entries()
            .into_iter()
            .filter(|e| e.get("msg").map(String::as_str) == Some("do request"))
            .map(|e| {
                format!(
                    "{} {}",
                    e.get("request.method").map(String::as_str).unwrap_or("?"),
                    e.get("url").map(String::as_str).unwrap_or("?")
                )
            })
            .collect()
    }

    /// Registry responses, `"401 Unauthorized http://127.0.0.1:PORT/v2/…"` (needs
    /// [`FetchOptions::debug`]; `msg="fetch response received"`). Transport errors have no
    /// entry: see [`FetchOutcome::host_errors`].
    pub fn responses(&self) -> Vec<String> {
        self.log_entries()
            .into_iter()
            .filter(|e| e.get("msg").map(String::as_str) == Some("fetch response received"))
            .map(|e| {
                format!(
                    "{} {}",
                    e.get("response.status").map(String::as_str).unwrap_or("?"),
                    e.get("url").map(String::as_str).unwrap_or("?")
                )
            })
            .collect()
    }
}

/// Fields of one logrus text-format line. Values are bare (up to a space) or Go-quoted
/// (`"…"` with `\"`, `\\`, `\n`, `\t`, `\r`, `\xNN`, `\uNNNN` escapes).
pub fn parse_logfmt(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.peek() != Some(&'=') {
            out.insert(key, String::new());
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let b = u8::from_str_radix(&hex, 16).unwrap_or(b'?');
                            value.push(char::from(b));
                        }
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('?');
                            value.push(c);
                        }
                        Some(other) => value.push(other),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key, value);
    }
    out
}

impl Containerd {
    /// Starts containerd with a private config in a temp dir and waits (at most
    /// [`START_TIMEOUT`]) until `ctr version` answers. Panics with containerd's log otherwise.
    pub fn start() -> Containerd {
        Containerd::start_with(DISABLED_PLUGINS)
    }

    /// [`Containerd::start`] with tasks and the runc v2 runtime enabled
    /// ([`TASK_DISABLED_PLUGINS`]), for `ctr run` ([`Containerd::run_container`]). The shim
    /// keeps its socket in `/run/containerd/s/` (1.6 `runtime/v2/shim` `SocketAddress`: not
    /// configurable) and removes it with the container; the empty directory stays.
    pub fn start_with_tasks() -> Containerd {
        Containerd::start_with(TASK_DISABLED_PLUGINS)
    }

    fn start_with(disabled: &[&str]) -> Containerd {
        for bin in [CONTAINERD_BIN, CTR_BIN] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run .ci/install-deps"
            );
        }
        // A unix socket path must fit in sun_path (108 bytes): keep the dir short.
        let tmp = std::env::temp_dir();
        let base = if tmp.as_os_str().len() > 60 {
            PathBuf::from("/tmp")
        } else {
            tmp
        };
        let dir = tempfile::Builder::new()
            .prefix("regprobe-containerd-")
            .tempdir_in(base)
            .expect("temp dir");
        let socket = dir.path().join("containerd.sock");
        assert!(
            socket.as_os_str().len() < 100,
            "socket path too long for sun_path: {}",
            socket.display()
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml(dir.path(), disabled)).unwrap();
        let mut cmd = Command::new(CONTAINERD_BIN);
        cmd.arg("--config")
            .arg(&config)
            .args(["--log-level", "info"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("TMPDIR", dir.path())
            .current_dir(dir.path());
        let mut process =
            ChildProcess::spawn("containerd", cmd, &dir.path().join("containerd.log"));
        let ctd_probe = |socket: &Path| -> Result<(), String> {
            let out = Command::new(CTR_BIN)
                .arg("--address")
                .arg(socket)
                .args(["--timeout", "1s", "version"])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {CTR_BIN}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exited() {
                panic!(
                    "containerd exited ({status}) before answering on {}; its log:\n{}",
                    socket.display(),
                    process.logs()
                );
            }
            let last = if socket.exists() {
                match ctd_probe(&socket) {
                    Ok(()) => break,
                    Err(e) => e,
                }
            } else {
                "socket not created yet".to_string()
            };
            if Instant::now() >= deadline {
                panic!(
                    "containerd did not answer `ctr version` within {START_TIMEOUT:?} ({last}); \
                     its log:\n{}",
                    process.logs()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
        Containerd {
            process,
            socket,
            next_namespace: AtomicUsize::new(1),
            dir,
        }
    }

    /// The gRPC socket (`ctr --address`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp dir (`config.toml`, `containerd.log`, `root/`, `state/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What containerd logged so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The containerd process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// A fresh namespace name, never used before by this containerd.
    pub fn fresh_namespace(&self) -> String {
        format!(
            "regprobe-{}",
            self.next_namespace.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A `ctr` command for this containerd (`--address SOCK`), with an empty environment and
    /// `HOME` in the temp dir. Add a namespace with `-n NS` before the subcommand.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(CTR_BIN);
        cmd.arg("--address")
            .arg(&self.socket)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Digests in the content store of `namespace` (`ctr -n NS content ls -q`).
    pub fn content_digests(&self, namespace: &str) -> Vec<String> {
        let out = self
            .ctr()
            .args(["-n", namespace, "content", "ls", "-q"])
            .output()
            .expect("run ctr content ls");
        assert!(
            out.status.success(),
            "ctr content ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Runs `ctr [--debug] -n NS content fetch [flags] REF` in a fresh namespace (or
    /// `opts.namespace`), killed after `opts.timeout` (default [`FETCH_TIMEOUT`]).
    pub fn fetch(&self, image_ref: &str, opts: FetchOptions) -> FetchOutcome {
        let namespace = opts
            .namespace
            .clone()
            .unwrap_or_else(|| self.fresh_namespace());
        let mut cmd = self.ctr();
        if opts.debug {
            cmd.arg("--debug");
        }
        cmd.args(["--namespace", &namespace, "content", "fetch"]);
        if let Some((u, p)) = &opts.user {
            cmd.arg("--user").arg(format!("{u}:{p}"));
        }
        if opts.plain_http {
            cmd.arg("--plain-http");
        }
        if let Some(dir) = &opts.hosts_dir {
            cmd.arg("--hosts-dir").arg(dir);
        }
        cmd.arg(image_ref);
        let start = Instant::now();
        let out = self.bounded(cmd, opts.timeout.unwrap_or(FETCH_TIMEOUT));
        FetchOutcome {
            success: out.success,
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            stdout: out.stdout,
            stderr: out.stderr,
            namespace,
            elapsed: start.elapsed(),
        }
    }
}

/// Kills and reaps a child still running when dropped (a panic while waiting).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn toml_str(s: &str) -> String {
    // JSON strings are valid TOML basic strings.
    serde_json::to_string(s).unwrap()
}

fn config_toml(dir: &Path, disabled: &[&str]) -> String {
    let p = |name: &str| toml_str(dir.join(name).to_str().expect("utf-8 path"));
    let disabled: Vec<String> = disabled.iter().map(|s| toml_str(s)).collect();
    format!(
        "version = 2
root = {root}
state = {state}
disabled_plugins = [{disabled}]
oom_score = 0

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  address = \"\"

[metrics]
  address = \"\"

[plugins.\"io.containerd.metadata.v1.bolt\"]
  content_sharing_policy = \"isolated\"
",
        root = p("root"),
        state = p("state"),
        disabled = disabled.join(", "),
        grpc = p("containerd.sock"),
        ttrpc = p("containerd-ttrpc.sock"),
    )
}

/// A `--hosts-dir` tree: for each `(namespace host, hosts.toml text)` writes
/// `DIR/<host>/hosts.toml` (e.g. `DIR/127.0.0.1:5000/hosts.toml`; 1.6 looks for
/// `127.0.0.1_5000_`, then `127.0.0.1:5000`, then `_default`). Removed when the `TempDir` drops.
pub fn hosts_dir(entries: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("regprobe-hosts-")
        .tempdir()
        .unwrap();
    for (host, toml) in entries {
        let d = dir.path().join(host);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), toml).unwrap();
    }
    dir
}

/// hosts.toml text: `server = "<server>"` and one `[host."<url>"]` table with capabilities
/// `pull` and `resolve` per mirror, tried in this order before the server. URLs with scheme
/// and IP, e.g. `http://127.0.0.1:5000`. With no mirror the file is the single table
/// `[host."<server>"]` (1.6 rejects a file without a `host` table; listing the server both as
/// `server` and as a table would make containerd try it twice).
pub fn mirror_hosts_toml(server: &str, mirrors: &[&str]) -> String {
    let table = |url: &str| {
        format!(
            "[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
            toml_str(url)
        )
    };
    if mirrors.is_empty() {
        return table(server);
    }
    let mut t = format!("server = {}\n", toml_str(server));
    for m in mirrors {
        t.push('\n');
        t.push_str(&table(m));
    }
    t
}
