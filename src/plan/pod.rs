//! Image planning: kubelet's choice of secrets for each image of a pod, the credential
//! attempts of each pull, and which credential probes follow a pull.
//!
//! * `--image` (and the daemon's canaries): every secret given, pod secrets and the node's.
//! * `--pod-spec`: per workload, the secrets it lists in `imagePullSecrets` (in order), then
//!   the node's `config.json`, as kubelet builds the pull keyring (`MakeDockerKeyring`);
//!   secrets given but not listed are kept apart (a hint when they would match), and names
//!   listed but not given are reported missing.
//!
//! As [`super::plan`], no network; the only files read are the host configuration. Secrets
//! and pod specs come read ([`crate::inputs::Loaded`]).

use std::path::PathBuf;

use super::{host_of, invalid_result, Plan};
use crate::hosts::{hosts_for, HostsError};
use crate::inputs::Loaded;
use crate::probe::credential::CredentialTarget;
use crate::probe::pull::PullTarget;
use crate::probe::{KeyRef, ProbeResult};
use crate::reference::{ImageRef, ReferenceError};
use crate::secrets::keyring::{NODE_SECRET_ID, PROVIDER_SECRET_PREFIX};
use crate::secrets::{KeyVerdict, Keyring, Secret};

/// An image probe: kubelet's credential attempts for one image, in order.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The image as given (`--image`).
    pub image: String,
    /// One attempt per matched key in kubelet's order, or one anonymous attempt when none
    /// matched (kubelet then pulls without credentials).
    pub attempts: Vec<PullTarget>,
    /// Every key of the keyring with why it does or does not apply to this image.
    pub key_verdicts: Vec<crate::secrets::KeyVerdict>,
}

/// A `--image` that is not a valid reference.
#[derive(Debug, thiserror::Error)]
pub enum ImagePlanError {
    /// The reference does not parse as containerd and kubelet parse it.
    #[error("--image {image:?}: {error}")]
    Reference {
        /// The value given.
        image: String,
        /// Why.
        error: ReferenceError,
    },
    /// The host configuration could not be read.
    #[error(transparent)]
    Hosts(#[from] HostsError),
}

/// Plans the image probes: each image normalised as containerd does (`docs/containerd-kubelet.md` §2), its keys
/// looked up in kubelet's keyring (pod secrets, then the node's `config.json`, `docs/containerd-kubelet.md` §3), and
/// its hosts from containerd's host configuration (mirrors first, `docs/containerd-kubelet.md` §6). One plan per
/// image, in order.
///
/// Errors: the first image that does not parse, or an unreadable host configuration.
pub fn plan_images(
    images: &[String],
    secrets: &[Secret],
    hosts_dirs: &[PathBuf],
) -> Result<Vec<ImagePlan>, ImagePlanError> {
    let keyring = Keyring::new(secrets);
    let mut out = Vec::new();
    for image in images {
        let r: ImageRef =
            crate::reference::parse(image).map_err(|error| ImagePlanError::Reference {
                image: image.clone(),
                error,
            })?;
        let hosts = hosts_for(hosts_dirs, r.namespace())?.hosts;
        let matches = keyring.lookup_image(&r);
        let matched_keys: Vec<KeyRef> = matches
            .iter()
            .map(|m| KeyRef {
                secret: m.secret.clone(),
                key: m.key.clone(),
            })
            .collect();
        let base = PullTarget {
            image: image.clone(),
            namespace: r.namespace().to_string(),
            repository: r.path().to_string(),
            reference: r.reference().to_string(),
            is_digest: r.digest().is_some(),
            hosts,
            secret: None,
            key: None,
            credential: None,
            matched_keys,
            failed_providers: Vec::new(),
            cri_auths: Vec::new(),
        };
        let attempts = if matches.is_empty() {
            vec![base]
        } else {
            matches
                .into_iter()
                .map(|m| PullTarget {
                    secret: Some(m.secret),
                    key: Some(m.key),
                    credential: Some(m.credential),
                    ..base.clone()
                })
                .collect()
        };
        let key_verdicts = keyring.explain(&r.repo_to_pull());
        out.push(ImagePlan {
            image: image.clone(),
            attempts,
            key_verdicts,
        });
    }
    Ok(out)
}

/// Marks the attempts of `plan` with the credential providers that matched `repo_to_pull`
/// and failed (their answers among `answers`).
pub fn set_failed_providers(
    plan: &mut ImagePlan,
    answers: &[crate::providers::Answer],
    repo_to_pull: &str,
) {
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| a.image == repo_to_pull && a.result.is_err())
        .map(|a| a.provider.clone())
        .collect();
    for a in &mut plan.attempts {
        a.failed_providers = failed.clone();
    }
}

/// Gives the attempts kubelet makes without a credential containerd's own
/// `registry.configs` credentials (used per host, `crate::secrets::cri`).
pub fn set_cri_auths(plan: &mut ImagePlan, cri: &crate::secrets::cri::CriAuths) {
    for a in plan.attempts.iter_mut().filter(|a| a.credential.is_none()) {
        a.cri_auths = cri
            .auths
            .iter()
            .map(|c| (c.host.clone(), c.credential.clone()))
            .collect();
    }
}

/// One image to walk: from `--image` (with every secret given) or from a `--pod-spec` workload
/// (with the secrets it lists, plus the node's `config.json`).
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// The image as written.
    pub image: String,
    /// Index into [`Loaded::workloads`] of the workload it comes from; `None` for `--image`.
    pub workload: Option<usize>,
    /// The containers of the workload that run it.
    pub containers: Vec<String>,
    /// Indices into the secrets kubelet uses: pod secrets in `imagePullSecrets` order, then the
    /// node's.
    pub used: Vec<usize>,
    /// Indices of secrets given but not listed by the pod.
    pub unreferenced: Vec<usize>,
    /// Names the pod lists that were not given.
    pub missing: Vec<String>,
}

/// The jobs of `images` (each with every secret), then of each image of each workload.
pub fn image_jobs(images: &[String], loaded: &Loaded) -> Vec<ImageJob> {
    let secrets = &loaded.secrets;
    let is_node = |s: &Secret| s.id == NODE_SECRET_ID;
    // A provider's answers are per image (`plan_pods` adds them): the ones in `secrets` were
    // asked for a `matchImages` host and belong to no image.
    let is_provider = |s: &Secret| s.id.starts_with(PROVIDER_SECRET_PREFIX);
    let mut jobs: Vec<ImageJob> = images
        .iter()
        .map(|image| ImageJob {
            image: image.clone(),
            workload: None,
            containers: Vec::new(),
            used: (0..secrets.len())
                .filter(|&i| !is_provider(&secrets[i]))
                .collect(),
            unreferenced: Vec::new(),
            missing: Vec::new(),
        })
        .collect();
    for (wi, w) in loaded.workloads.iter().enumerate() {
        let mut used = Vec::new();
        let mut missing = Vec::new();
        for name in &w.pull_secrets {
            let found: Vec<usize> = secrets
                .iter()
                .enumerate()
                .filter(|(_, s)| &s.id == name && !is_node(s))
                .map(|(i, _)| i)
                .collect();
            if found.is_empty() {
                missing.push(name.clone());
            }
            used.extend(found);
        }
        used.extend(
            secrets
                .iter()
                .enumerate()
                .filter(|(_, s)| is_node(s))
                .map(|(i, _)| i),
        );
        let unreferenced: Vec<usize> = (0..secrets.len())
            .filter(|&i| !used.contains(&i) && !is_provider(&secrets[i]))
            .collect();
        for img in &w.images {
            jobs.push(ImageJob {
                image: img.image.clone(),
                workload: Some(wi),
                containers: img.containers.clone(),
                used: used.clone(),
                unreferenced: unreferenced.clone(),
                missing: missing.clone(),
            });
        }
    }
    jobs
}

/// Whether an image's registry passes `check --registry`.
fn image_selected(only: &[String], domain: &str) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o == domain || host_of(o) == domain || host_of(o) == host_of(domain))
}

/// A planned image: its job, the kubelet plan and the facts the verdict needs.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// Where the image comes from and which secrets it gets.
    pub job: ImageJob,
    /// kubelet's credential attempts.
    pub plan: ImagePlan,
    /// The image, parsed as containerd parses it.
    pub reference: ImageRef,
    /// Every key of the used secrets, with why it does or does not apply.
    pub verdicts: Vec<KeyVerdict>,
    /// `(secret, key)` of the unreferenced secrets that would match, each secret once.
    pub unreferenced_matches: Vec<(String, String)>,
    /// The first pod secret whose JSON kubelet cannot unmarshal: kubelet fails the pull before
    /// any request. Secrets kubelet skips ([`crate::secrets::SecretError::kubelet_skips`]: wrong
    /// type, no key, empty value) are not here: the pull goes on without them.
    pub invalid: Option<ProbeResult>,
}

/// An image of `--image` or `--pod-spec` that cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PodPlanError {
    /// The image is not a valid reference; `at` names where it was written
    /// (`--image`, `--pod-spec FILE: Deployment team/web (app): image`).
    #[error("{at} {image:?}: {error}")]
    Reference {
        /// Where it was written.
        at: String,
        /// The image as written.
        image: String,
        /// Why.
        error: ReferenceError,
    },
    /// The image's plan failed (the host configuration could not be read).
    #[error(transparent)]
    Plan(#[from] ImagePlanError),
    /// The plan came back empty.
    #[error("{0}: nothing planned")]
    Nothing(String),
}

/// Plans every image of `images` and of the workloads read, limited to the registries of
/// `only` (`check --registry`; empty: all), in [`image_jobs`] order.
///
/// Errors: the first image that cannot be planned ([`PodPlanError`]).
pub fn plan_pods(
    images: &[String],
    loaded: &Loaded,
    only: &[String],
) -> Result<Vec<PlannedImage>, PodPlanError> {
    let mut out = Vec::new();
    for job in image_jobs(images, loaded) {
        let r = crate::reference::parse(&job.image).map_err(|error| {
            let at = match job.workload.map(|w| &loaded.workloads[w]) {
                Some(w) => format!(
                    "--pod-spec {}: {} ({}): image",
                    w.source.display(),
                    w.title(),
                    job.containers.join(", ")
                ),
                None => "--image".to_string(),
            };
            PodPlanError::Reference {
                at,
                image: job.image.clone(),
                error,
            }
        })?;
        if !image_selected(only, r.namespace()) {
            continue;
        }
        let pick = |ix: &[usize]| -> Vec<Secret> {
            ix.iter().map(|&i| loaded.secrets[i].clone()).collect()
        };
        let mut used = pick(&job.used);
        // kubelet's third sub-keyring: what each provider answered for this image.
        let repo = r.repo_to_pull();
        used.extend(
            loaded
                .provider_images
                .iter()
                .filter(|a| a.image == repo)
                .filter_map(crate::providers::answer_secret),
        );
        let unreferenced = pick(&job.unreferenced);
        let mut plan = plan_images(std::slice::from_ref(&job.image), &used, &loaded.hosts_dirs)?
            .pop()
            .ok_or_else(|| PodPlanError::Nothing(job.image.clone()))?;
        set_failed_providers(&mut plan, &loaded.provider_images, &repo);
        set_cri_auths(&mut plan, &loaded.cri_auths);
        let verdicts = Keyring::new(&used).explain(&repo);
        let mut unreferenced_matches: Vec<(String, String)> = Vec::new();
        for m in Keyring::new(&unreferenced).lookup(&repo) {
            if !unreferenced_matches.iter().any(|(s, _)| *s == m.secret) {
                unreferenced_matches.push((m.secret, m.key));
            }
        }
        let invalid = used
            .iter()
            .filter(|s| s.id != NODE_SECRET_ID)
            .find_map(|s| {
                s.entries
                    .as_ref()
                    .err()
                    .filter(|e| !e.kubelet_skips())
                    .map(|e| invalid_result(&s.id, e))
            });
        out.push(PlannedImage {
            job,
            plan,
            reference: r,
            verdicts,
            unreferenced_matches,
            invalid,
        });
    }
    Ok(out)
}

/// The host a pull's verdict rests on: the one it resolved on, else the last one it tried
/// (the [`crate::probe::outcome::HostVerdict`] URLs), else the attempt's last host. The
/// follow-up handshake goes there, with that host's own settings (hosts.toml headers, TLS), not
/// to an upstream containerd never contacted.
fn pull_host<'a>(
    attempt: &'a PullTarget,
    pull: &ProbeResult,
) -> Option<&'a crate::hosts::RegistryHost> {
    let verdict = pull
        .hosts
        .iter()
        .rev()
        .find(|v| v.success)
        .or(pull.hosts.last());
    verdict
        .and_then(|v| {
            attempt
                .hosts
                .iter()
                .find(|h| format!("{}://{}{}", h.scheme, h.host, h.path) == v.host)
        })
        .or(attempt.hosts.last())
}

/// The credential probes that follow the pulls, and which attempt each follows.
#[derive(Debug, Default)]
pub struct FollowUps {
    /// The credential probes, one per `(secret, key, registry)`.
    pub plan: Plan,
    /// Per image, per attempt: the index into `plan.targets` of its credential probe.
    pub index: Vec<Vec<Option<usize>>>,
}

/// The `/v2/` handshake of each credential an attempt used, once per `(secret, key, host)`,
/// when it tells more than the pull: the pull worked, or it was refused for permission (does
/// the credential itself work?). After a refused login, a network failure or a broken registry
/// the pull's own requests show where it broke; repeating the login would add failed logins
/// (lockout policies), waits (timeouts) and load (429). Anonymous attempts get none.
///
/// `pulls` holds the results of each image of `planned`, one per attempt (empty when not run).
pub fn follow_ups(planned: &[PlannedImage], pulls: &[Vec<ProbeResult>]) -> FollowUps {
    let mut out = FollowUps::default();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (p, rs) in planned.iter().zip(pulls) {
        let mut row = Vec::new();
        for (attempt, pull) in p.plan.attempts.iter().zip(rs) {
            if !(pull.success || pull.class == Some(crate::probe::Class::Permission)) {
                row.push(None);
                continue;
            }
            let (Some(secret), Some(cred), Some(host)) = (
                attempt.secret.as_ref(),
                attempt.credential.as_ref(),
                pull_host(attempt, pull),
            ) else {
                row.push(None);
                continue;
            };
            if cred.username.is_empty() {
                row.push(None);
                continue;
            }
            let id = (
                secret.clone(),
                attempt.key.clone().unwrap_or_default(),
                attempt.namespace.clone(),
            );
            let at = match seen.iter().position(|s| *s == id) {
                Some(at) => at,
                None => {
                    seen.push(id);
                    out.plan.targets.push(CredentialTarget {
                        secret: secret.clone(),
                        registry: attempt.namespace.clone(),
                        host: host.clone(),
                        credential: cred.clone(),
                    });
                    seen.len() - 1
                }
            };
            row.push(Some(at));
        }
        out.index.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podspec::{PodImage, Workload};
    use std::path::Path;

    fn secret(id: &str, registry: &str) -> Secret {
        let json = format!(r#"{{"auths":{{"{registry}":{{"username":"u","password":"p"}}}}}}"#);
        crate::secrets::load::parse_secret_content(json.as_bytes(), id, Path::new("s.json"))
            .pop()
            .unwrap()
    }

    fn loaded() -> Loaded {
        Loaded {
            secrets: vec![
                secret("regcred", "127.0.0.1:5000"),
                secret("other", "127.0.0.1:5000"),
                secret(NODE_SECRET_ID, "127.0.0.1:6000"),
            ],
            workloads: vec![Workload {
                kind: "Pod".into(),
                name: "web".into(),
                namespace: Some("team".into()),
                service_account: None,
                pull_secrets: vec!["regcred".into(), "gone".into()],
                images: vec![PodImage {
                    image: "127.0.0.1:5000/team/app:1".into(),
                    containers: vec!["app".into()],
                }],
                source: "pod.yaml".into(),
            }],
            ..Loaded::default()
        }
    }

    #[test]
    fn a_pod_gets_the_secrets_it_lists_then_the_nodes() {
        let jobs = image_jobs(&["127.0.0.1:6000/x".to_string()], &loaded());
        assert_eq!(jobs.len(), 2);
        // `--image`: every secret given.
        assert_eq!(jobs[0].used, vec![0, 1, 2]);
        assert!(jobs[0].unreferenced.is_empty() && jobs[0].missing.is_empty());
        // The pod: `regcred`, then the node's; `other` is given but not listed.
        assert_eq!(jobs[1].workload, Some(0));
        assert_eq!(jobs[1].used, vec![0, 2]);
        assert_eq!(jobs[1].unreferenced, vec![1]);
        assert_eq!(jobs[1].missing, vec!["gone".to_string()]);
    }

    #[test]
    fn registry_filter_and_unreferenced_matches() {
        let l = loaded();
        let planned = plan_pods(&[], &l, &[]).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].reference.namespace(), "127.0.0.1:5000");
        assert_eq!(
            planned[0].unreferenced_matches,
            vec![("other".to_string(), "127.0.0.1:5000".to_string())]
        );
        assert!(planned[0].invalid.is_none());
        assert!(plan_pods(&[], &l, &["quay.io".to_string()])
            .unwrap()
            .is_empty());
        let e = plan_pods(&["Bad:Image".to_string()], &l, &[]).unwrap_err();
        assert!(e.to_string().starts_with("--image \"Bad:Image\": "), "{e}");
    }

    fn manifest(id: &str, body: &str) -> Secret {
        crate::secrets::load::parse_secret_content(body.as_bytes(), id, Path::new("s.yaml"))
            .pop()
            .unwrap()
    }

    /// kubelet `MakeDockerKeyring` skips a Secret of another type, one without its key and one
    /// with an empty value; only a JSON error in a pull secret it reads fails the pod's pulls.
    #[test]
    fn secrets_kubelet_skips_do_not_block_the_pull_a_json_error_does() {
        let skipped = [
            "kind: Secret\ntype: Opaque\nstringData:\n  .dockerconfigjson: '{\"auths\":{}}'\n",
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  other: x\n",
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: ''\n",
        ];
        for body in skipped {
            let mut l = loaded();
            l.secrets[0] = manifest("regcred", body);
            assert!(l.secrets[0].entries.is_err(), "{body}");
            let planned = plan_pods(&[], &l, &[]).unwrap();
            assert!(planned[0].invalid.is_none(), "{body}");
            // The pull goes on with the node's credentials (none match here: anonymous).
            assert_eq!(planned[0].plan.attempts.len(), 1);
            assert!(planned[0].plan.attempts[0].secret.is_none());
        }
        let mut l = loaded();
        l.secrets[0] = manifest(
            "regcred",
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":'\n",
        );
        let planned = plan_pods(&[], &l, &[]).unwrap();
        let invalid = planned[0].invalid.as_ref().expect("a JSON error blocks");
        assert_eq!(invalid.reason, Some(crate::probe::Reason::SecretInvalid));
    }

    #[test]
    fn only_a_pull_that_worked_or_was_refused_for_permission_is_followed_once() {
        let l = loaded();
        let mut planned = plan_pods(&[], &l, &[]).unwrap();
        planned.push(planned[0].clone());
        planned.push(planned[0].clone());
        let pull = |success: bool, class: Option<crate::probe::Class>| {
            let mut r = ProbeResult::new("127.0.0.1:5000", Some("regcred".into()));
            r.success = success;
            r.class = class;
            vec![r]
        };
        let pulls = vec![
            pull(true, None),
            pull(false, Some(crate::probe::Class::Permission)),
            pull(false, Some(crate::probe::Class::Network)),
        ];
        let f = follow_ups(&planned, &pulls);
        assert_eq!(f.plan.targets.len(), 1);
        assert_eq!(f.plan.targets[0].secret, "regcred");
        assert_eq!(f.index, vec![vec![Some(0)], vec![Some(0)], vec![None]]);
    }
}
