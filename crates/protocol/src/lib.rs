//! Protocol layer of mosn-rs: turns bytes into messages and back.
//!
//! HTTP/1.1 is our own codec over `httparse` (rather than hyper's server and client):
//! a proxy must apply RFC 9112's framing rules more strictly than a library default,
//! answer each violation with its own status, forward header bytes without building a
//! header map, and give back its buffers while a connection idles.

pub mod http1;
pub mod xprotocol;
