//! Pull secrets built from structure, with the password planted where kubelet reads secrets.
//!
//! `arbitrary` picks the format (`.dockerconfigjson`, `.dockercfg`, a YAML or JSON Secret
//! manifest with `data` or `stringData`, a `List`), the keys (with or without a scheme, some with
//! URL user-info whose password is the marker), field spellings (Go's case folding), value types,
//! duplicate and extra fields, and a corruption (cut the document, break a base64 value).
//! Every secret value (`password`, the password inside `auth`, `identitytoken`, `registrytoken`,
//! a key's user-info password) contains [`MARKER`]; every other string is free of `F`, so the
//! marker can reach the output only from a secret.
//!
//! Oracles: `check_secret`, plus: no error, warning or `Debug` text holds the marker or the
//! base64 text of an `auth` or `data` value.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use regprobe::secrets::load::parse_secret_content;
use regprobe_fuzz::{check_secret, strip_allowed, MARKER};
use serde_json::{json, Map, Value};
use std::path::Path;

#[derive(Arbitrary, Debug)]
enum Format {
    DockerConfigJson,
    DockerCfg,
    YamlData,
    YamlStringData,
    JsonData,
    JsonStringData,
    YamlList,
}

#[derive(Arbitrary, Debug)]
struct Key {
    scheme: u8,
    userinfo: Option<Public>,
    host: Public,
    path: Option<Public>,
}

#[derive(Arbitrary, Debug)]
enum Val {
    Secret { before: Public, after: Public },
    Public(Public),
    Null,
    Number(i32),
    Bool(bool),
    Array,
    Object,
}

#[derive(Arbitrary, Debug)]
struct Field {
    name: u8,
    value: Val,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    key: Key,
    username: Public,
    auth: Option<Auth>,
    fields: Vec<Field>,
    null: bool,
}

#[derive(Arbitrary, Debug)]
struct Auth {
    before: Public,
    after: Public,
    break_at: Option<(u16, u8)>,
    unpadded: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    format: Format,
    entries: Vec<Entry>,
    top: Vec<(u8, Val)>,
    name: Option<Public>,
    cut: Option<u16>,
    break_data: Option<(u16, u8)>,
}

/// A string without `F`: it cannot form the marker.
#[derive(Debug)]
struct Public(String);

impl<'a> Arbitrary<'a> for Public {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s = String::arbitrary(u)?;
        Ok(Public(s.replace('F', "f")))
    }
}

const SCHEMES: [&str; 7] = [
    "",
    "https://",
    "http://",
    "HTTPS://",
    "Http://",
    "docker://",
    "oci://",
];
const ENTRY_FIELDS: [&str; 12] = [
    "username",
    "password",
    "auth",
    "email",
    "identitytoken",
    "registrytoken",
    "USERNAME",
    "Password",
    "uſername",
    "AUTH",
    "IdentityToken",
    "other",
];
const TOP_FIELDS: [&str; 6] = [
    "auths",
    "HttpHeaders",
    "credsStore",
    "credHelpers",
    "Auths",
    "kind",
];

/// Secret material that must never be shown, besides the marker itself.
struct Sink {
    encoded: Vec<String>,
}

fn secret_text(before: &Public, after: &Public) -> String {
    format!("{}{MARKER}{}", before.0, after.0)
}

fn value(v: &Val, secret_field: bool) -> Value {
    match v {
        Val::Secret { before, after } if secret_field => Value::String(secret_text(before, after)),
        // Secret text goes only where kubelet reads secrets.
        Val::Secret { before, after } => Value::String(format!("{}{}", before.0, after.0)),
        // A public string in a secret field would be a password without the marker: make it one.
        Val::Public(p) if secret_field => Value::String(format!("{}{MARKER}", p.0)),
        Val::Public(p) => Value::String(p.0.clone()),
        Val::Null => Value::Null,
        Val::Number(n) => json!(n),
        Val::Bool(b) => json!(b),
        Val::Array => json!([]),
        Val::Object => json!({}),
    }
}

fn break_text(text: &str, at: Option<(u16, u8)>) -> String {
    let Some((pos, byte)) = at else {
        return text.to_string();
    };
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return text.to_string();
    }
    let pos = pos as usize % bytes.len();
    // Another base64 character, or one that is not base64 (no `F`: it must not form the marker).
    const ALPHABET: &[u8] =
        b"ABCDEGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .\n:";
    bytes[pos] = ALPHABET[byte as usize % ALPHABET.len()];
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

/// `secret_userinfo`: whether the user-info's password is the marker. Not when a broken `data`
/// value may mangle the key itself (`oci://` into `oci+//`): what is left is no user-info
/// anywhere, for kubelet or for anyone reading the key.
fn key(k: &Key, secret_userinfo: bool) -> String {
    let scheme = SCHEMES[k.scheme as usize % SCHEMES.len()];
    let password = if secret_userinfo { MARKER } else { "pw" };
    let userinfo = match &k.userinfo {
        Some(user) => format!(
            "{}:{password}@",
            user.0.replace(['@', '/', '?', '#', ':'], "")
        ),
        None => String::new(),
    };
    let path = k
        .path
        .as_ref()
        .map(|p| format!("/{}", p.0))
        .unwrap_or_default();
    format!("{scheme}{userinfo}{}{path}", k.host.0)
}

fn entry(e: &Entry, sink: &mut Sink) -> Value {
    if e.null {
        return Value::Null;
    }
    let mut map = Map::new();
    map.insert("username".into(), Value::String(e.username.0.clone()));
    for f in &e.fields {
        let name = ENTRY_FIELDS[f.name as usize % ENTRY_FIELDS.len()];
        let lower = name.to_lowercase();
        let secret_field = matches!(
            lower.as_str(),
            "password" | "auth" | "identitytoken" | "registrytoken"
        );
        let v = if lower == "auth" {
            // A raw `auth` value is secret material too.
            let text = format!("{}{MARKER}", "x");
            let enc = STANDARD.encode(text);
            sink.encoded.push(enc.clone());
            Value::String(enc)
        } else {
            value(&f.value, secret_field)
        };
        map.insert(name.to_string(), v);
    }
    if let Some(a) = &e.auth {
        let user = e.username.0.replace(':', "");
        let plain = format!("{user}:{}", secret_text(&a.before, &a.after));
        let mut enc = STANDARD.encode(plain);
        if a.unpadded {
            enc = enc.trim_end_matches('=').to_string();
        }
        let enc = break_text(&enc, a.break_at);
        sink.encoded.push(enc.clone());
        map.insert("auth".into(), Value::String(enc));
    }
    Value::Object(map)
}

fn config(input: &Input, sink: &mut Sink, legacy: bool) -> String {
    let mut auths = Map::new();
    let mangled = input.break_data.is_some()
        && matches!(
            input.format,
            Format::YamlData | Format::JsonData | Format::YamlList
        );
    for e in &input.entries {
        auths.insert(key(&e.key, !mangled), entry(e, sink));
    }
    let mut root = if legacy {
        auths
    } else {
        let mut root = Map::new();
        root.insert("auths".into(), Value::Object(auths));
        root
    };
    for (name, v) in &input.top {
        let name = TOP_FIELDS[*name as usize % TOP_FIELDS.len()];
        if name.eq_ignore_ascii_case("auths") && !legacy {
            continue;
        }
        root.insert(name.to_string(), value(v, false));
    }
    serde_json::to_string(&Value::Object(root)).expect("serialises")
}

fn document(input: &Input, sink: &mut Sink) -> String {
    let legacy = matches!(input.format, Format::DockerCfg)
        || matches!(&input.top.first(), Some((n, _)) if n % 7 == 6);
    let cfg = config(input, sink, legacy);
    let (type_, key) = if legacy {
        ("kubernetes.io/dockercfg", ".dockercfg")
    } else {
        ("kubernetes.io/dockerconfigjson", ".dockerconfigjson")
    };
    let name = input
        .name
        .as_ref()
        .map(|n| n.0.clone())
        .unwrap_or_else(|| "regcred".into());
    let data = break_text(&STANDARD.encode(&cfg), input.break_data);
    if matches!(
        input.format,
        Format::YamlData | Format::JsonData | Format::YamlList
    ) {
        sink.encoded.push(data.clone());
    }
    let quoted = |s: &str| serde_json::to_string(s).expect("serialises");
    match input.format {
        Format::DockerConfigJson | Format::DockerCfg => cfg,
        Format::YamlData => format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\ntype: {type_}\ndata:\n  {key}: {data}\n",
            quoted(&name)
        ),
        Format::YamlStringData => format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\ntype: {type_}\nstringData:\n  {key}: {}\n",
            quoted(&name),
            quoted(&cfg)
        ),
        Format::YamlList => format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: {}\n  type: {type_}\n  data:\n    {key}: {data}\n- kind: ConfigMap\n  metadata:\n    name: other\n",
            quoted(&name)
        ),
        Format::JsonData => json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": type_, "data": {key: data},
        })
        .to_string(),
        Format::JsonStringData => json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": type_, "stringData": {key: cfg},
        })
        .to_string(),
    }
}

fuzz_target!(|input: Input| {
    let mut sink = Sink {
        encoded: Vec::new(),
    };
    let mut doc = document(&input, &mut sink);
    if let Some(cut) = input.cut {
        let mut at = cut as usize % (doc.len() + 1);
        while !doc.is_char_boundary(at) {
            at -= 1;
        }
        doc.truncate(at);
    }
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("document: {doc}");
    }
    for s in parse_secret_content(doc.as_bytes(), "fuzz", Path::new("fuzz")) {
        check_secret(&s);
        let mut texts = vec![format!("{s:?}")];
        texts.extend(s.warnings.iter().cloned());
        if let Err(e) = &s.entries {
            texts.push(e.to_string());
        }
        // A broken `auth` can move the user/password split: the user name may then hold part
        // of the password, and a user name is shown by design.
        let users: Vec<&str> = match &s.entries {
            Ok(entries) => entries
                .iter()
                .map(|e| e.credential.username.as_str())
                .collect(),
            Err(_) => Vec::new(),
        };
        for text in &texts {
            let text = strip_allowed(text, &users);
            assert!(!text.contains(MARKER), "planted password shown: {text:?}");
            for enc in sink.encoded.iter().filter(|e| e.len() >= 8) {
                assert!(
                    !text.contains(enc.as_str()),
                    "base64 secret shown: {text:?}"
                );
            }
        }
    }
});
