//! `regprobe check` fed what an SRE has at hand, end to end against a real registry: the output
//! of `kubectl create secret docker-registry … --dry-run=client -o yaml` on standard input, a
//! pod spec (`--pod-spec`) with the node's `config.json`, `--output json` and `--verbose`, and
//! the exit statuses of bad inputs.

use regprobe_testsupport as support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Registry, RegistryOptions};

const PW: &str = "Inp-Passw0rd-8d2e";
const WRONG: &str = "Inp-Wr0ng-4f6a";
const KUBECTL: &str = "/usr/bin/kubectl";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = support::regprobe();
    // Wide enough that no line wraps: these tests read what is said, not its layout.
    cmd.env("COLUMNS", "1000");
    cmd.arg("check")
        .arg("--no-default-paths")
        .args(["--timeout", "5s"])
        .args(args);
    let out = support::output_with_stdin(&mut cmd, stdin);
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let all = format!("{}{}", run.stdout, run.stderr);
    let b64 = |s: String| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    for needle in [
        PW.to_string(),
        WRONG.to_string(),
        b64(format!("alice:{PW}")),
        b64(format!("alice:{WRONG}")),
        "eyJ".to_string(),
    ] {
        assert!(!all.contains(&needle), "output leaks {needle:?}:\n{all}");
    }
    run
}

/// `kubectl create secret docker-registry NAME … --dry-run=client -o yaml` (offline).
fn kubectl_secret(name: &str, server: &str, user: &str, password: &str) -> Vec<u8> {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: this test feeds kubectl's own output to regprobe. Install \
         Debian's kubernetes-client (`apt-get install kubernetes-client`; .ci/check-deploy \
         installs it too)"
    );
    let out = Command::new(KUBECTL)
        .args([
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={server}"),
            &format!("--docker-username={user}"),
            &format!("--docker-password={password}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout={} stderr={}",
            run.stdout, run.stderr
        )
    })
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The issue's acceptance test: kubectl's dry-run output, piped to `check --secret -`.
#[test]
fn kubectl_dry_run_secret_on_standard_input() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let host = reg.host();
    let image = format!("{host}/team/app:1");

    // A wrong password: the credential class, at the authenticated /v2/, with the fix.
    let yaml = kubectl_secret("regcred", &host, "alice", WRONG);
    let run = check(&["--secret", "-", "--image", &image], Some(&yaml));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(
        out.contains("ok    secret")
            && out.contains("regcred: kubernetes.io/dockerconfigjson, read from -"),
        "the manifest's name and type: {out}"
    );
    assert!(
        out.contains(&format!(
            "keys matched, in kubelet's order: {host} (regcred)"
        )),
        "{out}"
    );
    // containerd makes no /v2/ login: its challenge is the manifest request's 401, and the
    // credential is refused on the manifest request, retried to its budget.
    assert!(
        out.contains(&format!(
            "ok    challenge         HEAD http://{host}/v2/team/app/manifests/1 → 401, Basic realm="
        )),
        "{out}"
    );
    assert!(
        out.contains("FAIL  manifest")
            && out.contains(&format!(
                "{host} refused the credential of user `alice` (401)"
            ))
            && out.contains("→ 401  (×5)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "verdict: FAIL credential (unauthorized): {host} rejected the credential of user `alice`: the password is wrong or expired"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "fix: check it with `docker login {host} -u alice`; recreate the secret with `kubectl create secret docker-registry regcred -n NAMESPACE --docker-server={host} --docker-username=alice"
        )),
        "{out}"
    );

    // The right password: the image pulls, exit 0; JSON names the same verdict.
    let yaml = kubectl_secret("regcred", &host, "alice", PW);
    let run = check(
        &["--secret", "-", "--image", &image, "--output", "json"],
        Some(&yaml),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v = json(&run);
    assert_eq!(v["images"][0]["pullable"], true, "{v}");
    assert_eq!(v["images"][0]["verdict"]["ok"], true);
    assert_eq!(v["probes"][0]["secret"], "regcred");
    let steps: Vec<(&str, &str)> = v["probes"][0]["diagnosis"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["mark"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("secret", "ok"),
            ("keys", "ok"),
            ("match", "ok"),
            ("dns", "ok"),
            ("tcp", "ok"),
            ("tls", "skip"),
            ("challenge", "ok"),
            ("token", "skip"),
            ("verify", "ok"),
            ("manifest", "ok"),
        ],
        "{v}"
    );

    // Without --image: the credential walk of the secret, exit 0.
    let run = check(&["--secret", "-"], Some(&yaml));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "verdict: ok: {host} accepted the Basic credential of user `alice`"
        )),
        "{}",
        run.stdout
    );
}

/// A Deployment from `kubectl get -o json` that lists no pull secret, on a node whose
/// `config.json` has the credential: kubelet pulls with the node keyring. Another image of the
/// pod has no key at all, and the pod lists a secret that was not given.
#[test]
fn pod_spec_with_the_node_keyring_as_json() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let open = Registry::start(RegistryOptions::default());
    support::push_image(&open, "lib/sidecar:2", None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = write(
        d,
        "config.json",
        &support::dockerconfigjson(&[(reg.host().as_str(), "alice", PW)]),
    );
    let pod = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"template": {"spec": {
            "imagePullSecrets": [{"name": "regcred"}],
            "initContainers": [{"name": "init", "image": format!("{}/team/app:1", reg.host())}],
            "containers": [
                {"name": "app", "image": format!("{}/team/app:1", reg.host())},
                {"name": "sidecar", "image": format!("{}/lib/sidecar:2", open.host())}
            ]
        }}}
    });
    let pod = write(d, "deploy.json", &pod.to_string());
    let run = check(
        &[
            "--pod-spec",
            s(&pod),
            "--node-config",
            s(&node),
            "--output",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v = json(&run);
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "one walk per distinct image: {v}");
    assert_eq!(images[0]["workload"], "Deployment team/web");
    assert_eq!(
        images[0]["containers"],
        serde_json::json!(["init container init", "app"])
    );
    assert_eq!(images[0]["pullable"], true);
    assert_eq!(images[0]["attempts"][0]["secret"], "node");
    assert_eq!(images[1]["pullable"], true, "the open registry: anonymous");
    assert_eq!(images[1]["attempts"][0]["secret"], Value::Null);
    assert_eq!(
        v["missing_secrets"],
        serde_json::json!([{"secret": "regcred", "workload": "Deployment team/web", "namespace": "team"}])
    );
    assert!(
        images[0]["verdict"]["also"][0]
            .as_str()
            .unwrap()
            .contains("`regcred`, which was not given"),
        "{v}"
    );
    for p in v["probes"].as_array().unwrap() {
        assert!(p["diagnosis"]["steps"].is_array(), "{p}");
        assert!(p["diagnosis"]["verdict"]["ok"].is_boolean(), "{p}");
    }

    // The same pod, text: the missing secret has its own line, and in the verdict.
    let run = check(&["--pod-spec", s(&pod), "--node-config", s(&node)], None);
    assert!(
        run.stdout
            .contains("warn  secret            regcred: listed in the pod's imagePullSecrets but not given to regprobe"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("also: the pod lists imagePullSecrets `regcred`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 images, 2 pullable, 0 not pullable"),
        "{}",
        run.stdout
    );

    // --registry limits the images walked.
    let run = check(
        &[
            "--pod-spec",
            s(&pod),
            "--node-config",
            s(&node),
            "--registry",
            &open.host(),
        ],
        None,
    );
    assert!(run.stdout.contains("1 image, 1 pullable"), "{}", run.stdout);
}

/// `--verbose` shows every exchange of every step, with what the request carried, redacted.
#[test]
fn verbose_shows_each_exchange_with_authorization_redacted() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let f = support::write_dockerconfigjson(dir.path(), "good", &[(reg.host(), "alice", PW)]);
    let run = check(&["--secret", s(&f), "-v"], None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(out.contains("[challenge] GET http://"), "{out}");
    assert!(
        out.contains("WWW-Authenticate: Basic realm=\"regprobe-test\""),
        "{out}"
    );
    assert!(out.contains("[verify] GET http://"), "{out}");
    assert!(out.contains("> Authorization: Basic <redacted>"), "{out}");
    let quiet = check(&["--secret", s(&f)], None);
    assert!(!quiet.stdout.contains("[challenge]"), "{}", quiet.stdout);

    // An image: the credential's /v2/ exchanges, then containerd's manifest requests.
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let image = format!("{}/team/app:1", reg.host());
    let run = check(&["--secret", s(&f), "--image", &image, "-v"], None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(out.contains("> Authorization: Basic <redacted>"), "{out}");
    assert!(
        out.contains(&format!(
            "[manifest] HEAD http://{}/v2/team/app/manifests/1 → 200",
            reg.host()
        )),
        "{out}"
    );
}

/// Inputs that cannot be used are exit status 2, with a message that names them.
#[test]
fn bad_pod_specs_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = check(&["--pod-spec", "/nonexistent/pod.yaml"], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);

    let svc = write(d, "svc.yaml", "kind: Service\nmetadata: {name: web}\n");
    let run = check(&["--pod-spec", s(&svc)], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("no Pod or workload found (kinds seen: Service)"),
        "{}",
        run.stderr
    );

    let bad = write(
        d,
        "bad.yaml",
        "kind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: Registry.Example/App}]\n",
    );
    let run = check(&["--pod-spec", s(&bad)], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("Pod web (app): image \"Registry.Example/App\""),
        "{}",
        run.stderr
    );

    let run = check(&["--pod-spec", "-", "--secret", "-"], Some(b""));
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("standard input"), "{}", run.stderr);

    // A pod spec on standard input, filtered by --registry to nothing.
    let pod = b"kind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: registry.example.com/app:1}]\n";
    let run = check(
        &["--pod-spec", "-", "--registry", "other.example.com"],
        Some(pod),
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("no image on the --registry given"),
        "{}",
        run.stderr
    );
}

/// Durations too long for the clock are usage errors (exit 2) with a clear message, not a panic
/// when the deadline overflows: `--timeout 500000000000y` used to panic.
#[test]
fn out_of_range_durations_are_usage_errors() {
    for (cmd, flag, value) in [
        ("check", "--timeout", "500000000000y"),
        ("check", "--timeout", "2h"),
        ("serve", "--interval", "500000000000y"),
        ("serve", "--startup-spread", "30d"),
        ("serve", "--reload-interval", "8d"),
    ] {
        let out = support::regprobe()
            .args([cmd, "--no-default-paths", flag, value])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} {flag} {value}: {stderr}");
        assert!(
            stderr.contains("is longer than the") && !stderr.contains("panicked"),
            "{cmd} {flag} {value}: {stderr}"
        );
    }
}

/// A reader that goes away (`regprobe check … | head -3`) ends the output quietly: no panic on
/// the broken pipe, and the exit status is still the verdict's (1: the secret does not parse).
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("broken.json");
    std::fs::write(&secret, r#"{"auths": {"r.test": {"auth": "%%%"}}}"#).unwrap();
    let mut child = support::regprobe()
        .args(["check", "--no-default-paths", "--secret"])
        .arg(&secret)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before regprobe writes anything: every write is EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}
