//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the parsers with the
//! fuzz targets' oracles, in an ordinary test: every input that once found a bug, or added
//! coverage, keeps being checked by `cargo test` without building libFuzzer (that build takes
//! minutes on two cores; `fuzz/run.sh` runs the fuzzers themselves).

#[path = "../fuzz/src/lib.rs"]
mod regprobe_fuzz;

use regprobe::secrets::load::parse_secret_content;
use regprobe::secrets::manifest::{secrets_from_manifest, ManifestSyntax};
use regprobe::secrets::{parse_dockercfg, parse_dockerconfigjson, Parsed, Secret, SecretKind};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

fn as_secret(parsed: Parsed, kind: SecretKind) -> Secret {
    Secret {
        id: "fuzz".into(),
        path: "fuzz".into(),
        kind,
        entries: parsed.entries,
        warnings: parsed.warnings,
    }
}

#[test]
fn secret_content_corpus_parses_without_leaks() {
    let path = Path::new("fuzz/secret.yaml");
    for (_, data) in corpus("secret_content") {
        for s in parse_secret_content(&data, "fuzz", path) {
            regprobe_fuzz::check_secret(&s);
        }
        regprobe_fuzz::check_secret(&as_secret(
            parse_dockerconfigjson(&data),
            SecretKind::DockerConfigJson,
        ));
        regprobe_fuzz::check_secret(&as_secret(parse_dockercfg(&data), SecretKind::DockerCfg));
        for syntax in [ManifestSyntax::Yaml, ManifestSyntax::Json] {
            match secrets_from_manifest(&data, syntax, "fuzz", path) {
                Ok(found) => found.iter().for_each(regprobe_fuzz::check_secret),
                Err(e) => regprobe_fuzz::check_no_marker(&e.to_string()),
            }
        }
    }
}

#[test]
fn challenge_corpus_parses_line_by_line() {
    use regprobe::probe::challenge::parse_challenges;
    for (p, data) in corpus("challenge") {
        let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
        let all = parse_challenges(lines.iter().copied());
        let mut each = Vec::new();
        for l in &lines {
            let got = parse_challenges([*l]);
            assert!(got.len() <= 1, "{}", p.display());
            each.extend(got);
        }
        each.sort_by_key(|c| c.scheme);
        assert_eq!(all, each, "{}", p.display());
    }
}

#[test]
fn token_body_corpus() {
    use regprobe::probe::token::{parse_token_body, TokenMethod};
    for (_, data) in corpus("token_body") {
        for m in [TokenMethod::Post, TokenMethod::Get] {
            for truncated in [false, true] {
                if let Err(e) = parse_token_body(&data, m, truncated) {
                    regprobe_fuzz::check_no_marker(&e.to_string());
                }
            }
        }
    }
}

#[test]
fn registry_error_corpus() {
    use regprobe::probe::evidence::{excerpt, registry_error, EXCERPT_CHARS};
    for (_, data) in corpus("registry_error") {
        let (code, message) = registry_error(&data);
        for text in code.iter().chain(message.iter()) {
            assert!(
                !text.chars().any(|c| c.is_control()),
                "control character kept"
            );
        }
        assert!(excerpt(&data).chars().count() <= EXCERPT_CHARS + 1);
    }
}

#[test]
fn reference_corpus() {
    for (_, data) in corpus("reference") {
        let s = String::from_utf8_lossy(&data);
        if let Ok(r) = regprobe::reference::parse(&s) {
            // A normalised reference parses to itself.
            let again = regprobe::reference::parse(&r.to_string()).expect("normalised form parses");
            assert_eq!(again.to_string(), r.to_string());
        }
    }
}

#[test]
fn hosts_toml_corpus() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("_default");
    std::fs::create_dir(&dir).unwrap();
    for (_p, data) in corpus("hosts_toml") {
        std::fs::write(dir.join("hosts.toml"), &data).unwrap();
        let r = regprobe::hosts::hosts_for(&[root.path().to_path_buf()], "registry.example.com")
            .expect("a readable dir never errors");
        assert!(
            !r.hosts.is_empty() || !r.warnings.is_empty(),
            "no host and no warning saying why for {}",
            _p.display()
        );
    }
}
