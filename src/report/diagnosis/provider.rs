//! The `provider` step: a kubelet credential-provider plugin asked for an image or a host
//! (`crate::providers`), as an SRE needs it: which provider matched and by which pattern, run or
//! cached, the exit status and time, the cache key and expiry, the keys returned. Never a
//! credential: the answer's values are not shown, only its keys.

use crate::providers::{Answer, AnswerSource};

use super::model::{Mark, Step, StepKind};

/// The `provider` step of `a`.
pub fn provider_step(a: &Answer) -> Step {
    let (how, seconds) = match &a.source {
        AnswerSource::Cached => ("answered from kubelet's cache (not run)".to_string(), None),
        AnswerSource::Ran(run) => (
            format!(
                "ran {}: {}",
                a.path.display(),
                run.exit.as_deref().unwrap_or("killed or not started")
            ),
            Some(run.duration.as_secs_f64()),
        ),
    };
    let head = format!(
        "{} matched {} (matchImages {:?})",
        a.provider, a.image, a.matched
    );
    let step = match &a.result {
        Ok(auth) => {
            let keys: Vec<&str> = auth.iter().map(|(k, _)| k.as_str()).collect();
            let cache = match (a.cache_key_type, a.expires_unix) {
                (Some(t), Some(at)) => format!(
                    "cacheKeyType {}, cached until {}",
                    t.as_str(),
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)
                    )
                ),
                (Some(t), None) => format!("cacheKeyType {}, not cached (duration 0)", t.as_str()),
                _ => String::new(),
            };
            let mark = if keys.is_empty() { Mark::Warn } else { Mark::Ok };
            Step::new(
                StepKind::Provider,
                mark,
                format!("{head}: {} key(s) returned", keys.len()),
            )
            .with_evidence([
                how,
                cache,
                format!("keys: {}", if keys.is_empty() { "none".to_string() } else { keys.join(", ") }),
            ])
        }
        Err(e) => Step::new(StepKind::Provider, Mark::Fail, format!("{head}: {e}"))
            .with_evidence([
                how,
                "kubelet logs the error and pulls with the other credentials it has (none from this provider)".to_string(),
            ]),
    };
    step.timed(seconds)
}
