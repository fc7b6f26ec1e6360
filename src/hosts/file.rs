//! `hosts.toml` decoding, after containerd `core/remotes/docker/config/hosts.go`:
//! `parseHostsFile`, `parseHostConfig`, `getSortedHosts`, `makeStringSlice`, `makeAbsPath`.
//!
//! containerd decodes the file twice: once with go-toml's low-level parser to learn the order of
//! the `[host."…"]` table headers (`getSortedHosts`), once with `toml.Unmarshal` into typed
//! structs. We do the same with `toml_parser` (events, for the order) and `toml::de::DeTable`
//! (values with spans, for line numbers in warnings). Any error here makes containerd log
//! "failed to decode" and fall back to the certs.d layout; [`FileError`] carries what we need to
//! say so (the line, never file content).

use super::{Capabilities, HostConfig};
use crate::golang;
use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use toml_parser::parser::{Event, EventKind};

/// Why a `hosts.toml` is unusable to containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileError {
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// What is wrong, without the file's values.
    pub message: String,
}

/// The fields of containerd's `hostFileConfig`, matched like go-toml v2 matches struct fields:
/// the exact tag first, then the lower-cased key.
const HOST_FIELDS: [&str; 7] = [
    "capabilities",
    "ca",
    "client",
    "skip_verify",
    "header",
    "override_path",
    "dial_timeout",
];

/// A parsed `hosts.toml`: the host list in containerd's order (`[host."…"]` headers in file
/// order, then the root entry built from `server`), plus notes about keys containerd ignores.
pub(crate) struct ParsedFile {
    pub hosts: Vec<HostConfig>,
    pub warnings: Vec<String>,
}

/// containerd `parseHostsFile(baseDir, b)`.
pub(crate) fn parse_hosts_file(base: &Path, text: &str) -> Result<ParsedFile, FileError> {
    let lines = LineIndex::new(text);
    let root = DeTable::parse(text).map_err(|e| FileError {
        line: e.span().map(|s| lines.line(s.start)),
        message: e.message().to_string(),
    })?;
    let ordered = sorted_hosts(text, &lines)?;
    let root = root.get_ref();
    let mut warnings = Vec::new();

    // The `toml.Unmarshal` stage: every value must have the Go type of its field, whether or not
    // the host is used later.
    let mut root_fields: Vec<&str> = HOST_FIELDS.to_vec();
    root_fields.extend(["server", "host"]);
    note_unknown_keys(root, &root_fields, "top level", &lines, &mut warnings);
    let root_cfg = RawConfig::decode(root, &lines)?;
    let server = match field(root, "server") {
        Some(v) => Some((expect_str(v, "server", &lines)?, v.span())),
        None => None,
    };
    let mut host_tables: Vec<(&str, Range<usize>, RawConfig<'_, '_>)> = Vec::new();
    if let Some(v) = field(root, "host") {
        let DeValue::Table(table) = v.get_ref() else {
            return Err(type_error(v, "host", "a table", &lines));
        };
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let DeValue::Table(t) = value.get_ref() else {
                return Err(type_error(
                    value,
                    &format!("host.{name:?}"),
                    "a table",
                    &lines,
                ));
            };
            note_unknown_keys(
                t,
                &HOST_FIELDS,
                &format!("[host.{name:?}]"),
                &lines,
                &mut warnings,
            );
            host_tables.push((name, key.span(), RawConfig::decode(t, &lines)?));
        }
    }

    // The `parseHostConfig` stage, for the hosts with a table header, then the root.
    let mut hosts = Vec::new();
    let empty = RawConfig::default();
    for (name, header_line) in &ordered {
        let (cfg, line) = match host_tables.iter().find(|(n, _, _)| n == name) {
            Some((_, span, cfg)) => (cfg, lines.line(span.start)),
            None => (&empty, *header_line),
        };
        hosts.push(parse_host_config(
            name,
            Some(line),
            base,
            cfg,
            &lines,
            &mut warnings,
        )?);
    }
    let (server, server_line) = match server {
        Some((s, span)) => (s, Some(lines.line(span.start))),
        None => ("", None),
    };
    hosts.push(parse_host_config(
        server,
        server_line,
        base,
        &root_cfg,
        &lines,
        &mut warnings,
    )?);
    Ok(ParsedFile { hosts, warnings })
}

/// containerd `getSortedHosts`: walk the top-level expressions; for each standard table header
/// whose dotted key is `host.<name>[.…]`, take `<name>` unless it equals the name taken last.
///
/// Consequences we keep: hosts defined only by dotted keys or inline tables (`[host]` +
/// `"https://m" = {…}`) are not in the list and are silently dropped by containerd; a host whose
/// tables are interleaved with another's (`[host.a]`, `[host.b]`, `[host.a.header]`) is listed
/// twice. Also rejects the TOML 1.1 inline-table syntax (newlines, trailing comma) that the `toml`
/// crate accepts but go-toml v2 (TOML 1.0) does not.
fn sorted_hosts(text: &str, lines: &LineIndex) -> Result<Vec<(String, usize)>, FileError> {
    let source = toml_parser::Source::new(text);
    let tokens = source.lex().into_vec();
    let mut events: Vec<Event> = Vec::new();
    let mut errors: Vec<toml_parser::ParseError> = Vec::new();
    let mut receiver = |event: Event| events.push(event);
    toml_parser::parser::parse_document(&tokens, &mut receiver, &mut errors);

    let mut ordered: Vec<(String, usize)> = Vec::new();
    let mut last = String::new();
    let mut in_header = false;
    let mut parts: Vec<String> = Vec::new();
    let mut header_start = 0usize;
    // Open inline tables (`true`) and arrays (`false`), innermost last.
    let mut containers: Vec<bool> = Vec::new();
    let mut last_significant: Option<EventKind> = None;
    for event in &events {
        let span = event.span();
        match event.kind() {
            EventKind::StdTableOpen => {
                in_header = true;
                parts.clear();
                header_start = span.start();
            }
            EventKind::SimpleKey if in_header => {
                let raw = toml_parser::Raw::new_unchecked(
                    &text[span.start()..span.end()],
                    event.encoding(),
                    span,
                );
                let mut key: Cow<'_, str> = Cow::Borrowed("");
                raw.decode_key(&mut key, &mut ());
                parts.push(key.into_owned());
            }
            EventKind::StdTableClose => {
                in_header = false;
                if parts.len() >= 2 && parts[0] == "host" && parts[1] != last {
                    last = parts[1].clone();
                    ordered.push((last.clone(), lines.line(header_start)));
                }
            }
            EventKind::InlineTableOpen => containers.push(true),
            EventKind::ArrayOpen => containers.push(false),
            EventKind::ArrayClose => {
                containers.pop();
            }
            EventKind::InlineTableClose => {
                if last_significant == Some(EventKind::ValueSep) {
                    return Err(FileError {
                        line: Some(lines.line(span.start())),
                        message: "trailing comma in an inline table (TOML 1.1 syntax; \
                                  containerd's TOML 1.0 parser rejects it)"
                            .to_string(),
                    });
                }
                containers.pop();
            }
            // Newlines and comments are fine inside an array value, not between an inline
            // table's own entries.
            EventKind::Newline | EventKind::Comment if containers.last() == Some(&true) => {
                return Err(FileError {
                    line: Some(lines.line(span.start())),
                    message: "newline or comment inside an inline table (TOML 1.1 syntax; \
                              containerd's TOML 1.0 parser rejects it)"
                        .to_string(),
                });
            }
            _ => {}
        }
        if !matches!(
            event.kind(),
            EventKind::Whitespace | EventKind::Newline | EventKind::Comment
        ) {
            last_significant = Some(event.kind());
        }
    }
    Ok(ordered)
}

/// `hostFileConfig` after `toml.Unmarshal`: typed fields checked, the `interface{}` ones (`ca`,
/// `client`, header values) kept raw for `parseHostConfig`.
#[derive(Default)]
struct RawConfig<'a, 'i> {
    capabilities: Vec<(String, Range<usize>)>,
    ca: Option<&'a Spanned<DeValue<'i>>>,
    client: Option<&'a Spanned<DeValue<'i>>>,
    skip_verify: Option<bool>,
    header: Option<&'a DeTable<'i>>,
    override_path: bool,
    dial_timeout: Option<(&'a str, Range<usize>)>,
}

impl<'a, 'i> RawConfig<'a, 'i> {
    fn decode(table: &'a DeTable<'i>, lines: &LineIndex) -> Result<Self, FileError> {
        let mut cfg = RawConfig::default();
        if let Some(v) = field(table, "capabilities") {
            let DeValue::Array(items) = v.get_ref() else {
                return Err(type_error(v, "capabilities", "an array of strings", lines));
            };
            for item in items.iter() {
                let DeValue::String(s) = item.get_ref() else {
                    return Err(type_error(
                        item,
                        "capabilities",
                        "an array of strings",
                        lines,
                    ));
                };
                cfg.capabilities.push((s.to_string(), item.span()));
            }
        }
        cfg.ca = field(table, "ca");
        cfg.client = field(table, "client");
        if let Some(v) = field(table, "skip_verify") {
            cfg.skip_verify = Some(expect_bool(v, "skip_verify", lines)?);
        }
        if let Some(v) = field(table, "header") {
            let DeValue::Table(t) = v.get_ref() else {
                return Err(type_error(v, "header", "a table", lines));
            };
            cfg.header = Some(t);
        }
        if let Some(v) = field(table, "override_path") {
            cfg.override_path = expect_bool(v, "override_path", lines)?;
        }
        if let Some(v) = field(table, "dial_timeout") {
            cfg.dial_timeout = Some((expect_str(v, "dial_timeout", lines)?, v.span()));
        }
        Ok(cfg)
    }
}

/// containerd `parseHostConfig(server, baseDir, config)`.
fn parse_host_config(
    server: &str,
    server_line: Option<usize>,
    base: &Path,
    cfg: &RawConfig<'_, '_>,
    lines: &LineIndex,
    warnings: &mut Vec<String>,
) -> Result<HostConfig, FileError> {
    let mut result = HostConfig::default();
    if !server.is_empty() {
        let server = if server.starts_with("http") {
            server.to_string()
        } else {
            format!("https://{server}")
        };
        let url = golang::parse_url(&server).map_err(|e| FileError {
            line: server_line,
            message: format!("unable to parse server {server:?}: {e}"),
        })?;
        let mut path = url.path;
        if !path.is_empty() {
            path = golang::clean_path(&path);
            if !path.ends_with("/v2") && !cfg.override_path {
                path.push_str("/v2");
            }
        } else if !cfg.override_path {
            path = "/v2".to_string();
        }
        if path.contains("//") {
            warnings.push(format!(
                "{server:?} gives the API root {path:?} (containerd appends \"/v2\" to the cleaned \
                 path as written); remove the trailing slash if that is not intended"
            ));
        }
        result.scheme = url.scheme;
        result.host = url.host;
        result.path = path;
    }

    result.skip_verify = cfg.skip_verify;

    if cfg.capabilities.is_empty() {
        result.capabilities = Capabilities::ALL;
    } else {
        for (cap, span) in &cfg.capabilities {
            match cap.to_lowercase().as_str() {
                "pull" => result.capabilities.pull = true,
                "resolve" => result.capabilities.resolve = true,
                "push" => result.capabilities.push = true,
                // containerd main knows "referrers" (HostCapabilityReferrers); it plays no part in
                // a pull, so it is accepted and not kept.
                "referrers" => {}
                _ => {
                    return Err(FileError {
                        line: Some(lines.line(span.start)),
                        message: format!("unknown capability {cap}"),
                    })
                }
            }
        }
    }

    if let Some(v) = cfg.ca {
        let certs = match v.get_ref() {
            DeValue::String(s) => vec![make_abs_path(s, base)],
            DeValue::Array(items) => string_slice(items.iter(), "ca", lines)?
                .into_iter()
                .map(|s| make_abs_path(s, base))
                .collect(),
            other => {
                return Err(FileError {
                    line: Some(lines.line(v.span().start)),
                    message: format!("invalid type {} for \"ca\"", other.type_str()),
                })
            }
        };
        result.ca_certs = Some(certs);
    }

    if let Some(v) = cfg.client {
        let abs = |s: &str| make_abs_path(s, base);
        // Go keeps `[2]string{cert, ""}`; an empty key means "key in the cert file".
        let key_of = |p: std::path::PathBuf| (!p.as_os_str().is_empty()).then_some(p);
        let mut pairs = Vec::new();
        match v.get_ref() {
            DeValue::String(s) => pairs.push((abs(s), None)),
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => pairs.push((abs(s), None)),
                        DeValue::Array(pair) => {
                            let slice = string_slice(pair.iter(), "client", lines)?;
                            if slice.len() != 2 {
                                return Err(FileError {
                                    line: Some(lines.line(item.span().start)),
                                    message: format!(
                                        "invalid pair of {} entries for \"client\"",
                                        slice.len()
                                    ),
                                });
                            }
                            pairs.push((abs(slice[0]), key_of(abs(slice[1]))));
                        }
                        other => {
                            return Err(FileError {
                                line: Some(lines.line(item.span().start)),
                                message: format!(
                                    "invalid type {} for \"client\"",
                                    other.type_str()
                                ),
                            })
                        }
                    }
                }
            }
            other => {
                return Err(FileError {
                    line: Some(lines.line(v.span().start)),
                    message: format!("invalid type {} for \"client\"", other.type_str()),
                })
            }
        }
        result.client_pairs = Some(pairs);
    }

    if let Some(table) = cfg.header {
        let mut header = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let values = match value.get_ref() {
                DeValue::String(s) => vec![s.to_string()],
                DeValue::Array(items) => string_slice(items.iter(), "header", lines)?
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                other => {
                    return Err(FileError {
                        line: Some(lines.line(value.span().start)),
                        message: format!("invalid type {} for header {name:?}", other.type_str()),
                    })
                }
            };
            header.push((name.to_string(), values));
        }
        result.header = Some(header);
    }

    if let Some((text, span)) = &cfg.dial_timeout {
        if !text.is_empty() {
            let nanos = golang::parse_duration(text).map_err(|e| FileError {
                line: Some(lines.line(span.start)),
                message: e,
            })?;
            let timeout = match u64::try_from(nanos) {
                Ok(0) => {
                    warnings.push(format!(
                        "dial_timeout {text:?} means no dial timeout at all for Go's net.Dialer"
                    ));
                    Duration::ZERO
                }
                Ok(n) => Duration::from_nanos(n),
                Err(_) => {
                    warnings.push(format!(
                        "dial_timeout {text:?} is negative: containerd's dials fail at once"
                    ));
                    Duration::from_nanos(1)
                }
            };
            result.dial_timeout = Some(timeout);
        }
    }
    Ok(result)
}

/// containerd `makeStringSlice` without the callback: every element must be a string.
fn string_slice<'a, 'i: 'a>(
    items: impl Iterator<Item = &'a Spanned<DeValue<'i>>>,
    what: &str,
    lines: &LineIndex,
) -> Result<Vec<&'a str>, FileError> {
    items
        .map(|item| match item.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            other => Err(FileError {
                line: Some(lines.line(item.span().start)),
                message: format!("unable to cast {} to string in {what:?}", other.type_str()),
            }),
        })
        .collect()
}

/// The value go-toml v2 would decode into the struct field tagged `name`: a key equal to the tag,
/// or whose lower-case form equals it (`structFieldPath`); with several, the last one written.
fn field<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .filter(|(k, _)| field_matches(k.get_ref(), name))
        .max_by_key(|(k, _)| k.span().start)
        .map(|(_, v)| v)
}

fn field_matches(key: &str, name: &str) -> bool {
    key == name || key.to_lowercase() == name
}

fn note_unknown_keys(
    table: &DeTable<'_>,
    known: &[&str],
    place: &str,
    lines: &LineIndex,
    warnings: &mut Vec<String>,
) {
    for (key, _) in table.iter() {
        let name: &str = key.get_ref();
        if !known.iter().any(|k| field_matches(name, k)) {
            warnings.push(format!(
                "line {}: key {name:?} in {place} is not a containerd hosts.toml setting and is \
                 ignored",
                lines.line(key.span().start)
            ));
        }
    }
}

fn expect_str<'a>(
    v: &'a Spanned<DeValue<'_>>,
    what: &str,
    lines: &LineIndex,
) -> Result<&'a str, FileError> {
    match v.get_ref() {
        DeValue::String(s) => Ok(s.as_ref()),
        _ => Err(type_error(v, what, "a string", lines)),
    }
}

fn expect_bool(v: &Spanned<DeValue<'_>>, what: &str, lines: &LineIndex) -> Result<bool, FileError> {
    match v.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        _ => Err(type_error(v, what, "a boolean", lines)),
    }
}

fn type_error(
    v: &Spanned<DeValue<'_>>,
    what: &str,
    expected: &str,
    lines: &LineIndex,
) -> FileError {
    FileError {
        line: Some(lines.line(v.span().start)),
        message: format!(
            "cannot decode TOML {} into {what} (expected {expected})",
            v.get_ref().type_str()
        ),
    }
}

/// Byte offset -> 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// containerd `makeAbsPath` (`config/hosts.go`): absolute paths are kept as written (not
/// cleaned), relative ones are `filepath.Join`ed to the host directory. Note that `""` becomes the
/// host directory itself.
fn make_abs_path(p: &str, base: &Path) -> std::path::PathBuf {
    if p.starts_with('/') {
        std::path::PathBuf::from(p)
    } else {
        golang::join_clean(base, p)
    }
}

#[cfg(test)]
mod tests {
    use super::make_abs_path;
    use std::path::{Path, PathBuf};

    #[test]
    fn make_abs_path_like_containerd() {
        assert_eq!(
            make_abs_path("/abs//x", Path::new("/d")),
            PathBuf::from("/abs//x")
        );
        assert_eq!(make_abs_path("", Path::new("/d")), PathBuf::from("/d"));
        assert_eq!(
            make_abs_path("x/../ca.crt", Path::new("/d")),
            PathBuf::from("/d/ca.crt")
        );
    }
}
