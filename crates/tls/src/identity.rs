//! A certificate's identity: its subject and subject alternative names, for the SAN
//! allow-list and for passing a client's identity on (X-Forwarded-Client-Cert).

use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use x509_parser::extensions::GeneralName;

/// What a certificate says about its holder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject as RFC 4514 text.
    pub subject: String,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Identity {
    /// Reads a DER certificate; None when it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Identity> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let mut id = Identity {
            subject: parsed.subject().to_string(),
            ..Identity::default()
        };
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => id.dns.push(d.to_string()),
                    GeneralName::URI(u) => id.uris.push(u.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            id.ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            id.ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// This certificate as an X-Forwarded-Client-Cert element (Envoy's format):
    /// `Hash=<sha256 hex of the DER>` and, as asked, `Subject="..."`, `URI=...` and
    /// `DNS=...` (one per name).
    pub fn xfcc_element(cert: &CertificateDer<'_>, subject: bool, uri: bool, dns: bool) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let mut out = String::with_capacity(96);
        out.push_str("Hash=");
        for b in digest.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        let Some(id) = Identity::of(cert) else {
            return out;
        };
        if subject {
            out.push_str(";Subject=\"");
            out.push_str(&id.subject.replace('"', "\\\""));
            out.push('"');
        }
        if uri {
            for u in &id.uris {
                out.push_str(";URI=");
                out.push_str(u);
            }
        }
        if dns {
            for d in &id.dns {
                out.push_str(";DNS=");
                out.push_str(d);
            }
        }
        out
    }

    /// Does one of its SANs equal `name` (a DNS name, case-insensitively; a URI
    /// exactly; an IP address by value)?
    pub fn has_san(&self, name: &str) -> bool {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        self.uris.iter().any(|u| u == name) || self.dns.iter().any(|d| d.eq_ignore_ascii_case(name))
    }
}
