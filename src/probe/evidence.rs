//! Evidence kept from each HTTP exchange: the status, the challenge, the registry's error code
//! and message. Bodies are read only up to the transport's caps; what is kept is short and
//! stripped of any credential the probe holds.

use super::outcome::{Exchange, Phase, ProbeResult};
use super::transport::Response;
use serde::Deserialize;

/// Longest excerpt of a non-JSON body kept as evidence (characters).
pub const EXCERPT_CHARS: usize = 200;

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

/// The first `{code, message}` of a registry error body (`auth-spec.md` §9.2:
/// `{"errors":[{"code":"UNAUTHORIZED","message":"…"}]}`), or, for other bodies (HTML, Docker
/// Hub's text 429, ECR's `Not Authorized`), `(None, excerpt)`. `None, None` for an empty body.
pub fn registry_error(body: &[u8]) -> (Option<String>, Option<String>) {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (None, None);
    }
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        if let Some(first) = env.errors.into_iter().next() {
            return (first.code, first.message.map(|m| excerpt(m.as_bytes())));
        }
    }
    (None, Some(excerpt(body)))
}

/// A one-line excerpt of `body`: invalid UTF-8 replaced, control characters (NUL included)
/// replaced by spaces, whitespace folded, cut to [`EXCERPT_CHARS`].
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
        if out.chars().count() >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_string()
}

/// Replaces every occurrence of each non-trivial secret in `text` with `<redacted>`.
/// Secrets shorter than 4 characters are not searched (they would blank ordinary words).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

/// Records one exchange on `result`. `secrets` are removed from anything kept.
pub fn record(
    result: &mut ProbeResult,
    phase: Phase,
    method: &str,
    resp: &Response,
    secrets: &[&str],
) {
    let challenge = {
        let v: Vec<String> = resp
            .header_values("www-authenticate")
            .into_iter()
            .map(excerpt)
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(redact(&v.join(" | "), secrets))
        }
    };
    let (code, message) = if resp.status.is_success() {
        (None, None)
    } else {
        registry_error(&resp.body)
    };
    result.exchanges.push(Exchange {
        phase: Some(phase),
        method: method.to_string(),
        url: redact(&strip_userinfo(resp.url.as_str()), secrets),
        status: Some(resp.status.as_u16()),
        challenge,
        error_code: code.map(|c| excerpt(c.as_bytes())),
        error_message: message.map(|m| redact(&m, secrets)),
    });
}

/// Records an exchange that got no response (a transport failure).
pub fn record_failed(result: &mut ProbeResult, phase: Phase, method: &str, url: &url::Url) {
    result.exchanges.push(Exchange {
        phase: Some(phase),
        method: method.to_string(),
        url: strip_userinfo(url.as_str()),
        ..Exchange::default()
    });
}

fn strip_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
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

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("https://u:p@r.example/token?service=s"),
            "https://r.example/token?service=s"
        );
    }
}
