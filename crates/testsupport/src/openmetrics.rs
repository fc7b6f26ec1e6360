//! The OpenMetrics reference parser (Python `prometheus_client.openmetrics.parser`, installed
//! by `.ci/install-deps`), run in a subprocess: integration tests parse `/metrics` with it
//! rather than with string matching.

use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "help": fam.documentation,
                    "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// Parses an OpenMetrics exposition; returns one JSON object per sample
/// (`family`, `type`, `help`, `name`, `labels`, `value`). Panics when the text is not valid
/// OpenMetrics or the parser is not installed (never skips).
pub fn parse(text: &str) -> Vec<serde_json::Value> {
    let python = std::env::var("REGPROBE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics reference parser failed (is prometheus-client installed? run .ci/install-deps):\n{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output is JSON")
}
