//! Evidence kept from each HTTP exchange: the status, the challenge, the registry's error code
//! and message. Bodies are read only up to the transport's caps; what is kept is short and
//! stripped of any credential the probe holds.

use super::outcome::{Exchange, Phase, ProbeResult};
pub use super::redact::{credential_forms, Redactor};
use super::transport::Response;
pub use super::transport::{excerpt, EXCERPT_CHARS};
use serde::Deserialize;

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The first `{code, message}` of a registry error body (`docs/containerd-kubelet.md` §9.2:
/// `{"errors":[{"code":"UNAUTHORIZED","message":"…"}]}`), or, for other bodies (HTML, Docker
/// Hub's text 429, ECR's `Not Authorized`), `(None, excerpt)`. `None, None` for an empty body.
pub fn registry_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let (code, message) = error_parts(body);
    (code, message.map(|m| excerpt(m.as_bytes())))
}

/// [`registry_error`] before the message is cut to an excerpt: the first `{code, message}`, or
/// the whole body as text. [`record`] removes secrets from these, then cuts.
fn error_parts(body: &[u8]) -> (Option<String>, Option<String>) {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (None, None);
    }
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        if let Some(first) = env.errors.into_iter().next() {
            return (first.code, first.message);
        }
    }
    (None, Some(String::from_utf8_lossy(body).into_owned()))
}

/// Replaces every form of each non-trivial secret in `text`, and any credential-shaped value
/// (`Basic …`, `Bearer …`, `"token": "…"`, `password=…`), with `<redacted>`: the one redaction,
/// [`super::redact::redact`]. Pass [`super::redact::credential_forms`] so that the base64
/// `user:password` forms are found too.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    super::redact::redact(text, secrets)
}

/// Records one exchange on `result`. What `redactor` knows is removed from anything kept, before
/// it is cut to an excerpt: a secret that straddled the cut, or whose whitespace the excerpt
/// folds, would otherwise survive in part.
pub fn record(
    result: &mut ProbeResult,
    phase: Phase,
    method: &str,
    resp: &Response,
    redactor: &Redactor,
) {
    let clean = |text: &str| excerpt(redactor.redact(text).as_bytes());
    let challenge = {
        let v: Vec<String> = resp
            .header_values("www-authenticate")
            .into_iter()
            .map(|v| clean(&String::from_utf8_lossy(v)))
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(v.join(" | "))
        }
    };
    let (code, message) = if resp.status.is_success() {
        (None, None)
    } else {
        error_parts(&resp.body)
    };
    let response_headers = recorded_headers(resp, redactor);
    result.exchanges.push(Exchange {
        phase: Some(phase),
        method: method.to_string(),
        url: redactor.redact(&strip_userinfo(&resp.url)),
        status: Some(resp.status.as_u16()),
        challenge,
        error_code: code.map(|c| clean(&c)),
        error_message: message.map(|m| clean(&m)),
        response_headers,
    });
}

/// The response headers worth showing (`check -v`), with any value that may carry a
/// credential replaced by `<redacted>`, and every value cleaned and cut as an excerpt.
fn recorded_headers(resp: &Response, redactor: &Redactor) -> Vec<(String, String)> {
    let sensitive = |name: &str| {
        ["cookie", "auth", "token", "secret", "key"]
            .iter()
            .any(|w| name.contains(w))
    };
    resp.headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "www-authenticate" | "date"))
        .take(super::outcome::MAX_RECORDED_HEADERS)
        .map(|(name, value)| {
            let name = name.as_str().to_string();
            let value = if sensitive(&name) {
                "<redacted>".to_string()
            } else {
                excerpt(
                    redactor
                        .redact(&String::from_utf8_lossy(value.as_bytes()))
                        .as_bytes(),
                )
            };
            (name, value)
        })
        .collect()
}

/// Records an exchange that got no response (a transport failure).
pub fn record_failed(result: &mut ProbeResult, phase: Phase, method: &str, url: &url::Url) {
    result.exchanges.push(Exchange {
        phase: Some(phase),
        method: method.to_string(),
        url: redact(&strip_userinfo(url), &[]),
        ..Exchange::default()
    });
}

fn strip_userinfo(url: &url::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_envelope() {
        let b = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":null}]}"#;
        assert_eq!(
            registry_error(b),
            (
                Some("DENIED".into()),
                Some("requested access to the resource is denied".into())
            )
        );
    }

    #[test]
    fn non_json_bodies_become_excerpts() {
        let (c, m) = registry_error(b"<html>\n<body>Sign in\0 to the   portal</body></html>");
        assert_eq!(c, None);
        assert_eq!(
            m.unwrap(),
            "<html> <body>Sign in to the portal</body></html>"
        );
        assert_eq!(registry_error(b"  \n"), (None, None));
        let long = vec![b'x'; 5000];
        assert!(excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(excerpt(&long), format!("{}…", "x".repeat(EXCERPT_CHARS)));
        assert_eq!(excerpt(&[0xff, 0xfe, b'a']), "\u{fffd}\u{fffd}a");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("bad password S3cr3t for u", &["S3cr3t"]),
            "bad password <redacted> for u"
        );
        assert_eq!(redact("a b", &["a"]), "a b");
    }

    /// Found by fuzzing (`fuzz/`, target `registry_error`): the message was cut to an excerpt
    /// before the password was searched, so a password across the 200-character cut, or one with
    /// whitespace the excerpt folds, was kept in part; the error code was not searched at all.
    #[test]
    fn secrets_are_removed_before_the_excerpt_is_cut() {
        let secret = "FUZZ-SECRET-4242";
        let record_body = |body: String, challenge: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("www-authenticate", challenge.parse().unwrap());
            let resp = Response {
                status: http::StatusCode::UNAUTHORIZED,
                headers,
                body: bytes::Bytes::from(body),
                truncated: false,
                url: url::Url::parse("https://r.example/v2/").unwrap(),
            };
            let mut result = ProbeResult::new("r.example", None);
            record(
                &mut result,
                Phase::Verify,
                "GET",
                &resp,
                &Redactor::new([secret]),
            );
            result.exchanges.pop().unwrap()
        };
        let pad = "x".repeat(EXCERPT_CHARS - 8);
        let e = record_body(
            format!(r#"{{"errors":[{{"code":"{secret}","message":"{pad} {secret} rejected"}}]}}"#),
            &format!(r#"Basic realm="{pad} {secret}""#),
        );
        let kept = format!("{e:?}");
        assert!(!kept.contains("FUZZ"), "{kept}");
        assert_eq!(e.error_code.as_deref(), Some("<redacted>"));
        assert!(e.error_message.unwrap().ends_with(" <redact…"));
        // Whitespace inside the password is folded by the excerpt: redact first.
        let spaced = "pass  word\twith";
        let mut result = ProbeResult::new("r.example", None);
        for body in [
            r#"{"errors":[{"code":"X","message":"bad pass  word\twith spaces"}]}"#,
            "bad pass  word\twith spaces",
        ] {
            let resp = Response {
                status: http::StatusCode::UNAUTHORIZED,
                headers: http::HeaderMap::new(),
                body: bytes::Bytes::from(body),
                truncated: false,
                url: url::Url::parse("https://r.example/v2/").unwrap(),
            };
            record(
                &mut result,
                Phase::Verify,
                "GET",
                &resp,
                &Redactor::new([spaced]),
            );
        }
        for e in &result.exchanges {
            assert_eq!(e.error_message.as_deref(), Some("bad <redacted> spaces"));
        }
        // Without secrets, the evidence is as before.
        assert_eq!(
            registry_error(format!(r#"{{"errors":[{{"message":"{pad}   {pad}"}}]}}"#).as_bytes()).1,
            Some(excerpt(format!("{pad} {pad}").as_bytes()))
        );
    }

    #[test]
    fn response_headers_are_kept_bounded_and_redacted() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "docker-distribution-api-version",
            "registry/2.0".parse().unwrap(),
        );
        h.insert("set-cookie", "session=abc".parse().unwrap());
        h.insert("x-auth-token", "t0k3n".parse().unwrap());
        h.insert("date", "Sat, 21 Nov 2026 10:00:00 GMT".parse().unwrap());
        h.insert("www-authenticate", "Basic realm=\"r\"".parse().unwrap());
        h.insert("x-echo", "user alice pw S3cr3t-Pa55".parse().unwrap());
        for i in 0..40 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        let resp = Response {
            status: http::StatusCode::UNAUTHORIZED,
            headers: h,
            body: bytes::Bytes::new(),
            truncated: false,
            url: url::Url::parse("http://r.test/v2/").unwrap(),
        };
        let got = recorded_headers(&resp, &Redactor::new(["S3cr3t-Pa55"]));
        let find = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            find("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        assert_eq!(find("set-cookie"), Some("<redacted>"));
        assert_eq!(find("x-auth-token"), Some("<redacted>"));
        assert_eq!(find("x-echo"), Some("user alice pw <redacted>"));
        assert_eq!(find("date"), None);
        assert_eq!(find("www-authenticate"), None);
        assert_eq!(got.len(), crate::probe::outcome::MAX_RECORDED_HEADERS);
    }

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo(&url::Url::parse("https://u:p@r.example/token?service=s").unwrap()),
            "https://r.example/token?service=s"
        );
        assert_eq!(
            strip_userinfo(&url::Url::parse("http://r.example:5000/v2/").unwrap()),
            "http://r.example:5000/v2/"
        );
    }
}
