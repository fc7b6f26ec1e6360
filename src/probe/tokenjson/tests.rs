use super::*;

fn get(body: &str) -> Result<TokenFields, GoJsonError> {
    decode(body.as_bytes(), Shape::Fetch)
}

fn post(body: &str) -> Result<TokenFields, GoJsonError> {
    decode(body.as_bytes(), Shape::OAuth)
}

#[test]
fn keys_match_case_insensitively_as_go_folds_them() {
    assert_eq!(get(r#"{"TOKEN":"a"}"#).unwrap().token.as_deref(), Some("a"));
    assert_eq!(
        get(r#"{"Access_Token":"b"}"#)
            .unwrap()
            .access_token
            .as_deref(),
        Some("b")
    );
    // `ſ` folds to S, the Kelvin sign to K, `İ` and `ı` to I.
    assert_eq!(
        post("{\"acce\u{17F}\u{17F}_to\u{212A}en\":\"c\"}")
            .unwrap()
            .access_token
            .as_deref(),
        Some("c")
    );
    assert_eq!(
        get("{\"expıres_in\":5}").unwrap().expires_in,
        Some(5),
        "dotless i"
    );
    // An escaped key is unescaped first.
    assert_eq!(
        get(r#"{"\u0074oken":"d"}"#).unwrap().token.as_deref(),
        Some("d")
    );
    // Other lookalikes do not match.
    assert_eq!(get("{\"t\u{f6}ken\":\"e\"}").unwrap().token, None);
    assert_eq!(get(r#"{"token ":"e"}"#).unwrap().token, None);
}

#[test]
fn the_last_duplicate_wins_and_null_keeps_the_previous_value() {
    let f = get(r#"{"token":"a","Token":"b"}"#).unwrap();
    assert_eq!(f.token.as_deref(), Some("b"));
    let f = get(r#"{"access_token":"a","access_token":""}"#).unwrap();
    assert_eq!(f.access_token.as_deref(), Some(""));
    let f = get(r#"{"token":"a","token":null}"#).unwrap();
    assert_eq!(f.token.as_deref(), Some("a"));
    let f = get(r#"{"expires_in":60,"EXPIRES_IN":300}"#).unwrap();
    assert_eq!(f.expires_in, Some(300));
}

#[test]
fn issued_at_must_be_rfc3339_or_null() {
    for ok in [
        "2026-12-03T13:00:00Z",
        "2026-12-03T13:00:00.123456789Z",
        "2026-12-03T13:00:00.1234567891234+01:00",
        "2024-02-29T23:59:59-23:59",
        "0000-01-01T00:00:00Z",
    ] {
        let f = get(&format!(r#"{{"token":"t","issued_at":"{ok}"}}"#)).unwrap();
        assert_eq!(f.issued_at.as_deref(), Some(ok));
    }
    assert_eq!(
        get(r#"{"token":"t","issued_at":null}"#).unwrap().issued_at,
        None
    );
    for bad in [
        "2026-12-03 13:00:00Z",
        "2026-12-03t13:00:00Z",
        "2026-12-03T13:00:00z",
        "2026-12-03T13:00:00",
        "2026-12-03T13:00Z",
        "2026-12-03T1:00:00Z",
        "2026-02-30T13:00:00Z",
        "2025-02-29T13:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-12-03T13:00:60Z",
        "2026-12-03T13:00:00,5Z",
        "2026-12-03T13:00:00.Z",
        "2026-12-03T13:00:00+24:00",
        "2026-12-03T13:00:00+0100",
        "2026-12-03T13:00:00\\u005a",
        "",
    ] {
        let e = get(&format!(r#"{{"token":"t","issued_at":"{bad}"}}"#)).unwrap_err();
        assert!(matches!(e, GoJsonError::IssuedAt(_)), "{bad}: {e}");
    }
    for bad in ["1733230800", "true", "{}", "[]"] {
        let e = post(&format!(r#"{{"access_token":"t","issued_at":{bad}}}"#)).unwrap_err();
        assert_eq!(
            e,
            GoJsonError::IssuedAt("Time.UnmarshalJSON: input is not a JSON string")
        );
    }
}

#[test]
fn expires_in_must_be_an_integer_number() {
    assert_eq!(get(r#"{"expires_in":-5}"#).unwrap().expires_in, Some(-5));
    assert_eq!(get(r#"{"expires_in":null}"#).unwrap().expires_in, None);
    for bad in [
        r#""300""#,
        "3.0",
        "1e3",
        "true",
        "99999999999999999999",
        "[300]",
    ] {
        let e = get(&format!(r#"{{"token":"t","expires_in":{bad}}}"#)).unwrap_err();
        assert!(
            matches!(
                e,
                GoJsonError::Field {
                    field: "expires_in",
                    go_type: "int",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
}

#[test]
fn scope_must_be_a_string_in_the_post_answer_only() {
    let e = post(r#"{"access_token":"t","scope":["repository:a:pull"]}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "json: cannot unmarshal array into Go struct field OAuthTokenResponse.scope of type string"
    );
    // `FetchTokenResponse` has no `scope`: ignored in the GET answer.
    assert_eq!(
        get(r#"{"token":"t","scope":["x"]}"#)
            .unwrap()
            .token
            .as_deref(),
        Some("t")
    );
    // And no `token` in the POST answer.
    assert_eq!(post(r#"{"token":"t"}"#).unwrap(), TokenFields::default());
}

#[test]
fn string_fields_refuse_other_types() {
    for bad in ["5", "true", "{}", r#"["t"]"#] {
        let e = get(&format!(r#"{{"token":{bad}}}"#)).unwrap_err();
        assert!(
            matches!(
                e,
                GoJsonError::Field {
                    field: "token",
                    go_type: "string",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
    // The type error is reported after the rest of the value is decoded, but still fails.
    assert!(get(r#"{"refresh_token":1,"token":"t"}"#).is_err());
    // Unknown keys may hold anything.
    assert!(get(r#"{"token":"t","x":[1,{"a":null}],"y":-0.5e+3}"#).is_ok());
}

#[test]
fn strings_are_unescaped_as_go_does() {
    let t = |body: &[u8]| decode(body, Shape::Fetch).unwrap().token.unwrap();
    assert_eq!(t(br#"{"token":"a\"b\\c\/d\u00e9"}"#), "a\"b\\c/d\u{e9}");
    assert_eq!(t(br#"{"token":"\ud83d\ude00"}"#), "\u{1F600}");
    assert_eq!(t(br#"{"token":"\ud800x"}"#), "\u{FFFD}x");
    assert_eq!(t(br#"{"token":"\ud800\u0041"}"#), "\u{FFFD}A");
    assert_eq!(t(b"{\"token\":\"a\xffb\"}"), "a\u{FFFD}b");
}

#[test]
fn only_the_first_value_is_read_and_its_syntax_is_checked_whole() {
    assert_eq!(
        get(r#"{"token":"t"} trailing <html>"#)
            .unwrap()
            .token
            .as_deref(),
        Some("t")
    );
    assert_eq!(get("null").unwrap(), TokenFields::default());
    assert_eq!(get("  \n"), Err(GoJsonError::Eof));
    assert_eq!(get(r#"{"token":"t""#), Err(GoJsonError::Eof));
    for bad in [
        r#"{"token":"t",}"#,
        r#"{"token":"t","x":01}"#,
        r#"{"token":"t","x":[1,]}"#,
        r#"{"token":"t" "x":1}"#,
        "{\"token\":\"a\tb\"}",
        r#"{"token":"\x"}"#,
        r#"{'token':'t'}"#,
        "<html>",
    ] {
        assert!(
            matches!(get(bad), Err(GoJsonError::Syntax { .. })),
            "{bad}: {:?}",
            get(bad)
        );
    }
    let e = get(r#"["token"]"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "json: cannot unmarshal array into Go value of type auth.FetchTokenResponse"
    );
    let deep = "[".repeat(MAX_DEPTH + 1);
    assert_eq!(get(&deep), Err(GoJsonError::TooDeep));
    let ok_deep = format!("{{\"x\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    assert!(get(&ok_deep).is_ok());
}

#[test]
fn no_error_quotes_the_body() {
    let secret = "S3cr3t-T0ken-Value";
    for body in [
        format!(r#"{{"token":["{secret}"]}}"#),
        format!(r#"{{"issued_at":"{secret}"}}"#),
        format!(r#"{{"token":"{secret}","#),
        format!(r#"["{secret}"]"#),
    ] {
        let e = get(&body).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
}
