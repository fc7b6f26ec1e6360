//! rustls client configuration for one registry host, equal in effect to the `tls.Config`
//! containerd builds for it.
//!
//! containerd (`core/remotes/docker/config/hosts.go`, `ConfigureHosts` / `tlsConfigFromHost`):
//! a host without TLS settings uses Go's defaults (system roots, TLS 1.2–1.3); with settings,
//! `skip_verify` sets `InsecureSkipVerify`, each `ca` file is appended to
//! `x509.SystemCertPool()` (a file without any certificate is an error), and each client pair is
//! loaded with `tls.X509KeyPair` (key from the certificate file when no key file is given). Go's
//! transport with a custom `TLSClientConfig` speaks HTTP/1.1 only, so ALPN offers `http/1.1` only
//! (`docs/containerd-kubelet.md` §6.5).
//!
//! containerd builds the TLS configuration of *every* host up front, and one unreadable file makes
//! the whole pull fail before any request. Callers that want the same verdict build the
//! configurations of all hosts of a namespace first and report the first [`TlsConfigError`].

use crate::hosts::RegistryHost;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The node's CA bundle: Go's `x509.SystemCertPool()` as far as `rustls-native-certs` finds it
/// (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured, else the OpenSSL locations). Loaded once per caller;
/// nothing is cached globally.
///
/// The certificates are parsed once into one [`RootCertStore`] that every configuration of a host
/// without CA files of its own shares (`Arc`), instead of a copy per configuration (issue #16:
/// a copy of a Debian bundle is about 0.2 MB of heap); the DER is not kept.
#[derive(Debug, Clone)]
pub struct NodeRoots {
    store: Arc<RootCertStore>,
    count: usize,
    warnings: Vec<String>,
}

impl Default for NodeRoots {
    fn default() -> Self {
        NodeRoots::from_certificates(Vec::new())
    }
}

impl NodeRoots {
    /// Load the node bundle. Unreadable files or bad PEM are collected as warnings; never panics.
    pub fn load() -> NodeRoots {
        let result = rustls_native_certs::load_native_certs();
        let mut warnings: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
        if result.certs.is_empty() {
            warnings.push(
                "no CA certificate found in the node bundle: only certs.d/hosts.toml CAs can \
                 verify registries"
                    .to_string(),
            );
        }
        NodeRoots {
            warnings,
            ..NodeRoots::from_certificates(result.certs)
        }
    }

    /// A bundle made of the given certificates (tests, or a bundle read elsewhere).
    pub fn from_certificates(certs: Vec<CertificateDer<'static>>) -> NodeRoots {
        let count = certs.len();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(certs);
        NodeRoots {
            store: Arc::new(store),
            count,
            warnings: Vec::new(),
        }
    }

    /// Number of certificates in the bundle (as found; any that do not parse as a trust anchor
    /// are not in [`NodeRoots::store`]).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the bundle is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The parsed trust anchors, shared.
    pub fn store(&self) -> &Arc<RootCertStore> {
        &self.store
    }

    /// Problems met while loading (unreadable files, bad PEM, empty bundle).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A host's TLS files cannot be used; containerd fails the pull with the matching error
/// (`hosts.go`: "unable to read CA cert", "unable to load CA cert", "unable to read CERT file",
/// "failed to load X509 key pair").
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A `ca` / `*.crt` file cannot be read.
    #[error("unable to read CA cert {}: {source}", path.display())]
    ReadCa {
        /// The CA file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A CA file holds no usable certificate (Go: `AppendCertsFromPEM` returned false).
    #[error("unable to load CA cert {}: {detail}", path.display())]
    InvalidCa {
        /// The CA file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A client certificate or key file cannot be read.
    #[error("unable to read CERT file {}: {source}", path.display())]
    ReadClient {
        /// The certificate or key file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A client pair is not a usable certificate chain + matching private key.
    #[error("failed to load X509 key pair {}{}: {detail}", cert.display(), key.as_ref().map(|k| format!(" / {}", k.display())).unwrap_or_default())]
    InvalidClientPair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file, `None` when the key is expected in the certificate file.
        key: Option<PathBuf>,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Build the rustls client configuration containerd's transport would use for `host`, and a short
/// description of what verifies the server (`"verified by: node bundle + /…/ca.crt"` or
/// `"skip_verify"`).
///
/// * `ring` provider, TLS 1.2 and 1.3 (Go's client defaults), ALPN `http/1.1` only;
/// * roots: the node bundle plus every `ca_files` entry (all are read, even with `skip_verify`,
///   as containerd reads them);
/// * `skip_verify`: any server certificate and name is accepted (Go `InsecureSkipVerify`); the
///   handshake signatures are still checked with the provider's algorithms, as Go does;
/// * client pairs: offered like Go's `getClientCertificate`: the first pair whose issuer is among
///   the CAs the server names (any pair if it names none) and whose key can sign with one of the
///   server's schemes; none fits → no certificate is sent.
pub fn client_config(
    host: &RegistryHost,
    roots: &NodeRoots,
) -> Result<(Arc<ClientConfig>, String), TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    // The node bundle is shared; a host with CA files of its own gets a copy with them added.
    let store = if host.ca_files.is_empty() {
        Arc::clone(roots.store())
    } else {
        let mut store = RootCertStore::clone(roots.store());
        for path in &host.ca_files {
            add_ca_file(&mut store, path)?;
        }
        Arc::new(store)
    };
    let pairs = host
        .client_pairs
        .iter()
        .map(|(cert, key)| load_pair(cert, key.as_deref(), &provider))
        .collect::<Result<Vec<_>, _>>()?;

    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let (builder, description) = if host.skip_verify {
        let verifier = AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        };
        (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier)),
            "skip_verify".to_string(),
        )
    } else {
        let mut description = "verified by: node bundle".to_string();
        for path in &host.ca_files {
            description.push_str(" + ");
            description.push_str(&path.display().to_string());
        }
        (builder.with_root_certificates(store), description)
    };
    let mut config = if pairs.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(ClientPairs { pairs }))
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), description))
}

/// Go `CertPool.AppendCertsFromPEM` on one file: PEM `CERTIFICATE` blocks are taken, anything
/// else is skipped; no usable certificate at all is an error.
fn add_ca_file(store: &mut RootCertStore, path: &Path) -> Result<(), TlsConfigError> {
    let data = crate::fsread::read_file(path, crate::fsread::MAX_PEM_BYTES).map_err(|e| {
        TlsConfigError::ReadCa {
            path: path.to_path_buf(),
            source: e.into(),
        }
    })?;
    let (certs, pem_error) = pem_certificates(&data);
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        let detail = match pem_error {
            Some(e) => format!("no usable PEM certificate ({e})"),
            None => "no usable PEM certificate".to_string(),
        };
        return Err(TlsConfigError::InvalidCa {
            path: path.to_path_buf(),
            detail,
        });
    }
    Ok(())
}

/// Every PEM `CERTIFICATE` block up to the first malformed section (reported separately).
fn pem_certificates(data: &[u8]) -> (Vec<CertificateDer<'static>>, Option<String>) {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(data) {
        match item {
            Ok(cert) => certs.push(cert),
            Err(e) => return (certs, Some(e.to_string())),
        }
    }
    (certs, None)
}

/// A client pair as Go's `tls.X509KeyPair` loads it, plus the raw issuer names of its chain for
/// matching the server's acceptable-CA list.
#[derive(Debug)]
struct ClientPair {
    key: Arc<CertifiedKey>,
    issuers: Vec<Vec<u8>>,
}

fn load_pair(
    cert_path: &Path,
    key_path: Option<&Path>,
    provider: &CryptoProvider,
) -> Result<ClientPair, TlsConfigError> {
    let invalid = |detail: String| TlsConfigError::InvalidClientPair {
        cert: cert_path.to_path_buf(),
        key: key_path.map(Path::to_path_buf),
        detail,
    };
    let read = |path: &Path| {
        crate::fsread::read_file(path, crate::fsread::MAX_PEM_BYTES).map_err(|e| {
            TlsConfigError::ReadClient {
                path: path.to_path_buf(),
                source: e.into(),
            }
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = match key_path {
        Some(path) => read(path)?,
        None => cert_pem.clone(),
    };
    let (chain, pem_error) = pem_certificates(&cert_pem);
    if chain.is_empty() {
        return Err(invalid(match pem_error {
            Some(e) => format!("no certificate PEM block ({e})"),
            None => "no certificate PEM block".to_string(),
        }));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(format!("no usable private key PEM block ({e})")))?;
    let issuers = chain
        .iter()
        .filter_map(|der| {
            x509_parser::parse_x509_certificate(der)
                .ok()
                .map(|(_, cert)| cert.issuer().as_raw().to_vec())
        })
        .collect();
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| invalid(format!("private key does not fit the certificate: {e}")))?;
    Ok(ClientPair {
        key: Arc::new(key),
        issuers,
    })
}

/// Go `getClientCertificate` over `Config.Certificates`.
#[derive(Debug)]
struct ClientPairs {
    pairs: Vec<ClientPair>,
}

impl ResolvesClientCert for ClientPairs {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.pairs
            .iter()
            .find(|pair| {
                pair.key.key.choose_scheme(sigschemes).is_some()
                    && (root_hint_subjects.is_empty()
                        || pair.issuers.iter().any(|issuer| {
                            root_hint_subjects.iter().any(|hint| {
                                *hint == issuer.as_slice() || is_inner_name(hint, issuer)
                            })
                        }))
            })
            .map(|pair| pair.key.clone())
    }

    fn has_certs(&self) -> bool {
        !self.pairs.is_empty()
    }
}

/// Whether `hint` is `name` (a DER `SEQUENCE`) without its outer tag and length, the form some
/// stacks put in `certificate_authorities`.
fn is_inner_name(hint: &[u8], name: &[u8]) -> bool {
    name.len() > hint.len() && name.ends_with(hint) && name.first() == Some(&0x30)
}

/// containerd's `skip_verify` (Go `InsecureSkipVerify`): any certificate chain and host name.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::{Capabilities, Scheme};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConnection, ServerConfig, ServerConnection};
    use tempfile::TempDir;

    struct Ca {
        pem: String,
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf signed by `ca`: (certificate PEM, key PEM, chain, key DER).
    fn leaf(
        ca: &Ca,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> (
        String,
        String,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (
            cert.pem(),
            key.serialize_pem(),
            vec![cert.der().clone()],
            der,
        )
    }

    fn host(ca_files: Vec<PathBuf>, skip_verify: bool) -> RegistryHost {
        RegistryHost {
            scheme: Scheme::Https,
            host: "registry.test".into(),
            path: "/v2".into(),
            capabilities: Capabilities::ALL,
            skip_verify,
            ca_files,
            client_pairs: Vec::new(),
            headers: Vec::new(),
            dial_timeout: None,
            is_mirror: false,
            http_fallback: false,
        }
    }

    fn server_config(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<&Ca>,
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Run a handshake in memory; returns the ALPN protocol the client ended up with.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut c = ClientConnection::new(client, name)?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..16 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(c.alpn_protocol().map(<[u8]>::to_vec));
            }
        }
        panic!("handshake did not finish");
    }

    fn write(dir: &TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn ca_file_is_trusted_on_top_of_the_node_bundle() {
        let dir = TempDir::new().unwrap();
        let ca = ca("test CA");
        let ca_path = write(&dir, "ca.crt", &format!("junk before\n{}", ca.pem));
        let (_, _, chain, key) = leaf(&ca, "registry.test", ExtendedKeyUsagePurpose::ServerAuth);
        let server = server_config(chain, key, None);
        let roots = NodeRoots::from_certificates(Vec::new());

        let (config, described) =
            client_config(&host(vec![ca_path.clone()], false), &roots).unwrap();
        assert_eq!(
            described,
            format!("verified by: node bundle + {}", ca_path.display())
        );
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let alpn = handshake(config.clone(), server.clone(), "registry.test").unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        // Name checks still apply.
        let err = handshake(config, server.clone(), "other.test").unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );

        // Without the CA file: unknown issuer.
        let (config, described) = client_config(&host(Vec::new(), false), &roots).unwrap();
        assert_eq!(described, "verified by: node bundle");
        let err = handshake(config, server.clone(), "registry.test").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );

        // The same CA in the node bundle works too.
        let roots = NodeRoots::from_certificates(vec![ca.der.clone()]);
        let (config, _) = client_config(&host(Vec::new(), false), &roots).unwrap();
        handshake(config, server, "registry.test").unwrap();
    }

    /// The daemon keeps built configurations across reloads; a CA file replaced (kubelet's
    /// atomic swap: a new inode) rebuilds its entry, an unchanged one does not.
    #[test]
    fn tls_cache_survives_reloads_until_a_ca_file_changes() {
        let dir = TempDir::new().unwrap();
        let path = write(&dir, "ca.crt", &ca("first CA").pem);
        let configs = crate::probe::exchange::TlsConfigs::new(NodeRoots::default());
        let h = host(vec![path.clone()], false);
        let (a, _) = configs.get(&h).unwrap();
        let (b, _) = configs.get(&h).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "an unchanged CA file was rebuilt");
        let next = write(&dir, "ca.crt.new", &ca("second CA").pem);
        std::fs::rename(&next, &path).unwrap();
        let (c, _) = configs.get(&h).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a changed CA file was not picked up");
        let (d, _) = configs.get(&h).unwrap();
        assert!(Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn missing_ca_file_is_an_error_naming_the_path() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("certs.d/reg/ca.crt");
        let err =
            client_config(&host(vec![missing.clone()], false), &NodeRoots::default()).unwrap_err();
        assert!(matches!(err, TlsConfigError::ReadCa { ref path, .. } if *path == missing));
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        // containerd reads the CA files even with skip_verify.
        let err = client_config(&host(vec![missing], true), &NodeRoots::default()).unwrap_err();
        assert!(matches!(err, TlsConfigError::ReadCa { .. }));
    }

    #[test]
    fn garbage_ca_file_is_an_error_naming_the_path() {
        let dir = TempDir::new().unwrap();
        let garbage = write(&dir, "garbage.crt", "this is not a certificate\n");
        let key_only = write(
            &dir,
            "key.crt",
            &KeyPair::generate().unwrap().serialize_pem(),
        );
        let broken = write(
            &dir,
            "broken.crt",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        for path in [garbage, key_only, broken] {
            let err =
                client_config(&host(vec![path.clone()], false), &NodeRoots::default()).unwrap_err();
            assert!(
                matches!(err, TlsConfigError::InvalidCa { path: ref p, .. } if *p == path),
                "{err:?}"
            );
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn client_pair_is_presented_to_a_server_that_asks() {
        let dir = TempDir::new().unwrap();
        let server_ca = ca("server CA");
        let client_ca = ca("client CA");
        let ca_path = write(&dir, "ca.crt", &server_ca.pem);
        let (_, _, chain, key) = leaf(
            &server_ca,
            "registry.test",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let server = server_config(chain, key, Some(&client_ca));
        let (cert_pem, key_pem, _, _) =
            leaf(&client_ca, "node", ExtendedKeyUsagePurpose::ClientAuth);
        let cert_path = write(&dir, "client.cert", &cert_pem);
        let key_path = write(&dir, "client.key", &key_pem);
        let both_path = write(&dir, "both.pem", &format!("{cert_pem}{key_pem}"));
        let roots = NodeRoots::default();

        for pair in [
            (cert_path.clone(), Some(key_path.clone())),
            (both_path.clone(), None),
        ] {
            let mut h = host(vec![ca_path.clone()], false);
            h.client_pairs = vec![pair];
            let (config, _) = client_config(&h, &roots).unwrap();
            handshake(config, server.clone(), "registry.test").unwrap();
        }

        // No pair: the server refuses the handshake.
        let (config, _) = client_config(&host(vec![ca_path.clone()], false), &roots).unwrap();
        assert!(handshake(config, server.clone(), "registry.test").is_err());

        // A pair from another CA is not offered (Go getClientCertificate): refused as well.
        let (other_cert, other_key, _, _) =
            leaf(&ca("other CA"), "node", ExtendedKeyUsagePurpose::ClientAuth);
        let mut h = host(vec![ca_path], false);
        h.client_pairs = vec![(
            write(&dir, "other.cert", &other_cert),
            Some(write(&dir, "other.key", &other_key)),
        )];
        let (config, _) = client_config(&h, &roots).unwrap();
        assert!(handshake(config, server, "registry.test").is_err());
    }

    #[test]
    fn bad_client_pairs_are_errors_naming_the_paths() {
        let dir = TempDir::new().unwrap();
        let client_ca = ca("client CA");
        let (cert_pem, _, _, _) = leaf(&client_ca, "node", ExtendedKeyUsagePurpose::ClientAuth);
        let cert_path = write(&dir, "client.cert", &cert_pem);
        let other_key = write(
            &dir,
            "other.key",
            &KeyPair::generate().unwrap().serialize_pem(),
        );
        let missing_key = dir.path().join("missing.key");
        let roots = NodeRoots::default();

        let mut h = host(Vec::new(), false);
        h.client_pairs = vec![(cert_path.clone(), Some(missing_key.clone()))];
        let err = client_config(&h, &roots).unwrap_err();
        assert!(matches!(err, TlsConfigError::ReadClient { ref path, .. } if *path == missing_key));

        // The key is expected in the certificate file and is not there.
        h.client_pairs = vec![(cert_path.clone(), None)];
        let err = client_config(&h, &roots).unwrap_err();
        assert!(
            matches!(err, TlsConfigError::InvalidClientPair { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("client.cert"), "{err}");

        // A key that does not belong to the certificate.
        h.client_pairs = vec![(cert_path, Some(other_key))];
        let err = client_config(&h, &roots).unwrap_err();
        assert!(
            matches!(err, TlsConfigError::InvalidClientPair { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("other.key"), "{err}");

        // A directory as the key (what `client = [["c.cert", ""]]` yields in containerd).
        h.client_pairs = vec![(
            dir.path().join("client.cert"),
            Some(dir.path().to_path_buf()),
        )];
        let err = client_config(&h, &roots).unwrap_err();
        assert!(matches!(err, TlsConfigError::ReadClient { .. }), "{err:?}");
    }

    #[test]
    fn skip_verify_accepts_any_certificate_and_name() {
        let self_signed =
            rcgen::generate_simple_self_signed(vec!["elsewhere".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            self_signed.signing_key.serialize_der(),
        ));
        let server = server_config(vec![self_signed.cert.der().clone()], key, None);
        let roots = NodeRoots::default();

        let (config, described) = client_config(&host(Vec::new(), true), &roots).unwrap();
        assert_eq!(described, "skip_verify");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        handshake(config, server.clone(), "registry.test").unwrap();

        let (config, _) = client_config(&host(Vec::new(), false), &roots).unwrap();
        assert!(handshake(config, server, "registry.test").is_err());
    }

    #[test]
    fn node_roots_load_never_panics() {
        let roots = NodeRoots::load();
        // Either certificates or a warning saying there are none.
        assert!(!roots.is_empty() || !roots.warnings().is_empty());
        assert!(roots.store().len() <= roots.len());
    }

    #[test]
    fn hosts_without_ca_files_share_the_node_store() {
        let roots = NodeRoots::from_certificates(vec![ca("shared").der.clone()]);
        let a = client_config(&host(Vec::new(), false), &roots).unwrap();
        assert_eq!(
            Arc::strong_count(roots.store()),
            2,
            "one reference per config, no copy"
        );
        let b = client_config(&host(Vec::new(), false), &roots).unwrap();
        assert_eq!(Arc::strong_count(roots.store()), 3);
        drop((a, b));
        assert_eq!(Arc::strong_count(roots.store()), 1);
    }
}
