//! Image reference normalisation, exactly as kubelet and containerd see an image name
//! (`docs/containerd-kubelet.md` §2).
//!
//! [`parse`] is distribution's `ParseNormalizedNamed` (`github.com/distribution/reference`,
//! `normalize.go`) followed by `ParseDockerRef` (same file, used by containerd's CRI plugin): the
//! familiar name `nginx` becomes `docker.io/library/nginx:latest`, `index.docker.io` becomes
//! `docker.io`, a reference with both a tag and a digest keeps the digest only.
//!
//! The grammar (`regexp.go`, `reference.go`) is checked by a small hand-written validator that
//! accepts exactly what distribution's regular expressions accept, and says where and why an input
//! is refused (the `regex` crate is not a dependency, and distribution itself only says "invalid
//! reference format").
//!
//! What this module does not do: resolve hosts (containerd's `hosts.toml` maps the [`namespace`]
//! `docker.io` to `registry-1.docker.io`; that is the `hosts` module's job) or pick credentials
//! (`secrets::keyring` does, with [`ImageRef::repo_to_pull`]).
//!
//! [`namespace`]: ImageRef::namespace

use std::fmt;

/// The longest repository path distribution accepts (`RepositoryNameTotalLengthMax`,
/// `reference.go`): 255 characters, domain not counted.
pub const REPOSITORY_NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The longest tag distribution accepts (`tag` in `regexp.go`: one word character, then up to 127).
pub const TAG_LENGTH_MAX: usize = 128;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// Strings quoted in errors are cut to this many characters (hostile input can be megabytes).
const QUOTE_MAX: usize = 64;

/// A normalised image reference: containerd's `ParseDockerRef` result, which also gives kubelet's
/// keyring lookup key.
///
/// Exactly one of [`tag`](ImageRef::tag) and [`digest`](ImageRef::digest) is set.
/// Source: distribution/reference `normalize.go` (`ParseNormalizedNamed`, `ParseDockerRef`,
/// `splitDockerDomain`), `reference.go` (`Parse`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why an image reference is refused. Positions are 0-based byte offsets into the input.
///
/// distribution reports most of these as `invalid reference format`; the variants say which part
/// broke. Source: distribution/reference `reference.go` (`ErrReferenceInvalidFormat`,
/// `ErrNameContainsUppercase`, `ErrNameTooLong`), `normalize.go`, go-digest `digest.go`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference format: the image reference is empty")]
    Empty,
    /// A character the grammar does not allow where it stands.
    #[error(
        "invalid reference format: unexpected {found:?} at byte {position}, expected {expected}"
    )]
    InvalidCharacter {
        /// Byte offset of `found` in the input.
        position: usize,
        /// The offending character.
        found: char,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// The input ends where the grammar wants more.
    #[error(
        "invalid reference format: the reference ends at byte {position}, expected {expected}"
    )]
    UnexpectedEnd {
        /// The input's length.
        position: usize,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// The repository path has an upper-case letter (only the domain may).
    #[error(
        "invalid reference format: repository name must be lowercase (upper-case {found:?} at byte {position})"
    )]
    UppercaseRepository {
        /// Byte offset of `found` in the input.
        position: usize,
        /// The first upper-case character.
        found: char,
    },
    /// The whole input is 64 hex digits: an image ID, which is not a name.
    #[error("invalid repository name: 64 hexadecimal characters are an image ID, not a name")]
    HexIdentifier,
    /// The tag is longer than [`TAG_LENGTH_MAX`].
    #[error("invalid reference format: the tag has {length} characters, at most 128 are allowed")]
    TagTooLong {
        /// The tag's length.
        length: usize,
    },
    /// The repository path is longer than [`REPOSITORY_NAME_TOTAL_LENGTH_MAX`].
    #[error("repository name must not be more than 255 characters (this one has {length})")]
    NameTooLong {
        /// The path's length (domain not counted).
        length: usize,
    },
    /// The part after `@` is not a digest containerd accepts.
    #[error("invalid digest: {0}")]
    InvalidDigest(DigestError),
}

/// What is wrong with the digest after `@` (distribution `digestPat`, go-digest `Digest.Validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// Not `algorithm:hex` (`[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`).
    #[error("not `algorithm:hex`: unexpected {found} at byte {position}, expected {expected}")]
    Malformed {
        /// Byte offset in the input.
        position: usize,
        /// The offending character, quoted, or `end of input`.
        found: String,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// Fewer than 32 hex digits.
    #[error("the hex part has {found} digits, at least 32 are required")]
    TooShort {
        /// Number of hex digits.
        found: usize,
    },
    /// An algorithm other than `sha256`, `sha384`, `sha512`.
    #[error(
        "unsupported digest algorithm {algorithm:?} (containerd knows sha256, sha384, sha512)"
    )]
    Unsupported {
        /// The algorithm as written (cut to 64 characters).
        algorithm: String,
    },
    /// The hex part's length does not fit the algorithm.
    #[error("a {algorithm} digest has {expected} hex digits, this one has {found}")]
    Length {
        /// `sha256`, `sha384` or `sha512`.
        algorithm: &'static str,
        /// Hex digits the algorithm produces.
        expected: usize,
        /// Hex digits present.
        found: usize,
    },
    /// Upper-case hex digits (go-digest wants `[a-f0-9]`).
    #[error("a {algorithm} digest must be lower-case hex")]
    UppercaseHex {
        /// `sha256`, `sha384` or `sha512`.
        algorithm: &'static str,
    },
}

/// Parses an image name as it appears in a pod spec.
///
/// This is distribution's `ParseNormalizedNamed` + `ParseDockerRef` (`normalize.go`), i.e. what
/// kubelet (`parsers.ParseImageName`) and containerd's CRI plugin (`image_pull.go`) do:
///
/// * no `/`, or a first component without `.` or `:` that is not `localhost` and has no
///   upper-case letter → the domain is `docker.io` and the whole input is the path;
/// * domain `index.docker.io` → `docker.io`; on `docker.io` a one-component path gets `library/`;
/// * the repository path must be lower case and match distribution's grammar, at most 255
///   characters; the tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
/// * no tag and no digest → tag `latest`; both → the digest only;
/// * a digest is `sha256:` + 64, `sha384:` + 96 or `sha512:` + 128 lower-case hex digits.
///
/// ```
/// let r = regprobe::reference::parse("nginx").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// assert_eq!(r.repo_to_pull(), "docker.io/library/nginx");
/// assert_eq!(r.scope(), "repository:library/nginx:pull");
/// ```
pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::HexIdentifier);
    }
    let built = Normalized::new(s);
    let c = built.text.as_str();

    // ParseNormalizedNamed: the remote name up to the first ':' must be lower case.
    let remainder_start = built.domain_len + 1;
    let remote_end = c[remainder_start..]
        .find(':')
        .map_or(c.len(), |i| remainder_start + i);
    if let Some((i, found)) = first_uppercase(&c[remainder_start..remote_end]) {
        return Err(ReferenceError::UppercaseRepository {
            position: built.input_position(remainder_start + i),
            found,
        });
    }

    // Parse(domain + "/" + remainder) with distribution's grammar.
    let parts = match grammar(c) {
        Ok(parts) => parts,
        Err(err) => {
            let lower = c.to_lowercase();
            if lower != c && grammar(&lower).is_ok() {
                let (i, found) = first_uppercase(c).unwrap_or((0, '?'));
                return Err(ReferenceError::UppercaseRepository {
                    position: built.input_position(i),
                    found,
                });
            }
            return Err(built.error(err));
        }
    };
    // distribution's path: after the domain, or the whole name when the first component is not a
    // valid domain (e.g. `ex_ample.com/app`).
    let dist_path_start = parts.domain_end.map_or(0, |d| d + 1);
    let dist_path_len = parts.name_end - dist_path_start;
    if dist_path_len > REPOSITORY_NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            length: dist_path_len,
        });
    }
    let digest = match parts.digest_start {
        Some(start) => Some(validate_digest(&c[start..])?),
        None => None,
    };
    // ParseDockerRef: digest wins over tag; neither → `latest`.
    let tag = match (&digest, parts.tag) {
        (Some(_), _) => None,
        (None, Some((start, end))) => Some(c[start..end].to_string()),
        (None, None) => Some(DEFAULT_TAG.to_string()),
    };
    // containerd contacts the host before the first '/' (`reference.Spec.Hostname`), which is
    // distribution's domain whenever distribution finds one.
    let name = &c[..parts.name_end];
    let (domain, path) = name.split_once('/').unwrap_or(("", name));
    Ok(ImageRef {
        domain: domain.to_string(),
        path: path.to_string(),
        tag,
        digest,
    })
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;

    /// Same as [`parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl ImageRef {
    /// The registry domain: `docker.io`, `quay.io`, `myreg:5000`, `[::1]:5000`, `localhost`.
    /// Case is kept as written (`Registry.Example.com` stays so). distribution `Domain()`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path without domain, tag or digest: `library/nginx`. distribution `Path()`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, when the reference has no digest (`latest` if none was written).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if one was written (a tag written next to it is dropped).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// kubelet's keyring lookup key: `domain/path`, no tag or digest (`named.Name()` in kubelet's
    /// `pkg/util/parsers/parsers.go` `ParseImageName`).
    pub fn repo_to_pull(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What goes in `/v2/<path>/manifests/<reference>`: the digest if there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The token scope containerd asks for: `repository:<path>:pull`
    /// (containerd `core/remotes/docker/scope.go` `RepositoryScope`).
    pub fn scope(&self) -> String {
        format!("repository:{}:pull", self.path)
    }

    /// containerd's hosts namespace: the domain. `docker.io` stays `docker.io`; the hosts
    /// module maps it to `registry-1.docker.io` (containerd `config/hosts.go`).
    pub fn namespace(&self) -> &str {
        &self.domain
    }

    /// Whether the image lives on Docker Hub (domain `docker.io`).
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DEFAULT_DOMAIN
    }
}

impl fmt::Display for ImageRef {
    /// containerd's normalised reference: `docker.io/library/nginx:latest`,
    /// `myreg:5000/a/b@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "@{d}"),
            (None, Some(t)) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

/// `domain + "/" + remainder` as `ParseNormalizedNamed` builds it, with the way back to input
/// positions: the text is `synthetic prefix (prefix_len bytes) + input[input_skip..]`.
struct Normalized {
    text: String,
    domain_len: usize,
    prefix_len: usize,
    input_skip: usize,
    input_len: usize,
}

impl Normalized {
    /// distribution `splitDockerDomain`.
    fn new(s: &str) -> Normalized {
        let (domain, remainder, prefix_len, input_skip): (&str, &str, usize, usize) =
            match s.split_once('/') {
                // "ubuntu", "ubuntu:22.04": always a Docker Hub official image.
                None => (DEFAULT_DOMAIN, s, DEFAULT_DOMAIN.len() + 1, 0),
                Some((first, rest)) => {
                    let is_domain = first == "localhost"
                        || first.contains(['.', ':'])
                        || first.to_lowercase() != first;
                    if first == LEGACY_DEFAULT_DOMAIN {
                        (
                            DEFAULT_DOMAIN,
                            rest,
                            DEFAULT_DOMAIN.len() + 1,
                            first.len() + 1,
                        )
                    } else if is_domain {
                        (first, rest, 0, 0)
                    } else {
                        (DEFAULT_DOMAIN, s, DEFAULT_DOMAIN.len() + 1, 0)
                    }
                }
            };
        let library = domain == DEFAULT_DOMAIN && !remainder.contains('/');
        let mut text = String::with_capacity(s.len() + 32);
        text.push_str(domain);
        text.push('/');
        let (prefix_len, input_skip) = if library {
            text.push_str(OFFICIAL_REPO_PREFIX);
            (
                DEFAULT_DOMAIN.len() + 1 + OFFICIAL_REPO_PREFIX.len(),
                s.len() - remainder.len(),
            )
        } else {
            (prefix_len, input_skip)
        };
        text.push_str(remainder);
        Normalized {
            text,
            domain_len: domain.len(),
            prefix_len,
            input_skip,
            input_len: s.len(),
        }
    }

    fn input_position(&self, pos: usize) -> usize {
        if pos >= self.prefix_len {
            (pos - self.prefix_len + self.input_skip).min(self.input_len)
        } else {
            self.input_skip.min(self.input_len)
        }
    }

    fn error(&self, err: GrammarError) -> ReferenceError {
        let position = self.input_position(err.pos);
        let found = self.text.get(err.pos..).and_then(|t| t.chars().next());
        match (err.kind, found) {
            (GrammarErrorKind::TagTooLong(length), _) => ReferenceError::TagTooLong { length },
            (GrammarErrorKind::DigestTooShort(found), _) => {
                ReferenceError::InvalidDigest(DigestError::TooShort { found })
            }
            (GrammarErrorKind::Digest(expected), found) => {
                ReferenceError::InvalidDigest(DigestError::Malformed {
                    position,
                    found: found.map_or("end of input".to_string(), |c| format!("{c:?}")),
                    expected,
                })
            }
            (GrammarErrorKind::Expected(expected), Some(found)) => {
                ReferenceError::InvalidCharacter {
                    position,
                    found,
                    expected,
                }
            }
            (GrammarErrorKind::Expected(expected), None) => ReferenceError::UnexpectedEnd {
                position: self.input_len,
                expected,
            },
        }
    }
}

/// The first character that `to_lowercase` changes, with its byte offset.
fn first_uppercase(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| c.to_lowercase().ne(std::iter::once(c)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrammarErrorKind {
    Expected(&'static str),
    TagTooLong(usize),
    Digest(&'static str),
    DigestTooShort(usize),
}

/// Where distribution's grammar fails: a byte offset into the checked text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GrammarError {
    pos: usize,
    kind: GrammarErrorKind,
}

fn expected(pos: usize, what: &'static str) -> GrammarError {
    GrammarError {
        pos,
        kind: GrammarErrorKind::Expected(what),
    }
}

/// The pieces of a reference that matched `referencePat` (`regexp.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    /// Index of the `/` after the domain, when the first component is a valid domain.
    domain_end: Option<usize>,
    name_end: usize,
    tag: Option<(usize, usize)>,
    digest_start: Option<usize>,
}

/// `^name(:tag)?(@digest)?$` with distribution's sub-patterns.
fn grammar(c: &str) -> Result<Parts, GrammarError> {
    let b = c.as_bytes();
    // Neither name nor tag may contain '@', and neither a digest.
    let (name_tag_end, digest_start) = match b.iter().position(|&x| x == b'@') {
        Some(at) => (at, Some(at + 1)),
        None => (b.len(), None),
    };
    // A ':' after the last '/' starts the tag (a name's ':' is a port, before a '/').
    let head = &b[..name_tag_end];
    let last_slash = head.iter().rposition(|&x| x == b'/');
    let last_colon = head.iter().rposition(|&x| x == b':');
    let (name_end, tag) = match last_colon {
        Some(col) if last_slash.is_none_or(|sl| col > sl) => (col, Some((col + 1, name_tag_end))),
        _ => (name_tag_end, None),
    };
    let domain_end = name(b, name_end)?;
    if let Some((start, end)) = tag {
        check_tag(b, start, end)?;
    }
    if let Some(start) = digest_start {
        check_digest_pattern(b, start)?;
    }
    Ok(Parts {
        domain_end,
        name_end,
        tag,
        digest_start,
    })
}

/// `(domainAndPort '/')? remoteName` over `b[..end]`, preferring the domain as Go's
/// leftmost-first regexp does. Returns the index of the `/` after the domain.
fn name(b: &[u8], end: usize) -> Result<Option<usize>, GrammarError> {
    let slash = b[..end].iter().position(|&x| x == b'/');
    let mut domain_err = None;
    if let Some(slash) = slash {
        match domain_and_port(b, 0, slash).and_then(|()| remote_name(b, slash + 1, end)) {
            Ok(()) => return Ok(Some(slash)),
            Err(e) => domain_err = Some(e),
        }
    }
    match remote_name(b, 0, end) {
        Ok(()) => Ok(None),
        // Both readings fail: report the domain reading's error, unless the path reading got
        // past the first component and further than it (`ex_ample.com/a..b`).
        Err(e) => Err(match (domain_err, slash) {
            (Some(d), Some(sl)) if e.pos <= sl || d.pos >= e.pos => d,
            _ => e,
        }),
    }
}

fn is_lower_alnum(x: u8) -> bool {
    x.is_ascii_lowercase() || x.is_ascii_digit()
}

/// `remoteName`: `pathComponent ('/' pathComponent)*`, `pathComponent` =
/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`.
fn remote_name(b: &[u8], start: usize, end: usize) -> Result<(), GrammarError> {
    let mut i = start;
    loop {
        if i >= end || !is_lower_alnum(b[i]) {
            return Err(expected(
                i,
                "a lowercase letter or digit to start a path component",
            ));
        }
        while i < end && is_lower_alnum(b[i]) {
            i += 1;
        }
        loop {
            if i >= end {
                return Ok(());
            }
            match b[i] {
                b'/' => {
                    i += 1;
                    break;
                }
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if i < end && b[i] == b'_' {
                        i += 1;
                    }
                }
                b'-' => {
                    while i < end && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => {
                    return Err(expected(
                        i,
                        "a lowercase letter, digit, '.', '_', '-' or '/' in the repository path",
                    ))
                }
            }
            if i >= end || !is_lower_alnum(b[i]) {
                return Err(expected(
                    i,
                    "a lowercase letter or digit after a separator ('.', '_', '__' or '-')",
                ));
            }
            while i < end && is_lower_alnum(b[i]) {
                i += 1;
            }
        }
    }
}

/// `domainAndPort`: a DNS-like name (`[a-zA-Z0-9]` labels with inner `-`) or `[IPv6]`, then an
/// optional `:port`.
fn domain_and_port(b: &[u8], start: usize, end: usize) -> Result<(), GrammarError> {
    let mut i = start;
    if i < end && b[i] == b'[' {
        i += 1;
        let hex_start = i;
        while i < end && (b[i].is_ascii_hexdigit() || b[i] == b':') {
            i += 1;
        }
        if i == hex_start {
            return Err(expected(
                i,
                "an IPv6 address (hex digits and ':') after '['",
            ));
        }
        if i >= end || b[i] != b']' {
            return Err(expected(
                i,
                "']' to close the IPv6 address (zones and dotted IPv4 are not allowed)",
            ));
        }
        i += 1;
    } else {
        loop {
            if i >= end || !b[i].is_ascii_alphanumeric() {
                return Err(expected(i, "a letter or digit to start a domain label"));
            }
            i += 1;
            while i < end && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
                i += 1;
            }
            if b[i - 1] == b'-' {
                let first_hyphen = (start..i)
                    .rev()
                    .take_while(|&j| b[j] == b'-')
                    .last()
                    .unwrap_or(i - 1);
                return Err(expected(
                    first_hyphen,
                    "a letter or digit (a domain label cannot end with '-')",
                ));
            }
            if i < end && b[i] == b'.' {
                i += 1;
                continue;
            }
            break;
        }
    }
    if i < end && b[i] == b':' {
        i += 1;
        let port_start = i;
        while i < end && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == port_start {
            return Err(expected(i, "a port number after ':'"));
        }
    }
    if i != end {
        return Err(expected(
            i,
            "a letter, digit, '-', '.', ':port' or '/' in the domain",
        ));
    }
    Ok(())
}

/// `tag`: `[\w][\w.-]{0,127}`.
fn check_tag(b: &[u8], start: usize, end: usize) -> Result<(), GrammarError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if start >= end || !word(b[start]) {
        return Err(expected(
            start,
            "a tag starting with a letter, digit or '_' after ':'",
        ));
    }
    if let Some(i) = (start + 1..end).find(|&i| !(word(b[i]) || b[i] == b'.' || b[i] == b'-')) {
        return Err(expected(i, "a letter, digit, '_', '.' or '-' in the tag"));
    }
    if end - start > TAG_LENGTH_MAX {
        return Err(GrammarError {
            pos: start,
            kind: GrammarErrorKind::TagTooLong(end - start),
        });
    }
    Ok(())
}

/// `digestPat`: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}` to the end.
fn check_digest_pattern(b: &[u8], start: usize) -> Result<(), GrammarError> {
    let err = |pos, what| GrammarError {
        pos,
        kind: GrammarErrorKind::Digest(what),
    };
    let mut i = start;
    loop {
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            return Err(err(i, "a letter to start the digest algorithm"));
        }
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        match b.get(i) {
            Some(b'-' | b'_' | b'+' | b'.') => i += 1,
            Some(b':') => break,
            _ => return Err(err(i, "':' between the algorithm and the hex value")),
        }
    }
    i += 1;
    let hex_start = i;
    while i < b.len() && b[i].is_ascii_hexdigit() {
        i += 1;
    }
    if i < b.len() {
        return Err(err(i, "only hex digits after the algorithm"));
    }
    if i - hex_start < 32 {
        return Err(GrammarError {
            pos: hex_start,
            kind: GrammarErrorKind::DigestTooShort(i - hex_start),
        });
    }
    Ok(())
}

/// go-digest `Digest.Validate` with the algorithms containerd registers.
fn validate_digest(d: &str) -> Result<String, ReferenceError> {
    let (algorithm, hex) = d.split_once(':').unwrap_or((d, ""));
    let (name, size) = match algorithm {
        "sha256" => ("sha256", 64),
        "sha384" => ("sha384", 96),
        "sha512" => ("sha512", 128),
        other => {
            return Err(ReferenceError::InvalidDigest(DigestError::Unsupported {
                algorithm: quote(other),
            }))
        }
    };
    if hex.len() != size {
        return Err(ReferenceError::InvalidDigest(DigestError::Length {
            algorithm: name,
            expected: size,
            found: hex.len(),
        }));
    }
    if !hex.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::InvalidDigest(DigestError::UppercaseHex {
            algorithm: name,
        }));
    }
    Ok(d.to_string())
}

/// `s` cut to [`QUOTE_MAX`] characters for an error message.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
