//! Unit tests of `dockerconfig`.

use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use secrecy::ExposeSecret;

fn ok(p: Parsed) -> Vec<AuthEntry> {
    match p.entries {
        Ok(e) => e,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(p: Parsed) -> SecretError {
    match p.entries {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn one(json: &str) -> AuthEntry {
    let mut entries = ok(parse_dockerconfigjson(json.as_bytes()));
    assert_eq!(entries.len(), 1, "{json}");
    entries.remove(0)
}

fn user_pass(e: &AuthEntry) -> (String, String) {
    (
        e.credential.username.clone(),
        e.credential.password.expose_secret().to_string(),
    )
}

#[test]
fn username_password_fields() {
    let e = one(r#"{"auths":{"ghcr.io":{"username":"u","password":"p","email":"e@x"}}}"#);
    assert_eq!(user_pass(&e), ("u".into(), "p".into()));
    assert_eq!(e.raw_key, "ghcr.io");
    assert_eq!(e.key, "ghcr.io");
    assert!(!e.dropped_token);
}

#[test]
fn auth_overrides_username_and_password() {
    let auth = STANDARD.encode("alice:from-auth");
    let e = one(&format!(
        r#"{{"auths":{{"ghcr.io":{{"username":"bob","password":"from-fields","auth":"{auth}"}}}}}}"#
    ));
    assert_eq!(user_pass(&e), ("alice".into(), "from-auth".into()));
    // An empty auth does not override.
    let e = one(r#"{"auths":{"ghcr.io":{"username":"bob","password":"pw","auth":""}}}"#);
    assert_eq!(user_pass(&e), ("bob".into(), "pw".into()));
}

#[test]
fn padded_and_raw_base64() {
    // "user:pass1" needs padding: padded form ends with '=', raw form has none.
    let padded = STANDARD.encode("user:pass1");
    let raw = STANDARD_NO_PAD.encode("user:pass1");
    assert!(padded.ends_with('=') && !raw.ends_with('='));
    for auth in [&padded, &raw] {
        let e = one(&format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}}}}}}"#));
        assert_eq!(user_pass(&e), ("user".into(), "pass1".into()), "{auth}");
    }
    // Trailing space after '=' selects padded decoding, which then fails on the space (Go).
    let e = err(parse_dockerconfigjson(
        format!(r#"{{"auths":{{"r.io":{{"auth":"{padded} "}}}}}}"#).as_bytes(),
    ));
    assert!(matches!(e, SecretError::AuthNotBase64 { .. }));
    // Padding on the raw path (no trailing '=' after trimming) is refused, as by Go.
    let wrong = format!("{}=x", &padded[..padded.len() - 1]);
    let e = err(parse_dockerconfigjson(
        format!(r#"{{"auths":{{"r.io":{{"auth":"{wrong}"}}}}}}"#).as_bytes(),
    ));
    assert!(matches!(e, SecretError::AuthNotBase64 { .. }));
    // Go skips \r and \n inside base64 and accepts non-zero trailing bits.
    let e = one(&format!(
        r#"{{"auths":{{"r.io":{{"auth":"{}\r\n{}\n"}}}}}}"#,
        &raw[..4],
        &raw[4..]
    ));
    assert_eq!(user_pass(&e), ("user".into(), "pass1".into()));
    let e = one(r#"{"auths":{"r.io":{"auth":"dTpw"}}}"#); // "u:p"
    assert_eq!(user_pass(&e), ("u".into(), "p".into()));
    let e = one(r#"{"auths":{"r.io":{"auth":"dTpwcR=="}}}"#); // "u:pq" with junk bits
    assert_eq!(user_pass(&e), ("u".into(), "pq".into()));
}

#[test]
fn split_at_first_colon_without_trimming() {
    let auth = STANDARD.encode("user:pa:ss");
    let e = one(&format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}}}}}}"#));
    assert_eq!(user_pass(&e), ("user".into(), "pa:ss".into()));
    let auth = STANDARD.encode(" user :pa:ss\0 ");
    let e = one(&format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}}}}}}"#));
    assert_eq!(user_pass(&e), (" user ".into(), "pa:ss\0 ".into()));
    // Empty user name is passed on.
    let auth = STANDARD.encode(":token");
    let e = one(&format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}}}}}}"#));
    assert_eq!(user_pass(&e), ("".into(), "token".into()));
}

#[test]
fn case_insensitive_fields_like_go() {
    let auth = STANDARD.encode("a:b");
    let e = one(&format!(r#"{{"AUTHS":{{"r.io":{{"Auth":"{auth}"}}}}}}"#));
    assert_eq!(user_pass(&e), ("a".into(), "b".into()));
    let e = one(r#"{"Auths":{"r.io":{"USERNAME":"U","PassWord":"P"}}}"#);
    assert_eq!(user_pass(&e), ("U".into(), "P".into()));
    // Go's Unicode folding: U+017F (long s) folds with 's'.
    let e = one("{\"auths\":{\"r.io\":{\"u\u{17F}ername\":\"U\",\"pa\u{17F}\u{17F}word\":\"P\"}}}");
    assert_eq!(user_pass(&e), ("U".into(), "P".into()));
    // Later duplicates win; null leaves the value unchanged.
    let e =
        one(r#"{"auths":{"r.io":{"username":"a","Username":"b","password":"p","password":null}}}"#);
    assert_eq!(user_pass(&e), ("b".into(), "p".into()));
}

#[test]
fn unknown_fields_ignored() {
    let e = one(
        r#"{"auths":{"r.io":{"username":"u","password":"p","serveraddress":"x","nested":{"a":[1,2]},"n":1}},
                "HttpHeaders":{"User-Agent":"x"},"credsStore":"desktop","currentContext":"x","other":[1]}"#,
    );
    assert_eq!(user_pass(&e), ("u".into(), "p".into()));
}

#[test]
fn creds_store_and_helpers_warn() {
    let p = parse_dockerconfigjson(
        br#"{"auths":{"r.io":{}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#,
    );
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("credsStore"));
    assert!(p.warnings[1].contains("credHelpers"));
}

#[test]
fn tokens_dropped() {
    let e = one(r#"{"auths":{"r.io":{"auth":"dTpw","identitytoken":"refresh-token"}}}"#);
    assert!(e.dropped_token);
    assert_eq!(user_pass(&e), ("u".into(), "p".into()));
    let e = one(r#"{"auths":{"r.io":{"RegistryToken":"bearer"}}}"#);
    assert!(e.dropped_token);
    assert_eq!(user_pass(&e), ("".into(), "".into()));
    // An empty or non-string token field is no token (and Go ignores its type).
    let e = one(r#"{"auths":{"r.io":{"identitytoken":"","registrytoken":5}}}"#);
    assert!(!e.dropped_token);
}

#[test]
fn legacy_dockercfg() {
    let auth = STANDARD.encode("u:p");
    let entries = ok(parse_dockercfg(
        format!(
            r#"{{"https://index.docker.io/v1/":{{"auth":"{auth}","email":"x@y"}},"quay.io":null}}"#
        )
        .as_bytes(),
    ));
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].registry, "docker.io");
    assert_eq!(entries[0].key, "index.docker.io");
    assert_eq!(user_pass(&entries[0]), ("u".into(), "p".into()));
    // A null entry is an empty credential.
    assert_eq!(entries[1].key, "quay.io");
    assert_eq!(user_pass(&entries[1]), ("".into(), "".into()));
    // dockerconfigjson content read as legacy: kubelet sees a registry called "auths".
    let p = parse_dockercfg(br#"{"auths":{"r.io":{"auth":"dTpw"}}}"#);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("looks like .dockerconfigjson")));
    assert_eq!(ok(p)[0].key, "auths");
}

#[test]
fn entries_sorted_and_keys_normalised() {
    let entries = ok(parse_dockerconfigjson(
        br#"{"auths":{"quay.io":{},"https://index.docker.io/v1/":{},"*.example.com":{},
                 "docker.io":{},"https://quay.io/v2/myorg":{}}}"#,
    ));
    let got: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.registry.as_str(),
                e.raw_key.as_str(),
                e.key.as_str(),
                e.wildcard,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("*.example.com", "*.example.com", "*.example.com", true),
            ("docker.io", "docker.io", "docker.io", false),
            (
                "docker.io",
                "https://index.docker.io/v1/",
                "index.docker.io",
                false
            ),
            ("quay.io", "quay.io", "quay.io", false),
            (
                "quay.io/myorg",
                "https://quay.io/v2/myorg",
                "quay.io/myorg",
                false
            ),
        ]
    );
}

#[test]
fn unparseable_key_skipped_with_warning() {
    let p = parse_dockerconfigjson(br#"{"auths":{"ghcr.io:abc":{},"ok.io":{}}}"#);
    // The bad port is hidden: it may be a password whose `@` is missing (`user:pw/host`).
    assert!(p.warnings.iter().any(|w| w.contains("\"ghcr.io:xxxxx\"")
        && w.contains("invalid port")
        && w.contains("kubelet skips")));
    let entries = ok(p);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key, "ok.io");
}

#[test]
fn duplicates_and_same_key_spellings() {
    let p = parse_dockerconfigjson(
            br#"{"auths":{"r.io":{"username":"first"}},"auths":{"r.io":{"username":"second"},"s.io":{}}}"#,
        );
    assert!(p.warnings.iter().any(|w| w.contains("more than once")));
    let entries = ok(p);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].credential.username, "second");
    // "auths": null after an object resets the map (Go sets it to nil).
    let e = err(parse_dockerconfigjson(
        br#"{"auths":{"r.io":{}},"auths":null}"#,
    ));
    assert!(matches!(e, SecretError::NoAuths));
    // Two spellings of one key are both kept, with a warning.
    let p = parse_dockerconfigjson(br#"{"auths":{"https://ghcr.io/":{},"ghcr.io":{}}}"#);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("both normalise to \"ghcr.io\"")));
    assert_eq!(ok(p).len(), 2);
}

#[test]
fn undecodable_utf8_auth_is_skipped_with_warning() {
    let auth = STANDARD.encode(b"u:\xff\xfe");
    let p = parse_dockerconfigjson(
        format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}},"s.io":{{}}}}}}"#).as_bytes(),
    );
    assert!(p.warnings.iter().any(|w| w.contains("not UTF-8")));
    assert_eq!(ok(p).len(), 1);
}

#[test]
fn empty_auths_is_valid_with_warning() {
    let p = parse_dockerconfigjson(br#"{"auths":{}}"#);
    assert!(p.warnings.iter().any(|w| w.contains("no registry entries")));
    assert!(ok(p).is_empty());
}

/// Every SecretError variant this parser produces, with its message.
#[test]
fn error_variants_and_messages() {
    let cases: Vec<(Parsed, &str)> = vec![
            (parse_dockerconfigjson(b"  \n"), "the file is empty"),
            (
                parse_dockerconfigjson(b"{\n  \"auths\": {\n    \"r.io\" {}\n  }\n}"),
                "invalid JSON at line 3, column 12 (syntax error)",
            ),
            (parse_dockerconfigjson(b"{\"auths\": {"), "invalid JSON at line 1, column 11 (unexpected end of input)"),
            (parse_dockerconfigjson(b"[]"), "the top level is an array, not a JSON object"),
            (parse_dockerconfigjson(b"null"), "the top level is null, not a JSON object"),
            (parse_dockercfg(b"\"x\""), "the top level is a string, not a JSON object"),
            (
                parse_dockerconfigjson(br#"{"r.io":{"auth":"dTpw"}}"#),
                "no \"auths\" object (a .dockerconfigjson must look like {\"auths\": {\"registry\": {...}}}); \
                 kubelet reads no credentials from it",
            ),
            (parse_dockerconfigjson(br#"{"auths":[]}"#), "\"auths\" is an array, expected an object"),
            (
                parse_dockerconfigjson(br#"{"auths":{},"HttpHeaders":{"a":1}}"#),
                "\"HttpHeaders\" is a number, expected an object of strings",
            ),
            (
                parse_dockerconfigjson(br#"{"auths":{"ghcr.io":"dTpw"}}"#),
                "entry \"ghcr.io\" is a string, not a JSON object",
            ),
            (
                parse_dockercfg(br#"{"ghcr.io":{"username":1}}"#),
                "entry \"ghcr.io\": \"username\" is a number, not a string",
            ),
            (
                parse_dockercfg(br#"{"ghcr.io":{"EMAIL":true}}"#),
                "entry \"ghcr.io\": \"email\" is a boolean, not a string",
            ),
            (
                parse_dockerconfigjson(br#"{"auths":{"ghcr.io":{"auth":"not base64!"}}}"#),
                "entry \"ghcr.io\": \"auth\" is not base64",
            ),
            (
                parse_dockerconfigjson(br#"{"auths":{"ghcr.io":{"auth":"dXNlcg=="}}}"#),
                "entry \"ghcr.io\": \"auth\" decodes to text without ':' (expected base64 of user:password)",
            ),
        ];
    for (parsed, want) in cases {
        assert_eq!(err(parsed).to_string(), want);
    }
}

#[test]
fn first_bad_entry_fails_the_whole_secret() {
    // Go aborts at the first entry whose UnmarshalJSON fails, even if it is later overridden.
    let e = err(parse_dockerconfigjson(
        br#"{"auths":{"a.io":{"auth":"!!"},"a.io":{"auth":"dTpw"}}}"#,
    ));
    assert!(matches!(e, SecretError::AuthNotBase64 { ref key } if key == "a.io"));
}

#[test]
fn userinfo_in_keys_is_redacted() {
    let e = err(parse_dockerconfigjson(
        br#"{"auths":{"https://bob:hunter2@ghcr.io":{"auth":"!!"}}}"#,
    ));
    assert_eq!(
        e.to_string(),
        "entry \"https://xxxxx@ghcr.io\": \"auth\" is not base64"
    );
    let entries = ok(parse_dockerconfigjson(
        br#"{"auths":{"bob:hunter2@ghcr.io":{}}}"#,
    ));
    assert_eq!(entries[0].raw_key, "xxxxx@ghcr.io");
    assert_eq!(entries[0].key, "ghcr.io");
    assert!(!format!("{entries:?}").contains("hunter2"));
}

/// Found by fuzzing (`fuzz/`, target `secret_planted`): kubelet prefixes `https://` unless
/// the key starts with `https://` or `http://` (case-sensitively), so the user-info of
/// `HTTPS://user:pw@host` ends up in the keyring key as path text; the password was shown in
/// `raw_key`, `key` and the `registry` metrics label.
#[test]
fn userinfo_after_an_unrecognised_scheme_is_redacted() {
    for raw in [
        "HTTPS://bob:hunter2@ghcr.io",
        "HTTPS://:hunter2@",
        "docker://bob:hunter2@ghcr.io/v2/",
        "ghcr.io://bob:hunter2@x",
    ] {
        let json = format!(r#"{{"auths":{{"{raw}":{{"username":"u","password":"p"}}}}}}"#);
        let p = parse_dockerconfigjson(json.as_bytes());
        let shown = format!("{:?} {:?}", p.entries, p.warnings);
        assert!(!shown.contains("hunter2"), "{raw}: {shown}");
        let e = one(&json);
        assert!(e.raw_key.contains("xxxxx@"), "{raw}: {e:?}");
        assert!(
            e.key.contains("xxxxx@") && e.registry.contains("xxxxx@"),
            "{e:?}"
        );
    }
    let e = one(r#"{"auths":{"HTTPS://bob:hunter2@ghcr.io":{}}}"#);
    assert_eq!(e.key, "HTTPS://xxxxx@ghcr.io");
}
