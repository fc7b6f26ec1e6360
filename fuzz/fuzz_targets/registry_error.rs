//! Registry error bodies (`registry_error`, `excerpt`, `redact`) and the evidence kept from a
//! response (`evidence::record`).
//!
//! The input is an HTTP response head and body: header lines (`Name: value`), a blank line, the
//! body; without a blank line it is all body. Every `@@` in it is replaced by the planted password
//! [`MARKER`] after every other `F` has been made `f` (and JSON's `\u0046` too), so the marker's
//! prefix `FUZZ` can come only from a planted password.
//!
//! Oracles: excerpts are one trimmed line without control characters or double spaces, at most
//! `EXCERPT_CHARS` characters plus `…`; `redact` leaves no whole secret outside its `<redacted>`
//! marks; nothing `record` keeps (URL, challenge, error code and message) holds `FUZZ`, i.e. no
//! whole or partial (4+ characters) copy of the password the probe sent.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use regprobe::probe::evidence::{excerpt, record, redact, registry_error, EXCERPT_CHARS};
use regprobe::probe::transport::Response;
use regprobe::probe::{Phase, ProbeResult};
use regprobe_fuzz::MARKER;

fn check_excerpt(e: &str) {
    assert!(
        !e.chars().any(char::is_control),
        "control character in {e:?}"
    );
    assert!(!e.contains("  "), "double space in {e:?}");
    assert!(!e.starts_with(' ') && !e.ends_with(' '), "untrimmed {e:?}");
    assert!(e.chars().count() <= EXCERPT_CHARS + 1, "excerpt too long");
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The parsers on the input as it is.
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&data[..0], data),
    };
    check_excerpt(&excerpt(data));
    let (_, message) = registry_error(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(message, None);
    }
    if let Some(message) = message {
        check_excerpt(&message);
    }
    let text = String::from_utf8_lossy(body);
    if let Some(secret) = text.split_whitespace().find(|w| w.len() >= 4) {
        if !secret.contains(['<', '>']) && !text.contains("<redacted>") {
            let out = redact(&text, &[secret]);
            for piece in out.split("<redacted>") {
                assert!(!piece.contains(secret), "redact left {secret:?} in {out:?}");
            }
        }
    }

    // The evidence kept from a response in which `@@` is the password.
    let plant = |part: &[u8]| {
        let clean = replace_bytes(part, b"\\u0046", b"f");
        let clean: Vec<u8> = clean
            .iter()
            .map(|b| if *b == b'F' { b'f' } else { *b })
            .collect();
        replace_bytes(&clean, b"@@", MARKER.as_bytes())
    };
    let mut headers = HeaderMap::new();
    let mut status = StatusCode::UNAUTHORIZED;
    for line in plant(head).split(|b| *b == b'\n') {
        if let Some(code) = line.strip_prefix(b"HTTP/1.1 ") {
            if let Some(s) = code.get(..3).and_then(|c| StatusCode::from_bytes(c).ok()) {
                status = s;
            }
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let resp = Response {
        status,
        headers,
        body: Bytes::from(plant(body)),
        truncated: false,
        url: url::Url::parse("https://registry.example.com/v2/").unwrap(),
    };
    let mut result = ProbeResult::new("registry.example.com", Some("fuzz".to_string()));
    record(&mut result, Phase::Verify, "GET", &resp, &[MARKER]);
    let exchange = result.exchanges.last().expect("an exchange is recorded");
    for kept in [
        Some(&exchange.url),
        exchange.challenge.as_ref(),
        exchange.error_code.as_ref(),
        exchange.error_message.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!kept.contains("FUZZ"), "password (or part) kept: {kept:?}");
    }
});
