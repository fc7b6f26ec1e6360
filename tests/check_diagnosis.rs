//! Snapshots of `regprobe check`'s step-by-step diagnosis (plain text, as piped), one per class of
//! failure, against real servers on loopback: Debian's `docker-registry` with htpasswd or token
//! auth (tokens from `support::token`), TLS from the test PKI, dnsmasq for `*.test` names.
//!
//! | snapshot | class | where it breaks |
//! |---|---|---|
//! | `credential_wrong_password_at_the_token_service` | credential | token: POST and GET 401 |
//! | `permission_valid_user_without_pull_access` | permission | manifest: 401 insufficient_scope |
//! | `permission_tag_not_found` | permission | manifest: 404 |
//! | `network_untrusted_certificate` | network | tls: unknown authority |
//! | `registry_token_service_error` | registry | token: 500 |
//! | `config_key_mismatch` | config | match: no key for the image host, anonymous 401 |
//! | `config_missing_secret_reference` | config | secret listed by the pod but not given |
//! | `config_malformed_secret` | config | secret: does not parse |
//! | `pullable_with_the_second_credential` | ok | the first key fails, the second works |
//! | `credential_mode_wrong_basic_password` | credential | verify: Basic 401 (no `--image`) |
//!
//! Times, ports, temporary paths, dates and digests are filtered out so the snapshots are
//! stable. Every run asserts that no password, `auth` value or token reaches the output.

use regprobe_testsupport as support;

use base64::Engine;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{
    Behaviour, Dns, Registry, RegistryOptions, TestPki, TokenIssuer, TokenIssuerOptions, TokenUser,
};

const PW: &str = "Diag-Passw0rd-5e7f";
const WRONG: &str = "Diag-Wr0ng-2b4c";

/// The output of one `regprobe check` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `regprobe check --no-default-paths ARGS` with `stdin`, without proxies or colour, and
/// wide enough (`COLUMNS=1000`) that no line wraps: the snapshots record what the diagnosis
/// says; fitting it to a terminal is `tests/check_width.rs`.
fn check(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = support::regprobe();
    cmd.env("COLUMNS", "1000");
    cmd.arg("check")
        .arg("--no-default-paths")
        .args(["--timeout", "5s"])
        .args(args);
    let out = support::output_with_stdin(&mut cmd, stdin.map(str::as_bytes));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret(&run);
    run
}

/// No password, no `auth` value (base64 of user:password, at any alignment) and no JWT.
fn assert_no_secret(run: &Run) {
    let all = format!("{}{}", run.stdout, run.stderr);
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut needles = vec!["eyJ".to_string()];
    for pw in [PW, WRONG] {
        needles.push(pw.to_string());
        for user in ["alice", "bob", "carol", "broken", "ci-bot"] {
            needles.push(b64.encode(format!("{user}:{pw}")));
        }
        needles.push(b64.encode(pw).trim_end_matches('=').to_string());
    }
    for n in needles {
        assert!(!all.contains(&n), "the output leaks {n:?}:\n{all}");
    }
}

/// Snapshots `stdout` of a run with the exit status on top, filtered for stability.
fn snapshot(name: &str, run: &Run) {
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when piped:\n{}",
        run.stdout
    );
    let text = format!("exit status {}\n\n{}", run.code, run.stdout);
    insta::with_settings!({
        filters => vec![
            (r"(127\.0\.0\.1|auth\.test|registry\.test|localhost):\d{2,5}", "$1:[PORT]"),
            (r" +\d+(\.\d+)?(ms|s)\b", " [T]"),
            (r"/tmp/[^/\s]+", "[TMP]"),
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[DATE]"),
            (r"in \d+ days", "in [N] days"),
            (r#"port differs: "" vs "\d+""#, r#"port differs: "" vs "[PORT]""#),
            (r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]"),
        ],
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// A `.dockerconfigjson` file named `<secret>.json` (its id is `<secret>`).
fn secret_file(dir: &Path, secret: &str, key: &str, user: &str, pass: &str) -> PathBuf {
    write(
        dir,
        &format!("{secret}.json"),
        &support::dockerconfigjson(&[(key, user, pass)]),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A token registry whose realm is `http://auth.test:PORT/token` (dnsmasq), and what each user
/// of the token service shows: credential, permission and registry classes, and success.
#[test]
fn token_registry_credential_permission_registry_and_success() {
    let dns = Dns::start(&[("auth.test", Ipv4Addr::LOCALHOST)]);
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new()
            .user(TokenUser::new("bob", PW).pull("team/app").push("team/app"))
            .user(TokenUser::new("carol", PW))
            .user(TokenUser::new("broken", PW).behaviour(Behaviour::ServerError)),
    );
    let reg = Registry::start(
        RegistryOptions::default()
            .with_auth(issuer.registry_auth_with_realm(&issuer.realm_at("auth.test"))),
    );
    // skopeo pushes through the realm too: it resolves auth.test with the system resolver, so
    // push through a second registry view whose realm is the loopback address instead.
    let push_view = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    // Both registries must share storage for the pushed image to be visible: push to the
    // realm-at-auth.test registry's storage by pushing to the loopback view and copying.
    support::push_image(&push_view, "team/app:1", Some(("bob", PW)));
    copy_storage(push_view.dir(), reg.dir());
    drop(push_view);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = reg.host();
    let image = format!("{host}/team/app:1");
    let dns_arg = dns.server_arg();
    let image_check = |secret: &Path, image: &str| {
        check(
            &[
                "--dns-server",
                &dns_arg,
                "--secret",
                s(secret),
                "--image",
                image,
            ],
            None,
        )
    };

    let wrong = secret_file(d, "bob-stale", &host, "bob", WRONG);
    let run = image_check(&wrong, &image);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("credential_wrong_password_at_the_token_service", &run);

    let carol = secret_file(d, "carol", &host, "carol", PW);
    let run = image_check(&carol, &image);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("permission_valid_user_without_pull_access", &run);

    let bob = secret_file(d, "bob", &host, "bob", PW);
    let run = image_check(&bob, &format!("{host}/team/app:2"));
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("permission_tag_not_found", &run);

    let broken = secret_file(d, "broken-issuer", &host, "broken", PW);
    let run = image_check(&broken, &image);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("registry_token_service_error", &run);

    // kubelet's order: `HOST/team` sorts before `HOST`, so the stale key is tried first.
    let two = write(
        d,
        "two.json",
        &support::dockerconfigjson(&[
            (format!("{host}/team").as_str(), "bob", WRONG),
            (host.as_str(), "bob", PW),
        ]),
    );
    let run = image_check(&two, &image);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    snapshot("pullable_with_the_second_credential", &run);
}

/// Copies a registry's filesystem storage (its `storage/` dir) into another registry's.
fn copy_storage(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from.join("storage").join("."))
        .arg(to.join("storage"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry under a name (`registry.test:PORT`, so HTTPS as containerd does), whose certificate
/// comes from a CA the node does not trust; the hosts directory names the test CA.
#[test]
fn network_untrusted_certificate() {
    let pki = TestPki::new();
    let dns = Dns::start(&[]);
    let reg = Registry::start(
        RegistryOptions::htpasswd(&[("alice", PW)])
            .with_tls(&pki.unknown_ca_leaf(&["registry.test"])),
    );
    let host = format!("registry.test:{}", reg.port());
    let hosts = tempfile::tempdir().unwrap();
    let hd = hosts.path().join(&host);
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::copy(pki.ca_cert(), hd.join("ca.crt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "regcred", &host, "alice", PW);
    let run = check(
        &[
            "--dns-server",
            &dns.server_arg(),
            "--hosts-dir",
            s(hosts.path()),
            "--secret",
            s(&secret),
            "--image",
            &format!("{host}/team/app:1"),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("network_untrusted_certificate", &run);
}

fn deployment(secrets: &[&str], image: &str) -> String {
    let refs: Vec<String> = secrets.iter().map(|s| format!("{{name: {s}}}")).collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      imagePullSecrets: [{}]
      containers:
      - name: app
        image: {image}
",
        refs.join(", ")
    )
}

/// The pod's secret has a key for another host: kubelet pulls anonymously and is refused.
#[test]
fn config_key_mismatch() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = secret_file(d, "regcred", "private.registry.test", "alice", PW);
    let pod = write(
        d,
        "deploy.yaml",
        &deployment(&["regcred"], &format!("{}/team/app:1", reg.host())),
    );
    let run = check(&["--pod-spec", s(&pod), "--secret", s(&secret)], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("config_key_mismatch", &run);
}

/// The pod lists `regcred`, which was not given (missing in the namespace), and a secret that
/// would work was given but the pod does not list it.
#[test]
fn config_missing_secret_reference() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let other = secret_file(d, "ci-pull", &reg.host(), "alice", PW);
    let pod = write(
        d,
        "deploy.yaml",
        &deployment(&["regcred"], &format!("{}/team/app:1", reg.host())),
    );
    let run = check(&["--pod-spec", s(&pod), "--secret", s(&other)], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("config_missing_secret_reference", &run);
}

/// A secret whose `auth` is not base64: kubelet cannot use it; nothing is sent.
#[test]
fn config_malformed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = write(
        d,
        "regcred.json",
        r#"{"auths":{"registry.example.com":{"auth":"%%not-base64%%"}}}"#,
    );
    let run = check(&["--secret", s(&bad)], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("config_malformed_secret", &run);

    // The same secret listed by a pod: every pull of the pod fails before any request.
    let pod = write(
        d,
        "pod.yaml",
        "kind: Pod\nmetadata: {name: web, namespace: team}\nspec:\n  imagePullSecrets: [{name: regcred}]\n  containers: [{name: app, image: registry.example.com/team/app:1}]\n",
    );
    let run = check(&["--pod-spec", s(&pod), "--secret", s(&bad)], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("verdict: FAIL config (secret_invalid)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("-     keys, match: not reached"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("attempt 1"), "{}", run.stdout);
}

/// A pod listing an `Opaque` Secret before its real pull secret: kubelet's `MakeDockerKeyring`
/// (`pkg/credentialprovider/secrets/secrets.go`) skips the Opaque one and pulls with the other;
/// regprobe still warns about it (and counts it invalid), but the image verdict is pullable.
#[test]
fn a_secret_kubelet_skips_does_not_block_the_pods_pull() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = secret_file(d, "regcred", &reg.host(), "alice", PW);
    let opaque = write(
        d,
        "opaque.yaml",
        "kind: Secret\nmetadata: {name: opaque}\ntype: Opaque\nstringData:\n  password: x\n",
    );
    let pod = write(
        d,
        "deploy.yaml",
        &deployment(
            &["opaque", "regcred"],
            &format!("{}/team/app:1", reg.host()),
        ),
    );
    let run = check(
        &[
            "--pod-spec",
            s(&pod),
            "--secret",
            s(&opaque),
            "--secret",
            s(&good),
        ],
        None,
    );
    assert!(
        run.stdout
            .contains("pullable: kubelet's pull would succeed (secret regcred"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("opaque: kubelet skips it"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("not reached"), "{}", run.stdout);
}

/// Without `--image`: the credential's own walk, DNS to the authenticated `/v2/`.
#[test]
fn credential_mode_wrong_basic_password() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "stale", &reg.host(), "alice", WRONG);
    let run = check(&["--secret", s(&secret)], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    snapshot("credential_mode_wrong_basic_password", &run);
}

/// A mirror answers 404 (an empty registry) and the upstream refuses the anonymous request
/// (htpasswd, no key matches): containerd keeps the mirror's `not found` (priority 2 over the
/// upstream's authorization failure). The walk must attribute the 404 to the mirror, not show
/// the upstream's 401 as its status, and must not claim a credential works when none was sent.
#[test]
fn a_mirror_404_is_the_mirrors_and_no_credential_is_claimed() {
    let upstream = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let empty = Registry::start(RegistryOptions::default());
    let host = upstream.host();
    let hosts = support::containerd::hosts_dir(&[(
        &host,
        &support::containerd::mirror_hosts_toml(
            &format!("http://{host}"),
            &[&format!("http://{}", empty.host())],
        ),
    )]);
    let run = check(
        &[
            "--hosts-dir",
            s(hosts.path()),
            "--image",
            &format!("{host}/team/app:1"),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let manifest = run
        .stdout
        .lines()
        .find(|l| l.contains("FAIL") && l.contains("manifest"))
        .unwrap_or_else(|| panic!("no failing manifest step:\n{}", run.stdout));
    assert!(
        manifest.contains(&empty.host()) && manifest.contains("404"),
        "the 404 is the mirror's: {manifest}\n{}",
        run.stdout
    );
    assert!(
        !manifest.contains("(401"),
        "the upstream's 401 is not the mirror's status: {manifest}"
    );
    let verdict = run
        .stdout
        .lines()
        .find(|l| l.contains("verdict:"))
        .unwrap_or_else(|| panic!("no verdict:\n{}", run.stdout));
    assert!(verdict.contains("not_found"), "{verdict}");
    assert!(
        verdict.contains(&empty.host()),
        "the verdict names the mirror: {verdict}"
    );
    assert!(
        !verdict.contains("the credential works"),
        "no credential was sent: {verdict}"
    );
}
