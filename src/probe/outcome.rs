//! The closed vocabulary of a probe's result: [`Phase`], [`Reason`], [`Class`], and the
//! [`ProbeResult`] every prober returns.
//!
//! This module owns the *names* (they are the metrics and JSON contract of
//! `shared/spec/metrics.md`, section "Reasons and classes"); it does not decide which reason a
//! failure gets. That decision lives in one place, [`crate::probe::classify`].

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A timed step of a probe. Values are the `phase` label of
/// `regprobe_phase_duration_seconds` and the keys of the JSON `phases` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// DNS resolution of the registry (or realm) host name.
    Resolve,
    /// TCP connect (and proxy `CONNECT`, when a proxy is used).
    Connect,
    /// TLS handshake.
    Tls,
    /// The anonymous `GET /v2/` that yields the `WWW-Authenticate` challenge.
    Challenge,
    /// The bearer token request to the realm (POST and, on fallback, GET).
    Token,
    /// The authenticated `GET /v2/` (Basic or Bearer).
    Verify,
    /// The manifest `HEAD` of an image probe.
    Manifest,
}

impl Phase {
    /// Every phase, in the order a probe runs them.
    pub const ALL: [Phase; 7] = [
        Phase::Resolve,
        Phase::Connect,
        Phase::Tls,
        Phase::Challenge,
        Phase::Token,
        Phase::Verify,
        Phase::Manifest,
    ];

    /// The label value, e.g. `"resolve"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Challenge => "challenge",
            Phase::Token => "token",
            Phase::Verify => "verify",
            Phase::Manifest => "manifest",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who has to act: the `class` label. See `metrics.md`, "Reasons and classes".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The credential itself is wrong, expired or missing: fix the secret.
    Credential,
    /// The credential works but may not pull this repository, or the content is missing.
    Permission,
    /// The node cannot reach the registry or its token service (DNS, TCP, proxy, TLS).
    Network,
    /// The registry or its token service misbehaves (5xx, rate limit, not a registry).
    Registry,
    /// The input is unusable: a malformed secret, or no key matches an image.
    Config,
}

impl Class {
    /// The label value, e.g. `"credential"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Credential => "credential",
            Class::Permission => "permission",
            Class::Network => "network",
            Class::Registry => "registry",
            Class::Config => "config",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe failed: the closed set of `metrics.md`. Each reason belongs to exactly one
/// [`Class`] ([`Reason::class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // credential
    /// The registry or its token service rejected the credential (401 on the final token
    /// request, or Basic answered 401 again).
    Unauthorized,
    /// The token service answered 403 to the credential.
    TokenForbidden,
    /// The registry demands authentication and the entry has no usable username/password.
    CredentialMissing,
    /// The credential's expiry is known and has passed.
    CredentialExpired,
    // permission
    /// Credential accepted, pull refused (401 `insufficient_scope`, 403 `DENIED`).
    PullDenied,
    /// 404 on the manifest: repository or tag missing.
    NotFound,
    // network
    /// The host name did not resolve (NXDOMAIN, no records, SERVFAIL, resolver timeout).
    Dns,
    /// TCP connection refused.
    ConnectRefused,
    /// TCP connect did not complete in time.
    ConnectTimeout,
    /// No route to host / network unreachable.
    Unreachable,
    /// Connected, but the peer did not answer within the budget (or closed mid-response).
    Timeout,
    /// The HTTPS proxy refused or failed the `CONNECT`.
    Proxy,
    /// The certificate chain does not lead to a trusted CA.
    TlsUntrusted,
    /// The certificate is not valid for the host name.
    TlsHostnameMismatch,
    /// The certificate has expired or is not yet valid.
    TlsExpired,
    /// Any other TLS failure (alert, protocol version, client certificate required).
    TlsHandshake,
    // registry
    /// `/v2/` answered neither 200 nor 401, or 200 with an HTML page: not a registry.
    NotARegistry,
    /// HTTPS expected, the server answered in plain HTTP.
    PlainHttp,
    /// 5xx or another unexpected status from the registry.
    RegistryError,
    /// The token service answered 5xx or an unexpected status, non-JSON, or no token.
    TokenEndpoint,
    /// The registry refused a token its own realm issued (`invalid_token` twice).
    TokenRejected,
    /// 429 from the registry or the token service.
    RateLimited,
    /// 401 without a Basic or Bearer challenge, or Bearer without a usable realm.
    ChallengeUnsupported,
    /// The manifest is schema1 or larger than 4 MiB.
    ManifestUnsupported,
    // config
    /// The secret file does not parse (JSON, `auths`, `auth` base64 or `:`).
    SecretInvalid,
    /// An image probe found no key that kubelet would match, and anonymous access was refused.
    NoMatchingCredential,
}

impl Reason {
    /// Every reason, in contract order.
    pub const ALL: [Reason; 26] = [
        Reason::Unauthorized,
        Reason::TokenForbidden,
        Reason::CredentialMissing,
        Reason::CredentialExpired,
        Reason::PullDenied,
        Reason::NotFound,
        Reason::Dns,
        Reason::ConnectRefused,
        Reason::ConnectTimeout,
        Reason::Unreachable,
        Reason::Timeout,
        Reason::Proxy,
        Reason::TlsUntrusted,
        Reason::TlsHostnameMismatch,
        Reason::TlsExpired,
        Reason::TlsHandshake,
        Reason::NotARegistry,
        Reason::PlainHttp,
        Reason::RegistryError,
        Reason::TokenEndpoint,
        Reason::TokenRejected,
        Reason::RateLimited,
        Reason::ChallengeUnsupported,
        Reason::ManifestUnsupported,
        Reason::SecretInvalid,
        Reason::NoMatchingCredential,
    ];

    /// The class this reason belongs to (`metrics.md` table).
    pub fn class(self) -> Class {
        use Reason::*;
        match self {
            Unauthorized | TokenForbidden | CredentialMissing | CredentialExpired => {
                Class::Credential
            }
            PullDenied | NotFound => Class::Permission,
            Dns | ConnectRefused | ConnectTimeout | Unreachable | Timeout | Proxy
            | TlsUntrusted | TlsHostnameMismatch | TlsExpired | TlsHandshake => Class::Network,
            NotARegistry | PlainHttp | RegistryError | TokenEndpoint | TokenRejected
            | RateLimited | ChallengeUnsupported | ManifestUnsupported => Class::Registry,
            SecretInvalid | NoMatchingCredential => Class::Config,
        }
    }

    /// The label value, e.g. `"tls_untrusted"`.
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            Unauthorized => "unauthorized",
            TokenForbidden => "token_forbidden",
            CredentialMissing => "credential_missing",
            CredentialExpired => "credential_expired",
            PullDenied => "pull_denied",
            NotFound => "not_found",
            Dns => "dns",
            ConnectRefused => "connect_refused",
            ConnectTimeout => "connect_timeout",
            Unreachable => "unreachable",
            Timeout => "timeout",
            Proxy => "proxy",
            TlsUntrusted => "tls_untrusted",
            TlsHostnameMismatch => "tls_hostname_mismatch",
            TlsExpired => "tls_expired",
            TlsHandshake => "tls_handshake",
            NotARegistry => "not_a_registry",
            PlainHttp => "plain_http",
            RegistryError => "registry_error",
            TokenEndpoint => "token_endpoint",
            TokenRejected => "token_rejected",
            RateLimited => "rate_limited",
            ChallengeUnsupported => "challenge_unsupported",
            ManifestUnsupported => "manifest_unsupported",
            SecretInvalid => "secret_invalid",
            NoMatchingCredential => "no_matching_credential",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP exchange of a probe, kept as evidence for the diagnosis. Never holds a credential,
/// token or `Authorization` value: only what the server said and which request it answered.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Exchange {
    /// The step this exchange belongs to (`challenge`, `token`, `verify`, `manifest`).
    pub phase: Option<Phase>,
    /// `GET`, `POST` or `HEAD`.
    pub method: String,
    /// The URL without credentials (the token GET's query holds only `service` and `scope`).
    pub url: String,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The `WWW-Authenticate` header(s), verbatim (servers put no secrets there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// First registry error code of the body (`UNAUTHORIZED`, `DENIED`, ...), if it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The registry's error message, or a short excerpt of a non-JSON body (cut to 200 chars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Response headers (`check -v`), at most [`MAX_RECORDED_HEADERS`], values cut to an
    /// excerpt; `WWW-Authenticate` is in `challenge`, `Date` is left out, and any header that
    /// may carry a credential (cookies, `*auth*`, `*token*`, `*secret*`, `*key*`) shows
    /// `<redacted>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
}

impl Exchange {
    /// One line: `METHOD URL → STATUS[ CODE][: MESSAGE]` (`no response` when none came).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} → {}",
            self.method,
            self.url,
            self.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no response".into())
        );
        if let Some(c) = &self.error_code {
            s.push(' ');
            s.push_str(c);
        }
        if let Some(m) = &self.error_message {
            s.push_str(": ");
            s.push_str(m);
        }
        s
    }
}

/// Response headers kept per exchange at most.
pub const MAX_RECORDED_HEADERS: usize = 24;

/// What the network layer did for one host: the addresses DNS gave and the one connected to.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NetworkStep {
    /// The host name looked up (or the IP literal).
    pub host: String,
    /// Where the addresses came from: `dns`, `--resolve`, or `literal`.
    pub source: String,
    /// Addresses returned, in order.
    pub addresses: Vec<String>,
    /// `ip:port` the TCP connection was made to (via the proxy, the proxy's), if it was made.
    pub connected: Option<String>,
}

/// TLS facts about the registry's certificate chain, for the expiry metric and `check` output.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TlsInfo {
    /// Subject of the leaf certificate (RFC 4514 text).
    pub subject: String,
    /// Issuer of the leaf certificate.
    pub issuer: String,
    /// `notAfter` of the leaf, Unix seconds.
    pub leaf_not_after: i64,
    /// Earliest `notAfter` in the presented chain, Unix seconds.
    pub chain_earliest_not_after: i64,
    /// Which trust anchors verified it: `skip_verify`, or the CA files used.
    pub verified_by: String,
}

/// A keyring key that matched an image, with the secret it came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyRef {
    /// Secret id.
    pub secret: String,
    /// kubelet's normalised key (`registry.example.com/team`).
    pub key: String,
}

/// One host's verdict in an image probe (a mirror or the upstream).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostVerdict {
    /// `scheme://host/path` of the host.
    pub host: String,
    /// Whether it is a mirror (not the namespace's own registry).
    pub mirror: bool,
    /// Whether the manifest resolved there.
    pub success: bool,
    /// Why not.
    pub reason: Option<Reason>,
    /// What happened there.
    pub detail: String,
}

/// Docker Hub's pull allowance, from `ratelimit-limit` / `ratelimit-remaining`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RateLimit {
    /// Pulls allowed per window.
    pub limit: u64,
    /// Pulls left in the window.
    pub remaining: u64,
    /// Window length in seconds (`;w=`), when given.
    pub window_seconds: Option<u64>,
}

/// The outcome of one probe: a credential probe (`image == None`) or an image probe.
/// Serialised as the `PROBE` object of `metrics.md` (`check --output json`, `/status`).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// Normalised registry key (`metrics.md`, Metrics: labels); `""` when the secret did not parse.
    pub registry: String,
    /// Secret id, or `None` for an anonymous image probe.
    pub secret: Option<String>,
    /// Image reference of an image probe.
    pub image: Option<String>,
    /// Whether the handshake succeeded.
    pub success: bool,
    /// Why it failed; `None` on success.
    pub reason: Option<Reason>,
    /// The class of `reason`.
    pub class: Option<Class>,
    /// What happened, in an SRE's words. Never contains a secret.
    pub detail: String,
    /// What to do about it.
    pub hint: String,
    /// Seconds spent in each phase that ran (summed when a phase ran more than once).
    pub phases: BTreeMap<Phase, f64>,
    /// Wall time of the whole probe, seconds.
    pub duration_seconds: f64,
    /// Unix time the probe started, seconds.
    pub timestamp: f64,
    /// The URL the probe started from (`https://host/v2/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How the registry let us in: `anonymous`, `basic`, `bearer`, `bearer_anonymous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// The user name the probe authenticated as (user names are not secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Every HTTP exchange, in order.
    pub exchanges: Vec<Exchange>,
    /// Name resolution and TCP connections, per host contacted (registry, realm).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkStep>,
    /// TLS facts of the registry connection, when TLS was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// Notes that are not failures (open registry, realm over plain HTTP, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Image probes: every key that matched the image, in kubelet's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_keys: Vec<KeyRef>,
    /// Image probes: every keyring key with why it does or does not apply to the image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_verdicts: Vec<String>,
    /// Image probes: each host tried (mirrors first, upstream last) and its verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostVerdict>,
    /// Image probes: the manifest digest the HEAD returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Seconds the registry or token service asked to wait (`Retry-After` of a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Docker Hub's rate-limit headers, when the registry sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimit>,
    /// The registry is HTTPS but its Bearer challenge names a plain-`http://` token realm, so
    /// the password (token POST form, or Basic on the GET) travels unencrypted. Set whatever
    /// the outcome; the metric `regprobe_insecure_token_realm`. Serialised only when `true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_realm: bool,
}

impl ProbeResult {
    /// An empty result for `(registry, secret)`, not yet run.
    pub fn new(registry: impl Into<String>, secret: Option<String>) -> Self {
        ProbeResult {
            registry: registry.into(),
            secret,
            image: None,
            success: false,
            reason: None,
            class: None,
            detail: String::new(),
            hint: String::new(),
            phases: BTreeMap::new(),
            duration_seconds: 0.0,
            timestamp: 0.0,
            endpoint: None,
            auth_mode: None,
            username: None,
            exchanges: Vec::new(),
            network: Vec::new(),
            tls: None,
            notes: Vec::new(),
            matched_keys: Vec::new(),
            key_verdicts: Vec::new(),
            hosts: Vec::new(),
            digest: None,
            retry_after_seconds: None,
            ratelimit: None,
            insecure_realm: false,
        }
    }

    /// Adds `seconds` to `phase` (a phase that runs twice, like `connect` for the registry and
    /// then the realm, accumulates).
    pub fn add_phase(&mut self, phase: Phase, seconds: f64) {
        *self.phases.entry(phase).or_insert(0.0) += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_label_and_a_class() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate label {r}");
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(seen.len(), 26);
    }

    #[test]
    fn classes_follow_the_contract() {
        assert_eq!(Reason::Unauthorized.class(), Class::Credential);
        assert_eq!(Reason::TokenForbidden.class(), Class::Credential);
        assert_eq!(Reason::PullDenied.class(), Class::Permission);
        assert_eq!(Reason::TlsExpired.class(), Class::Network);
        assert_eq!(Reason::Proxy.class(), Class::Network);
        assert_eq!(Reason::PlainHttp.class(), Class::Registry);
        assert_eq!(Reason::TokenEndpoint.class(), Class::Registry);
        assert_eq!(Reason::SecretInvalid.class(), Class::Config);
        assert_eq!(Reason::NoMatchingCredential.class(), Class::Config);
    }
}
