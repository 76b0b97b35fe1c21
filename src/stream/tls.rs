//! Certificates for SIP over TLS: one PEM certificate chain and key, read at start and
//! again on SIGHUP (connections already open keep theirs); an optional CA that client
//! certificates must chain to (mutual TLS, as Teams Direct Routing and many SBCs use).
//! Outbound connections present the same certificate and check the far end's against that
//! CA, or the web's roots without one.

use rustls::client::ResolvesClientCert;
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Where the certificate, its key and the client CA are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must chain to this CA; outbound peers' too.
    pub ca: Option<PathBuf>,
}

/// The certificate in use, replaced whole on reload.
#[derive(Debug)]
pub struct Certificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    pub fn load(files: TlsFiles) -> Result<Arc<Certificate>, String> {
        let current = RwLock::new(Arc::new(read(&files)?));
        Ok(Arc::new(Certificate { files, current }))
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Arc::new(read(&self.files)?);
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }

    fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }

    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.files.ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                    .build()
                    .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(builder.with_cert_resolver(self.clone())))
    }

    pub fn client_config(self: &Arc<Self>) -> Result<Arc<ClientConfig>, String> {
        let roots = match &self.files.ca {
            Some(ca) => roots(ca)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

impl ResolvesClientCert for Certificate {
    fn resolve(&self, _issuers: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.get()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn read(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let cert = files.cert.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {cert}: no certificate in the file"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let signing = any_supported_type(&key).map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("--tls-cert {cert} and --tls-key do not match: {e}"))?;
    Ok(certified)
}

fn roots(ca: &PathBuf) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("--tls-ca {}: no usable CA certificate", ca.display()));
    }
    Ok(roots)
}
