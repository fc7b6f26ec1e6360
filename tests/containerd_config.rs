//! containerd's own registry credentials (`--containerd-config`): the CRI plugin's
//! `registry.configs."HOST".auth`, used for a host when kubelet passes no credential
//! (containerd 2.x `internal/cri/server/images/image_pull.go`, `credentials(host)`).
//!
//! Real parts: Debian's `docker-registry` with htpasswd Basic auth and a pushed test image. The
//! verdicts are not compared with a running containerd: `ctr` does not go through the CRI
//! plugin, which is where these credentials live.

use regprobe_testsupport as support;

use serde_json::Value;
use support::{Registry, RegistryOptions};

const PW: &str = "Cri-Passw0rd-41d9";
const WRONG: &str = "Cri-Wr0ng-0c2e";

fn config(dir: &std::path::Path, host: &str, user: &str, pass: &str) -> std::path::PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"{host}\".auth]\n  username = \"{user}\"\n  password = \"{pass}\"\n"
        ),
    )
    .unwrap();
    p
}

fn check(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = support::regprobe()
        .args(["check", "--no-default-paths", "--timeout", "5s"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let probes = serde_json::from_str::<Value>(&stdout)
        .ok()
        .and_then(|v| v["probes"].as_array().cloned())
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), probes, stdout)
}

#[test]
fn containerd_uses_its_own_credential_when_kubelet_has_none() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let host = reg.host();
    let image = format!("{host}/team/app:1");
    let d = tempfile::tempdir().unwrap();

    // No pull secret: kubelet passes nothing, containerd's config authenticates.
    let good = config(d.path(), &host, "alice", PW);
    let good = good.to_str().unwrap();
    let (code, probes, out) = check(&[
        "--output",
        "json",
        "--image",
        &image,
        "--containerd-config",
        good,
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probes[0]["success"], true, "{out}");
    assert_eq!(probes[0]["username"], "alice", "{out}");
    assert!(
        out.contains("containerd used its own registry.configs"),
        "check says where the credential came from: {out}"
    );
    assert!(!out.contains(PW));
    let (_, _, text) = check(&["--image", &image, "--containerd-config", good]);
    assert!(
        text.contains("containerd's own registry.configs credential, user alice"),
        "{text}"
    );
    assert!(!text.contains(PW));

    // A wrong one is the credential's fault, not a key mismatch.
    let d2 = tempfile::tempdir().unwrap();
    let wrong = config(d2.path(), &host, "alice", WRONG);
    let (code, probes, out) = check(&[
        "--output",
        "json",
        "--image",
        &image,
        "--containerd-config",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(probes[0]["reason"], "unauthorized", "{out}");
    assert!(!out.contains(WRONG));

    // kubelet passes a credential when a key matches: containerd's own is not used.
    let secrets = tempfile::tempdir().unwrap();
    support::write_dockerconfigjson(secrets.path(), "regcred", &[(host.as_str(), "alice", PW)]);
    let (code, probes, out) = check(&[
        "--output",
        "json",
        "--image",
        &image,
        "--containerd-config",
        wrong.to_str().unwrap(),
        "--secrets-dir",
        secrets.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probes[0]["secret"], "regcred");
    assert!(!out.contains("registry.configs"), "{out}");

    // Another host's entry does not apply (exact host:port keys).
    let d3 = tempfile::tempdir().unwrap();
    let other = config(d3.path(), "127.0.0.1", "alice", PW);
    let (code, probes, _) = check(&[
        "--output",
        "json",
        "--image",
        &image,
        "--containerd-config",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(probes[0]["reason"], "no_matching_credential");

    // A config that is not TOML is a configuration error.
    std::fs::write(d3.path().join("bad.toml"), "[plugins\n").unwrap();
    let (code, _, _) = check(&[
        "--image",
        &image,
        "--containerd-config",
        d3.path().join("bad.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
}
