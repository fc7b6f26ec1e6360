//! The status JSON: `{"probes": [PROBE, …]}` (`shared/spec/metrics.md`, "Commands"), served by
//! `GET /status` for the latest cycle and printed by `check --output json`.

use crate::probe::ProbeResult;
use serde_json::Value;

/// `{"probes": [PROBE, …]}`, one PROBE per result in the given order. PROBE is the
/// [`ProbeResult`] serialised as is: `registry`, `secret` (null for an anonymous image probe),
/// `image` (null for a credential probe), `success`, `reason` and `class` (null on success),
/// `detail`, `hint`, `phases` (phase name -> seconds), `duration_seconds`, `timestamp`,
/// `exchanges`, and, when known, `endpoint`, `auth_mode`, `username`, `tls`, `notes`.
pub fn status_json(results: &[ProbeResult]) -> Value {
    let probes = results
        .iter()
        .map(|result| {
            // `ProbeResult` serialises to JSON infallibly: its only map has string-like keys.
            serde_json::to_value(result).expect("a ProbeResult serialises to JSON")
        })
        .collect();
    let mut object = serde_json::Map::new();
    object.insert("probes".to_owned(), Value::Array(probes));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Class, Phase, Reason};
    use serde_json::json;

    #[test]
    fn empty() {
        assert_eq!(status_json(&[]), json!({"probes": []}));
    }

    #[test]
    fn contract_fields_of_a_failed_credential_probe() {
        let mut r = ProbeResult::new("quay.io/org", Some("pull".to_owned()));
        r.reason = Some(Reason::TlsUntrusted);
        r.class = Some(Class::Network);
        r.detail = "certificate signed by an unknown authority".to_owned();
        r.hint = "add the CA to certs.d".to_owned();
        r.add_phase(Phase::Resolve, 0.5);
        r.add_phase(Phase::Tls, 0.25);
        let v = status_json(&[r]);
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
        assert_eq!(p["hint"], "add the CA to certs.d");
        assert_eq!(p["phases"], json!({"resolve": 0.5, "tls": 0.25}));
    }

    #[test]
    fn anonymous_image_probe_and_success() {
        let mut r = ProbeResult::new("quay.io", None);
        r.image = Some("quay.io/org/app:1".to_owned());
        r.success = true;
        let v = status_json(&[r]);
        let p = &v["probes"][0];
        for key in ["secret", "reason", "class"] {
            assert!(p.get(key).is_some_and(Value::is_null), "{key}: {p}");
        }
        assert_eq!(p["image"], "quay.io/org/app:1");
        assert_eq!(p["success"], true);
        assert_eq!(p["phases"], json!({}));
    }

    #[test]
    fn keeps_order_and_every_field_of_the_probe_result() {
        let a = ProbeResult::new("b.example", Some("s".to_owned()));
        let b = ProbeResult::new("a.example", Some("s".to_owned()));
        let v = status_json(&[a.clone(), b]);
        assert_eq!(v["probes"][0]["registry"], "b.example");
        assert_eq!(v["probes"][1]["registry"], "a.example");
        assert_eq!(v["probes"][0], serde_json::to_value(&a).unwrap());
    }

    #[test]
    fn ordinary_detail_and_hint_pass_through_unchanged() {
        let mut r = ProbeResult::new("docker.io", Some("hub".to_owned()));
        r.detail = "the token service answered 401 for user robot".to_owned();
        r.hint = "rotate the access token and update the secret".to_owned();
        r.username = Some("robot".to_owned());
        let v = status_json(std::slice::from_ref(&r));
        let p = &v["probes"][0];
        assert_eq!(p["detail"], r.detail.as_str());
        assert_eq!(p["hint"], r.hint.as_str());
        // Nothing beyond the ProbeResult's own fields is added.
        assert_eq!(*p, serde_json::to_value(&r).unwrap());
    }
}
