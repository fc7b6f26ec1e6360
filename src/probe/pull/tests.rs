use super::*;
use http::HeaderMap;

#[test]
fn digests_validate_as_go_digest_and_text_plain_is_schema1() {
    let hex = "a".repeat(64);
    assert!(valid_digest(&format!("sha256:{hex}")));
    assert!(valid_digest(&format!("sha512:{}", "0".repeat(128))));
    assert!(!valid_digest(&format!("sha256:{}", "A".repeat(64))));
    assert!(!valid_digest(&format!("sha256:{}", "a".repeat(63))));
    assert!(!valid_digest(&format!("md5:{hex}")));
    assert!(!valid_digest(&hex));
    assert!(is_schema1("text/plain"));
    assert!(is_schema1("text/plain; charset=utf-8"));
    assert!(
        !is_schema1("text/plain ; charset=utf-8"),
        "Go compares the part before ';'"
    );
    assert!(!is_schema1("text/html"));
}

#[test]
fn transient_transport_errors_are_containerds() {
    use crate::probe::failure::{ConnectFailure, HttpFailure, TlsFailure};
    use crate::probe::transport::TransportError as T;
    let http = |kind| T::Http {
        host: "h".into(),
        kind,
    };
    assert!(is_transient(&http(HttpFailure::Closed)));
    assert!(is_transient(&http(HttpFailure::HeaderTimeout)));
    assert!(!is_transient(&http(HttpFailure::BodyTimeout)));
    let connect = |kind| T::Connect {
        addr: "a".into(),
        kind,
    };
    assert!(is_transient(&connect(ConnectFailure::Timeout)));
    assert!(!is_transient(&connect(ConnectFailure::Refused)));
    assert!(is_transient(&T::Tls {
        host: "h".into(),
        kind: TlsFailure::Timeout
    }));
    assert!(!is_transient(&T::Deadline {
        phase: Phase::Manifest
    }));
}

fn resp(headers: &[(&'static str, &str)]) -> Response {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(*k, http::HeaderValue::from_str(v).unwrap());
    }
    Response {
        status: StatusCode::OK,
        headers: h,
        body: bytes::Bytes::new(),
        truncated: false,
        url: Url::parse("https://registry-1.docker.io/v2/library/nginx/manifests/latest").unwrap(),
    }
}

#[test]
fn docker_hub_ratelimit_headers() {
    let r = resp(&[
        ("ratelimit-limit", "100;w=21600"),
        ("ratelimit-remaining", "76;w=21600"),
    ]);
    assert_eq!(
        ratelimit(&r),
        Some(RateLimit {
            limit: 100,
            remaining: 76,
            window_seconds: Some(21600)
        })
    );
    assert_eq!(ratelimit(&resp(&[("ratelimit-limit", "x")])), None);
}

#[test]
fn schema1_is_recognised_exactly() {
    assert!(is_schema1(
        "application/vnd.docker.distribution.manifest.v1+prettyjws"
    ));
    assert!(is_schema1(
        "application/vnd.docker.distribution.manifest.v1+json; charset=utf-8"
    ));
    assert!(!is_schema1("application/vnd.oci.image.manifest.v1+json"));
    assert!(!is_schema1(
        "application/vnd.docker.distribution.manifest.v2+json"
    ));
}

#[test]
fn accept_header_is_containerds() {
    assert!(ACCEPT.starts_with("application/vnd.docker.distribution.manifest.v2+json, "));
    assert!(ACCEPT.ends_with("application/vnd.oci.image.index.v1+json, */*"));
}

#[test]
fn only_a_username_makes_containerd_send_credentials() {
    let c = |u: &str, p: &str| Credential {
        username: u.into(),
        password: p.to_string().into(),
    };
    assert_eq!(
        containerd_credentials(Some(&c("u", "p"))),
        ("u".into(), "p".into())
    );
    assert_eq!(
        containerd_credentials(Some(&c("", "p"))),
        (String::new(), String::new())
    );
    assert_eq!(
        containerd_credentials(Some(&c("u", ""))),
        ("u".into(), String::new())
    );
    assert_eq!(containerd_credentials(None), (String::new(), String::new()));
}
