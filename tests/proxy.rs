//! `HTTPS_PROXY` as containerd honours it (Go's `ProxyFromEnvironment`): a registry behind a
//! real proxy (tinyproxy) that refuses the `CONNECT` gives the `proxy` reason (network class),
//! never a credential verdict; `NO_PROXY` and `--no-proxy` bypass it; loopback is never
//! proxied.

use regprobe_testsupport as support;

use serde_json::Value;
use support::proxy::{Proxy, ProxyPolicy};
use support::{fakes, Registry, RegistryOptions};

const PW: &str = "Pr0xy-test-Passw0rd";

/// Runs `check --output json` for one secret with the given environment; returns the probe.
fn check(secret_key: &str, env: &[(&str, &str)], extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = support::write_dockerconfigjson(dir.path(), "s", &[(secret_key, "alice", PW)]);
    let mut cmd = support::regprobe();
    cmd.args([
        "check",
        "--no-default-paths",
        "--timeout",
        "3s",
        "--output",
        "json",
        "--secret",
    ])
    .arg(&f)
    .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["probes"][0].clone()
}

#[test]
fn proxy_refusing_connect_is_a_proxy_reason() {
    let proxy = Proxy::start(ProxyPolicy::Only443);
    // A name (not a loopback literal), so it is proxied; --resolve keeps it off real DNS
    // for the bypass case below.
    let port = fakes::closed_port();
    let key = format!("registry.test:{port}");
    let p = check(&key, &[("HTTPS_PROXY", &proxy.url())], &[]);
    assert_eq!(p["reason"], "proxy", "{p}");
    assert_eq!(p["class"], "network");
    assert!(p["detail"].as_str().unwrap().contains("403"), "{p}");
}

#[test]
fn proxy_demanding_credentials_is_a_proxy_reason() {
    let proxy = Proxy::start(ProxyPolicy::RequireAuth);
    let key = format!("registry.test:{}", fakes::closed_port());
    let p = check(&key, &[("https_proxy", &proxy.url())], &[]);
    assert_eq!(p["reason"], "proxy", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("407"), "{p}");
}

#[test]
fn proxy_down_is_a_proxy_reason() {
    let url = format!("http://127.0.0.1:{}", fakes::closed_port());
    let key = format!("registry.test:{}", fakes::closed_port());
    let p = check(&key, &[("HTTPS_PROXY", &url)], &[]);
    assert_eq!(p["reason"], "proxy", "{p}");
    assert_eq!(p["class"], "network");
}

#[test]
fn no_proxy_loopback_and_flag_bypass_the_proxy() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", PW)]));
    let proxy = Proxy::start(ProxyPolicy::Only443);
    // Loopback is never proxied (Go's rule), so the registry is reached directly.
    let p = check(&reg.host(), &[("HTTPS_PROXY", &proxy.url())], &[]);
    assert_eq!(p["success"], true, "{p}");
    // A name listed in NO_PROXY is not proxied: the probe reaches the (plain HTTP) registry
    // directly and gets the registry's own answer, not the proxy's refusal.
    let key = format!("plain.test:{}", reg.port());
    let resolve = format!("plain.test:{}:127.0.0.1", reg.port());
    let p = check(
        &key,
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "plain.test")],
        &["--resolve", &resolve],
    );
    assert_eq!(p["reason"], "plain_http", "{p}");
    // --no-proxy ignores the environment.
    let p = check(
        &key,
        &[("HTTPS_PROXY", &proxy.url())],
        &["--resolve", &resolve, "--no-proxy"],
    );
    assert_eq!(p["reason"], "plain_http", "{p}");
    // And without NO_PROXY the same name goes through the proxy, which refuses the port.
    let p = check(
        &key,
        &[("HTTPS_PROXY", &proxy.url())],
        &["--resolve", &resolve],
    );
    assert_eq!(p["reason"], "proxy", "{p}");
}
