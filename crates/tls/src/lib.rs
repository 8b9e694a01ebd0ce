//! TLS for mosn-rs, on rustls with the ring provider: server contexts built from a
//! listener filter chain's MOSN `tls_context` (or `tls_context_set`, chosen by SNI),
//! client contexts from a cluster's, certificate files watched and reloaded, and
//! [`Stream`], the connection type that is plain TCP or TLS.

pub mod client;
mod error;
mod identity;
mod material;
pub mod reload;
pub mod server;
mod stream;
mod verify;

pub use client::ClientTls;
pub use error::TlsError;
pub use identity::Identity;
pub use server::{ServerTls, ServerTlsSet};
pub use stream::Stream;

/// The process-wide crypto provider: rustls's ring provider.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
