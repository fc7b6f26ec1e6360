//! The steps about the inputs: the secret parses, its keys, kubelet's keyring match.

use crate::secrets::keyring::{KeyOutcome, KeyringSource, Mismatch};
use crate::secrets::KeyVerdict;

use super::model::*;

// ------------------------------------------------------------------------------------------
// Secret, keys and match steps
// ------------------------------------------------------------------------------------------

/// The `secret` step of a secret kubelet uses (for the pod, or the node's `config.json`).
pub fn secret_step(s: &SecretInfo) -> Step {
    let from = format!("{}, read from {}", s.kind, s.path);
    match &s.error {
        Some(e) if s.node => Step::new(
            StepKind::Secret,
            Mark::Warn,
            format!("{}: does not parse: {e}", s.id),
        )
        .with_evidence([format!(
            "{from}; kubelet then has no node credentials (pod secrets still work)"
        )]),
        Some(e) if s.skipped => Step::new(
            StepKind::Secret,
            Mark::Warn,
            format!("{}: kubelet skips it: {e}", s.id),
        )
        .with_evidence([format!(
            "{from}; the pull goes on with the other secrets, or anonymously"
        )]),
        Some(e) => Step::new(
            StepKind::Secret,
            Mark::Fail,
            format!("{}: does not parse: {e}", s.id),
        )
        .with_evidence([from]),
        None => Step::new(StepKind::Secret, Mark::Ok, format!("{}: {from}", s.id)),
    }
    .timed(Some(s.seconds))
}

/// The `secret` step of a secret given but not named by the pod: kubelet does not use it.
pub fn unreferenced_step(s: &SecretInfo, service_account: Option<&str>) -> Step {
    let mut step = Step::new(
        StepKind::Secret,
        Mark::Skip,
        format!(
            "{}: given, but the pod does not list it in imagePullSecrets: kubelet does not use it for this pod",
            s.id
        ),
    );
    if let Some(e) = &s.error {
        step.evidence.push(format!("it does not parse either: {e}"));
    }
    if let Some(sa) = service_account {
        step.evidence.push(format!(
            "unless ServiceAccount `{sa}` lists it: admission adds those when the pod is created (`kubectl get pod POD -o yaml` shows the final list)"
        ));
    }
    step
}

/// The `secret` step of a name the pod lists in `imagePullSecrets` that was not given.
pub fn missing_step(name: &str, ctx: &Context) -> Step {
    Step::new(
        StepKind::Secret,
        Mark::Warn,
        format!("{name}: listed in the pod's imagePullSecrets but not given to regprobe"),
    )
    .with_evidence([format!(
        "if it does not exist in namespace {} (`kubectl {}get secret {name}`), kubelet skips it (event FailedToRetrieveImagePullSecret) and pulls without it: that is what is checked below",
        ctx.namespace.as_deref().unwrap_or("NAMESPACE"),
        ctx.ns_flag()
    )])
}

pub(crate) fn key_text(k: &KeyInfo) -> String {
    let mut s = k.key.clone();
    if k.raw_key != k.key {
        s.push_str(&format!(" (written {})", k.raw_key));
    }
    if k.username.is_empty() {
        s.push_str(", no username");
    } else {
        s.push_str(&format!(", user {}", k.username));
    }
    if k.wildcard {
        s.push_str(", wildcard: only matches images");
    }
    s
}

/// The `keys` step of a secret that parsed: its registry keys, as kubelet normalises them. With
/// `only`, just the key of that registry label is listed (a credential probe).
pub fn keys_step(s: &SecretInfo, only: Option<&str>) -> Step {
    let keys: Vec<&KeyInfo> = s
        .keys
        .iter()
        .filter(|k| {
            only.is_none_or(|o| k.key == o || crate::secrets::key::registry_label(&k.key) == o)
        })
        .collect();
    let mut evidence: Vec<String> = s.warnings.clone();
    for k in &keys {
        if k.dropped_token {
            evidence.push(format!(
                "{}: identitytoken/registrytoken ignored: kubelet passes only username and password",
                k.key
            ));
        }
    }
    let (mark, summary) = if s.keys.is_empty() {
        (
            Mark::Warn,
            format!("{}: no registry key (an empty \"auths\")", s.id),
        )
    } else {
        let list: Vec<String> = keys.iter().map(|k| key_text(k)).collect();
        let shown = if list.is_empty() {
            format!("{} keys", s.keys.len())
        } else {
            list.join("; ")
        };
        (
            if evidence.is_empty() {
                Mark::Ok
            } else {
                Mark::Warn
            },
            format!("{}: {shown}", s.id),
        )
    };
    Step::new(StepKind::Keys, mark, summary).with_evidence(evidence)
}

pub(crate) fn secrets_text(v: &KeyVerdict) -> String {
    let mut s = v.secrets.join(", ");
    if v.source == KeyringSource::Node {
        s.push_str(", node keyring");
    }
    s
}

/// The `match` step: kubelet's keyring lookup for the image, every key with why it does or does
/// not apply.
pub fn match_step(verdicts: &[KeyVerdict], repo_to_pull: &str) -> Step {
    let matched: Vec<String> = verdicts
        .iter()
        .filter(|v| v.matched())
        .flat_map(|v| v.secrets.iter().map(move |s| format!("{} ({s})", v.key)))
        .collect();
    let evidence: Vec<String> = verdicts
        .iter()
        .filter_map(|v| match &v.outcome {
            KeyOutcome::Matched => None,
            KeyOutcome::DockerHubFallback => Some(format!(
                "key {} ({}): used as the Docker Hub fallback: no other key matched",
                v.key,
                secrets_text(v)
            )),
            KeyOutcome::NotMatched(_) => Some(format!(
                "key {} ({}): no match: {}",
                v.key,
                secrets_text(v),
                v.reason().unwrap_or_default()
            )),
        })
        .collect();
    if !matched.is_empty() {
        Step::new(
            StepKind::Match,
            Mark::Ok,
            format!("keys matched, in kubelet's order: {}", matched.join(", ")),
        )
        .with_evidence(evidence)
    } else if verdicts.is_empty() {
        Step::new(
            StepKind::Match,
            Mark::Warn,
            format!("no registry key at all: kubelet pulls {repo_to_pull} anonymously"),
        )
    } else {
        Step::new(
            StepKind::Match,
            Mark::Warn,
            format!("no key matches {repo_to_pull}: kubelet pulls anonymously"),
        )
        .with_evidence(evidence)
    }
}

/// Why no key matched, one phrase per key, as an SRE says it: "secret `s` has key
/// `private.registry.com` but the image host is `registry.company.com`".
pub fn mismatch_phrases(verdicts: &[KeyVerdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter_map(|v| {
            let KeyOutcome::NotMatched(why) = &v.outcome else {
                return None;
            };
            let who = format!("secret `{}` has key `{}`", v.secrets.join("`, `"), v.key);
            let first = why.first()?;
            Some(match first {
                Mismatch::Host { image_host, .. } | Mismatch::LabelCount { image_host, .. } => {
                    let port = why.iter().find_map(|m| match m {
                        Mismatch::Port { image_port, .. } if !image_port.is_empty() => {
                            Some(format!(":{image_port}"))
                        }
                        _ => None,
                    });
                    format!(
                        "{who} but the image host is `{image_host}{}`",
                        port.unwrap_or_default()
                    )
                }
                Mismatch::Port {
                    key_port,
                    image_port,
                } => format!(
                    "{who} but the image's port is {} and the key's is {}",
                    if image_port.is_empty() {
                        "not written".to_string()
                    } else {
                        format!("`{image_port}`")
                    },
                    if key_port.is_empty() {
                        "not written".to_string()
                    } else {
                        format!("`{key_port}`")
                    }
                ),
                Mismatch::Path {
                    key_path,
                    image_path,
                } => format!(
                    "{who} but its path {key_path} is not a prefix of the image path {image_path}"
                ),
                other => format!("{who} but {other}"),
            })
        })
        .collect()
}
