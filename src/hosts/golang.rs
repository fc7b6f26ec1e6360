//! Small re-implementations of the Go standard-library functions containerd's host configuration
//! leans on, so that edge cases land where containerd lands them:
//!
//! * `net.SplitHostPort` ([`split_host_port`]),
//! * `net/url.Parse` for the parts `parseHostConfig` reads: scheme, host, path ([`parse_url`]),
//! * `path.Clean` ([`clean_path`]) and `filepath.Join` ([`join_clean`]),
//! * `time.ParseDuration` ([`parse_duration`]).
//!
//! Each follows the Go source of the same name (Go 1.22+); they are written from the documented
//! algorithm, not translated line by line.

use std::path::{Path, PathBuf};

/// Go `net.SplitHostPort`: split `host:port`, `[v6]:port`. The port may be empty (`"host:"`).
///
/// Errors (as Go): no colon at all ("missing port"), `a:b:c` without brackets ("too many colons"),
/// unbalanced brackets.
pub(crate) fn split_host_port(hostport: &str) -> Result<(&str, &str), &'static str> {
    let Some(i) = hostport.rfind(':') else {
        return Err("missing port in address");
    };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err("missing ']' in address");
        };
        if end + 1 == hostport.len() {
            return Err("missing port in address");
        }
        if end + 1 != i {
            if hostport.as_bytes()[end + 1] == b':' {
                return Err("too many colons in address");
            }
            return Err("missing port in address");
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return Err("too many colons in address");
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if hostport[k..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok((host, &hostport[i + 1..]))
}

/// The port of `host` the way containerd reads it: `_, port, _ := net.SplitHostPort(host)`, i.e.
/// `""` when there is none (or the address does not split).
pub(crate) fn port_of(host: &str) -> &str {
    split_host_port(host).map(|(_, p)| p).unwrap_or("")
}

/// Go `path.Clean` (slash-separated, lexical).
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    // Number of leading ".." that cannot be removed (only for relative paths).
    let mut dotdot = 0usize;
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.len() > dotdot {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                    dotdot = out.len();
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go `filepath.Join(base, p)` on Unix: empty elements are ignored, the result is cleaned, and
/// joining nothing gives `""`.
pub(crate) fn join_clean(base: &Path, p: &str) -> PathBuf {
    let base = base.to_string_lossy();
    let parts: Vec<&str> = [base.as_ref(), p]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return PathBuf::new();
    }
    PathBuf::from(clean_path(&parts.join("/")))
}

/// containerd `makeAbsPath` (`config/hosts.go`): absolute paths are kept as written (not
/// cleaned), relative ones are `filepath.Join`ed to the host directory. Note that `""` becomes the
/// host directory itself.
pub(crate) fn make_abs_path(p: &str, base: &Path) -> PathBuf {
    if p.starts_with('/') {
        PathBuf::from(p)
    } else {
        join_clean(base, p)
    }
}

/// The parts of a Go `*url.URL` that containerd's `parseHostConfig` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoUrl {
    /// Lower-cased scheme, `""` when the string has none.
    pub scheme: String,
    /// `u.Host`: host[:port] as written (userinfo removed), `""` for opaque or path-only URLs.
    pub host: String,
    /// `u.Path`, percent-decoded.
    pub path: String,
}

/// Go `net/url.Parse`, reduced to what decides `scheme`, `host` and `path`, with Go's errors for
/// control characters, a missing scheme before `:`, a colon in the first path segment, invalid
/// ports, invalid host characters and invalid `%` escapes.
pub(crate) fn parse_url(raw: &str) -> Result<GoUrl, String> {
    let (main, fragment) = match raw.split_once('#') {
        Some((m, f)) => (m, Some(f)),
        None => (raw, None),
    };
    if main.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_string());
    }
    let (scheme, rest) = get_scheme(main)?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map(|(r, _)| r).unwrap_or(rest)
    };
    let mut url = GoUrl {
        scheme,
        host: String::new(),
        path: String::new(),
    };
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            // Opaque URL ("https:foo"): no host, no path.
            return finish_fragment(url, fragment);
        }
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".to_string());
        }
    }
    let mut rest = rest;
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, remainder) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let host = match authority.rfind('@') {
            Some(i) => &authority[i + 1..],
            None => authority,
        };
        url.host = parse_host(host)?;
        rest = remainder;
    }
    url.path = unescape(rest)?;
    finish_fragment(url, fragment)
}

fn finish_fragment(url: GoUrl, fragment: Option<&str>) -> Result<GoUrl, String> {
    if let Some(f) = fragment {
        unescape(f)?;
    }
    Ok(url)
}

/// Go `getScheme`.
fn get_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err("missing protocol scheme".to_string());
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go `parseHost` (port validation and host characters).
fn parse_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".to_string());
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    }
    for c in host.bytes() {
        let ok = c >= 0x80 || c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"%".contains(&c);
        if !ok {
            return Err(format!("invalid character {:?} in host name", c as char));
        }
    }
    unescape(host)
}

fn valid_optional_port(port: &str) -> bool {
    if port.is_empty() {
        return true;
    }
    match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Percent-decoding with Go's `invalid URL escape` error.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            match hex.and_then(|h| std::str::from_utf8(h).ok()) {
                Some(h) if h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    out.push(u8::from_str_radix(h, 16).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    let end = (i + 3).min(bytes.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&bytes[i..end])
                    ));
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units `ns`, `us`/`µs`/`μs`,
/// `ms`, `s`, `m`, `h`; `"0"` alone needs no unit. Returns nanoseconds (may be negative).
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u128 = 0;
        for b in s[..int_len].bytes() {
            value = value * 10 + u128::from(b - b'0');
            if value > LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // Fraction part.
        let mut frac: u128 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + u128::from(b - b'0');
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u128 = match unit_name {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {unit_name:?} in duration {orig:?}"
                ))
            }
        };
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if frac > 0 {
            // Go: v += uint64(float64(f) * (float64(unit) / scale))
            value += (frac as f64 * (unit as f64 / scale)) as u128;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_like_go() {
        assert_eq!(split_host_port("localhost:5000"), Ok(("localhost", "5000")));
        assert_eq!(split_host_port("[::1]:5000"), Ok(("::1", "5000")));
        assert_eq!(split_host_port("host:"), Ok(("host", "")));
        assert!(split_host_port("localhost").is_err());
        assert!(split_host_port("::1").is_err());
        assert!(split_host_port("[::1]").is_err());
        assert!(split_host_port("[::1]x:5").is_err());
        assert_eq!(port_of("::1"), "");
        assert_eq!(port_of("mirror:443"), "443");
    }

    #[test]
    fn clean_path_like_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("/us", "/us"),
            ("/us/", "/us"),
            ("//a//b/./c/..", "/a/b"),
            ("/..", "/"),
            ("a/../..", ".."),
            ("../a", "../a"),
            ("/v2/namespaceprefix/", "/v2/namespaceprefix"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
        assert_eq!(join_clean(Path::new(""), ""), PathBuf::new());
        assert_eq!(join_clean(Path::new("/d/"), ""), PathBuf::from("/d"));
        assert_eq!(
            join_clean(Path::new("/d"), "x/../ca.crt"),
            PathBuf::from("/d/ca.crt")
        );
        assert_eq!(
            make_abs_path("/abs//x", Path::new("/d")),
            PathBuf::from("/abs//x")
        );
        assert_eq!(make_abs_path("", Path::new("/d")), PathBuf::from("/d"));
    }

    #[test]
    fn parse_url_like_go() {
        let u = parse_url("https://mirror-bak.registry/us").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("https", "mirror-bak.registry", "/us")
        );
        let u = parse_url("HTTP://user:pw@Mirror.Local:5000/a%20b?x=1#frag").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("http", "Mirror.Local:5000", "/a b")
        );
        // No scheme: everything is a path.
        let u = parse_url("http-mirror.local").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("", "", "http-mirror.local")
        );
        let u = parse_url("https://[::1]:5000").unwrap();
        assert_eq!(u.host, "[::1]:5000");
        let u = parse_url("https:opaque").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("", ""));
        assert!(parse_url("https://host:abc").is_err());
        assert!(parse_url("https://ho st").is_err());
        assert!(parse_url("https://host/%zz").is_err());
        assert!(parse_url("https://host/\n").is_err());
        assert!(parse_url("://x").is_err());
        assert!(parse_url("httpx:5000/a").is_ok());
        assert!(parse_url("http-x:5000").is_ok()); // scheme "http-x", opaque
        assert!(parse_url("1http:5000").is_err()); // no scheme, colon in first segment
    }

    #[test]
    fn parse_duration_like_go() {
        for (input, want) in [
            ("0", 0i64),
            ("3s", 3_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("2us", 2_000),
            ("2\u{b5}s", 2_000),
            ("10ns", 10),
            ("-1s", -1_000_000_000),
            ("+.5s", 500_000_000),
        ] {
            assert_eq!(parse_duration(input), Ok(want), "{input:?}");
        }
        for bad in ["", "3", "1 s", "1sec", "3 s", "s", ".s", "1d", "-", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
