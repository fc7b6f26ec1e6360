//! What went wrong in a probe, as types: the transport's errors ([`TransportError`] and its
//! kinds), the typed [`Failure`] of a step, and [`Failed`], the failure with the step and the
//! host that produced it, which a [`crate::probe::ProbeResult`] carries to `report`.
//!
//! [`crate::probe::classify`] maps a [`Failure`] to a reason; `report` renders these facts.
//! Nothing here decides a reason or holds advice.

use std::fmt;

use super::vocab::Phase;

/// Largest response head hyper buffers (status line + headers), bytes.
pub const MAX_HEAD_BYTES: usize = 256 * 1024;

/// Why name resolution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no A/AAAA record.
    NoRecords,
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    ServerError(String),
    /// No answer in time.
    Timeout,
    /// No name server configured, or any other resolver failure.
    Other(String),
}

/// Why the TCP connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// `ECONNREFUSED`: nothing listens on that port.
    Refused,
    /// No answer within the dial timeout.
    Timeout,
    /// `EHOSTUNREACH` / `ENETUNREACH`.
    Unreachable,
    /// Another socket error (its `io::ErrorKind`, as text).
    Other(String),
}

/// Why the TLS handshake failed, from the typed `rustls::Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The chain does not lead to a trusted CA (unknown issuer, self-signed, bad signature).
    Untrusted(String),
    /// The certificate is not valid for the name contacted.
    HostnameMismatch(String),
    /// The certificate has expired or is not yet valid.
    Expired(String),
    /// The server answered the ClientHello in plain HTTP.
    PlainHttp,
    /// No handshake within the TLS timeout.
    Timeout,
    /// Any other failure: an alert from the server, protocol or cipher mismatch.
    Handshake(String),
}

/// Why the HTTP exchange failed after the connection was up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// No response headers in time.
    HeaderTimeout,
    /// Headers arrived but the body did not finish in time.
    BodyTimeout,
    /// The server closed the connection before a complete response.
    Closed,
    /// The response head exceeded [`MAX_HEAD_BYTES`] (or hyper's 100 header lines): not read
    /// further. Go's limit is 10 MiB; regprobe's is lower so that a hostile peer cannot make
    /// each probe hold megabytes.
    HeadTooLarge,
    /// The response was not valid HTTP/1.1 (a NUL or other control byte in the head, no
    /// status line, another protocol).
    Protocol(String),
}

/// A transport failure, typed by the step that failed. The probe's classification
/// ([`crate::probe::classify`]) maps each variant to a reason without looking at message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Resolving `host` failed.
    #[error("resolving {host}: {kind}")]
    Dns {
        /// The name looked up.
        host: String,
        /// What went wrong.
        kind: DnsFailure,
    },
    /// Connecting to `addr` failed.
    #[error("connecting to {addr}: {kind}")]
    Connect {
        /// `ip:port` of the last address tried.
        addr: String,
        /// What went wrong.
        kind: ConnectFailure,
    },
    /// The HTTP proxy from the environment failed: unreachable, or refused the `CONNECT`.
    #[error("proxy {proxy}: {detail}")]
    Proxy {
        /// The proxy's `host:port`.
        proxy: String,
        /// What went wrong (a status line or a socket error; never credentials).
        detail: String,
    },
    /// The TLS handshake with `host` failed.
    #[error("TLS with {host}: {kind}")]
    Tls {
        /// The server name.
        host: String,
        /// What went wrong.
        kind: TlsFailure,
    },
    /// The HTTP exchange failed.
    #[error("HTTP with {host}: {kind}")]
    Http {
        /// `host:port`.
        host: String,
        /// What went wrong.
        kind: HttpFailure,
    },
    /// The probe's overall deadline passed before this step could start.
    #[error("probe deadline reached before {phase}")]
    Deadline {
        /// The step that could not start.
        phase: Phase,
    },
    /// The URL cannot be requested (no host, unsupported scheme).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// Too many redirects, or a redirect without a usable `Location`.
    #[error("redirects: {0}")]
    Redirect(String),
}

impl TransportError {
    /// Whether the error ended the request before its HTTP exchange began (name resolution,
    /// the TCP connection, the proxy or the TLS handshake, or an unusable URL): the phase that
    /// would have sent it never ran, and no time is booked on it.
    pub fn before_http(&self) -> bool {
        matches!(self.phase(), Phase::Resolve | Phase::Connect | Phase::Tls)
            || matches!(self, TransportError::InvalidUrl(_))
    }

    /// The phase in which the error happened.
    pub fn phase(&self) -> Phase {
        match self {
            TransportError::Dns { .. } => Phase::Resolve,
            TransportError::Connect { .. } | TransportError::Proxy { .. } => Phase::Connect,
            TransportError::Tls { .. } => Phase::Tls,
            TransportError::Deadline { phase } => *phase,
            TransportError::Http { .. }
            | TransportError::InvalidUrl(_)
            | TransportError::Redirect(_) => Phase::Challenge,
        }
    }
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsFailure::NxDomain => f.write_str("no such host (NXDOMAIN)"),
            DnsFailure::NoRecords => f.write_str("the name has no A/AAAA record"),
            DnsFailure::ServerError(c) => write!(f, "the DNS server answered {c}"),
            DnsFailure::Timeout => f.write_str("the DNS server did not answer in time"),
            DnsFailure::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::Timeout => f.write_str("connect timed out"),
            ConnectFailure::Unreachable => f.write_str("no route to host"),
            ConnectFailure::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Untrusted(s) => write!(f, "certificate signed by unknown authority ({s})"),
            TlsFailure::HostnameMismatch(s) => {
                write!(f, "certificate is not valid for this name ({s})")
            }
            TlsFailure::Expired(s) => {
                write!(f, "certificate has expired or is not yet valid ({s})")
            }
            TlsFailure::PlainHttp => f.write_str("server gave HTTP response to HTTPS client"),
            TlsFailure::Timeout => f.write_str("TLS handshake timeout"),
            TlsFailure::Handshake(s) => write!(f, "handshake failed: {s}"),
        }
    }
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpFailure::HeaderTimeout => f.write_str("timeout awaiting response headers"),
            HttpFailure::BodyTimeout => f.write_str("timeout reading the response body"),
            HttpFailure::Closed => f.write_str("connection closed before a complete response"),
            HttpFailure::HeadTooLarge => write!(
                f,
                "response headers larger than {} KiB (or over 100 lines): not read",
                MAX_HEAD_BYTES / 1024
            ),
            HttpFailure::Protocol(s) => write!(f, "malformed response: {s}"),
        }
    }
}

/// Which server a step talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The registry (`/v2/`, manifests).
    Registry,
    /// The token service named by the challenge's `realm`.
    Realm,
}

/// How the registry asked for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic.
    Basic,
    /// Bearer token from the realm.
    Bearer,
}

/// A typed account of what went wrong in a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The secret file did not parse (the error text is already free of secret content).
    SecretInvalid(String),
    /// A network step failed, at the registry or at the realm.
    Transport {
        /// Which server.
        peer: Peer,
        /// The typed error.
        error: TransportError,
    },
    /// `/v2/` answered 200 with an HTML page and no `Docker-Distribution-API-Version` header.
    HtmlPage,
    /// The anonymous `/v2/` answered a status that is neither 200 nor 401.
    ChallengeStatus(u16),
    /// 401 without a Basic or Bearer challenge (none, Digest, Negotiate).
    NoSupportedChallenge,
    /// Bearer challenge without a usable `realm` (missing, not an http(s) URL).
    BadRealm(String),
    /// The registry demands authentication and the entry has no username or no password.
    CredentialMissing(AuthScheme),
    /// The token request's final answer was an HTTP error status.
    TokenStatus {
        /// Status of the final token request (the GET when the POST fell back).
        status: u16,
        /// Whether a credential was sent (an anonymous token refused is not a bad password).
        with_credential: bool,
    },
    /// The token service answered 2xx but the body was not usable JSON or held no token.
    TokenBody(String),
    /// The authenticated `/v2/` (or manifest request) was refused.
    VerifyStatus {
        /// How we authenticated.
        scheme: AuthScheme,
        /// Status of the last answer.
        status: u16,
        /// The `error` parameter of the last challenge (`invalid_token`, `insufficient_scope`).
        challenge_error: Option<String>,
    },
    /// The registry answered a status that is a registry fault (5xx, unexpected 4xx).
    RegistryStatus(u16),
    /// The manifest request's final answer (image probes), after containerd's retries.
    ManifestStatus {
        /// Status of the last answer.
        status: u16,
        /// How the last request was authenticated, if at all.
        auth: Option<AuthScheme>,
        /// The `error` parameter of the last challenge.
        challenge_error: Option<String>,
        /// Whether the token service issued a token for the credential (it accepted it).
        token_issued: bool,
    },
    /// A schema1 manifest or one over 4 MiB, which containerd 2.x rejects.
    ManifestUnsupported(String),
    /// The credential was rejected and its own expiry (JWT `exp`, ECR `expiration`) is past.
    CredentialExpired {
        /// Unix seconds of the expiry.
        expired_at: i64,
    },
    /// No host of the hosts.toml list may resolve the image (capabilities).
    NoResolveHosts,
    /// A redirect took the request where its credential may not follow (another host, or a
    /// POST turned into a GET without its form), so the credential was not sent, and the
    /// answer was 401 or 403: it says nothing about the credential.
    CredentialNotForwarded {
        /// Which server redirected.
        peer: Peer,
        /// The final status.
        status: u16,
        /// What the redirect did, naming the host (from the transport).
        how: String,
    },
    /// A credential-provider plugin named by kubelet's config is absent from the bin dir or not
    /// executable (`crate::providers::ExecError::is_missing`); the sentence names the path.
    ProviderMissing(String),
    /// A credential-provider plugin ran and gave no credentials: non-zero exit, timeout, or an
    /// answer kubelet rejects. The sentence holds no credential (stderr capped and redacted).
    ProviderFailed(String),
    /// A 2xx manifest answer whose `Docker-Content-Digest` is not a valid digest (go-digest
    /// `Digest.Validate`): containerd's `"…" in header not a valid digest`, which ends the
    /// resolve at once (no further host). Carries the header value, cut to an excerpt.
    ManifestDigestInvalid(String),
    /// A request with the Basic credential answered 403, at the `/v2/` login step (`Verify`) or
    /// at the manifest (`Manifest`), with the registry's error `code` when its body had one
    /// (for a manifest HEAD, from the GET containerd sends for the body). One rule for both
    /// steps ([`super::classify::reason`]): the registry's code says what it meant.
    BasicForbidden {
        /// `Verify` or `Manifest`.
        step: super::vocab::Phase,
        /// The registry error envelope's first `code` (`DENIED`, `UNAUTHORIZED`, …).
        error_code: Option<String>,
    },
}

/// The network layer a transport failure happened in, for the walk's DNS/TCP/TLS steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Name resolution.
    Dns,
    /// TCP connect.
    Tcp,
    /// The HTTPS proxy's `CONNECT`.
    Proxy,
    /// The TLS handshake (a handshake timeout and a plain-HTTP answer included).
    Tls,
    /// The HTTP exchange on an established connection (timeouts, a closed connection,
    /// something that is not HTTP).
    Http,
}

impl TransportError {
    /// The layer this error happened in; `None` for errors that are not a layer's (an invalid
    /// URL, a redirect loop).
    pub fn layer(&self) -> Option<Layer> {
        match self {
            TransportError::Dns { .. } => Some(Layer::Dns),
            TransportError::Connect { .. } => Some(Layer::Tcp),
            TransportError::Proxy { .. } => Some(Layer::Proxy),
            TransportError::Tls { .. } => Some(Layer::Tls),
            TransportError::Http { .. } => Some(Layer::Http),
            TransportError::Deadline { phase } => Some(match phase {
                Phase::Resolve => Layer::Dns,
                Phase::Connect => Layer::Tcp,
                Phase::Tls => Layer::Tls,
                _ => Layer::Http,
            }),
            TransportError::InvalidUrl(_) | TransportError::Redirect(_) => None,
        }
    }

    /// What went wrong without the peer's name (`no such host (NXDOMAIN)`), for sentences
    /// that name the peer themselves.
    pub fn cause(&self) -> String {
        match self {
            TransportError::Dns { kind, .. } => kind.to_string(),
            TransportError::Connect { kind, .. } => kind.to_string(),
            TransportError::Proxy { proxy, detail } => format!("proxy {proxy}: {detail}"),
            TransportError::Tls { kind, .. } => kind.to_string(),
            TransportError::Http { kind, .. } => kind.to_string(),
            other => other.to_string(),
        }
    }

    /// The name the error is about: the host looked up, the `ip:port` connected to, the TLS
    /// server name, the HTTP `host:port`; `None` for errors about no host.
    pub fn subject(&self) -> Option<&str> {
        match self {
            TransportError::Dns { host, .. }
            | TransportError::Tls { host, .. }
            | TransportError::Http { host, .. } => Some(host),
            TransportError::Connect { addr, .. } => Some(addr),
            TransportError::Proxy { proxy, .. } => Some(proxy),
            _ => None,
        }
    }
}

impl Failure {
    /// The transport error behind this failure, if it is one.
    pub fn transport(&self) -> Option<&TransportError> {
        match self {
            Failure::Transport { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Which server the failure is about: the realm for a transport failure there, a
    /// redirected token request or a token answer; the registry otherwise.
    pub fn peer(&self) -> Peer {
        match self {
            Failure::Transport { peer, .. } | Failure::CredentialNotForwarded { peer, .. } => *peer,
            Failure::TokenStatus { .. } | Failure::TokenBody(_) => Peer::Realm,
            _ => Peer::Registry,
        }
    }
}

/// A failure with the step and the server that produced it: what a
/// [`crate::probe::ProbeResult`] carries to `report`, so that no renderer has to guess the
/// failing step from the exchanges or from words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// What went wrong.
    pub failure: Failure,
    /// The request step it broke in: `Challenge`, `Token`, `Verify` or `Manifest`; `None` when
    /// no request was involved (a secret that does not parse).
    pub step: Option<Phase>,
    /// `host[:port]` of the server that produced it (for a token failure, the realm's);
    /// empty when no server was involved.
    pub host: String,
    /// Whether the failing request carried a credential (Basic, a token issued for a
    /// credential, or the token request's password).
    pub credential_sent: bool,
    /// Index into the result's `exchanges` of the last exchange at that server, the answer
    /// the verdict rests on; `None` when no request was sent there.
    pub exchange: Option<usize>,
}

impl Failed {
    /// A failure that involved no request and no server (a secret that does not parse, no
    /// host that may resolve the image).
    pub fn without_request(failure: Failure) -> Failed {
        Failed {
            failure,
            step: None,
            host: String::new(),
            credential_sent: false,
            exchange: None,
        }
    }
}
