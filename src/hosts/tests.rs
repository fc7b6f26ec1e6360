//! Tests mirroring containerd `core/remotes/docker/config/hosts_test.go` (`TestDefaultHosts`,
//! `TestParseHostFile`, `TestLoadCertFiles`, `TestHTTPFallback`), `config_unix_test.go` for the
//! directory names, and the quirks documented in this module.

use super::file::parse_hosts_file;
use super::*;
use std::fs;
use tempfile::TempDir;

/// `hosts_test.go` `TestParseHostFile` (containerd main, without the unmerged `dial_addr` hosts).
const TESTTOML: &str = r#"
server = "https://test-default.registry"
ca = "/etc/path/default"
[header]
  x-custom-1 = "custom header"

[host."https://mirror.registry"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  skip_verify = false
  [host."https://mirror.registry".header]
    x-custom-2 = ["value1", "value2"]

[host."https://mirror-bak.registry/us"]
  capabilities = ["pull"]
  skip_verify = true

[host."http://mirror.registry"]
  capabilities = ["pull"]

[host."https://test-1.registry"]
  capabilities = ["pull", "resolve", "push", "referrers"]
  ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]

[host."https://test-2.registry"]
  client = "/etc/certs/client.pem"

[host."https://test-3.registry"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://no-referrers.registry"]
  capabilities = ["pull", "resolve", "push"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://noncompliantmirror.registry/v2/namespaceprefix"]
  capabilities = ["pull"]
  override_path = true

[host."https://noprefixnoncompliant.registry"]
  override_path = true

[host."https://onlyheader.registry".header]
  x-custom-1 = "justaheader"

[host."https://dial-timeout.registry"]
  dial_timeout = "3s"
"#;

const PULL: Capabilities = Capabilities {
    pull: true,
    resolve: false,
    push: false,
};

fn cfg(scheme: &str, host: &str, path: &str, capabilities: Capabilities) -> HostConfig {
    HostConfig {
        scheme: scheme.into(),
        host: host.into(),
        path: path.into(),
        capabilities,
        ..HostConfig::default()
    }
}

fn paths(list: &[&str]) -> Option<Vec<PathBuf>> {
    Some(list.iter().map(PathBuf::from).collect())
}

fn pair(cert: &str, key: Option<&str>) -> (PathBuf, Option<PathBuf>) {
    (PathBuf::from(cert), key.map(PathBuf::from))
}

fn header(key: &str, values: &[&str]) -> Option<Vec<(String, Vec<String>)>> {
    Some(vec![(
        key.to_string(),
        values.iter().map(|v| v.to_string()).collect(),
    )])
}

#[test]
fn parse_host_file_matches_containerd_vectors() {
    let parsed = parse_hosts_file(Path::new(""), TESTTOML).expect("parses");
    let clients12 = Some(vec![
        pair("/etc/certs/client-1.pem", None),
        pair("/etc/certs/client-2.pem", None),
    ]);
    let expected = vec![
        HostConfig {
            ca_certs: paths(&["/etc/certs/mirror.pem"]),
            skip_verify: Some(false),
            header: header("x-custom-2", &["value1", "value2"]),
            ..cfg("https", "mirror.registry", "/v2", PULL)
        },
        HostConfig {
            skip_verify: Some(true),
            ..cfg("https", "mirror-bak.registry", "/us/v2", PULL)
        },
        cfg("http", "mirror.registry", "/v2", PULL),
        HostConfig {
            ca_certs: paths(&["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]),
            client_pairs: Some(vec![
                pair("/etc/certs/client.cert", Some("/etc/certs/client.key")),
                pair("/etc/certs/client.pem", None),
            ]),
            ..cfg("https", "test-1.registry", "/v2", Capabilities::ALL)
        },
        HostConfig {
            client_pairs: Some(vec![pair("/etc/certs/client.pem", None)]),
            ..cfg("https", "test-2.registry", "/v2", Capabilities::ALL)
        },
        HostConfig {
            client_pairs: clients12.clone(),
            ..cfg("https", "test-3.registry", "/v2", Capabilities::ALL)
        },
        HostConfig {
            client_pairs: clients12,
            ..cfg("https", "no-referrers.registry", "/v2", Capabilities::ALL)
        },
        cfg(
            "https",
            "noncompliantmirror.registry",
            "/v2/namespaceprefix",
            PULL,
        ),
        cfg(
            "https",
            "noprefixnoncompliant.registry",
            "",
            Capabilities::ALL,
        ),
        HostConfig {
            header: header("x-custom-1", &["justaheader"]),
            ..cfg("https", "onlyheader.registry", "/v2", Capabilities::ALL)
        },
        HostConfig {
            dial_timeout: Some(Duration::from_secs(3)),
            ..cfg("https", "dial-timeout.registry", "/v2", Capabilities::ALL)
        },
        HostConfig {
            ca_certs: paths(&["/etc/path/default"]),
            header: header("x-custom-1", &["custom header"]),
            ..cfg("https", "test-default.registry", "/v2", Capabilities::ALL)
        },
    ];
    assert_eq!(parsed.hosts.len(), expected.len());
    for (i, (got, want)) in parsed.hosts.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "host {i}");
    }
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn default_hosts_docker_io() {
    // hosts_test.go TestDefaultHosts.
    let r = hosts_for(&[], "docker.io").unwrap();
    assert_eq!(r.source, None);
    assert_eq!(r.hosts.len(), 1);
    let h = &r.hosts[0];
    assert_eq!(h.base_url(), "https://registry-1.docker.io/v2");
    assert_eq!(h.capabilities, Capabilities::ALL);
    assert!(!h.is_mirror && !h.http_fallback && !h.skip_verify);
}

#[test]
fn default_hosts_other_namespaces() {
    for ns in ["myreg:5000", "example.com", "example.com:5000", "ghcr.io"] {
        let r = hosts_for(&[], ns).unwrap();
        assert_eq!(r.hosts.len(), 1);
        let h = &r.hosts[0];
        assert_eq!(h.base_url(), format!("https://{ns}/v2"), "{ns}");
        assert!(!h.is_mirror && !h.http_fallback && !h.skip_verify, "{ns}");
    }
}

#[test]
fn localhost_rule_matches_test_http_fallback() {
    // hosts_test.go TestHTTPFallback, the cases without DefaultScheme/DefaultTLS (CRI sets
    // neither): (namespace, scheme, uses fallback, skip_verify).
    let cases = [
        ("localhost:8080", Scheme::Https, true, true),
        ("localhost:80", Scheme::Http, false, false),
        ("localhost:443", Scheme::Https, false, true),
        ("localhost", Scheme::Https, false, true),
        ("localhost:5000", Scheme::Https, true, true),
        ("127.0.0.1:5000", Scheme::Https, true, true),
        ("127.0.0.254:5000", Scheme::Https, true, true),
        ("127.0.0.254", Scheme::Https, false, true),
        ("[::1]:5000", Scheme::Https, true, true),
        ("::1", Scheme::Https, false, true),
        ("example.com", Scheme::Https, false, false),
        ("example.com:5000", Scheme::Https, false, false),
    ];
    for (ns, scheme, fallback, skip) in cases {
        let r = hosts_for(&[], ns).unwrap();
        assert_eq!(r.hosts.len(), 1, "{ns}");
        let h = &r.hosts[0];
        assert_eq!(h.scheme, scheme, "{ns}");
        assert_eq!(h.http_fallback, fallback, "{ns}");
        assert_eq!(h.skip_verify, skip, "{ns}");
        assert_eq!(h.host, ns, "{ns}");
        assert_eq!(h.path, "/v2", "{ns}");
        assert!(!h.is_mirror, "{ns}");
    }
}

#[test]
fn is_localhost_like_containerd() {
    for yes in [
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "127.1.2.3:80",
        "::1",
        "[::1]:5000",
        "::ffff:127.0.0.1",
    ] {
        assert!(is_localhost(yes), "{yes}");
    }
    for no in [
        "LOCALHOST",
        "localhost.localdomain",
        "[::1]",
        "10.0.0.1:5000",
        "docker.io",
        "",
    ] {
        assert!(!is_localhost(no), "{no}");
    }
}

#[test]
fn host_directory_names() {
    assert_eq!(host_directory("docker.io"), "docker.io");
    assert_eq!(host_directory("localhost:5555"), "localhost_5555_");
    assert_eq!(host_directory("[::1]:5000"), "[::1]_5000_");
    let root = Path::new("/r");
    assert_eq!(
        host_paths(root, "localhost:5555"),
        vec![
            PathBuf::from("/r/localhost_5555_"),
            PathBuf::from("/r/localhost:5555"),
            PathBuf::from("/r/_default"),
        ]
    );
    assert_eq!(
        host_paths(root, "docker.io"),
        vec![PathBuf::from("/r/docker.io"), PathBuf::from("/r/_default")]
    );
}

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn mirror_toml(mirror: &str) -> String {
    format!("[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n")
}

#[test]
fn port_directory_is_preferred_then_plain_then_default() {
    let root = TempDir::new().unwrap();
    let r = root.path();
    write(
        &r.join("_default/hosts.toml"),
        &mirror_toml("https://default.mirror"),
    );
    write(
        &r.join("myreg:5000/hosts.toml"),
        &mirror_toml("https://colon.mirror"),
    );
    let dirs = vec![r.to_path_buf()];

    let res = hosts_for(&dirs, "myreg:5000").unwrap();
    assert_eq!(res.source, Some(r.join("myreg:5000")));
    assert_eq!(res.hosts[0].host, "colon.mirror");

    write(
        &r.join("myreg_5000_/hosts.toml"),
        &mirror_toml("https://underscore.mirror"),
    );
    let res = hosts_for(&dirs, "myreg:5000").unwrap();
    assert_eq!(res.source, Some(r.join("myreg_5000_")));
    assert_eq!(res.hosts[0].host, "underscore.mirror");
    assert_eq!(res.hosts[1].base_url(), "https://myreg:5000/v2");

    // No directory of its own: `_default`, with the namespace as upstream.
    let res = hosts_for(&dirs, "other.io").unwrap();
    assert_eq!(res.source, Some(r.join("_default")));
    assert_eq!(res.hosts[0].host, "default.mirror");
    assert!(res.hosts[0].is_mirror);
    assert_eq!(res.hosts[1].base_url(), "https://other.io/v2");
    assert!(!res.hosts[1].is_mirror);
}

#[test]
fn first_root_with_a_host_dir_wins() {
    let a = TempDir::new().unwrap();
    let b = TempDir::new().unwrap();
    write(
        &b.path().join("docker.io/hosts.toml"),
        &mirror_toml("https://b.mirror"),
    );
    write(
        &a.path().join("quay.io/hosts.toml"),
        &mirror_toml("https://a.mirror"),
    );
    let dirs = vec![
        PathBuf::new(),
        a.path().join("missing"),
        a.path().to_path_buf(),
        b.path().to_path_buf(),
    ];
    let res = hosts_for(&dirs, "docker.io").unwrap();
    assert_eq!(res.source, Some(b.path().join("docker.io")));
    assert_eq!(res.hosts.len(), 2);
    assert_eq!(res.hosts[0].host, "b.mirror");
    assert!(res.hosts[0].is_mirror);
    assert_eq!(res.hosts[1].base_url(), "https://registry-1.docker.io/v2");
    assert!(!res.hosts[1].is_mirror);

    // A `_default` in the first root beats a host dir in the second (per-root order).
    write(
        &a.path().join("_default/hosts.toml"),
        &mirror_toml("https://a-default.mirror"),
    );
    let res = hosts_for(&dirs, "docker.io").unwrap();
    assert_eq!(res.source, Some(a.path().join("_default")));
}

#[test]
fn no_matching_dir_gives_default_upstream() {
    let root = TempDir::new().unwrap();
    let res = hosts_for(&[root.path().to_path_buf()], "ghcr.io").unwrap();
    assert_eq!(res.source, None);
    assert_eq!(res.hosts.len(), 1);
    assert_eq!(res.hosts[0].base_url(), "https://ghcr.io/v2");
    assert!(res.warnings.is_empty());
}

#[test]
fn cert_layout_like_load_cert_files() {
    // hosts_test.go TestLoadCertFiles: "crt only", "crt and cert pair", "cert pair only", plus a
    // `.cert` without its key and a sub-directory that is skipped.
    let root = TempDir::new().unwrap();
    let dir = root.path().join("testing.io");
    write(&dir.join("ca.crt"), "x");
    write(&dir.join("b-ca.crt"), "x");
    write(&dir.join("client.cert"), "x");
    write(&dir.join("client.key"), "x");
    write(&dir.join("nokey.cert"), "x");
    write(&dir.join("dir.crt/inner"), "x");
    let res = hosts_for(&[root.path().to_path_buf()], "testing.io").unwrap();
    assert_eq!(res.hosts.len(), 1);
    let h = &res.hosts[0];
    assert_eq!(h.base_url(), "https://testing.io/v2");
    assert_eq!(h.ca_files, vec![dir.join("b-ca.crt"), dir.join("ca.crt")]);
    assert_eq!(
        h.client_pairs,
        vec![
            (dir.join("client.cert"), Some(dir.join("client.key"))),
            (dir.join("nokey.cert"), None),
        ]
    );
    // TLS settings on an https host: no fallback.
    assert!(!h.http_fallback && !h.skip_verify);

    let only_pair = root.path().join("pair.io");
    write(&only_pair.join("client.cert"), "x");
    write(&only_pair.join("client.key"), "x");
    let res = hosts_for(&[root.path().to_path_buf()], "pair.io").unwrap();
    assert!(res.hosts[0].ca_files.is_empty());
    assert_eq!(res.hosts[0].client_pairs.len(), 1);
}

#[test]
fn empty_hosts_toml_uses_cert_layout() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("reg.example");
    write(&dir.join("hosts.toml"), "");
    write(&dir.join("ca.crt"), "x");
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    assert_eq!(res.hosts.len(), 1);
    assert_eq!(res.hosts[0].ca_files, vec![dir.join("ca.crt")]);
    assert!(res.warnings.is_empty());
}

#[test]
fn bad_toml_falls_back_to_cert_layout_with_a_line_warning() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("reg.example");
    write(
        &dir.join("hosts.toml"),
        "server = \"https://reg.example\"\n[host.\"https://m\"]\n  capabilities = [\"pull\"\n\
         [header]\n  Authorization = \"Basic c2VjcmV0\"\n",
    );
    write(&dir.join("ca.crt"), "x");
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    assert_eq!(res.hosts.len(), 1, "mirrors are dropped");
    assert_eq!(res.hosts[0].base_url(), "https://reg.example/v2");
    assert_eq!(res.hosts[0].ca_files, vec![dir.join("ca.crt")]);
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    let w = &res.warnings[0];
    assert!(w.contains("hosts.toml: line "), "{w}");
    assert!(w.contains("certs.d"), "{w}");
    assert!(!w.contains("c2VjcmV0"), "no file content: {w}");
}

#[test]
fn semantic_errors_also_fall_back() {
    // parseHostConfig errors make loadHostDir fall back exactly like syntax errors.
    let cases = [
        (
            "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n",
            "line 2",
        ),
        ("[host.\"https://m\"]\ncapabilities = \"pull\"\n", "line 2"),
        ("[host.\"https://m\"]\nskip_verify = \"true\"\n", "line 2"),
        (
            "[host.\"https://m\"]\ndial_timeout = \"1 minute\"\n",
            "line 2",
        ),
        (
            "[host.\"https://m\"]\nclient = [[\"a\", \"b\", \"c\"]]\n",
            "line 2",
        ),
        ("[host.\"https://m\"]\nca = 5\n", "line 2"),
        ("[host.\"https://m:port\"]\n", "line 1"),
        ("[header]\nx = 1\n", "line 2"),
        ("host = \"https://m\"\n", "line 1"),
        // TOML 1.1 only: accepted by the toml crate, rejected by containerd's go-toml v2.
        (
            "[host.\"https://m\"]\nheader = { a = \"b\",\n c = \"d\" }\n",
            "line 2",
        ),
        ("[host.\"https://m\"]\nheader = { a = \"b\", }\n", "line 2"),
    ];
    for (text, line) in cases {
        let root = TempDir::new().unwrap();
        write(&root.path().join("reg.example/hosts.toml"), text);
        let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
        assert_eq!(res.hosts.len(), 1, "{text}");
        assert_eq!(res.hosts[0].base_url(), "https://reg.example/v2", "{text}");
        assert_eq!(res.warnings.len(), 1, "{text}: {:?}", res.warnings);
        assert!(
            res.warnings[0].contains(line),
            "{text}: {}",
            res.warnings[0]
        );
        if text.contains("header = {") {
            assert!(res.warnings[0].contains("TOML 1.1"), "{}", res.warnings[0]);
        }
    }
}

#[test]
fn relative_paths_are_made_absolute_against_the_host_dir() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("reg.example");
    write(
        &dir.join("hosts.toml"),
        "server = \"https://reg.example\"\nca = \"ca.pem\"\n\
         client = [[\"sub/../client.cert\", \"\"], \"/abs/both.pem\"]\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    let h = &res.hosts[0];
    assert_eq!(h.ca_files, vec![dir.join("ca.pem")]);
    // `""` as a key goes through makeAbsPath too and becomes the host directory itself, which
    // containerd then fails to read as a key: kept so the TLS step fails the same way.
    assert_eq!(
        h.client_pairs,
        vec![
            (dir.join("client.cert"), Some(dir.clone())),
            (PathBuf::from("/abs/both.pem"), None),
        ]
    );
}

#[test]
fn upstream_keeps_root_tls_but_not_root_caps_or_path() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("docker.io/hosts.toml"),
        "ca = \"/etc/ca.pem\"\ncapabilities = [\"pull\"]\nskip_verify = false\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "docker.io").unwrap();
    let h = &res.hosts[0];
    assert_eq!(h.base_url(), "https://registry-1.docker.io/v2");
    assert_eq!(h.capabilities, Capabilities::ALL);
    assert_eq!(h.ca_files, vec![PathBuf::from("/etc/ca.pem")]);
    assert!(!h.skip_verify && !h.http_fallback);

    // Localhost forces skip_verify on its upstream whatever the file says.
    write(
        &root.path().join("localhost_5000_/hosts.toml"),
        "skip_verify = false\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "localhost:5000").unwrap();
    let h = &res.hosts[0];
    assert!(h.skip_verify && h.http_fallback);
    assert_eq!(h.scheme, Scheme::Https);
}

#[test]
fn server_replaces_the_upstream() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("docker.io/hosts.toml"),
        "server = \"https://registry-1.docker.io\"\n\n[host.\"mirror.local:5000\"]\n  \
         capabilities = [\"pull\", \"resolve\"]\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "docker.io").unwrap();
    assert_eq!(res.hosts.len(), 2);
    assert_eq!(res.hosts[0].base_url(), "https://mirror.local:5000/v2");
    assert!(res.hosts[0].is_mirror);
    assert_eq!(
        res.hosts[0].capabilities,
        Capabilities {
            pull: true,
            resolve: true,
            push: false
        }
    );
    assert_eq!(res.hosts[1].base_url(), "https://registry-1.docker.io/v2");
    assert!(!res.hosts[1].is_mirror);

    // `server = "http://…"` makes the registry plain HTTP (docs/metrics.md --hosts-dir).
    write(
        &root.path().join("myreg:5000/hosts.toml"),
        "server = \"http://myreg:5000\"\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "myreg:5000").unwrap();
    assert_eq!(res.hosts.len(), 1);
    assert_eq!(res.hosts[0].base_url(), "http://myreg:5000/v2");
    assert!(!res.hosts[0].http_fallback && !res.hosts[0].is_mirror);
}

#[test]
fn http_host_with_tls_settings_tries_https_first() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("reg.example/hosts.toml"),
        "[host.\"http://m1:5000\"]\nca = \"/ca.pem\"\n\
         [host.\"http://m2\"]\nskip_verify = false\n\
         [host.\"http://m3:80\"]\nca = \"/ca.pem\"\n\
         [host.\"http://m4:5000\"]\ndial_timeout = \"2s\"\n\
         [host.\"http://m5\"]\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    let got: Vec<(String, bool)> = res
        .hosts
        .iter()
        .map(|h| (h.base_url(), h.http_fallback))
        .collect();
    assert_eq!(
        got,
        vec![
            ("https://m1:5000/v2".to_string(), true),
            ("https://m2/v2".to_string(), true),
            ("http://m3:80/v2".to_string(), false),
            ("http://m4:5000/v2".to_string(), false),
            ("http://m5/v2".to_string(), false),
            ("https://reg.example/v2".to_string(), false),
        ]
    );
    assert_eq!(res.hosts[3].dial_timeout, Some(Duration::from_secs(2)));
}

#[test]
fn host_order_follows_table_headers_like_get_sorted_hosts() {
    let text =
        "[host.\"https://a\"]\n[host.\"https://b\"]\n[host.\"https://a\".header]\nx = \"1\"\n\
                [host]\n\"https://inline\" = { capabilities = [\"pull\"] }\n";
    let parsed = parse_hosts_file(Path::new("/d"), text).unwrap();
    let names: Vec<&str> = parsed.hosts.iter().map(|h| h.host.as_str()).collect();
    // `a` twice (interleaved headers), `inline` dropped (no header of its own), then the root.
    assert_eq!(names, vec!["a", "b", "a", ""]);
    assert_eq!(parsed.hosts[2].header, header("x", &["1"]));
}

#[test]
fn toml_1_0_multiline_array_inside_inline_table_is_fine() {
    let text = "[host.\"https://m\"]\nheader = { a = [\n  \"1\", # one\n  \"2\",\n] }\n";
    let parsed = parse_hosts_file(Path::new("/d"), text).unwrap();
    assert_eq!(parsed.hosts[0].header, header("a", &["1", "2"]));
}

#[test]
fn keys_match_fields_case_insensitively_and_unknown_keys_warn() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("reg.example/hosts.toml"),
        "[host.\"https://m\"]\nSKIP_VERIFY = true\nskip_verfiy = true\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    assert!(res.hosts[0].skip_verify);
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    assert!(res.warnings[0].contains("skip_verfiy") && res.warnings[0].contains("line 3"));
}

#[test]
fn url_quirks() {
    let text = "server = \"reg.example:5000/base/\"\n[host.\"http-mirror.local\"]\n\
                [host.\"mirror.local:5000\"]\n[host.\"https://slash.example/\"]\n";
    let parsed = parse_hosts_file(Path::new("/d"), text).unwrap();
    let got: Vec<(&str, &str, &str)> = parsed
        .hosts
        .iter()
        .map(|h| (h.scheme.as_str(), h.host.as_str(), h.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            // Starts with "http", so no "https://" is added and it parses as a bare path.
            ("", "", "http-mirror.local/v2"),
            ("https", "mirror.local:5000", "/v2"),
            ("https", "slash.example", "//v2"),
            ("https", "reg.example:5000", "/base/v2"),
        ]
    );
    assert!(parsed.warnings.iter().any(|w| w.contains("//v2")));

    let root = TempDir::new().unwrap();
    write(&root.path().join("reg.example/hosts.toml"), text);
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    // The scheme-less entry is skipped with a warning; the root server is the last host.
    assert_eq!(res.hosts.len(), 3);
    assert_eq!(res.hosts[2].base_url(), "https://reg.example:5000/base/v2");
    assert!(res.hosts[2].is_mirror, "server differs from the namespace");
    assert!(res
        .warnings
        .iter()
        .any(|w| w.contains("unsupported protocol scheme")));
}

#[test]
fn headers_and_dial_timeout_are_exposed() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("reg.example/hosts.toml"),
        "[host.\"https://m\"]\ndial_timeout = \"1m30s\"\n[host.\"https://m\".header]\n\
         b = [\"2\", \"3\"]\na = \"1\"\n[host.\"https://z\"]\ndial_timeout = \"0\"\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    let h = &res.hosts[0];
    assert_eq!(h.dial_timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        h.headers,
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("b".to_string(), "3".to_string()),
        ]
    );
    assert_eq!(res.hosts[1].dial_timeout, Some(Duration::ZERO));
    assert!(res.warnings.iter().any(|w| w.contains("no dial timeout")));
}

/// A header Go's transport refuses (`net/http: invalid header field value`) is warned about,
/// without quoting its value (header values may be API keys).
#[test]
fn a_header_go_refuses_is_warned_about_without_its_value() {
    let root = TempDir::new().unwrap();
    write(
        &root.path().join("reg.example/hosts.toml"),
        "[host.\"https://m\".header]\n\"bad name\" = \"ok\"\nx-key = \"line1\\nS3cret-line2\"\n",
    );
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    let bad: Vec<&String> = res
        .warnings
        .iter()
        .filter(|w| w.contains("Go's HTTP client refuses"))
        .collect();
    assert_eq!(bad.len(), 2, "{:?}", res.warnings);
    assert!(res.warnings.iter().all(|w| !w.contains("S3cret")));
    // The request builder skips them.
    let mut h = http::HeaderMap::new();
    crate::probe::exchange::add_host_headers(&mut h, &res.hosts[0]);
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn cert_files_beside_hosts_toml_are_reported_as_ignored() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("reg.example");
    write(
        &dir.join("hosts.toml"),
        "server = \"https://reg.example\"\nca = \"used.crt\"\n",
    );
    write(&dir.join("used.crt"), "x");
    write(&dir.join("unused.crt"), "x");
    let res = hosts_for(&[root.path().to_path_buf()], "reg.example").unwrap();
    assert_eq!(res.hosts[0].ca_files, vec![dir.join("used.crt")]);
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    assert!(res.warnings[0].contains("unused.crt") && !res.warnings[0].contains("used.crt,"));
}

#[test]
fn errors() {
    for bad in ["", "../etc", "a/b", ".."] {
        assert!(
            matches!(hosts_for(&[], bad), Err(HostsError::InvalidNamespace(_))),
            "{bad:?}"
        );
    }
    // A root that is a file: stat of `<file>/<host>` fails with ENOTDIR, which containerd does not
    // treat as "not found".
    let root = TempDir::new().unwrap();
    let file = root.path().join("not-a-dir");
    write(&file, "x");
    let err = hosts_for(std::slice::from_ref(&file), "docker.io").unwrap_err();
    assert!(matches!(err, HostsError::Stat { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"));

    // A host "directory" that is a file: reading `<file>/hosts.toml` fails.
    write(&root.path().join("docker.io"), "x");
    let err = hosts_for(&[root.path().to_path_buf()], "docker.io").unwrap_err();
    assert!(matches!(err, HostsError::Read { .. }), "{err}");
}
