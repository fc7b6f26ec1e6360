//! Child processes of the tests (docker-registry, dnsmasq): killed and reaped on `Drop`, and
//! never outliving the test binary.
//!
//! Every child is spawned from one long-lived "spawner" thread with `PR_SET_PDEATHSIG = SIGKILL`.
//! Linux sends that signal when the *thread* that forked the child ends, so forking from the
//! short-lived test threads would kill children that a test keeps in a static; the spawner
//! thread lives as long as the process, so children die exactly when the test binary dies
//! (even on SIGKILL or an aborting panic, where no `Drop` runs).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("support-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(tx)
    })
}

/// A running child process with its combined stdout/stderr in a log file.
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `cmd` (stdin closed, stdout+stderr appended to `log`). Panics if it cannot start.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> ChildProcess {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("create child log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap()
            .send((cmd, tx))
            .expect("spawner thread is gone");
        let child = rx
            .recv()
            .expect("spawner thread is gone")
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildProcess {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until `addr` accepts TCP connections. `Err` if the child exits first or `timeout`
    /// passes; the error text includes the child's output.
    pub fn wait_for_tcp(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited ({status}) before accepting connections on {addr}; its output:\n{}",
                    self.name,
                    self.logs()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not accept connections on {addr} within {timeout:?}; its output:\n{}",
                    self.name,
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL) and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
