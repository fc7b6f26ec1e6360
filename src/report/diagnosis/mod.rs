//! The step-by-step diagnosis `regprobe check` prints: the steps kubelet and containerd take to
//! pull, in order, each with a [`Mark`], its time and its evidence, then one [`Verdict`] naming
//! the class of the failure and a concrete next step.
//!
//! The steps ([`StepKind`]): the secret parsed (and its type), its registry keys, the keys that
//! match the image (and why the others do not), DNS, TCP, TLS, the anonymous `/v2/` challenge,
//! the token request, the authenticated `/v2/`, the manifest `HEAD`. Steps after the one that
//! broke are [`Mark::NotReached`].
//!
//! Everything here is built from [`ProbeResult`]s (which hold no credential), from
//! [`SecretInfo`] (a secret's shape: keys, user names, warnings, never a password) and from
//! kubelet's key verdicts. Nothing here talks to the network.
//!
//! What the probes do not record, and this module therefore cannot show: the certificate a
//! server presented when verification failed (only the error), per-host timings (phase times are
//! summed over the registry and its token service), and response headers other than
//! `WWW-Authenticate`.

mod http;
mod inputs;
mod model;
mod network;
mod provider;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::probe::{ProbeResult, Reason};
use crate::secrets::keyring::KeyOutcome;
use crate::secrets::KeyVerdict;

use super::advice::verdict;
pub use http::{attempt_steps, credential_steps, pull_steps};
pub(crate) use http::{realm_of, status_text};
pub use inputs::{
    keys_step, match_step, mismatch_phrases, missing_step, secret_step, unreferenced_step,
};
pub use model::*;
pub(crate) use network::network_layer;
pub use provider::provider_step;

// ------------------------------------------------------------------------------------------
// Whole diagnoses
// ------------------------------------------------------------------------------------------

/// The diagnosis of one credential probe (`check` without `--image`).
#[derive(Debug, Clone, Serialize)]
pub struct Walk {
    /// The steps.
    pub steps: Vec<Step>,
    /// The conclusion.
    pub verdict: Verdict,
}

/// Diagnoses a credential probe, or a secret that does not parse (`registry == ""`).
pub fn diagnose_credential(secret: Option<&SecretInfo>, r: &ProbeResult, ctx: &Context) -> Walk {
    let mut steps = Vec::new();
    if let Some(s) = secret {
        steps.push(s.provider.clone().unwrap_or_else(|| secret_step(s)));
        if s.error.is_none() {
            steps.push(keys_step(s, Some(&r.registry)));
        }
    }
    if matches!(
        r.reason,
        Some(Reason::ProviderFailed | Reason::ProviderMissing)
    ) {
        // The plugin gave no credential: nothing after it ran.
        steps.push(Step::new(StepKind::Provider, Mark::Fail, r.detail.clone()));
        for k in [
            StepKind::Keys,
            StepKind::Dns,
            StepKind::Tcp,
            StepKind::Tls,
            StepKind::Challenge,
            StepKind::Token,
            StepKind::Verify,
        ] {
            steps.push(Step::new(k, Mark::NotReached, "not reached"));
        }
    } else if r.reason == Some(Reason::SecretInvalid) {
        if let Some(first) = steps.first_mut() {
            first.mark = Mark::Fail;
        }
        for k in [
            StepKind::Keys,
            StepKind::Dns,
            StepKind::Tcp,
            StepKind::Tls,
            StepKind::Challenge,
            StepKind::Token,
            StepKind::Verify,
        ] {
            steps.push(Step::new(k, Mark::NotReached, "not reached"));
        }
    } else {
        steps.extend(credential_steps(r));
    }
    Walk {
        steps,
        verdict: verdict(r, None, ctx),
    }
}

/// One credential attempt of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// `secret a-stale, user alice (key 127.0.0.1:5000/team)` or `no credential`.
    pub title: String,
    /// The secret used (none: anonymous).
    pub secret: Option<String>,
    /// The keyring key used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The steps from DNS to the manifest.
    pub steps: Vec<Step>,
    /// This attempt's conclusion.
    pub verdict: Verdict,
}

/// What is needed to diagnose one image.
#[derive(Debug, Clone, Default)]
pub struct ImageInput<'a> {
    /// The image and what the verdict says about it.
    pub facts: ImageFacts,
    /// The pod (`Deployment team/web`), with `--pod-spec`.
    pub workload: Option<String>,
    /// The containers that run it.
    pub containers: Vec<String>,
    /// The secrets kubelet uses for the pod, pod secrets first, then the node's.
    pub secrets: Vec<&'a SecretInfo>,
    /// Secrets given but not named by the pod.
    pub unreferenced: Vec<&'a SecretInfo>,
    /// Every keyring key with its verdict for the image.
    pub verdicts: Vec<KeyVerdict>,
    /// A secret of the pod that does not parse: kubelet fails the pull before any request.
    pub invalid: Option<&'a ProbeResult>,
    /// Each credential attempt: `(key, credential probe, pull probe)`.
    pub attempts: Vec<(Option<String>, Option<&'a ProbeResult>, &'a ProbeResult)>,
    /// Namespace, roll command, missing references.
    pub ctx: Context,
    /// The `provider` steps: each kubelet credential provider asked for this image.
    pub providers: Vec<Step>,
}

/// The diagnosis of one image (`check --image`, `check --pod-spec`).
#[derive(Debug, Clone, Serialize)]
pub struct ImageDiagnosis {
    /// The image as written.
    pub image: String,
    /// The pod it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Its containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// Whether kubelet's pull would succeed.
    pub pullable: bool,
    /// Secrets, keys and the keyring lookup.
    pub steps: Vec<Step>,
    /// Each credential kubelet tries, in order, until one works.
    pub attempts: Vec<Attempt>,
    /// The conclusion for the image.
    pub verdict: Verdict,
    /// Names in `imagePullSecrets` that were not given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_secrets: Vec<String>,
}

pub(crate) fn attempt_title(key: Option<&str>, pull: &ProbeResult) -> String {
    match (&pull.secret, &pull.username) {
        (Some(s), Some(u)) => format!(
            "secret {s}, user {u}{}",
            key.map(|k| format!(" (key {k})")).unwrap_or_default()
        ),
        (Some(s), None) => format!(
            "secret {s}, no username: containerd pulls anonymously{}",
            key.map(|k| format!(" (key {k})")).unwrap_or_default()
        ),
        (None, Some(u)) => format!(
            "no credential from kubelet; containerd's own registry.configs credential, user {u} (containerd config)"
        ),
        _ => "no credential (anonymous pull)".to_string(),
    }
}

pub(crate) fn attempt_short(a: &Attempt) -> String {
    match (&a.secret, &a.key) {
        (Some(s), Some(k)) => format!("secret {s}, key {k}"),
        (Some(s), None) => format!("secret {s}"),
        _ => "anonymous".into(),
    }
}

/// Diagnoses one image: the secrets, keys and keyring lookup, then each credential attempt,
/// then the verdict.
pub fn diagnose_image(input: &ImageInput<'_>) -> ImageDiagnosis {
    let ctx = &input.ctx;
    let mut steps: Vec<Step> = Vec::new();
    if input.secrets.is_empty() && ctx.missing.is_empty() && input.providers.is_empty() {
        steps.push(Step::new(
            StepKind::Secret,
            Mark::Skip,
            "no pull secret given and no node config.json",
        ));
    }
    for s in &input.secrets {
        steps.push(secret_step(s));
    }
    steps.extend(input.providers.iter().cloned());
    for m in &ctx.missing {
        steps.push(missing_step(m, ctx));
    }
    for s in &input.unreferenced {
        steps.push(unreferenced_step(s, ctx.service_account.as_deref()));
    }
    let blocked = input.invalid.is_some();
    if !blocked {
        for s in input.secrets.iter().filter(|s| s.error.is_none()) {
            steps.push(keys_step(s, None));
        }
        steps.push(match_step(
            &input.verdicts,
            &format!("{}/{}", input.facts.domain, input.facts.repository),
        ));
    } else {
        for k in [StepKind::Keys, StepKind::Match] {
            steps.push(Step::new(k, Mark::NotReached, "not reached"));
        }
    }
    let mismatch_user = input.verdicts.iter().find(|v| !v.matched()).and_then(|v| {
        let secret = v.secrets.first()?;
        input
            .secrets
            .iter()
            .find(|s| &s.id == secret)?
            .keys
            .iter()
            .find(|k| k.key == v.key && !k.username.is_empty())
            .map(|k| k.username.clone())
    });
    let mismatch_secret = input
        .verdicts
        .iter()
        .find(|v| matches!(&v.outcome, KeyOutcome::NotMatched(why) if !why.is_empty()))
        .and_then(|v| v.secrets.first().cloned());
    let facts = ImageFacts {
        mismatches: mismatch_phrases(&input.verdicts),
        mismatch_user,
        mismatch_secret,
        ..input.facts.clone()
    };
    let attempts: Vec<Attempt> = input
        .attempts
        .iter()
        .map(|(key, cred, pull)| {
            let cred_failed_first = cred.is_some_and(|c| !c.success) && !pull.success;
            // The verdict follows the walk: the first step that broke.
            let basis = match cred {
                Some(c) if cred_failed_first => c,
                _ => pull,
            };
            Attempt {
                title: attempt_title(key.as_deref(), pull),
                secret: pull.secret.clone(),
                key: key.clone(),
                steps: attempt_steps(*cred, pull),
                verdict: verdict(basis, Some(&facts), ctx),
            }
        })
        .collect();
    let pullable = !blocked && input.attempts.iter().any(|(_, _, p)| p.success);
    let mut v = if let Some(inv) = input.invalid {
        verdict(inv, Some(&facts), ctx)
    } else if let Some(i) = attempts.iter().position(|a| a.verdict.ok) {
        let a = &attempts[i];
        let with = match &a.secret {
            Some(s) => format!("secret {s}"),
            None => "no credential: the registry lets anyone pull".to_string(),
        };
        Verdict {
            ok: true,
            class: None,
            reason: None,
            summary: format!(
                "pullable: kubelet's pull would succeed ({with}, attempt {} of {})",
                i + 1,
                attempts.len()
            ),
            next: String::new(),
            also: attempts[..i]
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    format!(
                        "attempt {} ({}) fails first: {} ({}): {}; kubelet tries it before every pull: fix it or remove the key",
                        j + 1,
                        attempt_short(f),
                        f.verdict.class.map(|c| c.as_str()).unwrap_or(""),
                        f.verdict.reason.map(|r| r.as_str()).unwrap_or(""),
                        f.verdict.summary
                    )
                })
                .collect(),
        }
    } else {
        let mut first = attempts
            .first()
            .map(|a| a.verdict.clone())
            .unwrap_or_else(|| Verdict {
                ok: false,
                class: None,
                reason: None,
                summary: "no attempt was made".into(),
                next: String::new(),
                also: Vec::new(),
            });
        for (j, a) in attempts.iter().enumerate().skip(1) {
            first.also.push(format!(
                "attempt {} ({}) fails too: {} ({}): {}",
                j + 1,
                attempt_short(a),
                a.verdict.class.map(|c| c.as_str()).unwrap_or(""),
                a.verdict.reason.map(|r| r.as_str()).unwrap_or(""),
                a.verdict.summary
            ));
        }
        first
    };
    for m in &ctx.missing {
        v.also.push(format!(
            "the pod lists imagePullSecrets `{m}`, which was not given: if it is missing in namespace {}, kubelet pulls without it (event FailedToRetrieveImagePullSecret); create it there or give it with --secret",
            ctx.namespace.as_deref().unwrap_or("NAMESPACE")
        ));
    }
    if v.ok {
        for (s, k) in &ctx.unreferenced_matches {
            v.also.push(format!(
                "secret `{s}` has a matching key `{k}` but the pod does not list it: kubelet does not use it"
            ));
        }
    }
    ImageDiagnosis {
        image: input.facts.image.clone(),
        workload: input.workload.clone(),
        containers: input.containers.clone(),
        pullable,
        steps,
        attempts,
        verdict: v,
        missing_secrets: ctx.missing.clone(),
    }
}
