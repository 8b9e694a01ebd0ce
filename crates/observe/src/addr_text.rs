//! Socket addresses and IPs as text, as `Display` writes them, without the
//! formatting machinery for IPv4 (what most peers are): access logs and spans write
//! addresses for every request. The digits come from `itoa` as `str`, so a `String`
//! takes them without a UTF-8 check.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where text goes: a `String`, a byte buffer, an [`AddrText`].
pub trait TextOut {
    fn put(&mut self, s: &str);
}

impl TextOut for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl TextOut for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// `ip:port`, `[ip]:port` for IPv6.
pub fn write_socket_addr(out: &mut impl TextOut, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            write_ipv4(out, *v4.ip());
            out.put(":");
            out.put(itoa::Buffer::new().format(v4.port()));
        }
        SocketAddr::V6(_) => out.put(Formatted::of(addr).as_str()),
    }
}

pub fn write_ip(out: &mut impl TextOut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => write_ipv4(out, v4),
        IpAddr::V6(v6) => out.put(Formatted::of(v6).as_str()),
    }
}

fn write_ipv4(out: &mut impl TextOut, ip: Ipv4Addr) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.put(".");
        }
        out.put(digits.format(octet));
    }
}

/// Long enough for any socket address (`[v6%scope]:port` is at most 58 bytes).
const MAX: usize = 64;

/// An address's text on the stack, for a writer that needs its length first.
pub struct AddrText {
    buf: [u8; MAX],
    len: usize,
}

impl AddrText {
    fn empty() -> AddrText {
        AddrText {
            buf: [0; MAX],
            len: 0,
        }
    }

    pub fn new(addr: SocketAddr) -> AddrText {
        let mut t = AddrText::empty();
        write_socket_addr(&mut t, addr);
        t
    }

    pub fn ip(ip: IpAddr) -> AddrText {
        let mut t = AddrText::empty();
        write_ip(&mut t, ip);
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only `str`s were put in, whole: this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl TextOut for AddrText {
    fn put(&mut self, s: &str) {
        let end = self.len + s.len();
        if let Some(slot) = self.buf.get_mut(self.len..end) {
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
        }
    }
}

/// An IPv6 address (or socket address) formatted by `Display` on the stack.
struct Formatted(AddrText);

impl Formatted {
    fn of(value: impl std::fmt::Display) -> Formatted {
        let mut t = AddrText::empty();
        let mut rest = &mut t.buf[..];
        // Always fits: MAX covers the longest form.
        let _ = write!(rest, "{value}");
        t.len = MAX - rest.len();
        Formatted(t)
    }

    fn as_str(&self) -> &str {
        self.0.as_str()
    }
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
            let mut s = String::from(">");
            write_socket_addr(&mut s, a);
            assert_eq!(s, format!(">{a}"));
            let mut v = Vec::new();
            write_ip(&mut v, a.ip());
            assert_eq!(v, a.ip().to_string().as_bytes());
        }
        for ip in ["10.20.30.4", "::1", "2001:db8::8a2e:370:7334"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(AddrText::ip(ip).as_str(), ip.to_string());
        }
    }
}
