//! MOSN's `tls_context` (a listener filter chain's, a cluster's) and Envoy's
//! `filter_chain_match`: the model and its checks. Certificates are read and verified
//! by the `mosn-tls` crate; here only the shape and the names are checked.

use crate::duration::GoDuration;
use crate::error::Problems;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Default TLS handshake timeout (Envoy's transport socket connect timeout is 10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// MOSN's `TLSConfig`, field for field, plus mosn-rs's extensions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TlsConfig {
    pub status: bool,
    /// MOSN's extension type; only the default ("") is implemented.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Server: a name this context answers for (besides its certificate's names).
    /// Client: the SNI sent and the name verified (unless `match_subject_alt_names`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// PEM text or a file path (relative to the config file).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_cert: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_chain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    pub verify_client: bool,
    pub require_client_cert: bool,
    /// Client: do not verify the upstream's certificate. Loudly logged.
    pub insecure_skip: bool,
    /// OpenSSL-style names separated by ':'.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cipher_suites: String,
    /// Names separated by ',': x25519, p256, p384, p521.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ecdh_curves: String,
    /// tls_auto, tlsv1_0 .. tlsv1_3.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub min_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub max_version: String,
    /// Protocols separated by ',': h2, http/1.1 (MOSN's "sofa" is accepted).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alpn: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ticket: String,
    /// MOSN: when the certificate cannot be loaded, serve without TLS. Refused: a
    /// silent downgrade.
    pub fall_back: bool,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extend_verify: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub sds_source: Value,
    /// mosn-rs (Envoy's name): the peer's verified certificate must carry one of these
    /// subject alternative names (DNS, URI such as a SPIFFE ID, or IP). Listener: the
    /// client's. Cluster: the upstream's, checked instead of `server_name` (then only
    /// sent as SNI). Empty: any verified client; the upstream's `server_name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_subject_alt_names: Vec<String>,
    /// mosn-rs: the handshake must finish within this (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<GoDuration>,
}

/// TLS versions by MOSN's names; None: `tls_auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl TlsVersion {
    fn parse(name: &str) -> Result<Option<TlsVersion>, ()> {
        Ok(Some(match name.to_ascii_lowercase().as_str() {
            "" | "tls_auto" => return Ok(None),
            "tlsv1_0" => TlsVersion::V1_0,
            "tlsv1_1" => TlsVersion::V1_1,
            "tlsv1_2" => TlsVersion::V1_2,
            "tlsv1_3" => TlsVersion::V1_3,
            _ => return Err(()),
        }))
    }
}

/// The cipher suite names MOSN accepts, each with whether rustls offers it.
pub const MOSN_CIPHERS: &[(&str, bool)] = &[
    ("ECDHE-ECDSA-AES256-GCM-SHA384", true),
    ("ECDHE-RSA-AES256-GCM-SHA384", true),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", true),
    ("ECDHE-RSA-AES128-GCM-SHA256", true),
    ("ECDHE-ECDSA-WITH-CHACHA20-POLY1305", true),
    ("ECDHE-RSA-WITH-CHACHA20-POLY1305", true),
    ("ECDHE-RSA-AES256-CBC-SHA", false),
    ("ECDHE-RSA-AES128-CBC-SHA", false),
    ("ECDHE-ECDSA-AES256-CBC-SHA", false),
    ("ECDHE-ECDSA-AES128-CBC-SHA", false),
    ("RSA-AES256-CBC-SHA", false),
    ("RSA-AES128-CBC-SHA", false),
    ("ECDHE-RSA-3DES-EDE-CBC-SHA", false),
    ("RSA-3DES-EDE-CBC-SHA", false),
    ("AES256-GCM-SHA384", true),
    ("AES128-GCM-SHA256", true),
];

/// The curve names MOSN accepts, each with whether rustls (ring) offers it.
pub const MOSN_CURVES: &[(&str, bool)] = &[
    ("x25519", true),
    ("p256", true),
    ("p384", true),
    ("p521", false),
];

/// ALPN names MOSN accepts.
const MOSN_ALPN: &[&str] = &["h2", "http/1.1", "sofa"];

impl TlsConfig {
    pub fn min(&self) -> Option<TlsVersion> {
        TlsVersion::parse(&self.min_version).ok().flatten()
    }

    pub fn max(&self) -> Option<TlsVersion> {
        TlsVersion::parse(&self.max_version).ok().flatten()
    }

    /// Cipher suite names as written (empty: rustls's defaults).
    pub fn ciphers(&self) -> impl Iterator<Item = &str> {
        split(&self.cipher_suites, ':')
    }

    pub fn curves(&self) -> impl Iterator<Item = &str> {
        split(&self.ecdh_curves, ',')
    }

    /// ALPN protocols as written, those MOSN knows.
    pub fn alpn_protocols(&self) -> impl Iterator<Item = &str> {
        split(&self.alpn, ',').filter(|p| MOSN_ALPN.contains(&p.to_ascii_lowercase().as_str()))
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
            .map(|d| d.0)
            .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// Turns relative file paths into paths under `base` (the config file's folder),
    /// when the file is there; inline PEM is left alone.
    pub fn resolve_paths(&mut self, base: &Path) {
        for field in [
            &mut self.ca_cert,
            &mut self.cert_chain,
            &mut self.private_key,
        ] {
            if field.is_empty() || is_inline_pem(field) || Path::new(field.as_str()).is_absolute() {
                continue;
            }
            let candidate = base.join(field.as_str());
            if candidate.exists() {
                *field = candidate.to_string_lossy().into_owned();
            }
        }
    }

    /// Checks names and combinations; `server`: a listener's context (needs a
    /// certificate), else a cluster's.
    pub fn check(&self, path: &str, server: bool, problems: &mut Problems) {
        if !self.status {
            return;
        }
        if !self.kind.is_empty() {
            problems.error(
                format!("{path}.type"),
                format!(
                    "TLS extension type {:?} is not supported by mosn-rs",
                    self.kind
                ),
            );
        }
        if !self.sds_source.is_null() {
            problems.error(
                format!("{path}.sds_source"),
                "SDS is valid MOSN but not supported by mosn-rs yet",
            );
        }
        if self.fall_back {
            problems.error(
                format!("{path}.fall_back"),
                "falling back to plaintext when the certificate fails is a silent downgrade; mosn-rs refuses it",
            );
        }
        if !self.extend_verify.is_null() {
            problems.warn(format!("{path}.extend_verify"), "not implemented: ignored");
        }
        let min = TlsVersion::parse(&self.min_version);
        let max = TlsVersion::parse(&self.max_version);
        for (field, v) in [("min_version", &min), ("max_version", &max)] {
            if v.is_err() {
                problems.error(
                    format!("{path}.{field}"),
                    "expected one of tls_auto, tlsv1_0, tlsv1_1, tlsv1_2, tlsv1_3",
                );
            }
        }
        if let (Ok(Some(lo)), Ok(Some(hi))) = (min, max) {
            if lo > hi {
                problems.error(format!("{path}.min_version"), "greater than max_version");
            }
        }
        if matches!(max, Ok(Some(v)) if v < TlsVersion::V1_2) {
            problems.error(
                format!("{path}.max_version"),
                "TLS 1.0 and 1.1 are not supported (rustls speaks TLS 1.2 and 1.3)",
            );
        } else if matches!(min, Ok(Some(v)) if v < TlsVersion::V1_2) {
            problems.warn(
                format!("{path}.min_version"),
                "TLS 1.0 and 1.1 are not supported: TLS 1.2 is the minimum",
            );
        }
        check_names(
            self.ciphers(),
            MOSN_CIPHERS,
            &format!("{path}.cipher_suites"),
            "cipher",
            problems,
        );
        check_names(
            self.curves()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
            MOSN_CURVES,
            &format!("{path}.ecdh_curves"),
            "curve",
            problems,
        );
        for p in split(&self.alpn, ',') {
            if !MOSN_ALPN.contains(&p.to_ascii_lowercase().as_str()) {
                problems.warn(
                    format!("{path}.alpn"),
                    format!("ALPN protocol {p:?} is not supported: ignored (as MOSN does)"),
                );
            }
        }
        let has_cert = !self.cert_chain.is_empty();
        let has_key = !self.private_key.is_empty();
        if has_cert != has_key {
            problems.error(
                format!(
                    "{path}.{}",
                    if has_cert {
                        "private_key"
                    } else {
                        "cert_chain"
                    }
                ),
                "cert_chain and private_key go together",
            );
        }
        if server {
            if !has_cert {
                problems.error(
                    format!("{path}.cert_chain"),
                    "a listener's TLS context needs cert_chain and private_key",
                );
            }
            if self.verify_client && self.ca_cert.is_empty() {
                problems.error(
                    format!("{path}.ca_cert"),
                    "verify_client needs ca_cert to verify client certificates against",
                );
            }
            if !self.match_subject_alt_names.is_empty() && !self.verify_client {
                problems.error(
                    format!("{path}.match_subject_alt_names"),
                    "needs verify_client (and ca_cert)",
                );
            }
        } else if !self.match_subject_alt_names.is_empty() {
            // A cluster's list replaces the server_name check (Envoy's rule for
            // UpstreamTlsContext); without it MOSN's check of server_name stays.
            if self.insecure_skip {
                problems.error(
                    format!("{path}.match_subject_alt_names"),
                    "insecure_skip verifies nothing, so these names would never be checked",
                );
            }
            for (i, n) in self.match_subject_alt_names.iter().enumerate() {
                if n.trim().is_empty() {
                    problems.error(
                        format!("{path}.match_subject_alt_names[{i}]"),
                        "an empty name",
                    );
                }
            }
        }
    }
}

fn check_names<'a>(
    names: impl Iterator<Item = &'a str>,
    known: &[(&str, bool)],
    path: &str,
    what: &str,
    problems: &mut Problems,
) {
    let mut usable = 0;
    let mut any = false;
    for name in names {
        any = true;
        match known.iter().find(|(k, _)| *k == name) {
            None => problems.error(path, format!("{what} {name:?} is not supported")),
            Some((_, false)) => problems.warn(
                path,
                format!("{what} {name:?} is valid MOSN but not offered by rustls: skipped"),
            ),
            Some((_, true)) => usable += 1,
        }
    }
    if any && usable == 0 {
        problems.error(path, format!("no {what} left that rustls offers"));
    }
}

fn split(list: &str, sep: char) -> impl Iterator<Item = &str> {
    list.split(sep).map(str::trim).filter(|s| !s.is_empty())
}

/// MOSN's rule: a value holding "-----BEGIN" is PEM text, else a file path.
pub fn is_inline_pem(value: &str) -> bool {
    value.contains("-----BEGIN")
}

/// Envoy's `FilterChainMatch`: which connections a filter chain takes. The most
/// specific matching chain wins (Envoy's order of criteria).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct FilterChainMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// The destination IP (the original one, when redirected) is in one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix_ranges: Vec<CidrRange>,
    /// SNI names; "*.example.com" matches one or more leading labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// "tls" or "raw_buffer".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub transport_protocol: String,
    /// ALPN protocols offered by the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub application_protocols: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_prefix_ranges: Vec<CidrRange>,
}

/// Envoy's `CidrRange`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct CidrRange {
    pub address_prefix: String,
    pub prefix_len: u8,
}

impl FilterChainMatch {
    pub fn check(&self, path: &str, problems: &mut Problems) {
        if !matches!(self.transport_protocol.as_str(), "" | "tls" | "raw_buffer") {
            problems.error(
                format!("{path}.transport_protocol"),
                "expected \"tls\" or \"raw_buffer\"",
            );
        }
        for (field, ranges) in [
            ("prefix_ranges", &self.prefix_ranges),
            ("source_prefix_ranges", &self.source_prefix_ranges),
        ] {
            for (i, r) in ranges.iter().enumerate() {
                match r.address_prefix.parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        if r.prefix_len > max {
                            problems.error(
                                format!("{path}.{field}[{i}].prefix_len"),
                                format!("at most {max} for this address"),
                            );
                        }
                    }
                    Err(_) => problems.error(
                        format!("{path}.{field}[{i}].address_prefix"),
                        "not an IP address",
                    ),
                }
            }
        }
        for (i, name) in self.server_names.iter().enumerate() {
            if name.is_empty() || (name.contains('*') && !name.starts_with("*.")) {
                problems.error(
                    format!("{path}.server_names[{i}]"),
                    "a host name, or a wildcard of the form *.example.com",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_issues(tls: TlsConfig) -> Vec<String> {
        let mut p = Problems::default();
        tls.check("clusters[0].tls_context", false, &mut p);
        p.errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    fn with_names(names: &[&str]) -> TlsConfig {
        TlsConfig {
            status: true,
            server_name: "outbound_.80_._.app.default.svc.cluster.local".into(),
            match_subject_alt_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn a_cluster_takes_a_san_list() {
        let spiffe = "spiffe://cluster.local/ns/default/sa/app";
        assert!(cluster_issues(with_names(&[spiffe, "api.example.com", "10.0.0.1"])).is_empty());
        // Without a CA: verified against the system roots, as without a list.
        assert!(cluster_issues(TlsConfig {
            ca_cert: String::new(),
            ..with_names(&[spiffe])
        })
        .is_empty());
    }

    #[test]
    fn a_cluster_san_list_with_bad_values_names_the_entry() {
        assert_eq!(
            cluster_issues(with_names(&["a.example.com", "  "])),
            vec!["clusters[0].tls_context.match_subject_alt_names[1]: an empty name"]
        );
        assert_eq!(
            cluster_issues(TlsConfig {
                insecure_skip: true,
                ..with_names(&["a.example.com"])
            }),
            vec![
                "clusters[0].tls_context.match_subject_alt_names: insecure_skip verifies \
                 nothing, so these names would never be checked"
            ]
        );
    }
}
