//! The shipped image, for real (issue 15): `.ci/image` builds the static release binary and an
//! OCI image layout; skopeo pushes it to Debian's `docker-registry` behind htpasswd on loopback;
//! a private containerd 1.6 pulls it with `ctr images pull --user` (the username and password a
//! pull secret's `auth` holds) and runs it with `ctr run` through `containerd-shim-runc-v2` and
//! Debian's `runc`, as a node starts a pod's container. Inside the container, `regprobe
//! --version` answers, and `regprobe check` against that registry (host network, as the
//! DaemonSet's `hostNetwork: true`) gives the verdict containerd reached.
//!
//! The image is built once per test binary: `$REGPROBE_IMAGE_LAYOUT` when set (`.ci/test`
//! builds it before `cargo test`, checking that two builds give one digest), else `bash
//! .ci/image` into `CARGO_TARGET_TMPDIR` (a release build with LTO: minutes the first time,
//! seconds once cargo's cache holds it).

use regprobe_testsupport as support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::containerd::Containerd;
use support::containerd_run::RunOptions;
use support::image::{push_image_with, PushOptions};
use support::{Registry, RegistryOptions};

const USER: &str = "puller";
const PW: &str = "Img-e2e-Passw0rd-71c3";
const WRONG: &str = "Img-e2e-Wr0ng-22aa";
const BIN: &str = "/usr/local/bin/regprobe";

/// The image layout and the manifest digest `.ci/image` printed (or `index.json` names).
fn image() -> &'static (PathBuf, String) {
    static IMAGE: OnceLock<(PathBuf, String)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("REGPROBE_IMAGE_LAYOUT") {
            let dir = PathBuf::from(dir);
            let digest = tagged_digest(&dir);
            return (dir, digest);
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-e2e-layout");
        let out = Command::new("bash")
            .arg(support::repo_root().join(".ci/image"))
            .arg(&dir)
            .output()
            .expect("run .ci/image");
        assert!(
            out.status.success(),
            ".ci/image failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let digest = stdout.lines().last().unwrap_or_default().trim().to_string();
        assert_eq!(
            digest,
            tagged_digest(&dir),
            "last line of .ci/image's stdout"
        );
        (dir, digest)
    })
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| {
        panic!("read {}: {e}", path.display());
    }))
    .unwrap()
}

/// `sha256:…` of the manifest tagged `latest` in the layout's `index.json`.
fn tagged_digest(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    let tagged: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .collect();
    assert_eq!(tagged.len(), 1, "one manifest tagged latest: {index}");
    tagged[0]["digest"].as_str().unwrap().to_string()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

/// The config says what the DaemonSet relies on, and the one layer holds exactly the
/// scratch-style filesystem of `.ci/image` (and `deploy/Containerfile`), owned by root.
#[test]
fn the_image_is_the_documented_scratch_image() {
    let (layout, digest) = image();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let manifest = read_json(&blob(layout, digest));
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/local/bin:/usr/bin:/bin"])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!([BIN]));
    assert_eq!(c["Cmd"], serde_json::json!(["serve"]));
    let labels = &c["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(!revision.is_empty(), "{labels}");
    assert!(labels["org.opencontainers.image.source"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert!(config["history"].as_array().is_none_or(|h| h.is_empty()));

    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(blob(layout, layers[0]["digest"].as_str().unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut entries: Vec<(String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[f.len() - 1].trim_end_matches('/').to_string(),
                f[1].to_string(),
            )
        })
        .filter(|(path, _)| path != "." && !path.is_empty())
        .collect();
    entries.sort();
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "etc",
            "etc/group",
            "etc/passwd",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/regprobe"
        ],
        "{listing}"
    );
    assert!(entries.iter().all(|(_, owner)| owner == "0/0"), "{listing}");

    // The uid the image runs as has an entry (a name for logs; no NSS lookup needs it).
    let passwd =
        std::fs::read_to_string(support::repo_root().join("deploy/image/rootfs/etc/passwd"))
            .unwrap();
    assert!(passwd.contains(":65532:65532:"), "{passwd}");
}

/// Pull with the pull secret's credential, run `--version`, then `check` from inside the
/// container: the right password is pullable, a wrong one is `unauthorized`, as containerd
/// itself found when pulling without a credential.
#[test]
fn containerd_pulls_and_runs_the_image_and_check_agrees() {
    let (layout, digest) = image();
    let reg = Registry::start(RegistryOptions::htpasswd(&[(USER, PW)]));
    let pushed = push_image_with(
        &reg.host(),
        "platform/regprobe:test",
        &PushOptions {
            creds: Some((USER.into(), PW.into())),
            layout: Some(layout.clone()),
            ..Default::default()
        },
    );
    assert_eq!(
        &pushed.digest, digest,
        "skopeo pushed the manifest unchanged"
    );

    let ctd = Containerd::start_with_tasks();
    let ns = ctd.fresh_namespace();
    let anonymous = ctd.pull(&ns, &pushed.reference, None);
    assert!(
        !anonymous.success,
        "anonymous pull must fail: {anonymous:?}"
    );
    assert!(
        anonymous.stderr.contains("401 Unauthorized"),
        "{}",
        anonymous.stderr
    );
    let pull = ctd.pull(&ns, &pushed.reference, Some((USER, PW)));
    assert!(pull.success, "ctr images pull failed:\n{}", pull.stderr);

    let version = ctd.run_container(
        &ns,
        &pushed.reference,
        &RunOptions::new(),
        &[BIN, "--version"],
    );
    assert!(version.success, "{version:?}\n{}", ctd.logs());
    assert_eq!(
        version.stdout.trim(),
        format!("regprobe {}", env!("CARGO_PKG_VERSION"))
    );

    // The secrets as a kubelet Secret volume would hold them, readable by uid 65532.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (name, pw) in [("good", PW), ("stale", WRONG)] {
        let file = secrets.join(format!("{name}.json"));
        std::fs::write(&file, support::dockerconfigjson(&[(reg.host(), USER, pw)])).unwrap();
        set_mode(&file, 0o644);
    }
    set_mode(dir.path(), 0o755);
    set_mode(&secrets, 0o755);
    let check = |secret: &str| {
        let opts = RunOptions::new().net_host().ro_bind(&secrets, "/secrets");
        let secret_path = format!("/secrets/{secret}.json");
        let args = [
            BIN,
            "check",
            "--no-default-paths",
            "--timeout",
            "10s",
            "--output",
            "json",
            "--secret",
            &secret_path,
            "--image",
            &pushed.reference,
        ];
        let out = ctd.run_container(&ns, &pushed.reference, &opts, &args);
        assert!(!out.timed_out, "{out:?}");
        for leak in [PW, WRONG] {
            assert!(
                !out.stdout.contains(leak) && !out.stderr.contains(leak),
                "leak: {out:?}"
            );
        }
        let json: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("check's JSON ({e}): {out:?}"));
        let probe = json["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["image"] == pushed.reference.as_str())
            .unwrap_or_else(|| panic!("no image probe: {json}"))
            .clone();
        (out.exit_code, probe)
    };

    let (code, probe) = check("good");
    assert_eq!(code, Some(0), "{probe}");
    assert_eq!(probe["success"], true, "{probe}");
    assert_eq!(probe["secret"], "good", "{probe}");
    assert_eq!(probe["digest"], digest.as_str(), "{probe}");

    let (code, probe) = check("stale");
    assert_eq!(code, Some(1), "{probe}");
    assert_eq!(probe["success"], false, "{probe}");
    assert_eq!(probe["reason"], "unauthorized", "{probe}");
    assert_eq!(probe["class"], "credential", "{probe}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The image's filesystem alone, unpacked into an empty directory and entered with `chroot` as
/// uid 65532: no `/dev`, no `/proc`, no libc, no NSS files; only the `/etc/resolv.conf` kubelet
/// always mounts. The static binary starts, `check` reaches the registry, and `serve` answers
/// `/metrics` with the build's revision (`getrandom` uses the syscall, not `/dev/urandom`).
#[test]
fn the_static_binary_runs_in_an_empty_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "chroot needs root (as CI runs .ci/run)"
    );
    let (layout, digest) = image();
    let manifest = read_json(&blob(layout, digest));
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let revision = config["config"]["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .unwrap()
        .to_string();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(blob(
            layout,
            manifest["layers"][0]["digest"].as_str().unwrap(),
        ))
        .arg("-C")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        root.path().join("etc/resolv.conf"),
        "nameserver 127.0.0.1\n",
    )
    .unwrap();
    let reg = Registry::start(RegistryOptions::htpasswd(&[(USER, PW)]));
    std::fs::write(
        root.path().join("etc/secret.json"),
        support::dockerconfigjson(&[(reg.host(), USER, PW)]),
    )
    .unwrap();
    set_mode(root.path(), 0o755);
    set_mode(&root.path().join("etc/secret.json"), 0o644);
    let chroot = |args: &[&str]| {
        let mut cmd = Command::new("/usr/sbin/chroot");
        cmd.arg("--userspec=65532:65532")
            .arg(root.path())
            .arg(BIN)
            .args(args)
            .env_clear();
        cmd
    };

    let out = chroot(&["--version"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("regprobe {}", env!("CARGO_PKG_VERSION"))
    );

    let out = chroot(&[
        "check",
        "--no-default-paths",
        "--timeout",
        "5s",
        "--secret",
        "/etc/secret.json",
        "--registry",
        &reg.host(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = root.path().join("serve.log");
    let mut serve = support::process::ChildProcess::spawn(
        "regprobe serve (chroot)",
        chroot(&[
            "serve",
            "--no-default-paths",
            "--secret",
            "/etc/secret.json",
            "--listen",
            &listen,
        ]),
        &log,
    );
    serve
        .wait_for_tcp(support::loopback(port), std::time::Duration::from_secs(10))
        .unwrap();
    let metrics = support::http::request(support::loopback(port), "GET", "/metrics", &[], b"")
        .expect("GET /metrics")
        .text();
    assert!(
        metrics.contains(&format!(
            "regprobe_build_info{{version=\"{}\",revision=\"{revision}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    serve.kill();
    assert!(!serve.logs().contains("panicked"), "{}", serve.logs());
}
