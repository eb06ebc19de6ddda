//! Certificates for serving the registry over TLS: a throw-away certificate authority that
//! issues leaf certificates for the host names a client is told to use (`myregistry.azurecr.io`,
//! `*.example.com`, `127.0.0.1`, …), and the rustls [`ServerConfig`] to serve them with.
//!
//! Clients are made to trust the CA, never the leaf: the harness writes [`CertificateAuthority::
//! write_pem`] where each client looks for extra roots (Docker's `certs.d/<host>/ca.crt`,
//! containerd's `hosts.toml`, a Java trust store, `SSL_CERT_FILE`, …).
//!
//! What picky clients need, and what is issued:
//! - Go (docker, containerd, buildkit, crane, skopeo) ignores the subject CN: every name is a
//!   subjectAltName (DNS names, wildcards allowed, and IP addresses).
//! - Java (Jib) builds its path with the authority and subject key identifiers, wants
//!   `keyCertSign` on the CA and `digitalSignature` on an ECDSA leaf: all present. The leaf
//!   carries the `serverAuth` extended key usage.
//! - Validity starts a day in the past, so a client whose clock lags a little still accepts it.
//!
//! The CA's private key stays in memory. [`CertificateAuthority::write_key_pem`] exists only so a
//! harness can reuse one CA across restarts (file mode 0600); the key is never part of a report,
//! a journal or a log line, and `Debug` elides it.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// How long a freshly generated CA is valid (from one day ago).
const CA_VALIDITY: Duration = Duration::days(365);
/// How long a leaf is valid (from one day ago), capped at the CA's own end of validity.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Backdating of `notBefore`, for clients whose clock lags.
const BACKDATE: Duration = Duration::days(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Parse(String),
    #[error("{0:?} is not a host name a certificate can name")]
    InvalidHostname(String),
    #[error("a certificate needs at least one host name or IP address")]
    NoNames,
    #[error("the certificate is not a CA certificate (basicConstraints cA is not set)")]
    NotCa,
    #[error("the private key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("the CA certificate is not valid now (valid from {not_before} to {not_after})")]
    NotValidNow {
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A leaf certificate and its private key, both PEM (the key as PKCS#8 `PRIVATE KEY`).
#[derive(Clone)]
pub struct IssuedPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A self-signed ECDSA P-256 certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_after: OffsetDateTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .field("not_after", &self.not_after)
            .field("key", &"[elided]")
            .finish()
    }
}

impl CertificateAuthority {
    /// A new CA named `common_name`, valid from one day ago for about a year, allowed to sign
    /// certificates (and CRLs) but not intermediate CAs (path length 0).
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.self_signed(&key)?;
        let not_after = params.not_after;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// A CA from a certificate and its PKCS#8 private key, both PEM (as written by
    /// [`Self::write_pem`] and [`Self::write_key_pem`]). Refuses a certificate that is not a CA,
    /// a key that does not match it, and a CA that is not valid now.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Pem(format!("CA certificate: {e}")))?;
        let key = KeyPair::from_pem(key_pem)?;
        let (not_before, not_after) = {
            let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
                .map_err(|e| TlsError::Parse(e.to_string()))?;
            if !x509.is_ca() {
                return Err(TlsError::NotCa);
            }
            let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
            if x509.tbs_certificate.subject_pki.raw != spki.as_slice() {
                return Err(TlsError::KeyMismatch);
            }
            (
                x509.validity().not_before.to_datetime(),
                x509.validity().not_after.to_datetime(),
            )
        };
        let now = OffsetDateTime::now_utc();
        if now < not_before || now >= not_after {
            return Err(TlsError::NotValidNow {
                not_before,
                not_after,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            issuer,
            not_after,
        })
    }

    /// The CA certificate, PEM: what clients are told to trust.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// End of the CA's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Writes the CA certificate (never the key) as PEM to `path`.
    pub fn write_pem(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        std::fs::write(path, self.cert_pem.as_bytes()).map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the CA's private key (PKCS#8 PEM) to `path` with mode 0600, for a harness that
    /// reuses one CA across restarts ([`Self::load`]). Only for that: the key must never be
    /// copied into a report, a journal or a log.
    pub fn write_key_pem(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        let err = |source| TlsError::Write {
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(err)?;
        #[cfg(unix)]
        {
            // `mode` applies only to a file that did not exist yet.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        file.write_all(self.issuer.key().serialize_pem().as_bytes())
            .map_err(err)?;
        file.sync_all().map_err(err)
    }

    /// A leaf certificate for `hostnames` (DNS subjectAltNames; `*.example.com` wildcards allowed;
    /// a name that parses as an IP address becomes an IP SAN) and `ips` (IP SANs), signed by this
    /// CA, with a fresh ECDSA P-256 key; both PEM.
    pub fn issue_pem(&self, hostnames: &[String], ips: &[IpAddr]) -> Result<IssuedPem, TlsError> {
        let (cert, key) = self.issue_leaf(hostnames, ips)?;
        Ok(IssuedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A leaf as [`Self::issue_pem`] does, ready to serve: TLS 1.2 and 1.3, ALPN `h2` then
    /// `http/1.1`, no client authentication.
    pub fn issue(
        &self,
        hostnames: &[String],
        ips: &[IpAddr],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        self.issue_with_versions(hostnames, ips, &[])
    }

    /// [`Self::issue`] speaking only `versions` (empty: TLS 1.3 and 1.2) — an endpoint that
    /// speaks TLS 1.2 alone, as Azure Stack Hub's registry does.
    pub fn issue_with_versions(
        &self,
        hostnames: &[String],
        ips: &[IpAddr],
        versions: &[TlsVersion],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let (cert, key) = self.issue_leaf(hostnames, ips)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        server_config_with_versions(vec![cert.der().clone()], key, versions)
    }

    fn issue_leaf(
        &self,
        hostnames: &[String],
        ips: &[IpAddr],
    ) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let mut sans = Vec::with_capacity(hostnames.len() + ips.len());
        for name in hostnames {
            if let Ok(ip) = name.parse::<IpAddr>() {
                sans.push(SanType::IpAddress(ip));
                continue;
            }
            if !is_valid_hostname(name) {
                return Err(TlsError::InvalidHostname(name.clone()));
            }
            let ia5 = rcgen::string::Ia5String::try_from(name.as_str())
                .map_err(|_| TlsError::InvalidHostname(name.clone()))?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));
        let common_name = match sans.first() {
            Some(SanType::DnsName(name)) => name.as_str().to_owned(),
            Some(SanType::IpAddress(ip)) => ip.to_string(),
            _ => return Err(TlsError::NoNames),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&common_name);
        params.subject_alt_names = sans;
        // `ExplicitNoCa` writes basicConstraints cA=FALSE and the subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.not_after);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert, key))
    }
}

/// A rustls server configuration (ring provider, TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`)
/// for a certificate chain (leaf first) and its key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_versions(chain, key, &[])
}

/// A TLS protocol version a host speaks (`tls_versions = ["1.2"]` in a fleet file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// [`server_config`] speaking only `versions` (empty: both).
pub fn server_config_with_versions(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: &[TlsVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut supported: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if versions.is_empty() || versions.contains(&TlsVersion::Tls13) {
        supported.push(&rustls::version::TLS13);
    }
    if versions.is_empty() || versions.contains(&TlsVersion::Tls12) {
        supported.push(&rustls::version::TLS12);
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&supported)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM: every `CERTIFICATE` of `chain_pem` (leaf first) and the first
/// private key of `key_pem`.
pub fn server_config_from_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Pem("no CERTIFICATE in the chain".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
    server_config(chain, key)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "regcompat");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 16 random bytes, positive (RFC 5280 asks for a positive serial of at most 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

/// LDH labels separated by dots, optionally a leading `*` label; no port, no trailing dot.
fn is_valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').enumerate().all(|(i, label)| {
        (i == 0 && label == "*" && name.len() > 2)
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    })
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn write_pem_writes_one_certificate_and_no_key() {
        let ca = CertificateAuthority::generate("regcompat test CA").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        ca.write_pem(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        let certs = CertificateDer::pem_file_iter(&path)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(&certs[0], ca.cert_der());
        assert!(PrivateKeyDer::from_pem_file(&path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn write_key_pem_is_private_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let ca = CertificateAuthority::generate("regcompat test CA").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        ca.write_key_pem(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key_pem = std::fs::read_to_string(&path).unwrap();
        let again = CertificateAuthority::load(&ca.cert_pem(), &key_pem).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());
        // A leaf from the reloaded CA names the CA exactly as the original does.
        let leaf = again.issue_pem(&names(&["a.example"]), &[]).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(leaf.issuer().as_raw(), root.subject().as_raw());
        assert!(leaf.verify_signature(Some(root.public_key())).is_ok());
    }

    #[test]
    fn load_refuses_a_key_of_another_ca_and_a_leaf() {
        let a = CertificateAuthority::generate("a").unwrap();
        let b = CertificateAuthority::generate("b").unwrap();
        let b_key = b.issuer.key().serialize_pem();
        assert!(matches!(
            CertificateAuthority::load(&a.cert_pem(), &b_key),
            Err(TlsError::KeyMismatch)
        ));
        let leaf = a.issue_pem(&names(&["x.example"]), &[]).unwrap();
        assert!(matches!(
            CertificateAuthority::load(&leaf.cert_pem, &leaf.key_pem),
            Err(TlsError::NotCa)
        ));
        assert!(matches!(
            CertificateAuthority::load("junk", &b_key),
            Err(TlsError::Pem(_))
        ));
    }

    #[test]
    fn leaf_has_what_go_and_java_need() {
        let ca = CertificateAuthority::generate("regcompat test CA").unwrap();
        let leaf = ca
            .issue_pem(
                &names(&["myregistry.azurecr.io", "*.example.com", "127.0.0.2"]),
                &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            )
            .unwrap();
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();

        assert!(cert.verify_signature(Some(root.public_key())).is_ok());
        assert_eq!(cert.issuer().as_raw(), root.subject().as_raw());
        assert!(!cert.is_ca());
        let now = x509_parser::time::ASN1Time::now();
        assert!(cert.validity().is_valid_at(now));
        assert!(root.validity().is_valid_at(now));
        assert!(cert.validity().not_after <= root.validity().not_after);

        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let (mut aki, mut ski, mut server_auth, mut digital_signature) = (None, None, false, false);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => dns.push(d.to_string()),
                            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                            other => panic!("unexpected SAN {other:?}"),
                        }
                    }
                }
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                ParsedExtension::SubjectKeyIdentifier(s) => ski = Some(s.0.to_vec()),
                ParsedExtension::ExtendedKeyUsage(e) => server_auth = e.server_auth,
                ParsedExtension::KeyUsage(k) => digital_signature = k.digital_signature(),
                _ => {}
            }
        }
        assert_eq!(dns, ["myregistry.azurecr.io", "*.example.com"]);
        assert_eq!(ips.len(), 3);
        assert!(ips.contains(&vec![127, 0, 0, 2]));
        assert!(ips.contains(&vec![127, 0, 0, 1]));
        assert!(ski.is_some());
        assert!(server_auth && digital_signature);

        let mut root_ski = None;
        let mut cert_sign = false;
        for ext in root.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(s) => root_ski = Some(s.0.to_vec()),
                ParsedExtension::KeyUsage(k) => cert_sign = k.key_cert_sign() && k.crl_sign(),
                _ => {}
            }
        }
        assert!(root.is_ca() && cert_sign);
        assert!(root_ski.is_some());
        assert_eq!(aki, root_ski, "leaf AKI must equal the CA's SKI");
    }

    #[test]
    fn hostnames_are_checked() {
        let ca = CertificateAuthority::generate("regcompat test CA").unwrap();
        for bad in [
            "",
            "host:5000",
            "a..b",
            "-a.example",
            "a.*.example",
            "*",
            "é.example",
        ] {
            assert!(
                matches!(
                    ca.issue(&names(&[bad]), &[]),
                    Err(TlsError::InvalidHostname(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(ca.issue(&[], &[]), Err(TlsError::NoNames)));
        assert!(ca.issue(&names(&["localhost", "*.a.example"]), &[]).is_ok());
    }

    #[test]
    fn server_config_offers_h2_and_both_versions() {
        let ca = CertificateAuthority::generate("regcompat test CA").unwrap();
        let config = ca.issue(&[], &["127.0.0.1".parse().unwrap()]).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let leaf = ca.issue_pem(&names(&["localhost"]), &[]).unwrap();
        assert!(server_config_from_pem(&leaf.cert_pem, &leaf.key_pem).is_ok());
        assert!(server_config_from_pem("", &leaf.key_pem).is_err());
    }
}
