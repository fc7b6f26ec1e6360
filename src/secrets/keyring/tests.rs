//! Unit tests of `keyring`.

use super::*;
use crate::reference;
use crate::secrets::key::normalize_key;
use crate::secrets::{KeyError, SecretError, SecretKind};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;

fn entry(raw: &str, user: &str) -> AuthEntry {
    let n = normalize_key(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    AuthEntry {
        raw_key: raw.to_string(),
        key: n.key,
        registry: n.registry,
        wildcard: n.wildcard,
        credential: Credential {
            username: user.to_string(),
            password: SecretString::from(format!("pw-{user}")),
        },
        dropped_token: false,
    }
}

fn secret(id: &str, entries: &[(&str, &str)]) -> Secret {
    Secret {
        id: id.to_string(),
        path: PathBuf::from(format!("/secrets/{id}/.dockerconfigjson")),
        kind: if id == NODE_SECRET_ID {
            SecretKind::NodeConfig
        } else {
            SecretKind::DockerConfigJson
        },
        entries: Ok(entries.iter().map(|(k, u)| entry(k, u)).collect()),
        warnings: Vec::new(),
    }
}

/// (secret, key, username) of each match.
fn users(keyring: &Keyring, image: &str) -> Vec<(String, String, String)> {
    let repo = reference::parse(image)
        .map(|r| r.repo_to_pull())
        .unwrap_or_else(|_| image.to_string());
    keyring
        .lookup(&repo)
        .into_iter()
        .map(|m| (m.secret, m.key, m.credential.username))
        .collect()
}

fn names(keyring: &Keyring, image: &str) -> Vec<String> {
    users(keyring, image)
        .into_iter()
        .map(|(_, _, u)| u)
        .collect()
}

const A: (&str, &str) = ("https://index.docker.io/v1/", "A");
const B: (&str, &str) = ("docker.io", "B");
const C: (&str, &str) = ("registry.example.com", "C");
const DD: (&str, &str) = ("registry.example.com/team", "D");
const E: (&str, &str) = ("*.example.com", "E");
const F: (&str, &str) = ("registry.example.com:5000", "F");
const G: (&str, &str) = ("https://quay.io/v2/myorg", "G");
const H: (&str, &str) = ("http://ghcr.io/", "H");

fn spec_keyring(with_b: bool) -> Keyring {
    let mut entries = vec![A, C, DD, E, F, G, H];
    if with_b {
        entries.insert(1, B);
    }
    Keyring::new(&[secret("regcred", &entries)])
}

#[test]
fn spec_index_order() {
    // docs/containerd-kubelet.md §3.5: index after Add, reverse sorted.
    let k = spec_keyring(true);
    assert_eq!(
        k.pod_secrets().keys(),
        [
            "registry.example.com:5000",
            "registry.example.com/team",
            "registry.example.com",
            "quay.io/myorg",
            "index.docker.io",
            "ghcr.io",
            "docker.io",
            "*.example.com",
        ]
    );
    assert!(k.node().is_empty());
}

#[test]
fn spec_worked_examples() {
    // docs/containerd-kubelet.md §3.5, every row.
    let k = spec_keyring(true);
    let table: &[(&str, &[&str])] = &[
        ("nginx", &["B"]),
        ("registry.example.com/team/app:1", &["D", "C", "E"]),
        ("registry.example.com/teamster/app", &["D", "C", "E"]),
        ("registry.example.com:5000/app", &["F"]),
        ("foo.example.com/x", &["E"]),
        ("a.b.example.com/x", &[]),
        ("quay.io/myorg/app", &["G"]),
        ("quay.io/other/app", &[]),
        ("ghcr.io/o/i", &["H"]),
        ("Registry.Example.com/app", &[]),
    ];
    for (image, want) in table {
        assert_eq!(names(&k, image), *want, "{image}");
    }
    // "nginx, keyring without B": the default-registry fallback.
    let k = spec_keyring(false);
    let matches = k.lookup("docker.io/library/nginx");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].credential.username, "A");
    assert_eq!(matches[0].key, "index.docker.io");
    assert!(matches[0].docker_hub_fallback);
    assert_eq!(matches[0].registry, "docker.io");
    assert_eq!(matches[0].raw_key, "https://index.docker.io/v1/");
    // With B present, A is not a fallback match.
    assert!(!spec_keyring(true).lookup("docker.io/library/nginx")[0].docker_hub_fallback);
}

#[test]
fn pod_secrets_before_node_config() {
    let node = secret(NODE_SECRET_ID, &[("docker.io", "node-user")]);
    let pod = secret("regcred", &[("docker.io", "pod-user")]);
    // The node secret comes first in the input; the pod keyring still goes first.
    let k = Keyring::new(&[node, pod]);
    assert_eq!(
        users(&k, "nginx"),
        [
            ("regcred".into(), "docker.io".into(), "pod-user".into()),
            ("node".into(), "docker.io".into(), "node-user".into()),
        ]
    );
    let m = k.lookup("docker.io/library/nginx");
    assert_eq!(m[0].source, KeyringSource::PodSecrets);
    assert_eq!(m[1].source, KeyringSource::Node);
}

#[test]
fn fallback_is_per_sub_keyring() {
    // The pod keyring matches through B; the node keyring matches nothing, so it falls back
    // on its own index.docker.io entry.
    let pod = secret("regcred", &[B]);
    let node = secret(NODE_SECRET_ID, &[A]);
    let k = Keyring::new(&[pod, node]);
    let m = k.lookup("docker.io/library/nginx");
    assert_eq!(
        m.iter()
            .map(|m| (m.credential.username.as_str(), m.docker_hub_fallback))
            .collect::<Vec<_>>(),
        [("B", false), ("A", true)]
    );
    // Not for other registries.
    assert!(k.lookup("quay.io/x/y").is_empty());
}

#[test]
fn several_secrets_add_to_one_key_in_order() {
    let s1 = secret("first", &[("quay.io", "u1")]);
    let s2 = secret(
        "second",
        &[("https://quay.io/v2/", "u2"), ("quay.io/org", "u3")],
    );
    let s3 = secret("third", &[("http://quay.io", "u4")]);
    let k = Keyring::new(&[s1.clone(), s2.clone(), s3.clone()]);
    assert_eq!(k.pod_secrets().keys(), ["quay.io/org", "quay.io"]);
    assert_eq!(names(&k, "quay.io/org/app"), ["u3", "u1", "u2", "u4"]);
    assert_eq!(names(&k, "quay.io/other/app"), ["u1", "u2", "u4"]);
    // The order of imagePullSecrets decides.
    let k = Keyring::new(&[s3, s2, s1]);
    assert_eq!(names(&k, "quay.io/other/app"), ["u4", "u2", "u1"]);
}

#[test]
fn invalid_secrets_are_left_out() {
    let mut bad = secret("broken", &[]);
    bad.entries = Err(SecretError::Empty);
    let k = Keyring::new(&[bad, secret("good", &[C])]);
    assert_eq!(k.invalid_secrets(), ["broken"]);
    assert_eq!(names(&k, "registry.example.com/a"), ["C"]);
}

#[test]
fn anonymous_entries_are_kept_and_flagged() {
    let k = Keyring::new(&[secret("s", &[("ghcr.io", ""), ("ghcr.io/org", "user")])]);
    let m = k.lookup("ghcr.io/org/app");
    assert_eq!(m.len(), 2);
    assert!(!m[0].anonymous);
    assert!(m[1].anonymous);
    assert_eq!(m[1].credential.password.expose_secret(), "pw-");
    // Debug output never shows the password.
    assert!(!format!("{m:?}").contains("pw-user"));
}

#[test]
fn kubelet_urls_match() {
    // keyring_test.go TestUrlsMatch.
    let table: &[(&str, &str, bool)] = &[
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        (
            "*.kubernetes.io:1111/blah",
            "prefix.kubernetes.io:1111/blah",
            true,
        ),
        (
            "prefix.*.io:1111/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            true,
        ),
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        (
            "*.kubernetes.io:1234/blah",
            "prefix.kubernetes.io:1111/blah",
            false,
        ),
        (
            "prefix.*.io/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            false,
        ),
        // More: IPv6 literals, globs with classes, case, unparsable input.
        ("[::1]:5000", "[::1]:5000/x", true),
        ("[::1]:5000", "[::1]:5001/x", false),
        // Go refuses a `[` after the start of a host (since Go 1.24.8, see `crate::golang`):
        // `url.Parse` fails on such a key, so a glob class never matches.
        ("reg[0-9].example.com", "reg7.example.com/x", false),
        ("reg[0-9].example.com", "regx.example.com/x", false),
        // Go's url.Parse ends the host at '?' (a query): the key is host `reg`.
        ("reg?.example.com", "reg7.example.com/x", false),
        ("registry.example.com", "Registry.example.com/x", false),
        ("registry.example.com", "registry.example.com:443/x", false),
        ("bad[.example.com", "bad[.example.com/x", false),
        ("ghcr.io", "ghcr io/x", false),
        ("ghcr io", "ghcr io/x", false),
    ];
    for (glob, target, want) in table {
        assert_eq!(urls_match_str(glob, target), *want, "{glob} vs {target}");
    }
}

fn one_key(raw: &str) -> Keyring {
    Keyring::new(&[secret("s", &[(raw, "foo")])])
}

#[test]
fn kubelet_keyring_for_glob_and_miss() {
    // keyring_test.go TestDockerKeyringForGlob.
    for (glob, target) in [
        ("https://hello.kubernetes.io", "hello.kubernetes.io"),
        ("https://*.docker.io", "prefix.docker.io"),
        ("https://prefix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.*", "prefix.docker.io"),
        ("https://*.docker.io/path", "prefix.docker.io/path"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
        (
            "https://*.docker.io/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
        (
            "https://prefix.docker.*/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path"),
    ] {
        let m = one_key(glob).lookup(&format!("{target}/foo/bar"));
        assert_eq!(m.len(), 1, "{glob} vs {target}");
        assert_eq!(m[0].credential.username, "foo");
        assert_eq!(m[0].credential.password.expose_secret(), "pw-foo");
    }
    // TestKeyringMiss.
    for (glob, target) in [
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io"),
        ("https://suffix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.c*", "prefix.docker.io"),
        (
            "https://prefix.*.io/path:1111",
            "prefix.docker.io/path/subpath:1111",
        ),
        ("suffix.*.io", "prefix.docker.io"),
    ] {
        assert!(
            one_key(glob)
                .lookup(&format!("{target}/foo/bar"))
                .is_empty(),
            "{glob} vs {target}"
        );
    }
}

#[test]
fn kubelet_docker_hub_vectors() {
    let k = one_key("https://index.docker.io/v1/");
    // TestKeyringMissWithDockerHubCredentials.
    assert!(k.lookup("world.mesos.org/foo/bar").is_empty());
    // TestKeyringHitWithUnqualifiedDockerHub / ...LibraryDockerHub / ...QualifiedDockerHub.
    for image in [
        "google/docker-registry",
        "jenkins",
        "index.docker.io/v1//google/docker-registry",
    ] {
        let m = k.lookup(image);
        assert_eq!(m.len(), 1, "{image}");
        assert_eq!(m[0].credential.username, "foo");
    }
    // The qualified name matches the key itself, not through the fallback.
    assert!(!k.lookup("index.docker.io/v1//google/docker-registry")[0].docker_hub_fallback);
    assert!(k.lookup("jenkins")[0].docker_hub_fallback);
    // Normalised names: every docker.io image, and (kubelet's quirk) `localhost/x` too.
    assert_eq!(k.lookup("docker.io/library/nginx").len(), 1);
    assert_eq!(k.lookup("localhost/x").len(), 1);
    assert!(k.lookup("localhost:5000/x").is_empty());
    // registry-1.docker.io and *.docker.io keys never match docker.io images.
    let k = Keyring::new(&[secret(
        "s",
        &[("registry-1.docker.io", "r1"), ("*.docker.io", "glob")],
    )]);
    assert!(k.lookup("docker.io/library/nginx").is_empty());
}

#[test]
fn kubelet_is_default_registry_match() {
    // keyring_test.go TestIsDefaultRegistryMatch.
    for (image, want) in [
        ("foo/bar", true),
        ("docker.io/foo/bar", true),
        ("index.docker.io/foo/bar", true),
        ("foo", true),
        ("", false),
        ("registry.tld/foo/bar", false),
        ("registry:5000/foo/bar", false),
        ("myhostdocker.io/foo/bar", false),
        ("/foo", false),
    ] {
        assert_eq!(is_default_registry_match(image), want, "{image:?}");
    }
}

#[test]
fn kubelet_lookup_vectors() {
    // keyring_test.go TestDockerKeyringLookup.
    let k = Keyring::new(&[secret(
        "s",
        &[
            ("bar.example.com/pong", "grace"),
            ("bar.example.com", "ada"),
        ],
    )]);
    let table: &[(&str, &[&str])] = &[
        ("bar.example.com", &["ada"]),
        ("bar.example.com/pong", &["grace", "ada"]),
        ("bar.example.com/ping", &["ada"]),
        ("bar.example.com/pongz", &["grace", "ada"]),
        ("bar.example.com/pong/pang", &["grace", "ada"]),
        ("example.com", &[]),
        ("foo.example.com", &[]),
    ];
    for (image, want) in table {
        let got: Vec<String> = k
            .lookup(image)
            .into_iter()
            .map(|m| m.credential.username)
            .collect();
        assert_eq!(got, *want, "{image}");
    }
    // TestIssue3797.
    let k = one_key("https://quay.io/v1/");
    for image in ["quay.io", "quay.io/foo", "quay.io/foo/bar"] {
        assert_eq!(k.lookup(image).len(), 1, "{image}");
    }
}

#[test]
fn filepath_match_vectors() {
    // Go path/filepath match_test.go (Unix).
    let table: &[(&str, &str, Result<bool, BadPattern>)] = &[
        ("abc", "abc", Ok(true)),
        ("*", "abc", Ok(true)),
        ("*c", "abc", Ok(true)),
        ("a*", "a", Ok(true)),
        ("a*", "abc", Ok(true)),
        ("a*", "ab/c", Ok(false)),
        ("a*/b", "abc/b", Ok(true)),
        ("a*/b", "a/c/b", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
        ("ab[c]", "abc", Ok(true)),
        ("ab[b-d]", "abc", Ok(true)),
        ("ab[e-g]", "abc", Ok(false)),
        ("ab[^c]", "abc", Ok(false)),
        ("ab[^b-d]", "abc", Ok(false)),
        ("ab[^e-g]", "abc", Ok(true)),
        ("a\\*b", "a*b", Ok(true)),
        ("a\\*b", "ab", Ok(false)),
        ("a?b", "a☺b", Ok(true)),
        ("a[^a]b", "a☺b", Ok(true)),
        ("a???b", "a☺b", Ok(false)),
        ("a[^a][^a][^a]b", "a☺b", Ok(false)),
        ("[a-ζ]*", "α", Ok(true)),
        ("*[a-ζ]", "A", Ok(false)),
        ("a?b", "a/b", Ok(false)),
        ("a*b", "a/b", Ok(false)),
        ("[\\]a]", "]", Ok(true)),
        ("[\\-]", "-", Ok(true)),
        ("[x\\-]", "x", Ok(true)),
        ("[x\\-]", "-", Ok(true)),
        ("[x\\-]", "z", Ok(false)),
        ("[\\-x]", "x", Ok(true)),
        ("[\\-x]", "-", Ok(true)),
        ("[\\-x]", "a", Ok(false)),
        ("[]a]", "]", Err(BadPattern)),
        ("[-]", "-", Err(BadPattern)),
        ("[x-]", "x", Err(BadPattern)),
        ("[x-]", "-", Err(BadPattern)),
        ("[x-]", "z", Err(BadPattern)),
        ("[-x]", "x", Err(BadPattern)),
        ("[-x]", "-", Err(BadPattern)),
        ("[-x]", "a", Err(BadPattern)),
        ("\\", "a", Err(BadPattern)),
        ("[a-b-c]", "a", Err(BadPattern)),
        ("[", "a", Err(BadPattern)),
        ("[^", "a", Err(BadPattern)),
        ("[^bc", "a", Err(BadPattern)),
        ("a[", "a", Err(BadPattern)),
        ("a[", "ab", Err(BadPattern)),
        ("a[", "x", Err(BadPattern)),
        ("a/b[", "x", Err(BadPattern)),
        ("*x", "xxx", Ok(true)),
        // Registry-label cases.
        ("", "", Ok(true)),
        ("", "a", Ok(false)),
        ("*", "", Ok(true)),
        ("reg*", "Registry", Ok(false)),
        ("[A-Z]eg", "Reg", Ok(true)),
        ("r[!0-9]", "r!", Ok(true)),
        ("x*y*z", "xaybz", Ok(true)),
        ("x*y*z", "xaybzq", Ok(false)),
    ];
    for (pattern, name, want) in table {
        assert_eq!(
            go_filepath_match(pattern, name),
            *want,
            "Match({pattern:?}, {name:?})"
        );
    }
}

fn reasons(k: &Keyring, image: &str) -> Vec<(String, Option<String>)> {
    k.explain(image)
        .into_iter()
        .map(|v| (v.key.clone(), v.reason()))
        .collect()
}

#[test]
fn explain_registry_url_mismatch() {
    let k = one_key("private.registry.com");
    let v = k.explain(
        &reference::parse("registry.company.com/app")
            .unwrap()
            .repo_to_pull(),
    );
    assert_eq!(v.len(), 1);
    assert!(!v[0].matched());
    assert_eq!(v[0].secrets, ["s"]);
    assert_eq!(
        v[0].reason().unwrap(),
        "host differs: key private.registry.com vs image registry.company.com"
    );
    assert!(k.lookup("registry.company.com/app").is_empty());
}

#[test]
fn explain_messages() {
    let k = spec_keyring(true);
    let r = reasons(&k, "registry.example.com:5000/other/app");
    let get = |key: &str| {
        r.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, why)| why.clone())
    };
    assert_eq!(get("registry.example.com:5000"), None);
    assert_eq!(
        get("registry.example.com").unwrap(),
        "port differs: \"\" vs \"5000\" (key vs image; the port must be written the same \
             way in both)"
    );
    assert_eq!(
        get("registry.example.com/team").unwrap(),
        "port differs: \"\" vs \"5000\" (key vs image; the port must be written the same \
             way in both); path /team is not a prefix of /other/app"
    );
    let r = reasons(&k, "registry.example.com/other/app");
    let get = |key: &str| {
        r.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, why)| why.clone())
    };
    assert_eq!(
        get("registry.example.com/team").unwrap(),
        "path /team is not a prefix of /other/app"
    );
    assert_eq!(
        get("quay.io/myorg").unwrap(),
        "host differs: key quay.io vs image registry.example.com; path /myorg is not a \
             prefix of /other/app"
    );
    assert_eq!(
        get("ghcr.io").unwrap(),
        "host differs: key ghcr.io vs image registry.example.com"
    );
    let r = reasons(&k, "a.b.example.com/x");
    assert_eq!(
        r.iter().find(|(k, _)| k == "*.example.com").unwrap().1,
        Some(
            "label count differs: key *.example.com has 3 labels, image a.b.example.com \
                 has 4 (a `*` matches exactly one label)"
                .to_string()
        )
    );
    let r = reasons(&k, "registry.example.org/x");
    assert_eq!(
        r.iter().find(|(k, _)| k == "*.example.com").unwrap().1,
        Some(
            "host differs: key *.example.com vs image registry.example.org (label 3: \
                 pattern \"com\" does not match \"org\")"
                .to_string()
        )
    );
    let r = reasons(&k, "Registry.Example.com/app");
    assert_eq!(
        r.iter()
            .find(|(k, _)| k == "registry.example.com")
            .unwrap()
            .1,
        Some(
            "host differs: key registry.example.com vs image Registry.Example.com \
                 (kubelet compares host names case-sensitively)"
                .to_string()
        )
    );
}

#[test]
fn explain_docker_hub_fallback() {
    let k = spec_keyring(true);
    let v = k.explain("docker.io/library/nginx");
    let a = v.iter().find(|v| v.key == "index.docker.io").unwrap();
    assert_eq!(
        a.reason().unwrap(),
        "used only as the Docker Hub fallback when nothing else matches, and another key of \
             the same keyring matched"
    );
    let b = v.iter().find(|v| v.key == "docker.io").unwrap();
    assert_eq!(b.outcome, KeyOutcome::Matched);
    assert_eq!(
        b.to_string(),
        "pod-secrets key docker.io (secret regcred): matches"
    );
    let k = spec_keyring(false);
    let v = k.explain("docker.io/library/nginx");
    let a = v.iter().find(|v| v.key == "index.docker.io").unwrap();
    assert_eq!(a.outcome, KeyOutcome::DockerHubFallback);
    assert!(a.matched());
    // Explain agrees with lookup on every row.
    for k in [spec_keyring(true), spec_keyring(false)] {
        for image in [
            "docker.io/library/nginx",
            "registry.example.com/team/app",
            "registry.example.com:5000/app",
            "foo.example.com/x",
            "quay.io/other/app",
            "localhost/x",
        ] {
            let explained: Vec<String> = k
                .explain(image)
                .into_iter()
                .filter(KeyVerdict::matched)
                .map(|v| v.key)
                .collect();
            let mut looked_up: Vec<String> = k.lookup(image).into_iter().map(|m| m.key).collect();
            looked_up.dedup();
            assert_eq!(explained, looked_up, "{image}");
        }
    }
}

#[test]
fn explain_bad_keys() {
    // Go refuses `bad[.example.com` (a `[` inside the host), so kubelet skips the entry.
    assert_eq!(
        normalize_key("bad[.example.com"),
        Err(KeyError::BracketInHost)
    );
    // A key Go parses whose labels are not valid patterns: an IPv4-mapped IPv6 literal
    // without a port (`net.SplitHostPort` fails, so the brackets stay in the labels).
    let k = Keyring::new(&[secret("s", &[("[::ffff:10.0.0.1]", "u")])]);
    assert_eq!(
        reasons(&k, "[::ffff:10.0.0.1]/x")[0].1.as_deref(),
        Some(
            "key label \"[::ffff:10\" is not a valid glob pattern, so kubelet never matches \
                 this key"
        )
    );
    // A key kubelet stored but cannot re-parse (a decoded zone): never matches.
    let k = Keyring::new(&[secret("s", &[("https://[fe80::1%25eth0]:5000/", "u")])]);
    assert_eq!(k.pod_secrets().keys(), ["[fe80::1%eth0]:5000"]);
    assert_eq!(
        reasons(&k, "x/y")[0].1.as_deref(),
        Some("kubelet cannot parse the key as a URL, so it never matches any image")
    );
    assert!(k.lookup("[fe80::1%eth0]:5000/x").is_empty());
}

#[test]
fn glob_class_with_port_is_refused() {
    // `net.SplitHostPort` itself (kubelet's `SplitURL`) is tested in `crate::golang`.
    // A glob with a class and a port: Go's url.Parse refuses the '[' inside the host (since
    // Go 1.24.8; before, it parsed, and SplitHostPort then failed on it), so kubelet skips
    // the key.
    assert!(!urls_match_str(
        "reg[0-9].example.com:5000",
        "reg1.example.com:5000/x"
    ));
    assert_eq!(
        normalize_key("reg[0-9].example.com:5000"),
        Err(KeyError::BracketInHost)
    );
}

#[test]
fn hostile_lookups_never_panic() {
    let k = spec_keyring(true);
    let long = "a".repeat(1 << 20);
    for image in [
        "",
        "/",
        "\0",
        "[",
        "%",
        "%zz/x",
        "a:b:c/x",
        "é.example.com/x",
        long.as_str(),
        &format!("{long}.example.com/x"),
        &String::from_utf8_lossy(b"\xff\xfe.example.com/x"),
    ] {
        let _ = k.lookup(image);
        let _ = k.explain(image);
    }
    for (p, n) in [
        ("[\u{10ffff}-", "x"),
        ("[é", "é"),
        ("*?*?*", "éé"),
        ("\\é", "é"),
    ] {
        let _ = go_filepath_match(p, n);
    }
    assert_eq!(go_filepath_match("\\é", "é"), Ok(true));
    assert_eq!(go_filepath_match("?", "é"), Ok(true));
    assert_eq!(go_filepath_match("[é]", "é"), Ok(true));
}
