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

/// Ports, times and temporary paths vary from run to run; line breaks and column padding
/// follow from their widths. Both sides become one line of single-spaced text with those
/// replaced.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let mut w = String::new();
        // 127.0.0.1:PORT and /tmp/tmp.XXXXXX, word by word, then durations.
        let mut rest = word.to_string();
        while let Some(i) = rest.find("127.0.0.1:") {
            w.push_str(&rest[..i + 10]);
            let tail = &rest[i + 10..];
            let digits = tail.chars().take_while(char::is_ascii_digit).count();
            w.push_str(if digits > 0 { "PORT" } else { "" });
            rest = tail[digits..].to_string();
        }
        w.push_str(&rest);
        while let Some(i) = w.find("/tmp/tmp.") {
            let tail = &w[i + 9..];
            let n = tail.chars().take_while(char::is_ascii_alphanumeric).count();
            w = format!("{}/TMP{}", &w[..i], &tail[n..]);
        }
        let is_duration = |s: &str| {
            let num = s.trim_end_matches("ms").trim_end_matches('s');
            num != s && !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        };
        if is_duration(&w) {
            w = "T".to_string();
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&w);
    }
    out
}

#[test]
fn readme_sample_matches_a_real_demo_run() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let marker = "<!-- demo-output: checked by tests/demo.rs -->\n```text\n";
    let start = readme
        .find(marker)
        .expect("the README's demo sample marker")
        + marker.len();
    let sample = &readme[start..start + readme[start..].find("\n```").unwrap()];

    let out = demo(&support::regprobe_bin());
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the demo failed: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = normalise(&printed);
    // Chunks between `…` lines appear in the demo's output, in order.
    let mut from = 0;
    for chunk in sample.split("\n…\n").map(normalise) {
        match printed[from..].find(&chunk) {
            Some(i) => from += i + chunk.len(),
            None => panic!(
                "the README's sample is not what the demo prints now.\nREADME chunk:\n{chunk}\n\ndemo output (normalised) from there:\n{}",
                &printed[from..]
            ),
        }
    }
}
