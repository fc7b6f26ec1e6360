//! The one redaction used wherever evidence is kept (exchanges, `detail`, and so `/status`,
//! logs and `check` output): every form in which a credential can come back from a peer that
//! echoes what it was sent (issue 13, "Redaction").
//!
//! Two passes:
//!
//! 1. **Known secrets**, in every derived form ([`credential_forms`], [`encodings`]): the
//!    password or token itself, `base64(user:password)` (standard and URL-safe alphabets, with and
//!    without padding: the `Authorization: Basic` value and the `auth` field of a
//!    dockerconfigjson), `base64(password)`, the password URL-encoded as in the token POST form
//!    (`+` or `%20` for a space, upper or lower hex), and JSON-escaped.
//! 2. **Any credential, whatever its source**: a `Basic …` or `Bearer …` followed by a token68
//!    value ([RFC 7235 §2.1]), and the value of a `password`, `refresh_token`, `access_token`,
//!    `token`, `identitytoken`, `registrytoken` or `auth` field written as JSON (`"name": "v"`) or
//!    as a form/query (`name=v`). Challenge parameters (`Bearer realm="…",service="…"`) are not
//!    token68 values and stay.
//!
//! Everything removed becomes [`REDACTED`]. Secrets shorter than [`MIN_SECRET_CHARS`] are not
//! searched in pass 1 (they would blank ordinary words).
//!
//! [RFC 7235 §2.1]: https://www.rfc-editor.org/rfc/rfc7235#section-2.1

use base64::Engine;
use std::borrow::Cow;
use std::fmt;

/// What a removed credential is replaced with.
pub const REDACTED: &str = "<redacted>";
/// Shortest secret searched for by value.
pub const MIN_SECRET_CHARS: usize = 4;
/// Shortest `Basic`/`Bearer` value removed by shape alone (shorter ones are words).
const MIN_TOKEN68_CHARS: usize = 8;
/// Field names whose values are credentials (compared case-insensitively).
const SECRET_FIELDS: [&str; 7] = [
    "password",
    "refresh_token",
    "access_token",
    "identitytoken",
    "registrytoken",
    "token",
    "auth",
];

/// The forms of a username/password pair that a request carries and an echoing peer may return:
/// the password and the four base64 spellings of `user:password` and of the password alone.
/// Pass the result (with any bearer token) as the `secrets` of [`redact`].
pub fn credential_forms(user: &str, password: &str) -> Vec<String> {
    if password.is_empty() {
        return Vec::new();
    }
    let mut out = vec![password.to_string()];
    for raw in [format!("{user}:{password}"), password.to_string()] {
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let b = engine.encode(raw.as_bytes());
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// `secret` and the spellings it takes inside URLs, forms and JSON strings (without the secret's
/// base64 forms: those need the username, see [`credential_forms`]).
pub fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let lower = lower_hex(&percent);
    let lower_form = lower_hex(&form);
    let json = serde_json::to_string(secret)
        .map(|s| s[1..s.len() - 1].to_string())
        .unwrap_or_default();
    for v in [form, percent, lower, lower_form, json] {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let n = tail.len().min(3);
        out.push_str(&tail[..n].to_ascii_lowercase());
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// `text` with every form of each of `secrets` (pass 1) and every credential-shaped value
/// (pass 2) replaced by [`REDACTED`] (module docs). For many texts with the same secrets, build
/// one [`Redactor`].
pub fn redact(text: &str, secrets: &[&str]) -> String {
    Redactor::new(secrets.iter().copied()).redact(text)
}

/// The forms of a set of secrets ([`encodings`]), derived once for every text of one probe: the
/// evidence of one token handshake is about twenty texts (headers, challenges, URLs), and
/// deriving the forms for each one was a tenth of the probe's CPU (issue 16). Its `Debug` shows
/// how many forms it holds, never one of them.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form at least [`MIN_SECRET_CHARS`] long, once, longest first: a form that contains
    /// another is removed whole.
    forms: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.forms.len())
    }
}

impl Redactor {
    /// A redactor for `secrets` (pass [`credential_forms`] for a username/password pair).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s.as_ref());
        }
        r
    }

    /// This redactor with one more secret (a bearer token the probe obtained).
    pub fn with(&self, secret: &str) -> Redactor {
        let mut r = self.clone();
        r.add(secret);
        r
    }

    /// This redactor, or a copy of it with `extra` added when there is one (the credential a
    /// request sends that the redactor does not know yet); borrowed, not copied, without it.
    pub fn with_opt(&self, extra: Option<&str>) -> Cow<'_, Redactor> {
        match extra {
            Some(secret) => Cow::Owned(self.with(secret)),
            None => Cow::Borrowed(self),
        }
    }

    fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        for f in encodings(secret) {
            if f.chars().count() >= MIN_SECRET_CHARS && !self.forms.contains(&f) {
                self.forms.push(f);
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// `text` with both passes applied (module docs).
    pub fn redact(&self, text: &str) -> String {
        let mut out = Cow::Borrowed(text);
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = Cow::Owned(out.replace(f.as_str(), REDACTED));
            }
        }
        scrub_fields(&scrub_auth_values(&out)).into_owned()
    }
}

/// Whether `bytes[i..]` starts with the lowercase ASCII `word`, in any case.
fn starts_with_ignore_case(bytes: &[u8], i: usize, word: &str) -> bool {
    bytes
        .get(i..i + word.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(word.as_bytes()))
}

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// Pass 2a: `Basic X`/`Bearer X` with a token68 `X` (module docs).
fn scrub_auth_values(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Both schemes start with a `b`: most bytes are passed over at this test.
        if !bytes[i].eq_ignore_ascii_case(&b'b') {
            i += 1;
            continue;
        }
        let scheme_len = ["basic", "bearer"]
            .iter()
            .find(|s| starts_with_ignore_case(bytes, i, s))
            .map(|s| s.len());
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let (Some(n), true) = (scheme_len, boundary) else {
            i += 1;
            continue;
        };
        let mut j = i + n;
        let spaces = j;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j == spaces {
            i += 1;
            continue;
        }
        let start = j;
        while j < bytes.len() && is_token68(bytes[j]) {
            j += 1;
        }
        let body_end = j;
        while j < bytes.len() && bytes[j] == b'=' {
            j += 1;
        }
        let value = &text[start..j];
        let body = &text[start..body_end];
        let param = j - body_end == 1
            && body
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
        let followed_by_token = j < bytes.len() && is_token68(bytes[j]);
        let word = body.bytes().all(|b| b.is_ascii_lowercase());
        if value.len() >= MIN_TOKEN68_CHARS && !param && !followed_by_token && !word {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = j;
        }
        i = j.max(i + 1);
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Pass 2b: values of [`SECRET_FIELDS`] as JSON members or form/query pairs.
fn scrub_fields(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let name = SECRET_FIELDS
            .iter()
            .find(|f| boundary && starts_with_ignore_case(bytes, i, f));
        let Some(name) = name else {
            i += 1;
            continue;
        };
        let after = i + name.len();
        if let Some((start, end)) = field_value(bytes, after) {
            if end > start && &text[start..end] != REDACTED {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
            }
            i = end.max(after);
        } else {
            i = after;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The byte range of the value after a field name ending at `at`: `": "v"` (JSON, `\"`
/// escapes skipped) or `=v` (up to `&`, whitespace, `"`, `,` or `;`).
fn field_value(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut j = at;
    if bytes.get(j) == Some(&b'"') {
        j += 1;
        while bytes.get(j).is_some_and(|b| *b == b' ') {
            j += 1;
        }
        if bytes.get(j) != Some(&b':') {
            return None;
        }
        j += 1;
        while bytes.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
            j += 1;
        }
        if bytes.get(j) != Some(&b'"') {
            return None;
        }
        let start = j + 1;
        let mut k = start;
        while k < bytes.len() && bytes[k] != b'"' {
            k += if bytes[k] == b'\\' { 2 } else { 1 };
        }
        return Some((start, k.min(bytes.len())));
    }
    if bytes.get(j) == Some(&b'=') {
        let start = j + 1;
        let mut k = start;
        while k < bytes.len()
            && !matches!(
                bytes[k],
                b'&' | b'"' | b',' | b';' | b' ' | b'\t' | b'\r' | b'\n'
            )
        {
            k += 1;
        }
        return Some((start, k));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secret_in_every_form() {
        let (user, pw) = ("alice", "p@ss word+/é\"x");
        let forms = credential_forms(user, pw);
        let refs: Vec<&str> = forms.iter().map(String::as_str).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        let form: String = url::form_urlencoded::byte_serialize(pw.as_bytes()).collect();
        for text in [
            pw.to_string(),
            b64.clone(),
            format!("Authorization: Basic {b64}"),
            format!("password={form}&x=1"),
            form.replace('+', "%20").to_lowercase(),
            serde_json::to_string(pw).unwrap(),
        ] {
            let got = redact(&format!("echo [{text}] end"), &refs);
            assert!(got.contains(REDACTED), "{text} -> {got}");
            assert!(
                !got.contains("p@ss") && !got.contains("%40ss"),
                "{text} -> {got}"
            );
        }
    }

    /// A redactor built once and extended with a token redacts what the one-shot [`redact`]
    /// does with all the secrets at once, and its `Debug` shows none of them.
    #[test]
    fn redactor_matches_one_shot_redaction() {
        let forms = credential_forms("alice", "S3cr3t-Pa55");
        let refs: Vec<&str> = forms.iter().map(String::as_str).collect();
        let token = "tok.en-Value_42";
        let r = Redactor::new(&forms).with(token);
        let mut all = refs.clone();
        all.push(token);
        for text in [
            "echo S3cr3t-Pa55 and tok.en-Value_42",
            "Authorization: Basic YWxpY2U6UzNjcjN0LVBhNTU=",
            r#"{"message":"tok.en-Value_42","token":"zzz"}"#,
            "nothing secret here",
        ] {
            assert_eq!(r.redact(text), redact(text, &all), "{text}");
            assert!(!r.redact(text).contains("S3cr3t"), "{text}");
            assert!(!r.redact(text).contains("tok.en"), "{text}");
        }
        assert_eq!(r.redact("nothing secret here"), "nothing secret here");
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("S3cr3t") && !shown.contains("tok.en"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_of_any_source_by_shape() {
        assert_eq!(
            redact("Authorization: Basic dXNlcjpwYXNzd29yZA==", &[]),
            "Authorization: Basic <redacted>"
        );
        assert_eq!(
            redact(r#"{"h":"Bearer eyJhbGciOi.eyJzdWIi.sig_-x"}"#, &[]),
            r#"{"h":"Bearer <redacted>"}"#
        );
        assert_eq!(
            redact(r#"{"token":"abc","refresh_token" : "def\"g"}"#, &[]),
            r#"{"token":"<redacted>","refresh_token" : "<redacted>"}"#
        );
        assert_eq!(
            redact("grant_type=password&password=hunter2&username=u", &[]),
            "grant_type=password&password=<redacted>&username=u"
        );
    }

    #[test]
    fn challenges_and_prose_stay() {
        for keep in [
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:x:pull""#,
            r#"Basic realm="Registry Realm""#,
            "Bearer realm=https://auth.example/token",
            "basic authentication failed for this repository",
            "bad password for user alice",
            r#"Bearer error="invalid_token""#,
        ] {
            assert_eq!(redact(keep, &[]), keep);
        }
    }

    /// Oracle over many generated credentials: each derived form, echoed in the contexts a
    /// reflecting peer uses (a JSON string, a header value, a form body, a quoted challenge
    /// parameter, a `Basic`/`Bearer` value), is gone after [`redact`].
    #[test]
    fn oracle_over_generated_credentials() {
        const POOL: &[char] = &[
            'a',
            'Z',
            '0',
            '9',
            ' ',
            '+',
            '/',
            '=',
            '&',
            '%',
            '@',
            ':',
            '"',
            '\\',
            '\'',
            '<',
            '>',
            '-',
            '_',
            '.',
            '~',
            '?',
            '#',
            'é',
            'ß',
            '€',
            '\u{1F600}',
            '\t',
        ];
        let mut rng = fastrand::Rng::with_seed(13);
        let word = |rng: &mut fastrand::Rng, min: usize| -> String {
            let n = rng.usize(min..min + 24);
            (0..n).map(|_| POOL[rng.usize(..POOL.len())]).collect()
        };
        for _ in 0..250 {
            let user = word(&mut rng, 0);
            let pw = word(&mut rng, MIN_SECRET_CHARS);
            let token = word(&mut rng, MIN_SECRET_CHARS);
            let mut all = credential_forms(&user, &pw);
            all.extend(encodings(&pw));
            all.extend(encodings(&token));
            let mut secrets = credential_forms(&user, &pw);
            secrets.push(token.clone());
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            for form in &all {
                for text in [
                    format!("{{\"message\":\"echo {form} end\"}}"),
                    format!("X-Echo: {form}"),
                    format!("grant_type=password&password={form}&username=x"),
                    format!("Bearer realm=\"r\",error_description=\"{form}\""),
                    format!("Basic {form}"),
                    format!("Bearer {form}"),
                ] {
                    let got = redact(&text, &refs).replace(REDACTED, "\u{0}");
                    for f in &all {
                        assert!(
                            f.chars().count() < MIN_SECRET_CHARS || !got.contains(f.as_str()),
                            "user {user:?} pw {pw:?} token {token:?}: {f:?} survives in {got:?} (from {text:?})"
                        );
                    }
                }
            }
        }
    }
}
