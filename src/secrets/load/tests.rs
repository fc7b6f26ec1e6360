//! Unit tests of `load`.

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::ExposeSecret;
use std::os::unix::fs::symlink;

fn config(user: &str) -> String {
    format!(
        r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
        STANDARD.encode(format!("{user}:pw"))
    )
}

fn username(s: &Secret) -> &str {
    &s.entries
        .as_ref()
        .unwrap_or_else(|e| panic!("{}: {e}", s.id))[0]
        .credential
        .username
}

/// kubelet's AtomicWriter for one volume at `dir`: writes `files` (relative paths) into a new
/// `..<ts>` dir, points `..data` at it via `..data_tmp` + rename, links each top-level name
/// through `..data`, and removes the previous timestamped dir.
fn atomic_write(dir: &Path, ts: &str, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    let ts_dir = dir.join(ts);
    for (rel, content) in files {
        let p = ts_dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    let old = fs::read_link(dir.join("..data")).ok();
    symlink(ts, dir.join("..data_tmp")).unwrap();
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (rel, _) in files {
        let top = rel.split('/').next().unwrap();
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), link).unwrap();
        }
    }
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

fn dir_sources(dir: &Path) -> SecretSources {
    SecretSources {
        secrets_dirs: vec![dir.to_path_buf()],
        ..Default::default()
    }
}

#[test]
fn secret_volume_per_name_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    atomic_write(
        &root.join("zeta"),
        "..2026_11_21_09_43_00.000000001",
        &[(".dockerconfigjson", &config("zeta"))],
    );
    atomic_write(
        &root.join("alpha"),
        "..2026_11_21_09_43_00.000000002",
        &[(
            ".dockercfg",
            r#"{"quay.io":{"username":"alpha","password":"pw"}}"#,
        )],
    );
    fs::create_dir(root.join("empty")).unwrap();
    let loaded = load_all_with_warnings(&dir_sources(root)).unwrap();
    let ids: Vec<_> = loaded.secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["alpha", "zeta"]);
    assert_eq!(loaded.secrets[0].kind, SecretKind::DockerCfg);
    assert_eq!(loaded.secrets[0].path, root.join("alpha/.dockercfg"));
    assert_eq!(username(&loaded.secrets[0]), "alpha");
    assert_eq!(loaded.secrets[1].kind, SecretKind::DockerConfigJson);
    assert_eq!(username(&loaded.secrets[1]), "zeta");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("empty") && w.contains("neither")),
        "{:?}",
        loaded.warnings
    );
    // kubelet updates the secret: the next load sees the new content.
    atomic_write(
        &root.join("zeta"),
        "..2026_11_21_10_00_00.000000003",
        &[(".dockerconfigjson", &config("zeta2"))],
    );
    let secrets = load_all(&dir_sources(root)).unwrap();
    assert_eq!(username(&secrets[1]), "zeta2");
}

#[test]
fn projected_volume_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let json = config("one");
    atomic_write(
        root,
        "..2026_11_21_09_43_00.123456789",
        &[
            ("one/.dockerconfigjson", &json),
            ("two/.dockercfg", r#"{"quay.io":{"username":"two"}}"#),
            ("three/other-file", "x"),
        ],
    );
    // A leftover `..data_tmp` from an interrupted update is skipped too.
    symlink("..gone", root.join("..data_tmp")).unwrap();
    let loaded = load_all_with_warnings(&dir_sources(root)).unwrap();
    let ids: Vec<_> = loaded.secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["one", "two"]);
    assert_eq!(username(&loaded.secrets[0]), "one");
    assert_eq!(username(&loaded.secrets[1]), "two");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("three"));
}

#[test]
fn secrets_dir_edge_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Both files: .dockerconfigjson wins, with a warning on the secret.
    fs::create_dir(root.join("both")).unwrap();
    fs::write(root.join("both/.dockerconfigjson"), config("json")).unwrap();
    fs::write(root.join("both/.dockercfg"), "{}").unwrap();
    // A broken secret is a Secret with an error, not a LoadError.
    fs::create_dir(root.join("broken")).unwrap();
    fs::write(root.join("broken/.dockerconfigjson"), "{not json").unwrap();
    // A dangling user-visible symlink: the secret is reported unreadable.
    fs::create_dir(root.join("dangling")).unwrap();
    symlink(
        "..data/.dockerconfigjson",
        root.join("dangling/.dockerconfigjson"),
    )
    .unwrap();
    // A top-level regular file and a file directly in DIR.
    fs::write(root.join("stray.txt"), "{}").unwrap();
    fs::write(root.join(".dockerconfigjson"), "{}").unwrap();
    let loaded = load_all_with_warnings(&dir_sources(root)).unwrap();
    let ids: Vec<_> = loaded.secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["both", "broken", "dangling"]);
    assert_eq!(username(&loaded.secrets[0]), "json");
    assert!(loaded.secrets[0].warnings[0].contains(".dockercfg is ignored"));
    assert!(matches!(
        loaded.secrets[1].entries,
        Err(SecretError::Json { .. })
    ));
    let dangling = loaded.secrets[2].entries.as_ref().unwrap_err();
    assert!(matches!(dangling, SecretError::Io { .. }));
    assert!(
        dangling.to_string().starts_with("cannot read "),
        "{dangling}"
    );
    assert!(loaded.warnings.iter().any(|w| w.contains("stray.txt")));
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("single secret volume")));
}

#[test]
fn explicit_paths_missing_are_load_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let file = tmp.path().join("file.json");
    fs::write(&file, config("u")).unwrap();
    let cases = [
        (
            dir_sources(&missing),
            format!(
                "--secrets-dir {}: no such file or directory",
                missing.display()
            ),
        ),
        (
            dir_sources(&file),
            format!("--secrets-dir {}: not a directory", file.display()),
        ),
        (
            SecretSources {
                secret_files: vec![missing.clone()],
                ..Default::default()
            },
            format!("--secret {}: no such file or directory", missing.display()),
        ),
        (
            SecretSources {
                secret_files: vec![tmp.path().to_path_buf()],
                ..Default::default()
            },
            format!(
                "--secret {}: is a directory, expected a file",
                tmp.path().display()
            ),
        ),
        (
            SecretSources {
                node_config: Some(missing.clone()),
                ..Default::default()
            },
            format!(
                "--node-config {}: no such file or directory",
                missing.display()
            ),
        ),
        (
            SecretSources {
                secret_files: vec!["-".into(), "-".into()],
                ..Default::default()
            },
            "--secret -: standard input can be read only once".to_string(),
        ),
    ];
    for (sources, want) in cases {
        if sources.secret_files.len() == 2 {
            // Reading stdin in a test would block on a terminal; check the error type only.
            let e = LoadError::StdinTwice;
            assert_eq!(e.to_string(), want);
            continue;
        }
        assert_eq!(load_all(&sources).unwrap_err().to_string(), want);
    }
}

#[test]
fn secret_file_formats_and_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("regcred");
    fs::create_dir(&dir).unwrap();
    let dotfile = dir.join(".dockerconfigjson");
    fs::write(&dotfile, config("dot")).unwrap();
    let legacy = tmp.path().join("old.dockercfg");
    fs::write(&legacy, r#"{"quay.io":{"username":"legacy"}}"#).unwrap();
    let manifest = tmp.path().join("pull-secrets.yaml");
    fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: List\nitems:\n- kind: Secret\n  metadata:\n    name: m1\n  \
                 type: kubernetes.io/dockerconfigjson\n  data:\n    .dockerconfigjson: {}\n",
            STANDARD.encode(config("m1"))
        ),
    )
    .unwrap();
    let sources = SecretSources {
        secret_files: vec![dotfile.clone(), legacy.clone(), manifest.clone()],
        ..Default::default()
    };
    let secrets = load_all(&sources).unwrap();
    let got: Vec<_> = secrets.iter().map(|s| (s.id.as_str(), s.kind)).collect();
    assert_eq!(
        got,
        [
            ("regcred", SecretKind::DockerConfigJson),
            ("old", SecretKind::DockerCfg),
            ("m1", SecretKind::DockerConfigJson)
        ]
    );
    assert_eq!(username(&secrets[0]), "dot");
    assert_eq!(username(&secrets[1]), "legacy");
    assert_eq!(username(&secrets[2]), "m1");
    assert_eq!(secrets[2].path, manifest);
}

#[test]
fn file_ids() {
    assert_eq!(file_id(Path::new("/x/regcred.json")), "regcred");
    assert_eq!(file_id(Path::new("config.json")), "config");
    assert_eq!(file_id(Path::new("a.b.yaml")), "a.b");
    assert_eq!(
        file_id(Path::new("/mnt/regcred/.dockerconfigjson")),
        "regcred"
    );
    assert_eq!(
        file_id(Path::new("/mnt/regcred/..data/.dockerconfigjson")),
        "regcred"
    );
    assert_eq!(file_id(Path::new(".dockerconfigjson")), "dockerconfigjson");
    assert_eq!(file_id(Path::new(".dockercfg")), "dockercfg");
    assert_eq!(file_id(Path::new("/.dockercfg")), "dockercfg");
}

#[test]
fn content_detection() {
    let p = Path::new("-");
    let one = |text: &str| {
        let mut v = parse_secret_content(text.as_bytes(), "stdin", p);
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    };
    // `auths` matched as Go matches it.
    let s = one(r#"{"Auths":{"r.io":{"username":"u"}}}"#);
    assert_eq!(
        (s.id.as_str(), s.kind),
        ("stdin", SecretKind::DockerConfigJson)
    );
    let s = one(r#"{"r.io":{"username":"u"}}"#);
    assert_eq!(s.kind, SecretKind::DockerCfg);
    // Manifest from stdin: id from metadata.name.
    let s = one(&format!(
        r#"{{"kind":"Secret","metadata":{{"name":"from-json"}},"type":"kubernetes.io/dockerconfigjson","stringData":{{".dockerconfigjson":{}}}}}"#,
        serde_json::to_string(&config("j")).unwrap()
    ));
    assert_eq!(s.id, "from-json");
    assert_eq!(username(&s), "j");
    let s = one(&format!(
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{}'\n",
            config("y")
        ));
    assert_eq!(s.id, "stdin");
    assert_eq!(username(&s), "y");
    // Not JSON, not a manifest: the JSON error.
    let s = one("hello: world\n");
    assert!(matches!(s.entries, Err(SecretError::Json { .. })));
    let s = one("---\nkind: Secret\ndata: [\n");
    assert!(matches!(s.entries, Err(SecretError::ManifestYaml { .. })));
    let s = one("[1]");
    assert_eq!(
        s.entries.unwrap_err().to_string(),
        "the top level is an array, not a JSON object"
    );
    let s = one("");
    assert!(matches!(s.entries, Err(SecretError::Empty)));
    assert!(parse_secret_content(b"kind: List\nitems: []\n", "f", p).is_empty());
}

#[test]
fn node_config() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}},"credsStore":"ecr-login","credHelpers":{{}}}}"#,
                STANDARD.encode("hub:pw")
            ),
        )
        .unwrap();
    let sources = SecretSources {
        node_config: Some(path.clone()),
        ..Default::default()
    };
    let secrets = load_all(&sources).unwrap();
    let node = &secrets[0];
    assert_eq!(
        (node.id.as_str(), node.kind),
        ("node", SecretKind::NodeConfig)
    );
    let entries = node.entries.as_ref().unwrap();
    assert_eq!(entries[0].registry, "docker.io");
    assert_eq!(entries[0].credential.password.expose_secret(), "pw");
    assert_eq!(node.warnings.len(), 2);
    // Only `auths` counts: a credsStore-only config.json gives kubelet nothing.
    fs::write(&path, r#"{"credsStore":"desktop"}"#).unwrap();
    let node = load_node_config(&path).unwrap();
    assert!(matches!(node.entries, Err(SecretError::NoAuths)));
    // Legacy `.dockercfg` as node keyring.
    let legacy = tmp.path().join(".dockercfg");
    fs::write(&legacy, r#"{"quay.io":{"username":"q"}}"#).unwrap();
    assert_eq!(username(&load_node_config(&legacy).unwrap()), "q");
}

#[test]
fn too_large_files() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.json");
    let f = fs::File::create(&big).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let secrets = load_all(&SecretSources {
        secret_files: vec![big.clone()],
        node_config: Some(big.clone()),
        ..Default::default()
    })
    .unwrap();
    for s in &secrets {
        let e = s.entries.as_ref().unwrap_err();
        assert!(matches!(e, SecretError::TooLarge { limit } if *limit == MAX_FILE_BYTES));
        assert_eq!(
            e.to_string(),
            "file is larger than 4194304 bytes (4 MiB), not read"
        );
    }
    // Exactly the limit is read; a stream over the limit is refused.
    let exact = vec![b' '; MAX_FILE_BYTES as usize];
    assert_eq!(read_limited(&exact[..], 0).ok().unwrap().len(), exact.len());
    let over = vec![b' '; MAX_FILE_BYTES as usize + 1];
    assert!(matches!(
        read_limited(&over[..], 0),
        Err(ReadFail::TooLarge)
    ));
}

#[test]
fn duplicate_ids_warn() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a/regcred.json");
    let b = tmp.path().join("b/regcred.json");
    for p in [&a, &b] {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, config("u")).unwrap();
    }
    let loaded = load_all_with_warnings(&SecretSources {
        secret_files: vec![a, b],
        ..Default::default()
    })
    .unwrap();
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("\"regcred\" is used by 2 inputs")));
}
