//! The one place where a failure becomes a [`Reason`], and where each reason gets its hint.
//!
//! Every prober reports what went wrong as a [`Failure`]: a typed description of the step and
//! of what the peer did (a transport error, a status, a challenge, a token body). [`reason`]
//! maps it to the closed set of `metrics.md`; [`hint`] says what an SRE should do. The mapping
//! follows `auth-spec.md` §10.1 (classification table) with the contract's names, and the
//! containerd text each case corresponds to is noted beside it.
//!
//! Nothing here looks at message text: transport errors are already typed
//! ([`crate::probe::transport::TransportError`]) and HTTP outcomes are statuses and parsed
//! challenge parameters.

use super::outcome::Reason;
use super::transport::{ConnectFailure, HttpFailure, TlsFailure, TransportError};

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
}

/// The reason of a failure (`metrics.md`, "Reasons and classes"; `auth-spec.md` §10.1).
pub fn reason(f: &Failure) -> Reason {
    match f {
        Failure::SecretInvalid(_) => Reason::SecretInvalid,
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

/// What an SRE should do about `reason`, in one or two sentences. `registry` and `realm_host`
/// make the advice concrete.
pub fn hint(reason: Reason, registry: &str, realm_host: Option<&str>) -> String {
    let realm = realm_host.unwrap_or(registry);
    match reason {
        Reason::Unauthorized => format!(
            "The credential for {registry} is wrong or expired. Check it with `docker login {registry}`, then recreate the secret with `kubectl create secret docker-registry NAME --docker-server={registry} --docker-username=USER --docker-password=...` and roll the workload."
        ),
        Reason::TokenForbidden => format!(
            "The token service {realm} refused this credential (account or token disabled, scope or IP policy). Check the account's status and permissions in the registry; recreate the secret if the token was revoked."
        ),
        Reason::CredentialMissing => format!(
            "{registry} requires authentication, but this entry has no usable username and password (an `identitytoken`-only or password-only entry is sent anonymously by kubelet). Recreate the secret with a username and password."
        ),
        Reason::CredentialExpired => format!(
            "The credential for {registry} has expired (its own expiry time is past). Refresh it (short-lived tokens such as ECR's or GCR's need a refresher or a kubelet credential provider) and recreate the secret."
        ),
        Reason::PullDenied => format!(
            "The credential is accepted by {registry} but may not pull this repository. Grant pull access to the account, or use the right repository path."
        ),
        Reason::NotFound => format!(
            "The repository or tag does not exist on {registry}. Check the image name and tag in the pod spec."
        ),
        Reason::Dns => format!(
            "The node cannot resolve {realm}. Check the node's /etc/resolv.conf and DNS servers (`dig {realm}` on the node); this fails on some nodes only if their DNS differs."
        ),
        Reason::ConnectRefused => format!(
            "Nothing accepts connections at {realm} from this node. Check the registry is up and the port is right, and for firewalls or a wrong DNS answer."
        ),
        Reason::ConnectTimeout => format!(
            "Connections to {realm} time out from this node: a firewall, security group or route drops them. Compare with other nodes; check egress rules and the proxy settings."
        ),
        Reason::Unreachable => format!(
            "The node has no route to {realm}. Check the node's routes, network interfaces and egress configuration."
        ),
        Reason::Timeout => format!(
            "{realm} accepted the connection but did not answer in time. The registry or a middlebox (proxy, load balancer) is overloaded or stuck; retry and compare with other nodes."
        ),
        Reason::Proxy => "The HTTPS proxy from the environment failed or refused the CONNECT. Check HTTPS_PROXY/NO_PROXY for containerd and the proxy's allow-list.".to_string(),
        Reason::TlsUntrusted => format!(
            "The certificate of {realm} is not signed by a CA the node trusts. Install the registry's CA in the node bundle or as /etc/containerd/certs.d/{registry}/ca.crt (hosts.toml `ca`)."
        ),
        Reason::TlsHostnameMismatch => format!(
            "The certificate of {realm} is not valid for that name. Use the name the certificate was issued for, or reissue the certificate with it in its SANs."
        ),
        Reason::TlsExpired => format!(
            "The certificate of {realm} has expired (or is not yet valid). Renew the registry's certificate; also check the node's clock."
        ),
        Reason::TlsHandshake => format!(
            "The TLS handshake with {realm} failed (protocol, cipher, or a client certificate is required). Check the registry's TLS settings and the hosts.toml `client` certificate."
        ),
        Reason::NotARegistry => format!(
            "{registry} does not speak the registry API at /v2/ (a web page, captive portal or wrong port). Check the registry host name and port in the secret and the image."
        ),
        Reason::PlainHttp => format!(
            "{realm} speaks plain HTTP, but HTTPS was used. If the registry really is plain HTTP, declare it in /etc/containerd/certs.d/{registry}/hosts.toml with `server = \"http://{registry}\"`."
        ),
        Reason::RegistryError => format!(
            "{registry} answered with a server error. The registry is unhealthy; check its status page or logs. This is not a credential problem."
        ),
        Reason::TokenEndpoint => format!(
            "The token service {realm} misbehaves (server error, unexpected status, or no token in its answer). Check the registry's auth service; this is not a credential problem."
        ),
        Reason::TokenRejected => format!(
            "{registry} refused a token its own token service issued (clock skew, a service/realm mismatch, or a revoked key). Check the node's clock and the registry's token configuration."
        ),
        Reason::RateLimited => format!(
            "{realm} is rate-limiting this node (429). Wait, reduce pulls, or authenticate with an account with a higher limit (Docker Hub), or use a mirror."
        ),
        Reason::ChallengeUnsupported => format!(
            "{registry} asked for authentication in a way containerd does not support (no Basic or Bearer challenge, or no realm). Check the registry's auth configuration."
        ),
        Reason::ManifestUnsupported => "The manifest is schema1 or larger than 4 MiB, which containerd 2.x rejects. Rebuild and push the image with a current builder.".to_string(),
        Reason::SecretInvalid => "The secret does not parse as kubelet reads it, so kubelet fails the pull before contacting any registry. Recreate it with `kubectl create secret docker-registry`.".to_string(),
        Reason::NoMatchingCredential => format!(
            "No key of the pull secrets matches this image, so kubelet pulls anonymously and {registry} refuses. Make the secret's registry key match the image host (and port) exactly."
        ),
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

    #[test]
    fn every_reason_has_a_hint_naming_something_concrete() {
        for r in Reason::ALL {
            let h = hint(r, "registry.example.com", Some("auth.example.com"));
            assert!(h.len() > 40, "{r}: {h}");
        }
        assert!(hint(Reason::Dns, "r.example", Some("auth.example")).contains("auth.example"));
        assert!(hint(Reason::Unauthorized, "r.example", None).contains("kubectl create secret"));
    }
}
