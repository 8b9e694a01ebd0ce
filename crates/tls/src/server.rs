//! Server TLS contexts from a filter chain's `tls_context` / `tls_context_set`.

use crate::error::TlsError;
use crate::material::{certified_key, roots};
use crate::reload::{self, CertSlot};
use crate::verify::{AnyClientCert, SanAllowList};
use mosn_config::tls::{TlsConfig, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::sync::Arc;
use std::time::Duration;

/// One server context: a certificate (reloadable) and its handshake settings.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: Arc<CertSlot>,
    server_name: String,
    pub handshake_timeout: Duration,
}

/// A chain's contexts; the first is the default when no SNI matches.
pub struct ServerTlsSet {
    contexts: Vec<ServerTls>,
}

/// Serves the slot's current certificate (the reload thread swaps it).
#[derive(Debug)]
struct SlotResolver(Arc<CertSlot>);

impl ResolvesServerCert for SlotResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ServerTlsSet {
    /// Builds every context; `at` is the JSON path of each, `default_alpn` the
    /// protocols offered when a context names none (from the chain's proxy filter).
    pub fn build(
        contexts: &[(&TlsConfig, String)],
        default_alpn: &[&str],
    ) -> Result<ServerTlsSet, TlsError> {
        let contexts = contexts
            .iter()
            .map(|(cfg, at)| ServerTls::build(cfg, at, default_alpn))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerTlsSet { contexts })
    }

    /// The context for a ClientHello's SNI: one whose `server_name` is the name, else
    /// one whose certificate is valid for it (wildcards included), else the first.
    pub fn select(&self, sni: Option<&str>) -> &ServerTls {
        let first = &self.contexts[0];
        let Some(sni) = sni else { return first };
        if self.contexts.len() == 1 {
            return first;
        }
        if let Some(c) = self
            .contexts
            .iter()
            .find(|c| c.server_name.eq_ignore_ascii_case(sni))
        {
            return c;
        }
        let Ok(name) = rustls::pki_types::ServerName::try_from(sni) else {
            return first;
        };
        self.contexts
            .iter()
            .find(|c| c.valid_for(&name))
            .unwrap_or(first)
    }

    /// The longest handshake timeout of the set (the context is chosen mid-handshake).
    pub fn handshake_timeout(&self) -> Duration {
        self.contexts
            .iter()
            .map(|c| c.handshake_timeout)
            .max()
            .unwrap_or(mosn_config::tls::DEFAULT_HANDSHAKE_TIMEOUT)
    }
}

impl ServerTls {
    fn build(cfg: &TlsConfig, at: &str, default_alpn: &[&str]) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(restricted_provider(cfg, at)?);
        let versions = versions(cfg);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::new(at, format!("no usable TLS version or cipher: {e}")))?;
        let verifier = client_verifier(cfg, at, &provider)?;
        let key = certified_key(&cfg.cert_chain, &cfg.private_key, at)?;
        let cert = CertSlot::new(key, &cfg.cert_chain, &cfg.private_key, at);
        let mut config = builder
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SlotResolver(cert.clone())));
        config.alpn_protocols = offered_alpn(cfg, default_alpn);
        if !cfg.ticket.is_empty() {
            // MOSN's `ticket` turns session tickets on; rustls draws its own keys.
            if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
                config.ticketer = ticketer;
            }
        }
        reload::watch(&cert);
        Ok(ServerTls {
            config: Arc::new(config),
            cert,
            server_name: cfg.server_name.clone(),
            handshake_timeout: cfg.handshake_timeout(),
        })
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    fn valid_for(&self, name: &rustls::pki_types::ServerName<'_>) -> bool {
        let key = self.cert.current();
        let Some(leaf) = key.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(leaf)
            .is_ok_and(|c| c.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// The context's own ALPN list narrowed to what the chain's filter speaks (an
/// HTTP/1.1-only chain never offers h2); the filter's protocols when it names none
/// (or none of its names is usable). A filter with no protocols (tcp_proxy) offers the
/// context's list as written.
fn offered_alpn(cfg: &TlsConfig, speaks: &[&str]) -> Vec<Vec<u8>> {
    let named: Vec<&str> = cfg.alpn_protocols().collect();
    let usable: Vec<&str> = if speaks.is_empty() {
        named
    } else {
        named
            .into_iter()
            .filter(|p| speaks.iter().any(|d| d.eq_ignore_ascii_case(p)))
            .collect()
    };
    let list = if usable.is_empty() {
        speaks.to_vec()
    } else {
        usable
    };
    list.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// rustls's ring provider narrowed to the context's cipher suites and curves.
pub(crate) fn restricted_provider(cfg: &TlsConfig, at: &str) -> Result<CryptoProvider, TlsError> {
    let mut p = rustls::crypto::ring::default_provider();
    let ciphers: Vec<&str> = cfg.ciphers().collect();
    if !ciphers.is_empty() {
        p.cipher_suites
            .retain(|s| ciphers.iter().any(|c| cipher_matches(c, s.suite())));
        if p.cipher_suites.is_empty() {
            return Err(TlsError::new(
                format!("{at}.cipher_suites"),
                "none of these cipher suites is offered by rustls",
            ));
        }
    }
    let curves: Vec<String> = cfg.curves().map(str::to_ascii_lowercase).collect();
    if !curves.is_empty() {
        p.kx_groups.retain(|g| {
            let name = match g.name() {
                rustls::NamedGroup::X25519 => "x25519",
                rustls::NamedGroup::secp256r1 => "p256",
                rustls::NamedGroup::secp384r1 => "p384",
                _ => "",
            };
            curves.iter().any(|c| c == name)
        });
        if p.kx_groups.is_empty() {
            return Err(TlsError::new(
                format!("{at}.ecdh_curves"),
                "none of these curves is offered by rustls",
            ));
        }
    }
    Ok(p)
}

/// MOSN's OpenSSL-style cipher name against a rustls suite.
fn cipher_matches(name: &str, suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite as S;
    matches!(
        (name, suite),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        ) | (
            "ECDHE-RSA-AES256-GCM-SHA384",
            S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ) | (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        ) | (
            "ECDHE-RSA-AES128-GCM-SHA256",
            S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        ) | (
            "ECDHE-ECDSA-WITH-CHACHA20-POLY1305",
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        ) | (
            "ECDHE-RSA-WITH-CHACHA20-POLY1305",
            S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        ) | ("AES256-GCM-SHA384", S::TLS13_AES_256_GCM_SHA384)
            | ("AES128-GCM-SHA256", S::TLS13_AES_128_GCM_SHA256)
    )
}

/// The versions between `min_version` and `max_version` that rustls speaks.
pub(crate) fn versions(cfg: &TlsConfig) -> Vec<&'static SupportedProtocolVersion> {
    let min = cfg.min().unwrap_or(TlsVersion::V1_2);
    let max = cfg.max().unwrap_or(TlsVersion::V1_3);
    let mut out = Vec::new();
    if min <= TlsVersion::V1_3 && max >= TlsVersion::V1_3 {
        out.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::V1_2 && max >= TlsVersion::V1_2 {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// MOSN's client-auth modes (verify_client, require_client_cert) plus the SAN list.
fn client_verifier(
    cfg: &TlsConfig,
    at: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    if !cfg.verify_client {
        return Ok(if cfg.require_client_cert {
            Arc::new(AnyClientCert {
                provider: provider.clone(),
                mandatory: false,
            })
        } else {
            WebPkiClientVerifier::no_client_auth()
        });
    }
    let ca_path = format!("{at}.ca_cert");
    let roots = Arc::new(roots(&cfg.ca_cert, &ca_path)?);
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !cfg.require_client_cert {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder
        .build()
        .map_err(|e| TlsError::new(ca_path, format!("cannot verify clients: {e}")))?;
    if cfg.match_subject_alt_names.is_empty() {
        return Ok(verifier);
    }
    for (i, n) in cfg.match_subject_alt_names.iter().enumerate() {
        if n.trim().is_empty() {
            return Err(TlsError::new(
                format!("{at}.match_subject_alt_names[{i}]"),
                "an empty name",
            ));
        }
    }
    Ok(Arc::new(SanAllowList {
        inner: verifier,
        names: cfg.match_subject_alt_names.clone(),
    }))
}
