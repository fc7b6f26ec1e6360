//! Secret hygiene: every command and every endpoint, at debug log level, with secrets holding
//! distinctive passwords, `auth` strings, identity and registry tokens, and bearer tokens issued
//! by a real token service. None of them may appear in any output, log, metric, JSON or error.

use regprobe_testsupport as support;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Registry, RegistryOptions, TokenIssuer, TokenIssuerOptions, TokenUser};

const GOOD: &str = "Hyg-PW-Zeta-8842";
const WRONG: &str = "Hyg-WRONG-Omega-1177";
const IDTOKEN: &str = "Hyg-IDTOKEN-Kappa-5521";
const REGTOKEN: &str = "Hyg-REGTOKEN-Sigma-3390";
const MALFORMED: &str = "Hyg-MALFORMED-Tau-6603";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every string that must never be printed.
fn needles() -> Vec<String> {
    let mut n: Vec<String> = [GOOD, WRONG, IDTOKEN, REGTOKEN, MALFORMED]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for user in ["alice", "bob"] {
        for pw in [GOOD, WRONG] {
            n.push(b64(&format!("{user}:{pw}")));
        }
    }
    // Bearer tokens issued by the test token service are JWTs: their header starts `eyJ`.
    n.push("eyJ".into());
    n
}

fn assert_clean(what: &str, text: &str) {
    for n in needles() {
        assert!(
            !text.contains(&n),
            "a secret ({}…) leaked into {what}",
            &n[..4.min(n.len())]
        );
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = support::regprobe();
    cmd.args(args).env("REGPROBE_LOG", "debug");
    support::output_with_stdin(&mut cmd, stdin.map(str::as_bytes))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn no_command_or_endpoint_prints_a_secret() {
    let basic = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD)]));
    support::push_image(&basic, "team/app:1", Some(("alice", GOOD)));
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new().user(
            TokenUser::new("bob", GOOD)
                .pull("team/app")
                .push("team/app"),
        ),
    );
    let token = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    support::push_image(&token, "team/app:1", Some(("bob", GOOD)));
    let (bk, tk) = (basic.host(), token.host());

    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    support::write_dockerconfigjson(&s, "good", &[(&bk, "alice", GOOD), (&tk, "bob", GOOD)]);
    support::write_dockerconfigjson(&s, "stale", &[(&bk, "alice", WRONG), (&tk, "bob", WRONG)]);
    let write = |name: &str, content: String| {
        std::fs::create_dir_all(s.join(name)).unwrap();
        std::fs::write(s.join(name).join(".dockerconfigjson"), content).unwrap();
    };
    // Secrets that do not parse, with secret material inside.
    write(
        "bad-json",
        format!(r#"{{"auths":{{"{bk}":{{"auth":"{MALFORMED}"#),
    );
    write(
        "bad-auth",
        format!(r#"{{"auths":{{"{bk}":{{"auth":"{MALFORMED}!!"}}}}}}"#),
    );
    write(
        "bad-type",
        format!(r#"{{"auths":{{"{bk}":"{MALFORMED}"}}}}"#),
    );
    // Tokens kubelet ignores.
    write(
        "tokens",
        format!(
            r#"{{"auths":{{"{tk}":{{"username":"bob","password":"{WRONG}","identitytoken":"{IDTOKEN}","registrytoken":"{REGTOKEN}"}}}}}}"#
        ),
    );
    let sd = s.to_str().unwrap();
    let img_b = format!("{bk}/team/app:1");
    let img_t = format!("{tk}/team/app:1");
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-stdin\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"{tk}\":{{\"username\":\"bob\",\"password\":\"{WRONG}\"}}}}}}'\n"
    );
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: team}}\nspec:\n  imagePullSecrets: [{{name: stale}}, {{name: missing}}]\n  containers:\n  - {{name: a, image: '{img_t}'}}\n"
    );

    let base = [
        "check",
        "--no-default-paths",
        "--log-level",
        "debug",
        "--timeout",
        "5s",
    ];
    let mut runs: Vec<(String, Output)> = Vec::new();
    let mut add = |label: &str, extra: &[&str], stdin: Option<&str>| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        runs.push((label.to_string(), run(&args, stdin)));
    };
    add("check text", &["--secrets-dir", sd], None);
    add("check -v", &["--secrets-dir", sd, "-v"], None);
    add(
        "check json",
        &["--secrets-dir", sd, "--output", "json"],
        None,
    );
    add(
        "check --image text",
        &[
            "--secrets-dir",
            sd,
            "--image",
            &img_b,
            "--image",
            &img_t,
            "--audit-all",
        ],
        None,
    );
    add(
        "check --image -v",
        &["--secrets-dir", sd, "--image", &img_t, "-v"],
        None,
    );
    add(
        "check --image json",
        &["--secrets-dir", sd, "--image", &img_t, "--output", "json"],
        None,
    );
    add(
        "check --secret -",
        &["--secret", "-", "--image", &img_t, "-v"],
        Some(&manifest),
    );
    add(
        "check --pod-spec",
        &["--secrets-dir", sd, "--pod-spec", "-", "-v"],
        Some(&pod),
    );
    add(
        "check --registry none",
        &["--secrets-dir", sd, "--registry", "nothere.example"],
        None,
    );
    add(
        "check missing file",
        &["--secret", "/nonexistent/regprobe.json"],
        None,
    );
    add("check --help", &["--help"], None);
    for (label, out) in &runs {
        assert_clean(label, &text(out));
    }
    // The runs did what they say (a test that cannot fail proves nothing).
    let json: serde_json::Value = serde_json::from_slice(&runs[2].1.stdout).unwrap();
    let reasons: Vec<&str> = json["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"unauthorized") && reasons.contains(&"secret_invalid"),
        "{reasons:?}"
    );
    assert!(text(&runs[1].1).contains("DEBUG"), "debug logging is on");
    assert_eq!(runs[9].1.status.code(), Some(2));

    // The daemon and every endpoint, at debug level.
    let port = support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = Command::new(support::regprobe_bin())
        .args([
            "serve",
            "--no-default-paths",
            "--log-level",
            "debug",
            "--interval",
            "10m",
            "--secrets-dir",
            sd,
        ])
        .args(["--image", &img_t, "--listen", &addr.to_string()])
        .arg("--web.enable-lifecycle")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut bodies = String::new();
    loop {
        let status = support::http::request(addr, "GET", "/status", &[], b"")
            .map(|r| r.text())
            .unwrap_or_default();
        if status.matches("\"registry\"").count() >= 6 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve never probed: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/status"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("POST", "/-/reload"),
        ("GET", "/nope"),
    ] {
        let r = support::http::request(addr, method, path, &[], b"").unwrap();
        bodies.push_str(&r.text());
    }
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("DEBUG"), "debug logging is on");
    assert!(
        bodies.contains("regprobe_success"),
        "the endpoints answered"
    );
    assert_clean("serve endpoints", &bodies);
    assert_clean("serve log", &logs);
}
