//! `.ci/demo`, the README's first command: it reports its own failures as such (not as "a probe
//! failed"), and the README's sample output is what the demo prints today.

use regprobe_testsupport as support;

use std::path::Path;
use std::process::Command;

fn demo(bin: &Path) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/demo"))
        .env("REGPROBE_BIN", bin)
        .env("NO_COLOR", "1");
    for k in support::cli::PROXY_VARS {
        cmd.env_remove(k);
    }
    cmd.output().expect("run .ci/demo")
}

#[test]
fn demo_names_a_missing_binary_instead_of_a_failed_probe() {
    let out = demo(Path::new("/nonexistent/regprobe"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("demo: no executable at /nonexistent/regprobe"),
        "{stderr}"
    );
    assert!(!stdout.contains("a probe failed"), "{stdout}");
}
