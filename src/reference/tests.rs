//! Unit tests of `reference`.

use super::*;

const D: &str = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

fn p(s: &str) -> ImageRef {
    parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn spec_table() {
    // docs/containerd-kubelet.md §2: input, repoToPull, containerd ref, namespace, scope.
    let dig = format!("myreg:5000/a/b@{D}");
    let table: &[(&str, &str, String, &str, &str)] = &[
        (
            "nginx",
            "docker.io/library/nginx",
            "docker.io/library/nginx:latest".into(),
            "docker.io",
            "repository:library/nginx:pull",
        ),
        (
            "index.docker.io/foo/bar:1",
            "docker.io/foo/bar",
            "docker.io/foo/bar:1".into(),
            "docker.io",
            "repository:foo/bar:pull",
        ),
        (
            &dig,
            "myreg:5000/a/b",
            dig.clone(),
            "myreg:5000",
            "repository:a/b:pull",
        ),
        (
            "localhost/x",
            "localhost/x",
            "localhost/x:latest".into(),
            "localhost",
            "repository:x:pull",
        ),
    ];
    for (input, repo, reference, ns, scope) in table {
        let r = p(input);
        assert_eq!(r.repo_to_pull(), *repo, "{input}");
        assert_eq!(r.to_string(), *reference, "{input}");
        assert_eq!(r.namespace(), *ns, "{input}");
        assert_eq!(r.scope(), *scope, "{input}");
    }
}

#[test]
fn accessors_and_reference() {
    let r = p("quay.io/org/app:v1.2");
    assert_eq!(
        (r.domain(), r.path(), r.tag(), r.digest()),
        ("quay.io", "org/app", Some("v1.2"), None)
    );
    assert_eq!(r.reference(), "v1.2");
    assert!(!r.is_docker_hub());
    let r = p(&format!("busybox@{D}"));
    assert_eq!(r.reference(), D);
    assert_eq!(r.tag(), None);
    assert!(r.is_docker_hub());
    let r: ImageRef = "redis".parse().unwrap();
    assert_eq!(r.reference(), "latest");
}

#[test]
fn tag_and_digest_keeps_digest() {
    // distribution normalize.go ParseDockerRef doc example.
    let r = p(&format!("docker.io/library/busybox:latest@{D}"));
    assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
    assert_eq!(r.tag(), None);
    assert_eq!(r.digest(), Some(D));
    let r = p(&format!("busybox:latest@{D}"));
    assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
}

#[test]
fn domain_rules() {
    let table: &[(&str, &str, &str)] = &[
        // distribution normalize_test.go TestNormalizedSplitHostname.
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        // TestParseRepositoryInfo.
        ("fooo/bar", "docker.io", "fooo/bar"),
        ("index.docker.io/fooo/bar", "docker.io", "fooo/bar"),
        ("library/ubuntu", "docker.io", "library/ubuntu"),
        ("ubuntu", "docker.io", "library/ubuntu"),
        ("nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu"),
        ("other/library", "docker.io", "other/library"),
        (
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000",
            "private/moonbase",
        ),
        (
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000",
            "privatebase",
        ),
        (
            "example.com/private/moonbase",
            "example.com",
            "private/moonbase",
        ),
        (
            "example.com:8000/privatebasee",
            "example.com:8000",
            "privatebasee",
        ),
        (
            "index.docker.io/library/ubuntu-12.04-base",
            "docker.io",
            "library/ubuntu-12.04-base",
        ),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("library/foo/bar", "docker.io", "library/foo/bar"),
        ("store/foo/bar", "docker.io", "store/foo/bar"),
        ("Foo/bar", "Foo", "bar"),
        ("FOO/bar", "FOO", "bar"),
        // localhost is always a domain; a bare "localhost" is a Docker Hub name.
        ("localhost/x", "localhost", "x"),
        ("localhost:5000/x", "localhost:5000", "x"),
        ("localhost", "docker.io", "library/localhost"),
        ("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker"),
        ("[::1]/a", "[::1]", "a"),
        ("Registry.Example.com/app", "Registry.Example.com", "app"),
    ];
    for (input, domain, path) in table {
        let r = p(input);
        assert_eq!((r.domain(), r.path()), (*domain, *path), "{input}");
    }
    // A bare "localhost:5000" is the Docker Hub image "localhost" with tag "5000".
    let r = p("localhost:5000");
    assert_eq!(r.to_string(), "docker.io/library/localhost:5000");
}

#[test]
fn parse_any_reference_vectors() {
    // distribution normalize_test.go TestParseAnyReference (the named cases).
    let h = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let table: Vec<(String, String)> = vec![
        ("redis".into(), "docker.io/library/redis:latest".into()),
        (
            "redis:latest".into(),
            "docker.io/library/redis:latest".into(),
        ),
        (
            "docker.io/library/redis:latest".into(),
            "docker.io/library/redis:latest".into(),
        ),
        (
            format!("redis@sha256:{h}"),
            format!("docker.io/library/redis@sha256:{h}"),
        ),
        (
            "dmcgowan/myapp".into(),
            "docker.io/dmcgowan/myapp:latest".into(),
        ),
        (
            "docker.io/mcgowan/myapp:latest".into(),
            "docker.io/mcgowan/myapp:latest".into(),
        ),
        (
            format!("dmcgowan/myapp@sha256:{h}"),
            format!("docker.io/dmcgowan/myapp@sha256:{h}"),
        ),
        (
            h[..63].to_string(),
            format!("docker.io/library/{}:latest", &h[..63]),
        ),
        ("dbcc1".into(), "docker.io/library/dbcc1:latest".into()),
    ];
    for (input, want) in table {
        assert_eq!(p(&input).to_string(), want, "{input}");
    }
}

#[test]
fn valid_names() {
    // distribution normalize_test.go TestValidateReferenceName / TestValidateRemoteName.
    for name in [
        "docker/docker",
        "library/debian",
        "debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ] {
        p(name);
    }
}

#[test]
fn invalid_names() {
    let long_ns = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4)
        + "/docker";
    let mut names = vec![
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "docker___x/y",
        "nginx:",
        ":tag",
        "nginx:-x",
        "nginx@",
        "a/b:c/d",
        "reg.io:/x",
        "reg-.io/x",
        "",
    ];
    names.push(&long_ns);
    for name in names {
        assert!(parse(name).is_err(), "{name:?} should be invalid");
    }
}

#[test]
fn precise_errors() {
    assert_eq!(parse(""), Err(ReferenceError::Empty));
    assert_eq!(
        parse("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
        Err(ReferenceError::HexIdentifier)
    );
    assert_eq!(
        parse("docker/Docker"),
        Err(ReferenceError::UppercaseRepository {
            position: 7,
            found: 'D'
        })
    );
    assert_eq!(
        parse("reg.io/Team/app:V1"),
        Err(ReferenceError::UppercaseRepository {
            position: 7,
            found: 'T'
        })
    );
    // The domain may be upper case, the tag too.
    assert_eq!(p("Reg.io/team/app:V1").tag(), Some("V1"));
    // An upper-case first component that is not a valid domain: Go's second lowercase check.
    assert_eq!(
        parse("Foo_Bar/x"),
        Err(ReferenceError::UppercaseRepository {
            position: 0,
            found: 'F'
        })
    );
    assert_eq!(
        parse("docker///docker"),
        Err(ReferenceError::InvalidCharacter {
            position: 7,
            found: '/',
            expected: "a lowercase letter or digit to start a path component",
        })
    );
    assert_eq!(
        parse("nginx app"),
        Err(ReferenceError::InvalidCharacter {
            position: 5,
            found: ' ',
            expected: "a lowercase letter, digit, '.', '_', '-' or '/' in the repository path",
        })
    );
    assert_eq!(
        parse("docker/"),
        Err(ReferenceError::UnexpectedEnd {
            position: 7,
            expected: "a lowercase letter or digit to start a path component",
        })
    );
    assert_eq!(
        parse("reg-.io/x"),
        Err(ReferenceError::InvalidCharacter {
            position: 3,
            found: '-',
            expected: "a letter or digit (a domain label cannot end with '-')",
        })
    );
    assert_eq!(
        parse("myreg:50a0/x"),
        Err(ReferenceError::InvalidCharacter {
            position: 8,
            found: 'a',
            expected: "a letter, digit, '-', '.', ':port' or '/' in the domain",
        })
    );
    assert!(matches!(
        parse("nginx:a+b"),
        Err(ReferenceError::InvalidCharacter {
            position: 7,
            found: '+',
            ..
        })
    ));
    assert_eq!(
        parse(&format!("nginx:{}", "t".repeat(129))),
        Err(ReferenceError::TagTooLong { length: 129 })
    );
    assert!(parse(&format!("nginx:{}", "t".repeat(128))).is_ok());
    let path = format!("a/{}", "b".repeat(253));
    assert!(parse(&path).is_ok());
    assert_eq!(
        parse(&format!("{path}b")),
        Err(ReferenceError::NameTooLong { length: 256 })
    );
    // The domain does not count.
    assert!(parse(&format!("reg.io/{}", "b".repeat(255))).is_ok());
    // "library/" counts on Docker Hub.
    assert_eq!(
        parse(&"b".repeat(250)),
        Err(ReferenceError::NameTooLong { length: 258 })
    );
}

#[test]
fn digest_errors() {
    let hex = &D[7..];
    assert_eq!(
        parse(&format!("nginx@sha256:{}", &hex[..40])),
        Err(ReferenceError::InvalidDigest(DigestError::Length {
            algorithm: "sha256",
            expected: 64,
            found: 40
        }))
    );
    assert_eq!(
        parse("nginx@sha256:abc"),
        Err(ReferenceError::InvalidDigest(DigestError::TooShort {
            found: 3
        }))
    );
    assert_eq!(
        parse(&format!("nginx@sha256:{}", hex.to_uppercase())),
        Err(ReferenceError::InvalidDigest(DigestError::UppercaseHex {
            algorithm: "sha256"
        }))
    );
    assert_eq!(
        parse(&format!("nginx@md5:{hex}")),
        Err(ReferenceError::InvalidDigest(DigestError::Unsupported {
            algorithm: "md5".into()
        }))
    );
    assert!(matches!(
        parse(&format!("nginx@sha256:{hex}x")),
        Err(ReferenceError::InvalidDigest(DigestError::Malformed { position, .. })) if position == 6 + 7 + 64
    ));
    assert!(matches!(
        parse(&format!("nginx@1sha:{hex}")),
        Err(ReferenceError::InvalidDigest(DigestError::Malformed {
            position: 6,
            ..
        }))
    ));
    assert!(matches!(
        parse(&format!("nginx@sha256:{hex}@x")),
        Err(ReferenceError::InvalidDigest(DigestError::Malformed { .. }))
    ));
    // The algorithm is part of the lower-case check (Go cuts the remote name at ':').
    assert!(matches!(
        parse(&format!("nginx@SHA256:{hex}")),
        Err(ReferenceError::UppercaseRepository { position: 6, .. })
    ));
    let r = p(&format!("nginx@sha512:{}", "a".repeat(128)));
    assert_eq!(r.digest().map(str::len), Some(7 + 128));
    assert!(p(&format!("nginx@sha384:{}", "0".repeat(96)))
        .digest()
        .is_some());
    assert!(parse(&format!("nginx@{D}")).is_ok());
    let long_algorithm = parse(&format!("nginx@{}:{hex}", "x".repeat(500)));
    assert!(long_algorithm.unwrap_err().to_string().len() < 200);
}

#[test]
fn underscore_first_component_is_not_a_domain() {
    // distribution finds no domain (the component is a valid path component); kubelet's key
    // and containerd's host are still the first component.
    let r = p("ex_ample.com/app");
    assert_eq!(r.repo_to_pull(), "ex_ample.com/app");
    assert_eq!(r.to_string(), "ex_ample.com/app:latest");
    assert_eq!(r.namespace(), "ex_ample.com");
    assert_eq!(r.scope(), "repository:app:pull");
}

#[test]
fn hostile_input_never_panics() {
    let long = "a".repeat(1 << 20);
    let lossy = String::from_utf8_lossy(b"reg.io/\xff\xfe/app\xc3").into_owned();
    let inputs = [
        "\0".to_string(),
        "nginx\0".to_string(),
        "reg.io/a\0b".to_string(),
        lossy,
        long.clone(),
        format!("reg.io/{long}"),
        format!("nginx:{long}"),
        format!("nginx@sha256:{long}"),
        format!("{long}/x"),
        format!("[{long}]/x"),
        "/".repeat(1 << 20),
        ":".repeat(1 << 20),
        "@".repeat(1000),
        "[".to_string(),
        "[/x".to_string(),
        "reg.io:/x".to_string(),
        "é/x".to_string(),
        "İ/x".to_string(),
        "docker.io/É".to_string(),
        "a/b@".to_string(),
        "/".to_string(),
        "//".to_string(),
        "a//".to_string(),
        ":".to_string(),
        "@".to_string(),
        "\u{feff}nginx".to_string(),
        "ngïnx".to_string(),
    ];
    for input in inputs {
        let result = parse(&input);
        assert!(result.is_err(), "{:?}", &input[..input.len().min(40)]);
        let message = result.unwrap_err().to_string();
        assert!(message.len() < 300, "{message}");
    }
    // Errors point at the right byte of non-ASCII input.
    assert_eq!(
        parse("reg.io/aé"),
        Err(ReferenceError::InvalidCharacter {
            position: 8,
            found: 'é',
            expected: "a lowercase letter, digit, '.', '_', '-' or '/' in the repository path",
        })
    );
    assert_eq!(
        parse("nginx\0"),
        Err(ReferenceError::InvalidCharacter {
            position: 5,
            found: '\0',
            expected: "a lowercase letter, digit, '.', '_', '-' or '/' in the repository path",
        })
    );
}
