//! kubelet's exec credential-provider plugins, end to end.
//!
//! Real parts: the plugins are executables (shell scripts written into a temporary bin dir,
//! `chmod +x`) speaking kubelet's protocol on stdin/stdout; the credentials they return are
//! probed against Debian's `docker-registry` (htpasswd Basic auth, and token auth with the
//! test issuer). The well-behaved plugins answer as the clouds' do:
//! * ecr-credential-provider (cloud-provider-aws `cmd/ecr-credential-provider`): `cacheKeyType:
//!   Registry`, one key per registry host, user `AWS`, a `cacheDuration` from the token's expiry;
//! * the Azure plugin (cloud-provider-azure `acr-credential-provider`): `cacheKeyType: Image`,
//!   globbed keys such as `*.azurecr.io`.
//!
//! The misbehaving ones do what no cloud's plugin does on purpose, but broken nodes show:
//! non-zero exit with a message, a hang, a wrong `apiVersion`, garbage, 10 MB of output, an
//! absent or non-executable binary.

use regprobe_testsupport as support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::{Registry, RegistryOptions, TokenIssuer, TokenIssuerOptions, TokenUser};

const PW: &str = "Pr0vider-Passw0rd-5e2b";
const WRONG: &str = "Pr0vider-Wr0ng-77aa";
const V1: &str = "credentialprovider.kubelet.k8s.io/v1";

/// A bin dir and a config next to it.
struct Node {
    dir: tempfile::TempDir,
    providers: Vec<String>,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        Node {
            dir,
            providers: Vec::new(),
        }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("credential-provider-config.yaml")
    }

    /// The file each plugin run appends its request to (one line per run).
    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.requests"))
    }

    fn runs(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.log(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Adds a provider whose plugin is the shell `body` (after the request is appended to its
    /// log), asked for `match_images`.
    fn plugin(&mut self, name: &str, match_images: &[&str], cache: &str, body: &str) {
        let script = format!(
            "#!/bin/sh\nreq=$(cat)\nprintf '%s args=%s env=%s\\n' \"$req\" \"$*\" \"$PLUGIN_ENV\" >> '{}'\n{body}\n",
            self.log(name).display()
        );
        let path = self.bin().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.entry(name, match_images, cache);
    }

    fn entry(&mut self, name: &str, match_images: &[&str], cache: &str) {
        let images: Vec<String> = match_images
            .iter()
            .map(|m| format!("      - \"{m}\"\n"))
            .collect();
        self.providers.push(format!(
            "  - name: {name}\n    matchImages:\n{}    defaultCacheDuration: \"{cache}\"\n    apiVersion: {V1}\n    args: [get-credentials]\n    env:\n      - name: PLUGIN_ENV\n        value: from-config\n",
            images.concat()
        ));
        std::fs::write(
            self.config(),
            format!(
                "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n{}",
                self.providers.concat()
            ),
        )
        .unwrap();
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--image-credential-provider-config".into(),
            self.config().display().to_string(),
            "--image-credential-provider-bin-dir".into(),
            self.bin().display().to_string(),
        ]
    }
}

/// The answer a plugin prints (`auth` of `key → user/password`).
fn answer(cache_key_type: &str, duration: Option<&str>, auth: &[(&str, &str, &str)]) -> String {
    let auth: serde_json::Map<String, Value> = auth
        .iter()
        .map(|(k, u, p)| {
            (
                k.to_string(),
                serde_json::json!({"username": u, "password": p}),
            )
        })
        .collect();
    let mut v = serde_json::json!({
        "kind": "CredentialProviderResponse",
        "apiVersion": V1,
        "cacheKeyType": cache_key_type,
        "auth": auth,
    });
    if let Some(d) = duration {
        v["cacheDuration"] = d.into();
    }
    format!("cat <<'EOF'\n{v}\nEOF")
}

fn check(node: &Node, extra: &[&str]) -> Output {
    support::regprobe()
        .args(["check", "--no-default-paths", "--timeout", "5s"])
        .args(node.flags())
        .args(extra)
        .output()
        .unwrap()
}

fn probes(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["probes"].as_array().unwrap().clone()
}

fn by_secret<'a>(probes: &'a [Value], secret: &str) -> &'a Value {
    probes
        .iter()
        .find(|p| p["secret"] == secret)
        .unwrap_or_else(|| panic!("no probe of {secret}: {probes:#?}"))
}

fn assert_no_password(what: &str, text: &str) {
    use base64::Engine as _;
    for needle in [
        PW.to_string(),
        WRONG.to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{PW}")),
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{PW}")),
    ] {
        assert!(!text.contains(&needle), "{what} leaks {needle}: {text}");
    }
}

/// An ECR-like plugin (Registry cache key) whose `matchImages` is the registry's host: the
/// host is probed with its answer (Basic auth), kubelet's request and the config's args and env
/// reach the plugin, and a wrong password from the plugin is `unauthorized` like any other.
#[test]
fn an_ecr_like_provider_is_probed_at_its_match_host() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("AWS", PW)]));
    let host = reg.host();
    let mut node = Node::new();
    node.plugin(
        "ecr-credential-provider",
        &[&host],
        "12h",
        &answer("Registry", Some("6h"), &[(&host, "AWS", PW)]),
    );
    let out = check(&node, &["--output", "json"]);
    let ps = probes(&out);
    let p = by_secret(&ps, "provider:ecr-credential-provider");
    assert_eq!(p["success"], true, "{p:#}");
    assert_eq!(p["registry"], host.as_str());
    assert_eq!(out.status.code(), Some(0));
    let runs = node.runs("ecr-credential-provider");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let request: Value = serde_json::from_str(runs[0].split(" args=").next().unwrap()).unwrap();
    assert_eq!(
        request,
        serde_json::json!({"kind": "CredentialProviderRequest", "apiVersion": V1, "image": host})
    );
    assert!(
        runs[0].ends_with("args=get-credentials env=from-config"),
        "{}",
        runs[0]
    );
    assert_no_password("check json", &String::from_utf8_lossy(&out.stdout));
    // The walk's provider step: which plugin, how it exited, the cache, the keys (no values).
    let text = check(&node, &["-v"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let step = text
        .lines()
        .find(|l| l.trim_start().starts_with("ok    provider"))
        .unwrap_or_else(|| panic!("no provider step: {text}"));
    assert!(
        step.contains(&format!("ecr-credential-provider matched {host}")),
        "{step}"
    );
    for want in [
        "exit status 0",
        "cacheKeyType Registry, cached until",
        &format!("keys: {host}"),
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert_no_password("check text", &text);

    let mut wrong = Node::new();
    wrong.plugin(
        "ecr-credential-provider",
        &[&host],
        "12h",
        &answer("Registry", None, &[(&host, "AWS", WRONG)]),
    );
    let out = check(&wrong, &["--output", "json", "-v"]);
    let ps = probes(&out);
    let p = by_secret(&ps, "provider:ecr-credential-provider");
    assert_eq!(p["reason"], "unauthorized", "{p:#}");
    assert_eq!(out.status.code(), Some(1));
    let text = check(&wrong, &["-v"]);
    for o in [&out, &text] {
        assert_no_password("check", &String::from_utf8_lossy(&o.stdout));
        assert_no_password("check stderr", &String::from_utf8_lossy(&o.stderr));
    }
}

/// An Azure-like plugin (Image cache key, globbed keys) with only a wildcard `matchImages`:
/// `check` alone says it needs an image; `check --image` pulls an image only the plugin's
/// credential can pull (token auth), where without the plugin kubelet finds no credential.
#[test]
fn an_acr_like_provider_with_globbed_keys_pulls_what_only_it_can() {
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new().user(
            TokenUser::new("00000000-0000-0000-0000-000000000000", PW)
                .pull("team/app")
                .push("team/app"),
        ),
    );
    let reg = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    support::push_image(
        &reg,
        "team/app:1",
        Some(("00000000-0000-0000-0000-000000000000", PW)),
    );
    let glob = format!("*.0.0.1:{}", reg.port());
    let image = format!("{}/team/app:1", reg.host());
    let mut node = Node::new();
    node.plugin(
        "acr-credential-provider",
        &[&glob],
        "10m",
        &answer(
            "Image",
            None,
            &[(&glob, "00000000-0000-0000-0000-000000000000", PW)],
        ),
    );
    // Nothing to probe without an image: said, not silently passed.
    let out = check(&node, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to check"), "{err}");
    assert!(
        err.contains("credential provider acr-credential-provider matches only wildcard patterns"),
        "{err}"
    );
    assert!(err.contains("--image"), "{err}");

    let out = check(&node, &["--output", "json", "--image", &image]);
    let ps = probes(&out);
    assert_eq!(out.status.code(), Some(0), "{ps:#?}");
    let pull = ps.iter().find(|p| p["image"] == image.as_str()).unwrap();
    assert_eq!(pull["success"], true, "{pull:#}");
    assert_eq!(pull["secret"], "provider:acr-credential-provider");
    let runs = node.runs("acr-credential-provider");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0].contains(&format!("\"image\":\"{}/team/app\"", reg.host())),
        "kubelet asks for repoToPull: {}",
        runs[0]
    );
    assert_no_password("check json", &String::from_utf8_lossy(&out.stdout));

    // A pod with no imagePullSecrets: kubelet uses the provider's credential for its image.
    let pod = node.dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: team\nspec:\n  containers:\n    - name: web\n      image: {image}\n"),
    )
    .unwrap();
    let out = check(
        &node,
        &["--output", "json", "--pod-spec", pod.to_str().unwrap()],
    );
    let ps = probes(&out);
    assert_eq!(out.status.code(), Some(0), "{ps:#?}");
    let pull = ps.iter().find(|p| p["image"] == image.as_str()).unwrap();
    assert_eq!(pull["success"], true, "{pull:#}");
    assert_eq!(pull["secret"], "provider:acr-credential-provider");

    // The provider fails: kubelet pulls anonymously and is refused, because of the provider.
    let mut failing = Node::new();
    failing.plugin(
        "acr-credential-provider",
        &[&glob],
        "10m",
        "echo 'AADSTS700016: application not found in the directory' >&2\nexit 1",
    );
    let out = check(&failing, &["--output", "json", "--image", &image]);
    assert_eq!(out.status.code(), Some(1));
    let ps = probes(&out);
    let pull = ps.iter().find(|p| p["image"] == image.as_str()).unwrap();
    assert_eq!(pull["reason"], "provider_failed", "{pull:#}");
    assert_eq!(pull["class"], "credential");
    let d = pull["detail"].as_str().unwrap();
    assert!(
        d.starts_with("credential provider acr-credential-provider gave kubelet no credential"),
        "{d}"
    );
    let p = by_secret(&ps, "provider:acr-credential-provider");
    assert!(
        p["detail"].as_str().unwrap().contains("AADSTS700016"),
        "{p:#}"
    );
    let text = check(&failing, &["--image", &image]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("FAIL  provider"), "{text}");
    assert!(
        text.contains("verdict: FAIL credential (provider_failed)"),
        "{text}"
    );

    // The same image without the provider: no credential matches and the pull is refused.
    let out = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--timeout",
            "5s",
            "--output",
            "json",
        ])
        .args(["--image", &image])
        .output()
        .unwrap();
    let ps = probes(&out);
    assert_eq!(ps[0]["success"], false, "{ps:#?}");
    assert_eq!(ps[0]["reason"], "no_matching_credential", "{ps:#?}");
}

/// Every misbehaviour is `provider_failed` (class credential) with the plugin's stderr as the
/// detail, an absent or non-executable plugin `provider_missing` (class config); nothing a
/// failing plugin printed leaks, and a hang is killed at the timeout.
#[test]
fn misbehaving_plugins_are_classified() {
    let mut node = Node::new();
    node.plugin(
        "exits",
        &["exits.test"],
        "1m",
        &format!("echo '{{\"auth\":{{\"x\":{{\"password\":\"{PW}\"}}}}}}'\necho \"error: no EC2 IMDS role found; had {PW}\" >&2\nexit 3"),
    );
    let pids = node.dir.path().join("children.pids");
    node.plugin(
        "hangs",
        &["hangs.test"],
        "1m",
        &format!("sleep 30 &\necho $! >> '{}'\nwait", pids.display()),
    );
    node.plugin(
        "old-api",
        &["old-api.test"],
        "1m",
        &answer("Image", None, &[("old-api.test", "u", PW)])
            .replace(V1, "credentialprovider.kubelet.k8s.io/v1alpha1"),
    );
    node.plugin(
        "garbage",
        &["garbage.test"],
        "1m",
        &format!("echo 'not json {PW}'"),
    );
    node.plugin(
        "floods",
        &["floods.test"],
        "1m",
        "head -c 10000000 /dev/zero | tr '\\0' 'x'",
    );
    node.plugin(
        "bad-key-type",
        &["bad-key-type.test"],
        "1m",
        &answer("Node", None, &[("bad-key-type.test", "u", PW)]),
    );
    // Answers and exits, but leaves a child holding its stdout past the timeout: kubelet's exec
    // waits for the pipe too; regprobe kills the group at the deadline.
    node.plugin(
        "lingers",
        &["lingers.test"],
        "1m",
        &format!(
            "sleep 30 &\necho $! >> '{}'\n{}",
            pids.display(),
            answer("Image", None, &[("lingers.test", "u", PW)])
        ),
    );
    node.entry("absent", &["absent.test"], "1m");
    node.plugin("not-executable", &["not-executable.test"], "1m", "exit 0");
    std::fs::set_permissions(
        node.bin().join("not-executable"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let started = Instant::now();
    let out = check(
        &node,
        &[
            "--output",
            "json",
            "--image-credential-provider-timeout",
            "1s",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the hang was not cut"
    );
    assert_eq!(out.status.code(), Some(1));
    let ps = probes(&out);
    for (name, reason, class, detail) in [
        (
            "exits",
            "provider_failed",
            "credential",
            "exit status 3: error: no EC2 IMDS role found; had <redacted>",
        ),
        (
            "hangs",
            "provider_failed",
            "credential",
            "did not answer within 1s",
        ),
        (
            "lingers",
            "provider_failed",
            "credential",
            "did not answer within 1s",
        ),
        (
            "old-api",
            "provider_failed",
            "credential",
            "did not match expected apiVersion",
        ),
        (
            "garbage",
            "provider_failed",
            "credential",
            "error reading GVK",
        ),
        (
            "floods",
            "provider_failed",
            "credential",
            "more than 1024 KiB",
        ),
        (
            "bad-key-type",
            "provider_failed",
            "credential",
            "valid cacheKeyType: \"Node\"",
        ),
        ("absent", "provider_missing", "config", "did not exist"),
        (
            "not-executable",
            "provider_missing",
            "config",
            "not an executable file",
        ),
    ] {
        let p = by_secret(&ps, &format!("provider:{name}"));
        assert_eq!(p["reason"], reason, "{name}: {p:#}");
        assert_eq!(p["class"], class, "{name}");
        let d = p["detail"].as_str().unwrap();
        assert!(d.contains(detail), "{name}: {d}");
        assert_eq!(p["registry"], format!("{name}.test"));
    }
    assert_no_password("check json", &String::from_utf8_lossy(&out.stdout));
    assert_no_password("check stderr", &String::from_utf8_lossy(&out.stderr));
    assert_eq!(node.runs("exits").len(), 1);
    // Nothing a plugin started outlives its run (the group is killed; init reaps the orphans).
    let pids = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(pids.lines().count(), 2, "{pids}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in pids.lines() {
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains("(sleep)") && !s.contains(") Z "))
        };
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(), "sleep {pid} outlived its plugin");
    }
}

/// A config kubelet refuses is a configuration error (exit 2), as is half of the flag pair.
#[test]
fn a_bad_config_is_a_configuration_error() {
    let mut node = Node::new();
    node.plugin("p", &["p.test"], "1m", "exit 0");
    let text = std::fs::read_to_string(node.config()).unwrap();
    std::fs::write(
        node.config(),
        text.replace("    defaultCacheDuration: \"1m\"\n", ""),
    )
    .unwrap();
    let out = check(&node, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("defaultCacheDuration: Required value"),
        "{err}"
    );

    let out = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--image-credential-provider-bin-dir",
        ])
        .arg(node.bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("go together"));

    std::fs::write(node.config(), text).unwrap();
    let out = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--image-credential-provider-config",
        ])
        .arg(node.config())
        .args([
            "--image-credential-provider-bin-dir",
            "/nonexistent/regprobe-bin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not exist"));
}

fn metric(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// In `serve`, a plugin with a 5-minute cache runs once across many probe cycles and reloads;
/// its password reaches neither the metrics, the status, nor the logs.
#[test]
fn serve_runs_a_cached_plugin_once_across_cycles() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("AWS", PW)]));
    let host = reg.host();
    let mut node = Node::new();
    node.plugin(
        "ecr-credential-provider",
        &[&host],
        "5m",
        &answer("Registry", None, &[(&host, "AWS", PW)]),
    );
    let logs = node.dir.path().join("serve.log");
    let mut args: Vec<String> = vec![
        "--no-default-paths".into(),
        "--interval".into(),
        "200ms".into(),
        "--reload-interval".into(),
        "200ms".into(),
        "--log-level".into(),
        "debug".into(),
    ];
    args.extend(node.flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = support::Daemon::start(&args, Stdio::from(std::fs::File::create(&logs).unwrap()));
    let labels = format!("registry=\"{host}\",secret=\"provider:ecr-credential-provider\"");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        metrics = d.metrics();
        if metric(&metrics, "regprobe_probes_total", &labels).unwrap_or(0.0) >= 5.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        metric(&metrics, "regprobe_probes_total", &labels).unwrap_or(0.0) >= 5.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "regprobe_success{", &labels),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(node.runs("ecr-credential-provider").len(), 1);
    assert_eq!(
        metric(
            &metrics,
            "regprobe_credential_provider_success{",
            "provider=\"ecr-credential-provider\""
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(metric(
        &metrics,
        "regprobe_credential_provider_duration_seconds{",
        "provider=\"ecr-credential-provider\""
    )
    .is_some_and(|d| d > 0.0));
    // The 5-minute cache: the credential is used until about five minutes from now.
    let expiry = metric(
        &metrics,
        "regprobe_credential_expiry_timestamp_seconds{",
        &labels,
    )
    .unwrap_or_else(|| panic!("{metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now + 200.0..now + 301.0).contains(&expiry),
        "{expiry} vs {now}"
    );
    // A config kubelet would refuse: the reload fails, the last good state keeps probing, and
    // the plugin still does not run again.
    std::fs::write(node.config(), "kind: CredentialProviderConfig\n").unwrap();
    let before = metric(&metrics, "regprobe_probes_total", &labels).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        metrics = d.metrics();
        if metric(&metrics, "regprobe_config_last_reload_successful", "").is_some_and(|v| v == 0.0)
            && metric(&metrics, "regprobe_probes_total", &labels).unwrap_or(0.0) >= before + 3.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric(&metrics, "regprobe_config_last_reload_successful", ""),
        Some(0.0),
        "{metrics}"
    );
    assert!(metric(&metrics, "regprobe_probes_total", &labels).unwrap_or(0.0) >= before + 3.0);
    assert_eq!(
        metric(&metrics, "regprobe_success{", &labels),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(node.runs("ecr-credential-provider").len(), 1);
    let status = d.get("/status");
    drop(d);
    let log = std::fs::read_to_string(&logs).unwrap();
    assert!(
        log.contains("apiVersion \"\" is not a kubelet CredentialProviderConfig"),
        "{log}"
    );
    assert_no_password("metrics", &metrics);
    assert_no_password("status", &status);
    assert_no_password("logs", &std::fs::read_to_string(&logs).unwrap());
}
