//! A registry behind an API gateway that authenticates by a request header, for regprobe's
//! fidelity tests (hosts.toml `[host."…".header]`).
//!
//! Imitates a registry published through an access proxy that checks a static key header on
//! **every** request, the token endpoint included (Cloudflare Access service tokens
//! `CF-Access-Client-Id`/`CF-Access-Client-Secret`, API gateways with an `X-Api-Key`): a
//! request without the header gets the proxy's `403`; with it, the registry behind answers as a
//! Bearer-token registry: `/v2/` → `401 Bearer realm="http://HOST/token"`, `/token` (GET or
//! POST) → a token, and a manifest HEAD/GET with that token → an OCI manifest. No real
//! registry can be configured to demand an arbitrary header, so this is a fake.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::fake::{response, FakeServer, Step, API_VERSION};

/// The token the gateway's token endpoint issues.
pub const GATEWAY_TOKEN: &str = "gw-token-5f1e9a";

/// The manifest every manifest request answers, and its digest.
pub fn gateway_manifest() -> (&'static str, String) {
    let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = format!("sha256:{:x}", Sha256::digest(body.as_bytes()));
    (body, digest)
}

/// Starts the gateway on 127.0.0.1. `header` is the name (any case) it requires, `value` its
/// value. Every request is recorded ([`FakeServer::seen`]).
pub fn header_gateway(header: &str, value: &str) -> FakeServer {
    let name = header.to_ascii_lowercase();
    let value = value.as_bytes().to_vec();
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen| {
        let head_only = seen.method == "HEAD";
        let send = |bytes: Vec<u8>, body_len: usize| {
            let bytes = if head_only {
                bytes[..bytes.len() - body_len].to_vec()
            } else {
                bytes
            };
            vec![Step::Send(bytes)]
        };
        if seen.header(&name) != Some(value.as_slice()) {
            let body = b"{\"errors\":[{\"code\":\"DENIED\",\"message\":\"gateway: missing or wrong access key header\"}]}";
            return send(
                response(
                    403,
                    b"Forbidden",
                    &[("Content-Type", b"application/json")],
                    body,
                ),
                body.len(),
            );
        }
        let host =
            String::from_utf8_lossy(seen.header("host").unwrap_or(b"127.0.0.1")).into_owned();
        let bearer = format!("Bearer {GATEWAY_TOKEN}");
        let authorized = seen.header("authorization") == Some(bearer.as_bytes());
        if seen.target.starts_with("/token") {
            let body = format!("{{\"access_token\":\"{GATEWAY_TOKEN}\",\"expires_in\":300}}");
            return send(
                response(
                    200,
                    b"OK",
                    &[("Content-Type", b"application/json")],
                    body.as_bytes(),
                ),
                body.len(),
            );
        }
        if !authorized {
            let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"gateway\"");
            let body = b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}";
            return send(
                response(
                    401,
                    b"Unauthorized",
                    &[
                        ("Content-Type", b"application/json"),
                        ("WWW-Authenticate", challenge.as_bytes()),
                        API_VERSION,
                    ],
                    body,
                ),
                body.len(),
            );
        }
        if seen.target == "/v2/" {
            return send(
                response(
                    200,
                    b"OK",
                    &[("Content-Type", b"application/json"), API_VERSION],
                    b"{}",
                ),
                2,
            );
        }
        if seen.target.contains("/manifests/") {
            let (body, digest) = gateway_manifest();
            return send(
                response(
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
                    body.as_bytes(),
                ),
                body.len(),
            );
        }
        let body = b"{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown\"}]}";
        send(
            response(
                404,
                b"Not Found",
                &[("Content-Type", b"application/json"), API_VERSION],
                body,
            ),
            body.len(),
        )
    })
}
