//! The xDS v3 client of mosn-rs (docs/xds.md): MOSN's xDS bootstrap (Envoy's
//! bootstrap shape), one ADS stream carrying LDS, RDS, CDS, EDS and SDS in the
//! state-of-the-world or delta variant, and the conversion of Envoy resources into
//! the one config model MOSN's JSON fills.

pub mod ads;
pub mod bootstrap;
pub mod convert;
pub mod state;
pub mod status;

use mosn_config::ClusterConfig;
use std::time::Duration;

/// How to reach the xDS server: its unix socket (a `pipe` endpoint, plaintext), or
/// its static cluster's first host, over TLS when the cluster has a TLS context (CA,
/// client certificate, SNI from it).
pub fn client_config(
    bootstrap: &bootstrap::Bootstrap,
    cluster: Option<&ClusterConfig>,
) -> Result<ads::ClientConfig, String> {
    if let Some(path) = &bootstrap.ads_pipe {
        return Ok(ads::ClientConfig {
            uri: format!("unix:{path}"),
            tls: None,
            node: bootstrap.node.to_proto(),
            delta: bootstrap.delta,
            connect_timeout: Duration::from_secs(5),
        });
    }
    let cluster = cluster.ok_or_else(|| format!("no xDS cluster {:?}", bootstrap.ads_cluster))?;
    let host = cluster
        .hosts
        .first()
        .ok_or_else(|| format!("xDS cluster {:?} has no host", cluster.name))?;
    let tls = match cluster.tls_context.as_ref().filter(|t| t.status) {
        None => None,
        Some(t) => {
            let read = |what: &str, v: &str| -> Result<String, String> {
                if v.contains("-----BEGIN") {
                    Ok(v.to_string())
                } else {
                    std::fs::read_to_string(v).map_err(|e| format!("xDS TLS {what} {v}: {e}"))
                }
            };
            let mut cfg = tonic::transport::ClientTlsConfig::new();
            if !t.ca_cert.is_empty() {
                cfg = cfg.ca_certificate(tonic::transport::Certificate::from_pem(read(
                    "CA", &t.ca_cert,
                )?));
            } else {
                cfg = cfg.with_native_roots();
            }
            if !t.cert_chain.is_empty() && !t.private_key.is_empty() {
                cfg = cfg.identity(tonic::transport::Identity::from_pem(
                    read("certificate", &t.cert_chain)?,
                    read("key", &t.private_key)?,
                ));
            }
            let name = if t.server_name.is_empty() {
                host.address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                    .unwrap_or_default()
            } else {
                t.server_name.clone()
            };
            // A server (or a TLS terminator before it) that does not negotiate ALPN
            // still speaks HTTP/2: gRPC has no other.
            Some(cfg.domain_name(name).assume_http2(true))
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(ads::ClientConfig {
        uri: format!("{scheme}://{}", host.address),
        tls,
        node: bootstrap.node.to_proto(),
        delta: bootstrap.delta,
        connect_timeout: cluster
            .connect_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(5)),
    })
}
