//! `serve`'s logs: structured fields with plain names (`registry`, `secret`, `image`; no
//! `target_`), values as text rather than Rust `Debug` renderings of internal types, and no
//! INFO noise from the file watcher's library when a secret directory goes away.

use regprobe_testsupport as support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::Daemon;

fn lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn wait_for_message(log: &std::path::Path, message: &str, at_least: usize) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let n = lines(log)
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .count();
        if n >= at_least {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {message:?} in the log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn logs_use_plain_fields_and_the_watcher_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let port = support::fakes::closed_port();
    let key = format!("127.0.0.1:{port}");
    let a = support::write_secret_volume(&secrets, "a", &[(&key, "u", "pw")]);
    let b = support::write_secret_volume(&secrets, "b", &[(&key, "u", "pw")]);
    let log = dir.path().join("serve.log");
    let _daemon = Daemon::start(
        &[
            "--no-default-paths",
            "--log-format",
            "json",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--reload-interval",
            "1h",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    wait_for_message(&log, "probe failing", 2);
    // One secret goes away, then the whole directory.
    drop(b);
    std::fs::remove_dir_all(secrets.join("b")).ok();
    wait_for_message(&log, "probe removed; dropping its series", 1);
    drop(a);
    std::fs::remove_dir_all(&secrets).unwrap();
    wait_for_message(
        &log,
        "reloading inputs failed; keeping the last good state",
        1,
    );

    let all = lines(&log);
    let failing = all
        .iter()
        .find(|l| l["fields"]["message"] == "probe failing")
        .unwrap();
    assert_eq!(failing["fields"]["registry"], key.as_str(), "{failing}");
    assert_eq!(failing["fields"]["reason"], "connect_refused", "{failing}");
    let removed = all
        .iter()
        .find(|l| l["fields"]["message"] == "probe removed; dropping its series")
        .unwrap();
    assert_eq!(removed["fields"]["registry"], key.as_str(), "{removed}");
    assert_eq!(removed["fields"]["secret"], "b", "{removed}");
    for l in &all {
        let fields = l["fields"].as_object().unwrap();
        for (name, value) in fields {
            assert!(!name.ends_with('_'), "field {name:?}: {l}");
            let text = value.to_string();
            for debug in ["Credential {", "Some(", "Os {", "{ code:", "Image {"] {
                assert!(!text.contains(debug), "a Debug rendering in {name}: {l}");
            }
        }
        assert!(
            !(l["level"] == "INFO" && l["target"].as_str().unwrap_or("").starts_with("notify")),
            "watcher noise: {l}"
        );
    }
}
