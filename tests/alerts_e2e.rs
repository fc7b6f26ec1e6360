//! End to end (issue #4): real `regprobe serve` daemons, a real `docker-registry` with htpasswd
//! auth and a real Prometheus evaluating the project's alert rules (`deploy/prometheus/rules.yaml`
//! made fast with `fast-rules.sh`), read back through Prometheus's `/api/v1/alerts`.
//!
//! * A: one node, a good and a bad secret: `RegprobeCredentialRejected` fires for the bad secret
//!   only.
//! * B: three nodes; node-c's path to the registry is broken (its `--resolve` points at an address
//!   where nothing listens, `connect_refused`): the credential alert still names only the bad
//!   secret, node-c gets `RegprobeRegistryUnreachableFromNode`, and the cluster-wide
//!   `RegprobeRegistryUnreachable` stays silent.
//!
//! Everything listens on 127.0.0.0/8; every process is killed and every temp dir removed on
//! `Drop`. Waits are polls with deadlines; a failure prints Prometheus's alerts, every daemon's
//! `/metrics` and Prometheus's log.

use regprobe_testsupport as support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::ChildProcess;
use support::prometheus::{self, Alert, Prometheus, ScrapeTarget};
use support::{Dns, Registry, RegistryOptions};

const USER: &str = "e2e-user";
const GOOD_PW: &str = "e2e-good-pw-7731";
const BAD_PW: &str = "e2e-wrong-pw-1188";
const GOOD: &str = "good-creds";
const BAD: &str = "bad-creds";

/// `regprobe serve --interval` in seconds; the fast rules' staleness threshold follows it.
const INTERVAL_SECS: u64 = 2;
/// `for:` of every rule in the fast copy: long enough that the first second after Prometheus
/// starts (some targets scraped, others not yet) cannot fire anything, short enough for the test.
const FAST_FOR: &str = "4s";
/// Bound on waiting for the expected alerts to fire (they need about FAST_FOR + 3 s).
const ALERT_DEADLINE: Duration = Duration::from_secs(45);
/// After the expected alerts fire, keep watching this long before the final check.
const HOLD: Duration = Duration::from_secs(3);

const CREDENTIAL_ALERT: &str = "RegprobeCredentialRejected";
const NODE_NETWORK_ALERT: &str = "RegprobeRegistryUnreachableFromNode";
const CLUSTER_NETWORK_ALERT: &str = "RegprobeRegistryUnreachable";

// ---------------------------------------------------------------------------------------------
// regprobe serve as one node's DaemonSet pod

struct Daemon {
    node: String,
    addr: SocketAddr,
    process: ChildProcess,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `regprobe serve` for `node` with the common flags plus `extra`, and waits until
    /// it is ready and its first probe cycle (`probes` results in `/status`) is done.
    fn start(node: &str, secrets: &Path, extra: &[String], probes: usize) -> Daemon {
        let log_dir = tempfile::Builder::new()
            .prefix("regprobe-e2e-serve-")
            .tempdir()
            .unwrap();
        let mut last_err = String::new();
        // The free port may be taken before regprobe binds it: retry with another.
        for _attempt in 0..3 {
            let addr = support::loopback(support::free_port());
            let log = log_dir.path().join("serve.log");
            let _ = std::fs::remove_file(&log);
            let mut cmd = Command::new(support::regprobe_bin());
            cmd.args(["serve", "--no-default-paths", "--no-proxy", "--secrets-dir"])
                .arg(secrets)
                .args(["--listen", &addr.to_string()])
                .args([
                    "--interval",
                    &format!("{INTERVAL_SECS}s"),
                    "--timeout",
                    "2s",
                ])
                .args(extra)
                .env_clear()
                .env("PATH", "/usr/bin:/bin");
            let mut process = ChildProcess::spawn(&format!("regprobe serve ({node})"), cmd, &log);
            match wait_ready(&mut process, addr, probes) {
                Ok(()) => {
                    return Daemon {
                        node: node.to_string(),
                        addr,
                        process,
                        _log_dir: log_dir,
                    }
                }
                Err(e) => {
                    last_err = e;
                    drop(process);
                    if !last_err.to_lowercase().contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("regprobe serve for {node} did not start: {last_err}");
    }

    fn get(&self, path: &str) -> Result<support::http::Response, String> {
        support::http::request(self.addr, "GET", path, &[], b"")
            .map_err(|e| format!("GET http://{}{path}: {e}", self.addr))
    }

    /// `/status`'s probes as `(secret, success, reason, class)`, sorted.
    fn status(&self) -> Vec<(String, bool, String, String)> {
        let status = self.get("/status").expect("/status").json();
        let mut out: Vec<_> = status["probes"]
            .as_array()
            .expect("/status has probes")
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                (s("secret"), p["success"] == true, s("reason"), s("class"))
            })
            .collect();
        out.sort();
        out
    }

    fn target(&self) -> ScrapeTarget {
        ScrapeTarget::new(self.addr, &[("node", &self.node)])
    }
}

fn wait_ready(process: &mut ChildProcess, addr: SocketAddr, probes: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = process.exited() {
            return Err(format!("exited ({status}); output:\n{}", process.logs()));
        }
        let done = support::http::request(addr, "GET", "/status", &[], b"")
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .and_then(|v| v["probes"].as_array().map(Vec::len))
            == Some(probes);
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no first probe cycle ({probes} probes in /status) on {addr} within 20 s; output:\n{}",
                process.logs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Watching the alerts

/// An alert name plus labels that must all be equal.
#[derive(Clone, Debug)]
struct Matcher {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
}

fn alert(name: &'static str, labels: &[(&'static str, &str)]) -> Matcher {
    Matcher {
        name,
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    }
}

impl Matcher {
    fn matches(&self, a: &Alert) -> bool {
        a.name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| a.label(k) == Some(v.as_str()))
    }
}

/// What a scenario expects from `/api/v1/alerts`.
struct Expect {
    /// Each must be firing (within [`ALERT_DEADLINE`]).
    firing: Vec<Matcher>,
    /// Never active at all, not even pending (no transient can explain them).
    never_active: Vec<Matcher>,
    /// Never firing; may be pending for a moment while Prometheus has scraped some targets and
    /// not yet the others, but not at the final check.
    never_firing: Vec<Matcher>,
}

fn describe(a: &Alert) -> String {
    format!("{} [{}] {:?}", a.name, a.state, a.labels)
}

/// Everything worth seeing when an expectation fails.
fn diagnostics(prom: &Prometheus, daemons: &[Daemon], history: &[String]) -> String {
    let mut out = String::new();
    out.push_str("=== alert states seen (first time each) ===\n");
    for line in history {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("=== Prometheus /api/v1/alerts ===\n");
    match prom.alerts_json() {
        Ok(v) => out.push_str(&serde_json::to_string_pretty(&v).unwrap()),
        Err(e) => out.push_str(&e),
    }
    out.push('\n');
    for d in daemons {
        out.push_str(&format!(
            "=== /metrics of node {} ({}) ===\n",
            d.node, d.addr
        ));
        match d.get("/metrics") {
            Ok(r) => out.push_str(&r.text()),
            Err(e) => out.push_str(&e),
        }
        out.push_str(&format!("=== log of node {} ===\n", d.node));
        out.push_str(&d.process.logs());
    }
    out.push_str("=== Prometheus targets ===\n");
    match prom.api_get("/api/v1/targets") {
        Ok(v) => {
            for t in v["activeTargets"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{} node={} health={} lastError={}\n",
                    t["scrapeUrl"], t["labels"]["node"], t["health"], t["lastError"]
                ));
            }
        }
        Err(e) => out.push_str(&e),
    }
    out.push_str("=== Prometheus log (tail) ===\n");
    let logs = prom.logs();
    let lines: Vec<&str> = logs.lines().collect();
    for l in &lines[lines.len().saturating_sub(40)..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Polls `/api/v1/alerts` until every `expect.firing` alert fires, checking the negative
/// expectations at every poll, keeps watching for [`HOLD`], then checks that the active alerts
/// are exactly the expected ones, all firing. Returns them.
fn watch_alerts(prom: &Prometheus, daemons: &[Daemon], expect: &Expect) -> Vec<Alert> {
    let start = Instant::now();
    let mut history: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut all_firing_since: Option<Instant> = None;
    let mut last_err = String::new();
    loop {
        let alerts = match prom.alerts() {
            Ok(a) => a,
            Err(e) => {
                last_err = e;
                Vec::new()
            }
        };
        for a in &alerts {
            let d = describe(a);
            if seen.insert(d.clone()) {
                history.push(format!("{:>5.1}s  {d}", start.elapsed().as_secs_f64()));
            }
        }
        let fail =
            |what: String| -> ! { panic!("{what}\n{}", diagnostics(prom, daemons, &history)) };
        for a in &alerts {
            if let Some(m) = expect.never_active.iter().find(|m| m.matches(a)) {
                fail(format!(
                    "alert that must never be active: {} (rule {m:?})",
                    describe(a)
                ));
            }
            if a.is_firing() {
                if let Some(m) = expect.never_firing.iter().find(|m| m.matches(a)) {
                    fail(format!(
                        "alert that must never fire: {} (rule {m:?})",
                        describe(a)
                    ));
                }
            }
        }
        let all_firing = expect
            .firing
            .iter()
            .all(|m| alerts.iter().any(|a| a.is_firing() && m.matches(a)));
        match (all_firing, all_firing_since) {
            (true, None) => all_firing_since = Some(Instant::now()),
            (false, Some(_)) => fail(
                "an expected alert stopped firing (or was never seen) after all had fired".into(),
            ),
            _ => {}
        }
        if let Some(since) = all_firing_since {
            if since.elapsed() >= HOLD {
                // Final check: steady state, nothing pending, nothing unexpected.
                for a in &alerts {
                    if !a.is_firing() || !expect.firing.iter().any(|m| m.matches(a)) {
                        fail(format!("unexpected active alert: {}", describe(a)));
                    }
                }
                eprintln!(
                    "expected alerts firing after {:.1}s; alert history:\n{}",
                    start.elapsed().as_secs_f64() - HOLD.as_secs_f64(),
                    history.join("\n")
                );
                return alerts;
            }
        }
        if start.elapsed() > ALERT_DEADLINE {
            let missing: Vec<_> = expect
                .firing
                .iter()
                .filter(|m| !alerts.iter().any(|a| a.is_firing() && m.matches(a)))
                .collect();
            fail(format!(
                "expected alerts not firing within {ALERT_DEADLINE:?}: {missing:?} (last API error: {last_err:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn find<'a>(alerts: &'a [Alert], m: &Matcher) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| m.matches(a)).collect()
}

fn label_names(a: &Alert) -> Vec<&str> {
    a.labels.keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn credential_alert_fires_for_the_bad_secret_only() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[(USER, GOOD_PW)]));
    let key = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let _good = support::write_secret_volume(&secrets, GOOD, &[(&key, USER, GOOD_PW)]);
    let _bad = support::write_secret_volume(&secrets, BAD, &[(&key, USER, BAD_PW)]);

    let daemon = Daemon::start("node-a", &secrets, &[], 2);
    assert_eq!(
        daemon.status(),
        vec![
            (
                BAD.into(),
                false,
                "unauthorized".into(),
                "credential".into()
            ),
            (GOOD.into(), true, String::new(), String::new()),
        ],
        "first probe cycle"
    );

    let prom = Prometheus::start(
        &prometheus::fast_rules(FAST_FOR, INTERVAL_SECS),
        &[daemon.target()],
    );
    let daemons = [daemon];
    let alerts = watch_alerts(
        &prom,
        &daemons,
        &Expect {
            firing: vec![alert(
                CREDENTIAL_ALERT,
                &[("registry", &key), ("secret", BAD)],
            )],
            never_active: vec![
                alert(CREDENTIAL_ALERT, &[("secret", GOOD)]),
                alert("RegprobeCredentialRejectedOnSomeNodes", &[]),
                alert(CLUSTER_NETWORK_ALERT, &[]),
                alert(NODE_NETWORK_ALERT, &[]),
            ],
            never_firing: vec![],
        },
    );

    let cred = find(
        &alerts,
        &alert(CREDENTIAL_ALERT, &[("registry", &key), ("secret", BAD)]),
    );
    assert_eq!(cred.len(), 1, "{alerts:#?}");
    // `count by (registry, secret)`: the alert is about the secret, not a node.
    assert_eq!(
        label_names(cred[0]),
        vec!["alertname", "registry", "secret", "severity"]
    );
    assert_eq!(cred[0].label("severity"), Some("critical"));
    let description = &cred[0].annotations["description"];
    assert!(
        description.contains("unauthorized 1"),
        "the description counts nodes per reason: {description}"
    );
}

#[test]
fn node_network_failure_is_not_blamed_on_credentials_or_the_registry() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[(USER, GOOD_PW)]));
    let port = reg.port();
    // The registry as nodes know it: a name, not an address; plain HTTP declared in hosts.toml.
    let host = format!("registry.test:{port}");
    let dns = Dns::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let _good = support::write_secret_volume(&secrets, GOOD, &[(&host, USER, GOOD_PW)]);
    let _bad = support::write_secret_volume(&secrets, BAD, &[(&host, USER, BAD_PW)]);
    let hosts_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(hosts_dir.join(&host)).unwrap();
    std::fs::write(
        hosts_dir.join(&host).join("hosts.toml"),
        format!("server = \"http://{host}\"\n"),
    )
    .unwrap();

    let common = |extra: &[String]| -> Vec<String> {
        let mut v = vec![
            "--hosts-dir".to_string(),
            hosts_dir.to_str().unwrap().to_string(),
            "--dns-server".to_string(),
            dns.server_arg(),
        ];
        v.extend_from_slice(extra);
        v
    };
    let a = Daemon::start("node-a", &secrets, &common(&[]), 2);
    let b = Daemon::start("node-b", &secrets, &common(&[]), 2);
    // node-c: its path to the registry is broken. 127.0.0.2 is on lo, but docker-registry binds
    // 127.0.0.1 only, so a connection is refused there (a stale DNS override, a dead route).
    let c = Daemon::start(
        "node-c",
        &secrets,
        &common(&["--resolve".into(), format!("{host}:127.0.0.2")]),
        2,
    );

    // The setup does what it claims before Prometheus judges it.
    for d in [&a, &b] {
        assert_eq!(
            d.status(),
            vec![
                (
                    BAD.into(),
                    false,
                    "unauthorized".into(),
                    "credential".into()
                ),
                (GOOD.into(), true, String::new(), String::new()),
            ],
            "first probe cycle on {}",
            d.node
        );
    }
    assert_eq!(
        c.status(),
        vec![
            (
                BAD.into(),
                false,
                "connect_refused".into(),
                "network".into()
            ),
            (
                GOOD.into(),
                false,
                "connect_refused".into(),
                "network".into()
            ),
        ],
        "first probe cycle on node-c"
    );

    let prom = Prometheus::start(
        &prometheus::fast_rules(FAST_FOR, INTERVAL_SECS),
        &[a.target(), b.target(), c.target()],
    );
    let daemons = [a, b, c];
    let node_c = |secret: &str| {
        alert(
            NODE_NETWORK_ALERT,
            &[
                ("registry", &host),
                ("secret", secret),
                ("node", "node-c"),
                ("class", "network"),
            ],
        )
    };
    let alerts = watch_alerts(
        &prom,
        &daemons,
        &Expect {
            firing: vec![
                alert(CREDENTIAL_ALERT, &[("registry", &host), ("secret", BAD)]),
                node_c(BAD),
                node_c(GOOD),
            ],
            never_active: vec![
                // node-c fails the good secret too, but with a network reason.
                alert(CREDENTIAL_ALERT, &[("secret", GOOD)]),
                alert("RegprobeCredentialRejectedOnSomeNodes", &[]),
                alert(NODE_NETWORK_ALERT, &[("node", "node-a")]),
                alert(NODE_NETWORK_ALERT, &[("node", "node-b")]),
            ],
            // Pending for a moment is possible while only node-c has been scraped.
            never_firing: vec![alert(CLUSTER_NETWORK_ALERT, &[])],
        },
    );

    let cred = find(&alerts, &alert(CREDENTIAL_ALERT, &[]));
    assert_eq!(cred.len(), 1, "one credential alert: {alerts:#?}");
    assert_eq!(cred[0].label("secret"), Some(BAD));
    assert_eq!(
        label_names(cred[0]),
        vec!["alertname", "registry", "secret", "severity"]
    );
    // 2 of the 2 nodes that reached the registry; node-c did not reach it and does not count.
    let description = &cred[0].annotations["description"];
    assert!(
        description.contains("100%") && description.contains("unauthorized 2"),
        "{description}"
    );

    for secret in [BAD, GOOD] {
        let net = find(&alerts, &node_c(secret));
        assert_eq!(net.len(), 1, "{alerts:#?}");
        assert_eq!(net[0].label("severity"), Some("warning"));
        assert_eq!(net[0].label("reason"), None, "max without (reason)");
        let summary = &net[0].annotations["summary"];
        assert!(
            summary.contains("node-c") && summary.contains(&host),
            "{summary}"
        );
        let description = &net[0].annotations["description"];
        assert!(description.contains("connect_refused"), "{description}");
    }
}
