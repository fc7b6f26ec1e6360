//! `--web.config.file` (issue 13, `src/webconfig.rs`): exporter-toolkit's format with TLS, a
//! client CA and `basic_auth_users` (bcrypt hashes made by the real `htpasswd -nbB`), against a
//! real `regprobe serve`, spoken to with the real `curl`; the file is re-read when it changes.

use regprobe_testsupport as support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::TestPki;

fn bcrypt_hash(user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "5", user, password])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim().split_once(':').unwrap().1.to_string()
}

/// Writes `content` to `path` by rename (a new inode, as kubelet's atomic writer does).
fn publish(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `curl` status code for `path` (0 when the transfer failed), with `extra` arguments.
fn curl(url: &str, extra: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn tls_client_ca_and_basic_auth_from_the_web_config_file() {
    let pki = TestPki::new();
    let server = pki.leaf(&["127.0.0.1"]);
    let client = pki.client_leaf("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let web = dir.path().join("web.yml");
    let config = |user: &str, password: &str| {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\nbasic_auth_users:\n  {user}: '{}'\n",
            server.cert.display(),
            server.key.display(),
            pki.ca_cert().display(),
            bcrypt_hash(user, password)
        )
    };
    publish(&web, &config("prom", "first-Pa55"));
    let daemon = support::Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let base = format!("https://127.0.0.1:{}", daemon.addr.port());
    let ca = pki.ca_cert().to_str().unwrap().to_string();
    let (cert, key) = (
        client.cert.to_str().unwrap().to_string(),
        client.key.to_str().unwrap().to_string(),
    );
    let tls = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    let start = Instant::now();
    while curl(&format!("{base}/-/healthy"), &tls) != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "HTTPS never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let with = |user_pass: &str, path: &str| {
        let mut a: Vec<&str> = tls.to_vec();
        a.extend(["-u", user_pass]);
        curl(&format!("{base}{path}"), &a)
    };
    // Probes need no password; everything else does.
    assert_eq!(curl(&format!("{base}/-/ready"), &tls), 200);
    assert_eq!(curl(&format!("{base}/metrics"), &tls), 401);
    assert_eq!(with("prom:wrong", "/metrics"), 401);
    assert_eq!(with("prom:first-Pa55", "/metrics"), 200);
    assert_eq!(with("prom:first-Pa55", "/status"), 200);
    // No client certificate, or plain HTTP: no answer.
    assert_eq!(
        curl(&format!("{base}/-/healthy"), &["--cacert", &ca]),
        0,
        "served without a client certificate"
    );
    assert_ne!(
        curl(
            &format!("http://127.0.0.1:{}/-/healthy", daemon.addr.port()),
            &[]
        ),
        200
    );

    // Re-read when it changes: the new password works, the old one no longer does.
    publish(&web, &config("prom", "second-Pa55"));
    let start = Instant::now();
    while with("prom:second-Pa55", "/metrics") != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the new file was not read"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(with("prom:first-Pa55", "/metrics"), 401);
    // A broken file keeps the last good configuration.
    publish(&web, "basic_auth_users:\n  prom: not-a-hash\n");
    assert_eq!(with("prom:second-Pa55", "/metrics"), 200);
}

#[test]
fn an_unusable_web_config_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prom: plaintext\n").unwrap();
    let out = support::output_with_stdin(
        support::regprobe().args([
            "serve",
            "--no-default-paths",
            "--web.config.file",
            web.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a bcrypt hash"));
}
