//! The status JSON: `{"probes": [PROBE, …]}` (`docs/metrics.md`, "Commands"), served by
//! `GET /status` for the latest cycle and printed by `check --output json`.

use serde::Serialize;

use super::advice;
use super::diagnosis::{ImageDiagnosis, Walk};
use crate::probe::ProbeResult;

/// The status document: `{"probes": [PROBE, …]}`.
#[derive(Debug, Serialize)]
pub struct StatusDoc<'a> {
    /// One PROBE per result, in the given order.
    pub probes: Vec<ProbeDoc<'a>>,
}

/// One PROBE: the [`ProbeResult`]'s fields (`registry`, `secret` (null for an anonymous image
/// probe), `image` (null for a credential probe), `success`, `reason` and `class` (null on
/// success), `detail`, `phases` (phase name -> seconds), `duration_seconds`, `timestamp`,
/// `exchanges`, and, when known, `endpoint`, `auth_mode`, `username`, `tls`, `notes`, …) with
/// the `hint` of [`advice::hint_of`].
#[derive(Debug, Serialize)]
pub struct ProbeDoc<'a> {
    /// The result.
    #[serde(flatten)]
    pub result: &'a ProbeResult,
    /// What to do about its reason (`""` on success).
    pub hint: String,
    /// `check --output json` only: the step-by-step diagnosis of this result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Walk>,
}

/// `check --output json` for images: the status document with each attempt's diagnosis, the
/// per-image diagnoses and the pull secrets pods list but that were not given.
#[derive(Debug, Serialize)]
pub struct ImageCheckDoc<'a> {
    /// The attempts, each with its diagnosis.
    #[serde(flatten)]
    pub status: StatusDoc<'a>,
    /// One diagnosis per image.
    pub images: &'a [ImageDiagnosis],
    /// `{secret, workload, namespace}` of each secret a pod lists that was not given.
    pub missing_secrets: Vec<MissingSecret>,
}

/// A pull secret a pod lists that was not among the inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingSecret {
    /// The secret's name.
    pub secret: String,
    /// The workload that lists it (`Deployment/web`).
    pub workload: String,
    /// Its namespace.
    pub namespace: Option<String>,
}

/// The status document with a diagnosis per result (`walks[i]` for `results[i]`).
pub fn with_diagnoses(results: &[ProbeResult], walks: Vec<Walk>) -> StatusDoc<'_> {
    let mut doc = status_json(results);
    for (p, w) in doc.probes.iter_mut().zip(walks) {
        p.diagnosis = Some(w);
    }
    doc
}

/// The status document of `results`, in the given order.
pub fn status_json(results: &[ProbeResult]) -> StatusDoc<'_> {
    StatusDoc {
        probes: results
            .iter()
            .map(|result| ProbeDoc {
                result,
                hint: advice::hint_of(result),
                diagnosis: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Class, Phase, Reason};
    use serde_json::{json, Value};

    fn value(results: &[ProbeResult]) -> Value {
        serde_json::to_value(status_json(results)).unwrap()
    }

    #[test]
    fn empty() {
        assert_eq!(value(&[]), json!({"probes": []}));
    }

    #[test]
    fn contract_fields_of_a_failed_credential_probe() {
        let mut r = ProbeResult::new("quay.io/org", Some("pull".to_owned()));
        r.reason = Some(Reason::TlsUntrusted);
        r.class = Some(Class::Network);
        r.detail = "certificate signed by an unknown authority".to_owned();
        r.add_phase(Phase::Resolve, 0.5);
        r.add_phase(Phase::Tls, 0.25);
        let v = value(std::slice::from_ref(&r));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["probes"]);
        let p = &v["probes"][0];
        assert_eq!(p["registry"], "quay.io/org");
        assert_eq!(p["secret"], "pull");
        assert_eq!(p["image"], Value::Null);
        assert_eq!(p["success"], false);
        assert_eq!(p["reason"], "tls_untrusted");
        assert_eq!(p["class"], "network");
        assert_eq!(p["detail"], "certificate signed by an unknown authority");
        assert_eq!(p["hint"], advice::hint_of(&r).as_str());
        assert!(p["hint"].as_str().unwrap().contains("quay.io/org"), "{p}");
        assert_eq!(p["phases"], json!({"resolve": 0.5, "tls": 0.25}));
        assert!(p.get("diagnosis").is_none(), "{p}");
    }

    #[test]
    fn anonymous_image_probe_and_success() {
        let mut r = ProbeResult::new("quay.io", None);
        r.image = Some("quay.io/org/app:1".to_owned());
        r.success = true;
        let v = value(&[r]);
        let p = &v["probes"][0];
        for key in ["secret", "reason", "class"] {
            assert!(p.get(key).is_some_and(Value::is_null), "{key}: {p}");
        }
        assert_eq!(p["image"], "quay.io/org/app:1");
        assert_eq!(p["success"], true);
        assert_eq!(p["hint"], "");
        assert_eq!(p["phases"], json!({}));
    }

    #[test]
    fn keeps_order_and_every_field_of_the_probe_result() {
        let a = ProbeResult::new("b.example", Some("s".to_owned()));
        let b = ProbeResult::new("a.example", Some("s".to_owned()));
        let v = value(&[a.clone(), b]);
        assert_eq!(v["probes"][0]["registry"], "b.example");
        assert_eq!(v["probes"][1]["registry"], "a.example");
        // The ProbeResult's own fields, plus the hint.
        let mut own = serde_json::to_value(&a).unwrap();
        own["hint"] = json!("");
        assert_eq!(v["probes"][0], own);
    }

    #[test]
    fn ordinary_detail_passes_through_unchanged() {
        let mut r = ProbeResult::new("docker.io", Some("hub".to_owned()));
        r.detail = "the token service answered 401 for user robot".to_owned();
        r.reason = Some(Reason::Unauthorized);
        r.class = Some(Class::Credential);
        r.username = Some("robot".to_owned());
        let v = value(std::slice::from_ref(&r));
        let p = &v["probes"][0];
        assert_eq!(p["detail"], r.detail.as_str());
        assert_eq!(p["hint"], advice::hint_of(&r).as_str());
        let mut own = serde_json::to_value(&r).unwrap();
        own["hint"] = p["hint"].clone();
        assert_eq!(*p, own);
    }
}
