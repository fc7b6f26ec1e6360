//! Proves the containerd harness (`regprobe_testsupport::containerd`) with real registries,
//! and records containerd 1.6.20's exact error texts: the ground truth the parity suite maps
//! to regprobe's reasons. Every text is printed (`--nocapture`) and asserted on its stable
//! part (ports and digests vary).
//!
//! | case | containerd 1.6.20 (`ctr: ` line) |
//! |---|---|
//! | Basic, wrong password (6 HEADs) | `failed to resolve reference "REF": pulling from host H failed with status code [manifests TAG]: 401 Unauthorized` |
//! | Basic, no credential (1 HEAD) | same text as the wrong password |
//! | token, wrong password (POST 401, GET 401) | `failed to resolve reference "REF": failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized` |
//! | token, anonymous, no grant | `failed to resolve reference "REF": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed` |
//! | missing tag or repository | `failed to resolve reference "REF": REF: not found` |
//! | nothing listening | `failed to resolve reference "REF": failed to do request: Head "URL": dial tcp 127.0.0.1:P: connect: connection refused` |
//! | TLS registry, no CA | `… failed to do request: Head "https://…": x509: certificate signed by unknown authority` |

use regprobe_testsupport as support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::containerd::{
    hosts_dir, mirror_hosts_toml, Containerd, FetchOptions, FetchOutcome, DISABLED_PLUGINS,
};
use support::fakes;
use support::image::{push_image, push_image_with, PushOptions};
use support::{Registry, RegistryOptions, TestPki, TokenIssuer, TokenIssuerOptions, TokenUser};

/// Prints a failed fetch's containerd error and returns it.
fn error_of(what: &str, out: &FetchOutcome) -> String {
    let err = out.expect_error();
    eprintln!("[containerd 1.6] {what}: {err}");
    for (host, e) in out.host_errors() {
        eprintln!("    trying next host: {host}: {e}");
    }
    err
}

fn assert_ok(what: &str, out: &FetchOutcome) {
    assert!(
        out.success,
        "{what}: expected success; ctr stderr:\n{}",
        out.stderr
    );
    assert_eq!(out.exit_code, Some(0), "{what}");
    assert!(out.containerd_error().is_none(), "{what}");
}

fn resolve_prefix(reference: &str) -> String {
    format!("failed to resolve reference \"{reference}\": ")
}

#[test]
fn containerd_starts_privately_and_dies_on_drop() {
    let t = Instant::now();
    let ctd = Containerd::start();
    eprintln!("containerd answered after {:?}", t.elapsed());
    let (pid, dir) = (ctd.pid(), ctd.dir().to_path_buf());
    assert!(ctd.socket().starts_with(&dir));

    let out = ctd.ctr().args(["plugins", "ls"]).output().unwrap();
    let plugins = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{plugins}");
    for needed in [
        "io.containerd.content.v1        content",
        "io.containerd.metadata.v1       bolt",
        "io.containerd.snapshotter.v1    native",
        "io.containerd.grpc.v1           leases",
        "io.containerd.grpc.v1           images",
    ] {
        let line = plugins
            .lines()
            .find(|l| l.starts_with(needed))
            .unwrap_or_else(|| panic!("plugin {needed:?} missing:\n{plugins}"));
        assert!(line.trim_end().ends_with("ok"), "{line}");
    }
    for disabled in DISABLED_PLUGINS {
        let (kind, id) = disabled.rsplit_once('.').unwrap();
        assert!(
            !plugins
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([kind, id])),
            "{disabled} is loaded:\n{plugins}"
        );
    }
    let logs = ctd.logs();
    assert!(
        !logs.contains("level=error") && !logs.contains("level=warning"),
        "containerd logged problems:\n{logs}"
    );

    drop(ctd);
    let gone = Instant::now() + Duration::from_secs(2);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "still alive");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn basic_auth_right_wrong_and_missing_credential() {
    let ctd = Containerd::start();
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", "s3cret")]));
    let img = push_image(&reg, "team/app:1", Some(("alice", "s3cret")));

    let good = ctd.fetch(
        &img.reference,
        FetchOptions::new().user("alice", "s3cret").debug(),
    );
    assert_ok("right Basic credential", &good);
    assert!(
        ctd.content_digests(&good.namespace).contains(&img.digest),
        "manifest not in the content store"
    );
    // 1.6 contacts a loopback host over plain HTTP without --plain-http.
    let reqs = good.requests();
    assert_eq!(
        reqs[..2],
        [
            format!("HEAD {}/v2/team/app/manifests/1", reg.url()),
            format!("HEAD {}/v2/team/app/manifests/1", reg.url())
        ],
        "{reqs:#?}"
    );
    assert_eq!(
        good.responses()[..2],
        [
            format!("401 Unauthorized {}/v2/team/app/manifests/1", reg.url()),
            format!("200 OK {}/v2/team/app/manifests/1", reg.url())
        ]
    );

    // Same namespace, blobs cached: the resolve still goes to the registry and fails.
    let wrong = ctd.fetch(
        &img.reference,
        FetchOptions::new()
            .user("alice", "wrong")
            .debug()
            .namespace(&good.namespace),
    );
    let err = error_of("Basic, wrong password", &wrong);
    assert_eq!(
        err,
        format!(
            "{}pulling from host {} failed with status code [manifests 1]: 401 Unauthorized",
            resolve_prefix(&img.reference),
            reg.host()
        )
    );
    // 1.6 re-sends Basic until `len(responses) > 5`: 6 HEADs, all 401.
    assert_eq!(wrong.requests().len(), 6, "{:#?}", wrong.requests());
    assert!(wrong
        .responses()
        .iter()
        .all(|r| r.starts_with("401 Unauthorized ")));

    let anon = ctd.fetch(&img.reference, FetchOptions::new().debug());
    let err_anon = error_of("Basic, no credential", &anon);
    // 1.6: no "no basic auth credentials" error; the 401 comes back as the response.
    assert_eq!(err_anon, err);
    assert_eq!(anon.requests().len(), 1, "{:#?}", anon.requests());
}

#[test]
fn anonymous_fetch_from_open_registry() {
    let ctd = Containerd::start();
    let reg = Registry::start(RegistryOptions::default());
    let img = push_image(&reg, "lib/hello:2", None);
    let out = ctd.fetch(&img.reference, FetchOptions::new().plain_http());
    assert_ok("anonymous, open registry", &out);
    let stored = ctd.content_digests(&out.namespace);
    assert_eq!(stored.len(), 3, "manifest, config, layer: {stored:?}");
    // A fresh namespace with the isolated sharing policy sees none of it.
    assert!(ctd.content_digests(&ctd.fresh_namespace()).is_empty());
}

#[test]
fn token_auth_right_wrong_and_anonymous() {
    let ctd = Containerd::start();
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new().user(TokenUser::new("bob", "pw").push("team/app")),
    );
    let reg = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    let img = push_image(&reg, "team/app:1", Some(("bob", "pw")));
    let seq = |s: &[(&str, &str)]| -> Vec<(String, String)> {
        s.iter()
            .map(|(m, o)| (m.to_string(), o.to_string()))
            .collect()
    };

    issuer.reset_counts();
    let good = ctd.fetch(&img.reference, FetchOptions::new().user("bob", "pw"));
    assert_ok("token auth, right credential", &good);
    eprintln!("token issuer saw (right): {:?}", issuer.sequence());
    // One POST for the resolve (HEAD) and one more when the fetcher's manifest GET gets its
    // own 401: 1.6 does not reuse the resolve's token there.
    assert_eq!(
        issuer.sequence(),
        seq(&[("POST", "issued"), ("POST", "issued")])
    );

    issuer.reset_counts();
    let wrong = ctd.fetch(&img.reference, FetchOptions::new().user("bob", "nope"));
    let err = error_of("token auth, wrong password", &wrong);
    eprintln!("token issuer saw (wrong): {:?}", issuer.sequence());
    assert_eq!(
        err,
        format!(
            "{}failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized",
            resolve_prefix(&img.reference)
        )
    );
    assert_eq!(
        issuer.sequence(),
        seq(&[("POST", "unauthorized"), ("GET", "unauthorized")])
    );
    assert_eq!(
        wrong.host_errors(),
        vec![(
            reg.host(),
            "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized"
                .to_string()
        )]
    );

    issuer.reset_counts();
    let anon = ctd.fetch(&img.reference, FetchOptions::new());
    let err = error_of("token auth, anonymous without grant", &anon);
    eprintln!("token issuer saw (anonymous): {:?}", issuer.sequence());
    assert_eq!(
        err,
        format!(
            "{}pull access denied, repository does not exist or may require authorization: \
             server message: insufficient_scope: authorization failed",
            resolve_prefix(&img.reference)
        )
    );
    assert_eq!(issuer.sequence(), seq(&[("GET", "issued")]));
}

#[test]
fn missing_tag_and_missing_repository_are_not_found() {
    let ctd = Containerd::start();
    let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", "s3cret")]));
    push_image(&reg, "team/app:1", Some(("alice", "s3cret")));
    for (what, r) in [
        ("missing tag", "team/app:nope"),
        ("missing repository", "team/gone:1"),
    ] {
        let reference = format!("{}/{r}", reg.host());
        let out = ctd.fetch(&reference, FetchOptions::new().user("alice", "s3cret"));
        let err = error_of(what, &out);
        assert_eq!(
            err,
            format!("{}{reference}: not found", resolve_prefix(&reference))
        );
    }
}

#[test]
fn hosts_toml_mirror_down_then_upstream() {
    let ctd = Containerd::start();
    let reg = Registry::start(RegistryOptions::default());
    let img = push_image(&reg, "lib/hello:2", None);
    let down = fakes::closed_port();
    let mirror = format!("http://127.0.0.1:{down}");
    let dir = hosts_dir(&[(&reg.host(), &mirror_hosts_toml(&reg.url(), &[&mirror]))]);

    let out = ctd.fetch(
        &img.reference,
        FetchOptions::new().hosts_dir(dir.path()).debug(),
    );
    assert_ok("mirror down, upstream up", &out);
    let reqs = out.requests();
    assert_eq!(
        reqs[..2],
        [
            format!(
                "HEAD {mirror}/v2/lib/hello/manifests/2?ns=127.0.0.1%3A{}",
                reg.port()
            ),
            format!("HEAD {}/v2/lib/hello/manifests/2", reg.url()),
        ],
        "{reqs:#?}"
    );
    let errs = out.host_errors();
    eprintln!("[containerd 1.6] mirror down: {errs:?}");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, format!("127.0.0.1:{down}"));
    assert_eq!(
        errs[0].1,
        format!(
            "failed to do request: Head \"{mirror}/v2/lib/hello/manifests/2?ns=127.0.0.1%3A{}\": \
             dial tcp 127.0.0.1:{down}: connect: connection refused",
            reg.port()
        )
    );

    // Everything down: the error of the last host is containerd's answer.
    let reference = format!("127.0.0.1:{down}/lib/hello:2");
    let out = ctd.fetch(&reference, FetchOptions::new());
    let err = error_of("nothing listening", &out);
    assert_eq!(
        err,
        format!(
            "{}failed to do request: Head \"http://127.0.0.1:{down}/v2/lib/hello/manifests/2\": \
             dial tcp 127.0.0.1:{down}: connect: connection refused",
            resolve_prefix(&reference)
        )
    );
}

#[test]
fn loopback_tls_needs_hosts_toml_in_1_6() {
    let ctd = Containerd::start();
    let pki = TestPki::new();
    let reg = Registry::start(RegistryOptions::default().with_tls(&pki.leaf(&["127.0.0.1"])));
    let img = push_image_with(
        &reg.host(),
        "team/app:1",
        &PushOptions {
            cert_dir: Some(pki.cert_dir().to_path_buf()),
            ..Default::default()
        },
    );

    // No hosts.toml: plain HTTP to the TLS port (Go's TLS server answers 400).
    let out = ctd.fetch(&img.reference, FetchOptions::new().debug());
    let err = error_of("TLS registry on loopback, no hosts.toml", &out);
    assert!(err.ends_with("failed with status code [manifests 1]: 400 Bad Request"));
    assert_eq!(
        out.requests(),
        vec![format!(
            "HEAD http://{}/v2/team/app/manifests/1",
            reg.host()
        )]
    );

    let https = format!("https://{}", reg.host());
    let no_ca = hosts_dir(&[(&reg.host(), &mirror_hosts_toml(&https, &[]))]);
    let out = ctd.fetch(&img.reference, FetchOptions::new().hosts_dir(no_ca.path()));
    let err = error_of("TLS registry, CA not trusted", &out);
    assert_eq!(
        err,
        format!(
            "{}failed to do request: Head \"{https}/v2/team/app/manifests/1\": \
             x509: certificate signed by unknown authority",
            resolve_prefix(&img.reference)
        )
    );

    let toml = format!(
        "{}  ca = {}\n",
        mirror_hosts_toml(&https, &[]),
        serde_json::to_string(pki.ca_cert().to_str().unwrap()).unwrap()
    );
    let with_ca = hosts_dir(&[(&reg.host(), &toml)]);
    let out = ctd.fetch(
        &img.reference,
        FetchOptions::new().hosts_dir(with_ca.path()),
    );
    assert_ok("TLS registry, hosts.toml with ca", &out);

    // 1.6 rejects a hosts.toml without a [host] table and falls back to the default host.
    let server_only = hosts_dir(&[(&reg.host(), &format!("server = \"{https}\"\n"))]);
    let out = ctd.fetch(
        &img.reference,
        FetchOptions::new().hosts_dir(server_only.path()),
    );
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("msg=\"failed to decode hosts.toml\" error=\"invalid `host` tree\""),
        "{}",
        out.stderr
    );
}

#[test]
fn fetch_is_killed_after_its_timeout() {
    let ctd = Containerd::start();
    let hang = fakes::hang();
    let t = Instant::now();
    let out = ctd.fetch(
        &format!("{}/team/app:1", hang.host()),
        FetchOptions::new().timeout(Duration::from_secs(1)),
    );
    assert!(out.timed_out && !out.success, "{out:?}");
    assert_eq!(out.exit_code, None, "killed by a signal");
    assert!(out.containerd_error().is_none());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(hang.request_count() >= 1, "ctr never connected");
}
