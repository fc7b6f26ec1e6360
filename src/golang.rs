//! Ports of the Go standard-library functions whose edge cases decide what kubelet and
//! containerd make of registry names and `hosts.toml` values. This is the crate's one copy:
//! `secrets::key` (kubelet's `BasicDockerKeyring.Add`), `secrets::keyring` (kubelet's
//! `ParseSchemelessURL`, `SplitURL`, `URLsMatch`) and `hosts` (containerd's `parseHostConfig`,
//! `IsLocalhost`, the HTTP-fallback check) all call it.
//!
//! | Go | here |
//! | --- | --- |
//! | `net/url/url.go` `Parse`, `parse`, `getScheme`, `parseAuthority`, `parseHost`, `validOptionalPort`, `validUserinfo`, `unescape`, `shouldEscape`, `stringContainsCTLByte` | [`parse_url`], [`valid_optional_port`] |
//! | `net/netip/netip.go` `ParseAddr` (as `parseHost` uses it) | [`check_ip_literal`] |
//! | `net/ipsock.go` `SplitHostPort` | [`split_host_port`], [`port_of`] |
//! | `path/path.go` `Clean` | [`clean_path`] |
//! | `path/filepath/path.go` `Join` (Unix) | [`join_clean`] |
//! | `time/format.go` `ParseDuration` | [`parse_duration`] |
//!
//! They follow the Go source of the same name, written from its algorithm rather than line by
//! line, and keep Go's error texts.
//!
//! # Go version
//!
//! kubelet and containerd 2.x are built with current Go, so this follows current Go: the
//! 1.24.x, 1.25.x and 1.26.x point releases with the `parseHost` security fixes below. Where
//! older Go differs:
//!
//! * **Before Go 1.24.8 / 1.25.2**, `parseHost` took a host as an IP-literal only when it
//!   started with `[` and did not look inside the brackets: `[example.com]:5000` and `[1.2.3.4]`
//!   parsed, and a `[` later in the host (`reg[0-9].example.com`, a glob class) was an ordinary
//!   host character.
//! * **Go 1.24.8 / 1.25.2** (CVE-2025-47912) require the bracketed text to be an IP address
//!   other than IPv4 per `netip.ParseAddr` (a zone is allowed, `[fe80::1%25eth0]`), and
//!   rebuild the host as `"[" + address + "]" + port`. They took the *last* `[` of the host as the
//!   literal's start: a `[` later in the host made the text after its `]` a bad port, or the
//!   bracketed text a bad address (so a glob class, `reg[0-9].example.com`, was refused from
//!   then on), and when it did hold an address the text before the `[` was dropped
//!   (`x[::1]:5000` gave host `[::1]:5000`). The first of these releases also refused
//!   IPv4-mapped addresses (`[::ffff:1.2.3.4]`); Go 1.25.4 accepts them again
//!   (go.dev/issue/75815).
//! * **Since the CVE-2026-25679 fix** (go.dev/issue/77578), a `[` anywhere but at the start of
//!   the host is `invalid IP-literal`. Either way a `[...]` glob class cannot appear in a host:
//!   kubelet skips such a keyring key, and containerd refuses such a `server`.
//! * **Go 1.26** added the GODEBUG setting `urlstrictcolons`; with it on, the port of an `http`
//!   or `https` URL starts at the host's *first* colon (since Go 1.27 only for those two schemes,
//!   go.dev/issue/78077), so `https://a:b:5000` is refused. It defaults to on only for a binary
//!   whose main module says `go 1.26` or later (or `godebug default=go1.26`). This port keeps
//!   the older reading, the port after the *last* colon (`urlstrictcolons=0`): the two differ
//!   only for a host with two or more colons outside brackets.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Go `net.SplitHostPort` (`net/ipsock.go`): split `host:port` or `[host]:port` at the last
/// colon. The port may be empty (`"host:"`) and is not checked to be digits.
///
/// Errors (Go's texts): no colon at all ("missing port in address"), `a:b:c` without brackets
/// ("too many colons in address"), a `]` not followed by the last colon, a stray `[` or `]`.
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

/// Go `path.Clean` (`path/path.go`): slash-separated and lexical; `""` becomes `"."`.
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

/// Go `filepath.Join(base, p)` on Unix (`path/filepath/path.go`): empty elements are ignored,
/// the result is cleaned, and joining nothing gives `""`.
pub(crate) fn join_clean(base: &std::path::Path, p: &str) -> PathBuf {
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

/// The parts of a Go `*url.URL` that kubelet and containerd read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GoUrl {
    /// `u.Scheme`, lower-cased; `""` when the string has none.
    pub scheme: String,
    /// `u.Host`: the authority `host[:port]` (user-info removed), unescaped, `""` for opaque or
    /// path-only URLs. An IP-literal keeps its brackets (`[::1]:5000`, `[fe80::1%eth0]`).
    /// [`split_host_port`] splits it as Go's `u.Hostname()` / `u.Port()` callers do.
    pub host: String,
    /// `u.Path`, unescaped.
    pub path: String,
}

/// Why Go's `url.Parse` refuses a string. The texts are Go's (`%q` rendered with Rust's `{:?}`),
/// except [`UrlError::NotUtf8`], which Go does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlError {
    /// A byte below 0x20, or 0x7f, before the `#` (`stringContainsCTLByte`).
    #[error("net/url: invalid control character in URL")]
    ControlCharacter,
    /// The string starts with `:` (`getScheme`).
    #[error("missing protocol scheme")]
    MissingScheme,
    /// No scheme, and a `:` before the first `/` (go.dev/issue/16822).
    #[error("first path segment in URL cannot contain colon")]
    ColonInFirstSegment,
    /// `[` opens the host without a closing `]`.
    #[error("missing ']' in host")]
    MissingBracket,
    /// Text after the host that is not `:` and digits (`validOptionalPort`); carries it.
    #[error("invalid port {0:?} after host")]
    InvalidPort(String),
    /// A character Go does not allow in a host (`shouldEscape(c, encodeHost)`); carries it.
    #[error("invalid character {0:?} in host name")]
    InvalidHostCharacter(String),
    /// A `%` not followed by two hex digits, or (in a host) an escape of an ASCII byte other
    /// than `%25`, or (in a zone) of a byte a host may not hold; carries the escape.
    #[error("invalid URL escape {0:?}")]
    InvalidEscape(String),
    /// A character Go does not allow in user-info (`validUserinfo`).
    #[error("net/url: invalid userinfo")]
    InvalidUserinfo,
    /// The bracketed text is not an IP address (`netip.ParseAddr` fails); carries it.
    #[error("invalid host: {0:?} is not an IP address")]
    InvalidHost(String),
    /// The bracketed text is an IPv4 address (Go: `invalid IP-literal`).
    #[error("invalid IP-literal")]
    Ipv4Literal,
    /// A `[` after the start of the host (Go: `invalid IP-literal`, since CVE-2026-25679).
    #[error("invalid IP-literal")]
    BracketNotAtStart,
    /// The host or path unescapes to bytes that are not UTF-8: Go accepts them, regprobe
    /// cannot represent them.
    #[error("host or path decodes to bytes that are not UTF-8")]
    NotUtf8,
}

/// Go `url.Parse` (`net/url/url.go` `Parse`, `parse`), reduced to what decides `Scheme`, `Host`
/// and `Path`, with every error `Parse` returns: control bytes, a missing scheme before `:`, a
/// colon in a relative URL's first segment, the host (`parseHost`: brackets, IP-literal, port,
/// characters, escapes), the user-info (`validUserinfo`, escapes), and the escapes of the path
/// and the fragment. The query is cut off unchecked, as Go does.
pub(crate) fn parse_url(raw: &str) -> Result<GoUrl, UrlError> {
    let (u, frag) = raw.split_once('#').unwrap_or((raw, ""));
    let url = parse(u)?;
    if !frag.is_empty() {
        // `setFragment`: only the escapes are checked, control bytes are allowed.
        unescape(frag.as_bytes(), Mode::Fragment)?;
    }
    Ok(url)
}

/// Go `parse(rawURL, viaRequest=false)`.
fn parse(raw: &str) -> Result<GoUrl, UrlError> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(UrlError::ControlCharacter);
    }
    if raw == "*" {
        return Ok(GoUrl {
            path: "*".to_string(),
            ..GoUrl::default()
        });
    }
    let (scheme, rest) = get_scheme(raw)?;
    let scheme = scheme.to_ascii_lowercase();
    // A lone trailing '?' is `ForceQuery`; otherwise the query starts at the first '?'.
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map_or(rest, |(r, _)| r)
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // A rootless path after a scheme is opaque ("https:foo"): no host, no path.
            return Ok(GoUrl {
                scheme,
                ..GoUrl::default()
            });
        }
        let segment = rest.split_once('/').map_or(rest, |(s, _)| s);
        if segment.contains(':') {
            return Err(UrlError::ColonInFirstSegment);
        }
    }
    let mut host = Vec::new();
    let mut rest = rest;
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, tail) = after.split_at(after.find('/').unwrap_or(after.len()));
        host = parse_authority(authority)?;
        rest = tail;
    }
    let path = unescape(rest.as_bytes(), Mode::Path)?;
    Ok(GoUrl {
        scheme,
        host: String::from_utf8(host).map_err(|_| UrlError::NotUtf8)?,
        path: String::from_utf8(path).map_err(|_| UrlError::NotUtf8)?,
    })
}

/// Go `getScheme`: `[a-zA-Z][a-zA-Z0-9+.-]*` before the first `:`, else no scheme.
fn get_scheme(raw: &str) -> Result<(&str, &str), UrlError> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err(UrlError::MissingScheme),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go `parseAuthority`: the host after the last `@` is parsed first, then the user-info before
/// it is validated and unescaped (and dropped: no caller reads it).
fn parse_authority(authority: &str) -> Result<Vec<u8>, UrlError> {
    let at = authority.rfind('@');
    let host = parse_host(at.map_or(authority, |i| &authority[i + 1..]))?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        if !valid_userinfo(userinfo) {
            return Err(UrlError::InvalidUserinfo);
        }
        // Without a ':' the whole is the user name; with one, user and password each.
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        unescape(user.as_bytes(), Mode::UserPassword)?;
        unescape(password.as_bytes(), Mode::UserPassword)?;
    }
    Ok(host)
}

/// Go `parseHost` (current Go, see the module notes): an IP-literal only as the whole host,
/// `[address]` or `[address]:port`, where the address must be IPv6 (zone allowed, `%25`-escaped)
/// or IPv4-mapped IPv6; otherwise the text after the last `:` must be a port; then the host's
/// characters and escapes are checked (`unescape(host, encodeHost)`).
fn parse_host(host: &str) -> Result<Vec<u8>, UrlError> {
    match host.rfind('[') {
        Some(open) if open > 0 => Err(UrlError::BracketNotAtStart),
        Some(_) => {
            let close = host.rfind(']').ok_or(UrlError::MissingBracket)?;
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return Err(UrlError::InvalidPort(colon_port.to_string()));
            }
            let port = unescape(colon_port.as_bytes(), Mode::Host)?;
            let hostname = &host[1..close];
            // RFC 6874: "%25" starts the zone, which may escape more than a host may.
            let address = match hostname.find("%25") {
                Some(zone) => {
                    let mut a = unescape(&hostname.as_bytes()[..zone], Mode::Host)?;
                    a.extend(unescape(&hostname.as_bytes()[zone..], Mode::Zone)?);
                    a
                }
                None => unescape(hostname.as_bytes(), Mode::Host)?,
            };
            check_ip_literal(&address)?;
            Ok([b"[".as_slice(), &address, b"]", &port].concat())
        }
        None => {
            if let Some(colon) = host.rfind(':') {
                let colon_port = &host[colon..];
                if !valid_optional_port(colon_port) {
                    return Err(UrlError::InvalidPort(colon_port.to_string()));
                }
            }
            unescape(host.as_bytes(), Mode::Host)
        }
    }
}

/// The check `parseHost` makes on an unescaped bracketed address: `netip.ParseAddr` must accept
/// it and it must not be IPv4 (`addr.Is4()`). `ParseAddr` reads IPv4 when a `.` comes before
/// any `:` and `%`, IPv6 (with an optional non-empty zone after the first `%`) when a `:` does.
fn check_ip_literal(address: &[u8]) -> Result<(), UrlError> {
    let text = String::from_utf8_lossy(address);
    let invalid = || UrlError::InvalidHost(text.clone().into_owned());
    match text.find(['.', ':', '%']).map(|i| text.as_bytes()[i]) {
        Some(b'.') if text.parse::<Ipv4Addr>().is_ok() => Err(UrlError::Ipv4Literal),
        Some(b':') => {
            let (addr, zone) = text.split_once('%').unwrap_or((&text, "-"));
            if zone.is_empty() || addr.parse::<Ipv6Addr>().is_err() {
                return Err(invalid());
            }
            Ok(())
        }
        _ => Err(invalid()),
    }
}

/// Go `validOptionalPort`: empty, or `:` followed by ASCII digits only (possibly none).
pub(crate) fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        _ if port.is_empty() => true,
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Go `validUserinfo`: RFC 3986 unreserved, sub-delims, `:`, `%`, and (Go's leniency) `@`.
fn valid_userinfo(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
}

/// The `unescape` modes `Parse` uses (no query component, so no `+` handling).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

/// Go `shouldEscape(c, encodeHost)` (the same for `encodeZone`): everything but alphanumerics,
/// the sub-delims, `:`, `[`, `]`, `<`, `>`, `"` and the unreserved marks `-_.~`.
fn host_should_escape(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c))
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go `unescape(s, mode)`: every `%` needs two hex digits; in a host only non-ASCII bytes (and
/// `%25`) may be escaped; in a zone only bytes a host may hold (and space, and `%25`); a host or
/// zone byte below 0x80 must be one a host may hold.
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, UrlError> {
    let escape_text = |from: usize| {
        let to = (from + 3).min(s.len());
        String::from_utf8_lossy(&s[from..to]).into_owned()
    };
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len()
                    || !s[i + 1].is_ascii_hexdigit()
                    || !s[i + 2].is_ascii_hexdigit()
                {
                    return Err(UrlError::InvalidEscape(escape_text(i)));
                }
                let pct25 = &s[i..i + 3] == b"%25";
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && !pct25 {
                    return Err(UrlError::InvalidEscape(escape_text(i)));
                }
                if mode == Mode::Zone {
                    let v = (unhex(s[i + 1]) << 4) | unhex(s[i + 2]);
                    if !pct25 && v != b' ' && host_should_escape(v) {
                        return Err(UrlError::InvalidEscape(escape_text(i)));
                    }
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && host_should_escape(c) {
                    return Err(UrlError::InvalidHostCharacter((c as char).to_string()));
                }
                i += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            out.push((unhex(s[i + 1]) << 4) | unhex(s[i + 2]));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
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
    use std::path::Path;

    #[test]
    fn split_host_port_like_go() {
        for (input, want) in [
            ("localhost:5000", Ok(("localhost", "5000"))),
            ("[::1]:5000", Ok(("::1", "5000"))),
            ("[fe80::1%eth0]:80", Ok(("fe80::1%eth0", "80"))),
            ("host:", Ok(("host", ""))),
            ("host:abc", Ok(("host", "abc"))),
            (":80", Ok(("", "80"))),
            ("localhost", Err("missing port in address")),
            ("", Err("missing port in address")),
            ("::1", Err("too many colons in address")),
            ("a:b:c", Err("too many colons in address")),
            ("[::1]", Err("missing port in address")),
            ("[::1]x:5", Err("missing port in address")),
            ("[::1]:5:6", Err("too many colons in address")),
            ("[::1:5", Err("missing ']' in address")),
            ("reg[0-9].io:80", Err("unexpected '[' in address")),
            ("a]b:80", Err("unexpected ']' in address")),
        ] {
            assert_eq!(split_host_port(input), want, "{input:?}");
        }
        assert_eq!(port_of("::1"), "");
        assert_eq!(port_of("mirror:443"), "443");
        assert_eq!(port_of("[::1]:5000"), "5000");
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
    }

    fn parts(raw: &str) -> (String, String, String) {
        let u = parse_url(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        (u.scheme, u.host, u.path)
    }

    fn triple(scheme: &str, host: &str, path: &str) -> (String, String, String) {
        (scheme.to_string(), host.to_string(), path.to_string())
    }

    #[test]
    fn parse_url_like_go() {
        assert_eq!(
            parts("https://mirror-bak.registry/us"),
            triple("https", "mirror-bak.registry", "/us")
        );
        assert_eq!(
            parts("HTTP://user:pw@Mirror.Local:5000/a%20b?x=1#frag"),
            triple("http", "Mirror.Local:5000", "/a b")
        );
        // No scheme: everything is a path.
        assert_eq!(
            parts("http-mirror.local"),
            triple("", "", "http-mirror.local")
        );
        assert_eq!(parse_url("https://[::1]:5000").unwrap().host, "[::1]:5000");
        assert_eq!(parts("https:opaque"), triple("https", "", ""));
        assert_eq!(parts("*"), triple("", "", "*"));
        assert_eq!(parts("https://h/a?"), triple("https", "h", "/a"));
        assert_eq!(parts("https://h/a??"), triple("https", "h", "/a"));
        assert_eq!(parts("///x"), triple("", "", "///x"));
        assert!(parse_url("https://host:abc").is_err());
        assert!(parse_url("https://ho st").is_err());
        assert!(parse_url("https://host/%zz").is_err());
        assert!(parse_url("https://host/\n").is_err());
        assert!(parse_url("://x").is_err());
        assert!(parse_url("httpx:5000/a").is_ok());
        assert!(parse_url("http-x:5000").is_ok()); // scheme "http-x", opaque
        assert!(parse_url("1http:5000").is_err()); // no scheme, colon in first segment

        // Control bytes are refused before the '#' only; the fragment's escapes are
        // checked.
        assert!(parse_url("https://h/#\u{1}").is_ok());
        assert_eq!(
            parse_url("https://h/#%zz"),
            Err(UrlError::InvalidEscape("%zz".into()))
        );
    }

    /// The cases where the three earlier copies (`hosts`, `secrets::key`, `secrets::keyring`)
    /// disagreed with each other or with current Go (see the module notes).
    #[test]
    fn parse_host_like_current_go() {
        // Accepted: IPv6 literals, with port, zone (RFC 6874 `%25`), IPv4-mapped; ports; hosts.
        for (raw, host) in [
            ("https://[::1]:5000/x", "[::1]:5000"),
            ("https://[::1]/x", "[::1]"),
            ("https://[::1]:/x", "[::1]:"),
            ("https://[fe80::1%25eth0]:5000/", "[fe80::1%eth0]:5000"),
            ("https://[fe80::1%25en%300]/", "[fe80::1%en00]"),
            ("https://[::ffff:1.2.3.4]:80", "[::ffff:1.2.3.4]:80"),
            ("https://[2001:DB8::1]", "[2001:DB8::1]"),
            ("https://host:", "host:"),
            ("https://host:0443", "host:0443"),
            // The port is read after the last colon (urlstrictcolons=0, see the module notes).
            ("https://a:b:5000", "a:b:5000"),
            ("https://a]b:1", "a]b:1"),
            ("https://b%C3%BCcher.de", "b\u{fc}cher.de"),
            ("https://b\u{fc}cher.de", "b\u{fc}cher.de"),
            ("https://u:p@ss@host:1", "host:1"),
            ("https://u:p%40@host", "host"),
        ] {
            assert_eq!(
                parse_url(raw).map(|u| u.host),
                Ok(host.to_string()),
                "{raw:?}"
            );
        }
        for (raw, want) in [
            // Brackets that do not hold an IPv6 address (Go 1.24.8 / 1.25.2, CVE-2025-47912).
            (
                "https://[example.com]:5000",
                UrlError::InvalidHost("example.com".into()),
            ),
            ("https://[1.2.3.4]", UrlError::Ipv4Literal),
            ("https://[]", UrlError::InvalidHost(String::new())),
            // netip.ParseAddr: "zone must be a non-empty string".
            (
                "https://[fe80::1%25]",
                UrlError::InvalidHost("fe80::1%".into()),
            ),
            // A zone written with a bare '%' is an invalid escape in a host.
            (
                "https://[fe80::1%eth0]",
                UrlError::InvalidEscape("%et".into()),
            ),
            // A '[' after the start (CVE-2026-25679; refused since Go 1.24.8 with other texts),
            // a glob class included.
            ("https://reg[0-9].example.com", UrlError::BracketNotAtStart),
            ("https://garbage[::1]:80", UrlError::BracketNotAtStart),
            ("https://[::1][::2]", UrlError::BracketNotAtStart),
            ("https://[::1", UrlError::MissingBracket),
            ("https://[::1]x", UrlError::InvalidPort("x".into())),
            ("https://[::1]:80x", UrlError::InvalidPort(":80x".into())),
            (
                "https://[ab].example.com",
                UrlError::InvalidPort(".example.com".into()),
            ),
            // Ports: digits only, after the last colon; an empty port is valid.
            ("https://host:abc", UrlError::InvalidPort(":abc".into())),
            (
                "https://host:5000x/p",
                UrlError::InvalidPort(":5000x".into()),
            ),
            ("https://host:+80", UrlError::InvalidPort(":+80".into())),
            (
                "https://host:\u{0665}",
                UrlError::InvalidPort(":\u{0665}".into()),
            ),
            // Host characters and escapes (the `hosts` copy accepted these).
            (
                "https://ex%41mple.com",
                UrlError::InvalidEscape("%41".into()),
            ),
            ("https://a{b}", UrlError::InvalidHostCharacter("{".into())),
            ("https://a\\b", UrlError::InvalidHostCharacter("\\".into())),
            // User-info (the `hosts` copy did not check it).
            ("https://us er@host", UrlError::InvalidUserinfo),
            ("https://u:%zz@host", UrlError::InvalidEscape("%zz".into())),
            ("https://\u{fc}@host", UrlError::InvalidUserinfo),
            // Go accepts these bytes; regprobe cannot hold them (the `hosts` copy replaced them).
            ("https://host/%ff", UrlError::NotUtf8),
            ("https://h%ff", UrlError::NotUtf8),
        ] {
            assert_eq!(parse_url(raw), Err(want), "{raw:?}");
        }
        // Go's texts.
        assert_eq!(
            UrlError::InvalidPort(":abc".into()).to_string(),
            "invalid port \":abc\" after host"
        );
        assert_eq!(
            UrlError::BracketNotAtStart.to_string(),
            "invalid IP-literal"
        );
        assert_eq!(
            UrlError::InvalidHostCharacter(" ".into()).to_string(),
            "invalid character \" \" in host name"
        );
    }

    #[test]
    fn valid_optional_port_like_go() {
        for (port, want) in [
            ("", true),
            (":", true),
            (":80", true),
            (":080", true),
            ("80", false),
            (":8a", false),
            (": 80", false),
            (":-1", false),
            (":\u{ff11}", false),
        ] {
            assert_eq!(valid_optional_port(port), want, "{port:?}");
        }
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
