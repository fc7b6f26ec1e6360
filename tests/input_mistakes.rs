//! The most common input mistakes at a terminal get an answer that says what was found and
//! what is expected, and what is unambiguous is accepted: an empty `--secrets-dir`, one
//! Secret's mount point given as the root, a directory of `kubectl get secret -o yaml` files,
//! a ConfigMap given as `--secret` (exit 2), an empty file, and JSON errors with the real line
//! and column. No registry is needed: the keys point at 127.0.0.1:1, where nothing listens.

use regprobe_testsupport as support;

use std::fs;
use std::path::Path;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str]) -> Run {
    let mut cmd = support::regprobe();
    // Wide enough that no line wraps: these tests read what is said, not its layout.
    cmd.env("COLUMNS", "1000");
    cmd.arg("check")
        .arg("--no-default-paths")
        .args(["--timeout", "2s"])
        .args(args);
    let out = support::output_with_stdin(&mut cmd, None);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const CONFIG: &str = "{\"auths\":{\"127.0.0.1:1\":{\"auth\":\"dXNlcjpwdw==\"}}}\n";

fn manifest(name: &str) -> String {
    use base64::Engine;
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        base64::engine::general_purpose::STANDARD.encode(CONFIG)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn empty_secrets_dir_names_the_layout_expected() {
    let dir = tempfile::tempdir().unwrap();
    let run = check(&["--secrets-dir", p(dir.path())]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "--secrets-dir {0}: is empty; the layout expected is {0}/<name>/.dockerconfigjson",
            dir.path().display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_single_secret_mount_point_is_read_as_that_secret() {
    let root = tempfile::tempdir().unwrap();
    let mount = root.path().join("regcred");
    fs::create_dir(&mount).unwrap();
    fs::write(mount.join(".dockerconfigjson"), CONFIG).unwrap();
    let run = check(&["--secrets-dir", p(&mount)]);
    // Probed (nothing listens on 127.0.0.1:1), not "nothing to check".
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("secret=regcred  user=user"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "holds .dockerconfigjson itself, read as the one secret \"regcred\" (the mount point of a single Secret); the layout expected is {}/<name>/.dockerconfigjson",
            mount.display()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn a_dir_of_kubectl_yaml_files_is_read_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("regcred.yaml"), manifest("regcred")).unwrap();
    fs::write(dir.path().join("other.yml"), manifest("other-creds")).unwrap();
    fs::write(dir.path().join("notes.txt"), "not a secret").unwrap();
    let run = check(&["--secrets-dir", p(dir.path())]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("secret=regcred  user=user"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("secret=other-creds  user=user"),
        "{}",
        run.stdout
    );
    let file = dir.path().join("regcred.yaml");
    assert!(
        run.stdout.contains(&format!(
            "--secrets-dir {0}: a file, read as `--secret {0}` would read it (secret \"regcred\"); the layout expected is {1}/<name>/.dockerconfigjson",
            file.display(),
            dir.path().display()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("notes.txt: skipped, not a directory"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_configmap_given_as_secret_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let cm = dir.path().join("cm.yaml");
    fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
    )
    .unwrap();
    let run = check(&["--secret", p(&cm)]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("manifest kind \"ConfigMap\" is not a Secret"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("recreate"), "{}", run.stderr);
}

#[test]
fn an_empty_file_is_said_once_without_contradiction() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("regcred.json");
    fs::write(&empty, "").unwrap();
    let run = check(&["--secret", p(&empty)]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.matches("empty").count(), 2, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("regcred: kubelet skips it: the file is empty"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("ignores"), "{}", run.stdout);
}

#[test]
fn json_errors_give_the_real_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = dir.path().join("syntax.json");
    fs::write(&syntax, "{\n  \"auths\": {\n    \"x\": {,}\n  }\n}\n").unwrap();
    let cut = dir.path().join("cut.json");
    fs::write(&cut, "{\n  \"auths\": {\n    \"x\": {}\n\n").unwrap();
    // In a manifest, the position counts in the value, and says so.
    let manifest = dir.path().join("rc.yaml");
    fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: rc\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: |\n    {\"auths\": {\n      \"x\": {,}\n    }}\n",
    )
    .unwrap();
    let run = check(&[
        "--secret",
        p(&syntax),
        "--secret",
        p(&cut),
        "--secret",
        p(&manifest),
    ]);
    assert!(
        run.stdout.contains("rc: does not parse: in its .dockerconfigjson value (lines counted in the value, not in the file): invalid JSON at line 2, column 9 (syntax error)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("syntax: does not parse: invalid JSON at line 3, column 11 (syntax error)"),
        "{}",
        run.stdout
    );
    // The end of input is reported at the last character, not at "line 5, column 0".
    assert!(
        run.stdout.contains(
            "cut: does not parse: invalid JSON at line 3, column 11 (unexpected end of input)"
        ),
        "{}",
        run.stdout
    );
}
