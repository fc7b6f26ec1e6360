//! The `check` command's report: what was read paired with each secret's shape, the diagnosis
//! of each planned image (with its pod's context for the fixes), and the JSON documents of
//! `check --output json`. `cli` only chooses the output and prints.

use crate::inputs::Loaded;
use crate::plan::pod::{FollowUps, PlannedImage};
use crate::podspec::Workload;
use crate::probe::ProbeResult;
use crate::report::diagnosis::{
    diagnose_credential, diagnose_image, Context, ImageDiagnosis, ImageFacts, ImageInput,
    SecretInfo, Walk,
};
use crate::report::status::{with_diagnoses, ImageCheckDoc, MissingSecret};

/// What `check` read, with each secret's shape and load time for the diagnosis.
pub struct CheckInputs {
    /// What was read.
    pub loaded: Loaded,
    /// Each secret's shape, in the order of `loaded.secrets`.
    pub infos: Vec<SecretInfo>,
}

impl CheckInputs {
    /// Pairs what was read with each secret's shape.
    pub fn new(loaded: Loaded) -> CheckInputs {
        let mut infos: Vec<SecretInfo> = loaded
            .secrets
            .iter()
            .zip(&loaded.seconds)
            .map(|(s, t)| SecretInfo::new(s, *t))
            .collect();
        for &(secret, answer) in &loaded.provider_target_secrets {
            if let (Some(info), Some(a)) =
                (infos.get_mut(secret), loaded.provider_targets.get(answer))
            {
                info.provider = Some(crate::report::diagnosis::provider_step(a));
            }
        }
        CheckInputs { loaded, infos }
    }

    /// The shape of secret `id`.
    pub fn info(&self, id: Option<&str>) -> Option<&SecretInfo> {
        id.and_then(|id| self.infos.iter().find(|i| i.id == id))
    }
}

/// The diagnosis of each planned image from its pull attempts and the credential probes that
/// followed them (`follow`, results `creds`), with the pod's context (namespace, how to roll
/// it, missing and unreferenced secrets, service account) for the fixes.
pub fn diagnose_images(
    inputs: &CheckInputs,
    planned: &[PlannedImage],
    pulls: &[Vec<ProbeResult>],
    follow: &FollowUps,
    creds: &[ProbeResult],
) -> Vec<ImageDiagnosis> {
    let loaded = &inputs.loaded;
    planned
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let workload = p.job.workload.map(|w| &loaded.workloads[w]);
            let ctx = Context {
                namespace: workload.and_then(|w| w.namespace.clone()),
                roll: workload.map(Workload::roll_command),
                missing: p.job.missing.clone(),
                unreferenced_matches: p.unreferenced_matches.clone(),
                service_account: workload.filter(|w| w.is_template()).map(|w| {
                    w.service_account
                        .clone()
                        .unwrap_or_else(|| "default".to_string())
                }),
            };
            let attempts = pulls[i]
                .iter()
                .enumerate()
                .map(|(j, pull)| {
                    let key = p.plan.attempts.get(j).and_then(|a| a.key.clone());
                    let cred = follow.index[i]
                        .get(j)
                        .copied()
                        .flatten()
                        .and_then(|c| creds.get(c));
                    (key, cred, pull)
                })
                .collect();
            diagnose_image(&ImageInput {
                facts: ImageFacts {
                    image: p.job.image.clone(),
                    domain: p.reference.namespace().to_string(),
                    repository: p.reference.path().to_string(),
                    reference: p.reference.reference().to_string(),
                    mismatches: Vec::new(),
                    mismatch_user: None,
                    mismatch_secret: None,
                },
                workload: workload.map(Workload::title),
                containers: p.job.containers.clone(),
                secrets: p.job.used.iter().map(|&s| &inputs.infos[s]).collect(),
                unreferenced: p
                    .job
                    .unreferenced
                    .iter()
                    .map(|&s| &inputs.infos[s])
                    .collect(),
                verdicts: p.verdicts.clone(),
                invalid: p.invalid.as_ref(),
                attempts,
                ctx,
                providers: loaded
                    .provider_images
                    .iter()
                    .filter(|a| a.image == p.reference.repo_to_pull())
                    .map(crate::report::diagnosis::provider_step)
                    .collect(),
            })
        })
        .collect()
}

/// `check --output json` for images, pretty-printed: the contract's `{"probes": [...]}`
/// (invalid secrets, then each attempt, each with its walk), plus `images` (the diagnoses) and
/// `missing_secrets`.
pub fn images_json(
    inputs: &CheckInputs,
    planned: &[PlannedImage],
    pulls: &[Vec<ProbeResult>],
    diagnoses: &[ImageDiagnosis],
    invalid: &[ProbeResult],
) -> String {
    let loaded = &inputs.loaded;
    let mut results: Vec<ProbeResult> = invalid.to_vec();
    let mut walks: Vec<Walk> = invalid
        .iter()
        .map(|r| diagnose_credential(inputs.info(r.secret.as_deref()), r, &Context::default()))
        .collect();
    for (d, rs) in diagnoses.iter().zip(pulls) {
        for (a, r) in d.attempts.iter().zip(rs) {
            results.push(r.clone());
            let mut steps = d.steps.clone();
            steps.extend(a.steps.iter().cloned());
            walks.push(Walk {
                steps,
                verdict: a.verdict.clone(),
            });
        }
    }
    let mut missing = Vec::new();
    for p in planned {
        if let Some(w) = p.job.workload.map(|w| &loaded.workloads[w]) {
            for m in &p.job.missing {
                let entry = MissingSecret {
                    secret: m.clone(),
                    workload: w.title(),
                    namespace: w.namespace.clone(),
                };
                if !missing.contains(&entry) {
                    missing.push(entry);
                }
            }
        }
    }
    pretty(&ImageCheckDoc {
        status: with_diagnoses(&results, walks),
        images: diagnoses,
        missing_secrets: missing,
    })
}

/// `check --output json` for credentials: the status document with each result's walk.
pub fn credentials_json(results: &[ProbeResult], walks: Vec<Walk>) -> String {
    pretty(&with_diagnoses(results, walks))
}

/// Pretty JSON of a document (`{}` if it cannot be encoded, which typed documents cannot).
fn pretty(doc: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".into())
}
