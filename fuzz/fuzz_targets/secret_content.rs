//! `--secret FILE` content: `.dockerconfigjson`, `.dockercfg`, Secret manifests (YAML/JSON).
//!
//! Feeds the same bytes to the content sniffer (`parse_secret_content`), to both config parsers
//! and to the manifest reader in both syntaxes (the sniffer reaches YAML only for text that looks
//! like a manifest). Oracles: `regprobe_fuzz::check_secret` (sorted entries, redacted keys,
//! consistent labels, no password in errors, warnings or `Debug`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regprobe::secrets::load::parse_secret_content;
use regprobe::secrets::manifest::{secrets_from_manifest, ManifestSyntax};
use regprobe::secrets::{parse_dockercfg, parse_dockerconfigjson, Parsed, Secret, SecretKind};
use regprobe_fuzz::check_secret;
use std::path::Path;

fn as_secret(parsed: Parsed, kind: SecretKind) -> Secret {
    Secret {
        id: "fuzz".to_string(),
        path: Path::new("fuzz").to_path_buf(),
        kind,
        entries: parsed.entries,
        warnings: parsed.warnings,
    }
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/secret.yaml");
    for s in parse_secret_content(data, "fuzz", path) {
        check_secret(&s);
    }
    check_secret(&as_secret(
        parse_dockerconfigjson(data),
        SecretKind::DockerConfigJson,
    ));
    check_secret(&as_secret(parse_dockercfg(data), SecretKind::DockerCfg));
    for syntax in [ManifestSyntax::Yaml, ManifestSyntax::Json] {
        match secrets_from_manifest(data, syntax, "fuzz", path) {
            Ok(found) => found.iter().for_each(check_secret),
            Err(e) => {
                regprobe_fuzz::check_no_marker(&e.to_string());
                regprobe_fuzz::check_no_marker(&format!("{e:?}"));
            }
        }
    }
});
