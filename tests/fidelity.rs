//! Fidelity to what containerd 2.x and kubelet do, in cases a clean registry does not show
//! (issue 12). Each case names the upstream code it follows; where Debian's containerd 1.6
//! (`ctr`, see `support::containerd`) can show the ground truth, it runs too, and where 1.6
//! differs from 2.x the case says so and regprobe follows 2.x.

use regprobe_testsupport as support;

use serde_json::Value;
use std::path::Path;
use support::containerd::{hosts_dir, Containerd, FetchOptions};
use support::gateway::header_gateway;

/// `regprobe check --image IMAGE --output json` with `extra` arguments; returns the exit code,
/// the parsed JSON output and the raw stdout+stderr (to look for leaks).
fn check_image(image: &str, extra: &[&str]) -> (i32, Value, String) {
    check_image_within(image, "5s", extra)
}

/// [`check_image`] with `--timeout timeout`.
fn check_image_within(image: &str, timeout: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut cmd = support::regprobe();
    cmd.args([
        "check",
        "--no-default-paths",
        "--timeout",
        timeout,
        "--output",
        "json",
        "--image",
        image,
    ])
    .args(extra);
    let out = cmd.output().unwrap();
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {raw}"));
    (out.status.code().unwrap_or(-1), v, raw)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const GATEWAY_HEADER: &str = "X-Gateway-Key";
const GATEWAY_KEY: &str = "gw-key-8d2c61b0";

/// hosts.toml `[host."…".header]` is sent on every request to that host, token requests
/// included (containerd 2.x `core/remotes/docker/resolver.go` `dockerBase.request`;
/// `config/hosts.go` `ConfigureHosts` `WithAuthHeader(host.header)`, since 2.1), against a
/// fake that imitates a registry behind a key-checking access proxy. The header value is a
/// secret: it never shows in regprobe's output.
///
/// containerd 1.6 sends the header to the registry but not to the token service (the token
/// requests got the headers in 2.1, commit "Add hosts.toml headers to auth requests"): its
/// fetch is refused at the token step; regprobe follows 2.x.
#[test]
fn hosts_toml_headers_go_on_every_request_token_included() {
    let gw = header_gateway(GATEWAY_HEADER, GATEWAY_KEY);
    let host = gw.host();
    // The `server` with its headers (the root `[header]` table; a `[host."…".header]` table
    // is parsed the same way, `parseHostConfig`).
    let toml =
        format!("server = \"http://{host}\"\n[header]\n  {GATEWAY_HEADER} = \"{GATEWAY_KEY}\"\n");
    let hosts = hosts_dir(&[(&host, &toml)]);
    // The `[host."…".header]` form (containerd 1.6 rejects a file without a `host` table).
    let table = format!(
        "[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  [host.\"http://{host}\".header]\n    {GATEWAY_HEADER} = \"{GATEWAY_KEY}\"\n"
    );
    let table_hosts = hosts_dir(&[(&host, &table)]);
    let image = format!("{host}/team/app:1");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cred.json");
    std::fs::write(
        &secret,
        support::dockerconfigjson(&[(host.as_str(), "alice", "Gw-Passw0rd-77")]),
    )
    .unwrap();

    // Anonymous (token GET) and with a credential (token POST).
    for (dir, extra) in [
        (hosts.path(), vec![]),
        (table_hosts.path(), vec![]),
        (hosts.path(), vec!["--secret", s(&secret)]),
        (table_hosts.path(), vec!["--secret", s(&secret)]),
    ] {
        let mut args = vec!["--hosts-dir", s(dir)];
        args.extend(extra.iter().copied());
        let (code, out, raw) = check_image(&image, &args);
        assert_eq!(code, 0, "{raw}");
        assert_eq!(out["probes"][0]["success"], true, "{raw}");
        assert!(!raw.contains(GATEWAY_KEY), "the header value leaked: {raw}");
    }
    let seen = gw.seen();
    assert!(seen
        .iter()
        .any(|r| r.target.starts_with("/token") && r.method == "POST"));
    assert!(seen
        .iter()
        .any(|r| r.target.starts_with("/token") && r.method == "GET"));
    for r in &seen {
        assert_eq!(
            r.header("x-gateway-key"),
            Some(GATEWAY_KEY.as_bytes()),
            "{r:?} in {seen:#?}"
        );
    }

    // Without the header configured, the proxy refuses regprobe as it refuses containerd.
    let bare = hosts_dir(&[(
        &host,
        &format!("[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
    )]);
    let (code, _, raw) = check_image(&image, &["--hosts-dir", s(bare.path())]);
    assert_ne!(code, 0, "{raw}");

    // containerd 1.6: the header reaches the registry, not the token service.
    let ctrd = Containerd::start();
    let before = gw.seen().len();
    let ctr = ctrd.fetch(&image, FetchOptions::new().hosts_dir(table_hosts.path()));
    let ctr_seen = &gw.seen()[before..];
    let v2 = ctr_seen
        .iter()
        .find(|r| r.target == "/v2/" || r.target.contains("/manifests/"))
        .unwrap_or_else(|| panic!("containerd sent no registry request: {ctr_seen:?}"));
    assert_eq!(
        v2.header("x-gateway-key"),
        Some(GATEWAY_KEY.as_bytes()),
        "{ctr_seen:#?} {ctr:?}"
    );
    let token = ctr_seen
        .iter()
        .find(|r| r.target.starts_with("/token"))
        .unwrap_or_else(|| panic!("containerd asked for no token: {ctr_seen:?}"));
    assert_eq!(token.header("x-gateway-key"), None, "{token:?}");
    assert!(ctr.containerd_error().is_some(), "{ctr:?}");
}

/// After containerd's HTTP fallback (a loopback registry that answers the TLS ClientHello in
/// plain HTTP), a manifest HEAD refused twice with a Bearer `error=` fails on the second refusal:
/// `core/remotes/docker/authorizer.go` `invalidAuthorization` compares the requests actually
/// answered (`sameRequest` on `resp.Request`, which `httpFallback` made `http://`), so one
/// token fetch and two HEADs, not a third HEAD and a second token. Imitates a registry whose
/// token service issues tokens the registry rejects (a key mismatch, Harbor after a key
/// rotation). containerd 1.6 never tries HTTPS on loopback, so it cannot show the fallback.
#[test]
fn loop_detection_after_the_http_fallback_compares_the_requests_sent() {
    use support::fake::{response, Step, API_VERSION};
    let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        let host = String::from_utf8_lossy(seen.header("host").unwrap_or_default()).into_owned();
        if seen.target.starts_with("/token") {
            let body = br#"{"token":"rejected-token-1"}"#;
            return vec![Step::Send(response(
                200,
                b"OK",
                &[("Content-Type", b"application/json")],
                body,
            ))];
        }
        let challenge =
            format!("Bearer realm=\"http://{host}/token\",service=\"s\",error=\"invalid_token\"");
        vec![Step::Send(response(
            401,
            b"Unauthorized",
            &[("WWW-Authenticate", challenge.as_bytes()), API_VERSION],
            b"",
        ))]
    });
    let image = format!("{}/team/app:1", fake.host());
    let (code, out, raw) = check_image(&image, &[]);
    assert_ne!(code, 0, "{raw}");
    let requests = fake.requests();
    let heads = requests.iter().filter(|r| r.starts_with("HEAD ")).count();
    let tokens = requests.iter().filter(|r| r.contains(" /token")).count();
    assert_eq!((heads, tokens), (2, 1), "{requests:?}");
    assert_eq!(out["probes"][0]["reason"], "token_rejected", "{raw}");
}

/// A dropped connection on the last host is retried (50 ms later, within the 5-request budget),
/// as containerd 2.4 `doWithTransportRetries` does for `isTransientTransportErr` (`io.EOF`,
/// timeouts): one EOF does not fail the pull. Imitates a load balancer that closes a connection
/// without answering (an idle-timeout race, a proxy reload). containerd 1.6 has no transport
/// retry: its fetch fails on the EOF; regprobe follows 2.4.
#[test]
fn a_dropped_connection_is_retried_as_containerd_2_4_does() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use support::fake::Step;
    let dropped = Arc::new(AtomicUsize::new(0));
    let drops = dropped.clone();
    let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, move |seen| {
        // The first request of each client run is dropped (regprobe's, then containerd's).
        if seen.header("x-no-drop").is_none() && drops.fetch_add(1, Ordering::SeqCst) % 100 == 0 {
            return vec![];
        }
        vec![Step::Send(manifest_answer(
            seen,
            200,
            b"application/vnd.oci.image.manifest.v1+json",
        ))]
    });
    let image = format!("{}/team/app:1", fake.host());
    let (code, out, raw) = check_image(&image, &[]);
    assert_eq!(code, 0, "{raw}");
    let exchanges = out["probes"][0]["exchanges"].as_array().unwrap();
    // HTTPS first (the loopback rule), the fallback's HEAD that was dropped, the retried one.
    assert_eq!(exchanges.len(), 3, "{raw}");
    assert_eq!(exchanges[1]["status"], Value::Null);
    assert_eq!(exchanges[2]["status"], 200);
    assert!(exchanges[2]["url"].as_str().unwrap().starts_with("http://"));
    let heads = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("HEAD "))
        .count();
    assert_eq!(heads, 2, "{:?}", fake.requests());

    // containerd 1.6: the EOF ends the fetch.
    dropped.store(100, Ordering::SeqCst);
    let ctrd = Containerd::start();
    let ctr = ctrd.fetch(&image, FetchOptions::new().plain_http());
    let err = ctr.containerd_error().unwrap_or_default();
    assert!(!ctr.success && err.contains("EOF"), "{ctr:?}");
}

/// A loopback registry that accepts TCP and never answers the TLS ClientHello: containerd's
/// `TLSHandshakeTimeout` ends the HTTPS attempt, `httpFallback` (`isTLSError`: "TLS handshake
/// timeout") retries over plain HTTP, and the pull works. regprobe gives the TLS step at most
/// half of what is left of `--timeout` (`Session::fallback_tls_budget`), so the fallback
/// happens, and the walk says the handshake timed out (not "refused"). Imitates a server whose
/// HTTPS port is a plain-HTTP service that waits for a request line (a dev registry, an HTTP
/// proxy). containerd 1.6 never tries HTTPS on loopback, so it cannot show this.
#[test]
fn a_tls_handshake_that_never_ends_leaves_time_for_the_http_fallback() {
    use support::fake::{response, Step, API_VERSION};
    let fake = support::FakeServer::raw(std::net::Ipv4Addr::LOCALHOST, |first: &[u8]| {
        if first.first() == Some(&0x16) {
            return vec![Step::Drain];
        }
        let (_, digest) = support::gateway::gateway_manifest();
        vec![Step::Send(response(
            200,
            b"OK",
            &[
                (
                    "Content-Type",
                    b"application/vnd.oci.image.manifest.v1+json",
                ),
                ("Docker-Content-Digest", digest.as_bytes()),
                API_VERSION,
            ],
            b"",
        ))]
    });
    let image = format!("{}/team/app:1", fake.host());
    let (code, out, raw) = check_image_within(&image, "2s", &[]);
    assert_eq!(code, 0, "{raw}");
    let probe = &out["probes"][0];
    assert_eq!(probe["success"], true, "{raw}");
    assert!(
        raw.contains("did not complete the TLS handshake in time"),
        "{raw}"
    );
    assert!(!raw.contains("refused HTTPS"), "{raw}");
}

/// A manifest HEAD answered 403 is followed by a GET of the same URL whose error body gives the
/// registry's own words (containerd 2.x `resolver.go` `Resolve`, `pusher.go`
/// `withGETErrorBody`); the verdict stays `pull_denied`. Imitates a registry with a network
/// rule (Azure Container Registry's firewall: "client with IP … is not allowed access"), which
/// answers HEAD with a bare 403.
#[test]
fn a_manifest_head_403_is_explained_by_the_get_error_body() {
    use support::fake::{response, Step, API_VERSION};
    let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        let body: &[u8] = if seen.method == "HEAD" {
            b""
        } else {
            br#"{"errors":[{"code":"DENIED","message":"client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}"#
        };
        vec![Step::Send(response(
            403,
            b"Forbidden",
            &[("Content-Type", b"application/json"), API_VERSION],
            body,
        ))]
    });
    let image = format!("{}/team/app:1", fake.host());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cred.json");
    std::fs::write(
        &secret,
        support::dockerconfigjson(&[(fake.host().as_str(), "alice", "Acr-Passw0rd-31")]),
    )
    .unwrap();
    let (code, out, raw) = check_image(&image, &["--secret", s(&secret)]);
    assert_ne!(code, 0, "{raw}");
    assert_eq!(out["probes"][0]["reason"], "pull_denied", "{raw}");
    let requests: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.contains("/manifests/"))
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].starts_with("HEAD ") && requests[1].starts_with("GET "));
    assert!(raw.contains("is not allowed access"), "{raw}");
}

/// A mirror that answers the manifest HEAD with an invalid `Docker-Content-Digest` ends the
/// resolve at once: containerd `resolver.go` `Resolve` returns `"…" in header not a valid
/// digest` without trying the upstream (1.6 and 2.x alike), so the pull fails although the
/// upstream works; regprobe says `registry_error`. Imitates a caching proxy that rewrites the
/// header (a misconfigured Nexus/Artifactory remote).
#[test]
fn an_invalid_digest_header_ends_the_resolve() {
    use support::containerd::mirror_hosts_toml;
    use support::fake::Step;
    let serve = |digest: String| {
        support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, move |seen| {
            vec![Step::Send(manifest_answer_with_digest(
                seen,
                200,
                b"application/vnd.oci.image.manifest.v1+json",
                &digest,
            ))]
        })
    };
    let mirror = serve("sha256:NOT-A-DIGEST".to_string());
    let upstream = serve(support::gateway::gateway_manifest().1);
    let host = upstream.host();
    let hosts = hosts_dir(&[(
        &host,
        &mirror_hosts_toml(
            &format!("http://{host}"),
            &[&format!("http://{}", mirror.host())],
        ),
    )]);
    let image = format!("{host}/team/app:1");
    let (code, out, raw) = check_image(&image, &["--hosts-dir", s(hosts.path())]);
    assert_ne!(code, 0, "{raw}");
    assert_eq!(out["probes"][0]["reason"], "registry_error", "{raw}");
    assert_eq!(upstream.request_count(), 0, "the upstream is never asked");

    let ctrd = Containerd::start();
    let ctr = ctrd.fetch(&image, FetchOptions::new().hosts_dir(hosts.path()));
    let err = ctr.containerd_error().unwrap_or_default();
    assert!(err.contains("not a valid digest"), "{ctr:?}");
    assert_eq!(
        upstream.request_count(),
        0,
        "containerd never asks the upstream"
    );
}

/// The login-only probe (no image): a token the registry answers with 401 `error=` fails on
/// that second response, with no fresh token, as containerd's `invalidAuthorization`
/// (`authorizer.go`) does for the same request answered twice (`sameRequest`). Imitates a
/// registry that rejects the tokens of its own token service (a signing-key mismatch).
#[test]
fn the_login_probe_fails_on_the_second_401_with_error() {
    use support::fake::{response, Step, API_VERSION};
    let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        let host = String::from_utf8_lossy(seen.header("host").unwrap_or_default()).into_owned();
        if seen.target.starts_with("/token") {
            let body = br#"{"access_token":"rejected-token-2"}"#;
            return vec![Step::Send(response(
                200,
                b"OK",
                &[("Content-Type", b"application/json")],
                body,
            ))];
        }
        let error = if seen.header("authorization").is_some() {
            ",error=\"invalid_token\""
        } else {
            ""
        };
        let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"s\"{error}");
        vec![Step::Send(response(
            401,
            b"Unauthorized",
            &[("WWW-Authenticate", challenge.as_bytes()), API_VERSION],
            b"",
        ))]
    });
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cred.json");
    std::fs::write(
        &secret,
        support::dockerconfigjson(&[(fake.host().as_str(), "alice", "Login-Passw0rd-5")]),
    )
    .unwrap();
    let out = support::regprobe()
        .args([
            "check",
            "--no-default-paths",
            "--timeout",
            "5s",
            "--output",
            "json",
            "--secret",
            s(&secret),
        ])
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_ne!(out.status.code(), Some(0), "{raw}");
    let tokens = fake
        .requests()
        .iter()
        .filter(|r| r.contains(" /token"))
        .count();
    assert_eq!(tokens, 1, "{:?}", fake.requests());
    assert!(raw.contains("token_rejected"), "{raw}");
}

/// A serve script's answer: HEAD gets `status` with the manifest's headers, GET the same with
/// the body.
fn manifest_answer(seen: &support::fake::Seen, status: u16, content_type: &[u8]) -> Vec<u8> {
    let (_, digest) = support::gateway::gateway_manifest();
    manifest_answer_with_digest(seen, status, content_type, &digest)
}

/// [`manifest_answer`] with another `Docker-Content-Digest` (the body is still the gateway
/// manifest).
fn manifest_answer_with_digest(
    seen: &support::fake::Seen,
    status: u16,
    content_type: &[u8],
    digest: &str,
) -> Vec<u8> {
    let (body, _) = support::gateway::gateway_manifest();
    let headers: Vec<(&str, &[u8])> = vec![
        ("Content-Type", content_type),
        ("Docker-Content-Digest", digest.as_bytes()),
        support::fake::API_VERSION,
    ];
    let full = support::fake::response(status, b"Status", &headers, body.as_bytes());
    if seen.method == "HEAD" {
        full[..full.len() - body.len()].to_vec()
    } else {
        full
    }
}

/// A digest reference answered 404 at `/manifests/<digest>` on every host is tried at
/// `/blobs/<digest>` (containerd `resolver.go` `Resolve`: "falling back to /blobs endpoint …
/// to support legacy registries", only when no error ranked above not-found). Imitates a
/// legacy registry that serves manifests only as blobs.
#[test]
fn a_digest_reference_falls_back_to_blobs() {
    use support::fake::Step;
    let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        if seen.target.contains("/manifests/") {
            let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
            return vec![Step::Send(support::fake::response(
                404,
                b"Not Found",
                &[
                    ("Content-Type", b"application/json"),
                    support::fake::API_VERSION,
                ],
                body,
            ))];
        }
        vec![Step::Send(manifest_answer(
            seen,
            200,
            b"application/octet-stream",
        ))]
    });
    let (_, digest) = support::gateway::gateway_manifest();
    let image = format!("{}/team/app@{digest}", fake.host());
    let (code, out, raw) = check_image(&image, &[]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(out["probes"][0]["success"], true, "{raw}");
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("HEAD ") && r.contains("/blobs/")),
        "{requests:?}"
    );
}

/// A 3xx that Go's client does not follow (no `Location`) from a mirror ends the resolve at
/// once: containerd `Resolve` returns `unexpectedResponseErr` for 300–399 without trying the
/// next host. Imitates a mirror behind a misconfigured proxy answering `300 Multiple Choices`.
#[test]
fn an_unfollowed_redirect_ends_the_resolve() {
    use support::containerd::mirror_hosts_toml;
    use support::fake::Step;
    let mirror = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        vec![Step::Send(manifest_answer(
            seen,
            300,
            b"application/vnd.oci.image.manifest.v1+json",
        ))]
    });
    let upstream = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, |seen| {
        vec![Step::Send(manifest_answer(
            seen,
            200,
            b"application/vnd.oci.image.manifest.v1+json",
        ))]
    });
    let host = upstream.host();
    let hosts = hosts_dir(&[(
        &host,
        &mirror_hosts_toml(
            &format!("http://{host}"),
            &[&format!("http://{}", mirror.host())],
        ),
    )]);
    let image = format!("{host}/team/app:1");
    let (code, out, raw) = check_image(&image, &["--hosts-dir", s(hosts.path())]);
    assert_ne!(code, 0, "{raw}");
    assert_eq!(out["probes"][0]["reason"], "registry_error", "{raw}");
    assert_eq!(upstream.request_count(), 0, "the upstream is never asked");
}

/// A Basic 403 gets one rule at the `/v2/` login step and at the manifest: the registry's error
/// code decides (`UNAUTHORIZED`: the credential, `DENIED`: the access; for the manifest HEAD the
/// code comes from containerd's follow-up GET). Imitates a registry with Basic auth that
/// answers a locked account, or a user without read access, with 403 and a distribution error
/// envelope (Nexus, Artifactory).
#[test]
fn a_basic_403_means_what_the_registry_code_says_at_both_steps() {
    use support::fake::{response, Step, API_VERSION};
    for (code, reason) in [("UNAUTHORIZED", "unauthorized"), ("DENIED", "pull_denied")] {
        let fake = support::FakeServer::serve(std::net::Ipv4Addr::LOCALHOST, move |seen| {
            if seen.header("authorization").is_none() {
                return vec![Step::Send(response(
                    401,
                    b"Unauthorized",
                    &[("WWW-Authenticate", b"Basic realm=\"nexus\""), API_VERSION],
                    b"",
                ))];
            }
            let body = format!(r#"{{"errors":[{{"code":"{code}","message":"refused"}}]}}"#);
            let body: &[u8] = if seen.method == "HEAD" {
                b""
            } else {
                body.as_bytes()
            };
            vec![Step::Send(response(
                403,
                b"Forbidden",
                &[("Content-Type", b"application/json"), API_VERSION],
                body,
            ))]
        });
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("cred.json");
        std::fs::write(
            &secret,
            support::dockerconfigjson(&[(fake.host().as_str(), "alice", "Nexus-Passw0rd-8")]),
        )
        .unwrap();
        // The manifest step.
        let image = format!("{}/team/app:1", fake.host());
        let (_, out, raw) = check_image(&image, &["--secret", s(&secret)]);
        assert_eq!(out["probes"][0]["reason"], reason, "{code}: {raw}");
        // The login step.
        let login = support::regprobe()
            .args([
                "check",
                "--no-default-paths",
                "--timeout",
                "5s",
                "--output",
                "json",
            ])
            .args(["--secret", s(&secret)])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&login.stdout).unwrap();
        assert_eq!(v["probes"][0]["reason"], reason, "{code}: {v}");
    }
}
