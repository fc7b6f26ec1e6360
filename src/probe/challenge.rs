//! `WWW-Authenticate` challenge parsing, with containerd's exact rules.
//!
//! Source of the behaviour: containerd `core/remotes/docker/auth/parse.go` (`ParseAuthHeader`,
//! `parseValueAndParams`), described in `docs/containerd-kubelet.md` §7.1 and checked against the vectors of
//! §14 (the tests below). The quirks are deliberate, because regprobe's verdict must match what
//! containerd sees:
//!
//! * each header line yields at most one challenge; parsing of a line stops at the first thing
//!   that is not `token "=" (token | quoted-string)` followed by an optional `,`
//!   (so `Bearer realm="a", Basic realm="c"` on one line is only the Bearer challenge);
//! * scheme and parameter names are lower-cased, values kept; a repeated name: last wins;
//! * an unterminated quoted string gives `""` and ends the line;
//! * only `basic`, `digest` and `bearer` are kept, stably sorted Bearer, Digest, Basic.
//!
//! A general RFC 7235 parser (such as the `http-auth` crate) disagrees with containerd on
//! several of these vectors, which is why this small parser is ours.

use std::collections::BTreeMap;

/// Upper bound on the bytes of `WWW-Authenticate` parsed per response. A hostile server may send
/// a header of megabytes; containerd's Go server limit (1 MiB of headers) bounds it there, ours
/// is lower because no real challenge comes near it.
pub const MAX_CHALLENGE_BYTES: usize = 16 * 1024;

/// An authentication scheme containerd understands, in containerd's priority order
/// (`byScheme.Less`: Bearer > Digest > Basic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scheme {
    /// OAuth 2.0 bearer token (RFC 6750), the distribution token protocol.
    Bearer,
    /// HTTP Digest (RFC 7616). containerd parses it but has no handler.
    Digest,
    /// HTTP Basic (RFC 7617).
    Basic,
}

/// One parsed challenge: the scheme and its parameters (`realm`, `service`, `scope`, `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// Parameters with lower-cased names and values as sent.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter's value, if present (`realm`, `service`, `scope`, `error`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every `WWW-Authenticate` line of a response (one element per header line, in the
/// order received) into challenges, stably sorted Bearer, Digest, Basic. Unknown schemes
/// (`Negotiate`, `NTLM`) are dropped, so an empty result means "no supported challenge".
/// Lines longer than [`MAX_CHALLENGE_BYTES`] are parsed only up to that bound.
pub fn parse_challenges<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for line in lines {
        let line = &line[..line.len().min(MAX_CHALLENGE_BYTES)];
        let (scheme, params) = parse_value_and_params(line);
        let scheme = match scheme.as_str() {
            "basic" => Scheme::Basic,
            "digest" => Scheme::Digest,
            "bearer" => Scheme::Bearer,
            _ => continue,
        };
        out.push(Challenge { scheme, params });
    }
    // Vec::sort_by_key is stable, as Go's sort.Stable.
    out.sort_by_key(|c| c.scheme);
    out
}

fn is_token_char(b: u8) -> bool {
    // RFC 2616 token: CHAR except CTLs and separators.
    b > 31 && b < 127 && !b" \t\"(),/:;<=>?@[]\\{}".contains(&b)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| is_space(**b)).count();
    &s[n..]
}

fn expect_token(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|b| is_token_char(**b)).count();
    (&s[..n], &s[n..])
}

/// A token or a quoted string with `\x` unescaping. An unterminated quote yields an empty value
/// and no rest, ending the line, as containerd's `expectTokenOrQuoted`.
fn expect_token_or_quoted(s: &[u8]) -> (Vec<u8>, &[u8]) {
    let Some(body) = s.strip_prefix(b"\"") else {
        let (t, rest) = expect_token(s);
        return (t.to_vec(), rest);
    };
    let mut value = Vec::new();
    let mut escape = false;
    for (i, &b) in body.iter().enumerate() {
        if escape {
            escape = false;
            value.push(b);
        } else if b == b'\\' {
            escape = true;
        } else if b == b'"' {
            return (value, &body[i + 1..]);
        } else {
            value.push(b);
        }
    }
    (Vec::new(), &[])
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

fn parse_value_and_params(header: &[u8]) -> (String, BTreeMap<String, String>) {
    let mut params = BTreeMap::new();
    let (value, mut s) = expect_token(header);
    if value.is_empty() {
        return (String::new(), params);
    }
    let scheme = lower(value);
    loop {
        let (key, rest) = expect_token(skip_space(s));
        if key.is_empty() {
            break;
        }
        let Some(rest) = rest.strip_prefix(b"=") else {
            break;
        };
        let (pvalue, rest) = expect_token_or_quoted(rest);
        params.insert(lower(key), String::from_utf8_lossy(&pvalue).into_owned());
        let rest = skip_space(rest);
        let Some(rest) = rest.strip_prefix(b",") else {
            break;
        };
        s = rest;
    }
    (scheme, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<Challenge> {
        parse_challenges(lines.iter().map(|l| l.as_bytes()))
    }

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    // docs/containerd-kubelet.md §14, challenge-parsing vectors (checked against containerd's parse.go).
    #[test]
    fn docker_hub_bearer() {
        let c = parse(&[
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:foo/bar:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(
            params(&c[0]),
            vec![
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:foo/bar:pull,push"),
                ("service", "registry.docker.io")
            ]
        );
    }

    #[test]
    fn empty_quoted_value_is_kept() {
        let c = parse(&[r#"Bearer realm="https://r/token",empty="",service="s""#]);
        assert_eq!(
            params(&c[0]),
            vec![
                ("empty", ""),
                ("realm", "https://r/token"),
                ("service", "s")
            ]
        );
    }

    #[test]
    fn second_scheme_on_one_line_is_ignored() {
        let c = parse(&[r#"Bearer realm="a",service="b", Basic realm="c""#]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(params(&c[0]), vec![("realm", "a"), ("service", "b")]);
    }

    #[test]
    fn two_lines_are_sorted_bearer_first() {
        let c = parse(&[r#"Basic realm="x""#, r#"Bearer realm="y""#]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(c[0].param("realm"), Some("y"));
        assert_eq!(c[1].scheme, Scheme::Basic);
        assert_eq!(c[1].param("realm"), Some("x"));
    }

    #[test]
    fn unknown_scheme_is_dropped() {
        assert!(parse(&["Negotiate"]).is_empty());
        assert!(parse(&["NTLM abc"]).is_empty());
        assert!(parse(&[""]).is_empty());
    }

    #[test]
    fn names_are_lower_cased_values_kept() {
        let c = parse(&[r#"BEARER REALM="x""#]);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(params(&c[0]), vec![("realm", "x")]);
        let c = parse(&[r#"Bearer realm="MiXeD""#]);
        assert_eq!(c[0].param("realm"), Some("MiXeD"));
    }

    #[test]
    fn unterminated_quote_gives_empty_realm() {
        let c = parse(&[r#"Bearer realm="unterminated"#]);
        assert_eq!(params(&c[0]), vec![("realm", "")]);
    }

    #[test]
    fn unquoted_realm_stops_at_colon() {
        let c = parse(&["Bearer realm=https://x/token,service=s"]);
        assert_eq!(params(&c[0]), vec![("realm", "https")]);
    }

    #[test]
    fn escaped_quote_is_unescaped() {
        let c = parse(&[r#"Bearer realm="a\"b",service="s""#]);
        assert_eq!(params(&c[0]), vec![("realm", "a\"b"), ("service", "s")]);
    }

    #[test]
    fn space_before_equals_ends_parsing() {
        let c = parse(&[r#"Bearer realm="a" , service = "s""#]);
        assert_eq!(params(&c[0]), vec![("realm", "a")]);
    }

    #[test]
    fn ecr_basic_challenge() {
        let c = parse(&[
            r#"Basic realm="https://1234.dkr.ecr.eu-west-2.amazonaws.com/",service="ecr.amazonaws.com""#,
        ]);
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert_eq!(
            params(&c[0]),
            vec![
                ("realm", "https://1234.dkr.ecr.eu-west-2.amazonaws.com/"),
                ("service", "ecr.amazonaws.com")
            ]
        );
    }

    #[test]
    fn repeated_parameter_last_wins() {
        let c = parse(&[r#"Bearer realm="a",realm="b""#]);
        assert_eq!(c[0].param("realm"), Some("b"));
    }

    #[test]
    fn error_parameter_is_kept() {
        let c = parse(&[
            r#"Bearer realm="https://r/t",service="s",scope="repository:a:pull",error="insufficient_scope""#,
        ]);
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let nasty: Vec<Vec<u8>> = vec![
            vec![0xff, 0xfe, b'=', b'"'],
            b"Bearer realm=\"\\".to_vec(),
            b"Bearer \0realm=\"x\"".to_vec(),
            b"Bearer realm=\"\xc3\x28\"".to_vec(),
            vec![b'a'; MAX_CHALLENGE_BYTES * 4],
            b"Basic ,,,,===".to_vec(),
        ];
        for n in &nasty {
            let _ = parse_challenges([n.as_slice()]);
        }
        let c = parse_challenges([b"Bearer realm=\"\xc3\x28\"".as_slice()]);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert!(c[0].param("realm").unwrap().contains('\u{fffd}'));
    }
}
