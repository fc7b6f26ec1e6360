//! End to end: `regprobe check --output json` against real registries on loopback, one secret
//! per case, and the reason and class of each asserted.
//!
//! Real parts: Debian's `docker-registry` (CNCF distribution 2.8) with htpasswd Basic auth,
//! with token auth (tokens from the test issuer in `support::token`, verified by the registry
//! itself), and with TLS from a test CA (valid, expired, wrong name, unknown CA); dnsmasq for
//! names under `.test`. Fakes only where no real server misbehaves on demand (HTML page, 503,
//! hang), each documented in `support::fakes`.

use regprobe_testsupport as support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use support::{
    fakes, Behaviour, Dns, Registry, RegistryOptions, TestPki, TokenIssuer, TokenIssuerOptions,
    TokenUser,
};

const GOOD_PW: &str = "G00d-Passw0rd-7f3a";
const BAD_PW: &str = "Wr0ng-Passw0rd-91bc";

fn write_secret(dir: &Path, name: &str, key: &str, user: &str, pass: &str) {
    support::write_dockerconfigjson(dir, name, &[(key, user, pass)]);
}

fn write_raw(dir: &Path, name: &str, content: &str) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(".dockerconfigjson"), content).unwrap();
}

/// `regprobe ARGS`, wide enough (`COLUMNS=1000`) that no text line wraps.
fn run(args: &[&str]) -> Output {
    support::regprobe()
        .env("COLUMNS", "1000")
        .args(args)
        .output()
        .expect("run regprobe")
}

fn probes_by_secret(out: &Output) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check did not print JSON ({e}): stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["probes"]
        .as_array()
        .expect("probes array")
        .iter()
        .map(|p| (p["secret"].as_str().unwrap_or("").to_string(), p.clone()))
        .collect()
}

/// Every reason loopback can produce, in one `check` run over one secrets directory.
#[test]
fn check_json_gives_the_right_reason_and_class_for_every_case() {
    let pki = TestPki::new();
    let dns = Dns::start(&[("auth.test", Ipv4Addr::LOCALHOST)]);
    let secrets = tempfile::tempdir().unwrap();
    let hosts = tempfile::tempdir().unwrap();
    let s = secrets.path();
    let mut expect: Vec<(&str, Option<&str>, Option<&str>)> = Vec::new();

    // Basic auth (htpasswd), addressed as 127.0.0.1:PORT: containerd's loopback rule makes
    // that plain HTTP.
    let basic = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]));
    let key = format!("127.0.0.1:{}", basic.port());
    write_secret(s, "basic-ok", &key, "alice", GOOD_PW);
    expect.push(("basic-ok", None, None));
    write_secret(s, "basic-wrong-password", &key, "alice", BAD_PW);
    expect.push((
        "basic-wrong-password",
        Some("unauthorized"),
        Some("credential"),
    ));
    write_raw(
        s,
        "basic-no-username",
        &format!(r#"{{"auths":{{"{key}":{{"password":"{GOOD_PW}"}}}}}}"#),
    );
    expect.push((
        "basic-no-username",
        Some("credential_missing"),
        Some("credential"),
    ));

    // Token auth: the test issuer signs JWTs the registry verifies.
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new()
            .user(TokenUser::new("bob", GOOD_PW).pull("team/app"))
            .user(TokenUser::new("blocked", GOOD_PW).behaviour(Behaviour::Forbidden))
            .user(TokenUser::new("busy", GOOD_PW).behaviour(Behaviour::TooManyRequests))
            .user(TokenUser::new("broken", GOOD_PW).behaviour(Behaviour::ServerError))
            .user(TokenUser::new("portal", GOOD_PW).behaviour(Behaviour::Html))
            .user(TokenUser::new("gcr", GOOD_PW).behaviour(Behaviour::PostNotFound))
            .user(TokenUser::new("quay", GOOD_PW).behaviour(Behaviour::PostMethodNotAllowed))
            .user(TokenUser::new("tokenonly", GOOD_PW).behaviour(Behaviour::TokenFieldOnly))
            .user(TokenUser::new("skewed", GOOD_PW).behaviour(Behaviour::WrongAudience)),
    );
    let token = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    let key = format!("127.0.0.1:{}", token.port());
    for (name, user, pass, reason, class) in [
        ("bearer-ok", "bob", GOOD_PW, None, None),
        (
            "bearer-wrong-password",
            "bob",
            BAD_PW,
            Some("unauthorized"),
            Some("credential"),
        ),
        (
            "token-403",
            "blocked",
            GOOD_PW,
            Some("token_forbidden"),
            Some("credential"),
        ),
        (
            "token-429",
            "busy",
            GOOD_PW,
            Some("rate_limited"),
            Some("registry"),
        ),
        (
            "token-500",
            "broken",
            GOOD_PW,
            Some("token_endpoint"),
            Some("registry"),
        ),
        (
            "token-html",
            "portal",
            GOOD_PW,
            Some("token_endpoint"),
            Some("registry"),
        ),
        // GCR: POST 404 -> GET fallback works.
        ("token-post-404", "gcr", GOOD_PW, None, None),
        // Quay: POST 405 -> GET fallback (a username is set).
        ("token-post-405", "quay", GOOD_PW, None, None),
        // POST answers {"token"} only: containerd reads only access_token on POST.
        (
            "token-field-only",
            "tokenonly",
            GOOD_PW,
            Some("token_endpoint"),
            Some("registry"),
        ),
        // The registry refuses a token its realm issued (audience mismatch).
        (
            "token-wrong-audience",
            "skewed",
            GOOD_PW,
            Some("token_rejected"),
            Some("registry"),
        ),
    ] {
        write_secret(s, name, &key, user, pass);
        expect.push((name, reason, class));
    }

    // Token endpoint down: the registry's realm points at a closed port.
    let realm_down =
        Registry::start(
            RegistryOptions::default().with_auth(issuer.registry_auth_with_realm(&format!(
                "http://127.0.0.1:{}/token",
                fakes::closed_port()
            ))),
        );
    write_secret(
        s,
        "token-endpoint-down",
        &format!("127.0.0.1:{}", realm_down.port()),
        "bob",
        GOOD_PW,
    );
    expect.push((
        "token-endpoint-down",
        Some("connect_refused"),
        Some("network"),
    ));
    // Realm host that does not resolve: a network reason at the realm, never `unauthorized`.
    let realm_nx = Registry::start(RegistryOptions::default().with_auth(
        issuer.registry_auth_with_realm(&format!("http://nxauth.test:{}/token", issuer.port())),
    ));
    write_secret(
        s,
        "token-realm-nxdomain",
        &format!("127.0.0.1:{}", realm_nx.port()),
        "bob",
        GOOD_PW,
    );
    expect.push(("token-realm-nxdomain", Some("dns"), Some("network")));

    // Fakes: misbehaviour no real registry shows on demand.
    let html = fakes::html_page();
    write_secret(
        s,
        "html-page",
        &format!("127.0.0.1:{}", html.port()),
        "u",
        GOOD_PW,
    );
    expect.push(("html-page", Some("not_a_registry"), Some("registry")));
    let m503 = fakes::maintenance_503();
    write_secret(
        s,
        "maintenance-503",
        &format!("127.0.0.1:{}", m503.port()),
        "u",
        GOOD_PW,
    );
    expect.push(("maintenance-503", Some("registry_error"), Some("registry")));
    let hang = fakes::hang();
    write_secret(
        s,
        "hang",
        &format!("127.0.0.1:{}", hang.port()),
        "u",
        GOOD_PW,
    );
    expect.push(("hang", Some("timeout"), Some("network")));
    let ntlm = fakes::unsupported_challenge();
    write_secret(
        s,
        "ntlm-challenge",
        &format!("127.0.0.1:{}", ntlm.port()),
        "u",
        GOOD_PW,
    );
    expect.push((
        "ntlm-challenge",
        Some("challenge_unsupported"),
        Some("registry"),
    ));
    write_secret(
        s,
        "refused",
        &format!("127.0.0.1:{}", fakes::closed_port()),
        "u",
        GOOD_PW,
    );
    expect.push(("refused", Some("connect_refused"), Some("network")));
    write_secret(s, "nxdomain", "nothere.test:5000", "u", GOOD_PW);
    expect.push(("nxdomain", Some("dns"), Some("network")));

    // TLS, addressed as registry.test:PORT (dnsmasq answers 127.0.0.1); the test CA is
    // trusted through the containerd host directory registry.test:PORT/ca.crt.
    let tls_cases = [
        ("tls-ok", pki.leaf(&["registry.test"]), None, None),
        (
            "tls-unknown-ca",
            pki.unknown_ca_leaf(&["registry.test"]),
            Some("tls_untrusted"),
            Some("network"),
        ),
        (
            "tls-expired",
            pki.expired_leaf(&["registry.test"]),
            Some("tls_expired"),
            Some("network"),
        ),
        (
            "tls-wrong-name",
            pki.wrong_name_leaf(),
            Some("tls_hostname_mismatch"),
            Some("network"),
        ),
    ];
    let mut tls_registries = Vec::new();
    for (name, pair, reason, class) in tls_cases {
        let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]).with_tls(&pair));
        let host = format!("registry.test:{}", reg.port());
        let hd = hosts.path().join(&host);
        std::fs::create_dir_all(&hd).unwrap();
        std::fs::copy(pki.ca_cert(), hd.join("ca.crt")).unwrap();
        write_secret(s, name, &host, "alice", GOOD_PW);
        expect.push((name, reason, class));
        tls_registries.push(reg);
    }
    // Plain HTTP to an HTTPS client: a registry without TLS under a non-loopback name, which
    // containerd contacts over HTTPS. Reached through --resolve, not DNS.
    let plain = fakes::plain_http_registry();
    let plain_host = format!("plain.test:{}", plain.port());
    write_secret(s, "plain-http", &plain_host, "u", GOOD_PW);
    expect.push(("plain-http", Some("plain_http"), Some("registry")));

    // Four kinds of malformed secret.
    write_raw(s, "malformed-json", "{\"auths\": {\"r.test\": {\"auth\": ");
    write_raw(s, "malformed-no-auths", r#"{"registries": {}}"#);
    write_raw(
        s,
        "malformed-auth-not-base64",
        r#"{"auths":{"r.test":{"auth":"%%%not-base64%%%"}}}"#,
    );
    write_raw(
        s,
        "malformed-auth-no-colon",
        r#"{"auths":{"r.test":{"auth":"bm9jb2xvbg=="}}}"#,
    );
    for name in [
        "malformed-json",
        "malformed-no-auths",
        "malformed-auth-not-base64",
        "malformed-auth-no-colon",
    ] {
        expect.push((name, Some("secret_invalid"), Some("config")));
    }

    let dns_arg = dns.server_arg();
    let resolve = format!("{plain_host}:127.0.0.1");
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secrets-dir",
        s.to_str().unwrap(),
        "--hosts-dir",
        hosts.path().to_str().unwrap(),
        "--dns-server",
        &dns_arg,
        "--resolve",
        &resolve,
        "--timeout",
        "2s",
        "--concurrency",
        "16",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some probes fail, so exit 1; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probes = probes_by_secret(&out);

    let mut wrong = Vec::new();
    for (name, reason, class) in &expect {
        let Some(p) = probes.get(*name) else {
            wrong.push(format!("{name}: no probe in the output"));
            continue;
        };
        let got_reason = p["reason"].as_str();
        let got_class = p["class"].as_str();
        let got_success = p["success"].as_bool();
        if got_reason != *reason || got_class != *class || got_success != Some(reason.is_none()) {
            wrong.push(format!(
                "{name}: expected {reason:?}/{class:?}, got success={got_success:?} {got_reason:?}/{got_class:?}: {}",
                p["detail"]
            ));
        }
    }
    assert!(wrong.is_empty(), "mismatches:\n{}", wrong.join("\n"));
    assert_eq!(probes.len(), expect.len(), "one probe per secret");

    // Evidence and shape of a few results.
    let ok = &probes["bearer-ok"];
    assert_eq!(ok["auth_mode"], "bearer");
    for phase in ["resolve", "connect", "challenge", "token", "verify"] {
        assert!(
            ok["phases"][phase].as_f64().is_some(),
            "bearer-ok lacks phase {phase}: {ok}"
        );
    }
    assert_eq!(probes["basic-ok"]["auth_mode"], "basic");
    let tls_ok = &probes["tls-ok"];
    assert!(tls_ok["phases"]["tls"].as_f64().is_some());
    assert!(
        tls_ok["tls"]["leaf_not_after"].as_i64().unwrap() > 0,
        "{tls_ok}"
    );
    let wrong_pw = &probes["bearer-wrong-password"];
    let methods: Vec<(&str, u64)> = wrong_pw["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["phase"] == "token")
        .map(|e| (e["method"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        methods,
        vec![("POST", 401), ("GET", 401)],
        "containerd's POST then GET"
    );
    let realm_down = &probes["token-endpoint-down"];
    assert!(
        realm_down["detail"]
            .as_str()
            .unwrap()
            .contains("token service"),
        "{realm_down}"
    );
    let bad_json = &probes["malformed-json"];
    assert_eq!(bad_json["registry"], "");
    assert!(
        bad_json["detail"].as_str().unwrap().contains("line 1"),
        "{bad_json}"
    );
    for p in probes.values() {
        assert!(
            !p["hint"].as_str().unwrap_or("").is_empty() || p["success"] == true,
            "{p}"
        );
    }

    // Ground truth for the Basic cases from the reference client.
    let ok_skopeo = support::image::run({
        let mut c = Command::new("skopeo");
        c.args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            GOOD_PW,
            &format!("127.0.0.1:{}", basic.port()),
        ]);
        c.env(
            "REGISTRY_AUTH_FILE",
            secrets.path().join("skopeo-auth.json"),
        );
        c
    });
    assert!(ok_skopeo.status.success());

    // No secret in any output.
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [GOOD_PW, BAD_PW] {
        assert!(
            !all.contains(secret),
            "a password leaked into check's output"
        );
    }
    drop((
        basic,
        token,
        realm_down,
        realm_nx,
        html,
        m503,
        hang,
        ntlm,
        plain,
        tls_registries,
        issuer,
    ));
}

/// The text output names the failing step, the server's answer and the fix.
#[test]
fn check_text_output_explains_a_wrong_password() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]));
    let dir = tempfile::tempdir().unwrap();
    write_secret(
        dir.path(),
        "stale",
        &format!("127.0.0.1:{}", reg.port()),
        "alice",
        BAD_PW,
    );
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secrets-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("FAIL 127.0.0.1:"), "{text}");
    assert!(text.contains("secret=stale"), "{text}");
    assert!(text.contains("unauthorized (credential)"), "{text}");
    assert!(text.contains("[verify] GET http://127.0.0.1:"), "{text}");
    assert!(text.contains("→ 401"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    assert!(
        text.contains("kubectl create secret docker-registry"),
        "{text}"
    );
    assert!(text.contains("phases: resolve"), "{text}");
    assert!(!text.contains(BAD_PW));
    assert!(!text.contains('\x1b'), "no colour when piped");
}

/// Exit statuses of the contract: 0 all ok, 2 for usage and configuration errors.
#[test]
fn exit_statuses() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]));
    let dir = tempfile::tempdir().unwrap();
    let f = support::write_dockerconfigjson(
        dir.path(),
        "good",
        &[(&format!("127.0.0.1:{}", reg.port()), "alice", GOOD_PW)],
    );
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secret",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // explicit file missing
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secret",
        "/nonexistent/regprobe-test.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // explicit directory missing
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secrets-dir",
        "/nonexistent/regprobe-dir",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secret",
        f.to_str().unwrap(),
        "--hosts-dir",
        "/nonexistent/certs.d",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // bad duration, unknown flag
    let out = run(&[
        "check",
        "--timeout",
        "soon",
        "--secret",
        f.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["check", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    // nothing to check
    let out = run(&["check", "--no-default-paths"]);
    assert_eq!(out.status.code(), Some(2));
    // --registry filters to nothing
    let out = run(&[
        "check",
        "--no-default-paths",
        "--secret",
        f.to_str().unwrap(),
        "--registry",
        "other.example",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Both ways kubelet mounts secrets, end to end: one Secret volume per DIR/<name>, and one
/// projected volume at DIR.
#[test]
fn both_kubelet_mount_layouts_are_probed() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]));
    let key = format!("127.0.0.1:{}", reg.port());
    let per_secret = tempfile::tempdir().unwrap();
    let _a = support::write_secret_volume(per_secret.path(), "one", &[(&key, "alice", GOOD_PW)]);
    let _b = support::write_secret_volume(per_secret.path(), "two", &[(&key, "alice", BAD_PW)]);
    let projected = tempfile::tempdir().unwrap();
    let _c = support::write_projected_volume(
        projected.path(),
        &[
            ("three", &[(&key, "alice", GOOD_PW)][..]),
            ("four", &[(&key, "alice", BAD_PW)][..]),
        ],
    );
    for (dir, good, bad) in [
        (per_secret.path(), "one", "two"),
        (projected.path(), "three", "four"),
    ] {
        let out = run(&[
            "check",
            "--no-default-paths",
            "--secrets-dir",
            dir.to_str().unwrap(),
            "--output",
            "json",
        ]);
        let probes = probes_by_secret(&out);
        assert_eq!(probes.len(), 2, "{probes:?}");
        assert_eq!(probes[good]["success"], true, "{}", probes[good]);
        assert_eq!(probes[bad]["reason"], "unauthorized");
        assert_eq!(probes[good]["registry"], key.as_str());
    }
}
