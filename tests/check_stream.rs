//! `check` streams: each result is printed as soon as it and the ones listed before it are
//! known, and on a terminal a progress line on standard error names what is still running.
//! A healthy real registry (secret `a-good`, listed first) next to a fake that accepts TCP and
//! never answers (secret `b-stuck`; imitates a stuck registry or a firewall that completes the
//! handshake): the healthy result is on the terminal while the stuck probe is still running.
//! Run under a pseudo-terminal (python3's `pty`); piped, no progress line is written.

use regprobe_testsupport as support;

use std::process::{Command, Stdio};
use support::{Registry, RegistryOptions};

const PW: &str = "Stream-Passw0rd-77e1";

/// Runs `regprobe ARGS` with standard input, output and error on one pseudo-terminal and
/// returns everything it wrote there, and its exit status.
const PTY_RUN: &str = r#"
import os, pty, subprocess, sys
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
out = b""
while True:
    try:
        data = os.read(master, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
sys.stdout.buffer.write(out)
sys.exit(p.wait())
"#;

struct Setup {
    _registry: Registry,
    _stuck: support::FakeServer,
    _vols: Vec<support::AtomicVolume>,
    _dir: tempfile::TempDir,
    secrets: std::path::PathBuf,
    good: String,
    stuck: String,
}

fn setup() -> Setup {
    let registry = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let stuck = support::fakes::hang();
    let good = format!("127.0.0.1:{}", registry.port());
    let stuck_key = stuck.host();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let vols = vec![
        support::write_secret_volume(&secrets, "a-good", &[(&good, "alice", PW)]),
        support::write_secret_volume(&secrets, "b-stuck", &[(&stuck_key, "alice", PW)]),
    ];
    Setup {
        _registry: registry,
        _stuck: stuck,
        _vols: vols,
        _dir: dir,
        secrets,
        good,
        stuck: stuck_key,
    }
}

fn args(s: &Setup) -> Vec<String> {
    [
        "check",
        "--no-default-paths",
        "--timeout",
        "3s",
        "--secrets-dir",
        s.secrets.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Runs regprobe with `args` under a pseudo-terminal ([`PTY_RUN`]), without proxies or colour:
/// its exit code and everything the terminal showed.
fn on_a_pty(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PTY_RUN)
        .arg(support::regprobe_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .expect("run python3");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_results_stream_and_a_progress_line_names_the_stuck_probe() {
    let s = setup();
    let (code, tty) = on_a_pty(&args(&s));
    assert_eq!(code, Some(1), "{tty}");
    let good_at = tty
        .find(&format!("ok {}  secret=a-good", s.good))
        .unwrap_or_else(|| panic!("no healthy result:\n{tty}"));
    let progress = format!("running 1: {} secret=b-stuck ", s.stuck);
    // The healthy result was printed, then the terminal kept saying what still runs.
    let progress_after = tty[good_at..]
        .find(&progress)
        .unwrap_or_else(|| panic!("no progress line after the healthy result:\n{tty:?}"));
    let stuck_at = tty
        .find(&format!("FAIL {}  secret=b-stuck", s.stuck))
        .unwrap_or_else(|| panic!("no stuck result:\n{tty}"));
    assert!(good_at + progress_after < stuck_at, "{tty:?}");
    // The line is erased before the next result and at the end.
    assert!(tty.contains("\r\x1b[2K"), "{tty:?}");
    assert!(tty.contains("2 probes, 1 ok, 1 failed"), "{tty}");
}

#[test]
fn piped_there_is_no_progress_line_and_json_stays_one_document() {
    let s = setup();
    let mut cmd = support::regprobe();
    cmd.args(args(&s)).stdout(Stdio::piped());
    let text = support::output_with_stdin(&mut cmd, None);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(!stderr.contains("running"), "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let stdout = String::from_utf8_lossy(&text.stdout);
    // Plan order: a-good before b-stuck, whatever finished first.
    let a = stdout.find("secret=a-good").unwrap();
    let b = stdout.find("secret=b-stuck").unwrap();
    assert!(a < b, "{stdout}");

    let mut cmd = support::regprobe();
    cmd.args(args(&s)).args(["--output", "json"]);
    let json = support::output_with_stdin(&mut cmd, None);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    let secrets: Vec<&str> = doc["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["secret"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["a-good", "b-stuck"]);
}

#[test]
fn image_checks_show_the_images_still_pulling_on_a_terminal() {
    let s = setup();
    let image = format!("{}/team/app:1", s.stuck);
    let mut a = args(&s);
    a.extend(["--image".to_string(), image.clone()]);
    let (code, tty) = on_a_pty(&a);
    assert_eq!(code, Some(1), "{tty}");
    let progress = tty
        .find(&format!("running 1: image {image} "))
        .unwrap_or_else(|| panic!("no progress line naming the image:\n{tty:?}"));
    let verdict = tty
        .find(&format!("image {image}\n"))
        .or_else(|| tty.find(&format!("image {image}\r\n")))
        .unwrap_or_else(|| panic!("no diagnosis of the image:\n{tty:?}"));
    assert!(progress < verdict, "{tty:?}");
}

/// With images, each image is printed once it and the images before it are known: the healthy
/// image (listed first, on the real registry) is on standard output while the pull of the image
/// on the stuck fake is still running. The stuck pull has 30 s; the healthy verdict must come
/// within 15 s (it takes well under one), which printing everything at the end cannot do.
#[test]
fn images_stream_in_order_while_a_later_pull_is_stuck() {
    use std::io::BufRead;
    let s = setup();
    support::push_image(&s._registry, "team/app:1", Some(("alice", PW)));
    let good_image = format!("{}/team/app:1", s.good);
    let stuck_image = format!("{}/team/app:1", s.stuck);
    let mut child = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--timeout",
            "30s",
            "--secrets-dir",
            s.secrets.to_str().unwrap(),
        ])
        .args(["--image", &good_image, "--image", &stuck_image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = String::new();
    let verdict = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.trim_start().starts_with("verdict:") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(verdict, "no verdict while the stuck pull runs:\n{seen}");
    assert!(still_running, "{seen}");
    assert!(seen.contains(&format!("image {good_image}")), "{seen}");
    assert!(seen.contains("verdict: ok"), "{seen}");
    assert!(!seen.contains(&stuck_image), "{seen}");
}
