//! Per-bottle certificate authority and leaf minting.
//!
//! This crate owns the bottle's CA (an ECDSA P-256 key and a self-signed certificate made with
//! rcgen) and the leaves the egress proxy presents to the agent on intercepted routes. Leaves are
//! minted on demand for one host, cached per host, and handed out as rustls [`ServerConfig`]s so
//! that the proxy never builds TLS state per connection. The CA key is written with mode 0600;
//! the guest only ever receives [`Ca::cert_pem`].

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors of the CA and leaf minting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused to build or parse a certificate or key.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a key or configuration.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// A host name cannot be put in a certificate.
    #[error("cannot mint a certificate for host {host:?}: {reason}")]
    BadHost { host: String, reason: String },
    /// Writing the CA to disk failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The rustls crypto provider used for everything this crate builds (ring: small, fast build),
/// with the AES-128-GCM suites first: as strong as needed here and ~25% cheaper per byte than
/// AES-256, which matters when the proxy encrypts every byte twice.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::CipherSuite as C;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            C::TLS13_AES_128_GCM_SHA256
                | C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

/// A bottle's certificate authority: certificate (public) and key (secret).
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key never appears in debug output.
        f.debug_struct("Ca")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a new CA with an ECDSA P-256 key and the given common name, valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "bot-bottle");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// Loads a CA from its certificate and key in PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM: the only part the guest receives.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Secret: write it only to a 0600 file or the sidecar's stdin.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes the certificate (mode 0644) and the key (mode 0600, set at creation so the key
    /// is never readable by others, even briefly).
    pub fn save(&self, cert_path: &Path, key_path: &Path) -> Result<()> {
        write_file(cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_file(key_path, self.key_pem.as_bytes(), 0o600)
    }

    /// Mints a leaf for `host` (a DNS name or an IP literal), valid from a day ago for 30 days.
    pub fn mint_leaf(
        &self,
        host: &str,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !valid {
            return Err(Error::BadHost {
                host: host.to_owned(),
                reason: "not a DNS name or IP literal".to_owned(),
            });
        }
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                SanType::DnsName(host.try_into().map_err(|e: rcgen::Error| Error::BadHost {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?)
            }
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key_der))
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    // An existing file keeps its old mode on open; force ours.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Most hosts kept in the leaf cache; past it the cache is emptied (a bottle talks to few hosts,
/// so this only bounds memory against an agent cycling names).
const CACHE_MAX: usize = 1024;

/// Leaves minted on demand from a [`Ca`], cached per host as ready rustls server configs.
pub struct LeafCache {
    ca: Ca,
    provider: Arc<CryptoProvider>,
    /// One ticketer for all leaves, so a resumed session works across hosts' configs.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafCache").finish_non_exhaustive()
    }
}

impl LeafCache {
    /// A cache minting from `ca`.
    pub fn new(ca: Ca) -> Self {
        Self {
            ca,
            provider: provider(),
            ticketer: rustls::crypto::ring::Ticketer::new().ok(),
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The CA this cache mints from.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The certified key for `host` (minted now, not cached).
    pub fn certified_key(&self, host: &str) -> Result<Arc<CertifiedKey>> {
        let (cert, key) = self.ca.mint_leaf(host)?;
        let signing = self.provider.key_provider.load_private_key(key)?;
        Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
    }

    /// A server config presenting the leaf for `host`, offering ALPN `http/1.1` only. Cached.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        if let Some(cfg) = self.lock().get(host) {
            return Ok(cfg.clone());
        }
        let ck = self.certified_key(host)?;
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert(ck)));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Our suite order (AES-128 first), not the client's.
        cfg.ignore_client_order = true;
        if let Some(t) = &self.ticketer {
            cfg.ticketer = t.clone();
        }
        let cfg = Arc::new(cfg);
        let mut map = self.lock();
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(host.to_owned(), cfg.clone());
        Ok(cfg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServerConfig>>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        self.configs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Presents one certificate whatever the client asks for; the proxy checks SNI itself.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_save_and_reload() {
        let ca = Ca::generate("bottle test CA").unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem().contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        ca.save(&c, &k).unwrap();
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Ca::from_pem(
            &std::fs::read_to_string(&c).unwrap(),
            &std::fs::read_to_string(&k).unwrap(),
        )
        .unwrap();
        back.mint_leaf("api.example.com").unwrap();
    }

    #[test]
    fn leaf_verifies_against_ca() {
        let ca = Ca::generate("bottle test CA").unwrap();
        let cache = LeafCache::new(ca);
        let (leaf, _) = cache.ca().mint_leaf("api.example.com").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca_der =
            rustls_pki_types::pem::PemObject::from_pem_slice(cache.ca().cert_pem().as_bytes())
                .unwrap();
        roots.add(ca_der).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from("api.example.com").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .unwrap();
        let other = rustls_pki_types::ServerName::try_from("evil.example.com").unwrap();
        assert!(verifier
            .verify_server_cert(&leaf, &[], &other, &[], rustls_pki_types::UnixTime::now())
            .is_err());
        // IP literal leaves carry an IP SAN.
        cache.ca().mint_leaf("127.0.0.1").unwrap();
    }

    #[test]
    fn server_config_is_cached_per_host() {
        let cache = LeafCache::new(Ca::generate("c").unwrap());
        let a = cache.server_config("a.test").unwrap();
        let a2 = cache.server_config("a.test").unwrap();
        let b = cache.server_config("b.test").unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_host_is_a_clear_error() {
        let ca = Ca::generate("c").unwrap();
        let err = ca.mint_leaf("bad host\u{0}").unwrap_err();
        assert!(err.to_string().contains("bad host"));
    }
}
