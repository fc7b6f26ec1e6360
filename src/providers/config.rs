//! kubelet's `CredentialProviderConfig` (`--image-credential-provider-config`): reading and
//! validation as kubelet does them.
//!
//! Upstream: kubernetes `pkg/credentialprovider/plugin/config.go` (`readCredentialProviderConfig`:
//! a file, or a directory whose `*.json`, `*.yaml`, `*.yml` files are read in lexicographic
//! order and merged, a provider name seen twice is an error; `decode`: kind
//! `CredentialProviderConfig`, group `kubelet.config.k8s.io`; `validateCredentialProviderConfig`)
//! and `pkg/kubelet/apis/config/types.go` (`CredentialProvider`). kubelet decodes strictly
//! (`serializer.EnableStrict`): an unknown or duplicate field is an error, field names are
//! case-sensitive; so does this module (`deny_unknown_fields`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The config `apiVersion`s kubelet reads (`kubelet.config.k8s.io/{v1,v1beta1,v1alpha1}`).
pub const CONFIG_API_VERSIONS: [&str; 3] = [
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];

/// The `CredentialProviderRequest` `apiVersion`s a provider may name (`apiVersions` in
/// `plugin.go`).
pub const REQUEST_API_VERSIONS: [&str; 3] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
];

/// The largest config file read (bytes); a bigger one is [`ProviderConfigError::TooLarge`].
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A config that kubelet would refuse (kubelet then does not start: `RegisterCredentialProviderPlugins`).
#[derive(Debug, thiserror::Error)]
pub enum ProviderConfigError {
    /// The path cannot be read.
    #[error("--image-credential-provider-config {path}: {error}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A directory without any `*.json`, `*.yaml`, `*.yml` file.
    #[error("--image-credential-provider-config {0}: no configuration files found in directory")]
    EmptyDir(PathBuf),
    /// Over [`MAX_CONFIG_BYTES`].
    #[error("--image-credential-provider-config {0}: larger than 1 MiB")]
    TooLarge(PathBuf),
    /// Not YAML/JSON of the expected shape (strict: unknown fields are errors).
    #[error("--image-credential-provider-config {path}: {error}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The parser's message (a config holds no secrets: `env` values are the config's own).
        error: String,
    },
    /// `kind` is not `CredentialProviderConfig` or `apiVersion` not one kubelet reads.
    #[error("--image-credential-provider-config {path}: kind {kind:?} apiVersion {api_version:?} is not a kubelet CredentialProviderConfig")]
    Kind {
        /// The file.
        path: PathBuf,
        /// The kind given.
        kind: String,
        /// The apiVersion given.
        api_version: String,
    },
    /// `validateCredentialProviderConfig` errors, one sentence each.
    #[error("--image-credential-provider-config: failed to validate credential provider config: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// `--image-credential-provider-bin-dir` does not exist or is not a directory.
    #[error("--image-credential-provider-bin-dir {0}: plugin binary directory did not exist")]
    BinDir(PathBuf),
    /// One flag given without the other (kubelet needs both).
    #[error(
        "--image-credential-provider-config and --image-credential-provider-bin-dir go together"
    )]
    FlagPair,
}

/// One config file as written (`kubelet.config.k8s.io` `CredentialProviderConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigFile {
    kind: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProvider {
    #[serde(default)]
    name: String,
    #[serde(default)]
    match_images: Vec<String>,
    default_cache_duration: Option<String>,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    token_attributes: Option<serde_json::Value>,
}

/// One `env` item of a provider: set for the plugin on top of kubelet's own environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A validated provider (`kubeletconfig.CredentialProvider`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The plugin's file name in the bin dir; the secret id is `provider:NAME`.
    pub name: String,
    /// Image patterns (`URLsMatchStr` globs) the provider is asked for.
    pub match_images: Vec<String>,
    /// How long an answer without `cacheDuration` is cached; zero: not cached.
    pub default_cache_duration: Duration,
    /// The `CredentialProviderRequest`/`Response` apiVersion.
    pub api_version: String,
    /// Arguments passed to the plugin.
    pub args: Vec<String>,
    /// Environment added to regprobe's own.
    pub env: Vec<EnvVar>,
    /// `tokenAttributes` was set: the plugin wants a pod's service account token
    /// (`KubeletServiceAccountTokenForCredentialProviders`), which regprobe cannot mint.
    pub wants_service_account_token: bool,
}

impl Provider {
    /// The secret id of its credentials: `provider:NAME`.
    pub fn secret_id(&self) -> String {
        format!("provider:{}", self.name)
    }
}

/// Reads and validates `path` (a file, or a directory read as kubelet reads it).
///
/// Errors: [`ProviderConfigError`], one per rule of `readCredentialProviderConfig` /
/// `validateCredentialProviderConfig`.
pub fn read(path: &Path) -> Result<Vec<Provider>, ProviderConfigError> {
    let meta = std::fs::metadata(path).map_err(|error| ProviderConfigError::Read {
        path: path.into(),
        error,
    })?;
    let files = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|error| ProviderConfigError::Read {
                path: path.into(),
                error,
            })?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .take(1000)
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ProviderConfigError::EmptyDir(path.into()));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut raw = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for f in files {
        for p in decode_file(&f)? {
            if !names.insert(p.name.clone()) {
                return Err(ProviderConfigError::Invalid(vec![format!(
                    "duplicate provider name {:?} found in configuration file(s)",
                    p.name
                )]));
            }
            raw.push(p);
        }
    }
    validate(raw)
}

fn decode_file(path: &Path) -> Result<Vec<RawProvider>, ProviderConfigError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|error| ProviderConfigError::Read {
        path: path.into(),
        error,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ProviderConfigError::Read {
            path: path.into(),
            error,
        })?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ProviderConfigError::TooLarge(path.into()));
    }
    let decode_err = |error: String| ProviderConfigError::Decode {
        path: path.into(),
        error,
    };
    // JSON is YAML, but serde_json's messages are better for JSON input.
    let parsed: ConfigFile = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        serde_json::from_slice(&bytes).map_err(|e| decode_err(e.to_string()))?
    } else {
        serde_saphyr::from_slice(&bytes).map_err(|e| decode_err(e.to_string()))?
    };
    let kind = parsed.kind.unwrap_or_default();
    let api_version = parsed.api_version.unwrap_or_default();
    if kind != "CredentialProviderConfig" || !CONFIG_API_VERSIONS.contains(&api_version.as_str()) {
        return Err(ProviderConfigError::Kind {
            path: path.into(),
            kind,
            api_version,
        });
    }
    Ok(parsed.providers)
}

/// `validateCredentialProviderConfig` (without the service-account token rules, which regprobe
/// does not use: such a provider is read and reported, see [`Provider::wants_service_account_token`]).
fn validate(raw: Vec<RawProvider>) -> Result<Vec<Provider>, ProviderConfigError> {
    let mut errs = Vec::new();
    if raw.is_empty() {
        errs.push("providers: Required value: at least 1 item in plugins is required".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for p in raw {
        let n = &p.name;
        if n.contains('/') {
            errs.push(format!(
                "providers.name {n:?}: provider name cannot contain '/'"
            ));
        }
        if n.contains(' ') {
            errs.push(format!(
                "providers.name {n:?}: provider name cannot contain spaces"
            ));
        }
        if n == "." || n == ".." {
            errs.push(format!(
                "providers.name {n:?}: provider name cannot be {n:?}"
            ));
        }
        if n.is_empty() {
            // kubelet lets an empty name through validation; `LookPath(bin_dir + "")` then
            // finds the directory, not an executable, and kubelet does not start.
            errs.push("providers.name: Required value".into());
        }
        if !seen.insert(n.clone()) {
            errs.push(format!("providers.name: Duplicate value: {n:?}"));
        }
        if p.api_version.is_empty() {
            errs.push(format!("providers[{n}].apiVersion: Required value"));
        } else if !REQUEST_API_VERSIONS.contains(&p.api_version.as_str()) {
            errs.push(format!(
                "providers[{n}].apiVersion: Unsupported value: {:?}: supported values: {}",
                p.api_version,
                REQUEST_API_VERSIONS.join(", ")
            ));
        }
        if p.match_images.is_empty() {
            errs.push(format!(
                "providers[{n}].matchImages: Required value: at least 1 item in matchImages is required"
            ));
        }
        for m in &p.match_images {
            if !crate::secrets::keyring::is_schemeless_url(m) {
                errs.push(format!(
                    "providers[{n}].matchImages: Invalid value: {m:?}: match image is invalid"
                ));
            }
        }
        let duration = match &p.default_cache_duration {
            None => {
                errs.push(format!(
                    "providers[{n}].defaultCacheDuration: Required value"
                ));
                Duration::ZERO
            }
            Some(d) => match parse_go_duration(d) {
                Ok(GoDuration::Negative) => {
                    errs.push(format!(
                        "providers[{n}].defaultCacheDuration: Invalid value: {d:?}: defaultCacheDuration must be greater than or equal to 0"
                    ));
                    Duration::ZERO
                }
                Ok(GoDuration::NonNegative(d)) => d,
                Err(e) => {
                    errs.push(format!("providers[{n}].defaultCacheDuration: {e}"));
                    Duration::ZERO
                }
            },
        };
        if p.token_attributes.is_some() && p.api_version != "credentialprovider.kubelet.k8s.io/v1" {
            errs.push(format!(
                "providers[{n}].tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version"
            ));
        }
        out.push(Provider {
            name: p.name,
            match_images: p.match_images,
            default_cache_duration: duration,
            api_version: p.api_version,
            args: p.args,
            env: p.env,
            wants_service_account_token: p.token_attributes.is_some(),
        });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ProviderConfigError::Invalid(errs))
    }
}

/// A Go `time.Duration`'s sign and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoDuration {
    /// Below zero (kubelet's validation refuses a negative `defaultCacheDuration`).
    Negative,
    /// Zero or more.
    NonNegative(Duration),
}

/// Go's `time.ParseDuration`, as `metav1.Duration` unmarshals a string: an optional sign, then
/// one or more decimal numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`,
/// `μs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit. E.g. `12h`, `1h30m`, `1.5s`, `-5m`.
///
/// Errors: a sentence naming the input, as Go's `invalid duration`.
pub fn parse_go_duration(s: &str) -> Result<GoDuration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(GoDuration::NonNegative(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    // Go's limit: int64 nanoseconds.
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    if neg && total > 0.0 {
        return Ok(GoDuration::Negative);
    }
    Ok(GoDuration::NonNegative(Duration::from_nanos(total as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const ECR: &str = r#"apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - name: AWS_PROFILE
        value: node
"#;

    #[test]
    fn the_eks_config_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = read(&write(d.path(), "c.yaml", ECR)).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "ecr-credential-provider");
        assert_eq!(p[0].default_cache_duration, Duration::from_secs(12 * 3600));
        assert_eq!(p[0].args, vec!["get-credentials"]);
        assert_eq!(p[0].env[0].name, "AWS_PROFILE");
        assert_eq!(p[0].secret_id(), "provider:ecr-credential-provider");
    }

    #[test]
    fn json_reads_and_a_directory_merges_in_order() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "b.json",
            r#"{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"CredentialProviderConfig","providers":[{"name":"b","matchImages":["b.example"],"defaultCacheDuration":"0","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1"}]}"#,
        );
        write(
            d.path(),
            "a.yml",
            &ECR.replace("ecr-credential-provider", "a"),
        );
        write(d.path(), "ignored.txt", "not read");
        let p = read(d.path()).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        write(
            d.path(),
            "c.yaml",
            &ECR.replace("ecr-credential-provider", "a"),
        );
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("duplicate provider name \"a\""), "{e}");
    }

    #[test]
    fn kubelets_validation_rules() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (ECR.replace("    matchImages:\n      - \"*.dkr.ecr.*.amazonaws.com\"\n", ""), "matchImages: Required"),
            (ECR.replace("    defaultCacheDuration: \"12h\"\n", ""), "defaultCacheDuration: Required"),
            (ECR.replace("\"12h\"", "\"-1m\""), "greater than or equal to 0"),
            (ECR.replace("\"12h\"", "\"12 hours\""), "unknown unit"),
            (ECR.replace("credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v2"), "Unsupported value"),
            (ECR.replace("name: ecr-credential-provider", "name: ../x"), "cannot contain '/'"),
            (ECR.replace("name: ecr-credential-provider", "name: \"a b\""), "cannot contain spaces"),
            (ECR.replace("name: ecr-credential-provider", "name: \"..\""), "cannot be"),
            (format!("{ECR}  - name: ecr-credential-provider\n    matchImages: [x]\n    defaultCacheDuration: 1m\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"), "duplicate provider name"),
            ("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: []\n".to_string(), "at least 1 item"),
            (ECR.replace("kind: CredentialProviderConfig", "kind: KubeletConfiguration"), "is not a kubelet CredentialProviderConfig"),
            (ECR.replace("    args:", "    matchimages: [x]\n    args:"), "unknown field"),
            (ECR.replace("\"*.dkr.ecr.*.amazonaws.com\"", "\"%zz\""), "match image is invalid"),
            ("{\"kind\": ".to_string(), "EOF"),
        ];
        for (text, want) in cases {
            let e = read(&write(d.path(), "c.yaml", &text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn go_durations() {
        let ok = |s: &str| match parse_go_duration(s).unwrap() {
            GoDuration::NonNegative(d) => d,
            GoDuration::Negative => panic!("{s} negative"),
        };
        assert_eq!(ok("12h"), Duration::from_secs(43200));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("5m0s"), Duration::from_secs(300));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0s"), Duration::ZERO);
        assert_eq!(parse_go_duration("-5m").unwrap(), GoDuration::Negative);
        for bad in ["", "5", "h", "1d", "1.2.3s", "-", "1h 30m"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
