//! Running planned probes once, for `check`: a bounded number in flight, results in plan
//! order. The daemon schedules its own ([`crate::scheduler`]); both log each finished probe
//! with [`log_result`].

use std::sync::Arc;

use crate::plan::pod::PlannedImage;
use crate::plan::{ImagePlan, Plan};
use crate::probe::credential::{probe_credential, ProbeEnv};
use crate::probe::pull::probe_image;
use crate::probe::ProbeResult;

/// Runs every credential probe of `plan` with at most `concurrency` in flight, returning the
/// results in plan order, invalid secrets first.
pub async fn run_plan(env: &ProbeEnv, plan: &Plan, concurrency: usize) -> Vec<ProbeResult> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::new();
    for t in &plan.targets {
        let env = env.clone();
        let t = t.clone();
        let sem = Arc::clone(&sem);
        let who = (t.registry.clone(), t.secret.clone());
        handles.push((
            who,
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                crate::failclosed::inject_panic(&t.registry);
                probe_credential(&env, &t).await
            }),
        ));
    }
    let mut results = plan.invalid.clone();
    for ((registry, secret), h) in handles {
        match h.await {
            Ok(r) => results.push(r),
            // Fail closed: a failed result, never a missing one. The panic's message is not
            // logged (it could quote anything the probe held).
            Err(_) => {
                tracing::error!(%registry, %secret, "a probe task panicked; reporting internal_error");
                results.push(crate::failclosed::internal_error(&registry, Some(&secret)));
            }
        }
    }
    results
}

/// Runs kubelet's pull loop for every image plan, at most `concurrency` images at once.
/// Returns the results of each image, in plan order.
pub async fn run_images(
    env: &ProbeEnv,
    images: &[ImagePlan],
    audit_all: bool,
    concurrency: usize,
) -> Vec<Vec<ProbeResult>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::new();
    for p in images {
        let (env, p, sem) = (env.clone(), p.clone(), Arc::clone(&sem));
        let on_panic = crate::failclosed::internal_error_image(&p);
        handles.push((
            on_panic,
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                crate::failclosed::inject_panic(&p.image);
                probe_image(&env, &p.attempts, &p.key_verdicts, audit_all).await
            }),
        ));
    }
    let mut out = Vec::new();
    for (on_panic, h) in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(_) => {
                tracing::error!("an image probe task panicked; reporting internal_error");
                out.push(on_panic);
            }
        }
    }
    out
}

/// Runs the pull of every planned image that no invalid pod secret blocks ([`run_images`]).
/// Returns one entry per image of `planned`, in order: its results, or none when blocked.
pub async fn run_planned(
    env: &ProbeEnv,
    planned: &[PlannedImage],
    audit_all: bool,
    concurrency: usize,
) -> Vec<Vec<ProbeResult>> {
    let runnable: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].invalid.is_none())
        .collect();
    let plans: Vec<ImagePlan> = runnable.iter().map(|&i| planned[i].plan.clone()).collect();
    let pulled = run_images(env, &plans, audit_all, concurrency).await;
    let mut pulls: Vec<Vec<ProbeResult>> = vec![Vec::new(); planned.len()];
    for (i, rs) in runnable.into_iter().zip(pulled) {
        pulls[i] = rs;
    }
    pulls
}

/// Logs one result at debug level (the per-probe detail; never a secret).
pub fn log_result(r: &ProbeResult) {
    tracing::debug!(
        registry = %r.registry,
        secret = r.secret.as_deref().unwrap_or(""),
        success = r.success,
        reason = r.reason.map(|x| x.as_str()).unwrap_or(""),
        duration = r.duration_seconds,
        detail = %r.detail,
        "probe finished"
    );
}
