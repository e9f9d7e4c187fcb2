//! TLS for the server loop (feature `tls`): [`Tls`], a rustls server
//! configuration that [`crate::server::ServeOptions::tls`] handshakes every
//! accepted connection with, so that browsers can connect over `https://`
//! and `wss://` without a proxy in front.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the kind asked for.
    #[error("{what} {path}: {source}")]
    Pem {
        /// "certificate chain" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the certificate and key (a key that does not match the
    /// certificate, an unsupported key type, ...).
    #[error("certificate {cert} with key {key}: {source}")]
    Config {
        /// The certificate chain's file.
        cert: PathBuf,
        /// The private key's file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// The TLS side of a server: a shared rustls `ServerConfig`.
///
/// ```no_run
/// # fn run() -> Result<(), tether::tls::TlsError> {
/// use std::path::Path;
/// let tls = tether::tls::Tls::from_pem_files(Path::new("cert.pem"), Path::new("key.pem"))?;
/// let opts = tether::server::ServeOptions::default().tls(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Two `Tls` are equal when they share one configuration.
impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.acceptor.config(), other.acceptor.config())
    }
}

impl Eq for Tls {}

impl Tls {
    /// Uses `config` as it is (its ALPN protocols should offer `http/1.1`).
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }

    /// A certificate chain and its private key from PEM files (the chain
    /// leaf first, as certbot's `fullchain.pem`; the key PKCS#8, PKCS#1 or
    /// SEC1), with rustls' safe defaults (TLS 1.2 and 1.3, the `ring`
    /// provider) and ALPN `http/1.1`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .and_then(|certs| {
                if certs.is_empty() {
                    Err(rustls::pki_types::pem::Error::NoItemsFound)
                } else {
                    Ok(certs)
                }
            })
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                path: cert.to_owned(),
                source,
            })?;
        let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
            what: "private key",
            path: key.to_owned(),
            source,
        })?;
        let config_error = |source| TlsError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(config_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::new(Arc::new(config)))
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}
