//! 2xx token responses (`parse_token_body`), and the headers built from what they give.
//!
//! Oracles: when a body yields a token both as a POST and as a GET answer, it is the same one
//! (GET prefers `access_token` too; the two Go structs differ in `token` and `scope`, so one
//! may refuse what the other takes); a token is never empty; errors are the two fixed texts and never
//! quote the body; `bearer_header` refuses or accepts, never panics; the token GET URL never
//! carries the password (it goes in the Basic header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regprobe::probe::token::{
    basic_header, bearer_header, get_url, parse_token_body, post_form, TokenMethod, TokenRequest,
};
use regprobe_fuzz::{check_no_marker, MARKER};
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    for truncated in [false, true] {
        let post = parse_token_body(data, TokenMethod::Post, truncated);
        let get = parse_token_body(data, TokenMethod::Get, truncated);
        if let (Ok(p), Ok(g)) = (&post, &get) {
            assert_eq!(p, g, "POST token differs from GET token");
        }
        for r in [&post, &get] {
            match r {
                Ok((token, _)) => {
                    assert!(!token.is_empty(), "empty token accepted");
                    let _ = bearer_header(&SecretString::from(token.clone()));
                }
                Err(e) => {
                    let text = e.to_string();
                    check_no_marker(&text);
                    assert!(
                        text.starts_with("unable to decode token response")
                            || text
                                == "authorization server did not include a token in the response",
                        "unexpected error text {text:?}"
                    );
                }
            }
        }
    }
    // The request side: realm = first line, service / scope / username = the next lines.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    // No 'U' (nor '%', which could encode one) outside the password: the marker's only source
    // (not 'F': the percent-encoding `%2F` ends with one).
    let public = |s: &str| s.replace(['U', '%'], "");
    let realm = public(parts.next().unwrap_or_default());
    let service = public(parts.next().unwrap_or_default());
    let scopes: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split(' ')
        .map(public)
        .filter(|s| !s.is_empty())
        .collect();
    let username = public(parts.next().unwrap_or_default());
    let _ = basic_header(&username, MARKER);
    if let Ok(realm) = url::Url::parse(&realm) {
        let req = TokenRequest {
            realm,
            service,
            scopes,
            username: &username,
            secret: MARKER,
        };
        check_no_marker(get_url(&req).as_str());
        assert!(
            post_form(&req).contains(MARKER),
            "POST form lost the password"
        );
    }
});
