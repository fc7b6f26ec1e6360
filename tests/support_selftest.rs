//! Proves the test infrastructure (the `regprobe-testsupport` crate, `crates/testsupport`) with
//! reference clients (skopeo, raw HTTP, raw DNS), never with regprobe: a real docker-registry
//! with htpasswd and with token auth (the issuer's JWTs verify in distribution), TLS with the
//! test CA, dnsmasq answers, each fake and the fake-server engine, and the kubelet secret
//! layouts.

use regprobe_testsupport as support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use support::dns::{self, NOERROR, NXDOMAIN, REFUSED, SERVFAIL};
use support::fake::{self, response, FakeServer, Seen, Step, API_VERSION};
use support::fakes;
use support::hostile;
use support::http;
use support::image::{self, push_image, push_image_with, PushOptions};
use support::{
    Behaviour, Dns, Registry, RegistryOptions, TestPki, TokenIssuer, TokenIssuerOptions, TokenUser,
};

/// `skopeo inspect` of `docker://REF` with extra args; returns (success, stderr).
fn skopeo_inspect(reference: &str, args: &[&str]) -> (bool, String) {
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = image::skopeo(scratch.path());
    cmd.args(["inspect", "--retry-times", "0"]);
    cmd.args(args);
    cmd.arg(format!("docker://{reference}"));
    let out = image::run(cmd);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn assert_ok((ok, out): (bool, String), what: &str) -> String {
    assert!(ok, "{what}: expected success, skopeo said:\n{out}");
    out
}

fn assert_fails((ok, out): (bool, String), what: &str, needle: &str) {
    eprintln!("{what}: {}", out.trim());
    assert!(!ok, "{what}: expected failure, skopeo said:\n{out}");
    assert!(
        out.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: expected {needle:?} in:\n{out}"
    );
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Claims of a JWT (no verification).
fn jwt_claims(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("JWT has 3 parts");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn jwt_header(token: &str) -> serde_json::Value {
    let part = token.split('.').next().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// The start of a TLS ClientHello: record header, handshake header, version, and an extension
/// of type 0x000a (supported_groups), whose 0x0a byte ends the "request line" for an HTTP
/// server. No CR LF CR LF anywhere.
const CLIENT_HELLO_START: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03, 0x8c, 0x21, 0x00, 0x0a, 0x00,
    0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17,
];

/// Sends [`CLIENT_HELLO_START`] to `addr` and returns what comes back until close.
fn answer_to_client_hello(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(CLIENT_HELLO_START).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

#[test]
fn htpasswd_registry_accepts_good_credentials_only() {
    let reg = Registry::start(RegistryOptions::htpasswd(&[
        ("alice", "s3cret"),
        ("bob", "hunter2"),
    ]));
    assert!(reg.dir().join("config.yml").exists());
    let img = push_image(&reg, "team/app:1", Some(("alice", "s3cret")));
    assert!(img.digest.starts_with("sha256:"), "{img:?}");

    // Raw HTTP: the challenge is Basic, and the API version header is there.
    let r = http::get(reg.addr(), "/v2/", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"regprobe-test\"")
    );
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let wrong = http::basic_auth("bob", "wrong");
    let r = http::get(reg.addr(), "/v2/", &[("Authorization", &wrong)]);
    assert_eq!(
        r.status, 401,
        "distribution answers a wrong Basic password with 401"
    );
    let auth = http::basic_auth("bob", "hunter2");
    assert_eq!(
        http::get(reg.addr(), "/v2/", &[("Authorization", &auth)]).status,
        200
    );

    let out = assert_ok(
        skopeo_inspect(
            &img.reference,
            &["--tls-verify=false", "--creds", "bob:hunter2"],
        ),
        "good credentials",
    );
    assert!(out.contains(&img.digest), "inspect shows the digest: {out}");
    assert_fails(
        skopeo_inspect(
            &img.reference,
            &["--tls-verify=false", "--creds", "bob:wrong"],
        ),
        "bad password",
        "unauthorized",
    );
    assert_fails(
        skopeo_inspect(&img.reference, &["--tls-verify=false", "--no-creds"]),
        "no credentials",
        "unauthorized",
    );

    // Drop kills and reaps the registry and removes its dir.
    let (pid, dir) = (reg.pid(), reg.dir().to_path_buf());
    drop(reg);
    assert!(!process_alive(pid), "registry {pid} still running");
    assert!(!dir.exists(), "{dir:?} left behind");
}

fn token_setup() -> (TokenIssuer, Registry, image::PushedImage) {
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new()
            .user(TokenUser::new("pusher", "pushpw").push("team/app"))
            .user(TokenUser::new("reader", "readpw").pull("team/app"))
            .user(TokenUser::new("outsider", "outpw"))
            .user(
                TokenUser::new("wrongaud", "pw")
                    .pull("*")
                    .behaviour(Behaviour::WrongAudience),
            )
            .user(
                TokenUser::new("expired", "pw")
                    .pull("*")
                    .behaviour(Behaviour::Expired),
            )
            .user(
                TokenUser::new("untrusted", "pw")
                    .pull("*")
                    .behaviour(Behaviour::UntrustedKey),
            ),
    );
    let reg = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
    let img = push_image(&reg, "team/app:1", Some(("pusher", "pushpw")));
    (issuer, reg, img)
}

#[test]
fn token_registry_accepts_issuer_tokens_with_skopeo() {
    let (issuer, _reg, img) = token_setup();
    issuer.reset_counts();
    let out = assert_ok(
        skopeo_inspect(
            &img.reference,
            &["--tls-verify=false", "--creds", "reader:readpw"],
        ),
        "reader with pull grant",
    );
    assert!(out.contains(&img.digest), "{out}");
    // containers/image fetches tokens with GET + Basic (and `account=`).
    assert!(
        issuer.count("GET", "issued") >= 1,
        "{:?}",
        issuer.requests()
    );
    let get = issuer
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.outcome == "issued")
        .unwrap();
    assert_eq!(get.user.as_deref(), Some("reader"));
    assert_eq!(get.service.as_deref(), Some("registry.test"));

    assert_fails(
        skopeo_inspect(
            &img.reference,
            &["--tls-verify=false", "--creds", "reader:wrong"],
        ),
        "bad password",
        "invalid username/password",
    );
    assert!(issuer.count("GET", "unauthorized") >= 1);
    assert_fails(
        skopeo_inspect(
            &img.reference,
            &["--tls-verify=false", "--creds", "outsider:outpw"],
        ),
        "no pull grant",
        "unauthorized",
    );
}

#[test]
fn distribution_verifies_issuer_tokens() {
    let (issuer, reg, img) = token_setup();
    let manifest = format!("/v2/team/app/manifests/{}", img.tag);
    let accept = (
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    );

    // The challenge names the issuer's realm and service.
    let r = http::request(reg.addr(), "HEAD", &manifest, &[accept], b"").unwrap();
    assert_eq!(r.status, 401);
    let challenge = r.header("WWW-Authenticate").unwrap().to_string();
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"{}\",service=\"registry.test\"",
            issuer.realm()
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:team/app:pull\""),
        "{challenge}"
    );

    // A token fetched over HTTP, as a client would.
    let basic = http::basic_auth("reader", "readpw");
    let t = http::get(
        issuer.addr(),
        "/token?service=registry.test&scope=repository:team/app:pull",
        &[("Authorization", &basic)],
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let body = t.json();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], "regprobe-test-issuer");
    assert_eq!(claims["sub"], "reader");
    assert_eq!(claims["aud"], "registry.test");
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type":"repository","name":"team/app","actions":["pull"]}])
    );
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);

    let bearer = |tok: &str| format!("Bearer {tok}");
    let r = http::request(
        reg.addr(),
        "HEAD",
        &manifest,
        &[accept, ("Authorization", &bearer(&token))],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", reg.logs());
    assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
    assert_eq!(
        http::get(reg.addr(), "/v2/", &[("Authorization", &bearer(&token))]).status,
        200
    );

    // A valid token without the pull grant: insufficient_scope. /v2/ needs no grant.
    let no_grant = issuer.mint("outsider", &["repository:team/app:pull"]);
    assert_eq!(jwt_claims(&no_grant)["access"], serde_json::json!([]));
    let r = http::request(
        reg.addr(),
        "HEAD",
        &manifest,
        &[accept, ("Authorization", &bearer(&no_grant))],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\""),
        "{:?}",
        r.headers
    );
    assert_eq!(
        http::get(reg.addr(), "/v2/", &[("Authorization", &bearer(&no_grant))]).status,
        200
    );

    // distribution 2.8: `aud` must be a string (an RFC 7519 array is a malformed token), `exp`
    // is required, `exp`/`nbf` get 60 s of leeway, `iat`/`jti`/`sub` are not checked.
    let now = support::unix_now();
    let claims = |aud: serde_json::Value, exp: u64| serde_json::json!({"iss": "regprobe-test-issuer", "aud": aud, "exp": exp, "access": []});
    for (aud, exp, want) in [
        (serde_json::json!("registry.test"), now - 30, 200),
        (serde_json::json!("registry.test"), now - 90, 401),
        (serde_json::json!(["registry.test"]), now + 300, 401),
    ] {
        let tok = issuer.sign_claims(&claims(aud.clone(), exp));
        let r = http::get(reg.addr(), "/v2/", &[("Authorization", &bearer(&tok))]);
        assert_eq!(
            r.status,
            want,
            "aud {aud} exp now{:+}",
            exp as i64 - now as i64
        );
    }

    // What distribution checks: aud, exp (60 s leeway), the signing chain.
    for user in ["wrongaud", "expired", "untrusted"] {
        let bad = issuer.mint(user, &["repository:team/app:pull"]);
        let r = http::get(reg.addr(), "/v2/", &[("Authorization", &bearer(&bad))]);
        assert_eq!(r.status, 401, "{user}");
        assert!(
            r.header("WWW-Authenticate")
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{user}: {:?}",
            r.headers
        );
    }
}

#[test]
fn token_issuer_endpoints_and_behaviours() {
    let issuer = TokenIssuer::start(
        TokenIssuerOptions::new()
            .user(
                TokenUser::new("alice", "pw")
                    .pull("team/app")
                    .refresh_token("alice-refresh"),
            )
            .user(
                TokenUser::new("gcr", "pw")
                    .pull("*")
                    .behaviour(Behaviour::PostNotFound),
            )
            .user(
                TokenUser::new("quay", "pw")
                    .pull("*")
                    .behaviour(Behaviour::PostMethodNotAllowed),
            )
            .user(TokenUser::new("blocked", "pw").behaviour(Behaviour::Forbidden))
            .user(TokenUser::new("busy", "pw").behaviour(Behaviour::TooManyRequests))
            .user(TokenUser::new("broken", "pw").behaviour(Behaviour::ServerError))
            .user(TokenUser::new("portal", "pw").behaviour(Behaviour::Html))
            .user(TokenUser::new("getonly", "pw").behaviour(Behaviour::TokenFieldOnly))
            .user(TokenUser::new("empty", "pw").behaviour(Behaviour::NoToken))
            .user(TokenUser::new("slow", "pw").behaviour(Behaviour::Hang)),
    );
    let a = issuer.addr();
    let post = |user: &str, pass: &str| {
        http::post_form(
            a,
            "/token",
            &[],
            &[
                ("client_id", "containerd-client"),
                ("grant_type", "password"),
                ("password", pass),
                ("scope", "repository:team/app:pull"),
                ("service", "registry.test"),
                ("username", user),
            ],
        )
    };
    let get = |user: &str, pass: &str| {
        http::get(
            a,
            "/token?scope=repository%3Ateam%2Fapp%3Apull&service=registry.test",
            &[("Authorization", &http::basic_auth(user, pass))],
        )
    };

    // POST password grant (containerd's first try).
    let r = post("alice", "pw");
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert!(j["access_token"].as_str().is_some());
    assert_eq!(j["scope"], "repository:team/app:pull");
    assert_eq!(
        jwt_claims(j["access_token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull"])
    );
    assert_eq!(post("alice", "nope").status, 401);
    assert_eq!(get("alice", "nope").status, 401);
    assert_eq!(post("nobody", "pw").status, 401);

    // Refresh-token grant, and offline access hands the refresh token out.
    let r = http::post_form(
        a,
        "/token",
        &[],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "alice-refresh"),
            ("service", "registry.test"),
            ("scope", "repository:team/app:pull"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        jwt_claims(r.json()["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
    let r = http::post_form(
        a,
        "/token",
        &[],
        &[("grant_type", "refresh_token"), ("refresh_token", "stale")],
    );
    assert_eq!(r.status, 401);
    let r = http::post_form(
        a,
        "/token",
        &[],
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "pw"),
            ("access_type", "offline"),
        ],
    );
    assert_eq!(r.json()["refresh_token"], "alice-refresh");

    // GCR: POST 404 then GET works; Quay: POST 405 then GET works.
    issuer.reset_counts();
    assert_eq!(post("gcr", "pw").status, 404);
    assert_eq!(get("gcr", "pw").status, 200);
    assert_eq!(
        issuer.sequence(),
        vec![
            ("POST".to_string(), "not_found".to_string()),
            ("GET".to_string(), "issued".to_string())
        ]
    );
    assert_eq!(post("quay", "pw").status, 405);
    assert_eq!(get("quay", "pw").status, 200);
    assert_eq!(issuer.count("POST", "method_not_allowed"), 1);

    // Failure behaviours, on GET and POST alike.
    assert_eq!(get("blocked", "pw").status, 403);
    assert_eq!(post("blocked", "pw").status, 403);
    let r = get("busy", "pw");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("30"));
    assert_eq!(get("broken", "pw").status, 500);
    let r = get("portal", "pw");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("<html>"));
    let j = post("getonly", "pw").json();
    assert!(j["token"].is_string() && j["access_token"].is_null(), "{j}");
    let j = get("empty", "pw").json();
    assert!(j["token"].is_null() && j["access_token"].is_null(), "{j}");
    let hung = http::request_with_timeout(
        a,
        "GET",
        "/token?service=registry.test",
        &[("Authorization", &http::basic_auth("slow", "pw"))],
        b"",
        Duration::from_millis(300),
    );
    assert!(hung.is_err(), "a hanging issuer answered: {hung:?}");
    let counts = issuer.counts();
    assert_eq!(counts[&("GET".into(), "forbidden".into())], 1);
    assert_eq!(counts[&("GET".into(), "rate_limited".into())], 1);
    assert_eq!(counts[&("GET".into(), "server_error".into())], 1);
    assert_eq!(counts[&("GET".into(), "html".into())], 1);
    assert_eq!(counts[&("GET".into(), "no_token".into())], 1);
    assert_eq!(counts[&("GET".into(), "hang".into())], 1);

    // Anonymous: a token with an empty access list (Docker Hub style).
    let r = http::get(
        a,
        "/token?service=registry.test&scope=repository:team/app:pull",
        &[],
    );
    assert_eq!(r.status, 200);
    let c = jwt_claims(r.json()["token"].as_str().unwrap());
    assert_eq!(c["sub"], "");
    assert_eq!(c["access"], serde_json::json!([]));

    // Dropping the issuer closes its connections at once, even one with a request hanging in
    // it. (Not "connect is refused": once freed, the kernel may hand the port to a parallel
    // test's listener.)
    let mut hanging = TcpStream::connect(a).unwrap();
    let basic = http::basic_auth("slow", "pw");
    write!(
        hanging,
        "GET /token?service=registry.test HTTP/1.1\r\nHost: x\r\nAuthorization: {basic}\r\n\r\n"
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while issuer.count("GET", "hang") < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        issuer.count("GET", "hang"),
        2,
        "the second hanging request never arrived"
    );
    drop(issuer);
    hanging
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(hanging.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn tls_registry_serves_the_ca_signed_certificate() {
    let pki = TestPki::new();
    let good = pki.leaf(&["registry.test", "127.0.0.1"]);
    let reg = Registry::start(RegistryOptions::default().with_tls(&good));
    assert!(reg.url().starts_with("https://"));
    let img = push_image_with(
        &reg.host(),
        "lib/hello:v1",
        &PushOptions {
            cert_dir: Some(pki.cert_dir().to_path_buf()),
            ..Default::default()
        },
    );
    let cert_dir = pki.cert_dir().to_str().unwrap();
    let out = assert_ok(
        skopeo_inspect(&img.reference, &["--cert-dir", cert_dir, "--no-creds"]),
        "TLS with the test CA",
    );
    assert!(out.contains(&img.digest));
    let empty = tempfile::tempdir().unwrap();
    assert_fails(
        skopeo_inspect(
            &img.reference,
            &["--cert-dir", empty.path().to_str().unwrap(), "--no-creds"],
        ),
        "no CA",
        "certificate signed by unknown authority",
    );

    let cases = [
        (pki.expired_leaf(&["127.0.0.1"]), "expired"),
        (
            pki.wrong_name_leaf(),
            "is valid for 127.0.0.99, not 127.0.0.1",
        ),
        (pki.unknown_ca_leaf(&["127.0.0.1"]), "unknown authority"),
    ];
    for (pair, needle) in cases {
        let bad = Registry::start(RegistryOptions::default().with_tls(&pair));
        assert_fails(
            skopeo_inspect(
                &format!("{}/lib/hello:v1", bad.host()),
                &["--cert-dir", cert_dir, "--no-creds"],
            ),
            &format!("TLS case {needle}"),
            needle,
        );
    }

    // Client certificate required: the handshake fails without one.
    let mtls = Registry::start(
        RegistryOptions::default()
            .with_tls(&good)
            .with_client_ca(pki.ca_cert()),
    );
    assert_fails(
        skopeo_inspect(
            &format!("{}/lib/hello:v1", mtls.host()),
            &["--cert-dir", cert_dir, "--no-creds"],
        ),
        "client certificate required",
        "remote error: tls: bad certificate",
    );
    let client = pki.client_leaf("regprobe-node");
    let with_client = pki.certs_d("mtls", Some(&client));
    // With a client certificate the handshake passes; the empty registry then has no such tag.
    assert_fails(
        skopeo_inspect(
            &format!("{}/lib/hello:v1", mtls.host()),
            &["--cert-dir", with_client.to_str().unwrap(), "--no-creds"],
        ),
        "client certificate presented",
        "manifest unknown",
    );
}

#[test]
fn dnsmasq_answers_test_names_only() {
    let dns = Dns::start(&[("auth.test", Ipv4Addr::new(127, 0, 0, 2))]);
    assert_eq!(dns.server_arg(), format!("127.0.0.1:{}", dns.port()));
    let a = dns.query_a("registry.test");
    assert_eq!((a.rcode, a.addrs), (NOERROR, vec![Ipv4Addr::LOCALHOST]));
    let a = dns.query_a("auth.test");
    assert_eq!(
        (a.rcode, a.addrs),
        (NOERROR, vec![Ipv4Addr::new(127, 0, 0, 2)])
    );
    let a = dns.query_aaaa("registry.test");
    assert_eq!((a.rcode, a.answers), (NOERROR, 0), "AAAA is NODATA");
    assert_eq!(dns.query_a("unknown.test").rcode, NXDOMAIN);
    assert_eq!(dns.query_a("outside.invalid").rcode, REFUSED);

    let servfail = fakes::dns_servfail();
    let a = dns::query(
        servfail.addr(),
        "registry.test",
        dns::QTYPE_A,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(a.rcode, SERVFAIL);
    assert_eq!(servfail.queries(), 1);
    let silent = fakes::silent_udp();
    assert!(dns::query(
        silent.addr(),
        "registry.test",
        dns::QTYPE_A,
        Duration::from_millis(200)
    )
    .is_err());
}

#[test]
fn fakes_behave_as_documented() {
    let html = fakes::html_page();
    let r = http::get(html.addr(), "/v2/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(r.header("Docker-Distribution-API-Version").is_none());
    assert!(r.text().contains("<html>"));
    let r = http::request(html.addr(), "HEAD", "/v2/", &[], b"").unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        html.requests(),
        vec!["GET /v2/ HTTP/1.1", "HEAD /v2/ HTTP/1.1"]
    );

    let lb = fakes::maintenance_503();
    assert_eq!(http::get(lb.addr(), "/v2/", &[]).status, 503);

    let limited = fakes::rate_limited_429(7);
    let r = http::get(limited.addr(), "/v2/", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("7"));
    assert_eq!(r.json()["errors"][0]["code"], "TOOMANYREQUESTS");

    let nego = fakes::unsupported_challenge();
    let r = http::get(nego.addr(), "/v2/", &[]);
    assert_eq!(r.status, 401);
    let challenges: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(challenges, vec!["Negotiate", "NTLM"]);

    // Hang: the connection is accepted, nothing ever comes back.
    let hang = fakes::hang();
    let mut s = TcpStream::connect(hang.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e:?}"
    );
    assert_eq!(hang.request_count(), 1);
    // Dropping a fake closes its listener and its open connections before drop returns.
    drop(hang);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));

    // Closed port: refused.
    let port = fakes::closed_port();
    let e = TcpStream::connect(support::loopback(port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    // HTTPS client, HTTP server: the real registry answers a ClientHello with HTTP 400.
    let plain = fakes::plain_http_registry();
    let text = answer_to_client_hello(plain.addr());
    assert!(text.starts_with("HTTP/1.1 400 Bad Request"), "{text:?}");
}

#[test]
fn fake_engine_records_requests_and_plays_scripts() {
    // HTTP: each request is recorded raw and answered with the script's steps; a TLS
    // ClientHello gets Go's 400 and is logged as not HTTP.
    let echo = FakeServer::serve(Ipv4Addr::LOCALHOST, |seen: &Seen| {
        let mut body = seen.target.clone().into_bytes();
        body.extend_from_slice(seen.header("x-probe").unwrap_or_default());
        vec![Step::Send(response(200, b"OK", &[API_VERSION], &body))]
    });
    let r = http::request(
        echo.addr(),
        "POST",
        "/echo?x=1",
        &[("X-Probe", "yes")],
        b"form=1",
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "/echo?x=1yes"));
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let seen = echo.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].line.as_str()),
        ("POST", "POST /echo?x=1 HTTP/1.1")
    );
    assert_eq!(seen[0].body, b"form=1");
    assert!(seen[0].contains(b"yes"));
    let text = answer_to_client_hello(echo.addr());
    assert!(text.starts_with("HTTP/1.1 400 Bad Request"), "{text:?}");
    assert_eq!(
        echo.requests(),
        vec!["POST /echo?x=1 HTTP/1.1", fake::NOT_HTTP]
    );
    assert_eq!((echo.connections(), echo.not_http()), (2, 1));
    // The script's outcome is recorded once the connection is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while echo.played().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let played = echo.played();
    assert_eq!(played.len(), 1, "{played:?}");
    assert!(!played[0].peer_gone && played[0].written > 0, "{played:?}");

    // Raw: the TLS stall answers a ClientHello with a record header and nothing more.
    let stall = hostile::tls_stall();
    let mut s = TcpStream::connect(support::loopback(stall.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(CLIENT_HELLO_START).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x16, 0x03, 0x03, 0x00, 0x7a]);
    let mut more = [0u8; 1];
    assert!(s.read(&mut more).is_err(), "the handshake never continues");
    assert_eq!(stall.requests(), vec![fake::CONNECTION]);
    assert_eq!((stall.connections(), stall.not_http()), (1, 0));
}

#[test]
fn secret_layouts_look_like_kubelet_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        support::write_dockerconfigjson(dir.path(), "plain", &[("127.0.0.1:5000", "u", "p")]);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(j["auths"]["127.0.0.1:5000"]["auth"], "dTpw");
    assert_eq!(j["auths"]["127.0.0.1:5000"]["username"], "u");

    // Per-secret volume with ..data, then a kubelet-style update.
    let mut vol = support::write_secret_volume(dir.path(), "vol", &[("reg.test", "a", "1")]);
    let root = dir.path().join("vol");
    let first = vol.current().unwrap();
    assert!(first.starts_with("..2"), "{first}");
    assert_eq!(
        std::fs::read_link(root.join(".dockerconfigjson")).unwrap(),
        Path::new("..data/.dockerconfigjson")
    );
    let read = || std::fs::read_to_string(root.join(".dockerconfigjson")).unwrap();
    assert!(read().contains("YTox"), "{}", read());
    vol.publish(&[(
        ".dockerconfigjson",
        support::dockerconfigjson(&[("reg.test", "a", "2")]).as_bytes(),
    )]);
    assert!(read().contains("YToy"));
    assert_ne!(vol.current().unwrap(), first);
    assert!(!root.join(&first).exists(), "old data dir removed");
    assert!(!root.join("..data_tmp").exists());

    // Projected volume: one ..data at the root, one symlink per secret.
    let proj = dir.path().join("projected");
    let vol = support::write_projected_volume(
        &proj,
        &[
            ("one", &[("reg.test", "a", "1")]),
            ("two", &[("other.test", "b", "2")]),
        ],
    );
    assert!(vol.current().is_some());
    assert_eq!(
        std::fs::read_link(proj.join("one")).unwrap(),
        Path::new("..data/one")
    );
    assert!(std::fs::read_to_string(proj.join("two/.dockerconfigjson"))
        .unwrap()
        .contains("other.test"));
}

#[test]
fn pki_files_and_time_helpers() {
    let pki = TestPki::new();
    assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pki.cert_dir().join("ca.crt").exists());
    let leaf = pki.leaf(&["registry.test"]);
    assert!(leaf.cert.exists() && leaf.key.exists());
    assert!(leaf.key_pem.contains("PRIVATE KEY"));
    assert_eq!(support::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(support::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    assert!(support::regprobe_bin().ends_with("regprobe"));
}
