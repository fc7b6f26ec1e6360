//! Unit tests of `metrics`.

use super::*;
use crate::probe::{Class, Phase, TlsInfo};

fn cred(registry: &str, secret: &str, reason: Option<Reason>, at: f64) -> ProbeResult {
    let mut r = ProbeResult::new(registry, Some(secret.to_owned()));
    r.success = reason.is_none();
    r.reason = reason;
    r.class = reason.map(Reason::class);
    r.timestamp = at;
    r.duration_seconds = 0.25;
    r.add_phase(Phase::Resolve, 0.01);
    r.add_phase(Phase::Connect, 0.02);
    r.detail = "the registry answered 401 to the credential".to_owned();
    r
}

fn image(image: &str, secret: Option<&str>, reason: Option<Reason>) -> ProbeResult {
    let mut r = ProbeResult::new("quay.io", secret.map(str::to_owned));
    r.image = Some(image.to_owned());
    r.success = reason.is_none();
    r.reason = reason;
    r.class = reason.map(Reason::class);
    r.timestamp = 50.0;
    r.duration_seconds = 1.0;
    r.add_phase(Phase::Manifest, 0.5);
    r
}

/// The sample lines (not comments) whose metric name is exactly `name`.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[test]
fn failure_reason_has_one_series_per_failing_pair_and_none_when_passing() {
    let store = Store::new("v");
    store.record(cred("quay.io", "a", Some(Reason::Unauthorized), 1.0));
    store.record(cred("quay.io", "a", Some(Reason::Dns), 2.0));
    store.record(cred("ghcr.io", "b", None, 2.0));
    store.record(cred("docker.io", "c", Some(Reason::PullDenied), 2.0));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_failure_reason"),
        vec![
            r#"regprobe_failure_reason{registry="docker.io",secret="c",reason="pull_denied",class="permission"} 1"#,
            r#"regprobe_failure_reason{registry="quay.io",secret="a",reason="dns",class="network"} 1"#,
        ]
    );
    assert_eq!(
        samples(&text, "regprobe_success"),
        vec![
            r#"regprobe_success{registry="docker.io",secret="c"} 0"#,
            r#"regprobe_success{registry="ghcr.io",secret="b"} 1"#,
            r#"regprobe_success{registry="quay.io",secret="a"} 0"#,
        ]
    );
    // It recovers: the failure series goes.
    store.record(cred("quay.io", "a", None, 3.0));
    let text = encode(&store);
    assert_eq!(samples(&text, "regprobe_failure_reason").len(), 1);
}

#[test]
fn last_success_is_kept_across_a_later_failure() {
    let store = Store::new("v");
    let text = encode(&store);
    assert!(samples(&text, "regprobe_last_success_timestamp_seconds").is_empty());
    store.record(cred("quay.io", "a", Some(Reason::Timeout), 100.0));
    let text = encode(&store);
    assert!(samples(&text, "regprobe_last_success_timestamp_seconds").is_empty());
    store.record(cred("quay.io", "a", None, 200.0));
    store.record(cred("quay.io", "a", Some(Reason::Timeout), 300.0));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_last_success_timestamp_seconds"),
        vec![r#"regprobe_last_success_timestamp_seconds{registry="quay.io",secret="a"} 200.0"#]
    );
    assert_eq!(
        samples(&text, "regprobe_last_probe_timestamp_seconds"),
        vec![r#"regprobe_last_probe_timestamp_seconds{registry="quay.io",secret="a"} 300.0"#]
    );
}

#[test]
fn counters_accumulate() {
    let store = Store::new("v");
    store.record(cred("quay.io", "a", Some(Reason::Timeout), 1.0));
    store.record(cred("quay.io", "a", None, 2.0));
    store.record(cred("quay.io", "a", Some(Reason::Timeout), 3.0));
    store.record(cred("quay.io", "a", Some(Reason::RateLimited), 4.0));
    let text = encode(&store);
    assert!(text.contains("# TYPE regprobe_probes counter\n"));
    assert_eq!(
        samples(&text, "regprobe_probes_total"),
        vec![r#"regprobe_probes_total{registry="quay.io",secret="a"} 4"#]
    );
    assert_eq!(
        samples(&text, "regprobe_probe_failures_total"),
        vec![
            r#"regprobe_probe_failures_total{registry="quay.io",secret="a",reason="timeout",class="network"} 2"#,
            r#"regprobe_probe_failures_total{registry="quay.io",secret="a",reason="rate_limited",class="registry"} 1"#,
        ]
    );
}

#[test]
fn durations_and_phases_that_ran() {
    let store = Store::new("v");
    store.record(cred("quay.io", "a", None, 1.0));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_duration_seconds"),
        vec![r#"regprobe_duration_seconds{registry="quay.io",secret="a"} 0.25"#]
    );
    assert_eq!(
        samples(&text, "regprobe_phase_duration_seconds"),
        vec![
            r#"regprobe_phase_duration_seconds{registry="quay.io",secret="a",phase="resolve"} 0.01"#,
            r#"regprobe_phase_duration_seconds{registry="quay.io",secret="a",phase="connect"} 0.02"#,
        ]
    );
}

#[test]
fn non_finite_values_are_left_out() {
    let store = Store::new("v");
    let mut r = cred("quay.io", "a", None, 1.0);
    r.duration_seconds = f64::NAN;
    r.add_phase(Phase::Tls, f64::INFINITY);
    store.record(r);
    let text = encode(&store);
    assert!(samples(&text, "regprobe_duration_seconds").is_empty());
    assert!(!text.contains("phase=\"tls\""));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap().to_lowercase();
        assert!(!value.contains("nan") && !value.contains("inf"), "{line}");
    }
}

#[test]
fn set_inputs_removes_a_dropped_secrets_series_and_keeps_others() {
    let store = Store::new("v");
    store.set_inputs(
        &[("a".to_owned(), true), ("b".to_owned(), true)],
        &[
            ProbeKey::credential("quay.io", "a"),
            ProbeKey::credential("quay.io", "b"),
            ProbeKey::image("quay.io/x/y:1", Some("a")),
        ],
    );
    store.record(cred("quay.io", "a", Some(Reason::Unauthorized), 1.0));
    store.record(cred("quay.io", "b", Some(Reason::Unauthorized), 1.0));
    store.record(image("quay.io/x/y:1", Some("a"), Some(Reason::NotFound)));
    let text = encode(&store);
    assert!(text.contains(r#"secret="a""#));

    store.set_inputs(
        &[("b".to_owned(), true)],
        &[ProbeKey::credential("quay.io", "b")],
    );
    let text = encode(&store);
    assert!(!text.contains(r#"secret="a""#), "{text}");
    for name in [
        "regprobe_success",
        "regprobe_failure_reason",
        "regprobe_probes_total",
        "regprobe_probe_failures_total",
        "regprobe_secret_valid",
    ] {
        let found = samples(&text, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert!(found[0].contains(r#"secret="b""#), "{name}: {found:?}");
    }
    assert!(samples(&text, "regprobe_image_success").is_empty());
    assert!(samples(&text, "regprobe_image_failure_reason").is_empty());
}

#[test]
fn secret_that_did_not_parse() {
    let store = Store::new("v");
    store.set_inputs(
        &[("ok".to_owned(), true), ("broken".to_owned(), false)],
        &[ProbeKey::credential("quay.io", "ok")],
    );
    let mut r = ProbeResult::new("", Some("broken".to_owned()));
    r.reason = Some(Reason::SecretInvalid);
    r.class = Some(Class::Config);
    r.timestamp = 5.0;
    store.record(r);
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_secret_valid"),
        vec![
            r#"regprobe_secret_valid{secret="broken"} 0"#,
            r#"regprobe_secret_valid{secret="ok"} 1"#,
        ]
    );
    assert_eq!(
        samples(&text, "regprobe_failure_reason"),
        vec![
            r#"regprobe_failure_reason{registry="",secret="broken",reason="secret_invalid",class="config"} 1"#
        ]
    );
    assert!(samples(&text, "regprobe_tls_cert_expiry_timestamp_seconds").is_empty());
}

#[test]
fn image_probes_go_only_to_image_metrics() {
    let store = Store::new("v");
    store.record(image("quay.io/org/app:1", None, None));
    store.record(image(
        "quay.io/org/app:1",
        Some("pull"),
        Some(Reason::PullDenied),
    ));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_image_success"),
        vec![
            r#"regprobe_image_success{image="quay.io/org/app:1",secret="none"} 1"#,
            r#"regprobe_image_success{image="quay.io/org/app:1",secret="pull"} 0"#,
        ]
    );
    assert_eq!(
        samples(&text, "regprobe_image_failure_reason"),
        vec![
            r#"regprobe_image_failure_reason{image="quay.io/org/app:1",secret="pull",reason="pull_denied",class="permission"} 1"#
        ]
    );
    for name in [
        "regprobe_success",
        "regprobe_failure_reason",
        "regprobe_duration_seconds",
        "regprobe_phase_duration_seconds",
        "regprobe_probes_total",
        "regprobe_probe_failures_total",
    ] {
        assert!(samples(&text, name).is_empty(), "{name} in\n{text}");
    }
}

#[test]
fn tls_expiry_series_one_per_registry() {
    let store = Store::new("v");
    let tls = |leaf, chain| TlsInfo {
        leaf_not_after: leaf,
        chain_earliest_not_after: chain,
        ..TlsInfo::default()
    };
    let mut a = cred("quay.io", "a", None, 1.0);
    a.tls = Some(tls(1_800_000_000, 1_700_000_000));
    let mut b = cred("quay.io", "b", None, 2.0);
    b.tls = Some(tls(1_900_000_000, 1_750_000_000));
    let mut c = cred("ghcr.io", "a", None, 1.0);
    c.tls = Some(tls(1_800_000_000, 0));
    store.record(a);
    store.record(b);
    store.record(c);
    store.record(cred("plain.example:5000", "a", None, 1.0));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_tls_cert_expiry_timestamp_seconds"),
        vec![
            r#"regprobe_tls_cert_expiry_timestamp_seconds{registry="ghcr.io",cert="leaf"} 1800000000"#,
            r#"regprobe_tls_cert_expiry_timestamp_seconds{registry="quay.io",cert="leaf"} 1900000000"#,
            r#"regprobe_tls_cert_expiry_timestamp_seconds{registry="quay.io",cert="chain_earliest"} 1750000000"#,
        ]
    );
}

#[test]
fn label_values_are_escaped() {
    let store = Store::new("v");
    store.record(cred(
        r#"odd"reg\istry"#,
        "line\nbreak",
        Some(Reason::Dns),
        1.0,
    ));
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_success"),
        vec![r#"regprobe_success{registry="odd\"reg\\istry",secret="line\nbreak"} 0"#]
    );
    let parsed = parse_with_reference_parser(&text);
    let success = parsed
        .iter()
        .find(|s| s["name"] == "regprobe_success")
        .expect("regprobe_success sample");
    assert_eq!(success["labels"]["registry"], r#"odd"reg\istry"#);
    assert_eq!(success["labels"]["secret"], "line\nbreak");
}

#[test]
fn every_family_has_help_and_type_and_the_output_ends_with_eof() {
    let store = Store::new("0.1.0");
    let text = encode(&store);
    assert!(text.ends_with("# EOF\n"));
    let families = [
        ("regprobe_success", "gauge"),
        ("regprobe_failure_reason", "gauge"),
        ("regprobe_duration_seconds", "gauge"),
        ("regprobe_phase_duration_seconds", "gauge"),
        ("regprobe_last_probe_timestamp_seconds", "gauge"),
        ("regprobe_last_success_timestamp_seconds", "gauge"),
        ("regprobe_probes", "counter"),
        ("regprobe_probe_failures", "counter"),
        ("regprobe_image_success", "gauge"),
        ("regprobe_image_failure_reason", "gauge"),
        ("regprobe_tls_cert_expiry_timestamp_seconds", "gauge"),
        ("regprobe_insecure_token_realm", "gauge"),
        ("regprobe_dockerhub_ratelimit_limit", "gauge"),
        ("regprobe_dockerhub_ratelimit_remaining", "gauge"),
        ("regprobe_secret_valid", "gauge"),
        ("regprobe_build_info", "gauge"),
        ("regprobe_config_last_reload_successful", "gauge"),
        (
            "regprobe_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("regprobe_credential_provider_success", "gauge"),
        ("regprobe_credential_provider_duration_seconds", "gauge"),
        ("regprobe_credential_expiry_timestamp_seconds", "gauge"),
        ("regprobe_configured_probes", "gauge"),
        ("regprobe_inputs_capped", "gauge"),
    ];
    for (name, kind) in families {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        let help = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# HELP {name} ")))
            .unwrap_or_else(|| panic!("no HELP for {name}"));
        assert!(help.len() > 10, "{name}: {help}");
    }
    assert_eq!(text.matches("# TYPE ").count(), families.len());
    assert_eq!(
        samples(&text, "regprobe_build_info"),
        vec![format!(
            r#"regprobe_build_info{{version="0.1.0",revision="{}"}} 1"#,
            crate::REVISION
        )]
    );
    assert_eq!(
        samples(&text, "regprobe_config_last_reload_successful"),
        vec!["regprobe_config_last_reload_successful 0"]
    );
    assert!(samples(
        &text,
        "regprobe_config_last_reload_success_timestamp_seconds"
    )
    .is_empty());

    store.set_reload_status(true, 1_700_000_000.5);
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_config_last_reload_successful"),
        vec!["regprobe_config_last_reload_successful 1"]
    );
    assert_eq!(
        samples(
            &text,
            "regprobe_config_last_reload_success_timestamp_seconds"
        ),
        vec!["regprobe_config_last_reload_success_timestamp_seconds 1700000000.5"]
    );
}

#[test]
fn store_collector_renders_the_same_as_encode() {
    let store = Arc::new(Store::new("v"));
    store.record(cred("quay.io", "a", Some(Reason::Dns), 1.0));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StoreCollector(store.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    assert_eq!(out, encode(&store));
}

#[test]
fn ordinary_detail_and_hint_do_not_leak_into_metrics() {
    let store = Store::new("v");
    let mut r = cred("quay.io", "a", Some(Reason::Unauthorized), 1.0);
    r.username = Some("robot$reader".to_owned());
    r.detail = "DETAIL-MARKER".to_owned();
    r.endpoint = Some("https://quay.io/v2/".to_owned());
    let hint = crate::report::advice::hint_of(&r);
    store.record(r);
    let text = encode(&store);
    for marker in ["DETAIL-MARKER", hint.as_str(), "robot$reader", "https://"] {
        assert!(!text.contains(marker), "{marker} leaked into\n{text}");
    }
}

/// A store exercising every metric, for the parser test.
fn full_store() -> Store {
    let store = Store::new("0.1.0");
    store.set_reload_status(true, 1_700_000_000.0);
    store.set_inputs(
        &[
            ("a".to_owned(), true),
            ("b".to_owned(), true),
            ("broken".to_owned(), false),
        ],
        &[
            ProbeKey::credential("quay.io/org", "a"),
            ProbeKey::credential("docker.io", "b"),
            ProbeKey::credential(r#"we"ird\host:5000"#, "b"),
            ProbeKey::image("quay.io/org/app:1", None),
            ProbeKey::image("quay.io/org/app:1", Some("a")),
        ],
    );
    let mut a = cred("quay.io/org", "a", None, 1_700_000_001.0);
    a.tls = Some(TlsInfo {
        leaf_not_after: 1_800_000_000,
        chain_earliest_not_after: 1_790_000_000,
        ..TlsInfo::default()
    });
    let mut expired = cred(
        "quay.io/org",
        "a",
        Some(Reason::TlsExpired),
        1_700_000_100.0,
    );
    expired.tls = a.tls.clone();
    store.record(a);
    store.record(expired);
    store.record(cred(
        "docker.io",
        "b",
        Some(Reason::RateLimited),
        1_700_000_002.0,
    ));
    store.record(cred(r#"we"ird\host:5000"#, "b", None, 1_700_000_003.0));
    let mut broken = ProbeResult::new("", Some("broken".to_owned()));
    broken.reason = Some(Reason::SecretInvalid);
    broken.class = Some(Class::Config);
    store.record(broken);
    store.record(image(
        "quay.io/org/app:1",
        None,
        Some(Reason::NoMatchingCredential),
    ));
    store.record(image("quay.io/org/app:1", Some("a"), None));
    store
}

/// Candidate interpreters for the reference parser: `$REGPROBE_PYTHON`, then `python3` on
/// `PATH`, then Debian's `/usr/bin/python3` (where `python3-prometheus-client` installs).
/// Parses `text` with the OpenMetrics reference parser (Python `prometheus_client`, the tests'
/// support library runs it) and returns its samples. Panics, never skips, when it is missing.
fn parse_with_reference_parser(text: &str) -> Vec<serde_json::Value> {
    regprobe_testsupport::openmetrics::parse(text)
}

#[test]
fn insecure_token_realm_gauge() {
    let store = Store::new("t");
    let mut r = ProbeResult::new("registry.example.com", Some("a".to_owned()));
    r.insecure_realm = true;
    store.record(r);
    store.record(ProbeResult::new("ghcr.io", Some("b".to_owned())));
    let text = encode(&store);
    assert!(
        text.contains(
            r#"regprobe_insecure_token_realm{registry="registry.example.com",secret="a"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"regprobe_insecure_token_realm{registry="ghcr.io",secret="b"} 0"#),
        "{text}"
    );
}

#[test]
fn docker_hub_rate_limit_gauges_come_from_the_newest_probe() {
    use crate::probe::RateLimit;
    let store = Store::new("t");
    let mut old = ProbeResult::new("docker.io", Some("a".to_owned()));
    old.image = Some("nginx".into());
    old.timestamp = 1.0;
    old.ratelimit = Some(RateLimit {
        limit: 100,
        remaining: 90,
        window_seconds: Some(21600),
    });
    let mut new = ProbeResult::new("docker.io", Some("b".to_owned()));
    new.image = Some("nginx".into());
    new.timestamp = 2.0;
    new.ratelimit = Some(RateLimit {
        limit: 100,
        remaining: 7,
        window_seconds: Some(21600),
    });
    store.record(old);
    store.record(new);
    let text = encode(&store);
    assert!(
        text.contains("regprobe_dockerhub_ratelimit_limit{registry=\"docker.io\"} 100"),
        "{text}"
    );
    assert!(
        text.contains("regprobe_dockerhub_ratelimit_remaining{registry=\"docker.io\"} 7"),
        "{text}"
    );
}

#[test]
fn output_parses_with_the_openmetrics_reference_parser() {
    let text = encode(&full_store());
    let samples = parse_with_reference_parser(&text);
    let count = |name: &str| samples.iter().filter(|s| s["name"] == name).count();
    assert_eq!(count("regprobe_success"), 4);
    assert_eq!(count("regprobe_failure_reason"), 3);
    assert_eq!(count("regprobe_probes_total"), 4);
    assert_eq!(count("regprobe_probe_failures_total"), 3);
    assert_eq!(count("regprobe_image_success"), 2);
    assert_eq!(count("regprobe_image_failure_reason"), 1);
    assert_eq!(count("regprobe_tls_cert_expiry_timestamp_seconds"), 2);
    assert_eq!(count("regprobe_secret_valid"), 3);
    assert_eq!(count("regprobe_build_info"), 1);
    assert_eq!(count("regprobe_last_success_timestamp_seconds"), 2);
    assert_eq!(
        count("regprobe_config_last_reload_success_timestamp_seconds"),
        1
    );
    let probes = samples
        .iter()
        .find(|s| s["name"] == "regprobe_probes_total")
        .unwrap();
    assert_eq!(probes["family"], "regprobe_probes");
    assert_eq!(probes["type"], "counter");
    assert!(samples
        .iter()
        .all(|s| s["help"].as_str().is_some_and(|h| !h.is_empty())));
    // Every series appears once.
    let mut seen = std::collections::BTreeSet::new();
    for s in &samples {
        assert!(
            seen.insert((s["name"].to_string(), s["labels"].to_string())),
            "duplicate series {s}"
        );
    }
    assert!(samples.iter().any(
        |s| s["name"] == "regprobe_success" && s["labels"]["registry"] == r#"we"ird\host:5000"#
    ));
}

#[test]
fn store_and_snapshot_render_alike_into_a_buffer_sized_once() {
    let store = Store::new("v");
    let mut keep: Vec<ProbeKey> = (0..200)
        .map(|i| ProbeKey::credential("registry.example.com", format!("s{i}")))
        .collect();
    keep.push(ProbeKey::image("quay.io/team/app:1", Some("s1")));
    store.set_inputs(&[("s1".to_owned(), true), ("bad".to_owned(), false)], &keep);
    store.set_reload_status(true, 100.0);
    for i in 0..200 {
        let reason = (i % 3 == 0).then_some(Reason::Unauthorized);
        store.record(cred(
            "registry.example.com",
            &format!("s{i}"),
            reason,
            i as f64,
        ));
    }
    store.record(image(
        "quay.io/team/app:1",
        Some("s1"),
        Some(Reason::NotFound),
    ));
    for i in 0..100 {
        store.record(cred("registry.example.com", &format!("s{i}"), None, 200.0));
    }
    let text = encode(&store);
    assert_eq!(samples(&text, "regprobe_success").len(), 200);
    assert_eq!(text, encode_snapshot(store.snapshot()));
    let estimate = store.with_view(|view| estimated_size(&Facts::of_view(view)));
    assert!(
        estimate >= text.len() && estimate <= 2 * text.len() + 8192,
        "estimate {estimate} for {} bytes",
        text.len()
    );
}

#[test]
fn content_type_is_openmetrics() {
    assert_eq!(
        CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[test]
fn provider_runs_and_credential_expiries() {
    use crate::report::store::ProviderRun;
    let store = Store::new("0.1.0");
    let mut expiries = std::collections::BTreeMap::new();
    expiries.insert(
        ("r.example".to_string(), "provider:ecr".to_string()),
        1_700_000_000,
    );
    store.set_providers(
        &["ecr".to_string(), "acr".to_string()],
        &[(
            "ecr".to_string(),
            ProviderRun {
                success: true,
                duration_seconds: 0.25,
            },
        )],
        expiries,
    );
    store.set_providers(
        &["ecr".to_string(), "acr".to_string()],
        &[(
            "acr".to_string(),
            ProviderRun {
                success: false,
                duration_seconds: 1.5,
            },
        )],
        Default::default(),
    );
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_credential_provider_success"),
        vec![
            r#"regprobe_credential_provider_success{provider="acr"} 0"#,
            r#"regprobe_credential_provider_success{provider="ecr"} 1"#
        ]
    );
    assert_eq!(
        samples(&text, "regprobe_credential_provider_duration_seconds"),
        vec![
            r#"regprobe_credential_provider_duration_seconds{provider="acr"} 1.5"#,
            r#"regprobe_credential_provider_duration_seconds{provider="ecr"} 0.25"#
        ]
    );
    // Expiries are replaced by each reload; a provider dropped from the config loses its series.
    assert!(samples(&text, "regprobe_credential_expiry_timestamp_seconds").is_empty());
    let mut expiries = std::collections::BTreeMap::new();
    expiries.insert(
        ("r.example".to_string(), "provider:ecr".to_string()),
        1_700_000_000,
    );
    store.set_providers(&["ecr".to_string()], &[], expiries);
    let text = encode(&store);
    assert_eq!(
        samples(&text, "regprobe_credential_expiry_timestamp_seconds"),
        vec![
            r#"regprobe_credential_expiry_timestamp_seconds{registry="r.example",secret="provider:ecr"} 1700000000"#
        ]
    );
    assert_eq!(
        samples(&text, "regprobe_credential_provider_success").len(),
        1
    );
}
