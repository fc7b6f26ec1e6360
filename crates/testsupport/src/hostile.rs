//! Hostile and broken peers on 127.0.0.0/8: servers that misbehave at the byte level, which no
//! real registry does on demand (a trickled head, a 100 MB body, a huge challenge, a redirect
//! loop, a TLS handshake that never completes). Tests script other byte-level misbehaviour
//! (invalid UTF-8 and NUL bytes, a connection closed mid-response) on the same engine,
//! [`crate::fake::FakeServer::serve`].
//!
//! The constructors below each say which real-world behaviour they imitate. Where a real
//! component can play a part (the registry that issues the challenge, a working token
//! service), tests use the real `docker-registry` and [`crate::TokenIssuer`] instead.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::fake::{always, response, FakeServer, Step, API_VERSION};

/// Imitates a stuck registry or middlebox that trickles its answer (a saturated reverse proxy
/// relaying a stalled upstream, a "slowloris" in reverse): the response head of distribution's
/// `401` for `/v2/`, one byte every `every`.
pub fn slow_headers(every: Duration) -> FakeServer {
    let head = response(
        401,
        b"Unauthorized",
        &[
            ("Content-Type", b"application/json; charset=utf-8"),
            API_VERSION,
            ("Www-Authenticate", b"Basic realm=\"slow\""),
        ],
        b"",
    );
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |_| {
        vec![Step::Drip {
            bytes: head.clone(),
            every,
        }]
    })
}

/// Imitates a broken token service (a misrouted realm serving a huge file, a runaway
/// generator): every request gets `200 application/json` with a body of `len` bytes,
/// `{"token":"aaaa…`, streamed, never held in memory.
pub fn huge_token(len: u64) -> FakeServer {
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |_| {
        let prefix = b"{\"token\":\"";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        let mut first = head.into_bytes();
        first.extend_from_slice(prefix);
        vec![
            Step::Send(first),
            Step::Stream {
                len: len - prefix.len() as u64,
                fill: b'a',
            },
        ]
    })
}

/// Imitates a registry (or an auth proxy in front of one) that answers `/v2/` with a
/// `WWW-Authenticate` challenge of `size` bytes (a bloated `scope`, a proxy that appends
/// without bound): `Bearer realm="<realm>",service="registry.test",scope="aaaa…"`.
pub fn huge_challenge(realm: &str, size: usize) -> FakeServer {
    let mut challenge =
        format!("Bearer realm=\"{realm}\",service=\"registry.test\",scope=\"").into_bytes();
    let pad = size.saturating_sub(challenge.len() + 1);
    challenge.extend(std::iter::repeat_n(b'a', pad));
    challenge.push(b'"');
    let bytes = response(
        401,
        b"Unauthorized",
        &[API_VERSION, ("WWW-Authenticate", &challenge)],
        b"",
    );
    FakeServer::serve(Ipv4Addr::LOCALHOST, always(bytes))
}

/// Imitates a misconfigured reverse proxy in a redirect loop (an `http`→`https` rule and an
/// upstream that redirects back, a trailing-slash rule fighting the application): every
/// request is answered `status` with `Location` pointing at the same URL.
pub fn redirect_loop(status: u16) -> FakeServer {
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen| {
        vec![Step::Send(response(
            status,
            b"Moved",
            &[("Location", seen.target.as_bytes())],
            b"",
        ))]
    })
}

/// Imitates a token service that moved: every request is answered `status` with
/// `Location: <to>` plus the request's query string (a realm behind a redirecting load
/// balancer, or one that was hijacked). A realm URL query `post=404` makes it answer a POST
/// `404` instead (GCR's token endpoint has no POST), so containerd's GET with Basic follows.
pub fn redirector(status: u16, to: &str) -> FakeServer {
    let to = to.to_string();
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen| {
        if seen.method == "POST" && seen.target.contains("post=404") {
            return vec![Step::Send(response(
                404,
                b"Not Found",
                &[],
                b"404 page not found\n",
            ))];
        }
        let query = seen.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let location = if query.is_empty() {
            to.clone()
        } else {
            format!("{to}?{query}")
        };
        vec![Step::Send(response(
            status,
            b"Redirect",
            &[("Location", location.as_bytes())],
            b"",
        ))]
    })
}

/// "Another host": a server on `127.0.0.2` that records every request raw and answers like
/// Docker Hub's token service to a bad login (`401 {"details":"incorrect username or
/// password"}`). It stands for any host a challenge did not name.
pub fn recorder() -> FakeServer {
    FakeServer::serve(
        Ipv4Addr::new(127, 0, 0, 2),
        always(response(
            401,
            b"Unauthorized",
            &[("Content-Type", b"application/json")],
            b"{\"details\":\"incorrect username or password\"}\n",
        )),
    )
}

/// Imitates a TLS terminator that stalls mid-handshake (an overloaded load balancer or TLS
/// offload whose handshake workers are exhausted): it accepts TCP, reads the ClientHello,
/// writes the first 5 bytes of a ServerHello record (a header announcing 122 bytes) and never
/// sends the rest. Counts connections ([`FakeServer::connections`]); never speaks HTTP.
pub fn tls_stall() -> FakeServer {
    FakeServer::raw(Ipv4Addr::LOCALHOST, |first| {
        if first.first() == Some(&0x16) {
            vec![Step::Send(vec![0x16, 0x03, 0x03, 0x00, 0x7a]), Step::Drain]
        } else {
            vec![Step::Drain]
        }
    })
}

/// The peak resident set (`VmHWM`, KiB) of process `pid`, or `None` once it has exited.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Which challenge [`echoing_registry`] issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoAuth {
    /// `Basic realm="echo"`: the credential goes to `/v2/` as `Authorization: Basic …`.
    Basic,
    /// `Bearer realm="<self>/token"`: the token service (on the same fake) issues
    /// [`ECHO_TOKEN`] and [`ECHO_REFRESH_TOKEN`]; `/v2/` then gets `Authorization: Bearer …`.
    Bearer,
    /// `Bearer realm="<self>/token"` whose token service answers `401` and echoes the request,
    /// POST form (URL-encoded password) included.
    BearerTokenEcho,
}

/// The bearer token [`echoing_registry`] issues.
pub const ECHO_TOKEN: &str = "echo-issued-TOKEN-9f8e7d6c5b4a";
/// The refresh token [`echoing_registry`] issues next to [`ECHO_TOKEN`].
pub const ECHO_REFRESH_TOKEN: &str = "echo-issued-REFRESH-1a2b3c4d5e";

/// Imitates a registry behind a debugging reverse proxy that reflects the request into its
/// error answers (an nginx `return 401 "$http_authorization"` left in place, an httpbin-style
/// echo service mounted on `/v2/`, Harbor or Artifactory error pages that quote the request):
/// every `401` carries the request's headers (decoded `Basic` pair included) and body in the
/// registry error envelope's `message`, in `X-Echo` and `X-Request-Authorization` headers and
/// in the challenge's `error_description`. `/v2/` without credentials gets the challenge of
/// `auth`; the token service is on the same fake at `/token`.
pub fn echoing_registry(auth: EchoAuth) -> FakeServer {
    use base64::Engine;
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let server_port = std::sync::Arc::clone(&port);
    let server = FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen| {
        let port = server_port.get().copied().unwrap_or(0);
        let authz = seen
            .header("authorization")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let decoded = authz
            .as_deref()
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let echo = format!(
            "you sent {} {} authorization={} decoded={} body={}",
            seen.method,
            seen.target,
            authz.clone().unwrap_or_default(),
            decoded,
            String::from_utf8_lossy(&seen.body)
        );
        let echo_401 = |challenge: String| {
            let body = serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": echo}]});
            response(
                401,
                b"Unauthorized",
                &[
                    API_VERSION,
                    ("Content-Type", b"application/json"),
                    ("WWW-Authenticate", challenge.as_bytes()),
                    ("X-Echo", echo.as_bytes()),
                    (
                        "X-Request-Authorization",
                        authz.clone().unwrap_or_default().as_bytes(),
                    ),
                ],
                body.to_string().as_bytes(),
            )
        };
        let realm = format!("http://127.0.0.1:{port}/token");
        let challenge = match auth {
            EchoAuth::Basic => "Basic realm=\"echo\"".to_string(),
            _ => format!("Bearer realm=\"{realm}\",service=\"echo\""),
        };
        let path = seen.target.split('?').next().unwrap_or("");
        let answer = if path == "/token" {
            if auth == EchoAuth::BearerTokenEcho {
                echo_401("Basic realm=\"token\"".to_string())
            } else {
                let body = serde_json::json!({
                    "token": ECHO_TOKEN,
                    "access_token": ECHO_TOKEN,
                    "refresh_token": ECHO_REFRESH_TOKEN,
                    "expires_in": 300
                });
                response(
                    200,
                    b"OK",
                    &[("Content-Type", b"application/json")],
                    body.to_string().as_bytes(),
                )
            }
        } else if authz.is_none() {
            response(
                401,
                b"Unauthorized",
                &[API_VERSION, ("WWW-Authenticate", challenge.as_bytes())],
                b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}",
            )
        } else {
            let description = echo.replace('\\', "\\\\").replace('"', "\\\"");
            let c = format!("{challenge},error_description=\"{description}\"");
            echo_401(c)
        };
        vec![Step::Send(answer)]
    });
    let _ = port.set(server.port());
    server
}
