//! End to end: `regprobe serve` against real registries (htpasswd and token auth) with good,
//! bad and malformed mounted secrets; `/metrics` is scraped and parsed with the OpenMetrics
//! reference parser; nothing secret may appear in `/metrics`, `/status`, the JSON of `check`
//! or the debug logs.

use regprobe_testsupport as support;

use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Daemon, Registry, RegistryOptions, TokenIssuer, TokenIssuerOptions, TokenUser};

// Distinctive values: any of them in an output is a leak.
const GOOD_PW: &str = "Zq7-good-SECRET-4411";
const BAD_PW: &str = "Xk9-stale-SECRET-5522";

fn start_serve(secrets: &std::path::Path, log: &std::path::Path) -> Daemon {
    Daemon::start(
        &[
            "--no-default-paths",
            "--log-level",
            "debug",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--timeout",
            "3s",
            "--web.enable-lifecycle",
        ],
        std::fs::File::create(log).unwrap().into(),
    )
}

fn get(addr: SocketAddr, path: &str) -> support::http::Response {
    support::http::request(addr, "GET", path, &[], b"").expect("GET")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn sample<'a>(samples: &'a [Value], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

#[test]
fn serve_exposes_the_contract_metrics_and_leaks_nothing() {
    let basic = Registry::start(RegistryOptions::htpasswd(&[("alice", GOOD_PW)]));
    let issuer = TokenIssuer::start(TokenIssuerOptions::new().user(TokenUser::new("bob", GOOD_PW)));
    let token = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    let bkey = format!("127.0.0.1:{}", basic.port());
    let tkey = format!("127.0.0.1:{}", token.port());

    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secrets");
    let _good = support::write_secret_volume(
        &s,
        "good",
        &[(&bkey, "alice", GOOD_PW), (&tkey, "bob", GOOD_PW)],
    );
    let _bad = support::write_secret_volume(
        &s,
        "stale",
        &[(&bkey, "alice", BAD_PW), (&tkey, "bob", BAD_PW)],
    );
    let mut broken = support::AtomicVolume::new(&s.join("broken"));
    let broken_auth = support::http::basic_auth("alice", BAD_PW);
    let broken_auth = broken_auth.trim_start_matches("Basic ").to_string();
    broken.publish(&[(
        ".dockerconfigjson",
        format!(r#"{{"auths":{{"{bkey}":{{"auth":"{broken_auth}"}}}} trailing"#).as_bytes(),
    )]);

    let log_path = dir.path().join("serve.log");
    let daemon = start_serve(&s, &log_path);
    wait_for("/-/ready", || {
        support::http::request(daemon.addr, "GET", "/-/ready", &[], b"")
            .map(|r| r.status == 200)
            .unwrap_or(false)
    });
    // 4 credential probes + 1 invalid secret.
    wait_for("all probes in /status", || {
        get(daemon.addr, "/status").json()["probes"]
            .as_array()
            .map(|a| a.len())
            == Some(5)
    });

    let healthy = get(daemon.addr, "/-/healthy");
    assert_eq!(healthy.status, 200);
    let metrics = support::http::get(
        daemon.addr,
        "/metrics",
        &[support::http::ACCEPT_OPENMETRICS],
    );
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.text();
    let samples = support::openmetrics::parse(&text);

    for key in [&bkey, &tkey] {
        let ok = sample(
            &samples,
            "regprobe_success",
            &[("registry", key), ("secret", "good")],
        );
        assert_eq!(ok.len(), 1, "{key}: {text}");
        assert_eq!(ok[0]["value"], 1.0);
        let bad = sample(
            &samples,
            "regprobe_success",
            &[("registry", key), ("secret", "stale")],
        );
        assert_eq!(bad[0]["value"], 0.0);
        let reason = sample(
            &samples,
            "regprobe_failure_reason",
            &[("registry", key), ("secret", "stale")],
        );
        assert_eq!(
            reason.len(),
            1,
            "exactly one reason series per failing pair"
        );
        assert_eq!(reason[0]["labels"]["reason"], "unauthorized");
        assert_eq!(reason[0]["labels"]["class"], "credential");
        assert!(sample(
            &samples,
            "regprobe_failure_reason",
            &[("registry", key), ("secret", "good")]
        )
        .is_empty());
        assert_eq!(
            sample(
                &samples,
                "regprobe_probes_total",
                &[("registry", key), ("secret", "good")]
            )[0]["value"],
            1.0
        );
        assert!(!sample(
            &samples,
            "regprobe_phase_duration_seconds",
            &[("registry", key), ("secret", "good"), ("phase", "verify")]
        )
        .is_empty());
        assert!(!sample(
            &samples,
            "regprobe_last_success_timestamp_seconds",
            &[("registry", key), ("secret", "good")]
        )
        .is_empty());
    }
    assert!(!sample(
        &samples,
        "regprobe_phase_duration_seconds",
        &[("registry", &tkey), ("secret", "good"), ("phase", "token")]
    )
    .is_empty());
    assert_eq!(
        sample(&samples, "regprobe_secret_valid", &[("secret", "broken")])[0]["value"],
        0.0
    );
    assert_eq!(
        sample(&samples, "regprobe_secret_valid", &[("secret", "good")])[0]["value"],
        1.0
    );
    let invalid = sample(&samples, "regprobe_failure_reason", &[("secret", "broken")]);
    assert_eq!(invalid[0]["labels"]["reason"], "secret_invalid");
    assert_eq!(invalid[0]["labels"]["class"], "config");
    assert_eq!(
        sample(&samples, "regprobe_build_info", &[])[0]["value"],
        1.0
    );
    // The standard process metrics of the daemon itself (docs/metrics.md §4.2), read from its
    // /proc/self at this scrape.
    let value = |name: &str| -> f64 {
        let found = sample(&samples, name, &[]);
        assert_eq!(found.len(), 1, "one {name} sample");
        found[0]["value"].as_f64().unwrap()
    };
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_resident_memory_bytes") > 1e5);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_threads") >= 1.0);
    let started = value("process_start_time_seconds");
    let now = support::unix_now() as f64;
    assert!(
        started <= now + 1.0 && started >= now - 300.0,
        "start {started}, now {now}"
    );

    // Reload: the stale secret is removed; its series disappear.
    std::fs::remove_dir_all(s.join("stale")).unwrap();
    let r = support::http::request(daemon.addr, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    wait_for("the removed secret's series to disappear", || {
        !get(daemon.addr, "/metrics")
            .text()
            .contains("secret=\"stale\"")
    });

    let status = get(daemon.addr, "/status").text();
    let mut log = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("DEBUG"), "debug logging is on: {log}");

    // check --output json at debug level, over the same secrets.
    let check = Command::new(support::regprobe_bin())
        .args([
            "check",
            "--no-default-paths",
            "--log-level",
            "debug",
            "--secrets-dir",
            s.to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let good_auth = support::http::basic_auth("alice", GOOD_PW);
    let needles = [
        GOOD_PW.to_string(),
        BAD_PW.to_string(),
        good_auth.trim_start_matches("Basic ").to_string(),
        broken_auth.clone(),
        // Every bearer token the issuer signs is a JWT: its header starts "eyJ".
        "eyJ".to_string(),
    ];
    for (what, hay) in [
        ("/metrics", &text),
        ("/status", &status),
        ("serve log", &log),
        ("check output", &check_out),
    ] {
        for n in &needles {
            assert!(
                !hay.contains(n.as_str()),
                "a secret ({}…) leaked into {what}",
                &n[..3]
            );
        }
    }

    // SIGTERM: graceful exit 0.
    let mut daemon = daemon;
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(st) = daemon.child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0), "serve exits 0 on SIGTERM");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
