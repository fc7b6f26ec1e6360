//! Fail closed (issue 13): a probe that panics is a **failed** result with reason
//! [`Reason::InternalError`], never a missing one (a missing result made `check` print
//! `{"probes": []}` and exit 0, and left the daemon's slot marked in flight for ever).
//!
//! * [`internal_error`] builds the result for a credential probe, [`internal_error_image`] those
//!   of an image probe (one per attempt, as [`crate::probe::pull::probe_image`] would).
//! * [`InFlight`] is the daemon's drop guard for a running slot: dropped without
//!   [`InFlight::finish`] (the task panicked or was cancelled), it reports the slot's
//!   internal-error results, which also clears the in-flight mark.
//! * [`inject_panic`] is the test-only hook: in debug builds, `REGPROBE_TEST_PANIC=<registry>`
//!   makes every probe of that registry (or image namespace) panic, and
//!   `REGPROBE_TEST_PANIC=scheduler` makes the daemon's scheduler panic after its first load.
//!   Release builds compile it to nothing.

use crate::plan::ImagePlan;
use crate::probe::{classify, ProbeResult};

/// Words of the `detail` of a probe that panicked (never the panic's message, which could quote
/// anything the probe held).
pub const PANIC_DETAIL: &str =
    "the probe stopped on an internal error (a regprobe bug); its verdict is unknown";

/// The failed result of a credential probe of `registry` with `secret` that did not finish.
pub fn internal_error(registry: &str, secret: Option<&str>) -> ProbeResult {
    let mut r = ProbeResult::new(registry, secret.map(str::to_owned));
    let reason = classify::internal_error();
    r.success = false;
    r.reason = Some(reason);
    r.class = Some(reason.class());
    r.detail = PANIC_DETAIL.to_string();
    r.timestamp = crate::clock::unix_now();
    r
}

/// The failed results of an image probe that did not finish: one per attempt (at least one).
pub fn internal_error_image(plan: &ImagePlan) -> Vec<ProbeResult> {
    let mut out: Vec<ProbeResult> = plan
        .attempts
        .iter()
        .map(|a| {
            let mut r = internal_error(&a.namespace, a.secret.as_deref());
            r.image = Some(plan.image.clone());
            r
        })
        .collect();
    if out.is_empty() {
        let mut r = internal_error("", None);
        r.image = Some(plan.image.clone());
        out.push(r);
    }
    out
}

/// A drop guard for one running probe task: on drop without [`InFlight::finish`] it sends
/// `(key, on_drop)` on `tx` (the internal-error results), so the receiver always hears from a
/// slot it marked in flight.
pub struct InFlight<K> {
    msg: Option<(K, Vec<ProbeResult>)>,
    tx: tokio::sync::mpsc::UnboundedSender<(K, Vec<ProbeResult>)>,
}

impl<K> InFlight<K> {
    /// Arms the guard for `key`; `on_drop` is what is reported if the task never finishes.
    pub fn new(
        key: K,
        on_drop: Vec<ProbeResult>,
        tx: tokio::sync::mpsc::UnboundedSender<(K, Vec<ProbeResult>)>,
    ) -> Self {
        InFlight {
            msg: Some((key, on_drop)),
            tx,
        }
    }

    /// Reports the task's own `results` and disarms the guard.
    pub fn finish(mut self, results: Vec<ProbeResult>) {
        if let Some((key, _)) = self.msg.take() {
            let _ = self.tx.send((key, results));
        }
    }
}

impl<K> Drop for InFlight<K> {
    fn drop(&mut self) {
        if let Some(msg) = self.msg.take() {
            tracing::error!("a probe task ended without a result; reporting internal_error");
            let _ = self.tx.send(msg);
        }
    }
}

/// The environment variable of the test-only panic hook (debug builds only).
pub const TEST_PANIC_ENV: &str = "REGPROBE_TEST_PANIC";

/// Test-only hook: panics when `REGPROBE_TEST_PANIC` equals `what` (debug builds only; a no-op
/// in release builds).
#[inline]
pub fn inject_panic(what: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(TEST_PANIC_ENV).is_ok_and(|v| v == what) {
        panic!("injected test panic ({TEST_PANIC_ENV}={what})");
    }
    #[cfg(not(debug_assertions))]
    let _ = what;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Class, Reason};

    #[test]
    fn a_panicked_probe_is_a_failed_internal_error() {
        let r = internal_error("quay.io", Some("pull"));
        assert!(!r.success);
        assert_eq!(r.reason, Some(Reason::InternalError));
        assert_eq!(r.class, Some(Class::Config));
        assert_eq!(r.secret.as_deref(), Some("pull"));
    }

    #[tokio::test]
    async fn the_guard_reports_once_on_drop_or_finish() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let g = InFlight::new(1u8, vec![internal_error("a", None)], tx.clone());
        let task = tokio::spawn(async move {
            let _g = g;
            panic!("boom");
        });
        assert!(task.await.unwrap_err().is_panic());
        let (k, rs) = rx.recv().await.unwrap();
        assert_eq!((k, rs[0].reason), (1, Some(Reason::InternalError)));

        let g = InFlight::new(2u8, vec![internal_error("a", None)], tx);
        g.finish(Vec::new());
        let (k, rs) = rx.recv().await.unwrap();
        assert_eq!((k, rs.len()), (2, 0));
        assert!(rx.try_recv().is_err());
    }
}
