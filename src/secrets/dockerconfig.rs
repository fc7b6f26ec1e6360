//! `.dockerconfigjson` / `config.json` and legacy `.dockercfg` parsing, as kubelet parses them.
//!
//! kubelet unmarshals with Go's `encoding/json` into `DockerConfigJSON{Auths, HttpHeaders}` or
//! `DockerConfig` (`map[string]DockerConfigEntry`), and each entry through
//! `DockerConfigEntry.UnmarshalJSON` (kubernetes `pkg/credentialprovider/config.go`). This module
//! reproduces the behaviour of that code, not just the happy path:
//!
//! * object keys match struct fields case-insensitively, with Go's folding (`Auth`, `USERNAME`,
//!   and even `uſername` with U+017F or `K` U+212A match); unknown fields are ignored;
//! * duplicate keys: the last occurrence wins for a field or a map key, and two `auths` objects
//!   are merged (Go reuses the map), `"auths": null` resets it;
//! * `null` leaves a string field unchanged, and an entry that is `null` is an empty entry;
//! * any other type mismatch (`"username": 1`, `"auths": []`, `"HttpHeaders": {"a": 1}`) makes
//!   kubelet's unmarshalling fail, so the secret is invalid;
//! * a non-empty `auth` overrides `username`/`password`: padded standard base64 if
//!   `strings.TrimSpace(auth)` ends with `=`, else unpadded; like Go, `\r` and `\n` in the value
//!   are skipped and non-zero trailing bits are accepted; the decoded text is split at the first
//!   `:`, nothing is trimmed;
//! * `identitytoken` / `registrytoken` are not read ([`AuthEntry::dropped_token`] records them).
//!
//! Deliberate differences (documented on [`parse_dockerconfigjson`] / [`parse_dockercfg`]): a
//! top-level `null`, or a `.dockerconfigjson` without `auths`, is an error here (kubelet quietly
//! reads no credentials from it); JSON that Go would repair (invalid UTF-8, lone surrogate
//! escapes) is an error here; an `auth` decoding to non-UTF-8 bytes is skipped with a warning.

use super::key::{normalize_key, redact_key};
use super::{AuthEntry, Credential, SecretError};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;
use secrecy::SecretString;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// The result of parsing one config: entries (sorted by `registry`, then `raw_key`) or the error
/// that makes kubelet reject the whole secret, plus warnings that never contain secret material.
#[derive(Debug)]
pub struct Parsed {
    /// Entries, or why the secret is invalid.
    pub entries: Result<Vec<AuthEntry>, SecretError>,
    /// Keys kubelet skips, ignored fields, duplicates.
    pub warnings: Vec<String>,
}

/// Parses a `.dockerconfigjson` or `config.json`: `{"auths": {KEY: ENTRY, ...}}`.
///
/// Other top-level fields are ignored (`credsStore`/`credHelpers` with a warning), except that
/// `HttpHeaders` must be an object of strings, as in kubelet's `DockerConfigJSON` struct.
///
/// Errors: [`SecretError::Empty`], [`SecretError::Json`], [`SecretError::NotAnObject`],
/// [`SecretError::NoAuths`] (no `auths`, or `"auths": null`: kubelet reads no credentials and
/// says nothing; regprobe flags it), [`SecretError::WrongType`] and the entry errors of
/// [`parse_dockercfg`].
///
/// Source: kubernetes `pkg/credentialprovider/config.go` (`DockerConfigJSON`,
/// `readDockerConfigJSONFileFromBytes`), `pkg/credentialprovider/secrets/secrets.go`.
pub fn parse_dockerconfigjson(bytes: &[u8]) -> Parsed {
    match parse_json(bytes) {
        Ok(root) => dockerconfigjson_from(root),
        Err(e) => Parsed {
            entries: Err(e),
            warnings: Vec::new(),
        },
    }
}

/// [`parse_dockerconfigjson`] for already parsed JSON.
pub(crate) fn dockerconfigjson_from(root: JVal) -> Parsed {
    let mut warnings = Vec::new();
    let entries = dockerconfigjson_entries(root, &mut warnings);
    Parsed { entries, warnings }
}

fn dockerconfigjson_entries(
    root: JVal,
    warnings: &mut Vec<String>,
) -> Result<Vec<AuthEntry>, SecretError> {
    let JVal::Object(fields) = root else {
        return Err(SecretError::NotAnObject {
            found: root.type_name(),
        });
    };
    // Go decodes fields in document order into the struct; `auths` is a map that is reused
    // (merged) on a duplicate key and reset by `null`.
    let mut auths: Option<Vec<(String, JVal)>> = None;
    for (name, value) in fields {
        if go_field_eq(&name, "auths") {
            match value {
                JVal::Null => auths = None,
                JVal::Object(map) => auths.get_or_insert_with(Vec::new).extend(map),
                other => {
                    return Err(SecretError::WrongType {
                        field: "auths",
                        found: other.type_name(),
                        expected: "an object",
                    })
                }
            }
        } else if go_field_eq(&name, "httpheaders") {
            check_http_headers(&value)?;
        } else if name == "credsStore" || name == "credHelpers" {
            let note = format!(
                "\"{name}\" is ignored: kubelet reads only \"auths\" and never runs credential helpers"
            );
            if !warnings.contains(&note) {
                warnings.push(note);
            }
        }
    }
    let auths = auths.ok_or(SecretError::NoAuths)?;
    decode_entries(auths, warnings)
}

/// Parses a legacy `.dockercfg`: `{KEY: ENTRY, ...}` at the top level.
///
/// ENTRY is an object (or `null`, an empty entry) with `username`, `password`, `email`, `auth`
/// matched case-insensitively; other fields are ignored. A key Go's `url.Parse` refuses is skipped
/// with a warning, as kubelet skips it.
///
/// Errors: [`SecretError::Empty`], [`SecretError::Json`], [`SecretError::NotAnObject`] (also for
/// a top-level `null`, which kubelet reads as no credentials), [`SecretError::EntryNotAnObject`],
/// [`SecretError::EntryFieldNotAString`], [`SecretError::AuthNotBase64`],
/// [`SecretError::AuthNoColon`].
///
/// Source: kubernetes `pkg/credentialprovider/config.go` (`DockerConfig`,
/// `DockerConfigEntry.UnmarshalJSON`, `decodeDockerConfigFieldAuth`).
pub fn parse_dockercfg(bytes: &[u8]) -> Parsed {
    match parse_json(bytes) {
        Ok(root) => dockercfg_from(root),
        Err(e) => Parsed {
            entries: Err(e),
            warnings: Vec::new(),
        },
    }
}

/// [`parse_dockercfg`] for already parsed JSON.
pub(crate) fn dockercfg_from(root: JVal) -> Parsed {
    let mut warnings = Vec::new();
    let entries = match root {
        JVal::Object(map) => {
            if map.iter().any(|(k, _)| go_field_eq(k, "auths")) {
                warnings.push(
                    "legacy .dockercfg has a top-level \"auths\" key: this looks like .dockerconfigjson \
                     content stored as .dockercfg; kubelet reads \"auths\" as a registry name"
                        .to_string(),
                );
            }
            decode_entries(map, &mut warnings)
        }
        other => Err(SecretError::NotAnObject {
            found: other.type_name(),
        }),
    };
    Parsed { entries, warnings }
}

/// Whether parsed JSON content is a `.dockerconfigjson` (an object with an `auths` key, matched
/// as Go matches it). Used to detect the format of a `--secret` file.
pub(crate) fn has_auths_key(root: &JVal) -> bool {
    matches!(root, JVal::Object(map) if map.iter().any(|(k, _)| go_field_eq(k, "auths")))
}

/// Parses JSON into an order- and duplicate-preserving tree; errors keep only the position.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<JVal, SecretError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SecretError::Empty);
    }
    serde_json::from_slice::<JVal>(bytes).map_err(|e| json_error(&e))
}

/// Reduces a serde_json error to its position and category (its message may quote input).
pub(crate) fn json_error(e: &serde_json::Error) -> SecretError {
    SecretError::Json {
        line: e.line(),
        column: e.column(),
        category: e.classify(),
    }
}

fn check_http_headers(value: &JVal) -> Result<(), SecretError> {
    let bad = match value {
        JVal::Null => None,
        JVal::Object(map) => map
            .iter()
            .find(|(_, v)| !matches!(v, JVal::Str(_) | JVal::Null))
            .map(|(_, v)| v.type_name()),
        other => Some(other.type_name()),
    };
    match bad {
        None => Ok(()),
        Some(found) => Err(SecretError::WrongType {
            field: "HttpHeaders",
            found,
            expected: "an object of strings",
        }),
    }
}

/// Decodes a `map[string]DockerConfigEntry` (entries in document order; the last duplicate wins)
/// and normalises its keys.
fn decode_entries(
    map: Vec<(String, JVal)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<AuthEntry>, SecretError> {
    // Go's decoder fails on the first bad entry, in document order, duplicates included.
    let mut decoded: BTreeMap<String, DecodedEntry> = BTreeMap::new();
    for (raw, value) in map {
        let shown = redact_key(&raw).into_owned();
        let entry = decode_entry(&shown, value)?;
        if decoded.insert(raw, entry).is_some() {
            warnings.push(format!(
                "key \"{shown}\" appears more than once; the last one wins"
            ));
        }
    }
    if decoded.is_empty() {
        warnings.push("no registry entries: this secret gives kubelet no credentials".to_string());
    }
    let mut out = Vec::with_capacity(decoded.len());
    for (raw, entry) in decoded {
        let shown = redact_key(&raw).into_owned();
        let normalized = match normalize_key(&raw) {
            Ok(n) => n,
            Err(e) => {
                warnings.push(format!(
                    "key \"{shown}\" is not a valid registry URL ({e}); kubelet skips this entry"
                ));
                continue;
            }
        };
        let credential = match entry.credential {
            Some(c) => c,
            None => {
                warnings.push(format!(
                    "entry \"{shown}\": \"auth\" decodes to a user name or password that is not UTF-8; \
                     kubelet passes such bytes on, regprobe cannot and skips this entry"
                ));
                continue;
            }
        };
        if normalized.key.is_empty() || normalized.key.starts_with('/') {
            warnings.push(format!(
                "key \"{shown}\" has no host; it can never match an image"
            ));
        }
        // A key like `HTTPS://user:pw@host` keeps its user-info in kubelet's key (as path text):
        // hide it there too, since the key is shown and `registry` is a metrics label.
        out.push(AuthEntry {
            raw_key: shown,
            key: redact_key(&normalized.key).into_owned(),
            registry: redact_key(&normalized.registry).into_owned(),
            wildcard: normalized.wildcard,
            credential,
            dropped_token: entry.dropped_token,
        });
    }
    out.sort_by(|a, b| {
        (a.registry.as_str(), a.raw_key.as_str()).cmp(&(b.registry.as_str(), b.raw_key.as_str()))
    });
    for pair in out.windows(2) {
        if pair[0].key == pair[1].key {
            warnings.push(format!(
                "keys \"{}\" and \"{}\" both normalise to \"{}\"; kubelet keeps both and tries them in \
                 random (Go map) order",
                pair[0].raw_key, pair[1].raw_key, pair[0].key
            ));
        }
    }
    Ok(out)
}

struct DecodedEntry {
    /// `None` when `auth` decoded to bytes that are not UTF-8.
    credential: Option<Credential>,
    dropped_token: bool,
}

/// `DockerConfigEntry.UnmarshalJSON`: `shown` is the redacted key for error messages.
fn decode_entry(shown: &str, value: JVal) -> Result<DecodedEntry, SecretError> {
    let fields = match value {
        JVal::Null => Vec::new(),
        JVal::Object(fields) => fields,
        other => {
            return Err(SecretError::EntryNotAnObject {
                key: shown.to_string(),
                found: other.type_name(),
            })
        }
    };
    let mut username: Option<Zeroizing<String>> = None;
    let mut password: Option<Zeroizing<String>> = None;
    let mut auth: Option<Zeroizing<String>> = None;
    let mut dropped_token = false;
    for (name, value) in fields {
        let (slot, field) = if go_field_eq(&name, "username") {
            (Some(&mut username), "username")
        } else if go_field_eq(&name, "password") {
            (Some(&mut password), "password")
        } else if go_field_eq(&name, "auth") {
            (Some(&mut auth), "auth")
        } else if go_field_eq(&name, "email") {
            (None, "email")
        } else {
            if go_field_eq(&name, "identitytoken") || go_field_eq(&name, "registrytoken") {
                dropped_token |= matches!(&value, JVal::Str(s) if !s.is_empty());
            }
            continue;
        };
        match value {
            JVal::Null => {}
            JVal::Str(s) => {
                if let Some(slot) = slot {
                    *slot = Some(s);
                }
            }
            other => {
                return Err(SecretError::EntryFieldNotAString {
                    key: shown.to_string(),
                    field,
                    found: other.type_name(),
                })
            }
        }
    }
    let credential = match auth.filter(|a| !a.is_empty()) {
        Some(auth) => decode_auth(shown, &auth)?,
        None => Some(Credential {
            username: username.as_deref().map(String::from).unwrap_or_default(),
            password: SecretString::from(password.as_deref().map(String::as_str).unwrap_or("")),
        }),
    };
    Ok(DecodedEntry {
        credential,
        dropped_token,
    })
}

/// Go's `base64.StdEncoding` (padded) and `base64.RawStdEncoding` (unpadded) as kubelet uses
/// them: non-strict, so non-zero trailing bits are accepted.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);
const GO_RAW_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decodes base64 like Go's decoder with the chosen padding: `\r` and `\n` are skipped.
pub(crate) fn go_base64_decode(text: &str, padded: bool) -> Option<Zeroizing<Vec<u8>>> {
    let cleaned: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.bytes()
            .filter(|b| *b != b'\r' && *b != b'\n')
            .collect(),
    );
    // Reserve the decoded size up front so the buffer never reallocates (no stray copies).
    let mut out = Zeroizing::new(Vec::with_capacity(cleaned.len()));
    let engine = if padded { &GO_STD } else { &GO_RAW_STD };
    engine.decode_vec(cleaned.as_slice(), &mut out).ok()?;
    Some(out)
}

/// `decodeDockerConfigFieldAuth`. `Ok(None)` when the halves are not UTF-8.
fn decode_auth(shown: &str, auth: &str) -> Result<Option<Credential>, SecretError> {
    let padded = auth.trim().ends_with('=');
    let decoded = go_base64_decode(auth, padded).ok_or_else(|| SecretError::AuthNotBase64 {
        key: shown.to_string(),
    })?;
    let colon =
        decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| SecretError::AuthNoColon {
                key: shown.to_string(),
            })?;
    let (Ok(user), Ok(pass)) = (
        std::str::from_utf8(&decoded[..colon]),
        std::str::from_utf8(&decoded[colon + 1..]),
    ) else {
        return Ok(None);
    };
    Ok(Some(Credential {
        username: user.to_string(),
        password: SecretString::from(pass),
    }))
}

/// Go `encoding/json` field matching: `foldName(key) == foldName(field)`. Go folds every rune to
/// the smallest rune of its case-folding orbit; for ASCII field names only ASCII letters, `ſ`
/// (U+017F, folds with `s`) and `K` (U+212A, folds with `k`) can match.
fn go_field_eq(key: &str, field_lower: &str) -> bool {
    let mut key_chars = key.chars();
    for f in field_lower.chars() {
        let Some(c) = key_chars.next() else {
            return false;
        };
        let folded = match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        };
        if folded != f {
            return false;
        }
    }
    key_chars.next().is_none()
}

/// A JSON value that keeps object members in document order, duplicates included, and holds
/// strings in zeroizing buffers.
pub(crate) enum JVal {
    Null,
    Bool,
    Number,
    Str(Zeroizing<String>),
    Array,
    Object(Vec<(String, JVal)>),
}

impl JVal {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            JVal::Null => "null",
            JVal::Bool => "a boolean",
            JVal::Number => "a number",
            JVal::Str(_) => "a string",
            JVal::Array => "an array",
            JVal::Object(_) => "an object",
        }
    }

    /// The string value of member `name` (exact match, last occurrence), for `kind` detection.
    pub(crate) fn member_str(&self, name: &str) -> Option<&str> {
        match self {
            JVal::Object(map) => map.iter().rev().find_map(|(k, v)| match v {
                JVal::Str(s) if k == name => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for JVal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JValVisitor)
    }
}

struct JValVisitor;

impl<'de> Visitor<'de> for JValVisitor {
    type Value = JVal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<JVal, E> {
        Ok(JVal::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<JVal, E> {
        Ok(JVal::Bool)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JVal, E> {
        Ok(JVal::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JVal, E> {
        Ok(JVal::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JVal, E> {
        Ok(JVal::Number)
    }
    fn visit_str<E>(self, v: &str) -> Result<JVal, E> {
        Ok(JVal::Str(Zeroizing::new(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<JVal, E> {
        Ok(JVal::Str(Zeroizing::new(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JVal, A::Error> {
        while seq.next_element::<JVal>()?.is_some() {}
        Ok(JVal::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JVal, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<JVal>()?;
            members.push((key, value));
        }
        Ok(JVal::Object(members))
    }
}

#[cfg(test)]
mod tests {
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
        let e =
            one("{\"auths\":{\"r.io\":{\"u\u{17F}ername\":\"U\",\"pa\u{17F}\u{17F}word\":\"P\"}}}");
        assert_eq!(user_pass(&e), ("U".into(), "P".into()));
        // Later duplicates win; null leaves the value unchanged.
        let e = one(
            r#"{"auths":{"r.io":{"username":"a","Username":"b","password":"p","password":null}}}"#,
        );
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
            format!(r#"{{"https://index.docker.io/v1/":{{"auth":"{auth}","email":"x@y"}},"quay.io":null}}"#)
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
            (parse_dockerconfigjson(b"  \n"), "empty: no JSON content (kubelet ignores an empty pull secret)"),
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
}
