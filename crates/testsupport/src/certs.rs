//! A test PKI made with rcgen: a CA, leaves it signs (good, expired, not yet valid, wrong
//! name), and a leaf from another CA that nobody trusts. PEM files live in a temp dir.
//!
//! ```ignore
//! let pki = TestPki::new();
//! let good = pki.leaf(&["registry.test", "127.0.0.1"]);      // names parse as IP SANs if they are IPs
//! let reg = Registry::start(RegistryOptions::default().with_tls(&good));
//! // trust: pki.ca_cert() (a PEM file), pki.ca_pem(), or pki.cert_dir() (certs.d style: ca.crt)
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

const DAY: Duration = Duration::from_secs(86_400);

/// A certificate and its private key, as PEM text and as files.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// PEM certificate file (for a leaf: the leaf only, no chain).
    pub cert: PathBuf,
    /// PEM PKCS#8 private key file.
    pub key: PathBuf,
    /// The certificate as PEM text (the contents of `cert`).
    pub cert_pem: String,
    /// The private key as PEM text (the contents of `key`).
    pub key_pem: String,
}

/// A test CA with a temp dir for its files. Dropping it removes the files.
pub struct TestPki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_cert: PathBuf,
    cert_dir: PathBuf,
    other_ca: CertifiedIssuer<'static, KeyPair>,
    counter: AtomicU32,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "regprobe tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (SystemTime::now() - 2 * DAY).into();
    params.not_after = (SystemTime::now() + 3650 * DAY).into();
    params
}

fn leaf_params(names: &[&str], not_before: SystemTime, not_after: SystemTime) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("valid SAN names");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params
}

impl TestPki {
    /// A fresh CA ("regprobe test CA") plus an unrelated CA for [`TestPki::unknown_ca_leaf`].
    pub fn new() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("regprobe-pki-")
            .tempdir()
            .expect("temp dir");
        let ca = CertifiedIssuer::self_signed(
            ca_params("regprobe test CA"),
            KeyPair::generate().unwrap(),
        )
        .expect("self-sign CA");
        let other_ca = CertifiedIssuer::self_signed(
            ca_params("regprobe unknown CA"),
            KeyPair::generate().unwrap(),
        )
        .expect("self-sign other CA");
        let ca_cert = dir.path().join("ca.pem");
        std::fs::write(&ca_cert, ca.pem()).unwrap();
        let cert_dir = dir.path().join("certs.d");
        std::fs::create_dir(&cert_dir).unwrap();
        std::fs::write(cert_dir.join("ca.crt"), ca.pem()).unwrap();
        TestPki {
            dir,
            ca,
            ca_cert,
            cert_dir,
            other_ca,
            counter: AtomicU32::new(0),
        }
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate as a PEM file.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// A directory holding only `ca.crt` (the CA): a Docker `certs.d/<host>` folder, and what
    /// `skopeo --cert-dir` expects.
    pub fn cert_dir(&self) -> &Path {
        &self.cert_dir
    }

    fn write(&self, stem: &str, cert: rcgen::Certificate, key: KeyPair) -> CertPair {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let cert_path = self.dir.path().join(format!("{n:02}-{stem}.crt"));
        let key_path = self.dir.path().join(format!("{n:02}-{stem}.key"));
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        std::fs::write(&cert_path, &cert_pem).unwrap();
        std::fs::write(&key_path, &key_pem).unwrap();
        CertPair {
            cert: cert_path,
            key: key_path,
            cert_pem,
            key_pem,
        }
    }

    fn issue(
        &self,
        stem: &str,
        issuer: &CertifiedIssuer<'static, KeyPair>,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> CertPair {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, not_before, not_after)
            .signed_by(&key, issuer)
            .expect("sign leaf");
        self.write(stem, cert, key)
    }

    /// A valid leaf (yesterday .. in a year) for `names`, signed by the CA. A name that parses
    /// as an IP address becomes an IP SAN (use `"127.0.0.1"` for clients that dial the IP).
    pub fn leaf(&self, names: &[&str]) -> CertPair {
        let now = SystemTime::now();
        self.issue("leaf", &self.ca, names, now - DAY, now + 365 * DAY)
    }

    /// A leaf signed by the CA that expired yesterday (valid from 60 days ago until 1 day ago).
    pub fn expired_leaf(&self, names: &[&str]) -> CertPair {
        let now = SystemTime::now();
        self.issue("expired", &self.ca, names, now - 60 * DAY, now - DAY)
    }

    /// A valid leaf signed by the CA for `wrong.test` and IP `127.0.0.99` only: the wrong name
    /// for anything else, whether the client dials a name or an IP (Go then says
    /// `x509: certificate is valid for wrong.test, not registry.test` / `... 127.0.0.99, not
    /// 127.0.0.1`).
    pub fn wrong_name_leaf(&self) -> CertPair {
        let now = SystemTime::now();
        self.issue(
            "wrongname",
            &self.ca,
            &["wrong.test", "127.0.0.99"],
            now - DAY,
            now + 365 * DAY,
        )
    }

    /// A valid leaf for `names` signed by another CA that nobody trusts.
    pub fn unknown_ca_leaf(&self, names: &[&str]) -> CertPair {
        let now = SystemTime::now();
        self.issue(
            "unknownca",
            &self.other_ca,
            names,
            now - DAY,
            now + 365 * DAY,
        )
    }

    /// A client certificate (EKU clientAuth, CN `cn`, no SAN) signed by the CA, for registries
    /// started with `RegistryOptions::with_client_ca(pki.ca_cert())`.
    pub fn client_leaf(&self, cn: &str) -> CertPair {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let mut params = leaf_params(&[], now - DAY, now + 365 * DAY);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).expect("sign client cert");
        self.write("client", cert, key)
    }

    /// A Docker/containerd `certs.d/<host>` style dir: `ca.crt` (this CA) and, if given,
    /// `client.cert` + `client.key`. Created under this PKI's temp dir as `name`.
    pub fn certs_d(&self, name: &str, client: Option<&CertPair>) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), self.ca.pem()).unwrap();
        if let Some(c) = client {
            std::fs::write(dir.join("client.cert"), &c.cert_pem).unwrap();
            std::fs::write(dir.join("client.key"), &c.key_pem).unwrap();
        }
        dir
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
