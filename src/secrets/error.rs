//! Why a secret is invalid.

use serde_json::error::Category;
use std::path::PathBuf;
use std::sync::Arc;

/// Why kubelet would reject a whole secret (regprobe reports it as `secret_invalid`).
///
/// No variant carries secret content: parser errors are reduced to a position and a category,
/// because serde_json's and the YAML parser's messages can quote input values; registry keys are
/// shown with any URL user-info replaced by `xxxxx`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A secret file inside a `--secrets-dir` exists but could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (shared so that `Secret` stays `Clone`).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is larger than `limit` bytes ([`super::MAX_FILE_BYTES`]).
    #[error("file is larger than {limit} bytes (4 MiB), not read")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The file or Secret value is empty (kubelet silently ignores an empty pull secret).
    #[error("the file is empty")]
    Empty,
    /// The content is not valid JSON, or (for a JSON Secret manifest) not of the expected shape.
    #[error("invalid JSON at line {line}, column {column} ({})", category_text(*.category))]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's category: `Syntax`, `Eof`, `Data` (wrong type) or `Io`.
        category: Category,
    },
    /// The top-level JSON value is not an object.
    #[error("the top level is {found}, not a JSON object")]
    NotAnObject {
        /// The JSON type found, e.g. `an array`.
        found: &'static str,
    },
    /// A `.dockerconfigjson` (or node `config.json`) has no `auths` object (missing or `null`).
    /// kubelet reads no credentials from it.
    #[error(
        "no \"auths\" object (a .dockerconfigjson must look like {{\"auths\": {{\"registry\": {{...}}}}}}); \
         kubelet reads no credentials from it"
    )]
    NoAuths,
    /// A top-level field has a type Go's `encoding/json` refuses (e.g. `"auths": []`,
    /// `"HttpHeaders": 1`); kubelet's unmarshalling fails.
    #[error("\"{field}\" is {found}, expected {expected}")]
    WrongType {
        /// The field, e.g. `auths`.
        field: &'static str,
        /// The JSON type found.
        found: &'static str,
        /// What kubelet expects.
        expected: &'static str,
    },
    /// An `auths` entry is not an object (nor `null`).
    #[error("entry \"{key}\" is {found}, not a JSON object")]
    EntryNotAnObject {
        /// The entry's key as written (user-info redacted).
        key: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// `username`, `password`, `email` or `auth` is neither a string nor `null`.
    #[error("entry \"{key}\": \"{field}\" is {found}, not a string")]
    EntryFieldNotAString {
        /// The entry's key as written (user-info redacted).
        key: String,
        /// The field: `username`, `password`, `email` or `auth`.
        field: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// `auth` is not valid base64 (padded standard if it ends with `=`, else unpadded standard).
    #[error("entry \"{key}\": \"auth\" is not base64")]
    AuthNotBase64 {
        /// The entry's key as written (user-info redacted).
        key: String,
    },
    /// `auth` decodes to text without `:`.
    #[error(
        "entry \"{key}\": \"auth\" decodes to text without ':' (expected base64 of user:password)"
    )]
    AuthNoColon {
        /// The entry's key as written (user-info redacted).
        key: String,
    },
    /// A YAML Secret manifest does not parse, or does not have the shape of a Secret/List.
    /// `line`/`column` are 1-based; 0 when the parser gave no position.
    #[error("{}", yaml_text(*.line, *.column))]
    ManifestYaml {
        /// 1-based line, 0 if unknown.
        line: u64,
        /// 1-based column, 0 if unknown.
        column: u64,
    },
    /// A manifest (or a `List` item) is not a `Secret`.
    #[error("manifest kind {} is not a Secret", quoted_or_missing(.kind))]
    ManifestNotASecret {
        /// The manifest's `kind`, empty if missing.
        kind: String,
    },
    /// A Secret whose type is not `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`
    /// (e.g. `Opaque`, the default). kubelet silently ignores it as a pull secret.
    #[error(
        "Secret type \"{type_}\" is not an image pull secret (kubelet ignores it; \
         expected kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg)"
    )]
    NotAPullSecret {
        /// The Secret's `type` (`Opaque` when absent).
        type_: String,
    },
    /// The pull Secret has no non-empty value for its key in `data` or `stringData`.
    /// kubelet silently ignores it.
    #[error("Secret has no non-empty \"{key}\" in data or stringData (kubelet ignores it)")]
    ManifestMissingKey {
        /// `.dockerconfigjson` or `.dockercfg`.
        key: &'static str,
    },
    /// A `data` value is not base64 (padded standard, as the API server decodes it).
    #[error("Secret data \"{key}\" is not base64")]
    ManifestDataNotBase64 {
        /// `.dockerconfigjson` or `.dockercfg`.
        key: &'static str,
    },
    /// The value of a Secret manifest's key does not parse: `error` (a [`SecretError::Json`])
    /// counts its line and column in the decoded value, not in the manifest file.
    #[error("in its {key} value (lines counted in the value, not in the file): {error}")]
    InManifestValue {
        /// `.dockerconfigjson` or `.dockercfg`.
        key: &'static str,
        /// The error in the value.
        error: Box<SecretError>,
    },
}

impl SecretError {
    /// Whether kubelet skips the secret and goes on with the pod's other pull secrets (or pulls
    /// anonymously), rather than failing every pull of the pod.
    ///
    /// kubernetes `pkg/credentialprovider/secrets/secrets.go` `MakeDockerKeyring` reads a Secret
    /// only when its type is `kubernetes.io/dockerconfigjson` (or `kubernetes.io/dockercfg`), its
    /// key (`.dockerconfigjson` / `.dockercfg`) exists and its value is non-empty; any other Secret
    /// is passed over without an error. Only `json.Unmarshal` failing on a value it does read
    /// (syntax, a wrong type, `DockerConfigEntry.UnmarshalJSON`'s `auth` errors) returns an error,
    /// which fails the pod's pulls. A value without `auths` unmarshals fine and gives no
    /// credentials, so it is skipped too.
    ///
    /// An unreadable, oversized or unparsable *manifest* (regprobe's input, not what kubelet
    /// reads) is not skipped: what kubelet holds is unknown, so the image verdict stays blocked.
    pub fn kubelet_skips(&self) -> bool {
        matches!(
            self,
            SecretError::Empty
                | SecretError::NoAuths
                | SecretError::NotAPullSecret { .. }
                | SecretError::ManifestMissingKey { .. }
        )
    }
}

fn category_text(category: Category) -> &'static str {
    match category {
        Category::Syntax => "syntax error",
        Category::Eof => "unexpected end of input",
        Category::Data => "value of the wrong type",
        Category::Io => "read error",
    }
}

fn yaml_text(line: u64, column: u64) -> String {
    if line == 0 {
        "invalid YAML, or not a Kubernetes Secret manifest".to_string()
    } else {
        format!(
            "invalid YAML, or not a Kubernetes Secret manifest, at line {line}, column {column}"
        )
    }
}

fn quoted_or_missing(kind: &str) -> String {
    if kind.is_empty() {
        "(missing)".to_string()
    } else {
        format!("\"{kind}\"")
    }
}
