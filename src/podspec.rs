//! Pod specs for `check --pod-spec FILE`: the images a pod pulls and the `imagePullSecrets` it
//! names, read from a Pod or a workload manifest, as kubelet would see them.
//!
//! Accepted: YAML (several documents separated by `---`) or JSON; `kind` `Pod`, `PodTemplate`,
//! `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `ReplicationController`, `Job`,
//! `CronJob`, any other kind whose `spec.template.spec` has `containers` (Argo Rollouts,
//! OpenKruise, ...), and `List` / `…List` of those (`kubectl get pods -o yaml`). Other documents
//! (Services, ConfigMaps, Secrets) are skipped with a warning.
//!
//! Per workload: the images of `containers`, `initContainers` and `ephemeralContainers` (each
//! image once, with the containers that use it), `imagePullSecrets[].name` in order, the
//! namespace and the service account. kubelet pulls every image of the pod with a keyring made
//! of exactly those secrets plus the node's `config.json` (`kuberuntime_image.go` `PullImage`,
//! `MakeDockerKeyring`). A workload template does not show the ServiceAccount's
//! `imagePullSecrets`, which admission adds to the pod when it is created; a Pod read back from
//! the API (`kubectl get pod -o yaml`) shows them.
//!
//! Errors carry positions only: a manifest may hold Secrets, and parser messages can quote input.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The largest pod spec file read: 4 MiB, as for secrets.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One pod (or pod template) and what it pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `kind` of the document: `Pod`, `Deployment`, `CronJob`, ...
    pub kind: String,
    /// `metadata.name` (empty when the manifest has none).
    pub name: String,
    /// `metadata.namespace`, when the manifest names one.
    pub namespace: Option<String>,
    /// `serviceAccountName` of the pod spec, when set.
    pub service_account: Option<String>,
    /// `imagePullSecrets[].name`, in order, without duplicates or empty names.
    pub pull_secrets: Vec<String>,
    /// Each image once, in order of first appearance.
    pub images: Vec<PodImage>,
    /// The file it was read from (`-` for standard input).
    pub source: PathBuf,
}

/// An image of a pod and the containers that run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodImage {
    /// The image as written in the pod spec.
    pub image: String,
    /// The containers using it: `app`, `init container migrate`, `ephemeral container debug`.
    pub containers: Vec<String>,
}

impl Workload {
    /// `Deployment team/web`, `Pod web` (no namespace), `Pod (unnamed)`.
    pub fn title(&self) -> String {
        let name = if self.name.is_empty() {
            "(unnamed)".to_string()
        } else {
            match &self.namespace {
                Some(ns) => format!("{ns}/{}", self.name),
                None => self.name.clone(),
            }
        };
        format!("{} {name}", self.kind)
    }

    /// Whether this is a template (the pod is created from it later) rather than a Pod.
    pub fn is_template(&self) -> bool {
        self.kind != "Pod"
    }

    /// The command that makes kubelet pull again now, as an SRE would type it:
    /// `kubectl -n team rollout restart deployment/web`; for a Pod, deleting it (its controller
    /// recreates it); for a Job its pods, for a CronJob a manual run. (kubelet also retries on
    /// its own, with a back-off of up to 5 minutes, and reads the secret again each time.)
    pub fn roll_command(&self) -> String {
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!("-n {n} "))
            .unwrap_or_default();
        let name = if self.name.is_empty() {
            "NAME"
        } else {
            &self.name
        };
        match self.kind.as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" => format!(
                "kubectl {ns}rollout restart {}/{name}",
                self.kind.to_ascii_lowercase()
            ),
            "CronJob" => format!("kubectl {ns}create job --from=cronjob/{name} {name}-retry"),
            "Job" => format!("kubectl {ns}delete pod -l job-name={name}"),
            "Pod" => format!("kubectl {ns}delete pod {name}"),
            _ => format!("kubectl {ns}delete pod POD"),
        }
    }
}

/// A `--pod-spec` that cannot be used (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum PodSpecError {
    /// The file does not exist.
    #[error("--pod-spec {}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// The file cannot be read.
    #[error("--pod-spec {}: cannot be read: {source}", .path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Over [`MAX_FILE_BYTES`].
    #[error("--pod-spec {}: larger than 4 MiB, not read", .0.display())]
    TooLarge(PathBuf),
    /// Not valid JSON or YAML.
    #[error("--pod-spec {}: invalid {syntax} at line {line}, column {column}", .path.display())]
    Syntax {
        /// The path.
        path: PathBuf,
        /// `JSON` or `YAML`.
        syntax: &'static str,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
    },
    /// A workload document whose pod spec has the wrong shape.
    #[error("--pod-spec {}: {what}", .path.display())]
    Shape {
        /// The path.
        path: PathBuf,
        /// What is wrong, naming the document (never its values).
        what: String,
    },
    /// No Pod or workload in the file.
    #[error("--pod-spec {}: no Pod or workload found (kinds seen: {kinds})", .path.display())]
    NoWorkload {
        /// The path.
        path: PathBuf,
        /// The kinds that were there.
        kinds: String,
    },
    /// `-` was given more than once, or also to `--secret`.
    #[error("--pod-spec -: standard input can be read only once")]
    StdinTwice,
}

/// What a pod spec file gave: workloads, and warnings about documents skipped.
#[derive(Debug, Clone, Default)]
pub struct PodSpecs {
    /// The workloads, in file order.
    pub workloads: Vec<Workload>,
    /// Skipped documents and containers without an image.
    pub warnings: Vec<String>,
}

/// Reads one `--pod-spec` file (`-` reads standard input).
pub fn load(path: &Path) -> Result<PodSpecs, PodSpecError> {
    use std::io::Read;
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|source| PodSpecError::Unreadable {
                path: path.to_path_buf(),
                source,
            })?;
        buf
    } else {
        // Regular files only (`/dev/zero` is an error, not 1 GB), capped, with a timeout.
        match crate::fsread::read_file(path, MAX_FILE_BYTES) {
            Ok(bytes) => bytes.to_vec(),
            Err(e) if e.is_not_found() => return Err(PodSpecError::NotFound(path.to_path_buf())),
            Err(crate::fsread::ReadError::TooLarge { .. }) => {
                return Err(PodSpecError::TooLarge(path.to_path_buf()))
            }
            Err(e) => {
                return Err(PodSpecError::Unreadable {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PodSpecError::TooLarge(path.to_path_buf()));
    }
    parse(&bytes, path)
}

/// Parses pod spec content; `path` names it in errors and in [`Workload::source`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<PodSpecs, PodSpecError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let docs: Vec<Value> = if matches!(first, Some(b'{') | Some(b'[')) {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| PodSpecError::Syntax {
            path: path.to_path_buf(),
            syntax: "JSON",
            line: e.line() as u64,
            column: e.column() as u64,
        })?;
        match v {
            Value::Array(items) => items,
            v => vec![v],
        }
    } else {
        serde_saphyr::from_slice_multiple::<Value>(bytes).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            PodSpecError::Syntax {
                path: path.to_path_buf(),
                syntax: "YAML",
                line,
                column,
            }
        })?
    };
    let mut out = PodSpecs::default();
    let mut kinds = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        visit(
            doc,
            &format!("document {}", i + 1),
            path,
            &mut out,
            &mut kinds,
        )?;
    }
    if out.workloads.is_empty() {
        kinds.dedup();
        return Err(PodSpecError::NoWorkload {
            path: path.to_path_buf(),
            kinds: if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            },
        });
    }
    Ok(out)
}

fn visit(
    doc: &Value,
    at: &str,
    path: &Path,
    out: &mut PodSpecs,
    kinds: &mut Vec<String>,
) -> Result<(), PodSpecError> {
    if doc.is_null() {
        return Ok(());
    }
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    kinds.push(if kind.is_empty() {
        "(no kind)".into()
    } else {
        kind.to_string()
    });
    if kind == "List" || (kind.ends_with("List") && doc.get("items").is_some()) {
        let items = doc.get("items").and_then(Value::as_array);
        for (j, item) in items.into_iter().flatten().enumerate() {
            // Items of a typed list (`PodList`) from the API carry no `kind`.
            let mut item = item.clone();
            if item.get("kind").is_none() && kind != "List" {
                if let Some(obj) = item.as_object_mut() {
                    obj.insert(
                        "kind".into(),
                        Value::String(kind.trim_end_matches("List").to_string()),
                    );
                }
            }
            visit(&item, &format!("{at}, item {}", j + 1), path, out, kinds)?;
        }
        return Ok(());
    }
    let pointer = match kind {
        "Pod" => Some("/spec"),
        "PodTemplate" => Some("/template/spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ if doc
            .pointer("/spec/template/spec/containers")
            .is_some_and(Value::is_array) =>
        {
            Some("/spec/template/spec")
        }
        _ => None,
    };
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(pointer) = pointer else {
        out.warnings.push(format!(
            "--pod-spec {}: {at} ({} {}) is not a Pod or workload: skipped",
            path.display(),
            if kind.is_empty() { "no kind" } else { kind },
            if name.is_empty() { "(unnamed)" } else { &name }
        ));
        return Ok(());
    };
    let shape = |what: String| PodSpecError::Shape {
        path: path.to_path_buf(),
        what: format!("{at} ({kind} {name}): {what}"),
    };
    let Some(spec) = doc.pointer(pointer).filter(|s| s.is_object()) else {
        return Err(shape(format!(
            "no pod spec at {}",
            pointer.trim_start_matches('/').replace('/', ".")
        )));
    };
    let mut w = Workload {
        kind: kind.to_string(),
        name: name.clone(),
        namespace: meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        service_account: spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        pull_secrets: Vec::new(),
        images: Vec::new(),
        source: path.to_path_buf(),
    };
    match spec.get("imagePullSecrets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) => {
            for r in refs {
                let n = r.get("name").and_then(Value::as_str).unwrap_or("");
                if !n.is_empty() && !w.pull_secrets.iter().any(|s| s == n) {
                    w.pull_secrets.push(n.to_string());
                }
            }
        }
        Some(_) => return Err(shape("imagePullSecrets is not a list".into())),
    }
    for (field, label) in [
        ("initContainers", "init container "),
        ("containers", ""),
        ("ephemeralContainers", "ephemeral container "),
    ] {
        let list = match spec.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(l)) => l,
            Some(_) => return Err(shape(format!("{field} is not a list"))),
        };
        for c in list {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
            let container = format!("{label}{cname}");
            match c.get("image").and_then(Value::as_str).map(str::trim) {
                Some(image) if !image.is_empty() => {
                    match w.images.iter_mut().find(|i| i.image == image) {
                        Some(i) => i.containers.push(container),
                        None => w.images.push(PodImage {
                            image: image.to_string(),
                            containers: vec![container],
                        }),
                    }
                }
                _ => out.warnings.push(format!(
                    "--pod-spec {}: {} {}: {container} has no image: skipped",
                    path.display(),
                    w.kind,
                    w.name
                )),
            }
        }
    }
    out.workloads.push(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> PodSpecs {
        parse(text.as_bytes(), Path::new("pod.yaml")).unwrap()
    }

    #[test]
    fn pod_with_every_container_list() {
        let s = p("apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team}
spec:
  serviceAccountName: builder
  imagePullSecrets: [{name: regcred}, {name: other}, {name: regcred}, {name: ''}]
  initContainers:
  - {name: migrate, image: registry.example.com/team/app:1.4}
  containers:
  - {name: app, image: registry.example.com/team/app:1.4}
  - {name: proxy, image: envoyproxy/envoy:v1.30}
  ephemeralContainers:
  - {name: debug, image: busybox}
");
        assert_eq!(s.workloads.len(), 1);
        let w = &s.workloads[0];
        assert_eq!(w.title(), "Pod team/web");
        assert_eq!(w.pull_secrets, vec!["regcred", "other"]);
        assert_eq!(w.service_account.as_deref(), Some("builder"));
        let images: Vec<(&str, Vec<&str>)> = w
            .images
            .iter()
            .map(|i| {
                (
                    i.image.as_str(),
                    i.containers.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            images,
            vec![
                (
                    "registry.example.com/team/app:1.4",
                    vec!["init container migrate", "app"]
                ),
                ("envoyproxy/envoy:v1.30", vec!["proxy"]),
                ("busybox", vec!["ephemeral container debug"]),
            ]
        );
        assert!(!w.is_template());
    }

    #[test]
    fn workloads_lists_and_multiple_documents() {
        let s = p("apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  template:
    spec:
      imagePullSecrets: [{name: regcred}]
      containers: [{name: app, image: r.example/app:1}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: r.example/job:2}]
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: db}
  spec: {template: {spec: {containers: [{name: db, image: r.example/db:3}]}}}
- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata: {name: canary}
  spec: {template: {spec: {containers: [{name: c, image: r.example/c:4}]}}}
---
");
        let titles: Vec<String> = s.workloads.iter().map(Workload::title).collect();
        assert_eq!(
            titles,
            vec![
                "Deployment team/web",
                "CronJob nightly",
                "StatefulSet db",
                "Rollout canary"
            ]
        );
        assert_eq!(s.workloads[0].pull_secrets, vec!["regcred"]);
        assert_eq!(s.workloads[1].images[0].image, "r.example/job:2");
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("Service web"), "{:?}", s.warnings);
        assert_eq!(
            s.workloads[0].roll_command(),
            "kubectl -n team rollout restart deployment/web"
        );
    }

    #[test]
    fn json_pod_list_from_the_api() {
        let s = parse(
            br#"{"apiVersion":"v1","kind":"PodList","items":[
                {"metadata":{"name":"a","namespace":"ns"},"spec":{"containers":[{"name":"x","image":"nginx"}],
                 "imagePullSecrets":[{"name":"hub"}]}}]}"#,
            Path::new("pods.json"),
        )
        .unwrap();
        assert_eq!(s.workloads[0].title(), "Pod ns/a");
        assert_eq!(s.workloads[0].pull_secrets, vec!["hub"]);
        assert_eq!(s.workloads[0].images[0].image, "nginx");
    }

    #[test]
    fn errors_give_positions_and_never_values() {
        let e = parse(b"kind: Pod\nspec: [\n", Path::new("p.yaml")).unwrap_err();
        assert!(
            matches!(e, PodSpecError::Syntax { syntax: "YAML", .. }),
            "{e}"
        );
        let e = parse(
            b"{\"kind\": \"Pod\", \"spec\": hunter2}",
            Path::new("p.json"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("invalid JSON at line 1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = parse(
            b"kind: Pod\nmetadata: {name: x}\nspec: {imagePullSecrets: hunter2, containers: []}\n",
            Path::new("p.yaml"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("imagePullSecrets is not a list"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = parse(
            b"kind: Secret\nmetadata: {name: s}\ndata: {a: b}\n",
            Path::new("s.yaml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("no Pod or workload found (kinds seen: Secret)"),
            "{e}"
        );
        let e = parse(
            b"kind: Deployment\nmetadata: {name: d}\n",
            Path::new("d.yaml"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no pod spec at spec.template.spec"),
            "{e}"
        );
    }

    #[test]
    fn container_without_image_is_a_warning() {
        let s = p("kind: Pod\nmetadata: {name: w}\nspec:\n  containers:\n  - {name: a}\n  - {name: b, image: x/y}\n");
        assert_eq!(s.workloads[0].images.len(), 1);
        assert!(s.warnings[0].contains("a has no image"), "{:?}", s.warnings);
    }
}
