//! Kubernetes Secret manifests (YAML or JSON): a `kind: Secret`, or a `kind: List` /
//! `kind: SecretList` of Secrets (what `kubectl get secret a b -o yaml` prints); several YAML
//! documents (`---`) are read one after the other.
//!
//! kubelet's rule (`pkg/credentialprovider/secrets/secrets.go`, `secretsToTrackedDockerConfigs`):
//! a Secret of type `kubernetes.io/dockerconfigjson` with a non-empty `.dockerconfigjson` value is
//! parsed as `{"auths": ...}`; else a Secret of type `kubernetes.io/dockercfg` with a non-empty
//! `.dockercfg` value is parsed as legacy `{KEY: ENTRY}`; every other Secret (e.g. `Opaque`, the
//! default type) is silently ignored. regprobe reports the ignored cases as errors
//! ([`SecretError::NotAPullSecret`], [`SecretError::ManifestMissingKey`]) because a pull secret
//! kubelet ignores is exactly what an SRE needs to hear about.
//!
//! `data` values are base64 as the API server decodes them (Go's padded standard encoding, `\r`
//! and `\n` skipped); `stringData` values are used as they are and win over `data` for the same
//! key, as the API server merges them. Only positions of YAML/JSON errors are kept: the parsers'
//! messages can quote `data` values.

use super::dockerconfig::{
    go_base64_decode, json_error_at, parse_dockercfg, parse_dockerconfigjson,
};
use super::{Secret, SecretError, SecretKind};
use secrecy::zeroize::Zeroizing;
use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Syntax of a manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestSyntax {
    /// One JSON document.
    Json,
    /// One or more YAML documents.
    Yaml,
}

/// Reads the Secrets of a manifest file and parses their pull-secret content.
///
/// Each Secret gets the id `metadata.name`; without a name, `fallback_id` (or
/// `<fallback_id>-<n>`, 0-based, when the file holds several Secrets). `path` is recorded in each
/// [`Secret`]. A Secret whose content kubelet would reject, or which is not a pull secret, is
/// returned with `entries: Err(..)`; a `List` item that is not a Secret gives
/// [`SecretError::ManifestNotASecret`].
///
/// Errors (the whole file): [`SecretError::Json`] (syntax, or a JSON manifest of the wrong shape)
/// or [`SecretError::ManifestYaml`] (YAML syntax or shape).
///
/// Source: kubernetes `pkg/credentialprovider/secrets/secrets.go`.
pub fn secrets_from_manifest(
    bytes: &[u8],
    syntax: ManifestSyntax,
    fallback_id: &str,
    path: &Path,
) -> Result<Vec<Secret>, SecretError> {
    let docs: Vec<Doc> = match syntax {
        ManifestSyntax::Json => {
            vec![serde_json::from_slice(bytes).map_err(|e| json_error_at(bytes, &e))?]
        }
        ManifestSyntax::Yaml => serde_saphyr::from_slice_multiple(bytes).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            SecretError::ManifestYaml { line, column }
        })?,
    };
    let mut found = Vec::new();
    for doc in docs {
        match doc.kind.as_deref() {
            Some("List" | "SecretList") => {
                for item in doc.items.unwrap_or_default() {
                    // Items of a SecretList from the API carry no `kind`.
                    match item.kind.as_deref() {
                        None | Some("Secret") => found.push(pull_secret(item)),
                        Some(other) => found.push(not_a_secret(item.metadata, other)),
                    }
                }
            }
            Some("Secret") => found.push(pull_secret(doc)),
            other => found.push(not_a_secret(doc.metadata, other.unwrap_or(""))),
        }
    }
    let several = found.len() > 1;
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(n, f)| {
            let id = match f.name {
                Some(name) if !name.is_empty() => name,
                _ if several => format!("{fallback_id}-{n}"),
                _ => fallback_id.to_string(),
            };
            let (entries, warnings) = match f.content {
                Err(e) => (Err(e), Vec::new()),
                Ok(bytes) => {
                    let (parsed, key) = match f.kind {
                        SecretKind::DockerCfg => (parse_dockercfg(&bytes), ".dockercfg"),
                        _ => (parse_dockerconfigjson(&bytes), ".dockerconfigjson"),
                    };
                    // A JSON position counts in the decoded value, not in the manifest file.
                    let entries = parsed.entries.map_err(|e| match e {
                        SecretError::Json { .. } => SecretError::InManifestValue {
                            key,
                            error: Box::new(e),
                        },
                        other => other,
                    });
                    (entries, parsed.warnings)
                }
            };
            Secret {
                id,
                path: path.to_path_buf(),
                kind: f.kind,
                entries,
                warnings,
            }
        })
        .collect())
}

/// One Secret found in a manifest, before its content is parsed.
struct Found {
    name: Option<String>,
    kind: SecretKind,
    content: Result<Zeroizing<Vec<u8>>, SecretError>,
}

fn not_a_secret(metadata: Option<Metadata>, kind: &str) -> Found {
    Found {
        name: metadata.and_then(|m| m.name),
        kind: SecretKind::Unknown,
        content: Err(SecretError::ManifestNotASecret {
            kind: kind.to_string(),
        }),
    }
}

/// kubelet's type/key selection for one Secret.
fn pull_secret(doc: Doc) -> Found {
    let name = doc.metadata.and_then(|m| m.name);
    let type_ = doc.type_.filter(|t| !t.is_empty());
    let (kind, key) = match type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => {
            (SecretKind::DockerConfigJson, ".dockerconfigjson")
        }
        Some("kubernetes.io/dockercfg") => (SecretKind::DockerCfg, ".dockercfg"),
        other => {
            return Found {
                name,
                kind: SecretKind::Unknown,
                content: Err(SecretError::NotAPullSecret {
                    type_: other.unwrap_or("Opaque").to_string(),
                }),
            }
        }
    };
    let string_value = doc
        .string_data
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(Option::as_ref);
    let content = if let Some(text) = string_value {
        Ok(Zeroizing::new(text.0.as_bytes().to_vec()))
    } else if let Some(b64) = doc
        .data
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(Option::as_ref)
    {
        go_base64_decode(&b64.0, true).ok_or(SecretError::ManifestDataNotBase64 { key })
    } else {
        Err(SecretError::ManifestMissingKey { key })
    };
    let content = content.and_then(|c| {
        if c.is_empty() {
            Err(SecretError::ManifestMissingKey { key })
        } else {
            Ok(c)
        }
    });
    Found {
        name,
        kind,
        content,
    }
}

/// The parts of a Secret / List manifest regprobe reads; everything else is ignored.
#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    metadata: Option<Metadata>,
    data: Option<BTreeMap<String, Option<Text>>>,
    #[serde(rename = "stringData")]
    string_data: Option<BTreeMap<String, Option<Text>>>,
    items: Option<Vec<Doc>>,
}

#[derive(Deserialize)]
struct Metadata {
    name: Option<String>,
}

/// A string value held in a zeroizing buffer.
struct Text(Zeroizing<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Zeroizing::new(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text, E> {
                Ok(Text(Zeroizing::new(v)))
            }
        }
        deserializer.deserialize_string(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use secrecy::ExposeSecret;

    const CONFIG: &str = r#"{"auths":{"ghcr.io":{"username":"u","password":"p"}}}"#;

    fn yaml(text: &str) -> Result<Vec<Secret>, SecretError> {
        secrets_from_manifest(
            text.as_bytes(),
            ManifestSyntax::Yaml,
            "file",
            Path::new("f.yaml"),
        )
    }

    fn json(text: &str) -> Result<Vec<Secret>, SecretError> {
        secrets_from_manifest(
            text.as_bytes(),
            ManifestSyntax::Json,
            "file",
            Path::new("f.json"),
        )
    }

    fn assert_ghcr(s: &Secret) {
        let entries = s
            .entries
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", s.id));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "ghcr.io");
        assert_eq!(entries[0].credential.username, "u");
        assert_eq!(entries[0].credential.password.expose_secret(), "p");
    }

    #[test]
    fn yaml_with_data() {
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: apps\n\
             type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
            STANDARD.encode(CONFIG)
        );
        let secrets = yaml(&text).unwrap();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].id, "regcred");
        assert_eq!(secrets[0].kind, SecretKind::DockerConfigJson);
        assert_eq!(secrets[0].path, Path::new("f.yaml"));
        assert_ghcr(&secrets[0]);
    }

    #[test]
    fn yaml_with_string_data_and_dockercfg_type() {
        let text = "kind: Secret\nmetadata:\n  name: legacy\ntype: kubernetes.io/dockercfg\n\
                    stringData:\n  .dockercfg: |\n    {\"ghcr.io\": {\"username\": \"u\", \"password\": \"p\"}}\n";
        let secrets = yaml(text).unwrap();
        assert_eq!(secrets[0].id, "legacy");
        assert_eq!(secrets[0].kind, SecretKind::DockerCfg);
        assert_ghcr(&secrets[0]);
    }

    #[test]
    fn json_with_data_and_with_string_data() {
        let with_data = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"a"}},
                "type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{}"}}}}"#,
            STANDARD.encode(CONFIG)
        );
        let secrets = json(&with_data).unwrap();
        assert_eq!(secrets[0].id, "a");
        assert_ghcr(&secrets[0]);
        let with_string_data = serde_json::json!({
            "kind": "Secret", "metadata": {"name": "b"}, "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": CONFIG},
            // stringData wins over data for the same key.
            "data": {".dockerconfigjson": STANDARD.encode("{}")},
        })
        .to_string();
        let secrets = json(&with_string_data).unwrap();
        assert_eq!(secrets[0].id, "b");
        assert_ghcr(&secrets[0]);
    }

    #[test]
    fn list_of_secrets() {
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n\
             - apiVersion: v1\n  kind: Secret\n  metadata:\n    name: one\n  type: kubernetes.io/dockerconfigjson\n  \
             data:\n    .dockerconfigjson: {b64}\n\
             - kind: Secret\n  metadata:\n    name: two\n  type: kubernetes.io/dockerconfigjson\n  \
             data:\n    .dockerconfigjson: {b64}\n\
             - kind: Secret\n  metadata:\n    name: tls\n  type: kubernetes.io/tls\n  data: {{}}\n\
             - kind: ConfigMap\n  metadata:\n    name: cm\n\
             metadata:\n  resourceVersion: \"\"\n",
            b64 = STANDARD.encode(CONFIG)
        );
        let secrets = yaml(&text).unwrap();
        let ids: Vec<_> = secrets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["one", "two", "tls", "cm"]);
        assert_ghcr(&secrets[0]);
        assert_ghcr(&secrets[1]);
        assert!(matches!(
            secrets[2].entries,
            Err(SecretError::NotAPullSecret { ref type_ }) if type_ == "kubernetes.io/tls"
        ));
        assert_eq!(
            secrets[3].entries.as_ref().unwrap_err().to_string(),
            "manifest kind \"ConfigMap\" is not a Secret"
        );
    }

    #[test]
    fn secret_list_items_without_kind_and_multi_document_yaml() {
        let b64 = STANDARD.encode(CONFIG);
        let list = format!(
            r#"{{"kind":"SecretList","items":[{{"metadata":{{"name":"x"}},"type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{b64}"}}}}]}}"#
        );
        assert_ghcr(&json(&list).unwrap()[0]);
        let docs = format!(
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n---\n\
             kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{CONFIG}'\n"
        );
        let secrets = yaml(&docs).unwrap();
        // No names: the fallback id, numbered.
        assert_eq!(secrets[0].id, "file-0");
        assert_eq!(secrets[1].id, "file-1");
        assert_ghcr(&secrets[0]);
        assert_ghcr(&secrets[1]);
    }

    #[test]
    fn opaque_secret() {
        let text = format!(
            "kind: Secret\nmetadata:\n  name: generic\ndata:\n  .dockerconfigjson: {}\n",
            STANDARD.encode(CONFIG)
        );
        let secrets = yaml(&text).unwrap();
        assert_eq!(secrets[0].id, "generic");
        assert_eq!(secrets[0].kind, SecretKind::Unknown);
        assert_eq!(
            secrets[0].entries.as_ref().unwrap_err().to_string(),
            "Secret type \"Opaque\" is not an image pull secret (kubelet ignores it; \
             expected kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg)"
        );
        let explicit = yaml("kind: Secret\ntype: Opaque\n").unwrap();
        assert!(matches!(
            explicit[0].entries,
            Err(SecretError::NotAPullSecret { ref type_ }) if type_ == "Opaque"
        ));
    }

    #[test]
    fn manifest_error_variants_and_messages() {
        let missing =
            yaml("kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockercfg: e30=\n")
                .unwrap();
        assert_eq!(
            missing[0].entries.as_ref().unwrap_err().to_string(),
            "Secret has no non-empty \".dockerconfigjson\" in data or stringData (kubelet ignores it)"
        );
        let empty =
            yaml("kind: Secret\ntype: kubernetes.io/dockercfg\nstringData:\n  .dockercfg: ''\n")
                .unwrap();
        assert!(matches!(
            empty[0].entries,
            Err(SecretError::ManifestMissingKey { key: ".dockercfg" })
        ));
        let bad = yaml("kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: not*base64\n")
            .unwrap();
        assert_eq!(
            bad[0].entries.as_ref().unwrap_err().to_string(),
            "Secret data \".dockerconfigjson\" is not base64"
        );
        // The content itself is then parsed by kubelet's rules.
        let no_auths = yaml(&format!(
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
            STANDARD.encode("{}")
        ))
        .unwrap();
        assert!(matches!(no_auths[0].entries, Err(SecretError::NoAuths)));
        let e = yaml("kind: Secret\nmetadata: [\n").unwrap_err();
        assert!(
            matches!(e, SecretError::ManifestYaml { line, .. } if line > 0),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .starts_with("invalid YAML, or not a Kubernetes Secret manifest, at line"));
        // Wrong shape: `data` is a list.
        let e = yaml("kind: Secret\ndata:\n  - a\n").unwrap_err();
        assert!(matches!(e, SecretError::ManifestYaml { .. }), "{e:?}");
        let e = json(r#"{"kind":"Secret","data":[1]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid JSON at line 1, column 24 (value of the wrong type)"
        );
        assert_eq!(
            SecretError::ManifestYaml { line: 0, column: 0 }.to_string(),
            "invalid YAML, or not a Kubernetes Secret manifest"
        );
        let e = yaml("apiVersion: v1\nmetadata:\n  name: x\n").unwrap();
        assert_eq!(
            e[0].entries.as_ref().unwrap_err().to_string(),
            "manifest kind (missing) is not a Secret"
        );
    }
}
