//! Reads the SNI and ALPN offers of a TLS ClientHello without consuming it, so a
//! filter chain can be chosen before deciding whether to terminate TLS or pass the
//! bytes through untouched (a tcp_proxy chain chosen by SNI).

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A TLS record header's length.
const RECORD_HEADER: usize = 5;
/// The largest TLS plaintext record (RFC 8446 §5.1).
const MAX_RECORD: usize = 16 * 1024;

/// What the ClientHello offers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
}

/// The ClientHello in `buf` (one record): `Ok(None)` when more bytes are needed,
/// `Err` when it is not a ClientHello we can read (the handshake then decides).
pub fn parse(buf: &[u8]) -> Result<Option<Hello>, ()> {
    if buf.len() < RECORD_HEADER {
        return Ok(None);
    }
    if buf[0] != 0x16 {
        return Err(());
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD {
        return Err(());
    }
    if buf.len() < RECORD_HEADER + len {
        return Ok(None);
    }
    let record = &buf[RECORD_HEADER..RECORD_HEADER + len];
    let mut r = Reader(record);
    // Handshake header: type ClientHello (1), 24-bit length (the hello must fit this
    // record; one split across records is left to the handshake).
    if r.u8()? != 1 {
        return Err(());
    }
    let hello_len = r.u24()?;
    let mut r = Reader(r.take(hello_len)?);
    r.take(2 + 32)?; // legacy_version, random
    let sid = usize::from(r.u8()?);
    r.take(sid)?;
    let suites = usize::from(r.u16()?);
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let mut hello = Hello::default();
    if r.0.is_empty() {
        return Ok(Some(hello));
    }
    let ext_len = usize::from(r.u16()?);
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let mut body = Reader(exts.take(len)?);
        match kind {
            0 => {
                // server_name: a list of (type, name); type 0 is a host name.
                let list = usize::from(body.u16()?);
                let mut names = Reader(body.take(list)?);
                while !names.0.is_empty() {
                    let t = names.u8()?;
                    let n = usize::from(names.u16()?);
                    let name = names.take(n)?;
                    if t == 0 && hello.sni.is_none() {
                        hello.sni = std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                    }
                }
            }
            16 => {
                let list = usize::from(body.u16()?);
                let mut protos = Reader(body.take(list)?);
                while !protos.0.is_empty() {
                    let n = usize::from(protos.u8()?);
                    hello.alpn.push(protos.take(n)?.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(Some(hello))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        if self.0.len() < n {
            return Err(());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ()> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ()> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Result<usize, ()> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

/// Peeks at the connection until its ClientHello is readable. `None`: unreadable
/// (not TLS, split across records, or the peer stalled/closed by `deadline`).
pub async fn peek(stream: &TcpStream, deadline: Instant) -> Option<Hello> {
    let mut buf = vec![0u8; 2048];
    let mut seen = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        match parse(&buf[..n]) {
            Ok(Some(hello)) => return Some(hello),
            Err(()) => return None,
            Ok(None) => {
                if n == buf.len() {
                    buf.resize((buf.len() * 2).min(RECORD_HEADER + MAX_RECORD), 0);
                    if n == buf.len() {
                        return None;
                    }
                } else if n == seen {
                    // Nothing new since the last look: give the peer a moment.
                    if tokio::time::timeout_at(
                        deadline,
                        tokio::time::sleep(std::time::Duration::from_millis(1)),
                    )
                    .await
                    .is_err()
                    {
                        return None;
                    }
                }
                seen = n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello, as rustls writes it.
    fn hello_bytes(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.roots.clear();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_sni_and_alpn_of_a_real_client_hello() {
        let bytes = hello_bytes("Api.Example.com", &[b"h2", b"http/1.1"]);
        let hello = parse(&bytes).unwrap().unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.example.com"));
        assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        // Any prefix is "need more", never a wrong answer.
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_client_hello() {
        assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
        // A handshake record whose content is not a ClientHello.
        assert!(parse(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]).is_err());
        // A hello whose inner lengths run past the record.
        assert!(parse(&[0x16, 3, 1, 0, 6, 1, 0, 0, 9, 3, 3]).is_err());
    }
}
