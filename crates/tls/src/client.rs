//! Client TLS for a cluster's upstream connections, from its `tls_context`.

use crate::error::TlsError;
use crate::material::{certs, key, roots};
use crate::server::{restricted_provider, versions};
use crate::verify::NoServerVerification;
use mosn_config::tls::TlsConfig;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// A cluster's client context: one rustls config per ALPN offer (HTTP/1.1 pools
/// offer http/1.1, HTTP/2 pools h2, unless the context names its own), sharing a
/// session cache each, so reconnections resume.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

pub struct ClientTls {
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    pub insecure: bool,
}

impl ClientTls {
    pub fn build(cfg: &TlsConfig, at: &str) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(restricted_provider(cfg, at)?);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(cfg))
            .map_err(|e| TlsError::new(at, format!("no usable TLS version or cipher: {e}")))?;
        let builder = if cfg.insecure_skip {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoServerVerification {
                    provider: provider.clone(),
                }))
        } else if cfg.ca_cert.is_empty() {
            builder.with_root_certificates(system_roots())
        } else {
            builder.with_root_certificates(roots(&cfg.ca_cert, &format!("{at}.ca_cert"))?)
        };
        let config = if cfg.cert_chain.is_empty() {
            builder.with_no_client_auth()
        } else {
            // Checked for a match the same way a server certificate is.
            crate::material::certified_key(&cfg.cert_chain, &cfg.private_key, at)?;
            builder
                .with_client_auth_cert(
                    certs(&cfg.cert_chain, &format!("{at}.cert_chain"))?,
                    key(&cfg.private_key, &format!("{at}.private_key"))?,
                )
                .map_err(|e| TlsError::new(format!("{at}.private_key"), e.to_string()))?
        };
        let named: Vec<Vec<u8>> = cfg
            .alpn_protocols()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let with_alpn = |default: &[u8]| {
            let mut c = config.clone();
            c.alpn_protocols = if named.is_empty() {
                vec![default.to_vec()]
            } else {
                named.clone()
            };
            Arc::new(c)
        };
        let server_name = if cfg.server_name.is_empty() {
            None
        } else {
            Some(ServerName::try_from(cfg.server_name.clone()).map_err(|e| {
                TlsError::new(format!("{at}.server_name"), format!("not a host name: {e}"))
            })?)
        };
        Ok(ClientTls {
            http1: with_alpn(b"http/1.1"),
            http2: with_alpn(b"h2"),
            server_name,
            insecure: cfg.insecure_skip,
        })
    }

    /// The connector for an HTTP/1.1 (`h2` false) or HTTP/2 pool.
    pub fn connector(&self, h2: bool) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(if h2 {
            self.http2.clone()
        } else {
            self.http1.clone()
        })
    }

    /// The SNI and verified name: `server_name`, else the host's hostname, else its IP.
    pub fn server_name(&self, hostname: &str, ip: IpAddr) -> ServerName<'static> {
        if let Some(n) = &self.server_name {
            return n.clone();
        }
        if let Ok(n) = ServerName::try_from(hostname.to_string()) {
            if !hostname.is_empty() {
                return n;
            }
        }
        ServerName::IpAddress(ip.into())
    }
}

/// The host's root CAs (as MOSN uses when `ca_cert` is empty), loaded once.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
            if store.is_empty() {
                tracing::warn!("no system root certificates found: upstream TLS without ca_cert will fail to verify");
            }
            Arc::new(store)
        })
        .clone()
}
