//! Hostile and broken peers (issue #5, item 3): regprobe talks to registries it does not
//! control, so bad input from a peer must give a clear reason and never a panic, every network
//! step must end at the probe's `--timeout`, every read has a size cap, and no credential may
//! reach a host the challenge did not name.
//!
//! Each case drives `regprobe check --output json --timeout 2s` (or `regprobe serve`) against
//! servers on 127.0.0.0/8: the real `docker-registry` and token issuer where a real component
//! can play the part, and scripted fakes (`support::fake`, `support::hostile`) for byte-level
//! misbehaviour, each documenting what it imitates. Every result must be readable: no string
//! of the JSON holds a control character, whatever bytes the peer sent.

use regprobe_testsupport as support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::fake::{always, response, FakeServer, Seen, Step, API_VERSION};
use support::hostile;
use support::{
    fakes, Registry, RegistryOptions, TestPki, TokenIssuer, TokenIssuerOptions, TokenUser,
};

const USER: &str = "hostile-user";
const PW: &str = "H0stile-Passw0rd-5e1d";

/// A child process killed and reaped on drop, whatever happens to the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(args: &[&str], stdout: &Path) -> Command {
    let mut c = Command::new(support::regprobe_bin());
    c.args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stdout.with_extension("err")).unwrap());
    c
}

/// What one `check` run printed, and how long it took.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// The probes of `--output json`, by secret name.
    fn probes(&self) -> BTreeMap<String, Value> {
        let v: Value = serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "check did not print JSON ({e}): stdout={} stderr={}",
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        });
        v["probes"]
            .as_array()
            .expect("probes array")
            .iter()
            .map(|p| (p["secret"].as_str().unwrap_or("").to_string(), p.clone()))
            .collect()
    }
}

/// Runs `regprobe check --no-default-paths --secrets-dir DIR --timeout 2s ARGS…`, killed if it
/// outlives `limit`; `on_pid` is called with its pid while it runs (every 5 ms).
fn check_with(dir: &Path, args: &[&str], limit: Duration, mut on_pid: impl FnMut(u32)) -> Run {
    let out = dir.with_extension("stdout");
    let mut all = vec![
        "check",
        "--no-default-paths",
        "--secrets-dir",
        dir.to_str().unwrap(),
        "--timeout",
        "2s",
        "--concurrency",
        "32",
    ];
    all.extend_from_slice(args);
    let started = Instant::now();
    let mut child = Killed(command(&all, &out).spawn().expect("spawn regprobe check"));
    let pid = child.0.id();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "regprobe check ran longer than {limit:?}"
        );
        on_pid(pid);
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read_to_string(out.with_extension("err")).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn check_json(dir: &Path, args: &[&str]) -> Run {
    let mut a = vec!["--output", "json"];
    a.extend_from_slice(args);
    check_with(dir, &a, Duration::from_secs(20), |_| {})
}

fn secret(dir: &Path, name: &str, registry: &str) {
    support::write_dockerconfigjson(dir, name, &[(registry, USER, PW)]);
}

/// Every string in `v` is free of control characters (raw NUL, ESC, BEL, CR/LF…), and no
/// credential appears anywhere.
fn assert_readable(name: &str, v: &Value) {
    fn walk(v: &Value, path: &str, bad: &mut Vec<String>) {
        match v {
            Value::String(s) if s.chars().any(char::is_control) => {
                bad.push(format!("{path}: {s:?}"));
            }
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), bad)),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| walk(x, &format!("{path}.{k}"), bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(v, name, &mut bad);
    assert!(
        bad.is_empty(),
        "control characters kept:\n{}",
        bad.join("\n")
    );
    assert!(
        !v.to_string().contains(PW),
        "{name}: the password leaked: {v}"
    );
}

/// Asserts reason and class of each `(secret, reason, class)`, and that every result reads.
fn assert_reasons(
    run: &Run,
    expect: &[(&str, Option<&str>, Option<&str>)],
) -> BTreeMap<String, Value> {
    let probes = run.probes();
    let mut wrong = Vec::new();
    for (name, reason, class) in expect {
        let Some(p) = probes.get(*name) else {
            wrong.push(format!("{name}: no probe in the output"));
            continue;
        };
        if p["reason"].as_str() != *reason
            || p["class"].as_str() != *class
            || p["success"].as_bool() != Some(reason.is_none())
        {
            wrong.push(format!(
                "{name}: expected {reason:?}/{class:?}, got success={} {}/{}: {}",
                p["success"], p["reason"], p["class"], p["detail"]
            ));
        }
        assert_readable(name, p);
    }
    assert!(wrong.is_empty(), "mismatches:\n{}", wrong.join("\n"));
    assert_eq!(probes.len(), expect.len(), "one probe per secret");
    assert!(
        !run.stderr.contains("panicked"),
        "regprobe panicked: {}",
        run.stderr
    );
    probes
}

fn detail(p: &Value) -> &str {
    p["detail"].as_str().unwrap_or_default()
}

/// The first `WWW-Authenticate` kept as evidence (the HTTPS attempt of a loopback registry
/// comes first and has none).
fn first_challenge(p: &Value) -> &str {
    p["exchanges"]
        .as_array()
        .and_then(|a| a.iter().find_map(|e| e["challenge"].as_str()))
        .unwrap_or_default()
}

/// A registry whose token realm is `realm` (the real `docker-registry` issues the challenge).
fn token_registry(issuer: &TokenIssuer, realm: &str) -> Registry {
    Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth_with_realm(realm)))
}

// ---------------------------------------------------------------------------------------------
// Slow peers: a head trickled one byte a second; a TLS handshake that never completes.
// ---------------------------------------------------------------------------------------------

/// A registry that sends its response head one byte a second: the probe ends at `--timeout`
/// (2 s) with `timeout`, and regprobe closes the connection rather than leaving it open.
#[test]
fn slow_headers_end_at_the_timeout() {
    let slow = hostile::slow_headers(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "slow-headers", &slow.host());
    let run = check_json(&s, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let probes = assert_reasons(&run, &[("slow-headers", Some("timeout"), Some("network"))]);
    let p = &probes["slow-headers"];
    assert!(
        detail(p).contains("timeout awaiting response headers"),
        "{p}"
    );
    let took = p["duration_seconds"].as_f64().unwrap();
    assert!((1.8..3.0).contains(&took), "the probe took {took}s: {p}");
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    // The server got the HTTP request (after the HTTPS attempt it answered 400, as Go does).
    assert_eq!(slow.seen().len(), 1);
    assert!(slow.seen()[0].target.starts_with("/v2/"));
    // regprobe hung up: the trickle failed long before its ~150 bytes were sent.
    wait_until("the slow server sees the connection closed", || {
        slow.played().first().is_some_and(|p| p.peer_gone)
    });
    assert!(slow.played()[0].written < 20, "{:?}", slow.played());
}

/// A TLS server that stalls mid-handshake: `timeout` (network), spent in the `tls` phase.
/// Reached as `stall.test:PORT` (a non-loopback name: HTTPS only), as `127.0.0.1:PORT`
/// (containerd's loopback rule: HTTPS, then plain HTTP after a TLS handshake timeout; the TLS
/// step gets half the budget, `Session::fallback_tls_budget`, so the plain-HTTP attempt is made
/// and, unanswered, is the verdict as in containerd), and as the `https://`
/// token realm of a plain-HTTP registry (hosts.toml `server = "http://…"`), which gets TLS
/// settings of its own as with Go's transport.
#[test]
fn a_tls_handshake_that_hangs_is_a_timeout_in_the_tls_phase() {
    let stall = hostile::tls_stall();
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let plain = token_registry(
        &issuer,
        &format!("https://127.0.0.1:{}/token", stall.port()),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let hosts = dir.path().join("certs.d");
    let name = format!("stall.test:{}", stall.port());
    secret(&s, "tls-stall-name", &name);
    secret(
        &s,
        "tls-stall-loopback",
        &format!("127.0.0.1:{}", stall.port()),
    );
    let plain_name = format!("plain.test:{}", plain.port());
    std::fs::create_dir_all(hosts.join(&plain_name)).unwrap();
    std::fs::write(
        hosts.join(&plain_name).join("hosts.toml"),
        format!("server = \"http://{plain_name}\"\n"),
    )
    .unwrap();
    secret(&s, "tls-stall-realm", &plain_name);
    let resolve = format!("{name}:127.0.0.1");
    let resolve_plain = format!("{plain_name}:127.0.0.1");
    let run = check_json(
        &s,
        &[
            "--resolve",
            &resolve,
            "--resolve",
            &resolve_plain,
            "--hosts-dir",
            hosts.to_str().unwrap(),
        ],
    );
    let probes = assert_reasons(
        &run,
        &[
            ("tls-stall-name", Some("timeout"), Some("network")),
            ("tls-stall-loopback", Some("timeout"), Some("network")),
            ("tls-stall-realm", Some("timeout"), Some("network")),
        ],
    );
    assert!(
        detail(&probes["tls-stall-realm"]).contains("token service"),
        "{}",
        probes["tls-stall-realm"]
    );
    for (name, p) in &probes {
        let tls = p["phases"]["tls"].as_f64().unwrap_or(0.0);
        if name == "tls-stall-loopback" {
            // Half the budget to TLS, the rest to the plain-HTTP attempt it falls back to.
            assert!(
                detail(p).contains("timeout awaiting response headers"),
                "{p}"
            );
            assert!(p.to_string().contains("TLS handshake timeout"), "{p}");
            assert!(tls >= 0.9, "{p}");
        } else {
            assert!(detail(p).contains("TLS handshake timeout"), "{p}");
            assert!(tls >= 1.8, "the time went to the tls phase: {p}");
        }
        assert!(p["duration_seconds"].as_f64().unwrap() < 3.0, "{p}");
    }
    assert!(stall.connections() >= 3);
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    drop((plain, issuer));
}

// ---------------------------------------------------------------------------------------------
// The daemon stays responsive while a probe hangs.
// ---------------------------------------------------------------------------------------------

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting until {what}");
}

/// `regprobe serve` answers `/metrics` and `/-/healthy` quickly while one of its probes is
/// stuck on a server that trickles its head; the probe then ends at `--timeout` (2 s) as
/// `timeout`, and the stuck connection is closed.
#[test]
fn serve_stays_responsive_while_a_probe_is_stuck_on_slow_headers() {
    let slow = hostile::slow_headers(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "slow-headers", &slow.host());
    let listen: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let out = dir.path().join("serve.out");
    let _daemon = Killed(
        command(
            &[
                "serve",
                "--no-default-paths",
                "--secrets-dir",
                s.to_str().unwrap(),
                "--listen",
                &listen.to_string(),
                "--interval",
                "10m",
                "--timeout",
                "2s",
            ],
            &out,
        )
        .spawn()
        .expect("spawn regprobe serve"),
    );
    wait_until("the probe is stuck on the slow server", || {
        !slow.seen().is_empty()
    });
    let stuck_since = Instant::now();
    let mut worst = Duration::ZERO;
    let mut answered = 0;
    while stuck_since.elapsed() < Duration::from_millis(1500) {
        for path in ["/metrics", "/-/healthy"] {
            let t = Instant::now();
            let r = support::http::request_with_timeout(
                listen,
                "GET",
                path,
                &[],
                b"",
                Duration::from_secs(2),
            )
            .unwrap_or_else(|e| panic!("GET {path} while a probe hangs: {e}"));
            assert_eq!(r.status, 200, "{path}");
            worst = worst.max(t.elapsed());
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        slow.played().is_empty(),
        "the probe was still stuck while the daemon answered"
    );
    assert!(answered >= 10, "{answered} answers");
    assert!(
        worst < Duration::from_millis(500),
        "slowest answer while a probe hangs: {worst:?}"
    );
    wait_until("the stuck probe is reported as a timeout", || {
        let r = support::http::request(listen, "GET", "/status", &[], b"");
        r.ok()
            .and_then(|r| {
                let v = r.json();
                let p = v["probes"].as_array()?.first()?.clone();
                Some(p["reason"] == "timeout" && p["class"] == "network")
            })
            .unwrap_or(false)
    });
    let metrics = support::http::get(listen, "/metrics", &[]).text();
    assert!(
        metrics.contains("reason=\"timeout\""),
        "a timeout shows in /metrics"
    );
    wait_until("the slow server sees the connection closed", || {
        slow.played().first().is_some_and(|p| p.peer_gone)
    });
}

// ---------------------------------------------------------------------------------------------
// Size caps: a 100 MB token body, a 1 MB WWW-Authenticate header.
// ---------------------------------------------------------------------------------------------

/// A token service that answers with a 100 MB body: regprobe reads 1 MiB, says
/// `token_endpoint`, and its peak memory stays flat (the body is streamed by the fake, never
/// held by the test or by regprobe).
#[test]
fn a_100_mb_token_body_is_capped_at_1_mib_and_memory_stays_flat() {
    const HUGE: u64 = 100 * 1024 * 1024;
    let huge = hostile::huge_token(HUGE);
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let registry = token_registry(&issuer, &format!("{}/token", huge.url()));
    // A second probe that hangs until the 2 s timeout keeps the process alive after the token
    // probe, so its peak memory is read after the huge body was handled.
    let keepalive = fakes::hang();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "huge-token", &registry.host());
    secret(&s, "keepalive", &keepalive.host());

    let mut peak_kib = 0u64;
    let mut sampled_after_body = false;
    let run = check_with(&s, &["--output", "json"], Duration::from_secs(20), |pid| {
        if let Some(kib) = hostile::vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(kib);
            if huge.played().first().is_some_and(|p| p.peer_gone) {
                sampled_after_body = true;
            }
        }
    });
    let probes = assert_reasons(
        &run,
        &[
            ("huge-token", Some("token_endpoint"), Some("registry")),
            ("keepalive", Some("timeout"), Some("network")),
        ],
    );
    let p = &probes["huge-token"];
    assert!(detail(p).contains("larger than 1 MiB"), "{p}");
    // One POST, no GET fallback (a 2xx answer is final), and regprobe stopped reading: the
    // fake could not write the 100 MB.
    let seen = huge.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    let played = huge.played();
    assert!(played[0].peer_gone, "{played:?}");
    assert!(
        played[0].written < HUGE / 4,
        "regprobe kept reading: {} bytes were written",
        played[0].written
    );
    assert!(
        sampled_after_body,
        "VmHWM was read after the body was handled"
    );
    assert!(peak_kib > 0);
    assert!(
        peak_kib < 64 * 1024,
        "regprobe's peak RSS was {} MiB",
        peak_kib / 1024
    );
    drop((registry, issuer));
}

/// A `WWW-Authenticate` header of 1 MB: the response head is over the 256 KiB cap, so the
/// probe fails as `registry_error` saying so (no panic, no 1 MB in memory). A 64 KiB one fits
/// the head cap; the challenge is parsed up to 16 KiB, which still holds the realm, so the
/// probe goes on to the token service (here a closed port: `connect_refused`).
#[test]
fn a_1_mb_www_authenticate_header_gives_a_clear_reason() {
    let realm = format!("http://127.0.0.1:{}/token", fakes::closed_port());
    let mb = hostile::huge_challenge(&realm, 1024 * 1024);
    let kb = hostile::huge_challenge(&realm, 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "challenge-1mb", &mb.host());
    secret(&s, "challenge-64kb", &kb.host());
    let run = check_json(&s, &[]);
    let probes = assert_reasons(
        &run,
        &[
            ("challenge-1mb", Some("registry_error"), Some("registry")),
            ("challenge-64kb", Some("connect_refused"), Some("network")),
        ],
    );
    let p = &probes["challenge-1mb"];
    assert!(detail(p).contains("larger than 256 KiB"), "{p}");
    let p = &probes["challenge-64kb"];
    assert!(detail(p).contains("token service"), "{p}");
    let challenge = first_challenge(p);
    assert!(challenge.starts_with("Bearer realm="), "{p}");
    assert!(
        challenge.chars().count() < 1000,
        "the evidence is an excerpt"
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects: loops, and credentials that must not follow a redirect to another host.
// ---------------------------------------------------------------------------------------------

/// Redirect loops at `/v2/` and at the token realm stop after 10 requests, as Go's
/// `http.Client` (containerd) does: `registry_error` at the registry, `token_endpoint` at the
/// realm (where a transport error is final: no GET fallback).
#[test]
fn redirect_loops_are_bounded_at_ten() {
    let v2_loop = hostile::redirect_loop(302);
    let realm_loop = hostile::redirect_loop(307);
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let registry = token_registry(&issuer, &format!("{}/token", realm_loop.url()));
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "v2-redirect-loop", &v2_loop.host());
    secret(&s, "realm-redirect-loop", &registry.host());
    let run = check_json(&s, &[]);
    let probes = assert_reasons(
        &run,
        &[
            ("v2-redirect-loop", Some("registry_error"), Some("registry")),
            (
                "realm-redirect-loop",
                Some("token_endpoint"),
                Some("registry"),
            ),
        ],
    );
    for p in probes.values() {
        assert!(detail(p).contains("stopped after 10 redirects"), "{p}");
    }
    assert_eq!(v2_loop.seen().len(), 10, "{:?}", v2_loop.seen());
    let realm_seen = realm_loop.seen();
    assert_eq!(realm_seen.len(), 10, "{realm_seen:?}");
    // 307 keeps method and body on the same host, as Go does.
    assert!(realm_seen.iter().all(|r| r.method == "POST"));
    drop((registry, issuer));
}

/// A token realm that redirects to another host (`127.0.0.2`, a recorder): the credential is
/// never sent there, neither as `Authorization` nor in a form body.
///
/// What Go's `http.Client` does (containerd's token fetch): it drops `Authorization` when the
/// redirect leaves the host (unless to a subdomain), but on 307/308 it re-sends the request
/// body (`GetBody`) to any host, so containerd would POST `password=…` to the other host.
/// regprobe drops `Authorization` likewise and refuses to carry a body to another host; a
/// 301/302/303 turns the POST into a GET without body. The other host's answer says nothing
/// about the credential, so the probe reports `token_endpoint`, naming that host.
#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let other = hostile::recorder();
    let to = format!("{}/token", other.url());
    let r307 = hostile::redirector(307, &to);
    let r308 = hostile::redirector(308, &to);
    let r302 = hostile::redirector(302, &to);
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let cases = [
        ("realm-307-post", format!("{}/token", r307.url())),
        ("realm-308-post", format!("{}/token", r308.url())),
        ("realm-302-post", format!("{}/token", r302.url())),
        // POST answers 404 (GCR), so the GET with Basic is what gets the 307.
        (
            "realm-307-get-basic",
            format!("{}/token?post=404", r307.url()),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let mut registries = Vec::new();
    for (name, realm) in &cases {
        let reg = token_registry(&issuer, realm);
        secret(&s, name, &reg.host());
        registries.push(reg);
    }
    let run = check_json(&s, &[]);
    // The redirectors did get the credential (the test is not vacuous)...
    let basic = support::http::basic_auth(USER, PW);
    let got_credential =
        |r: &Seen| r.contains(PW.as_bytes()) || r.header("authorization") == Some(basic.as_bytes());
    for r in [&r307, &r308, &r302] {
        assert!(r.seen().iter().any(got_credential), "{:?}", r.seen());
    }
    // ...and the other host never did.
    let seen = other.seen();
    for r in &seen {
        assert!(
            r.header("authorization").is_none(),
            "Authorization sent to {}: {r:?}",
            other.host()
        );
        assert!(
            !r.contains(PW.as_bytes()),
            "the password reached {}: {r:?}",
            other.host()
        );
        assert!(r.body.is_empty(), "a body reached {}: {r:?}", other.host());
    }
    let expect: Vec<_> = cases
        .iter()
        .map(|(n, _)| (*n, Some("token_endpoint"), Some("registry")))
        .collect();
    let probes = assert_reasons(&run, &expect);
    for p in probes.values() {
        assert!(
            detail(p).contains(&other.host()),
            "names the other host: {p}"
        );
    }

    // 302 (POST → GET, then the Basic GET) and the 307 of the Basic GET reach it, without
    // credentials; the 307/308 of the POST (with the password in its body) are not followed.
    assert!(seen.iter().all(|r| r.method == "GET"), "{seen:?}");
    assert_eq!(seen.len(), 3, "{seen:?}");
    drop((registries, issuer));
}

// ---------------------------------------------------------------------------------------------
// An HTTP token realm for an HTTPS registry.
// ---------------------------------------------------------------------------------------------

/// The registry is HTTPS but its realm is plain `http://`: the probe runs (and succeeds), the
/// notes say the password travels unencrypted, and `insecure_realm` is set for the metric
/// `regprobe_insecure_token_realm`. A plain-HTTP registry with an HTTP realm is not flagged.
#[test]
fn a_plain_http_realm_for_an_https_registry_is_flagged() {
    let pki = TestPki::new();
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new().user(TokenUser::new(USER, PW).pull("team/app")),
    );
    let tls = Registry::start(
        RegistryOptions::default()
            .with_auth(issuer.registry_auth())
            .with_tls(&pki.leaf(&["registry.test"])),
    );
    let plain = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let hosts = dir.path().join("certs.d");
    let name = format!("registry.test:{}", tls.port());
    std::fs::create_dir_all(hosts.join(&name)).unwrap();
    std::fs::copy(pki.ca_cert(), hosts.join(&name).join("ca.crt")).unwrap();
    secret(&s, "https-registry-http-realm", &name);
    secret(&s, "http-registry-http-realm", &plain.host());
    let resolve = format!("{name}:127.0.0.1");
    let run = check_json(
        &s,
        &[
            "--resolve",
            &resolve,
            "--hosts-dir",
            hosts.to_str().unwrap(),
        ],
    );
    let probes = assert_reasons(
        &run,
        &[
            ("https-registry-http-realm", None, None),
            ("http-registry-http-realm", None, None),
        ],
    );
    let p = &probes["https-registry-http-realm"];
    assert_eq!(p["insecure_realm"], true, "{p}");
    let notes = p["notes"].to_string();
    assert!(
        notes.contains("plain HTTP while the registry is HTTPS"),
        "{p}"
    );
    let p = &probes["http-registry-http-realm"];
    assert_ne!(p["insecure_realm"], true, "{p}");
    drop((tls, plain, issuer));
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8 and NUL bytes in every field a peer controls; connections closed mid-response.
// ---------------------------------------------------------------------------------------------

/// `(secret, the bytes a fake registry answers, reason, class)`.
type RawCase = (
    &'static str,
    Vec<u8>,
    Option<&'static str>,
    Option<&'static str>,
);

/// A loopback fake registry answering `bytes` to every request.
fn raw(bytes: Vec<u8>) -> FakeServer {
    FakeServer::serve(Ipv4Addr::LOCALHOST, always(bytes))
}

/// distribution's Basic `401` with a given status line reason and challenge bytes.
fn basic_401(reason: &[u8], challenge: &[u8]) -> Vec<u8> {
    response(
        401,
        reason,
        &[API_VERSION, ("WWW-Authenticate", challenge)],
        br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
    )
}

/// A token service fake: each path of the realm is one behaviour (see the table in
/// [`bytes_no_peer_should_send`]); `/ok` issues `{"access_token":"good-token"}`.
fn token_fake() -> FakeServer {
    FakeServer::serve(Ipv4Addr::LOCALHOST, |seen: &Seen| {
        let path = seen.target.split('?').next().unwrap_or_default();
        let json = |body: &[u8]| {
            vec![Step::Send(response(
                200,
                b"OK",
                &[("Content-Type", b"application/json")],
                body,
            ))]
        };
        match path {
            "/invalid-utf8" => json(b"{\"access_token\":\"\xff\xfe\xc3\x28\",\"token\":\"\xff\"}"),
            "/escaped-controls" => json(br#"{"access_token":"ab\u0000cd\u001b[2J\u0007"}"#),
            "/raw-nul" => json(b"{\"access_token\":\"a\x00b\x1b[2J\"}"),
            "/error-garbage" => vec![Step::Send(response(
                500,
                b"Internal \xff Error",
                &[("Content-Type", b"text/html"), ("X-Debug", b"\xc3\x28\xff")],
                b"\x00\x1b[31m\xff\xfe<html>\x07boom\r\n\x1b]0;owned\x07</html>",
            ))],
            "/unauthorized-garbage" => vec![Step::Send(response(
                401,
                b"Unauthorized",
                &[("Content-Type", b"application/json")],
                br#"{"errors":[{"code":"UNAUTHORIZED\u0000\u001b[2J","message":"bad\u001b]0;owned\u0007 login\u0000"}]}"#,
            ))],
            "/eof-mid-body" => vec![Step::Send(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"abc"
                    .to_vec(),
            )],
            _ => json(br#"{"access_token":"good-token","expires_in":300}"#),
        }
    })
}

/// A registry fake imitating distribution with token auth whose challenge carries invalid
/// UTF-8 in `realm` (path part), `service` and `scope`; it accepts `Bearer good-token`.
fn bearer_registry_with_mangled_challenge(token_port: u16) -> FakeServer {
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen: &Seen| {
        if seen.header("authorization") == Some(b"Bearer good-token") {
            return vec![Step::Send(response(200, b"OK", &[API_VERSION], b"{}"))];
        }
        let mut c = format!("Bearer realm=\"http://127.0.0.1:{token_port}/ok").into_bytes();
        c.extend_from_slice(
            b"\xff\xfe\",service=\"reg\xfeistry\",scope=\"repository:\xc3\x28:pull\"",
        );
        vec![Step::Send(basic_401(b"Unauthorized", &c))]
    })
}

/// Invalid UTF-8, NUL and terminal escapes in every field a peer controls: the status line's
/// reason, header values, challenge parameters (realm, service, scope), the token JSON, error
/// bodies and `Location`. NUL and other control bytes in the head are not HTTP (Go and hyper
/// both refuse them): `not_a_registry` at the registry, `token_endpoint` at the realm. Invalid
/// UTF-8 is carried as Go would: replaced in text, percent-encoded in a `Location`. Whatever
/// the bytes, the result is a clear reason and readable evidence.
#[test]
fn bytes_no_peer_should_send() {
    let tokens = token_fake();
    let t = tokens.url();
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let mut keep: Vec<FakeServer> = Vec::new();
    let mut expect: Vec<(&str, Option<&str>, Option<&str>)> = Vec::new();

    // --- the registry (loopback fakes) ---
    let cases: Vec<RawCase> = vec![
        // The reason phrase is ignored (obs-text is legal there): the 401 is a Basic challenge.
        (
            "status-reason-invalid-utf8",
            basic_401(b"\xff\xfe\xc3\x28 Unauth\x80orized", b"Basic realm=\"r\""),
            Some("unauthorized"),
            Some("credential"),
        ),
        (
            "status-reason-nul",
            basic_401(b"Un\x00authorized", b"Basic realm=\"r\""),
            Some("not_a_registry"),
            Some("registry"),
        ),
        (
            "header-invalid-utf8",
            basic_401(b"Unauthorized", b"Basic realm=\"\xff\xfe\x80\xc3\x28\""),
            Some("unauthorized"),
            Some("credential"),
        ),
        (
            "header-nul",
            basic_401(b"Unauthorized", b"Basic realm=\"a\x00b\""),
            Some("not_a_registry"),
            Some("registry"),
        ),
        (
            "header-escape",
            basic_401(b"Unauthorized", b"Basic realm=\"\x1b[31mred\x1b[0m\""),
            Some("not_a_registry"),
            Some("registry"),
        ),
        // A realm whose host is not a host name.
        (
            "challenge-realm-bad-host",
            basic_401(
                b"Unauthorized",
                b"Bearer realm=\"http://\xff\xfe/token\",service=\"registry.test\"",
            ),
            Some("challenge_unsupported"),
            Some("registry"),
        ),
        // Error bodies: JSON with escaped control characters, and raw bytes.
        (
            "error-body-json-controls",
            response(
                503,
                b"Service Unavailable",
                &[API_VERSION, ("Content-Type", b"application/json")],
                br#"{"errors":[{"code":"UNAVAILABLE\u001b[2J\u0000","message":"down\u0000\u0007 for \u001b]0;owned\u0007maintenance\r\nX-Injected: 1"}]}"#,
            ),
            Some("registry_error"),
            Some("registry"),
        ),
        (
            "error-body-raw-bytes",
            response(
                503,
                b"Service Unavailable",
                &[("Content-Type", b"text/plain")],
                b"\x00\x1b[2J\xff\xfe maintenance \x07\x08\r\n\x1b]0;owned\x07",
            ),
            Some("registry_error"),
            Some("registry"),
        ),
        (
            "location-nul",
            response(302, b"Found", &[("Location", b"/v2/\x00x")], b""),
            Some("not_a_registry"),
            Some("registry"),
        ),
        (
            "location-bad-host",
            response(302, b"Found", &[("Location", b"http://\xff\xfe:1/v2/")], b""),
            Some("registry_error"),
            Some("registry"),
        ),
    ];
    for (name, bytes, reason, class) in cases {
        let fake = raw(bytes);
        secret(&s, name, &fake.host());
        expect.push((name, reason, class));
        keep.push(fake);
    }
    // A Location with invalid UTF-8: followed, percent-encoded as Go does; the target answers
    // the Basic 401.
    let location = FakeServer::serve(Ipv4Addr::LOCALHOST, |seen: &Seen| {
        let bytes = if seen.target == "/v2/" {
            response(302, b"Found", &[("Location", b"/v2/\xff\xfe\xc3\x28")], b"")
        } else {
            basic_401(b"Unauthorized", b"Basic realm=\"moved\"")
        };
        vec![Step::Send(bytes)]
    });
    secret(&s, "location-invalid-utf8", &location.host());
    expect.push((
        "location-invalid-utf8",
        Some("unauthorized"),
        Some("credential"),
    ));
    // Challenge parameters with invalid UTF-8 (realm path, service, scope): the handshake works.
    let mangled = bearer_registry_with_mangled_challenge(tokens.port());
    secret(&s, "challenge-params-invalid-utf8", &mangled.host());
    expect.push(("challenge-params-invalid-utf8", None, None));

    // --- the token realm (real registries issuing the challenge) ---
    let mut registries = Vec::new();
    for (name, path, reason, class) in [
        // Go's encoding/json takes invalid UTF-8 in a string (each bad byte becomes U+FFFD,
        // `probe::tokenjson`), and Go's transport sends such a header value (obs-text): the
        // registry then rejects the token, as it does containerd's.
        (
            "token-json-invalid-utf8",
            "/invalid-utf8",
            "token_rejected",
            "registry",
        ),
        (
            "token-json-escaped-controls",
            "/escaped-controls",
            "token_endpoint",
            "registry",
        ),
        (
            "token-json-raw-nul",
            "/raw-nul",
            "token_endpoint",
            "registry",
        ),
        (
            "token-error-body-garbage",
            "/error-garbage",
            "token_endpoint",
            "registry",
        ),
        (
            "token-401-garbage",
            "/unauthorized-garbage",
            "unauthorized",
            "credential",
        ),
    ] {
        let reg = token_registry(&issuer, &format!("{t}{path}"));
        secret(&s, name, &reg.host());
        expect.push((name, Some(reason), Some(class)));
        registries.push(reg);
    }

    let run = check_json(&s, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let probes = assert_reasons(&run, &expect);

    // The mangled challenge: the realm's invalid bytes became U+FFFD, percent-encoded.
    let to_ok: Vec<Seen> = tokens
        .seen()
        .into_iter()
        .filter(|r| r.target.starts_with("/ok"))
        .collect();
    assert!(!to_ok.is_empty());
    assert!(
        to_ok[0].target.starts_with("/ok%EF%BF%BD%EF%BF%BD"),
        "{to_ok:?}"
    );
    // The invalid Location was followed, percent-encoded byte for byte (Go's EscapedPath).
    let targets: Vec<String> = location.seen().into_iter().map(|r| r.target).collect();
    assert!(
        targets.contains(&"/v2/%FF%FE%C3(".to_string()),
        "{targets:?}"
    );
    // The evidence shows the registry's words, cleaned.
    let p = &probes["error-body-json-controls"];
    assert!(detail(p).contains("UNAVAILABLE"), "{p}");
    assert!(detail(p).contains("maintenance"), "{p}");
    let p = &probes["token-json-escaped-controls"];
    assert!(detail(p).contains("not allowed in an HTTP header"), "{p}");
    let p = &probes["header-invalid-utf8"];
    assert!(first_challenge(p).contains('\u{fffd}'), "{p}");

    // The same run as text: no control byte but newlines reaches the terminal.
    let text = check_with(&s, &[], Duration::from_secs(20), |_| {});
    let bad: Vec<u8> = text
        .stdout
        .iter()
        .copied()
        .filter(|b| b.is_ascii_control() && *b != b'\n')
        .collect();
    assert!(bad.is_empty(), "control bytes in the text output: {bad:?}");
    assert!(!String::from_utf8_lossy(&text.stdout).contains(PW));
    drop((keep, registries, issuer));
}

/// A registry that closes mid-response is `timeout` ("connected, but no answer in time, or the
/// connection closed mid-response"): the head then EOF in the body, EOF inside the head, and
/// EOF in the token service's body (a network reason at the realm, never `unauthorized`).
#[test]
fn connections_closed_mid_response_are_timeouts() {
    let mid_body = raw(
        b"HTTP/1.1 401 Unauthorized\r\nDocker-Distribution-API-Version: registry/2.0\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 1000\r\n\r\n{\"errors\":[{\"code\""
            .to_vec(),
    );
    let mid_head = raw(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic re".to_vec());
    let status_only = raw(b"HTTP/1.1 40".to_vec());
    let tokens = token_fake();
    let issuer = TokenIssuer::start(TokenIssuerOptions::new());
    let realm_eof = token_registry(&issuer, &format!("{}/eof-mid-body", tokens.url()));
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    secret(&s, "eof-mid-body", &mid_body.host());
    secret(&s, "eof-mid-head", &mid_head.host());
    secret(&s, "eof-mid-status-line", &status_only.host());
    secret(&s, "token-eof-mid-body", &realm_eof.host());
    let run = check_json(&s, &[]);
    let probes = assert_reasons(
        &run,
        &[
            ("eof-mid-body", Some("timeout"), Some("network")),
            ("eof-mid-head", Some("timeout"), Some("network")),
            ("eof-mid-status-line", Some("timeout"), Some("network")),
            ("token-eof-mid-body", Some("timeout"), Some("network")),
        ],
    );
    for p in probes.values() {
        assert!(
            detail(p).contains("connection closed before a complete response"),
            "{p}"
        );
    }
    assert!(detail(&probes["token-eof-mid-body"]).contains("token service"));
    drop((realm_eof, issuer));
}
