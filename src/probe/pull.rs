//! The pull probe: would containerd resolve this image with this credential, from this node?
//!
//! What containerd's resolver does before it downloads anything (`docs/containerd-kubelet.md` §7, containerd
//! 2.x `core/remotes/docker/resolver.go` `Resolve`, `authorizer.go` `AddResponses`):
//!
//! * **R1 hosts**: the `hosts.toml` list, mirrors first, upstream last; a tag needs hosts with
//!   `pull` and `resolve`, a digest hosts with `pull`. Each mirror gets `?ns=<namespace>`.
//! * **R2 request**: `HEAD <host><path>/<repo>/manifests/<ref>` with containerd's `Accept`
//!   header ([`ACCEPT`]), no `/v2/` ping.
//! * **R3 budget**: at most [`MAX_ATTEMPTS`] HTTP requests per host, shared by auth and status
//!   retries. A transient transport error (a dropped connection, a timeout; not the probe's
//!   own deadline) is retried 50 ms later on the last host within the same budget, as
//!   containerd 2.4 `doWithTransportRetries` / `isTransientTransportErr` do ([`is_transient`]);
//!   any other transport error, or one on a mirror, ends the host.
//! * **R4 statuses**: 401 → authorizer; 405 on a HEAD → GET; 408/429 → retry at once;
//!   500/503/504 → retry on the last host when the previous answer had another status.
//! * **R5 authorizer**: Bearer before Basic. A Bearer challenge with `error=` drops the token;
//!   the same request failing twice with `error=` ends the host with "authorization failed".
//!   With a token already held, another 401 is retried with the same token until the budget is
//!   spent (Quay's way to say "no access"). Basic: no username or password → "no basic auth
//!   credentials"; otherwise the header is sent again on every 401 until the budget is spent.
//! * **R6 token**: scopes = `repository:<repo>:pull` ∪ the challenge's, sorted; the token request
//!   of [`super::token`] (POST then GET; anonymous GET without a secret).
//! * **R7 verdict**: 2xx with `Docker-Content-Digest` → success (never a GET that would count as
//!   a Docker Hub pull); 404 → `not_found` (priority 2); other ≥ 400 (priority 3); auth and
//!   transport errors (priority 1); a manifest over 4 MiB or schema1 (priority 4). After all
//!   hosts, the **first error of the highest priority** is containerd's verdict, and each
//!   host's own result is kept.

use http::{Method, StatusCode};
use secrecy::ExposeSecret;
use std::time::Instant;
use url::Url;

use super::challenge::Scheme;
use super::classify::{self, AuthScheme, Failure, Peer};
use super::credential::ProbeEnv;
use super::exchange::{
    challenge_error, challenges, deciding_exchange, exchange, falls_back_to_http, host_request,
    realm_tls, tls_for, unix_now, with_authorization,
};
use super::failure::Failed;
use super::outcome::{
    AuthMode, Exchange, HostVerdict, KeyRef, Note, Phase, ProbeResult, RateLimit,
};
use super::token;
use super::transport::{Response, Session};
use crate::hosts::{RegistryHost, Scheme as HostScheme};
use crate::secrets::Credential;

/// containerd's `Accept` header for manifest requests (`resolver.go` `NewResolver`).
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

/// HTTP requests per host at most (containerd 2.x `maxAttempts`).
pub const MAX_ATTEMPTS: usize = 5;

/// Largest manifest containerd accepts (`resolver.go`: `4 * 1048 * 1048` bytes).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1048 * 1048;

/// One credential attempt of an image probe.
#[derive(Debug, Clone)]
pub struct PullTarget {
    /// The image as written (`nginx`), for labels and output.
    pub image: String,
    /// containerd's hosts namespace (`docker.io`, `registry.example.com:5000`).
    pub namespace: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    /// Tag or digest.
    pub reference: String,
    /// Whether `reference` is a digest (then hosts need only `pull`).
    pub is_digest: bool,
    /// The hosts to try, mirrors first, upstream last.
    pub hosts: Vec<RegistryHost>,
    /// The secret whose credential is used, `None` for an anonymous attempt.
    pub secret: Option<String>,
    /// The keyring key that matched.
    pub key: Option<String>,
    /// The credential kubelet hands to containerd; `None` when no key matched.
    pub credential: Option<Credential>,
    /// Every key that matched the image, in kubelet's order (for the output).
    pub matched_keys: Vec<KeyRef>,
    /// kubelet credential providers that match the image and gave no credential (failed): an
    /// anonymous attempt refused is then `provider_failed`, not `no_matching_credential`.
    pub failed_providers: Vec<String>,
    /// containerd's own `registry.configs."HOST".auth` (`--containerd-config`): used for a host
    /// when kubelet passes no credential (`credential` is `None`), as containerd's CRI
    /// `credentials(host)` does (`crate::secrets::cri`). `(host[:port], credential)`.
    pub cri_auths: Vec<(String, Credential)>,
}

impl PullTarget {
    /// The credential containerd uses on `host`: kubelet's, else containerd's own for that
    /// exact `host[:port]` when kubelet passed none.
    pub fn credential_for(&self, host: &str) -> Option<&Credential> {
        self.credential.as_ref().or_else(|| {
            self.cri_auths
                .iter()
                .find(|(h, _)| h == host)
                .map(|(_, c)| c)
        })
    }

    /// Whether the credential used on `host` is containerd's own (kubelet passed none).
    pub fn uses_cri_auth(&self, host: &str) -> bool {
        self.credential.is_none() && self.credential_for(host).is_some()
    }
}

/// The authorizer state for one host, new for each attempt (containerd builds a new
/// authorizer per pull).
#[derive(Default)]
struct Authorizer {
    /// The header a handler would add, and how it was obtained.
    handler: Option<(http::HeaderValue, AuthScheme)>,
    /// A token was issued with a credential (the token service accepted it).
    token_issued: bool,
    /// `(method, url)` of the previous request that got a 401.
    last_401: Option<(Method, String)>,
}

impl Authorizer {
    /// The credential part of the header the handler sends (`Bearer <token>`, `Basic <b64>`):
    /// a secret for the evidence of the request that carries it.
    fn sent_credential(&self) -> Option<String> {
        let (h, _) = self.handler.as_ref()?;
        let (_, v) = h.to_str().ok()?.split_once(' ')?;
        Some(v.to_string())
    }
}

/// `(username, secret)` as containerd's `ParseAuth` derives them from kubelet's `AuthConfig`
/// (`docs/containerd-kubelet.md` §4): a username is required; without one the pull is anonymous.
fn containerd_credentials(c: Option<&Credential>) -> (String, String) {
    match c {
        Some(c) if !c.username.is_empty() => {
            (c.username.clone(), c.password.expose_secret().to_string())
        }
        _ => (String::new(), String::new()),
    }
}

/// kubelet's pull loop for one image (`kuberuntime_image.go` `PullImage`, `docs/containerd-kubelet.md` §3.7): each
/// attempt in order, stopping at the first success — or, with `audit_all`, every attempt.
/// Returns one result per attempt made; `key_verdicts` (why each key does or does not apply)
/// is attached to each.
pub async fn probe_image(
    env: &ProbeEnv,
    attempts: &[PullTarget],
    key_verdicts: &[crate::secrets::KeyVerdict],
    audit_all: bool,
) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for a in attempts {
        let mut r = probe_pull(env, a).await;
        r.key_verdicts = key_verdicts.to_vec();
        let ok = r.success;
        out.push(r);
        if ok && !audit_all {
            break;
        }
    }
    out
}

/// Whether kubelet's loop would pull the image: any attempt succeeded.
pub fn image_pullable(results: &[ProbeResult]) -> bool {
    results.iter().any(|r| r.success)
}

/// Runs one attempt (one credential, or anonymous) across the hosts and returns its result
/// with the per-host verdicts.
pub async fn probe_pull(env: &ProbeEnv, target: &PullTarget) -> ProbeResult {
    let started = Instant::now();
    let mut result = ProbeResult::new(target.namespace.clone(), target.secret.clone());
    result.image = Some(target.image.clone());
    result.timestamp = unix_now();
    result.matched_keys = target.matched_keys.clone();
    let cri = target
        .hosts
        .iter()
        .find(|h| target.uses_cri_auth(&h.host))
        .and_then(|h| target.credential_for(&h.host));
    if let Some(c) = target.credential.as_ref().or(cri) {
        if !c.username.is_empty() {
            result.username = Some(c.username.clone());
        }
    }
    let mut session = env.transport.session(started + env.timeout);
    let hosts: Vec<&RegistryHost> = target
        .hosts
        .iter()
        .filter(|h| h.capabilities.pull && (target.is_digest || h.capabilities.resolve))
        .collect();
    let mut best: Option<(u8, Failed, String, bool)> = None;
    let mut success = None;
    // containerd `Resolve`: a digest reference is tried at `/manifests/<digest>` on every host,
    // then at `/blobs/<digest>` when no error ranked above "not found" (legacy registries).
    let endpoints: &[&str] = if target.is_digest {
        &["manifests", "blobs"]
    } else {
        &["manifests"]
    };
    'paths: for endpoint in endpoints {
        if best.as_ref().is_some_and(|(p, _, _, _)| *p > 2) {
            break;
        }
        for (i, host) in hosts.iter().enumerate() {
            let last_host = i + 1 == hosts.len();
            let mut host_result = ProbeResult::new("", None);
            let outcome = resolve_on_host(
                env,
                target,
                host,
                endpoint,
                last_host,
                &mut session,
                &mut host_result,
            )
            .await;
            let first_index = result.exchanges.len();
            // Merge what this host recorded.
            for (p, s) in &host_result.phases {
                result.add_phase(*p, *s);
            }
            result.exchanges.append(&mut host_result.exchanges);
            result.network.append(&mut host_result.network);
            result.notes.append(&mut host_result.notes);
            if result.tls.is_none() {
                result.tls = host_result.tls.take();
            }
            if host_result.ratelimit.is_some() {
                result.ratelimit = host_result.ratelimit.take();
            }
            result.insecure_realm |= host_result.insecure_realm;
            let url = format!("{}://{}{}", host.scheme, host.host, host.path);
            match outcome {
                Ok(digest) => {
                    result.hosts.push(HostVerdict {
                        host: url,
                        mirror: host.is_mirror,
                        success: true,
                        reason: None,
                        detail: format!("resolved to {digest}"),
                    });
                    result.auth_mode = host_result.auth_mode.take();
                    success = Some((digest, host.host.clone()));
                    break 'paths;
                }
                Err((priority, failure)) => {
                    let given = target.credential_for(&host.host).is_some();
                    let reason = classify::attempt_reason_with_providers(
                        &failure,
                        given,
                        !target.failed_providers.is_empty(),
                    );
                    // The transport's words may quote a URL a hostile peer chose: redact them too.
                    let (user, password) =
                        containerd_credentials(target.credential_for(&host.host));
                    let detail = super::exchange::redactor(host, &user, &password).redact(
                        &describe(&failure, &host_result_last(&result), target, &host.host),
                    );
                    let failed =
                        failed_on_host(failure, &result.exchanges, first_index, host, target);
                    result.hosts.push(HostVerdict {
                        host: url,
                        mirror: host.is_mirror,
                        success: false,
                        reason: Some(reason),
                        detail: detail.clone(),
                    });
                    if result.auth_mode.is_none() {
                        result.auth_mode = host_result.auth_mode.take();
                    }
                    // containerd keeps the first error of the highest priority; a fatal one ends
                    // the resolve at once (`Resolve` returns it without trying another host).
                    if priority == FATAL {
                        best = Some((priority, failed, detail, given));
                        break 'paths;
                    }
                    if best.as_ref().is_none_or(|(p, _, _, _)| priority > *p) {
                        best = Some((priority, failed, detail, given));
                    }
                }
            }
        }
    }
    result.duration_seconds = started.elapsed().as_secs_f64();
    match (success, best) {
        (Some((digest, host)), _) => {
            result.success = true;
            result.digest = Some(digest.clone());
            result.detail = format!("{} resolves to {digest} on {host}", target.image);
        }
        (None, Some((_, failed, detail, given))) => {
            let reason = classify::attempt_reason_with_providers(
                &failed.failure,
                given,
                !target.failed_providers.is_empty(),
            );
            result.reason = Some(reason);
            result.class = Some(reason.class());
            result.detail = if reason == super::vocab::Reason::ProviderFailed {
                format!(
                    "credential provider {} gave kubelet no credential, so the pull is anonymous: {detail}",
                    target.failed_providers.join(", ")
                )
            } else {
                detail
            };
            result.failed = Some(failed);
        }
        (None, None) => {
            // containerd: "no resolve hosts: not found" / "<ref>: not found".
            let failure = Failure::NoResolveHosts;
            let reason = classify::attempt_reason_with_providers(
                &failure,
                target.credential.is_some(),
                !target.failed_providers.is_empty(),
            );
            result.reason = Some(reason);
            result.class = Some(reason.class());
            result.detail =
                "no host is configured to resolve this image (hosts.toml capabilities)".into();
            result.failed = Some(Failed::without_request(failure));
        }
    }
    result
}

fn host_result_last(result: &ProbeResult) -> Option<super::Exchange> {
    result.exchanges.last().cloned()
}

/// Where an attempt broke on one host: the step of the failing request (the token request
/// for a failure at the realm, the manifest request otherwise), the server (the realm's for a
/// token failure, else the host), and the exchange it rests on. The host's exchanges are
/// `exchanges[first_index..]`.
fn failed_on_host(
    failure: Failure,
    exchanges: &[Exchange],
    first_index: usize,
    host: &RegistryHost,
    target: &PullTarget,
) -> Failed {
    let step = if failure.peer() == Peer::Realm {
        Phase::Token
    } else {
        Phase::Manifest
    };
    let at = deciding_exchange(&exchanges[first_index..], step).map(|i| first_index + i);
    let server = match (step, at) {
        (Phase::Token, Some(i)) => Url::parse(&exchanges[i].url)
            .ok()
            .map(|u| super::exchange::authority(&u)),
        _ => None,
    };
    let (user, _) = containerd_credentials(target.credential_for(&host.host));
    Failed {
        credential_sent: !user.is_empty() && !matches!(failure, Failure::CredentialMissing(_)),
        failure,
        step: Some(step),
        host: server.unwrap_or_else(|| host.host.clone()),
        exchange: at,
    }
}

/// R2–R7 on one host. `Ok(digest)` on success; `Err((priority, failure))` otherwise.
async fn resolve_on_host(
    env: &ProbeEnv,
    target: &PullTarget,
    host: &RegistryHost,
    endpoint: &str,
    last_host: bool,
    session: &mut Session,
    result: &mut ProbeResult,
) -> Result<String, (u8, Failure)> {
    let transport_failure = |error| {
        (
            1u8,
            Failure::Transport {
                peer: Peer::Registry,
                error,
            },
        )
    };
    let tls = tls_for(host, &env.tls, result).map_err(|f| (1u8, f))?;
    let mut scheme = host.scheme;
    let (user, secret) = containerd_credentials(target.credential_for(&host.host));
    if target.uses_cri_auth(&host.host) {
        result
            .notes
            .push(Note::ContainerdConfigCredential(host.host.clone()));
    }
    let scope = format!("repository:{}:pull", target.repository);
    let redactor = super::exchange::redactor(host, &user, &secret);
    let mut method = Method::HEAD;
    let mut auth = Authorizer::default();
    let mut previous_status: Option<StatusCode> = None;
    let mut last: Option<Response> = None;

    for attempt in 0..MAX_ATTEMPTS {
        let url = manifest_url(host, scheme, endpoint, target)?;
        let mut req = host_request(host, method.clone(), url.clone(), tls.clone());
        if scheme == HostScheme::Https && host.http_fallback {
            req.tls_timeout = Some(session.fallback_tls_budget());
        }
        req.headers
            .insert(http::header::ACCEPT, http::HeaderValue::from_static(ACCEPT));
        let req = with_authorization(req, auth.handler.as_ref().map(|(h, _)| h.clone()));
        // The credential's forms, the hosts.toml header values, and the header value sent (a
        // bearer token) are secrets.
        let sent_credential = auth.sent_credential();
        let attempt_redactor = redactor.with_opt(sent_credential.as_deref());
        let sent = match exchange(
            session,
            result,
            Phase::Manifest,
            req.clone(),
            &attempt_redactor,
        )
        .await
        {
            Err(e)
                if scheme == HostScheme::Https
                    && host.http_fallback
                    && falls_back_to_http(&e, &host.host)
                    && !session.remaining().is_zero() =>
            {
                result.notes.push(Note::HttpFallback {
                    host: host.host.clone(),
                    error: e.clone(),
                });
                scheme = HostScheme::Http;
                let url = manifest_url(host, scheme, endpoint, target)?;
                let mut retry = req;
                retry.url = url;
                retry.tls = None;
                exchange(session, result, Phase::Manifest, retry, &attempt_redactor).await
            }
            other => other,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e)
                if last_host
                    && is_transient(&e)
                    && attempt + 1 < MAX_ATTEMPTS
                    && session.remaining() > TRANSPORT_RETRY_DELAY =>
            {
                tokio::time::sleep(TRANSPORT_RETRY_DELAY).await;
                continue;
            }
            Err(e) => return Err(transport_failure(e)),
        };
        if result.tls.is_none() {
            if let Some(info) = session.tls_info(&super::exchange::authority(&url)) {
                result.tls = Some(info.clone());
            }
        }
        if let Some(rl) = ratelimit(&resp) {
            result.ratelimit = Some(rl);
        }
        let status = resp.status;
        match status.as_u16() {
            401 => {
                // The request that was actually answered, as `authorizer.go` `sameRequest`
                // compares `responses[n-2].Request` with `responses[n-1].Request`: Go's
                // `resp.Request` is the last one sent, after an HTTP fallback (`httpFallback`
                // rewrites the scheme) and after redirects.
                let sent_method = session.last_method().cloned().unwrap_or(method.clone());
                let request_id = (sent_method, resp.url.to_string());
                let cs = challenges(&resp);
                let bearer = cs.iter().find(|c| c.scheme == Scheme::Bearer);
                let basic = cs.iter().find(|c| c.scheme == Scheme::Basic);
                if let Some(ch) = bearer {
                    if let Some(err) = ch.param("error") {
                        let same = auth.last_401.as_ref() == Some(&request_id);
                        if same && auth.handler.is_some() {
                            // The same request failed twice with an error: containerd's
                            // "server message: <error>: authorization failed".
                            return Err((
                                1,
                                Failure::ManifestStatus {
                                    status: 401,
                                    auth: Some(AuthScheme::Bearer),
                                    challenge_error: Some(err.to_string()),
                                    token_issued: auth.token_issued,
                                },
                            ));
                        }
                        auth.handler = None;
                    }
                    auth.last_401 = Some(request_id);
                    if auth.handler.is_none() {
                        let treq = token::token_request(
                            ch,
                            std::slice::from_ref(&scope),
                            &user,
                            &secret,
                            &resp.url,
                            result,
                        )
                        .map_err(|f| (1u8, f))?;
                        result.auth_mode = Some(if secret.is_empty() {
                            AuthMode::BearerAnonymous
                        } else {
                            AuthMode::Bearer
                        });
                        let tok = token::fetch(
                            session,
                            realm_tls(host, &env.tls, &tls),
                            host,
                            &treq,
                            &redactor,
                            result,
                        )
                        .await
                        .map_err(|f| (1u8, f))?;
                        let Some(h) = token::bearer_header(&tok.value) else {
                            return Err((
                                1,
                                Failure::TokenBody(
                                    "the token contains bytes not allowed in an HTTP header".into(),
                                ),
                            ));
                        };
                        auth.token_issued = !secret.is_empty();
                        auth.handler = Some((h, AuthScheme::Bearer));
                    }
                } else if basic.is_some() {
                    if user.is_empty() || secret.is_empty() {
                        // "authorization failed: no basic auth credentials".
                        return Err((1, Failure::CredentialMissing(AuthScheme::Basic)));
                    }
                    result.auth_mode = Some(AuthMode::Basic);
                    auth.handler = Some((token::basic_header(&user, &secret), AuthScheme::Basic));
                    auth.last_401 = Some(request_id);
                } else {
                    // "failed to find supported auth scheme": the 401 is the response.
                    last = Some(resp);
                    break;
                }
            }
            405 if method == Method::HEAD => method = Method::GET,
            408 | 429 => {}
            500 | 503 | 504 if last_host && previous_status != Some(status) => {}
            _ => {
                last = Some(resp);
                break;
            }
        }
        previous_status = Some(status);
        last = Some(resp);
    }
    let resp = last.expect("the loop runs at least once");
    if resp.status == StatusCode::FORBIDDEN && method == Method::HEAD {
        // containerd 2.x `resolver.go` `Resolve`: "A HEAD 403 carries no body, so issue a
        // follow-up GET to the same URL to surface the registry's error details"
        // (`pusher.go` `withGETErrorBody`; a GET answered otherwise is ignored). The GET's body
        // (capped at 64 KiB) is recorded as evidence; the verdict stays the HEAD's 403.
        let url = manifest_url(host, scheme, endpoint, target)?;
        let mut req = host_request(host, Method::GET, url, tls.clone());
        req.headers
            .insert(http::header::ACCEPT, http::HeaderValue::from_static(ACCEPT));
        let sent_credential = auth.sent_credential();
        let attempt_redactor = redactor.with_opt(sent_credential.as_deref());
        let req = with_authorization(req, auth.handler.as_ref().map(|(h, _)| h.clone()));
        let get = exchange(session, result, Phase::Manifest, req, &attempt_redactor).await;
        if matches!(auth.handler, Some((_, AuthScheme::Basic))) {
            let error_code = match get {
                Ok(g) if g.status == StatusCode::FORBIDDEN => {
                    super::evidence::registry_error(&g.body).0
                }
                _ => None,
            };
            return Err((
                3,
                Failure::BasicForbidden {
                    step: Phase::Manifest,
                    error_code,
                },
            ));
        }
    }
    if resp.status == StatusCode::FORBIDDEN && matches!(auth.handler, Some((_, AuthScheme::Basic)))
    {
        return Err((
            3,
            Failure::BasicForbidden {
                step: Phase::Manifest,
                error_code: super::evidence::registry_error(&resp.body).0,
            },
        ));
    }
    evaluate(&resp, &auth, target)
}

/// The pause before a transport retry (containerd 2.4 `doWithTransportRetries`: 50 ms).
pub const TRANSPORT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// containerd 2.4 `isTransientTransportErr` (`core/remotes/docker/resolver.go`): a
/// `net.Error` whose `Timeout()` is true (dial, DNS, TLS handshake and response-header
/// timeouts) or `io.EOF` / `io.ErrUnexpectedEOF` (the server closed the connection before
/// answering). The probe's own deadline is `context.DeadlineExceeded` there: not transient.
/// A body timeout happens after `do` returned, so it is not retried either.
pub fn is_transient(e: &super::transport::TransportError) -> bool {
    use super::failure::{ConnectFailure, DnsFailure, HttpFailure, TlsFailure};
    use super::transport::TransportError as T;
    match e {
        T::Dns { kind, .. } => matches!(kind, DnsFailure::Timeout),
        T::Connect { kind, .. } => matches!(kind, ConnectFailure::Timeout),
        T::Tls { kind, .. } => matches!(kind, TlsFailure::Timeout),
        T::Http { kind, .. } => matches!(kind, HttpFailure::HeaderTimeout | HttpFailure::Closed),
        T::Proxy { .. } | T::Deadline { .. } | T::InvalidUrl(_) | T::Redirect(_) => false,
    }
}

/// The priority of an error that ends containerd's `Resolve` at once, whatever the other hosts
/// would say: an unfollowed 3xx (`unexpectedResponseErr` returned from the host loop) and an
/// invalid `Docker-Content-Digest`.
const FATAL: u8 = u8::MAX;

/// go-digest `Digest.Validate` for the algorithms containerd registers (sha256, sha384,
/// sha512): `algorithm:encoded`, the encoded part lowercase hex of the algorithm's length.
pub fn valid_digest(d: &str) -> bool {
    let Some((algorithm, encoded)) = d.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    encoded.len() == len
        && encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// R7 for the final response of a host.
fn evaluate(
    resp: &Response,
    auth: &Authorizer,
    target: &PullTarget,
) -> Result<String, (u8, Failure)> {
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        let content_type = resp.header_str("content-type").unwrap_or_default();
        if is_schema1(content_type) {
            return Err((
                4,
                Failure::ManifestUnsupported(format!("schema1 manifest ({content_type})")),
            ));
        }
        if let Some(len) = resp
            .header_str("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > MAX_MANIFEST_BYTES {
                return Err((
                    4,
                    Failure::ManifestUnsupported(format!(
                        "manifest of {len} bytes, over containerd's 4 MiB limit"
                    )),
                ));
            }
        }
        // containerd `Resolve`: a digest header with a known size must validate, else the
        // resolve fails at once; without either, containerd GETs the manifest.
        let sized = resp.header_str("content-length").is_some();
        let header = resp
            .header_str("docker-content-digest")
            .filter(|d| !d.is_empty());
        // (A digest reference brings its own digest: the header is not read.)
        if let (Some(d), true, false) = (header, sized, target.is_digest) {
            if !valid_digest(d) {
                return Err((
                    FATAL,
                    Failure::ManifestDigestInvalid(super::evidence::excerpt(d.as_bytes())),
                ));
            }
        }
        let digest = header.filter(|d| valid_digest(d)).map(str::to_owned);
        return Ok(digest.unwrap_or_else(|| {
            // containerd would GET the manifest to learn its digest (a Docker Hub pull);
            // regprobe does not.
            format!(
                "(no Docker-Content-Digest; containerd would GET {})",
                target.reference
            )
        }));
    }
    let priority = match status {
        404 => 2,
        // containerd returns an unfollowed 3xx from `Resolve` at once.
        300..=399 => FATAL,
        _ => 3,
    };
    Err((
        priority,
        Failure::ManifestStatus {
            status,
            auth: auth.handler.as_ref().map(|(_, s)| *s),
            challenge_error: if status == 401 {
                challenge_error(resp)
            } else {
                None
            },
            token_issued: auth.token_issued,
        },
    ))
}

fn manifest_url(
    host: &RegistryHost,
    scheme: HostScheme,
    endpoint: &str,
    target: &PullTarget,
) -> Result<Url, (u8, Failure)> {
    let s = match scheme {
        HostScheme::Http => "http",
        HostScheme::Https => "https",
    };
    let mut url = Url::parse(&format!(
        "{s}://{}{}/{}/{endpoint}/{}",
        host.host,
        host.path.trim_end_matches('/'),
        target.repository,
        target.reference
    ))
    .map_err(|e| {
        (
            1u8,
            Failure::Transport {
                peer: Peer::Registry,
                error: super::transport::TransportError::InvalidUrl(format!("{}: {e}", host.host)),
            },
        )
    })?;
    if host.is_mirror {
        url.query_pairs_mut().append_pair("ns", &target.namespace);
    }
    Ok(url)
}

/// Docker schema1 manifests (`application/vnd.docker.distribution.manifest.v1+json` and its
/// signed `+prettyjws` form), which containerd 2.x no longer pulls.
///
/// `text/plain` counts too: containerd's `getManifestMediaType` (`resolver.go`) maps it to
/// schema1 ("the registry.access.redhat.com registry does not specify the content type"),
/// comparing the part before `;` exactly.
pub fn is_schema1(content_type: &str) -> bool {
    if content_type.split(';').next() == Some("text/plain") {
        return true;
    }
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+json")
        || media_type
            .eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+prettyjws")
}

/// Docker Hub's `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`.
pub fn ratelimit(resp: &Response) -> Option<RateLimit> {
    let num = |name: &str| -> Option<(u64, Option<u64>)> {
        let v = resp.header_str(name)?;
        let mut parts = v.split(';');
        let n = parts.next()?.trim().parse().ok()?;
        let w = parts
            .find_map(|p| p.trim().strip_prefix("w="))
            .and_then(|w| w.parse().ok());
        Some((n, w))
    };
    let (limit, window) = num("ratelimit-limit")?;
    let (remaining, _) = num("ratelimit-remaining")?;
    Some(RateLimit {
        limit,
        remaining,
        window_seconds: window,
    })
}

/// What happened on one host, in words, from the failure and the last exchange.
fn describe(
    f: &Failure,
    last: &Option<super::Exchange>,
    target: &PullTarget,
    host: &str,
) -> String {
    let who = match (&target.secret, &target.credential) {
        (Some(s), Some(c)) if !c.username.is_empty() => {
            format!("user `{}` of secret {s}", c.username)
        }
        (Some(s), _) => format!("secret {s} (no username: anonymous)"),
        _ => match target.credential_for(host) {
            Some(c) => format!(
                "containerd's own registry.configs credential for {host} (user `{}`; kubelet passed none)",
                c.username
            ),
            None => "no credential (no key matched: anonymous)".to_string(),
        },
    };
    let said = last
        .as_ref()
        .map(super::Exchange::summary)
        .unwrap_or_default();
    match f {
        Failure::ManifestStatus { status: 404, .. } => {
            format!("{}: not found on {host} ({said})", target.image)
        }
        Failure::ManifestStatus {
            status,
            challenge_error,
            token_issued,
            ..
        } => format!(
            "pulling {} with {who} on {host}: {status}{}{} ({said})",
            target.image,
            challenge_error
                .as_ref()
                .map(|e| format!(", error={e}"))
                .unwrap_or_default(),
            if *token_issued {
                ", although the token service issued a token"
            } else {
                ""
            },
        ),
        Failure::Transport { peer, error } => format!(
            "{}: {} {}: {error}",
            said,
            match peer {
                Peer::Registry => host.to_string(),
                Peer::Realm => "the token service".to_string(),
            },
            if super::credential::misbehaved(error) {
                "misbehaved"
            } else {
                "could not be reached"
            }
        ),
        Failure::CredentialNotForwarded { peer, status, how } => format!(
            "{} answered {status} after a redirect, but {how}; that answer says nothing about {who} ({said})",
            match peer {
                Peer::Registry => host.to_string(),
                Peer::Realm => "the token service".to_string(),
            }
        ),
        Failure::TokenStatus { status, .. } => {
            format!("the token service refused {who} with {status} ({said})")
        }
        Failure::CredentialMissing(_) => {
            format!("{host} demands Basic authentication and {who} has no username and password")
        }
        Failure::BasicForbidden { error_code, .. } => format!(
            "pulling {} with {who} on {host}: 403 to the Basic credential{} ({said})",
            target.image,
            error_code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ),
        other => format!("{}: {other:?} ({said})", target.image),
    }
}

#[cfg(test)]
mod tests;
