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
    serde_json::from_slice::<JVal>(bytes).map_err(|e| json_error_at(bytes, &e))
}

/// Reduces a serde_json error on `bytes` to its position and category (its message may quote
/// input), the position made real for the reader: serde_json reports column 0 for
/// an error at a line break, and for an unexpected end the position after the last byte
/// (`line 5, column 0` for a file cut after line 3); both become the line and 1-based column of
/// the last character before them, as serde_json reports an error inside a line.
pub(crate) fn json_error_at(bytes: &[u8], e: &serde_json::Error) -> SecretError {
    let (mut line, mut column) = (e.line(), e.column());
    let eof = e.classify() == serde_json::error::Category::Eof;
    if column == 0 || eof {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.split('\n').collect();
        let upto = if eof {
            lines.len()
        } else {
            line.saturating_sub(1).min(lines.len())
        };
        if let Some((i, l)) = lines[..upto]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, l)| !l.trim().is_empty())
        {
            line = i + 1;
            column = l.trim_end().chars().count();
        }
    }
    SecretError::Json {
        line,
        column,
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
mod tests;
