//! Certificate verifiers beyond webpki's defaults: a client certificate requested but
//! not verified (MOSN's `require_client_cert` without `verify_client`), a SAN
//! allow-list on verified client certificates, the same list in place of the name
//! check on upstream certificates (Envoy's `match_subject_alt_names` on a cluster,
//! Istio's SPIFFE identities), and the upstream opt-out (`insecure_skip`). Handshake
//! signatures are still checked in every case.

use crate::Identity;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};
use std::sync::Arc;

/// The handshake signature checks of a verifier with a `provider` field: the
/// provider's algorithms, the same for client and server certificate verifiers.
macro_rules! provider_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Asks for a client certificate and takes any (MOSN's RequestClientCert).
#[derive(Debug)]
pub(crate) struct AnyClientCert {
    pub provider: Arc<CryptoProvider>,
    pub mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }
    provider_signature_checks!();
}

/// A verified client certificate must also carry one of these names: a SAN equal to
/// it (DNS, URI such as a SPIFFE ID, or IP), or a DNS SAN whose wildcard covers it.
#[derive(Debug)]
pub(crate) struct SanAllowList {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub names: Vec<String>,
}

impl ClientCertVerifier for SanAllowList {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let listed = san_listed(end_entity, &self.names)
            .map_err(|e| Error::General(format!("client {e}")))?;
        if listed {
            Ok(verified)
        } else {
            Err(Error::General(
                "client certificate carries none of match_subject_alt_names".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate that the SAN checks cannot read.
#[derive(Debug, thiserror::Error)]
#[error("certificate does not parse: {0}")]
pub(crate) struct Unparsable(String);

/// Does the certificate carry one of `names`: a SAN equal to it (DNS case-insensitively,
/// URI such as a SPIFFE ID exactly, IP by value), or a DNS SAN whose wildcard covers it
/// (as Envoy's exact matcher does on DNS SANs)? The one rule for client certificates
/// and upstream certificates alike.
pub(crate) fn san_listed(
    end_entity: &CertificateDer<'_>,
    names: &[String],
) -> Result<bool, Unparsable> {
    let identity =
        Identity::of(end_entity).ok_or_else(|| Unparsable("not X.509 DER".to_owned()))?;
    let cert =
        webpki::EndEntityCert::try_from(end_entity).map_err(|e| Unparsable(e.to_string()))?;
    let covered = |n: &String| {
        ServerName::try_from(n.as_str())
            .is_ok_and(|sn| cert.verify_is_valid_for_subject_name(&sn).is_ok())
    };
    Ok(names.iter().any(|n| identity.has_san(n) || covered(n)))
}

/// An upstream certificate that chains to a trusted CA but carries none of the
/// cluster's `match_subject_alt_names`.
#[derive(thiserror::Error)]
#[error("the upstream certificate carries none of match_subject_alt_names {wanted:?}; its SANs: {found}")]
pub(crate) struct NoListedSan {
    wanted: Vec<String>,
    found: String,
}

// rustls prints a certificate error's cause with `{:?}` (in the handshake failure
// that the pool logs): make that the sentence, not a struct dump.
impl std::fmt::Debug for NoListedSan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl NoListedSan {
    fn new(end_entity: &CertificateDer<'_>, wanted: &[String]) -> NoListedSan {
        let found = match Identity::of(end_entity) {
            Some(id) => {
                let names: Vec<String> = id
                    .uris
                    .iter()
                    .map(|u| format!("URI:{u}"))
                    .chain(id.dns.iter().map(|d| format!("DNS:{d}")))
                    .chain(id.ips.iter().map(|i| format!("IP:{i}")))
                    .collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            }
            None => "unreadable".to_owned(),
        };
        NoListedSan {
            wanted: wanted.to_vec(),
            found,
        }
    }
}

/// A cluster's `match_subject_alt_names`: the upstream's chain is verified against the
/// trusted roots as for any server (signatures, validity period, the serverAuth
/// usage), and then, in place of the SNI name, the certificate must carry one of the
/// names. This is Envoy's rule: with a SAN list the SNI is only sent, never matched,
/// so Istio's `outbound_.80_._.svc...` SNI with a SPIFFE identity verifies.
#[derive(Debug)]
pub(crate) struct UpstreamSanList {
    pub roots: Arc<RootCertStore>,
    pub provider: Arc<CryptoProvider>,
    pub names: Vec<String>,
}

impl ServerCertVerifier for UpstreamSanList {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        // rustls's own chain check without its name check: the names are ours below.
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let listed =
            san_listed(end_entity, &self.names).map_err(|e| Error::General(e.to_string()))?;
        if listed {
            Ok(ServerCertVerified::assertion())
        } else {
            let why = NoListedSan::new(end_entity, &self.names);
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(why)),
            )))
        }
    }
    provider_signature_checks!();
}

/// `insecure_skip`: the upstream's certificate is not verified (signatures are).
#[derive(Debug)]
pub(crate) struct NoServerVerification {
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    provider_signature_checks!();
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
