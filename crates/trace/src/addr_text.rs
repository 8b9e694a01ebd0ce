//! A socket address's text on the stack, as `Display` writes it, without the
//! formatting machinery for IPv4 (what most peers are): spans write peers per
//! request.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Long enough for any socket address (`[v6%scope]:port` is at most 58 bytes).
const MAX: usize = 64;

pub(crate) struct AddrText {
    buf: [u8; MAX],
    len: usize,
}

impl AddrText {
    pub fn new(addr: SocketAddr) -> AddrText {
        let mut t = AddrText {
            buf: [0; MAX],
            len: 0,
        };
        match addr {
            SocketAddr::V4(v4) => {
                t.ipv4(*v4.ip());
                t.push(b":");
                t.push(itoa::Buffer::new().format(v4.port()).as_bytes());
            }
            SocketAddr::V6(_) => {
                let mut rest = &mut t.buf[..];
                // Always fits (MAX covers the longest form).
                let _ = write!(rest, "{addr}");
                t.len = MAX - rest.len();
            }
        }
        t
    }

    fn ipv4(&mut self, ip: Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b".");
            }
            self.push(itoa::Buffer::new().format(octet).as_bytes());
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.buf.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Digits, dots, colons, brackets and hex: ASCII.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// An IP address's text, as `Display` writes it.
pub(crate) fn ip_text(ip: IpAddr) -> AddrText {
    let mut t = AddrText {
        buf: [0; MAX],
        len: 0,
    };
    match ip {
        IpAddr::V4(v4) => t.ipv4(v4),
        IpAddr::V6(v6) => {
            let mut rest = &mut t.buf[..];
            let _ = write!(rest, "{v6}");
            t.len = MAX - rest.len();
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        for addr in [
            "127.0.0.1:80",
            "255.255.255.255:65535",
            "0.0.0.0:0",
            "[::1]:8080",
            "[fe80::1%7]:1",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            assert_eq!(AddrText::new(a).as_str(), a.to_string());
        }
        for ip in ["10.20.30.4", "::1", "2001:db8::8a2e:370:7334"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip).as_str(), ip.to_string());
        }
    }
}
