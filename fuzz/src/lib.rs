//! Shared oracles for regprobe's fuzz targets.
//!
//! Every target checks more than "no panic": the planted password [`MARKER`] (present in the seed
//! corpora, or planted by the structured targets) must never reach an error, a warning or the
//! `Debug` text of a parsed value's non-secret fields.

use regprobe::secrets::{key::redact_key, key::registry_label, Secret, SecretError, SecretKind};
use secrecy::ExposeSecret;

/// The password planted in seeds and structured inputs.
pub const MARKER: &str = "FUZZ-SECRET-4242";

/// Removes every value in `allowed` (as written and as `Debug` escapes it) from `text`.
pub fn strip_allowed(text: &str, allowed: &[&str]) -> String {
    let mut out = text.to_string();
    // Longest first, so that a short allowed value does not break up a longer one.
    let mut allowed: Vec<&str> = allowed.iter().copied().filter(|a| !a.is_empty()).collect();
    allowed.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for a in allowed {
        out = out.replace(a, "\u{1}");
        // As `Debug` shows it (quotes cut off; `escape_debug` differs on `'`).
        let debug = format!("{a:?}");
        out = out.replace(&debug[1..debug.len() - 1], "\u{1}");
    }
    out
}

/// The fields of an error that legitimately echo input (a key, a Secret's type or kind).
fn error_fields(e: &SecretError) -> Vec<String> {
    match e {
        SecretError::EntryNotAnObject { key, .. }
        | SecretError::EntryFieldNotAString { key, .. }
        | SecretError::AuthNotBase64 { key }
        | SecretError::AuthNoColon { key } => vec![key.clone()],
        SecretError::ManifestNotASecret { kind } => vec![kind.clone()],
        SecretError::NotAPullSecret { type_ } => vec![type_.clone()],
        _ => Vec::new(),
    }
}

/// Checks one loaded secret: structural invariants, and that no password (the planted marker,
/// or any parsed password of 8+ characters) shows in its errors, warnings or `Debug` text,
/// except where a non-secret field (key, user name, id, Secret type) holds the same text.
pub fn check_secret(s: &Secret) {
    let mut secrets: Vec<String> = vec![MARKER.to_string()];
    let mut allowed: Vec<String> = vec![s.id.clone(), s.path.display().to_string()];
    match &s.entries {
        Ok(entries) => {
            assert_ne!(s.kind, SecretKind::Unknown, "valid secret of unknown kind");
            for pair in entries.windows(2) {
                assert!(
                    (pair[0].registry.as_str(), pair[0].raw_key.as_str())
                        <= (pair[1].registry.as_str(), pair[1].raw_key.as_str()),
                    "entries not sorted"
                );
            }
            for e in entries {
                assert_eq!(
                    redact_key(&e.raw_key),
                    e.raw_key.as_str(),
                    "raw_key shown with user-info"
                );
                assert_eq!(registry_label(&e.key), e.registry, "registry label");
                let pw = e.credential.password.expose_secret();
                if pw.chars().count() >= 8 {
                    secrets.push(pw.to_string());
                }
                allowed.extend([
                    e.raw_key.clone(),
                    e.key.clone(),
                    e.registry.clone(),
                    e.credential.username.clone(),
                ]);
            }
        }
        Err(e) => allowed.extend(error_fields(e)),
    }
    // Warnings quote keys that kubelet skips (not valid URLs, so not in any entry): a key is shown
    // by design, with its user-info hidden (which `secret_planted` checks with planted keys).
    for w in &s.warnings {
        allowed.extend(w.split('"').skip(1).step_by(2).map(str::to_string));
    }
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let mut texts = vec![format!("{s:?}")];
    texts.extend(s.warnings.iter().cloned());
    if let Err(e) = &s.entries {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    for text in &texts {
        let rest = strip_allowed(text, &allowed);
        for secret in &secrets {
            // A password that is a substring of an allowed value's escape is not distinctive.
            if allowed.iter().any(|a| a.contains(secret.as_str())) {
                continue;
            }
            assert!(
                !rest.contains(secret.as_str()),
                "password {secret:?} leaked into {text:?}"
            );
        }
    }
}

/// Checks an error text of a parser that echoes no input at all.
pub fn check_no_marker(text: &str) {
    assert!(!text.contains(MARKER), "planted secret leaked: {text:?}");
}
