//! Running planned probes once, for `check`: a bounded number in flight, each start and result
//! reported as it happens ([`Event`]), so that `check` can stream. A probe task that panics
//! fails closed: its result is `internal_error` ([`crate::failclosed`]), never a missing one.
//! The daemon schedules its own ([`crate::scheduler`]); both log each finished probe with
//! [`log_result`].

use std::sync::Arc;

use crate::plan::{ImagePlan, Plan};
use crate::probe::credential::{probe_credential, ProbeEnv};
use crate::probe::pull::probe_image;
use crate::probe::ProbeResult;

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
/// is `images[i]`. The channel closes when all are done. A task that panics reports
/// `internal_error` for each of its attempts.
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
        let on_panic = crate::failclosed::internal_error_image(&p);
        let task = tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let _ = started.send(Event::Started(i));
            crate::failclosed::inject_panic(&p.image);
            probe_image(&env, &p.attempts, &p.key_verdicts, audit_all).await
        });
        let tx = tx.clone();
        tokio::spawn(async move {
            let results = match task.await {
                Ok(r) => r,
                // Fail closed. The panic's message is not logged (it could quote anything the
                // probe held).
                Err(_) => {
                    tracing::error!("an image probe task panicked; reporting internal_error");
                    on_panic
                }
            };
            let _ = tx.send(Event::Finished(i, Box::new(results)));
        });
    }
    rx
}

/// Starts every credential probe of `plan`, at most `concurrency` in flight, and reports each
/// start and result as it happens; the channel closes when all are done. Index `i` is
/// `plan.invalid[i]` (finished at once) below `plan.invalid.len()`, else
/// `plan.targets[i - plan.invalid.len()]`. A probe task that panics reports `internal_error`.
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
        let (registry, secret) = (t.registry.clone(), t.secret.clone());
        let task = tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let _ = started.send(Event::Started(offset + j));
            crate::failclosed::inject_panic(&t.registry);
            probe_credential(&env, &t).await
        });
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = match task.await {
                Ok(r) => r,
                // Fail closed. The panic's message is not logged (it could quote anything the
                // probe held).
                Err(_) => {
                    tracing::error!(%registry, %secret, "a probe task panicked; reporting internal_error");
                    crate::failclosed::internal_error(&registry, Some(&secret))
                }
            };
            let _ = tx.send(Event::Finished(offset + j, Box::new(result)));
        });
    }
    rx
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
