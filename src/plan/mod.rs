//! Planning: from loaded secrets and the node's host configuration to the list of probes.
//! Pure: no network, no file other than the host configuration.
//!
//! One credential probe per `(registry, secret)` pair: each `auths` entry of each secret, with
//! the host containerd would contact for that registry (the `hosts.toml` upstream, `docker.io`
//! → `registry-1.docker.io`, the loopback rule). Entries whose key is a wildcard
//! (`*.example.com`) name no host: they get no credential probe and are listed as skipped.
//! A secret that does not parse becomes a finished `secret_invalid` result right here,
//! without any network traffic, so the other secrets keep probing.
//!
//! Images (canaries, `check --image`, `check --pod-spec`) are planned in [`pod`]: which
//! secrets kubelet hands each pull, its credential attempts, and which credential probes follow
//! a pull. Reading a pod spec's YAML stays in [`crate::podspec`]: it is input parsing, as for
//! secrets; choosing secrets and credentials from what it read is planning, here.

pub mod caps;
pub mod pod;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::hosts::{hosts_for, HostsError, HostsResolution};
use crate::probe::classify::{self, Failure};
use crate::probe::credential::CredentialTarget;
use crate::probe::{ProbeResult, Reason};
use crate::secrets::{Secret, SecretError};

pub use pod::{plan_images, ImagePlan, ImagePlanError};

use crate::inputs::{ConfigError, Inputs};
use crate::secrets::load_all;

/// The probes of one cycle.
#[derive(Debug, Default)]
pub struct Plan {
    /// Credential probes to run.
    pub targets: Vec<CredentialTarget>,
    /// Results known without probing (secrets that do not parse).
    pub invalid: Vec<ProbeResult>,
    /// Entries not probed, with why (wildcard keys, duplicates, filtered out).
    pub skipped: Vec<Skipped>,
    /// Warnings from the host configuration (a `hosts.toml` that does not parse).
    pub warnings: Vec<String>,
    /// `(secret id, valid)` for every secret loaded.
    pub secrets: Vec<(String, bool)>,
    /// kubelet's credential providers' runs, and the known expiry of every credential
    /// (a provider's cache expiry, a password's own `exp`/`expiration`): for the metrics.
    pub providers: crate::providers::Reported,
}

/// An entry that gets no credential probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Secret id.
    pub secret: String,
    /// The entry's registry key.
    pub registry: String,
    /// Why.
    pub why: String,
}

/// Builds the plan. `only` limits credential probes to registries whose key or host equals
/// one of its items (`check --registry`); empty means all.
///
/// Errors: a `--hosts-dir` that cannot be read.
pub fn plan(
    secrets: &[Secret],
    hosts_dirs: &[PathBuf],
    only: &[String],
) -> Result<Plan, HostsError> {
    let mut out = Plan::default();
    let mut seen = BTreeSet::new();
    // One hosts-directory lookup per namespace per plan: 1,000 credentials of one registry
    // read its hosts.toml once, not 1,000 times (issue #16: the reload's cost per credential).
    let mut resolutions: BTreeMap<String, HostsResolution> = BTreeMap::new();
    for secret in secrets {
        let entries = match &secret.entries {
            Ok(e) => e,
            Err(err) => {
                out.secrets.push((secret.id.clone(), false));
                out.invalid.push(invalid_result(&secret.id, err));
                continue;
            }
        };
        out.secrets.push((secret.id.clone(), true));
        for entry in entries {
            if !only.is_empty() && !matches_filter(&entry.registry, only) {
                continue;
            }
            if entry.wildcard {
                out.skipped.push(Skipped {
                    secret: secret.id.clone(),
                    registry: entry.registry.clone(),
                    why: "wildcard key: names no host to contact; used only when matching images"
                        .into(),
                });
                continue;
            }
            if !seen.insert((entry.registry.clone(), secret.id.clone())) {
                out.skipped.push(Skipped {
                    secret: secret.id.clone(),
                    registry: entry.registry.clone(),
                    why: format!(
                        "another key of this secret ({}) normalises to the same registry; the first one is probed",
                        entry.raw_key
                    ),
                });
                continue;
            }
            let namespace = host_of(&entry.registry);
            let resolution = match resolutions.get(namespace) {
                Some(known) => known.clone(),
                None => {
                    let found = hosts_for(hosts_dirs, namespace)?;
                    resolutions.insert(namespace.to_string(), found.clone());
                    found
                }
            };
            let why = resolution.warnings.join("; ");
            out.warnings.extend(resolution.warnings);
            let Some(upstream) = resolution.hosts.into_iter().last() else {
                // containerd would keep an unusable upstream and fail the pull; say so here
                // rather than skip the credential silently.
                out.skipped.push(Skipped {
                    secret: secret.id.clone(),
                    registry: entry.registry.clone(),
                    why: format!(
                        "the host configuration for {namespace} leaves no usable host to contact ({})",
                        if why.is_empty() { "no host" } else { why.as_str() }
                    ),
                });
                continue;
            };
            out.targets.push(CredentialTarget {
                secret: secret.id.clone(),
                registry: entry.registry.clone(),
                host: upstream,
                credential: entry.credential.clone(),
            });
        }
    }
    Ok(out)
}

/// The `host[:port]` part of a registry key (`quay.io/myorg` → `quay.io`).
pub fn host_of(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

fn matches_filter(registry: &str, only: &[String]) -> bool {
    only.iter()
        .any(|o| o == registry || o == host_of(registry) || host_of(o) == host_of(registry))
}

/// Loads secrets and plans the probes of `inputs`: credential probes (limited to `only`, as
/// `check --registry`), and image probes for the canary images.
///
/// Errors: an unreadable secret source or host configuration, an invalid image reference.
///
/// With kubelet's credential providers (`--image-credential-provider-*`), each concrete
/// `matchImages` host gets a credential probe with the provider's answer (secret
/// `provider:NAME`), each image the answers for it after the node's `config.json`, and a failed
/// answer is a finished `provider_missing` / `provider_failed` result. Plugins run only when
/// kubelet's cache would run them (the cache outlives reloads).
pub fn load(inputs: &Inputs, only: &[String]) -> Result<(Plan, Vec<ImagePlan>), ConfigError> {
    let mut secrets: Vec<Secret> = load_all(&inputs.sources())?;
    caps::limit_secrets(&mut secrets, &inputs.caps);
    let dirs = inputs.hosts_dirs()?;
    let cri = inputs.cri_auths()?;
    let Some(providers) = inputs.providers()? else {
        let mut p = plan(&secrets, &dirs, only)?;
        caps::limit_probes(&mut p.targets, &inputs.caps);
        add_own_expiries(&mut p);
        p.warnings.extend(cri.warnings.iter().cloned());
        let mut images = plan_images(&inputs.images, &secrets, &dirs)?;
        for i in &mut images {
            pod::set_cri_auths(i, &cri);
        }
        return Ok((p, images));
    };
    let mut loaded = crate::inputs::Loaded {
        seconds: vec![0.0; secrets.len()],
        secrets,
        ..Default::default()
    };
    crate::inputs::resolve_providers(&providers, &inputs.images, true, &mut loaded);
    let mut p = plan(&loaded.secrets, &dirs, only)?;
    caps::limit_probes(&mut p.targets, &inputs.caps);
    for a in loaded
        .provider_targets
        .iter()
        .chain(&loaded.provider_images)
    {
        tracing::debug!("{}", crate::providers::describe(a));
        p.invalid.extend(crate::providers::failure_result(a));
    }
    p.warnings.extend(loaded.warnings);
    p.warnings.extend(cri.warnings.iter().cloned());
    let answers: Vec<crate::providers::Answer> = loaded
        .provider_targets
        .iter()
        .chain(&loaded.provider_images)
        .cloned()
        .collect();
    p.providers = crate::providers::report(&providers, &answers);
    add_own_expiries(&mut p);
    let base: Vec<Secret> = loaded
        .secrets
        .iter()
        .filter(|s| {
            !s.id
                .starts_with(crate::secrets::keyring::PROVIDER_SECRET_PREFIX)
        })
        .cloned()
        .collect();
    let mut images = Vec::new();
    for image in &inputs.images {
        let repo = crate::reference::parse(image)
            .map(|r| r.repo_to_pull())
            .unwrap_or_default();
        let mut used = base.clone();
        used.extend(
            loaded
                .provider_images
                .iter()
                .filter(|a| a.image == repo)
                .filter_map(crate::providers::answer_secret),
        );
        for mut planned in plan_images(std::slice::from_ref(image), &used, &dirs)? {
            pod::set_failed_providers(&mut planned, &loaded.provider_images, &repo);
            pod::set_cri_auths(&mut planned, &cri);
            images.push(planned);
        }
    }
    Ok((p, images))
}

/// The expiry each credential target's password carries itself (a JWT's `exp`, an ECR
/// token's `expiration`), merged into [`Plan::providers`]' expiries (the earliest wins).
fn add_own_expiries(p: &mut Plan) {
    use secrecy::ExposeSecret as _;
    for t in &p.targets {
        let own =
            crate::probe::credential::credential_expiry(t.credential.password.expose_secret());
        if let Some(at) = own {
            let e = p
                .providers
                .expiries
                .entry((t.registry.clone(), t.secret.clone()))
                .or_insert(at);
            *e = (*e).min(at);
        }
    }
}

impl From<ImagePlanError> for ConfigError {
    fn from(e: ImagePlanError) -> ConfigError {
        match e {
            ImagePlanError::Reference { image, error } => ConfigError::Image { image, error },
            ImagePlanError::Hosts(e) => ConfigError::Hosts(e),
        }
    }
}

/// The result of a secret kubelet cannot use: `secret_invalid`, registry `""`. The detail says
/// whether kubelet skips it ([`SecretError::kubelet_skips`]) or fails the pod's pulls.
pub fn invalid_result(secret: &str, error: &SecretError) -> ProbeResult {
    let mut r = ProbeResult::new("", Some(secret.to_string()));
    r.timestamp = crate::clock::unix_now();
    let f = Failure::SecretInvalid(error.to_string());
    let reason = classify::reason(&f);
    debug_assert_eq!(reason, Reason::SecretInvalid);
    r.reason = Some(reason);
    r.class = Some(reason.class());
    r.detail = if error.kubelet_skips() {
        format!("kubelet skips the secret (pulls go on with the other secrets): {error}")
    } else {
        format!("the secret does not parse: {error}")
    };
    r.failed = Some(crate::probe::failure::Failed::without_request(f));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_keys() {
        assert_eq!(host_of("quay.io/myorg"), "quay.io");
        assert_eq!(
            host_of("registry.example.com:5000"),
            "registry.example.com:5000"
        );
        assert_eq!(host_of("docker.io"), "docker.io");
    }

    #[test]
    fn registry_filter() {
        let only = vec!["quay.io".to_string()];
        assert!(matches_filter("quay.io/myorg", &only));
        assert!(matches_filter("quay.io", &only));
        assert!(!matches_filter("ghcr.io", &only));
        let only = vec!["quay.io/myorg".to_string()];
        assert!(matches_filter("quay.io/myorg", &only));
    }

    #[test]
    fn a_host_configuration_with_no_usable_host_is_reported_not_skipped_silently() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("registry.example.com");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            "server = \"gopher+x://registry.example.com\"\n",
        )
        .unwrap();
        let secrets = crate::secrets::load::parse_secret_content(
            br#"{"auths":{"registry.example.com":{"username":"u","password":"p"}}}"#,
            "s",
            std::path::Path::new("s.json"),
        );
        let p = plan(&secrets, &[root.path().to_path_buf()], &[]).unwrap();
        if p.targets.is_empty() {
            assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
            assert!(
                p.skipped[0].why.contains("no usable host"),
                "{:?}",
                p.skipped
            );
        } else {
            // The hosts module kept an upstream: then it is probed, never dropped.
            assert_eq!(p.targets.len(), 1);
        }
    }

    #[test]
    fn a_jwt_password_gives_its_credential_an_expiry() {
        use base64::Engine as _;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        let jwt = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        let secrets = crate::secrets::load::parse_secret_content(
            format!(r#"{{"auths":{{"r.example":{{"username":"u","password":"{jwt}"}},"s.example":{{"username":"u","password":"plain"}}}}}}"#).as_bytes(),
            "s",
            std::path::Path::new("s.json"),
        );
        let mut p = plan(&secrets, &[], &[]).unwrap();
        add_own_expiries(&mut p);
        let want: std::collections::BTreeMap<(String, String), i64> =
            [(("r.example".to_string(), "s".to_string()), 1_700_000_000)].into();
        assert_eq!(p.providers.expiries, want);
    }

    #[test]
    fn invalid_secret_result_is_config_class() {
        let e = SecretError::Json {
            line: 1,
            column: 2,
            category: serde_json::error::Category::Syntax,
        };
        let r = invalid_result("bad", &e);
        assert!(!r.success);
        assert_eq!(r.reason, Some(Reason::SecretInvalid));
        assert_eq!(r.class, Some(crate::probe::Class::Config));
        assert_eq!(r.registry, "");
        assert!(r.detail.contains("line 1, column 2"));
    }
}
