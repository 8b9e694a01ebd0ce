//! Client TLS for a cluster's upstream connections, from its `tls_context`.

use crate::error::TlsError;
use crate::material::{certs, key, roots};
use crate::server::{restricted_provider, versions};
use crate::verify::{NoServerVerification, UpstreamSanList};
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
            .field("match_subject_alt_names", &self.sans)
            .finish_non_exhaustive()
    }
}

pub struct ClientTls {
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    /// `match_subject_alt_names`, which replace the name check (kept for Debug).
    sans: Vec<String>,
    pub insecure: bool,
}

impl ClientTls {
    pub fn build(cfg: &TlsConfig, at: &str) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(restricted_provider(cfg, at)?);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(cfg))
            .map_err(|e| TlsError::new(at, format!("no usable TLS version or cipher: {e}")))?;
        let sans = &cfg.match_subject_alt_names;
        let sans_at = format!("{at}.match_subject_alt_names");
        if cfg.insecure_skip && !sans.is_empty() {
            return Err(TlsError::new(
                sans_at,
                "insecure_skip verifies nothing, so these names would never be checked",
            ));
        }
        if let Some(i) = sans.iter().position(|n| n.trim().is_empty()) {
            return Err(TlsError::new(format!("{sans_at}[{i}]"), "an empty name"));
        }
        let builder = if cfg.insecure_skip {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoServerVerification {
                    provider: provider.clone(),
                }))
        } else if !sans.is_empty() {
            // Envoy's rule: the SAN list is the name check and the SNI is only sent.
            // MOSN configs without a list keep verifying server_name (below).
            let roots = if cfg.ca_cert.is_empty() {
                system_roots()
            } else {
                Arc::new(roots(&cfg.ca_cert, &format!("{at}.ca_cert"))?)
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UpstreamSanList {
                    roots,
                    provider: provider.clone(),
                    names: sans.clone(),
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
            sans: sans.clone(),
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

    /// The SNI name: `server_name`, else the host's hostname, else its IP. It is also
    /// the verified name, unless the context has `match_subject_alt_names`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_tls(names: &[&str]) -> TlsConfig {
        TlsConfig {
            status: true,
            server_name: "outbound_.80_._.app.default.svc.cluster.local".into(),
            match_subject_alt_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn a_san_list_builds_and_keeps_istios_sni() {
        let tls = ClientTls::build(
            &cluster_tls(&["spiffe://cluster.local/ns/default/sa/app"]),
            "c",
        )
        .expect("builds");
        let sni = tls.server_name("", IpAddr::from([10, 0, 0, 1]));
        assert_eq!(
            sni.to_str(),
            "outbound_.80_._.app.default.svc.cluster.local"
        );
        assert!(format!("{tls:?}").contains("spiffe://cluster.local/ns/default/sa/app"));
    }

    #[test]
    fn a_san_list_with_insecure_skip_or_an_empty_name_is_refused() {
        let mut cfg = cluster_tls(&["spiffe://cluster.local/ns/default/sa/app"]);
        cfg.insecure_skip = true;
        let err = ClientTls::build(&cfg, "c").expect_err("nothing would check the names");
        assert_eq!(err.path, "c.match_subject_alt_names");
        let err = ClientTls::build(&cluster_tls(&["a.example.com", " "]), "c")
            .expect_err("an empty name");
        assert_eq!(
            err.to_string(),
            "c.match_subject_alt_names[1]: an empty name"
        );
    }
}
