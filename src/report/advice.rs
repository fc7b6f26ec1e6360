//! The words for each reason, in one place: the hint stored with every result (JSON `hint`)
//! and the verdict of the `check` walk (summary and fix). Everything here is built from the
//! typed facts of a [`ProbeResult`]; nothing here decides a reason.

use url::Url;

use super::diagnosis::{network_layer, realm_of, status_text, StepKind};
use super::diagnosis::{Context, ImageFacts, Verdict};
use crate::probe::{Phase, ProbeResult, Reason};

/// The JSON `hint` of a result: what to do about its reason (empty on success). A credential
/// probe's advice names the token service's host when the token step failed.
pub fn hint_of(r: &ProbeResult) -> String {
    let Some(reason) = r.reason.filter(|_| !r.success) else {
        return String::new();
    };
    let realm = if r.image.is_none() {
        token_host(r)
    } else {
        None
    };
    hint(reason, &r.registry, realm.as_deref())
}

/// The host name (no port) of the last token request: the token service the advice names.
fn token_host(r: &ProbeResult) -> Option<String> {
    r.exchanges
        .iter()
        .rev()
        .find(|e| e.phase == Some(Phase::Token))
        .and_then(|e| Url::parse(&e.url).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
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
        Reason::SecretInvalid => "kubelet cannot use the secret: if its JSON does not parse, kubelet fails every pull of a pod that lists it before contacting any registry; if its type, key or value is wrong, kubelet skips it and pulls with the other secrets or anonymously. Recreate it with `kubectl create secret docker-registry`.".to_string(),
        Reason::NoMatchingCredential => format!(
            "No key of the pull secrets matches this image, so kubelet pulls anonymously and {registry} refuses. Make the secret's registry key match the image host (and port) exactly."
        ),
        Reason::ProviderMissing => "A credential provider named in kubelet's --image-credential-provider-config is not an executable file in --image-credential-provider-bin-dir; kubelet does not start with such a config. Install the plugin on the node image (or fix its name in the config) and restart kubelet.".to_string(),
        Reason::ProviderFailed => format!(
            "kubelet's credential provider gives no credential for {registry}: the plugin failed (see its stderr in the detail). If it fails on every node, check the cloud identity and its registry policy (node role / managed identity / service account); if on some nodes only, their access to the metadata service and the cloud's token endpoint."
        ),
        Reason::InternalError => format!(
            "regprobe itself failed while probing {registry} (an internal error, a bug), so this credential's state is unknown. Check regprobe's log for the panic and report it; the credential may be fine."
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Verdicts of the `check` walk
// ------------------------------------------------------------------------------------------

pub(crate) fn server_flag(domain: &str) -> String {
    if domain == "docker.io" {
        String::new()
    } else {
        format!(" --docker-server={domain}")
    }
}

pub(crate) fn create_command(ctx: &Context, secret: &str, server: &str, user: &str) -> String {
    format!(
        "kubectl create secret docker-registry {secret} {ns}{} --docker-username={user} --docker-password=… --dry-run=client -o yaml | kubectl apply -f -",
        server_flag(server).trim_start(),
        ns = ctx.ns_flag()
    )
}

/// The verdict of a failed or successful result (a credential probe, or an image attempt).
pub fn verdict(r: &ProbeResult, image: Option<&ImageFacts>, ctx: &Context) -> Verdict {
    let registry = image
        .map(|i| i.domain.clone())
        .unwrap_or_else(|| r.registry.clone());
    let secret = r.secret.clone().unwrap_or_else(|| "NAME".into());
    let user = r.username.clone().unwrap_or_else(|| "USER".into());
    let realm = realm_of(r);
    let roll = ctx.roll();
    let create = create_command(ctx, &secret, crate::plan::host_of(&registry), &user);
    let mut v = Verdict {
        ok: r.success,
        class: r.class,
        reason: r.reason,
        summary: r.detail.clone(),
        next: String::new(),
        also: Vec::new(),
    };
    let Some(reason) = r.reason.filter(|_| !r.success) else {
        if r.success && image.is_some() && r.secret.is_none() {
            v.summary = format!("{} (anonymous: no credential was needed)", r.detail);
        }
        return v;
    };
    let failed = r.failed.as_ref();
    let token_failed = failed.is_some_and(|f| f.step == Some(Phase::Token));
    // The probe's hint names the registry; a failure at the token service is about its host.
    let hint = match token_host(r).filter(|_| token_failed) {
        Some(realm_host) => hint(reason, crate::plan::host_of(&registry), Some(&realm_host)),
        None => hint_of(r),
    };
    let (summary, next): (String, String) = match reason {
        Reason::Unauthorized => (
            match (&realm, token_failed) {
                (Some(realm), true) => format!(
                    "the token service at {realm} rejected user `{user}`: the password is wrong or expired"
                ),
                _ => format!(
                    "{registry} rejected the credential of user `{user}`: the password is wrong or expired"
                ),
            },
            format!(
                "check it with `docker login {} -u {user}`; recreate the secret with `{create}` and roll the workload: `{roll}`",
                crate::plan::host_of(&registry)
            ),
        ),
        Reason::TokenForbidden => (
            format!(
                "the token service at {} refused user `{user}` (403): the account or access token is disabled, or a scope or IP policy blocks it",
                realm.as_deref().unwrap_or(&registry)
            ),
            format!(
                "check the account in the registry (locked user, revoked or expired access token, IP allow list); with a new token recreate the secret with `{create}` and roll the workload: `{roll}`"
            ),
        ),
        Reason::CredentialMissing => (
            format!(
                "{registry} requires authentication, but the entry for it in secret `{secret}` has no username or no password, so containerd sends no credential"
            ),
            format!(
                "recreate the secret with a username and password: `{create}`, then roll the workload: `{roll}`"
            ),
        ),
        Reason::CredentialExpired => (
            r.detail.clone(),
            format!(
                "refresh the credential (ECR and GCR tokens expire within hours: use a refresher or a kubelet credential provider), recreate the secret with `{create}` and roll the workload: `{roll}`"
            ),
        ),
        Reason::PullDenied => match image {
            Some(i) => (
                format!(
                    "{registry} accepted user `{user}` but refuses it the pull of {}",
                    i.repository
                ),
                format!(
                    "grant user `{user}` pull access to {} in the registry, or correct the repository path in the image",
                    i.repository
                ),
            ),
            None => (r.detail.clone(), hint.clone()),
        },
        Reason::NotFound => match image {
            Some(i) => (
                format!(
                    "{}:{} does not exist on {} (the manifest HEAD answered 404; {})",
                    i.repository,
                    i.reference,
                    failed
                        .filter(|f| !f.host.is_empty())
                        .map(|f| f.host.as_str())
                        .unwrap_or(&registry),
                    if failed.is_some_and(|f| f.credential_sent) {
                        "the credential works"
                    } else {
                        "no credential was sent"
                    }
                ),
                "correct the image name or tag in the pod spec, or push the image".to_string(),
            ),
            None => (r.detail.clone(), hint.clone()),
        },
        Reason::NoMatchingCredential => {
            let i = image.cloned().unwrap_or_default();
            let status = r
                .exchanges
                .iter()
                .rev()
                .find_map(|e| e.status)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let why = if i.mismatches.is_empty() {
                format!("no pull secret has a key for {}", i.domain)
            } else {
                i.mismatches.join("; ")
            };
            let next = if let Some((s, k)) = ctx.unreferenced_matches.first() {
                format!(
                    "secret `{s}` has key `{k}`, which matches: add it to the pod's imagePullSecrets, then roll the workload: `{roll}`"
                )
            } else if let Some(m) = ctx.missing.first() {
                format!(
                    "the pod lists `{m}`, which was not given: check it exists in namespace {} (`kubectl {}get secret {m}`) with a key for {}; if not, create it: `{}`, then roll the workload: `{roll}`",
                    ctx.namespace.as_deref().unwrap_or("NAMESPACE"),
                    ctx.ns_flag(),
                    i.domain,
                    create_command(ctx, m, &i.domain, "USER")
                )
            } else if i.mismatches.is_empty() {
                format!(
                    "create a pull secret for {}: `{}`, list it in the pod's imagePullSecrets and roll the workload: `{roll}`",
                    i.domain,
                    create_command(ctx, "NAME", &i.domain, "USER")
                )
            } else {
                format!(
                    "make the key the image's host and port exactly: `{}`, then roll the workload: `{roll}` (or correct the image name)",
                    create_command(
                        ctx,
                        i.mismatch_secret.as_deref().unwrap_or(&secret),
                        &i.domain,
                        i.mismatch_user.as_deref().unwrap_or("USER")
                    )
                )
            };
            (
                format!(
                    "{why}: kubelet pulls anonymously and {} refuses{status}",
                    i.domain
                ),
                next,
            )
        }
        Reason::SecretInvalid => (
            format!(
                "{} (kubelet cannot use it{})",
                r.detail,
                if image.is_some() {
                    ", and fails every pull of the pod before contacting a registry"
                } else {
                    ""
                }
            ),
            format!(
                "recreate it: `kubectl create secret docker-registry {secret} {}--docker-server=… --docker-username=… --docker-password=… --dry-run=client -o yaml | kubectl apply -f -` (by hand, the value is {{\"auths\": {{\"HOST\": {{\"auth\": base64 of user:password}}}}}})",
                ctx.ns_flag()
            ),
        ),
        Reason::TokenEndpoint => {
            let last = r
                .exchanges
                .iter()
                .rev()
                .find(|e| e.phase == Some(Phase::Token) && e.status.is_some());
            (
                format!(
                    "the token service at {} is broken: it answered user `{user}` with {} (not a credential problem)",
                    realm.as_deref().unwrap_or(&registry),
                    last.map(status_text)
                        .unwrap_or_else(|| "no usable token".into())
                ),
                hint.clone(),
            )
        }
        _ if network_layer(r).is_some() || reason == Reason::Timeout => {
            let who = if token_failed {
                format!("the token service {}", realm.as_deref().unwrap_or(""))
            } else {
                registry.clone()
            };
            let error = failed.and_then(|f| f.failure.transport());
            // The sentence names the peer itself: the transport's cause without its subject.
            let err = error.map(|e| e.cause()).unwrap_or_else(|| r.detail.clone());
            let summary = match network_layer(r) {
                Some(StepKind::Dns) => format!(
                    "this node cannot resolve {}: {err}",
                    error.and_then(|e| e.subject()).unwrap_or(&registry)
                ),
                Some(StepKind::Tcp) => format!("this node cannot connect to {who}: {err}"),
                Some(StepKind::Tls) => {
                    format!("the TLS handshake with {who} fails on this node: {err}")
                }
                _ => format!("{who} does not answer this node in time: {err}"),
            };
            (summary, hint.clone())
        }
        _ => (r.detail.clone(), hint.clone()),
    };
    v.summary = summary;
    v.next = next;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_hint_naming_something_concrete() {
        for r in Reason::ALL {
            let h = hint(r, "registry.example.com", Some("auth.example.com"));
            assert!(h.len() > 40, "{r}: {h}");
        }
        assert!(hint(Reason::Dns, "r.example", Some("auth.example")).contains("auth.example"));
        assert!(hint(Reason::Unauthorized, "r.example", None).contains("kubectl create secret"));
    }

    #[test]
    fn a_success_has_no_hint() {
        let mut r = ProbeResult::new("r.example", None);
        r.success = true;
        assert_eq!(hint_of(&r), "");
        r.success = false;
        r.reason = Some(Reason::Dns);
        assert!(hint_of(&r).contains("r.example"));
    }
}
