//! Image probes, verified against containerd itself.
//!
//! For each case the same pull runs twice: with containerd (Debian's containerd 1.6 started on a
//! private socket, `ctr content fetch`, see `support::containerd`) and with
//! `regprobe check --image`. The test asserts that both agree on success or failure, and that
//! regprobe's reason is the one containerd's error text stands for (`docs/containerd-kubelet.md` §10.1, last
//! column).
//!
//! Where containerd 1.6 differs from 2.x, which regprobe follows (§8), the case says so:
//! * 1.6 contacts a loopback registry over plain HTTP only; 2.x tries HTTPS first and falls
//!   back (regprobe's `tls` phase on loopback). Verdicts are the same.
//! * 1.6 words a final status as `pulling from host H failed with status code [manifests T]:
//!   401 Unauthorized`; 2.x as `unexpected status from HEAD request to …`.
//! * 1.6 never says `no basic auth credentials`; it returns the 401.
//! * Token errors carry no URL in 1.6.

use regprobe_testsupport as support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::containerd::{hosts_dir, mirror_hosts_toml, Containerd, FetchOptions};
use support::{fakes, Registry, RegistryOptions, TokenIssuer, TokenIssuerOptions, TokenUser};

const PW: &str = "Img-Passw0rd-3c1d";
const WRONG: &str = "Img-Wr0ng-9a8b";

/// `regprobe check --image IMAGE` over `secrets` (a dir of mounted secrets) and `hosts`;
/// returns (exit code, probes of the JSON output).
fn regprobe(
    image: &str,
    secrets: &Path,
    hosts: Option<&Path>,
    extra: &[&str],
) -> (i32, Vec<Value>) {
    let mut cmd = support::regprobe();
    cmd.args([
        "check",
        "--no-default-paths",
        "--timeout",
        "5s",
        "--output",
        "json",
        "--image",
        image,
    ])
    .arg("--secrets-dir")
    .arg(secrets)
    .args(extra);
    if let Some(h) = hosts {
        cmd.arg("--hosts-dir").arg(h);
    }
    let out = cmd.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        v["probes"].as_array().unwrap().clone(),
    )
}

fn secrets(entries: &[(&str, &str, &str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, key, user, pass) in entries {
        support::write_dockerconfigjson(d.path(), name, &[(*key, *user, *pass)]);
    }
    d
}

/// Asserts both clients agree: success, or failure with regprobe's `reason` and containerd's
/// error containing `containerd_text`.
fn agree(
    case: &str,
    ctr: &support::containerd::FetchOutcome,
    probes: &[Value],
    reason: Option<&str>,
    containerd_text: &str,
) {
    let last = probes.last().unwrap_or_else(|| panic!("{case}: no probe"));
    let rp_ok = probes.iter().any(|p| p["success"] == true);
    assert_eq!(
        ctr.success,
        rp_ok,
        "{case}: containerd success={} ({:?}) but regprobe success={rp_ok} ({})",
        ctr.success,
        ctr.containerd_error(),
        last
    );
    match reason {
        None => assert!(rp_ok, "{case}: {last}"),
        Some(r) => {
            assert_eq!(last["reason"], r, "{case}: {last}");
            let text = ctr.expect_error();
            assert!(
                text.contains(containerd_text),
                "{case}: containerd said {text:?}, expected {containerd_text:?}"
            );
        }
    }
}

#[test]
fn basic_auth_registry_agrees_with_containerd() {
    let ctrd = Containerd::start();
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let host = reg.host();
    let image = format!("{host}/team/app:1");

    // Right credential.
    let s = secrets(&[("good", &host, "alice", PW)]);
    let (code, probes) = regprobe(&image, s.path(), None, &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().user("alice", PW).plain_http());
    agree("basic right credential", &ctr, &probes, None, "");
    assert_eq!(code, 0);
    assert_eq!(probes[0]["secret"], "good");
    assert!(
        probes[0]["digest"].as_str().unwrap().starts_with("sha256:"),
        "{}",
        probes[0]
    );
    assert_eq!(probes[0]["auth_mode"], "basic");
    assert_eq!(probes[0]["matched_keys"][0]["key"], host.as_str());

    // Wrong password: containerd retries Basic to its budget and returns the 401.
    let s = secrets(&[("stale", &host, "alice", WRONG)]);
    let (code, probes) = regprobe(&image, s.path(), None, &[]);
    let ctr = ctrd.fetch(
        &image,
        FetchOptions::new().user("alice", WRONG).plain_http(),
    );
    agree(
        "basic wrong password",
        &ctr,
        &probes,
        Some("unauthorized"),
        "401 Unauthorized",
    );
    assert_eq!(code, 1);
    let heads = probes[0]["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["phase"] == "manifest" && e["status"] == 401)
        .count();
    assert!(heads >= 4, "containerd's budget of retries: {}", probes[0]);

    // No key matches the image's host: kubelet pulls anonymously and the registry refuses.
    let s = secrets(&[("other", "registry.company.test", "alice", PW)]);
    let (_, probes) = regprobe(&image, s.path(), None, &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().plain_http());
    agree(
        "no matching key",
        &ctr,
        &probes,
        Some("no_matching_credential"),
        "401 Unauthorized",
    );
    assert_eq!(probes[0]["secret"], Value::Null);
    assert!(probes[0]["matched_keys"].is_null(), "{}", probes[0]);
    let why = probes[0]["key_verdicts"][0].as_str().unwrap();
    assert!(
        why.contains("registry.company.test") && why.contains("host differs"),
        "{why}"
    );

    // Missing tag and missing repository.
    let s = secrets(&[("good", &host, "alice", PW)]);
    for missing in [
        format!("{host}/team/app:nope"),
        format!("{host}/team/nothere:1"),
    ] {
        let (_, probes) = regprobe(&missing, s.path(), None, &[]);
        let ctr = ctrd.fetch(&missing, FetchOptions::new().user("alice", PW).plain_http());
        agree(
            &format!("missing {missing}"),
            &ctr,
            &probes,
            Some("not_found"),
            "not found",
        );
    }
}

#[test]
fn token_auth_registry_agrees_with_containerd() {
    let ctrd = Containerd::start();
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new()
            .user(
                TokenUser::new("bob", PW)
                    .pull("team/app")
                    .pull("team/nothere")
                    .push("team/app"),
            )
            .user(TokenUser::new("carol", PW)),
    );
    let reg = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    support::push_image(&reg, "team/app:1", Some(("bob", PW)));
    let host = reg.host();
    let image = format!("{host}/team/app:1");

    let s = secrets(&[("bob", &host, "bob", PW)]);
    let (_, probes) = regprobe(&image, s.path(), None, &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().user("bob", PW).plain_http());
    agree("token right credential", &ctr, &probes, None, "");
    assert_eq!(probes[0]["auth_mode"], "bearer");

    // Wrong password: POST 401, GET 401, as containerd.
    issuer.reset_counts();
    let s = secrets(&[("bob", &host, "bob", WRONG)]);
    let (_, probes) = regprobe(&image, s.path(), None, &[]);
    let seq = issuer.sequence();
    let ctr = ctrd.fetch(&image, FetchOptions::new().user("bob", WRONG).plain_http());
    agree(
        "token wrong password",
        &ctr,
        &probes,
        Some("unauthorized"),
        "failed to fetch oauth token",
    );
    assert_eq!(
        seq.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        vec!["POST", "GET"],
        "regprobe's token requests: {seq:?}"
    );

    // A valid credential without access to the repository: token issued, insufficient_scope.
    let s = secrets(&[("carol", &host, "carol", PW)]);
    let (_, probes) = regprobe(&image, s.path(), None, &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().user("carol", PW).plain_http());
    agree(
        "no pull permission",
        &ctr,
        &probes,
        Some("pull_denied"),
        "insufficient_scope",
    );

    // Missing tag, missing repository (with access granted): 404.
    let s = secrets(&[("bob", &host, "bob", PW)]);
    for missing in [
        format!("{host}/team/app:nope"),
        format!("{host}/team/nothere:1"),
    ] {
        let (_, probes) = regprobe(&missing, s.path(), None, &[]);
        let ctr = ctrd.fetch(&missing, FetchOptions::new().user("bob", PW).plain_http());
        agree(
            &format!("token missing {missing}"),
            &ctr,
            &probes,
            Some("not_found"),
            "not found",
        );
    }
}

#[test]
fn open_registry_and_mirrors_agree_with_containerd() {
    let ctrd = Containerd::start();
    let upstream = Registry::start(RegistryOptions::default());
    support::push_image(&upstream, "team/app:1", None);
    let host = upstream.host();
    let image = format!("{host}/team/app:1");
    let none = tempfile::tempdir().unwrap();

    // Anonymous pull from an open registry: no secret at all.
    let (code, probes) = regprobe(&image, none.path(), None, &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().plain_http());
    agree("anonymous open registry", &ctr, &probes, None, "");
    assert_eq!(code, 0);
    assert_eq!(probes[0]["secret"], Value::Null);

    // A mirror that is down, the upstream works: success, and the mirror's failure is visible.
    let down = format!("http://127.0.0.1:{}", fakes::closed_port());
    let hosts = hosts_dir(&[(
        &host,
        &mirror_hosts_toml(&format!("http://{host}"), &[&down]),
    )]);
    let (_, probes) = regprobe(&image, none.path(), Some(hosts.path()), &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().hosts_dir(hosts.path()));
    agree("mirror down", &ctr, &probes, None, "");
    let hv = probes[0]["hosts"].as_array().unwrap();
    assert_eq!(hv.len(), 2, "{}", probes[0]);
    assert_eq!(hv[0]["mirror"], true);
    assert_eq!(hv[0]["reason"], "connect_refused");
    assert_eq!(hv[1]["success"], true);
    assert!(
        ctr.host_errors().iter().any(|(_, e)| e.contains("?ns=")),
        "containerd tried the mirror with ?ns=: {:?}",
        ctr.host_errors()
    );

    // A mirror that answers 404 (an empty registry), the upstream works.
    let empty = Registry::start(RegistryOptions::default());
    let mirror = format!("http://{}", empty.host());
    let hosts = hosts_dir(&[(
        &host,
        &mirror_hosts_toml(&format!("http://{host}"), &[&mirror]),
    )]);
    let (_, probes) = regprobe(&image, none.path(), Some(hosts.path()), &[]);
    let ctr = ctrd.fetch(&image, FetchOptions::new().hosts_dir(hosts.path()));
    agree("mirror 404", &ctr, &probes, None, "");
    let hv = probes[0]["hosts"].as_array().unwrap();
    assert_eq!(hv[0]["reason"], "not_found", "{}", probes[0]);
    assert_eq!(hv[1]["success"], true);
    let mirror_request = probes[0]["exchanges"][0]["url"].as_str().unwrap();
    assert!(
        mirror_request.contains("?ns="),
        "mirrors get ?ns=: {mirror_request}"
    );
}

/// kubelet's order: every matching key is tried, stopping at the first that works; with
/// `--audit-all` all are tried.
#[test]
fn credentials_are_tried_in_kubelet_order() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let host = reg.host();
    let image = format!("{host}/team/app:1");
    // `host/team` sorts after `host` in reverse byte order, so it is tried first.
    let s = secrets(&[
        ("a-stale", &format!("{host}/team"), "alice", WRONG),
        ("b-good", &host, "alice", PW),
        ("c-also", &host, "alice", PW),
    ]);
    let (code, probes) = regprobe(&image, s.path(), None, &[]);
    assert_eq!(code, 0, "the image pulls with the second credential");
    let secrets_tried: Vec<&str> = probes
        .iter()
        .map(|p| p["secret"].as_str().unwrap())
        .collect();
    assert_eq!(
        secrets_tried,
        vec!["a-stale", "b-good"],
        "stop at the first success"
    );
    assert_eq!(probes[0]["reason"], "unauthorized");
    let (_, probes) = regprobe(&image, s.path(), None, &["--audit-all"]);
    let secrets_tried: Vec<&str> = probes
        .iter()
        .map(|p| p["secret"].as_str().unwrap())
        .collect();
    assert_eq!(secrets_tried, vec!["a-stale", "b-good", "c-also"]);

    // The text output names the keys in order and the verdict.
    let out = Command::new(support::regprobe_bin())
        .env("COLUMNS", "1000")
        .args([
            "check",
            "--no-default-paths",
            "--image",
            &image,
            "--secrets-dir",
        ])
        .arg(s.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("keys matched, in kubelet's order: {host}/team (a-stale), {host} (b-good), {host} (c-also)")), "{text}");
    assert!(
        text.contains("attempt 1 of 2: secret a-stale, user alice"),
        "{text}"
    );
    assert!(
        text.contains("pullable: kubelet's pull would succeed"),
        "{text}"
    );
    assert!(!text.contains(PW) && !text.contains(WRONG));
}

/// `serve --image`: canary images are probed on the interval and exported as
/// `regprobe_image_success` / `regprobe_image_failure_reason`.
#[test]
fn serve_exports_image_metrics() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    support::push_image(&reg, "team/app:1", Some(("alice", PW)));
    let host = reg.host();
    let s = secrets(&[("good", &format!("{host}/team"), "alice", PW)]);
    let pullable = format!("{host}/team/app:1");
    // No key matches `other/…` (the key's path is /team): kubelet pulls anonymously, refused.
    let unmatched = format!("{host}/other/app:1");
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(support::regprobe_bin())
        .args([
            "serve",
            "--no-default-paths",
            "--interval",
            "10m",
            "--listen",
            &listen,
        ])
        .args(["--image", &pullable, "--image", &unmatched, "--secrets-dir"])
        .arg(s.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let start = std::time::Instant::now();
    let text = loop {
        let t = support::http::request(
            addr,
            "GET",
            "/metrics",
            &[support::http::ACCEPT_OPENMETRICS],
            b"",
        )
        .map(|r| r.text())
        .unwrap_or_default();
        if t.matches("regprobe_image_success{").count() >= 2 {
            break t;
        }
        assert!(start.elapsed().as_secs() < 20, "no image metrics: {t}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let samples = support::openmetrics::parse(&text);
    let get = |name: &str, image: &str, secret: &str| -> Vec<Value> {
        samples
            .iter()
            .filter(|s| {
                s["name"] == name
                    && s["labels"]["image"] == image
                    && s["labels"]["secret"] == secret
            })
            .cloned()
            .collect()
    };
    assert_eq!(
        get("regprobe_image_success", &pullable, "good")[0]["value"],
        1.0,
        "{text}"
    );
    assert_eq!(
        get("regprobe_image_success", &unmatched, "none")[0]["value"],
        0.0,
        "{text}"
    );
    let reason = get("regprobe_image_failure_reason", &unmatched, "none");
    assert_eq!(
        reason[0]["labels"]["reason"], "no_matching_credential",
        "{text}"
    );
    assert_eq!(reason[0]["labels"]["class"], "config");
    assert!(!text.contains(PW));
}
