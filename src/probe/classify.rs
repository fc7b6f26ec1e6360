//! The one place where a failure becomes a [`Reason`].
//!
//! Every prober reports what went wrong as a [`Failure`]: a typed description of the step and
//! of what the peer did (a transport error, a status, a challenge, a token body). [`reason`]
//! maps it to the closed set of `docs/metrics.md`, including the rewrites that depend on the
//! probe's context ([`with_expiry`], [`attempt_reason`]). The words for each reason live in
//! `report::advice`. The mapping
//! follows `docs/containerd-kubelet.md` §10.1 (classification table) with the contract's names, and the
//! containerd text each case corresponds to is noted beside it.
//!
//! Nothing here looks at message text: transport errors are already typed
//! ([`crate::probe::transport::TransportError`]) and HTTP outcomes are statuses and parsed
//! challenge parameters.

pub use super::failure::{AuthScheme, Failure, Peer};
use super::failure::{ConnectFailure, HttpFailure, TlsFailure, TransportError};
use super::vocab::Reason;

/// The reason of a failure (`docs/metrics.md`, "Reasons and classes"; `docs/containerd-kubelet.md` §10.1).
pub fn reason(f: &Failure) -> Reason {
    match f {
        Failure::SecretInvalid(_) => Reason::SecretInvalid,
        // kubelet does not start with a plugin missing from the bin dir
        // (`RegisterCredentialProviderPlugins`): the node's configuration.
        Failure::ProviderMissing(_) => Reason::ProviderMissing,
        // The plugin ran and kubelet got no credential from it (`provide` logs and returns an
        // empty DockerConfig): the credential source failed.
        Failure::ProviderFailed(_) => Reason::ProviderFailed,
        // A token service that answers, but not in HTTP, or in a redirect loop, misbehaves: a
        // registry-side fault at the realm (`token_endpoint`), as its statuses are.
        Failure::Transport {
            peer: Peer::Realm,
            error:
                TransportError::Redirect(_)
                | TransportError::InvalidUrl(_)
                | TransportError::Http {
                    kind: HttpFailure::Protocol(_) | HttpFailure::HeadTooLarge,
                    ..
                },
        } => Reason::TokenEndpoint,
        Failure::Transport { error, .. } => transport_reason(error),
        Failure::CredentialNotForwarded { peer, .. } => match peer {
            Peer::Realm => Reason::TokenEndpoint,
            Peer::Registry => Reason::RegistryError,
        },
        Failure::HtmlPage => Reason::NotARegistry,
        Failure::ChallengeStatus(s) => match s {
            429 => Reason::RateLimited,
            500..=599 => Reason::RegistryError,
            // 403 on an anonymous /v2/ (an IP allow-list, a WAF) is a registry answer, not a
            // sign that no registry is there.
            403 => Reason::RegistryError,
            _ => Reason::NotARegistry,
        },
        // §10.1 #18: containerd returns the 401 as "unexpected status".
        Failure::NoSupportedChallenge => Reason::ChallengeUnsupported,
        // §10.1 #21: "no realm specified for token auth challenge".
        Failure::BadRealm(_) => Reason::ChallengeUnsupported,
        // §10.1 #19: "authorization failed: no basic auth credentials".
        Failure::CredentialMissing(_) => Reason::CredentialMissing,
        Failure::TokenStatus {
            status,
            with_credential,
        } => match status {
            // §10.1 #22: 401 on the final token request is a bad credential; an anonymous
            // request refused means a credential is needed.
            401 if *with_credential => Reason::Unauthorized,
            401 => Reason::CredentialMissing,
            // §10.1 #23: the token service refused this credential (GitLab; Harbor's XSRF
            // quirk aside).
            403 => Reason::TokenForbidden,
            429 => Reason::RateLimited,
            // §10.1 #24.
            _ => Reason::TokenEndpoint,
        },
        // §10.1 #25: "unable to decode token response" / "did not include a token".
        Failure::TokenBody(_) => Reason::TokenEndpoint,
        Failure::VerifyStatus {
            scheme,
            status,
            challenge_error,
        } => match (scheme, status, challenge_error.as_deref()) {
            // §10.1 #20: Basic sent and answered 401 again: the credential is wrong.
            (AuthScheme::Basic, 401, _) => Reason::Unauthorized,
            // containerd's own test server (TestWrongBasicAuthResolver) answers a wrong Basic
            // credential with 403: with Basic there is no separate "accepted" step to tell a
            // refused credential from a refused pull.
            (AuthScheme::Basic, 403, _) => Reason::Unauthorized,
            // §10.1 #28: the token was issued, its scope does not allow the pull.
            (AuthScheme::Bearer, 401, Some("insufficient_scope")) => Reason::PullDenied,
            // §10.1 #27 / #29: the registry refuses a token its realm issued.
            (AuthScheme::Bearer, 401, _) => Reason::TokenRejected,
            // §10.1 #30: the token was issued (the credential was accepted), access refused.
            (AuthScheme::Bearer, 403, _) => Reason::PullDenied,
            (_, 429, _) => Reason::RateLimited,
            _ => Reason::RegistryError,
        },
        Failure::RegistryStatus(s) => match s {
            429 => Reason::RateLimited,
            404 => Reason::NotFound,
            _ => Reason::RegistryError,
        },
        Failure::ManifestStatus {
            status,
            auth,
            challenge_error,
            ..
        } => match (status, auth, challenge_error.as_deref()) {
            // §10.1 #31/#32: `<ref>: not found`.
            (404, _, _) => Reason::NotFound,
            // §10.1 #27: the registry refuses a token its realm issued.
            (401, Some(AuthScheme::Bearer), Some("invalid_token")) => Reason::TokenRejected,
            // §10.1 #28/#29: insufficient_scope, or 401 without `error=` until the budget is
            // spent (Quay's "no access"): the pull is denied.
            (401, Some(AuthScheme::Bearer), _) => Reason::PullDenied,
            // §10.1 #20: Basic answered 401 until the budget is spent.
            (401, Some(AuthScheme::Basic), _) => Reason::Unauthorized,
            // §10.1 #18: 401 without a usable challenge.
            (401, None, _) => Reason::ChallengeUnsupported,
            // §10.1 #30: 403 DENIED.
            (403, _, _) => Reason::PullDenied,
            (429, _, _) => Reason::RateLimited,
            _ => Reason::RegistryError,
        },
        Failure::ManifestUnsupported(_) => Reason::ManifestUnsupported,
        Failure::CredentialExpired { .. } => Reason::CredentialExpired,
        // containerd: "no resolve hosts: not found".
        Failure::NoResolveHosts => Reason::NotFound,
        // The registry answered the manifest with a broken digest header.
        Failure::ManifestDigestInvalid(_) => Reason::RegistryError,
        // A Basic 403 means what the registry's code says: `UNAUTHORIZED` a refused
        // credential, `DENIED` a refused access. Without a code, the step decides: `/v2/` names
        // no repository, so its refusal is of the credential (containerd's own test server,
        // `TestWrongBasicAuthResolver`, answers a wrong Basic credential so); at the manifest
        // a repository is named, so it is the pull that is refused (§10.1 #30).
        Failure::BasicForbidden { step, error_code } => match error_code.as_deref() {
            Some("UNAUTHORIZED") => Reason::Unauthorized,
            Some("DENIED") => Reason::PullDenied,
            _ if *step == super::vocab::Phase::Manifest => Reason::PullDenied,
            _ => Reason::Unauthorized,
        },
    }
}

/// The credential probe's rewrite: a failure that means "credential refused"
/// ([`Reason::Unauthorized`] from the token service or the registry) becomes
/// [`Failure::CredentialExpired`] when the credential's own expiry (`expiry`, Unix seconds: a
/// JWT `exp`, an ECR token's `expiration`) is before `now`. Other failures are unchanged.
pub fn with_expiry(f: Failure, expiry: Option<i64>, now: i64) -> Failure {
    let refused = matches!(
        f,
        Failure::TokenStatus { .. } | Failure::VerifyStatus { .. } | Failure::BasicForbidden { .. }
    ) && reason(&f) == Reason::Unauthorized;
    match expiry {
        Some(t) if refused && t < now => Failure::CredentialExpired { expired_at: t },
        _ => f,
    }
}

/// The reason of a probe that ended without a result (its task panicked or was dropped):
/// [`Reason::InternalError`] (class `config`, `docs/metrics.md`): regprobe failed, not the
/// credential or the registry, and a missing result must never count as success.
pub fn internal_error() -> Reason {
    Reason::InternalError
}

/// The reason of an image attempt's failure. An anonymous attempt because no key matched
/// (`credential_given == false`), refused for lack of credentials, is
/// [`Reason::NoMatchingCredential`] (contract): the fix is the secret's key, not the registry.
pub fn attempt_reason(f: &Failure, credential_given: bool) -> Reason {
    let r = reason(f);
    if !credential_given
        && matches!(
            r,
            Reason::Unauthorized
                | Reason::CredentialMissing
                | Reason::PullDenied
                | Reason::TokenForbidden
        )
    {
        return Reason::NoMatchingCredential;
    }
    r
}

/// [`attempt_reason`] when kubelet's credential providers matched the image: if one of them
/// failed (`provider_failed`), an anonymous attempt refused for lack of a credential is
/// [`Reason::ProviderFailed`]: kubelet had no credential because the provider gave none, and the
/// fix is the provider (the cloud identity), not a secret's key.
pub fn attempt_reason_with_providers(
    f: &Failure,
    credential_given: bool,
    provider_failed: bool,
) -> Reason {
    match attempt_reason(f, credential_given) {
        Reason::NoMatchingCredential if provider_failed => Reason::ProviderFailed,
        r => r,
    }
}

/// The reason of a transport error (§10.1 #4–#17), from its type alone.
pub fn transport_reason(e: &TransportError) -> Reason {
    match e {
        // A DNS timeout is `dns` too (contract).
        TransportError::Dns { .. } => Reason::Dns,
        TransportError::Connect { kind, .. } => match kind {
            ConnectFailure::Refused => Reason::ConnectRefused,
            ConnectFailure::Timeout => Reason::ConnectTimeout,
            ConnectFailure::Unreachable => Reason::Unreachable,
            ConnectFailure::Other(_) => Reason::Unreachable,
        },
        TransportError::Proxy { .. } => Reason::Proxy,
        TransportError::Tls { kind, .. } => match kind {
            TlsFailure::Untrusted(_) => Reason::TlsUntrusted,
            TlsFailure::HostnameMismatch(_) => Reason::TlsHostnameMismatch,
            TlsFailure::Expired(_) => Reason::TlsExpired,
            // §10.1 #16: "http: server gave HTTP response to HTTPS client".
            TlsFailure::PlainHttp => Reason::PlainHttp,
            // §10.1 #15: "net/http: TLS handshake timeout": the peer went silent.
            TlsFailure::Timeout => Reason::Timeout,
            TlsFailure::Handshake(_) => Reason::TlsHandshake,
        },
        TransportError::Http { kind, .. } => match kind {
            HttpFailure::HeaderTimeout | HttpFailure::BodyTimeout | HttpFailure::Closed => {
                Reason::Timeout
            }
            // Something that is not HTTP (or not well-formed HTTP) answers: not a registry.
            HttpFailure::Protocol(_) => Reason::NotARegistry,
            // HTTP, but a head over the cap (a megabyte challenge): a registry fault.
            HttpFailure::HeadTooLarge => Reason::RegistryError,
        },
        // The probe's own budget ran out between steps: the peer was too slow overall.
        TransportError::Deadline { phase } => match phase {
            super::Phase::Resolve => Reason::Dns,
            super::Phase::Connect => Reason::ConnectTimeout,
            _ => Reason::Timeout,
        },
        TransportError::InvalidUrl(_) => Reason::ChallengeUnsupported,
        TransportError::Redirect(_) => Reason::RegistryError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::transport::DnsFailure;
    use crate::probe::Class;

    fn tls(kind: TlsFailure) -> Failure {
        Failure::Transport {
            peer: Peer::Registry,
            error: TransportError::Tls {
                host: "r".into(),
                kind,
            },
        }
    }

    #[test]
    fn network_failures_at_the_realm_are_network_reasons() {
        let f = Failure::Transport {
            peer: Peer::Realm,
            error: TransportError::Connect {
                addr: "127.0.0.1:1".into(),
                kind: ConnectFailure::Refused,
            },
        };
        assert_eq!(reason(&f), Reason::ConnectRefused);
        assert_eq!(reason(&f).class(), Class::Network);
        let f = Failure::Transport {
            peer: Peer::Realm,
            error: TransportError::Dns {
                host: "auth.test".into(),
                kind: DnsFailure::Timeout,
            },
        };
        assert_eq!(reason(&f), Reason::Dns);
    }

    #[test]
    fn a_token_service_that_misbehaves_is_token_endpoint() {
        let at = |peer, error| reason(&Failure::Transport { peer, error });
        let http = |kind| TransportError::Http {
            host: "h".into(),
            kind,
        };
        let redirect = || TransportError::Redirect("stopped after 10 redirects".into());
        assert_eq!(at(Peer::Realm, redirect()), Reason::TokenEndpoint);
        assert_eq!(at(Peer::Registry, redirect()), Reason::RegistryError);
        let protocol = || http(HttpFailure::Protocol("x".into()));
        assert_eq!(at(Peer::Realm, protocol()), Reason::TokenEndpoint);
        assert_eq!(at(Peer::Registry, protocol()), Reason::NotARegistry);
        let big = || http(HttpFailure::HeadTooLarge);
        assert_eq!(at(Peer::Realm, big()), Reason::TokenEndpoint);
        assert_eq!(at(Peer::Registry, big()), Reason::RegistryError);
        // Closed mid-response stays a network reason, at the realm too.
        assert_eq!(at(Peer::Realm, http(HttpFailure::Closed)), Reason::Timeout);
        let dropped = |peer| {
            reason(&Failure::CredentialNotForwarded {
                peer,
                status: 401,
                how: "redirected".into(),
            })
        };
        assert_eq!(dropped(Peer::Realm), Reason::TokenEndpoint);
        assert_eq!(dropped(Peer::Registry), Reason::RegistryError);
    }

    #[test]
    fn tls_failures_map_one_to_one() {
        assert_eq!(
            reason(&tls(TlsFailure::Untrusted(String::new()))),
            Reason::TlsUntrusted
        );
        assert_eq!(
            reason(&tls(TlsFailure::HostnameMismatch(String::new()))),
            Reason::TlsHostnameMismatch
        );
        assert_eq!(
            reason(&tls(TlsFailure::Expired(String::new()))),
            Reason::TlsExpired
        );
        assert_eq!(reason(&tls(TlsFailure::PlainHttp)), Reason::PlainHttp);
        assert_eq!(
            reason(&tls(TlsFailure::Handshake(String::new()))),
            Reason::TlsHandshake
        );
    }

    #[test]
    fn token_statuses() {
        let t = |status, with_credential| {
            reason(&Failure::TokenStatus {
                status,
                with_credential,
            })
        };
        assert_eq!(t(401, true), Reason::Unauthorized);
        assert_eq!(t(401, false), Reason::CredentialMissing);
        assert_eq!(t(403, true), Reason::TokenForbidden);
        assert_eq!(t(429, true), Reason::RateLimited);
        assert_eq!(t(500, true), Reason::TokenEndpoint);
        assert_eq!(t(405, true), Reason::TokenEndpoint);
    }

    #[test]
    fn verify_statuses() {
        let v = |scheme, status, e: Option<&str>| {
            reason(&Failure::VerifyStatus {
                scheme,
                status,
                challenge_error: e.map(str::to_owned),
            })
        };
        assert_eq!(v(AuthScheme::Basic, 401, None), Reason::Unauthorized);
        let basic403 = |step, code: Option<&str>| {
            reason(&Failure::BasicForbidden {
                step,
                error_code: code.map(str::to_owned),
            })
        };
        use crate::probe::Phase;
        // One rule at both steps: the registry's code decides, else the step.
        for step in [Phase::Verify, Phase::Manifest] {
            assert_eq!(basic403(step, Some("UNAUTHORIZED")), Reason::Unauthorized);
            assert_eq!(basic403(step, Some("DENIED")), Reason::PullDenied);
        }
        assert_eq!(basic403(Phase::Verify, None), Reason::Unauthorized);
        assert_eq!(basic403(Phase::Manifest, None), Reason::PullDenied);
        assert_eq!(v(AuthScheme::Basic, 403, None), Reason::Unauthorized);
        assert_eq!(
            v(AuthScheme::Bearer, 401, Some("insufficient_scope")),
            Reason::PullDenied
        );
        assert_eq!(
            v(AuthScheme::Bearer, 401, Some("invalid_token")),
            Reason::TokenRejected
        );
        assert_eq!(v(AuthScheme::Bearer, 403, None), Reason::PullDenied);
        assert_eq!(v(AuthScheme::Bearer, 503, None), Reason::RegistryError);
    }

    #[test]
    fn manifest_statuses() {
        let m = |status, auth, e: Option<&str>| {
            reason(&Failure::ManifestStatus {
                status,
                auth,
                challenge_error: e.map(str::to_owned),
                token_issued: true,
            })
        };
        let bearer = Some(AuthScheme::Bearer);
        assert_eq!(m(404, bearer, None), Reason::NotFound);
        assert_eq!(
            m(401, bearer, Some("insufficient_scope")),
            Reason::PullDenied
        );
        assert_eq!(m(401, bearer, None), Reason::PullDenied);
        assert_eq!(m(401, bearer, Some("invalid_token")), Reason::TokenRejected);
        assert_eq!(m(401, Some(AuthScheme::Basic), None), Reason::Unauthorized);
        assert_eq!(m(401, None, None), Reason::ChallengeUnsupported);
        assert_eq!(m(403, Some(AuthScheme::Basic), None), Reason::PullDenied);
        assert_eq!(m(429, None, None), Reason::RateLimited);
        assert_eq!(m(502, None, None), Reason::RegistryError);
        assert_eq!(
            reason(&Failure::ManifestUnsupported("schema1".into())),
            Reason::ManifestUnsupported
        );
    }

    #[test]
    fn anonymous_v2_statuses() {
        assert_eq!(
            reason(&Failure::ChallengeStatus(503)),
            Reason::RegistryError
        );
        assert_eq!(reason(&Failure::ChallengeStatus(429)), Reason::RateLimited);
        assert_eq!(reason(&Failure::ChallengeStatus(404)), Reason::NotARegistry);
        assert_eq!(reason(&Failure::HtmlPage), Reason::NotARegistry);
    }
}
