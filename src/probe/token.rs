//! Bearer token fetch from the challenge's realm, exactly as containerd does it.
//!
//! Source: containerd `core/remotes/docker/auth/fetch.go` (`FetchTokenWithOAuth`, `FetchToken`)
//! and `core/remotes/docker/authorizer.go` (`doBearerAuth`), `docs/containerd-kubelet.md` §7 R6, T1, T2, and
//! the token-fallback matrix of §14:
//!
//! * with a secret (password): **POST** the OAuth2 form (`grant_type=password`, or
//!   `refresh_token` when the username is empty), `client_id=containerd-client`, `service`,
//!   `scope` (space-joined, omitted when none). On an HTTP status of 400, 401 or 404 — or 405
//!   when a username is set — fall back to **GET** with Basic; any other POST failure is final.
//!   A 2xx POST whose body is not JSON or has no `access_token` is final too (no GET);
//! * without a secret: GET with no `Authorization` (an anonymous token);
//! * GET: the realm's own query plus `service` (when non-empty) and one `scope` per scope, keys
//!   sorted as Go's `url.Values.Encode`; response `access_token` overrides `token`.

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use url::Url;

use super::challenge::Challenge;
use super::classify::{Failure, Peer};
use super::evidence;
use super::outcome::{Phase, ProbeResult};
use super::redact::Redactor;
use super::transport::{Request, Response, Session, TOKEN_BODY_CAP};

/// The OAuth2 `client_id` containerd sends (`remotes/docker/authorizer.go`, CRI default).
pub const CLIENT_ID: &str = "containerd-client";

/// What to ask the token service for.
pub struct TokenRequest<'a> {
    /// The realm URL from the challenge.
    pub realm: Url,
    /// The challenge's `service` (may be empty).
    pub service: String,
    /// Scopes: the challenge's `scope` split on single spaces, plus the probe's own.
    pub scopes: Vec<String>,
    /// User name (empty for a refresh token or anonymous).
    pub username: &'a str,
    /// Password or refresh token; empty for anonymous.
    pub secret: &'a str,
}

/// Which request produced the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMethod {
    /// The OAuth2 POST.
    Post,
    /// The GET (direct, or the POST's fallback).
    Get,
}

/// A bearer token. The value is never logged or serialised.
pub struct Token {
    /// The token.
    pub value: SecretString,
    /// `expires_in` seconds, when the service said.
    pub expires_in: Option<i64>,
    /// The request that produced it.
    pub method: TokenMethod,
}

/// The POST body (`application/x-www-form-urlencoded`), keys sorted as Go's `Encode`.
pub fn post_form(req: &TokenRequest<'_>) -> String {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    if !req.scopes.is_empty() {
        fields.insert("scope", req.scopes.join(" "));
    }
    fields.insert("service", req.service.clone());
    fields.insert("client_id", CLIENT_ID.to_string());
    if req.username.is_empty() {
        fields.insert("grant_type", "refresh_token".into());
        fields.insert("refresh_token", req.secret.to_string());
    } else {
        fields.insert("grant_type", "password".into());
        fields.insert("username", req.username.to_string());
        fields.insert("password", req.secret.to_string());
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The GET URL: the realm's query plus `service` and `scope`s, all keys sorted (Go's
/// `url.Values.Encode` sorts keys and keeps the order of values of one key).
pub fn get_url(req: &TokenRequest<'_>) -> Url {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.realm.query_pairs() {
        params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    if !req.service.is_empty() {
        params
            .entry("service".into())
            .or_default()
            .push(req.service.clone());
    }
    for s in &req.scopes {
        params.entry("scope".into()).or_default().push(s.clone());
    }
    let mut url = req.realm.clone();
    if params.is_empty() {
        url.set_query(None);
    } else {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, vs) in &params {
            for v in vs {
                ser.append_pair(k, v);
            }
        }
        url.set_query(Some(&ser.finish()));
    }
    url
}

/// Whether a failed POST falls back to GET (§14 matrix; containerd `authorizer.go`:
/// `(status == 405 && username != "") || status ∈ {400, 401, 404}`).
pub fn post_falls_back(status: u16, username: &str) -> bool {
    matches!(status, 400 | 401 | 404) || (status == 405 && !username.is_empty())
}

/// Why a 2xx token answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenBodyError {
    /// Not JSON (an HTML page, a truncated body): containerd's "unable to decode token response".
    #[error("unable to decode token response (not JSON{})", if *.truncated { ", larger than 1 MiB" } else { "" })]
    NotJson {
        /// The body exceeded the cap and was cut.
        truncated: bool,
    },
    /// JSON without a token: containerd's "authorization server did not include a token in the response".
    #[error("authorization server did not include a token in the response")]
    NoToken,
    /// JSON that Go's decoder refuses for containerd's struct (a field of the wrong type, an
    /// `issued_at` that is not RFC 3339): containerd's "unable to decode token response".
    #[error("unable to decode token response: {0}")]
    Decode(super::tokenjson::GoJsonError),
}

/// Parses a 2xx token body as containerd does: Go's `json.Decoder.Decode` into
/// `OAuthTokenResponse` (POST, read for `access_token`) or `FetchTokenResponse` (GET:
/// `access_token`, else `token`), `core/remotes/docker/auth/fetch.go` `FetchTokenWithOAuth`,
/// `FetchToken`; the Go rules are in [`super::tokenjson`]. Returns the token and `expires_in`.
pub fn parse_token_body(
    body: &[u8],
    method: TokenMethod,
    truncated: bool,
) -> Result<(String, Option<i64>), TokenBodyError> {
    use super::tokenjson::{decode, GoJsonError, Shape};
    let shape = match method {
        TokenMethod::Post => Shape::OAuth,
        TokenMethod::Get => Shape::Fetch,
    };
    let parsed = match decode(body, shape) {
        Ok(p) => p,
        Err(GoJsonError::Syntax { .. } | GoJsonError::Eof) => {
            return Err(TokenBodyError::NotJson { truncated })
        }
        Err(e) => return Err(TokenBodyError::Decode(e)),
    };
    let access = parsed.access_token.filter(|t| !t.is_empty());
    let value = match method {
        TokenMethod::Post => access,
        TokenMethod::Get => access.or(parsed.token.filter(|t| !t.is_empty())),
    };
    match value {
        Some(v) => Ok((v, parsed.expires_in)),
        None => Err(TokenBodyError::NoToken),
    }
}

/// Fetches a token, recording each exchange (status, error body excerpt; never the token or
/// the password) and the `token` phase on `result`.
///
/// Errors are [`Failure`]s: `Transport { peer: Realm, .. }` for network trouble at the realm,
/// `TokenStatus` for the final HTTP error, `TokenBody` for an unusable 2xx answer.
/// `host` is the registry host: its `dial_timeout` (containerd's authorizer uses that host's
/// client for the realm too, `docs/containerd-kubelet.md` §6.3) and its hosts.toml headers,
/// sent on every token request as `auth.FetchToken` does with the authorizer's
/// `WithAuthHeader` headers (`config/hosts.go` `ConfigureHosts`); their values are redacted
/// from the evidence like the password: `redactor` is [`super::exchange::redactor`] of `host`
/// and the request's credential.
pub async fn fetch(
    session: &mut Session,
    tls: Option<Arc<rustls::ClientConfig>>,
    host: &crate::hosts::RegistryHost,
    req: &TokenRequest<'_>,
    redactor: &Redactor,
    result: &mut ProbeResult,
) -> Result<Token, Failure> {
    let started = Instant::now();
    let mut headers = http::HeaderMap::new();
    super::exchange::add_host_headers(&mut headers, host);
    let ctx = Ctx {
        tls,
        dial_timeout: host.dial_timeout,
        headers,
    };
    let out = fetch_inner(session, &ctx, req, result, redactor).await;
    let spent = super::exchange::http_seconds(session, started, result);
    // The token service never reached over HTTP (refused, DNS, TLS): no token time.
    let answered = result
        .exchanges
        .iter()
        .any(|e| e.phase == Some(Phase::Token) && e.status.is_some());
    if answered || !matches!(&out, Err(Failure::Transport { error, .. }) if error.before_http()) {
        result.add_phase(Phase::Token, spent);
    }
    out
}

/// The host settings every token request carries.
struct Ctx {
    tls: Option<Arc<rustls::ClientConfig>>,
    dial_timeout: Option<std::time::Duration>,
    headers: http::HeaderMap,
}

impl Ctx {
    fn request(&self, method: Method, url: Url) -> Request {
        let mut r = Request::new(method, url, self.tls.clone());
        r.body_cap = TOKEN_BODY_CAP;
        r.dial_timeout = self.dial_timeout;
        r.headers = self.headers.clone();
        r
    }
}

async fn fetch_inner(
    session: &mut Session,
    ctx: &Ctx,
    req: &TokenRequest<'_>,
    result: &mut ProbeResult,
    redactor: &Redactor,
) -> Result<Token, Failure> {
    if req.secret.is_empty() {
        return get(session, ctx, req, result, redactor).await;
    }
    let mut post = ctx.request(Method::POST, req.realm.clone());
    post.body = Bytes::from(post_form(req));
    post.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let (resp, dropped) = send(session, post, result, redactor).await?;
    let status = resp.status.as_u16();
    if !(200..400).contains(&status) {
        if post_falls_back(status, req.username) {
            return get(session, ctx, req, result, redactor).await;
        }
        return Err(status_failure(status, true, dropped));
    }
    token_from(&resp, TokenMethod::Post)
}

async fn get(
    session: &mut Session,
    ctx: &Ctx,
    req: &TokenRequest<'_>,
    result: &mut ProbeResult,
    redactor: &Redactor,
) -> Result<Token, Failure> {
    let mut get = ctx.request(Method::GET, get_url(req));
    let with_credential = !req.secret.is_empty();
    if with_credential {
        get.headers
            .insert(AUTHORIZATION, basic_header(req.username, req.secret));
    }
    let (resp, dropped) = send(session, get, result, redactor).await?;
    let status = resp.status.as_u16();
    if !(200..400).contains(&status) {
        return Err(status_failure(status, with_credential, dropped));
    }
    token_from(&resp, TokenMethod::Get)
}

/// The failure of a final error status. A 401 or 403 that came back after a redirect dropped
/// the credential (see [`Session::take_dropped_credential`]) blames the token service, not
/// the credential, which that host never saw.
fn status_failure(status: u16, with_credential: bool, dropped: Option<String>) -> Failure {
    match dropped {
        Some(how) if with_credential && matches!(status, 401 | 403) => {
            Failure::CredentialNotForwarded {
                peer: Peer::Realm,
                status,
                how,
            }
        }
        _ => Failure::TokenStatus {
            status,
            with_credential,
        },
    }
}

/// Sends one token request and records it; a transport error is a network failure at the realm.
/// Also says whether a redirect dropped the credential (noted on `result`).
async fn send(
    session: &mut Session,
    request: Request,
    result: &mut ProbeResult,
    redactor: &Redactor,
) -> Result<(Response, Option<String>), Failure> {
    let (method, url) = (request.method.to_string(), request.url.clone());
    match session.send(request).await {
        Ok(resp) => {
            // A redirected POST may have ended as a GET: record what reached the last host.
            let method = session.last_method().map_or(method, Method::to_string);
            evidence::record(result, Phase::Token, &method, &resp, redactor);
            super::exchange::note_retry_after(result, &resp);
            let dropped = session.take_dropped_credential();
            if let Some(how) = &dropped {
                result
                    .notes
                    .push(super::outcome::Note::CredentialNotForwarded(
                        redactor.redact(how),
                    ));
            }
            Ok((resp, dropped))
        }
        Err(error) => {
            evidence::record_failed(result, Phase::Token, &method, &url);
            Err(Failure::Transport {
                peer: Peer::Realm,
                error,
            })
        }
    }
}

/// The token of a 2xx answer, or why it is unusable.
fn token_from(resp: &Response, method: TokenMethod) -> Result<Token, Failure> {
    match parse_token_body(&resp.body, method, resp.truncated) {
        Ok((value, expires_in)) => Ok(Token {
            value: SecretString::from(value),
            expires_in,
            method,
        }),
        Err(e) => Err(Failure::TokenBody(e.to_string())),
    }
}

/// `Basic base64(user:secret)`, marked sensitive so hyper never logs it.
pub fn basic_header(user: &str, secret: &str) -> HeaderValue {
    use base64::Engine;
    let raw = secrecy::zeroize::Zeroizing::new(format!("{user}:{secret}"));
    let enc = secrecy::zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()),
    );
    let mut v = HeaderValue::from_str(&format!("Basic {}", enc.as_str()))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

/// `Bearer <token>`, marked sensitive. A token with bytes not allowed in a header gives `None`.
pub fn bearer_header(token: &SecretString) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The token request for a Bearer `challenge`: its realm (which must be an absolute http(s)
/// URL, else [`Failure::BadRealm`], containerd's "no realm specified"), its `service`, and the
/// scopes: the challenge's `scope` split on single spaces plus `extra_scopes`, sorted and
/// de-duplicated as containerd's `GetTokenScopes`. A plain-HTTP realm for an HTTPS registry is
/// noted on `result` and sets [`ProbeResult::insecure_realm`] (the password would travel
/// unencrypted).
pub fn token_request<'a>(
    challenge: &Challenge,
    extra_scopes: &[String],
    username: &'a str,
    secret: &'a str,
    registry_url: &Url,
    result: &mut ProbeResult,
) -> Result<TokenRequest<'a>, Failure> {
    let realm = challenge.param("realm").unwrap_or_default();
    if realm.is_empty() {
        return Err(Failure::BadRealm("the challenge names no realm".into()));
    }
    let realm_url = match Url::parse(realm) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            return Err(Failure::BadRealm(format!(
                "realm {:?} is not an http(s) URL",
                evidence::excerpt(realm.as_bytes())
            )))
        }
    };
    if realm_url.scheme() == "http" && registry_url.scheme() == "https" {
        result.insecure_realm = true;
        result
            .notes
            .push(super::outcome::Note::InsecureRealm(realm_url.to_string()));
    }
    let mut scopes: Vec<String> = challenge
        .param("scope")
        .map(|s| s.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    if !extra_scopes.is_empty() {
        scopes.extend(extra_scopes.iter().cloned());
        scopes.sort();
        scopes.dedup();
    }
    Ok(TokenRequest {
        realm: realm_url,
        service: challenge.param("service").unwrap_or_default().to_string(),
        scopes,
        username,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(user: &'a str, secret: &'a str) -> TokenRequest<'a> {
        TokenRequest {
            realm: Url::parse("https://auth.example/token?account=x").unwrap(),
            service: "registry.example".into(),
            scopes: vec!["repository:a/b:pull".into(), "registry:catalog:*".into()],
            username: user,
            secret,
        }
    }

    #[test]
    fn post_form_matches_containerd() {
        assert_eq!(
            post_form(&req("ci-bot", "pw")),
            "client_id=containerd-client&grant_type=password&password=pw&scope=repository%3Aa%2Fb%3Apull+registry%3Acatalog%3A*&service=registry.example&username=ci-bot"
        );
        let r = TokenRequest {
            scopes: vec![],
            ..req("", "refresh")
        };
        assert_eq!(
            post_form(&r),
            "client_id=containerd-client&grant_type=refresh_token&refresh_token=refresh&service=registry.example"
        );
    }

    #[test]
    fn get_url_keeps_realm_query_and_sorts_keys() {
        assert_eq!(
            get_url(&req("u", "p")).as_str(),
            "https://auth.example/token?account=x&scope=repository%3Aa%2Fb%3Apull&scope=registry%3Acatalog%3A*&service=registry.example"
        );
        let r = TokenRequest {
            realm: Url::parse("https://auth.example/token").unwrap(),
            service: String::new(),
            scopes: vec![],
            username: "",
            secret: "",
        };
        assert_eq!(get_url(&r).as_str(), "https://auth.example/token");
    }

    #[test]
    fn fallback_matrix() {
        for s in [400, 401, 404] {
            assert!(post_falls_back(s, "u"));
            assert!(post_falls_back(s, ""));
        }
        assert!(post_falls_back(405, "u"));
        assert!(!post_falls_back(405, ""));
        for s in [403, 429, 500, 502, 503, 302] {
            assert!(!post_falls_back(s, "u"), "{s}");
        }
    }

    #[test]
    fn token_bodies() {
        use TokenMethod::*;
        assert_eq!(
            parse_token_body(
                br#"{"access_token":"a","token":"t","expires_in":300}"#,
                Get,
                false
            ),
            Ok(("a".into(), Some(300)))
        );
        assert_eq!(
            parse_token_body(br#"{"token":"t"}"#, Get, false),
            Ok(("t".into(), None))
        );
        // POST reads access_token only.
        assert_eq!(
            parse_token_body(br#"{"token":"t"}"#, Post, false),
            Err(TokenBodyError::NoToken)
        );
        assert_eq!(
            parse_token_body(b"<html>", Post, false),
            Err(TokenBodyError::NotJson { truncated: false })
        );
        assert_eq!(
            parse_token_body(br#"{"token":"#, Get, true),
            Err(TokenBodyError::NotJson { truncated: true })
        );
        // A float expires_in fails Go's decode into int.
        assert!(parse_token_body(br#"{"token":"t","expires_in":1.5}"#, Get, false).is_err());
        // Trailing bytes after the first value are ignored, as json.Decoder does.
        assert_eq!(
            parse_token_body(br#"{"token":"t"} garbage"#, Get, false),
            Ok(("t".into(), None))
        );
        assert_eq!(
            parse_token_body(br#"{"token":""}"#, Get, false),
            Err(TokenBodyError::NoToken)
        );
    }

    /// The Go `encoding/json` rules (issue 12): each of these disagreed with the serde model.
    #[test]
    fn token_bodies_decode_as_go_into_containerds_structs() {
        use super::super::tokenjson::GoJsonError;
        use TokenMethod::*;
        // Keys match case-insensitively.
        assert_eq!(
            parse_token_body(br#"{"Access_Token":"t","Expires_In":60}"#, Post, false),
            Ok(("t".into(), Some(60)))
        );
        // A repeated key keeps the last value.
        assert_eq!(
            parse_token_body(br#"{"token":"a","token":"b"}"#, Get, false),
            Ok(("b".into(), None))
        );
        assert_eq!(
            parse_token_body(br#"{"access_token":"a","access_token":""}"#, Post, false),
            Err(TokenBodyError::NoToken)
        );
        // A bad issued_at fails the pull.
        assert!(matches!(
            parse_token_body(br#"{"token":"t","issued_at":"yesterday"}"#, Get, false),
            Err(TokenBodyError::Decode(GoJsonError::IssuedAt(_)))
        ));
        // expires_in must be a number.
        assert!(matches!(
            parse_token_body(br#"{"token":"t","expires_in":"300"}"#, Get, false),
            Err(TokenBodyError::Decode(GoJsonError::Field {
                field: "expires_in",
                ..
            }))
        ));
        // A POST answer's scope must be a string; the GET answer has no scope field.
        assert!(matches!(
            parse_token_body(br#"{"access_token":"t","scope":["a"]}"#, Post, false),
            Err(TokenBodyError::Decode(GoJsonError::Field {
                field: "scope",
                ..
            }))
        ));
        assert_eq!(
            parse_token_body(br#"{"token":"t","scope":["a"]}"#, Get, false),
            Ok(("t".into(), None))
        );
        // `null` is Go's zero struct: no token.
        assert_eq!(
            parse_token_body(b"null", Get, false),
            Err(TokenBodyError::NoToken)
        );
    }

    #[test]
    fn a_401_after_the_credential_was_dropped_does_not_blame_the_credential() {
        let how = || Some("redirected to other.example".to_string());
        assert!(matches!(
            status_failure(401, true, how()),
            Failure::CredentialNotForwarded { status: 401, .. }
        ));
        assert!(matches!(
            status_failure(403, true, how()),
            Failure::CredentialNotForwarded { status: 403, .. }
        ));
        // Other statuses, anonymous requests and undisturbed requests keep their meaning.
        for (status, with_credential, dropped) in
            [(500, true, how()), (401, false, how()), (401, true, None)]
        {
            assert_eq!(
                status_failure(status, with_credential, dropped),
                Failure::TokenStatus {
                    status,
                    with_credential
                }
            );
        }
    }

    #[test]
    fn headers_are_sensitive_and_well_formed() {
        let h = basic_header("u", "p");
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic dTpw");
        let b = bearer_header(&SecretString::from("abc")).unwrap();
        assert!(b.is_sensitive());
        assert!(bearer_header(&SecretString::from("a\nb")).is_none());
    }
}
