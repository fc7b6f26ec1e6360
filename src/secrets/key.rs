//! kubelet's keyring key for an `auths` key, and the `registry` metrics label.
//!
//! kubelet (`pkg/credentialprovider/keyring.go`, `BasicDockerKeyring.Add`) does, per key:
//! prefix `https://` unless the key starts with `https://` or `http://`; parse it with Go's
//! `net/url.Parse` (on error: log and skip the entry); cut a leading `/v2/` or `/v1/` of the path to
//! `/`; key = `Host + path`, or just `Host` when the path is empty or `/`.
//!
//! # Why not the `url` crate
//!
//! The `url` crate implements the WHATWG URL standard, which normalises hosts where Go does not:
//! it lowercases them (`Registry.Example.com` → `registry.example.com`), drops the scheme's default
//! port (`host:443` → `host`), rewrites IPv4 shorthands (`127.1` → `127.0.0.1`), punycodes
//! Unicode hosts and decodes `%41` in a host (Go rejects it); it also keeps the path
//! percent-encoded where Go decodes it. kubelet's keys are matched case-sensitively, by port string
//! and by path prefix, so each of those changes would make regprobe disagree with kubelet. The
//! parsing is therefore the crate's port of Go's `net/url.Parse`, `crate::golang::parse_url`.

use crate::golang::{self, UrlError};
use std::borrow::Cow;

/// A key after kubelet's normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedKey {
    /// kubelet's keyring key: `host[:port]` plus the path unless it is empty or `/`.
    pub key: String,
    /// The `registry` metrics label: `key` with Docker Hub's host spellings made `docker.io`.
    pub registry: String,
    /// The host part has a glob `*`. (A `?` ends Go's host, and Go refuses a `[` other than
    /// the one opening an IPv6 literal, so `*` is the only glob character a key's host can hold.)
    pub wildcard: bool,
}

/// Why Go's `url.Parse` refuses a key (kubelet then logs and skips the entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A byte below 0x20 or 0x7f.
    #[error("control character")]
    ControlCharacter,
    /// `[` opens the host without a closing `]`.
    #[error("missing ']' in host")]
    MissingBracket,
    /// Text after the host that is not `:digits`.
    #[error("invalid port after host")]
    InvalidPort,
    /// A character Go does not allow in a host (space, `^`, `|`, `{`, ...).
    #[error("invalid character in host name")]
    InvalidHostCharacter,
    /// A `%` not followed by two hex digits, or a `%`-escape Go refuses in a host.
    #[error("invalid %-escape")]
    InvalidEscape,
    /// A character Go does not allow in URL user-info.
    #[error("invalid user-info")]
    InvalidUserinfo,
    /// The bracketed host is not an IPv6 address (Go ≥ 1.24.8 / 1.25.2 refuse it).
    #[error("bracketed host is not an IPv6 address")]
    NotIpv6,
    /// A `[` after the start of the host, e.g. a glob class `reg[0-9].example.com`: Go refuses it
    /// since 1.24.8 / 1.25.2 (as `invalid IP-literal` since the CVE-2026-25679 fix); before, it
    /// was an ordinary host character. See `crate::golang`.
    #[error("'[' inside the host (only an IPv6 address may be bracketed, as the whole host)")]
    BracketInHost,
    /// The host or path %-decodes to bytes that are not UTF-8 (Go would accept them; regprobe
    /// cannot represent such a key).
    #[error("host or path decodes to bytes that are not UTF-8")]
    NotUtf8,
}

impl From<UrlError> for KeyError {
    fn from(e: UrlError) -> KeyError {
        match e {
            UrlError::ControlCharacter => KeyError::ControlCharacter,
            UrlError::MissingBracket => KeyError::MissingBracket,
            UrlError::InvalidPort(_) => KeyError::InvalidPort,
            UrlError::InvalidHostCharacter(_) => KeyError::InvalidHostCharacter,
            UrlError::InvalidEscape(_) => KeyError::InvalidEscape,
            UrlError::InvalidUserinfo => KeyError::InvalidUserinfo,
            UrlError::InvalidHost(_) | UrlError::Ipv4Literal => KeyError::NotIpv6,
            UrlError::BracketNotAtStart => KeyError::BracketInHost,
            UrlError::NotUtf8 => KeyError::NotUtf8,
            // The value always starts with `https://` or `http://`.
            UrlError::MissingScheme | UrlError::ColonInFirstSegment => {
                unreachable!("a URL with a scheme: {e}")
            }
        }
    }
}

/// kubelet's keyring key, the `registry` label and the wildcard flag for an `auths` key.
///
/// Examples: `https://index.docker.io/v1/` → key `index.docker.io`, registry `docker.io`;
/// `https://quay.io/v2/myorg` → `quay.io/myorg`; `http://ghcr.io/` → `ghcr.io`;
/// `*.example.com` → `*.example.com` (wildcard); `registry.example.com:5000` unchanged.
///
/// Errors: [`KeyError`] where Go's `net/url.Parse` fails (kubelet skips the entry).
/// Source: `pkg/credentialprovider/keyring.go` `BasicDockerKeyring.Add`; Go `net/url/url.go`.
pub fn normalize_key(raw: &str) -> Result<NormalizedKey, KeyError> {
    let value: Cow<'_, str> = if raw.starts_with("https://") || raw.starts_with("http://") {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(format!("https://{raw}"))
    };
    let url = golang::parse_url(&value)?;
    let path = url.path.as_str();
    let effective = if path.starts_with("/v2/") || path.starts_with("/v1/") {
        &path[3..]
    } else {
        path
    };
    let mut key = url.host.clone();
    if !effective.is_empty() && effective != "/" {
        key.push_str(effective);
    }
    // An IPv6 literal's brackets are not a glob (kubelet's `URLsMatch` strips them with
    // `net.SplitHostPort`); Go refuses a `[` anywhere else in a host.
    let wildcard = !url.host.starts_with('[') && url.host.contains('*');
    let registry = registry_label(&key);
    Ok(NormalizedKey {
        key,
        registry,
        wildcard,
    })
}

/// The `registry` metrics label for a keyring key: Docker Hub's host spellings
/// (`index.docker.io`, `registry-1.docker.io`, `docker.io`) become `docker.io`, a path is kept;
/// every other key is returned unchanged.
pub fn registry_label(key: &str) -> String {
    let split = key.find('/').unwrap_or(key.len());
    let (host, rest) = key.split_at(split);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => format!("docker.io{rest}"),
        _ => key.to_string(),
    }
}

/// The key as written, with any URL user-info (`user:pw@`) replaced by `xxxxx@`, for display.
/// The user-info is located where Go's parser finds it (after `//`, before the first `/`, `?` or
/// `#`, up to the last `@`). A `://` before that point does not end the search: kubelet parses
/// only `https://` and `http://` (case-sensitively) as a scheme, so in `HTTPS://user:pw@host` or
/// `docker://user:pw@host` the user-info stays in the keyring key (and so in the `registry`
/// label) as path text; it is hidden all the same. Without user-info, a port that is not digits
/// (`https://user:pw/host`, a user-info whose `@` is missing; Go refuses it) is shown as `xxxxx`.
pub fn redact_key(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    // Whether the `/` at `i` belongs to a `://`.
    let in_separator = |i: usize| {
        (i >= 1 && bytes[i - 1..].starts_with(b"://"))
            || (i >= 2 && bytes[i - 2..].starts_with(b"://"))
    };
    let end = (0..bytes.len())
        .find(|&i| matches!(bytes[i], b'?' | b'#') || (bytes[i] == b'/' && !in_separator(i)))
        .unwrap_or(bytes.len());
    let authority = &raw[..end];
    if let Some(at) = authority.rfind('@') {
        let start = match raw[..at].find("://") {
            Some(i) if !raw[..i].contains('@') => i + 3,
            _ => 0,
        };
        return Cow::Owned(format!("{}xxxxx{}", &raw[..start], &raw[at..]));
    }
    let host_start = authority.rfind("://").map_or(0, |i| i + 3);
    let host = &authority[host_start..];
    // Where the port starts (at `:`), and whether it is `:digits` as Go requires.
    let (port_at, valid) = if host.starts_with('[') {
        match host.rfind(']') {
            Some(close) => (close + 1, golang::valid_optional_port(&host[close + 1..])),
            None => return Cow::Borrowed(raw),
        }
    } else {
        match (host.find(':'), host.rfind(':')) {
            (Some(first), Some(last)) => (first + 1, golang::valid_optional_port(&host[last..])),
            _ => return Cow::Borrowed(raw),
        }
    };
    if valid {
        return Cow::Borrowed(raw);
    }
    let cut = host_start + port_at;
    Cow::Owned(format!("{}xxxxx{}", &raw[..cut], &raw[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        normalize_key(raw).unwrap().key
    }

    fn label(raw: &str) -> String {
        normalize_key(raw).unwrap().registry
    }

    #[test]
    fn spec_examples() {
        // docs/containerd-kubelet.md §3.3 and §3.5.
        assert_eq!(key("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key("docker.io"), "docker.io");
        assert_eq!(key("https://quay.io/v2/myorg"), "quay.io/myorg");
        assert_eq!(key("http://ghcr.io/"), "ghcr.io");
        assert_eq!(
            key("registry.example.com:5000"),
            "registry.example.com:5000"
        );
        assert_eq!(key("*.example.com"), "*.example.com");
        assert_eq!(key("registry.example.com"), "registry.example.com");
        assert_eq!(
            key("registry.example.com/team"),
            "registry.example.com/team"
        );
    }

    #[test]
    fn normalisation_table() {
        let table: &[(&str, &str, &str, bool)] = &[
            // raw, key, registry label, wildcard
            (
                "https://index.docker.io/v1/",
                "index.docker.io",
                "docker.io",
                false,
            ),
            (
                "https://index.docker.io/v2/",
                "index.docker.io",
                "docker.io",
                false,
            ),
            ("index.docker.io", "index.docker.io", "docker.io", false),
            (
                "registry-1.docker.io",
                "registry-1.docker.io",
                "docker.io",
                false,
            ),
            (
                "https://registry-1.docker.io/v2/",
                "registry-1.docker.io",
                "docker.io",
                false,
            ),
            ("http://docker.io/v1/", "docker.io", "docker.io", false),
            (
                "docker.io/library",
                "docker.io/library",
                "docker.io/library",
                false,
            ),
            (
                "https://index.docker.io/v1/myorg",
                "index.docker.io/myorg",
                "docker.io/myorg",
                false,
            ),
            (
                "https://quay.io/v2/myorg",
                "quay.io/myorg",
                "quay.io/myorg",
                false,
            ),
            ("quay.io/myorg/", "quay.io/myorg/", "quay.io/myorg/", false),
            (
                "https://quay.io/v3/x",
                "quay.io/v3/x",
                "quay.io/v3/x",
                false,
            ),
            ("https://quay.io/v2", "quay.io/v2", "quay.io/v2", false),
            ("http://ghcr.io/", "ghcr.io", "ghcr.io", false),
            ("localhost:5000", "localhost:5000", "localhost:5000", false),
            ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000", false),
            ("[::1]:5000", "[::1]:5000", "[::1]:5000", false),
            (
                "[::ffff:10.0.0.1]:5000",
                "[::ffff:10.0.0.1]:5000",
                "[::ffff:10.0.0.1]:5000",
                false,
            ),
            (
                "https://[fe80::1%25eth0]:5000/",
                "[fe80::1%eth0]:5000",
                "[fe80::1%eth0]:5000",
                false,
            ),
            ("*.example.com", "*.example.com", "*.example.com", true),
            (
                "https://*.example.com/v2/",
                "*.example.com",
                "*.example.com",
                true,
            ),
            // Go keeps case, default ports and IPv4 shorthands (the `url` crate would not).
            (
                "Registry.Example.com",
                "Registry.Example.com",
                "Registry.Example.com",
                false,
            ),
            (
                "registry.example.com:443",
                "registry.example.com:443",
                "registry.example.com:443",
                false,
            ),
            ("127.1:5000", "127.1:5000", "127.1:5000", false),
            // Go drops user-info, query and fragment; decodes the path.
            ("https://user:pw@ghcr.io/v2/", "ghcr.io", "ghcr.io", false),
            ("ghcr.io?x=1", "ghcr.io", "ghcr.io", false),
            ("ghcr.io/org#frag", "ghcr.io/org", "ghcr.io/org", false),
            (
                "quay.io/my%20org",
                "quay.io/my org",
                "quay.io/my org",
                false,
            ),
            // An empty port is valid in Go; a `?` ends the host before globbing can see it.
            ("example.com:", "example.com:", "example.com:", false),
            ("reg?.example.com", "reg", "reg", false),
            // Only `http://` and `https://` (lowercase) count as a scheme.
            (
                "HTTPS://ghcr.io",
                "HTTPS://ghcr.io",
                "HTTPS://ghcr.io",
                false,
            ),
            ("", "", "", false),
        ];
        for (raw, want_key, want_label, want_wild) in table {
            let got = normalize_key(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(&got.key, want_key, "key of {raw:?}");
            assert_eq!(&got.registry, want_label, "label of {raw:?}");
            assert_eq!(got.wildcard, *want_wild, "wildcard of {raw:?}");
        }
    }

    #[test]
    fn registry_label_maps_docker_hub_only() {
        assert_eq!(label("index.docker.io"), "docker.io");
        assert_eq!(label("https://registry-1.docker.io/v1/"), "docker.io");
        assert_eq!(label("docker.io:443"), "docker.io:443");
        assert_eq!(label("mirror.docker.io"), "mirror.docker.io");
        assert_eq!(label("*.docker.io"), "*.docker.io");
    }

    #[test]
    fn keys_go_refuses() {
        let table: &[(&str, KeyError)] = &[
            ("ghcr.io:abc", KeyError::InvalidPort),
            ("ghcr.io:5000x/path", KeyError::InvalidPort),
            ("[ab].example.com", KeyError::InvalidPort),
            ("[::1", KeyError::MissingBracket),
            ("[example.com]:5000", KeyError::NotIpv6),
            ("[1.2.3.4]", KeyError::NotIpv6),
            // Go refuses a `[` after the start of the host (since 1.24.8): glob classes.
            ("reg[0-9].example.com", KeyError::BracketInHost),
            (
                "https://reg[0-9].example.com:5000/v2/",
                KeyError::BracketInHost,
            ),
            ("bad[.example.com", KeyError::BracketInHost),
            ("x[::1]:5000", KeyError::BracketInHost),
            // netip.ParseAddr: a zone must not be empty.
            ("https://[fe80::1%25]:5000", KeyError::NotIpv6),
            ("ghcr io", KeyError::InvalidHostCharacter),
            ("ghcr^io", KeyError::InvalidHostCharacter),
            ("ex%41mple.com", KeyError::InvalidEscape),
            ("quay.io/bad%zzescape", KeyError::InvalidEscape),
            ("quay.io/x%2", KeyError::InvalidEscape),
            ("ghcr.io\t", KeyError::ControlCharacter),
            ("us er@ghcr.io", KeyError::InvalidUserinfo),
            ("user:%zz@ghcr.io", KeyError::InvalidEscape),
            ("ghcr.io#%zz", KeyError::InvalidEscape),
            ("quay.io/%ff", KeyError::NotUtf8),
        ];
        for (raw, want) in table {
            assert_eq!(normalize_key(raw), Err(*want), "{raw:?}");
        }
        // A control character in the fragment is not checked by Go.
        assert_eq!(key("ghcr.io#a\u{1}"), "ghcr.io");
        // Non-ASCII hosts are allowed, %-escapes of non-ASCII bytes too.
        assert_eq!(key("bücher.de"), "bücher.de");
        assert_eq!(key("b%C3%BCcher.de"), "bücher.de");
    }

    #[test]
    fn redaction_hides_userinfo_only() {
        assert_eq!(
            redact_key("https://user:pw@ghcr.io/v2/"),
            "https://xxxxx@ghcr.io/v2/"
        );
        assert_eq!(redact_key("token@ghcr.io"), "xxxxx@ghcr.io");
        assert_eq!(redact_key("a:b@c@ghcr.io/x@y"), "xxxxx@ghcr.io/x@y");
        assert_eq!(redact_key("ghcr.io/x@y"), "ghcr.io/x@y");
        assert_eq!(redact_key("ghcr.io?a@b"), "ghcr.io?a@b");
        assert_eq!(
            redact_key("https://index.docker.io/v1/"),
            "https://index.docker.io/v1/"
        );
    }

    /// Found by fuzzing (`fuzz/`, targets `secret_planted`, `secret_content`): with a scheme
    /// kubelet does not recognise (it matches `https://` and `http://` case-sensitively), the
    /// user-info stayed in the shown key and, through the keyring key, in the `registry` label;
    /// a user-info without its `@` was shown in the "not a valid registry URL" warning.
    #[test]
    fn redaction_hides_userinfo_after_any_scheme() {
        assert_eq!(redact_key("HTTPS://:pw@"), "HTTPS://xxxxx@");
        assert_eq!(
            redact_key("Http://user:pw@ghcr.io/v2/"),
            "Http://xxxxx@ghcr.io/v2/"
        );
        assert_eq!(redact_key("docker://u:pw@h/x@y"), "docker://xxxxx@h/x@y");
        // Not a scheme: the user-info search starts at the beginning, as before.
        assert_eq!(redact_key("ghcr.io/a://b@c"), "ghcr.io/a://b@c");
        assert_eq!(redact_key("h:5000://b@c"), "h:5000://xxxxx@c");
        assert_eq!(redact_key("https://h://u:pw@c/x@y"), "https://xxxxx@c/x@y");
        assert_eq!(redact_key("u:pw@h://x@y"), "xxxxx@y");
        // A user-info whose `@` is missing makes Go refuse the port: it is hidden.
        assert_eq!(
            redact_key("https://user:pw(registry.example.com/v2/"),
            "https://user:xxxxx/v2/"
        );
        assert_eq!(redact_key("user:pw/x"), "user:xxxxx/x");
        assert_eq!(redact_key("user:pw:x/x"), "user:xxxxx/x");
        assert_eq!(redact_key("[::1]pw"), "[::1]xxxxx");
        // Valid ports and IPv6 literals are shown as written.
        for key in [
            "h:5000/x",
            "h:",
            "[::1]:5000",
            "[::1]",
            "[::1",
            "*.example.com",
            "a:b:5000",
        ] {
            assert_eq!(redact_key(key), key);
        }
        // The keyring key of such an entry keeps the user-info (kubelet's `Host + Path`).
        let n = normalize_key("HTTPS://user:pw@registry.example.com").unwrap();
        assert_eq!(n.key, "HTTPS://user:pw@registry.example.com");
        assert_eq!(redact_key(&n.key), "HTTPS://xxxxx@registry.example.com");
    }
}
