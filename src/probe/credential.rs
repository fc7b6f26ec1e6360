//! The credential probe: does this credential open this registry, from this node?
//!
//! What `docker login` does, with containerd's rules for every step (`docs/containerd-kubelet.md` §7):
//!
//! 1. **challenge**: anonymous `GET <scheme>://<host>/v2/`.
//!    200 → the registry is open (success, noted), unless it is an HTML page without the
//!    `Docker-Distribution-API-Version` header (a captive portal or web server: `not_a_registry`);
//!    401 → parse `WWW-Authenticate` ([`super::challenge`]); anything else is classified.
//! 2. **token** (Bearer challenge): the token request of [`super::token`] to the realm, with
//!    the challenge's `service` and `scope`.
//! 3. **verify**: `GET /v2/` again with `Authorization: Basic …` or `Bearer …`; 200 is success.
//!
//! Like containerd's authorizer (`authorizer.go` `AddResponses`), a Bearer challenge is taken
//! before Basic, Digest is skipped, and a username or password that is empty means the pull
//! would be anonymous (containerd `ParseAuth` with kubelet's `AuthConfig`, `docs/containerd-kubelet.md` §4), which this
//! probe reports as `credential_missing` when the registry demands authentication.
//! The host's TLS settings (hosts.toml `ca`, `skip_verify`) apply to the realm too, as in
//! containerd where each host's authorizer uses that host's HTTP client (`docs/containerd-kubelet.md` §6.3).

use http::header::CONTENT_TYPE;
use http::Method;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use url::Url;

use super::challenge::Scheme;
use super::classify::{self, AuthScheme, Failure, Peer};
use super::evidence;
use super::exchange::{
    authority, challenge_error, challenges, deciding_exchange, exchange, falls_back_to_http,
    host_request, realm_tls, tls_for, unix_now, v2_url, with_authorization,
};
use super::failure::Failed;
use super::outcome::{AuthMode, Note, Phase, ProbeResult};
use super::redact::Redactor;
use super::token;
use super::transport::{Response, Session, Transport, TransportError};
use crate::hosts::{RegistryHost, Scheme as HostScheme};
use crate::secrets::Credential;

/// What every probe shares: the transport, the node's CA bundle, and the per-probe budget.
#[derive(Clone)]
pub struct ProbeEnv {
    /// The instrumented transport.
    pub transport: Arc<Transport>,
    /// The node's trust anchors.
    pub tls: Arc<super::exchange::TlsConfigs>,
    /// Wall-clock budget of one probe (`--timeout`).
    pub timeout: Duration,
}

/// One credential probe: a secret's entry against the registry host it names.
#[derive(Debug, Clone)]
pub struct CredentialTarget {
    /// Secret id (`docs/metrics.md` label `secret`).
    pub secret: String,
    /// Normalised registry key (label `registry`).
    pub registry: String,
    /// The host to contact: containerd's upstream for the key's host (`hosts.toml` `server`,
    /// `docker.io` → `registry-1.docker.io`, loopback rules).
    pub host: RegistryHost,
    /// The credential kubelet would send.
    pub credential: Credential,
}

/// Runs the credential handshake and returns a classified result. Never panics on what the
/// peer sends; every step is bounded by `env.timeout`.
pub async fn probe_credential(env: &ProbeEnv, target: &CredentialTarget) -> ProbeResult {
    let started = Instant::now();
    let mut result = ProbeResult::new(target.registry.clone(), Some(target.secret.clone()));
    result.timestamp = unix_now();
    if !target.credential.username.is_empty() {
        result.username = Some(target.credential.username.clone());
    }
    let mut session = env.transport.session(started + env.timeout);
    let outcome = handshake(env, target, &mut session, &mut result).await;
    finish(&mut result, outcome, target, started);
    result
}

/// Fills `success`, `reason`, `class`, `detail`, `failed` and the duration from an outcome.
pub fn finish(
    result: &mut ProbeResult,
    outcome: Result<String, Failure>,
    target: &CredentialTarget,
    started: Instant,
) {
    result.duration_seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(detail) => {
            result.success = true;
            result.detail = detail;
        }
        Err(failure) => {
            let expiry = credential_expiry(target.credential.password.expose_secret());
            let failure = classify::with_expiry(failure, expiry, crate::clock::unix_secs());
            let reason = classify::reason(&failure);
            result.success = false;
            result.reason = Some(reason);
            result.class = Some(reason.class());
            // Every piece of the detail is either evidence (already redacted) or the
            // transport's words, which may quote a URL a hostile peer chose: redact again.
            let redactor = super::exchange::redactor(
                &target.host,
                &target.credential.username,
                target.credential.password.expose_secret(),
            );
            result.detail = redactor.redact(&describe(&failure, result, target));
            result.failed = Some(failed_at(failure, result, target));
        }
    }
}

/// Where a credential probe's failure happened: the step of the request that broke and the
/// server that answered (or did not), from the failure's type and the exchanges recorded.
fn failed_at(failure: Failure, result: &ProbeResult, target: &CredentialTarget) -> Failed {
    let step = match &failure {
        Failure::SecretInvalid(_) | Failure::ProviderMissing(_) | Failure::ProviderFailed(_) => {
            None
        }
        Failure::CredentialMissing(AuthScheme::Bearer) => Some(Phase::Token),
        Failure::CredentialMissing(AuthScheme::Basic) => Some(Phase::Verify),
        f if f.peer() == Peer::Realm => Some(Phase::Token),
        _ => Some(
            result
                .exchanges
                .last()
                .and_then(|e| e.phase)
                .unwrap_or(Phase::Challenge),
        ),
    };
    let at = step.and_then(|s| deciding_exchange(&result.exchanges, s));
    // The server of that exchange (the realm for token steps), else the registry host.
    let host = at
        .and_then(|i| Url::parse(&result.exchanges[i].url).ok())
        .map(|u| authority(&u))
        .unwrap_or_else(|| target.host.host.clone());
    let credential_sent = matches!(step, Some(Phase::Verify) | Some(Phase::Token))
        && !matches!(failure, Failure::CredentialMissing(_));
    Failed {
        failure,
        step,
        host,
        credential_sent,
        exchange: at,
    }
}

async fn handshake(
    env: &ProbeEnv,
    target: &CredentialTarget,
    session: &mut Session,
    result: &mut ProbeResult,
) -> Result<String, Failure> {
    let host = &target.host;
    let tls = tls_for(host, &env.tls, result)?;
    let mut base = v2_url(host, host.scheme)?;
    result.endpoint = Some(base.to_string());

    // 1. challenge
    let mut challenge_req = host_request(host, Method::GET, base.clone(), tls.clone());
    if host.scheme == HostScheme::Https && host.http_fallback {
        challenge_req.tls_timeout = Some(session.fallback_tls_budget());
    }
    let first = match exchange(
        session,
        result,
        Phase::Challenge,
        challenge_req,
        &super::exchange::redactor(host, "", ""),
    )
    .await
    {
        // (When the HTTPS attempt used up the budget, its own failure is the verdict.)
        Err(e)
            if host.http_fallback
                && falls_back_to_http(&e, &host.host)
                && !session.remaining().is_zero() =>
        {
            result.notes.push(Note::HttpFallback {
                host: host.host.clone(),
                error: e.clone(),
            });
            base = v2_url(host, HostScheme::Http)?;
            result.endpoint = Some(base.to_string());
            match exchange(
                session,
                result,
                Phase::Challenge,
                host_request(host, Method::GET, base.clone(), None),
                &super::exchange::redactor(host, "", ""),
            )
            .await
            {
                Ok(r) => r,
                // The HTTPS attempt used up the budget: its own failure is the verdict.
                Err(TransportError::Deadline { .. }) => {
                    return Err(Failure::Transport {
                        peer: Peer::Registry,
                        error: e,
                    })
                }
                Err(error) => {
                    return Err(Failure::Transport {
                        peer: Peer::Registry,
                        error,
                    })
                }
            }
        }
        other => other.map_err(|error| Failure::Transport {
            peer: Peer::Registry,
            error,
        })?,
    };
    if let Some(info) = session.tls_info(&authority(&base)) {
        result.tls = Some(info.clone());
    }
    if let Some(t) = result.tls.as_mut() {
        t.verified_by = result
            .notes
            .iter()
            .find_map(|n| match n {
                Note::TlsTrust(source) => Some(source.clone()),
                _ => None,
            })
            .unwrap_or_default();
    }
    let status = first.status.as_u16();
    if first.status.is_success() {
        if looks_like_html_portal(&first) {
            return Err(Failure::HtmlPage);
        }
        result.auth_mode = Some(AuthMode::Anonymous);
        result.notes.push(Note::OpenRegistry);
        return Ok(format!(
            "{} is open: GET /v2/ answered {} without credentials",
            target.registry, status
        ));
    }
    if status != 401 {
        return Err(Failure::ChallengeStatus(status));
    }
    let challenges = challenges(&first);
    let user = target.credential.username.as_str();
    let password = target.credential.password.expose_secret();
    let redactor = super::exchange::redactor(host, user, password);

    let chosen = challenges
        .iter()
        .find(|c| c.scheme == Scheme::Bearer)
        .or_else(|| challenges.iter().find(|c| c.scheme == Scheme::Basic));
    let Some(challenge) = chosen else {
        return Err(Failure::NoSupportedChallenge);
    };

    match challenge.scheme {
        Scheme::Basic => {
            if user.is_empty() || password.is_empty() {
                return Err(Failure::CredentialMissing(AuthScheme::Basic));
            }
            result.auth_mode = Some(AuthMode::Basic);
            let auth = token::basic_header(user, password);
            let resp = verify(session, result, host, &base, tls.clone(), auth, &redactor).await?;
            if resp.status.is_success() {
                return Ok(format!(
                    "{} accepted the Basic credential of user `{}`",
                    target.registry, user
                ));
            }
            if resp.status.as_u16() == 403 {
                return Err(Failure::BasicForbidden {
                    step: Phase::Verify,
                    error_code: evidence::registry_error(&resp.body).0,
                });
            }
            Err(Failure::VerifyStatus {
                scheme: AuthScheme::Basic,
                status: resp.status.as_u16(),
                challenge_error: challenge_error(&resp),
            })
        }
        _ => {
            if user.is_empty() || password.is_empty() {
                return Err(Failure::CredentialMissing(AuthScheme::Bearer));
            }
            let treq = token::token_request(challenge, &[], user, password, &base, result)?;
            result.auth_mode = Some(AuthMode::Bearer);
            let realm_tls = realm_tls(host, &env.tls, &tls);
            let tok = token::fetch(session, realm_tls, host, &treq, &redactor, result).await?;
            if let Some(e) = tok.expires_in {
                result.notes.push(Note::TokenExpiresIn(e));
            }
            let Some(bearer) = token::bearer_header(&tok.value) else {
                return Err(Failure::TokenBody(
                    "the token contains bytes not allowed in an HTTP header".into(),
                ));
            };
            // An echoing registry may return the bearer token: it is a secret too.
            let with_token = redactor.with(tok.value.expose_secret());
            // verify. A 401 with `error=` is final here: containerd's `invalidAuthorization`
            // (`authorizer.go`) retries with a fresh token only when the previous response was
            // to another request (`sameRequest`), and the challenge answered this same
            // `GET /v2/`, so the second answer fails ("server message: …: authorization
            // failed"), with no fresh token.
            let resp = verify(
                session,
                result,
                host,
                &base,
                tls.clone(),
                bearer,
                &with_token,
            )
            .await?;
            if resp.status.is_success() {
                return Ok(format!(
                    "the token service at {} issued a token for user `{}` ({} request) and {} accepted it",
                    treq.realm.host_str().unwrap_or_default(),
                    user,
                    match tok.method {
                        token::TokenMethod::Post => "POST",
                        token::TokenMethod::Get => "GET",
                    },
                    target.registry
                ));
            }
            Err(Failure::VerifyStatus {
                scheme: AuthScheme::Bearer,
                status: resp.status.as_u16(),
                challenge_error: challenge_error(&resp),
            })
        }
    }
}

/// The authenticated `GET /v2/` (phase `verify`); a transport error is a registry failure.
async fn verify(
    session: &mut Session,
    result: &mut ProbeResult,
    host: &RegistryHost,
    base: &Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    authorization: http::HeaderValue,
    redactor: &Redactor,
) -> Result<Response, Failure> {
    let req = with_authorization(
        host_request(host, Method::GET, base.clone(), tls),
        Some(authorization),
    );
    let resp = exchange(session, result, Phase::Verify, req, redactor)
        .await
        .map_err(|error| Failure::Transport {
            peer: Peer::Registry,
            error,
        })?;
    if let Some(how) = session.take_dropped_credential() {
        let how = redactor.redact(&how);
        result.notes.push(Note::CredentialNotForwarded(how.clone()));
        if matches!(resp.status.as_u16(), 401 | 403) {
            return Err(Failure::CredentialNotForwarded {
                peer: Peer::Registry,
                status: resp.status.as_u16(),
                how,
            });
        }
    }
    Ok(resp)
}

/// A 2xx `/v2/` answer that is a web page rather than the registry API: no
/// `Docker-Distribution-API-Version` header, and an HTML content type or body.
pub fn looks_like_html_portal(resp: &Response) -> bool {
    if resp.headers.contains_key("docker-distribution-api-version") {
        return false;
    }
    let ct_html = resp
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
    let body =
        String::from_utf8_lossy(&resp.body[..resp.body.len().min(1024)]).to_ascii_lowercase();
    let body_html = body.trim_start().starts_with('<')
        && (body.contains("<html") || body.contains("<!doctype"));
    ct_html || body_html
}

/// Human account of a failure, from the failure and the recorded exchanges. Holds no secret:
/// every piece comes from [`evidence`], which redacts.
fn describe(f: &Failure, result: &ProbeResult, target: &CredentialTarget) -> String {
    let user = if target.credential.username.is_empty() {
        "(no username)".to_string()
    } else {
        format!("`{}`", target.credential.username)
    };
    let last = result.exchanges.last();
    let server_said = |e: &super::Exchange| -> String {
        let mut s = String::new();
        if let Some(c) = &e.error_code {
            s.push_str(&format!(" {c}"));
        }
        if let Some(m) = &e.error_message {
            s.push_str(&format!(": {m}"));
        }
        s
    };
    let token_chain = || -> String {
        result
            .exchanges
            .iter()
            .filter(|e| e.phase == Some(Phase::Token))
            .map(super::Exchange::summary)
            .collect::<Vec<_>>()
            .join(", then ")
    };
    match f {
        Failure::SecretInvalid(e) => format!("the secret does not parse: {e}"),
        Failure::ProviderMissing(e) | Failure::ProviderFailed(e) => e.clone(),
        Failure::Transport { peer, error } => {
            let what = match peer {
                Peer::Registry => "the registry",
                Peer::Realm => "the token service",
            };
            let url = last.map(|e| format!("{} {}", e.method, e.url)).unwrap_or_default();
            if misbehaved(error) {
                format!("{url}: {what} misbehaved: {error}")
            } else {
                format!("{url}: {what} could not be reached: {error}")
            }
        }
        Failure::CredentialNotForwarded { peer, status, how } => format!(
            "{} answered {status} after a redirect, but {how}; that answer says nothing about the credential of user {user}{}",
            match peer {
                Peer::Registry => "the registry",
                Peer::Realm => "the token service",
            },
            match peer {
                Peer::Realm => format!(": {}", token_chain()),
                Peer::Registry => String::new(),
            }
        ),
        Failure::HtmlPage => format!(
            "GET {} answered {} with an HTML page and no Docker-Distribution-API-Version header: a web server or captive portal, not a registry",
            result.endpoint.as_deref().unwrap_or_default(),
            last.and_then(|e| e.status).unwrap_or(200)
        ),
        Failure::ChallengeStatus(s) => format!(
            "GET {} answered {}{} (a registry answers 200 or 401)",
            result.endpoint.as_deref().unwrap_or_default(),
            s,
            last.map(server_said).unwrap_or_default()
        ),
        Failure::NoSupportedChallenge => format!(
            "GET {} answered 401 without a Basic or Bearer challenge (WWW-Authenticate: {})",
            result.endpoint.as_deref().unwrap_or_default(),
            last.and_then(|e| e.challenge.clone()).unwrap_or_else(|| "none".into())
        ),
        Failure::BadRealm(why) => format!("the Bearer challenge is unusable: {why}"),
        Failure::CredentialMissing(scheme) => format!(
            "{} demands {} authentication and the entry has no usable username and password (user {user})",
            target.registry,
            match scheme {
                AuthScheme::Basic => "Basic",
                AuthScheme::Bearer => "token",
            }
        ),
        Failure::TokenStatus { status, .. } => format!(
            "the token service rejected user {user} with {status}: {}",
            token_chain()
        ),
        Failure::TokenBody(why) => format!("the token service answered but {why}: {}", token_chain()),
        Failure::VerifyStatus {
            scheme,
            status,
            challenge_error,
        } => format!(
            "GET {} with {} credentials of user {user} answered {status}{}{}",
            result.endpoint.as_deref().unwrap_or_default(),
            match scheme {
                AuthScheme::Basic => "Basic",
                AuthScheme::Bearer => "a bearer token (issued by the token service) for the",
            },
            challenge_error
                .as_ref()
                .map(|e| format!(" (error={e})"))
                .unwrap_or_default(),
            last.map(server_said).unwrap_or_default()
        ),
        Failure::RegistryStatus(s) | Failure::ManifestStatus { status: s, .. } => format!(
            "the registry answered {s}{}",
            last.map(server_said).unwrap_or_default()
        ),
        Failure::ManifestUnsupported(why) => format!("the manifest is unsupported: {why}"),
        Failure::NoResolveHosts => {
            "no host is configured to resolve this image (hosts.toml capabilities)".into()
        }
        Failure::BasicForbidden { error_code, .. } => format!(
            "{} answered 403 to the Basic credential of user {user}{}{}",
            target.registry,
            error_code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            last.map(server_said).unwrap_or_default()
        ),
        Failure::ManifestDigestInvalid(value) => {
            format!("the registry's Docker-Content-Digest {value:?} is not a valid digest")
        }
        Failure::CredentialExpired { expired_at } => format!(
            "the registry rejected user {user}, and the credential's own expiry passed at {}",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs((*expired_at).max(0) as u64))
        ),
    }
}

/// A transport error that is the peer misbehaving (it answered, but not usably) rather than
/// the peer being unreachable.
pub fn misbehaved(error: &TransportError) -> bool {
    use super::transport::HttpFailure;
    matches!(
        error,
        TransportError::Redirect(_)
            | TransportError::InvalidUrl(_)
            | TransportError::Http {
                kind: HttpFailure::Protocol(_) | HttpFailure::HeadTooLarge,
                ..
            }
    )
}

/// The expiry a credential carries itself, Unix seconds: a JWT password's `exp` claim, or an
/// ECR authorization token's `expiration` (base64 of a JSON document). `None` when the password
/// is neither.
pub fn credential_expiry(password: &str) -> Option<i64> {
    use base64::Engine;
    let parts: Vec<&str> = password.split('.').collect();
    if parts.len() == 3 {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        return v.get("exp")?.as_i64();
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(password)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v.get("expiration")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn resp(headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Response {
            status: StatusCode::OK,
            headers: h,
            body: bytes::Bytes::from(body.to_string()),
            truncated: false,
            url: Url::parse("http://r.test/v2/").unwrap(),
        }
    }

    #[test]
    fn html_portal_detection() {
        assert!(looks_like_html_portal(&resp(
            &[("content-type", "text/html; charset=utf-8")],
            "<!DOCTYPE html><html>Login</html>"
        )));
        assert!(looks_like_html_portal(&resp(
            &[],
            "  <html><body>x</body></html>"
        )));
        assert!(!looks_like_html_portal(&resp(
            &[
                ("content-type", "text/html"),
                ("docker-distribution-api-version", "registry/2.0")
            ],
            "<html>"
        )));
        assert!(!looks_like_html_portal(&resp(
            &[("content-type", "application/json")],
            "{}"
        )));
    }

    #[test]
    fn credential_expiry_from_jwt_and_ecr() {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"none"}"#),
            e.encode(br#"{"exp":1600000000,"sub":"x"}"#)
        );
        assert_eq!(credential_expiry(&jwt), Some(1600000000));
        let ecr = base64::engine::general_purpose::STANDARD
            .encode(br#"{"payload":"x","datakey":"y","version":"2","type":"DATA_KEY","expiration":1700000000}"#);
        assert_eq!(credential_expiry(&ecr), Some(1700000000));
        assert_eq!(credential_expiry("hunter2"), None);
        assert_eq!(credential_expiry("a.b.c"), None);
    }
}
