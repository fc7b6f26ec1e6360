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
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            probe_credential(&env, &t).await
        }));
    }
    let mut results = plan.invalid.clone();
    for h in handles {
        match h.await {
            Ok(r) => results.push(r),
            Err(e) => tracing::error!(error = %e, "a probe task failed"),
        }
    }
    results
}

/// What [`spawn_plan`] and [`spawn_images`] report, by index in their order; `T` is what one
/// probe gives (a credential probe's result, an image's attempts).
#[derive(Debug)]
pub enum Event<T = ProbeResult> {
    /// Probe `index` took its concurrency slot and started.
    Started(usize),
    /// Probe `index` finished with this result.
    Finished(usize, Box<T>),
}

/// Starts kubelet's pull loop for every image plan, at most `concurrency` images at once,
/// reporting each start and each image's results (in attempt order) as they happen; index `i`
/// is `images[i]`. The channel closes when all are done.
pub fn spawn_images(
    env: &ProbeEnv,
    images: &[ImagePlan],
    audit_all: bool,
    concurrency: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<Event<Vec<ProbeResult>>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    for (i, p) in images.iter().enumerate() {
        let (env, p, sem, started) = (env.clone(), p.clone(), Arc::clone(&sem), tx.clone());
        let task = tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let _ = started.send(Event::Started(i));
            probe_image(&env, &p.attempts, &p.key_verdicts, audit_all).await
        });
        let tx = tx.clone();
        tokio::spawn(async move {
            match task.await {
                Ok(r) => {
                    let _ = tx.send(Event::Finished(i, Box::new(r)));
                }
                Err(e) => tracing::error!(error = %e, "an image probe task failed"),
            }
        });
    }
    rx
}

/// Starts every credential probe of `plan`, at most `concurrency` in flight, and reports each
/// start and result as it happens; the channel closes when all are done. Index `i` is
/// `plan.invalid[i]` (finished at once) below `plan.invalid.len()`, else
/// `plan.targets[i - plan.invalid.len()]`: the order [`run_plan`] returns. A probe task that
/// panics is logged and reports nothing.
pub fn spawn_plan(
    env: &ProbeEnv,
    plan: &Plan,
    concurrency: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, r) in plan.invalid.iter().enumerate() {
        let _ = tx.send(Event::Finished(i, Box::new(r.clone())));
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let offset = plan.invalid.len();
    for (j, t) in plan.targets.iter().enumerate() {
        let (env, t, sem, started) = (env.clone(), t.clone(), Arc::clone(&sem), tx.clone());
        let task = tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let _ = started.send(Event::Started(offset + j));
            probe_credential(&env, &t).await
        });
        let tx = tx.clone();
        tokio::spawn(async move {
            match task.await {
                Ok(r) => {
                    let _ = tx.send(Event::Finished(offset + j, Box::new(r)));
                }
                Err(e) => tracing::error!(error = %e, "a probe task failed"),
            }
        });
    }
    rx
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
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            probe_image(&env, &p.attempts, &p.key_verdicts, audit_all).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(error = %e, "an image probe task failed"),
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
