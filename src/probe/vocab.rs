//! The closed vocabulary of every probe: [`Phase`], [`Reason`], [`Class`].
//!
//! This module owns the *names*: they are the metrics and JSON contract (`docs/metrics.md`,
//! "Reasons and classes"). It does not decide which reason a failure gets; that decision lives
//! in one place, [`crate::probe::classify`]. It depends on nothing else in the crate.

use serde::Serialize;
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

/// Who has to act: the `class` label. See `docs/metrics.md`, "Reasons and classes".
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

/// Why a probe failed: the closed set of `docs/metrics.md`. Each reason belongs to exactly one
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
    /// A credential-provider plugin of kubelet's config is absent from the bin dir or not
    /// executable (class `config`).
    ProviderMissing,
    /// A credential-provider plugin exited non-zero, timed out, or answered what kubelet
    /// rejects (class `credential`).
    ProviderFailed,
    /// The probe itself failed (a regprobe bug: the probe task panicked); its verdict is unknown.
    /// Class `config`: the fault is in this node's prober, not the credential, the network or the
    /// registry, and it must never read as success ([`crate::failclosed`]).
    InternalError,
}

impl Reason {
    /// Every reason, in contract order.
    pub const ALL: [Reason; 29] = [
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
        Reason::ProviderMissing,
        Reason::ProviderFailed,
        Reason::InternalError,
    ];

    /// The class this reason belongs to (`docs/metrics.md` table).
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
            SecretInvalid | NoMatchingCredential | ProviderMissing | InternalError => Class::Config,
            ProviderFailed => Class::Credential,
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
            ProviderMissing => "provider_missing",
            ProviderFailed => "provider_failed",
            InternalError => "internal_error",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        assert_eq!(seen.len(), 29);
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
        assert_eq!(Reason::ProviderMissing.class(), Class::Config);
        assert_eq!(Reason::ProviderFailed.class(), Class::Credential);
        assert_eq!(Reason::InternalError.class(), Class::Config);
    }
}
