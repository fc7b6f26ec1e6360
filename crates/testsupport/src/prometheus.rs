//! A real Prometheus: Debian's `prometheus` (2.42, `/usr/bin/prometheus`) on 127.0.0.1, with the
//! project's alert rules made fast by `deploy/prometheus/fast-rules.sh`, scraping static targets.
//!
//! ```ignore
//! let rules = prometheus::fast_rules("4s", 2);          // for: 4s, regprobe serve --interval 2s
//! let prom = Prometheus::start(&rules, &[ScrapeTarget::new(daemon_addr, &[("node", "node-a")])]);
//! let alerts = prom.alerts()?;                          // GET /api/v1/alerts
//! ```
//!
//! `scrape_interval` and `evaluation_interval` are 1 s. The config, the rules, the TSDB and
//! `prometheus.log` live in a temp dir removed on `Drop`; the process (never a system service)
//! runs with an empty environment and is killed on `Drop`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildProcess;

/// The Prometheus server binary (from the `prometheus` package).
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// `deploy/prometheus/rules.yaml` of this repository.
pub fn rules_path() -> PathBuf {
    crate::repo_root().join("deploy/prometheus/rules.yaml")
}

/// The project's rules rewritten by `deploy/prometheus/fast-rules.sh FOR INTERVAL_SECONDS`: every
/// `for:` becomes `for_duration`, RegprobeProbeStale's `3 * 300` becomes `3 * interval_secs`.
pub fn fast_rules(for_duration: &str, interval_secs: u64) -> String {
    let script = crate::repo_root().join("deploy/prometheus/fast-rules.sh");
    let rules = std::fs::File::open(rules_path()).expect("open deploy/prometheus/rules.yaml");
    let out = Command::new("bash")
        .arg(&script)
        .arg(for_duration)
        .arg(interval_secs.to_string())
        .stdin(Stdio::from(rules))
        .output()
        .expect("run deploy/prometheus/fast-rules.sh");
    assert!(
        out.status.success(),
        "fast-rules.sh failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("fast rules are UTF-8")
}

/// One static scrape target with its target labels (e.g. `node`, as the DaemonSet's
/// relabeling sets it).
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    /// The target's `host:port` (loopback).
    pub addr: SocketAddr,
    /// Target labels, in order.
    pub labels: Vec<(String, String)>,
}

impl ScrapeTarget {
    /// A target at `addr` (loopback only) with these labels.
    pub fn new(addr: SocketAddr, labels: &[(&str, &str)]) -> ScrapeTarget {
        assert!(addr.ip().is_loopback(), "scrape targets are loopback only");
        ScrapeTarget {
            addr,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// One entry of `/api/v1/alerts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// `labels.alertname`.
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    /// Every label, `alertname` included.
    pub labels: BTreeMap<String, String>,
    /// Every annotation (`summary`, `description`, ...).
    pub annotations: BTreeMap<String, String>,
}

impl Alert {
    /// Label `name`, if the alert has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether the alert is firing (not just pending).
    pub fn is_firing(&self) -> bool {
        self.state == "firing"
    }
}

/// A running Prometheus. Killed and its temp dir removed on `Drop`.
pub struct Prometheus {
    // Field order matters: the process dies before its directory is removed.
    process: ChildProcess,
    port: u16,
    _dir: TempDir,
}

fn string_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

impl Prometheus {
    /// Writes `rules` (a rule file's text) and a config scraping `targets` (job `e2e`) every
    /// second, starts Prometheus on a free port of 127.0.0.1 and waits (at most 30 s) until
    /// `/-/ready` answers 200. Panics with Prometheus's output if it does not.
    pub fn start(rules: &str, targets: &[ScrapeTarget]) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS_BIN).exists(),
            "{PROMETHEUS_BIN} is missing: run .ci/install-deps"
        );
        let dir = tempfile::Builder::new()
            .prefix("regprobe-prometheus-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        let static_configs: Vec<serde_json::Value> = targets
            .iter()
            .map(|t| {
                let labels: serde_json::Map<String, serde_json::Value> = t
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                serde_json::json!({ "targets": [t.addr.to_string()], "labels": labels })
            })
            .collect();
        // JSON is YAML.
        let config = serde_json::json!({
            "global": { "scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s" },
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{ "job_name": "e2e", "static_configs": static_configs }],
        });
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, serde_json::to_string_pretty(&config).unwrap()).unwrap();

        let mut last_err = String::new();
        // The free port may be taken between our probe and Prometheus's bind: retry.
        for _attempt in 0..3 {
            let port = crate::free_port();
            let data = dir.path().join("data");
            let _ = std::fs::remove_dir_all(&data);
            let log = dir.path().join("prometheus.log");
            let _ = std::fs::remove_file(&log);
            let mut cmd = Command::new(PROMETHEUS_BIN);
            cmd.arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=info")
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .current_dir(dir.path());
            let mut process = ChildProcess::spawn("prometheus", cmd, &log);
            let addr = crate::loopback(port);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = process.exited() {
                    last_err = format!("prometheus exited ({status}); output:\n{}", process.logs());
                    break;
                }
                let ready = crate::http::request_with_timeout(
                    addr,
                    "GET",
                    "/-/ready",
                    &[],
                    b"",
                    Duration::from_secs(1),
                )
                .map(|r| r.status == 200)
                .unwrap_or(false);
                if ready {
                    return Prometheus {
                        process,
                        port,
                        _dir: dir,
                    };
                }
                if Instant::now() >= deadline {
                    last_err = format!(
                        "prometheus was not ready on {addr} within 30 s; output:\n{}",
                        process.logs()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(process);
            if !last_err.contains("address already in use") {
                break;
            }
        }
        panic!("prometheus did not start: {last_err}");
    }

    /// `127.0.0.1:PORT` of its web UI and HTTP API.
    pub fn addr(&self) -> SocketAddr {
        crate::loopback(self.port)
    }

    /// What Prometheus logged so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// `GET path`, expecting a `{"status":"success","data":...}` answer; returns `data`.
    pub fn api_get(&self, path: &str) -> Result<serde_json::Value, String> {
        let r = crate::http::request(self.addr(), "GET", path, &[], b"")
            .map_err(|e| format!("GET {path}: {e}"))?;
        let body: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET {path}: {} not JSON ({e}): {}", r.status, r.text()))?;
        if r.status != 200 || body["status"] != "success" {
            return Err(format!("GET {path}: {}: {body}", r.status));
        }
        Ok(body["data"].clone())
    }

    /// Raw `data` of `GET /api/v1/alerts` (for failure messages).
    pub fn alerts_json(&self) -> Result<serde_json::Value, String> {
        self.api_get("/api/v1/alerts")
    }

    /// The active (pending or firing) alerts, from `GET /api/v1/alerts`.
    pub fn alerts(&self) -> Result<Vec<Alert>, String> {
        let data = self.alerts_json()?;
        let list = data["alerts"]
            .as_array()
            .ok_or_else(|| format!("/api/v1/alerts: no alerts array: {data}"))?;
        Ok(list
            .iter()
            .map(|a| {
                let labels = string_map(&a["labels"]);
                Alert {
                    name: labels.get("alertname").cloned().unwrap_or_default(),
                    state: a["state"].as_str().unwrap_or_default().to_string(),
                    labels,
                    annotations: string_map(&a["annotations"]),
                }
            })
            .collect())
    }
}
