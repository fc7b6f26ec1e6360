//! The [`ProbeResult`] every prober returns: typed facts (the failure and where it happened,
//! notes, the auth mode, per-host verdicts) and the evidence of each exchange. `report` renders
//! it; nothing here is advice.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use super::failure::{Failed, TlsFailure, TransportError};
pub use super::vocab::{Class, Phase, Reason};
use crate::secrets::KeyVerdict;

/// How the registry let the probe in: the JSON `auth_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication was asked.
    Anonymous,
    /// HTTP Basic with the credential.
    Basic,
    /// A bearer token issued for the credential.
    Bearer,
    /// A bearer token issued anonymously (no credential to send).
    BearerAnonymous,
}

impl AuthMode {
    /// The JSON value, e.g. `"bearer_anonymous"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Anonymous => "anonymous",
            AuthMode::Basic => "basic",
            AuthMode::Bearer => "bearer",
            AuthMode::BearerAnonymous => "bearer_anonymous",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fact about a probe that is not its verdict. Serialised (JSON `notes`) as its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Which trust anchors the TLS configuration of a host uses (`node bundle`, CA files,
    /// `skip_verify`).
    TlsTrust(String),
    /// HTTPS to `host` failed with `error`, and the request was retried over plain HTTP as
    /// containerd's HTTP fallback does (`docker/resolver.go` `HTTPFallback`).
    HttpFallback {
        /// The host.
        host: String,
        /// The HTTPS attempt's error.
        error: TransportError,
    },
    /// `/v2/` answered without asking for authentication.
    OpenRegistry,
    /// The token service gave the token this lifetime, seconds.
    TokenExpiresIn(i64),
    /// A redirect took a request where its credential may not follow, so it was not sent:
    /// the transport's account, redacted.
    CredentialNotForwarded(String),
    /// The HTTPS registry's token realm (this URL) is plain HTTP: the password travels
    /// unencrypted.
    InsecureRealm(String),
    /// kubelet passed no credential, and containerd used its own
    /// `registry.configs."HOST".auth` for this host (`--containerd-config`).
    ContainerdConfigCredential(String),
}

impl Note {
    /// For [`Note::HttpFallback`]: whether the server answered the TLS handshake in plain
    /// HTTP (rather than failing or timing out).
    pub fn is_plain_http_reply(&self) -> bool {
        matches!(
            self,
            Note::HttpFallback {
                error: TransportError::Tls {
                    kind: TlsFailure::PlainHttp,
                    ..
                },
                ..
            }
        )
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::TlsTrust(source) => write!(f, "TLS trust: {source}"),
            Note::HttpFallback { host, error } => write!(
                f,
                "HTTPS to {host} failed ({error}); retried over plain HTTP as containerd's HTTP fallback does"
            ),
            Note::OpenRegistry => f.write_str(
                "the registry answers /v2/ without authentication; the credential was not needed at /v2/ (repositories may still require it)",
            ),
            Note::TokenExpiresIn(s) => write!(f, "token expires in {s}s"),
            Note::CredentialNotForwarded(how) => f.write_str(how),
            Note::InsecureRealm(realm) => write!(
                f,
                "the token realm {realm} is plain HTTP while the registry is HTTPS: the password travels unencrypted"
            ),
            Note::ContainerdConfigCredential(host) => write!(
                f,
                "kubelet passed no credential; containerd used its own registry.configs.\"{host}\".auth (containerd config)"
            ),
        }
    }
}

impl Serialize for Note {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
/// Serialised as the `PROBE` object of `docs/metrics.md` (`check --output json`, `/status`).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// Normalised registry key (`docs/metrics.md`, Metrics: labels); `""` when the secret did not parse.
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
    pub auth_mode: Option<AuthMode>,
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
    pub notes: Vec<Note>,
    /// Image probes: every key that matched the image, in kubelet's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_keys: Vec<KeyRef>,
    /// Image probes: every keyring key with why it does or does not apply to the image.
    #[serde(serialize_with = "as_sentences", skip_serializing_if = "Vec::is_empty")]
    pub key_verdicts: Vec<KeyVerdict>,
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
    /// The failure with its step and server, on failure (not serialised: `reason`, `class`
    /// and `detail` are its JSON form).
    #[serde(skip)]
    pub failed: Option<Failed>,
}

/// Serialises each key verdict as its sentence (JSON `key_verdicts`: strings).
fn as_sentences<S: serde::Serializer>(v: &[KeyVerdict], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
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
            failed: None,
        }
    }

    /// Adds `seconds` to `phase` (a phase that runs twice, like `connect` for the registry and
    /// then the realm, accumulates).
    pub fn add_phase(&mut self, phase: Phase, seconds: f64) {
        *self.phases.entry(phase).or_insert(0.0) += seconds;
    }
}
