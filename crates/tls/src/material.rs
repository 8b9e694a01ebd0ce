//! Certificates and keys from MOSN's fields: inline PEM text or a file path.

use crate::error::TlsError;
use mosn_config::tls::is_inline_pem;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// The PEM bytes of a field: its text, or the file it names.
pub(crate) fn pem_bytes(value: &str, path: &str) -> Result<Vec<u8>, TlsError> {
    if is_inline_pem(value) {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|e| TlsError::new(path, format!("cannot read {value:?}: {e}")))
}

pub(crate) fn certs(value: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = pem_bytes(value, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new(path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(path, "no PEM certificate found"));
    }
    Ok(certs)
}

pub(crate) fn key(value: &str, path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = pem_bytes(value, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::new(path, format!("no usable PEM private key: {e}")))
}

/// A certificate chain and its key, checked to belong together.
pub(crate) fn certified_key(
    chain: &str,
    key_value: &str,
    at: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = certs(chain, &format!("{at}.cert_chain"))?;
    let key = key(key_value, &format!("{at}.private_key"))?;
    let provider = crate::provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::new(format!("{at}.private_key"), format!("unsupported key: {e}")))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| {
        TlsError::new(
            format!("{at}.private_key"),
            format!("does not match the certificate in cert_chain: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

/// A root store from `ca_cert`.
pub(crate) fn roots(value: &str, path: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs(value, path)? {
        store
            .add(cert)
            .map_err(|e| TlsError::new(path, format!("bad CA certificate: {e}")))?;
    }
    Ok(store)
}

/// A field naming a file (not inline PEM, not empty).
pub(crate) fn is_file(value: &str) -> bool {
    !value.is_empty() && !is_inline_pem(value)
}
