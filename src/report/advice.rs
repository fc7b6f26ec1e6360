//! The words for each reason, in one place: the hint stored with every result (JSON `hint`)
//! and the verdict of the `check` walk (summary and fix). Everything here is built from the
//! typed facts of a [`ProbeResult`]; nothing here decides a reason.

use url::Url;

use crate::probe::{Phase, ProbeResult, Reason};

/// The JSON `hint` of a result: what to do about its reason (empty on success). A credential
/// probe's advice names the token service's host when the token step failed.
pub fn hint_of(r: &ProbeResult) -> String {
    let Some(reason) = r.reason.filter(|_| !r.success) else {
        return String::new();
    };
    let realm = if r.image.is_none() {
        r.exchanges
            .iter()
            .rev()
            .find(|e| e.phase == Some(Phase::Token))
            .and_then(|e| Url::parse(&e.url).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
    } else {
        None
    };
    hint(reason, &r.registry, realm.as_deref())
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
