//! Socket addresses and IPs as text, as `Display` writes them, without the
//! formatting machinery for IPv4 (what most peers are): access logs and spans write
//! addresses for every request, so an address they keep writing carries its text,
//! made once ([`TextedAddr`]). An IPv4 address's text is made on the stack from
//! tables and appended at once: an append is a capacity check and a `memcpy` call,
//! which cost more than making the digits.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};

/// Where text goes: a `String` or a byte buffer.
pub trait TextOut {
    fn put(&mut self, s: &str);

    /// Appends text made on the stack.
    fn put_ascii(&mut self, text: &AsciiText) {
        self.put(text.as_str());
    }

    /// Appends the first `len` bytes of `padded` (ASCII: a [`TextedAddr`]'s text).
    fn put_padded(&mut self, padded: &[u8; V4_TEXT], len: usize) {
        if let Some(text) = padded.get(..len).and_then(|t| std::str::from_utf8(t).ok()) {
            self.put(text);
        }
    }
}

impl TextOut for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }

    fn put_ascii(&mut self, text: &AsciiText) {
        // A `String` takes no bytes without a UTF-8 check: that of the whole buffer
        // is cheaper than that of the text alone (see `AsciiText`).
        if let Ok(whole) = std::str::from_utf8(&text.bytes) {
            let end = self.len() + text.len;
            self.push_str(whole);
            self.truncate(end);
        }
    }
}

impl TextOut for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn put_ascii(&mut self, text: &AsciiText) {
        let end = self.len() + text.len;
        self.extend_from_slice(&text.bytes);
        self.truncate(end);
    }

    /// Whole, then cut: a copy of a fixed size is a few moves.
    fn put_padded(&mut self, padded: &[u8; V4_TEXT], len: usize) {
        let end = self.len() + len.min(V4_TEXT);
        self.extend_from_slice(padded);
        self.truncate(end);
    }
}

/// `ip:port`, `[ip]:port` for IPv6.
pub fn write_socket_addr(out: &mut impl TextOut, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => out.put_ascii(&AsciiText::ipv4(*v4.ip(), Some(v4.port()))),
        SocketAddr::V6(_) => put_display(out, addr),
    }
}

/// IPv6 text, by `Display`. Not inlined: its buffer and call would make the frame of
/// the IPv4 path, the common one, bigger.
#[inline(never)]
fn put_display(out: &mut impl TextOut, value: impl std::fmt::Display) {
    out.put(AddrText::display(value).as_str());
}

/// ASCII text at the start of a buffer of a fixed size (the rest is ASCII too, and
/// not the text), for [`TextOut::put_ascii`]: appended by copying the whole buffer
/// and cutting the rest, since a copy of a fixed size is a few moves where one of
/// the text's length is a `memcpy` call. Aligned and 32 bytes long for
/// `str::from_utf8`, which checks aligned 16-byte blocks a word at a time but a
/// shorter rest byte by byte: measured, it checks these 32 bytes in some 66
/// instructions, the 15 of `127.0.0.1:18080` alone in some 127.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct AsciiText {
    bytes: [u8; V4_MAX],
    len: usize,
}

impl AsciiText {
    /// `a.b.c.d`, then `:port` when there is one.
    fn ipv4(ip: Ipv4Addr, port: Option<u16>) -> AsciiText {
        let mut t = AsciiText {
            bytes: [0; V4_MAX],
            len: 0,
        };
        t.len = ipv4_text(&mut t.bytes, ip, port);
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is put in: this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// A socket address with its text made once: for one written again and again (a
/// connection's addresses are written for each of its requests by the access log
/// and the span, a host's for each request it serves). The size of a `SocketAddr`
/// and a few bytes: it is copied into every request's record. IPv6 addresses, rare
/// here, are written by `Display` when asked, as before.
#[derive(Clone, Copy)]
pub struct TextedAddr(Texted);

#[derive(Clone, Copy)]
enum Texted {
    V4 {
        /// `ip:port`, then padding (appended whole, then cut: see `AsciiText`).
        text: [u8; V4_TEXT],
        len: u8,
        /// How much of `text` is the IP.
        ip_len: u8,
        ip: [u8; 4],
        port: u16,
    },
    V6(SocketAddrV6),
}

/// Room for the longest IPv4 text, `255.255.255.255:65535` (21 bytes).
const V4_TEXT: usize = 24;

impl TextedAddr {
    pub fn new(addr: SocketAddr) -> TextedAddr {
        TextedAddr(match addr {
            SocketAddr::V4(v4) => {
                let made = AsciiText::ipv4(*v4.ip(), Some(v4.port()));
                let mut text = [0; V4_TEXT];
                let len = made.len.min(V4_TEXT);
                text[..len].copy_from_slice(&made.bytes[..len]);
                // The port follows the last ':'.
                let ip_len = text[..len].iter().rposition(|&b| b == b':').unwrap_or(len);
                Texted::V4 {
                    text,
                    len: len as u8,
                    ip_len: ip_len as u8,
                    ip: v4.ip().octets(),
                    port: v4.port(),
                }
            }
            SocketAddr::V6(v6) => Texted::V6(v6),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        match self.0 {
            Texted::V4 { ip, port, .. } => SocketAddr::from((ip, port)),
            Texted::V6(v6) => SocketAddr::V6(v6),
        }
    }

    /// Appends `ip:port` (`[ip]:port` for IPv6), as `Display` writes it.
    pub fn write(&self, out: &mut impl TextOut) {
        match &self.0 {
            Texted::V4 { text, len, .. } => out.put_padded(text, usize::from(*len)),
            Texted::V6(v6) => put_display(out, v6),
        }
    }

    /// The text of the IP alone (`Display`'s), to `with`.
    pub fn with_ip_text<R>(&self, with: impl FnOnce(&[u8]) -> R) -> R {
        match &self.0 {
            Texted::V4 { text, ip_len, .. } => {
                with(text.get(..usize::from(*ip_len)).unwrap_or_default())
            }
            Texted::V6(v6) => with(AddrText::display(v6.ip()).as_bytes()),
        }
    }

    /// The text of `ip:port` (`Display`'s), to `with`.
    pub fn with_text<R>(&self, with: impl FnOnce(&[u8]) -> R) -> R {
        match &self.0 {
            Texted::V4 { text, len, .. } => with(text.get(..usize::from(*len)).unwrap_or_default()),
            Texted::V6(v6) => with(AddrText::display(v6).as_bytes()),
        }
    }
}

impl From<SocketAddr> for TextedAddr {
    fn from(addr: SocketAddr) -> TextedAddr {
        TextedAddr::new(addr)
    }
}

impl std::str::FromStr for TextedAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<TextedAddr, Self::Err> {
        s.parse().map(TextedAddr::new)
    }
}

impl PartialEq for TextedAddr {
    /// The text follows from the address.
    fn eq(&self, other: &TextedAddr) -> bool {
        self.addr() == other.addr()
    }
}

impl Eq for TextedAddr {}

impl std::fmt::Debug for TextedAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr().fmt(f)
    }
}

impl std::fmt::Display for TextedAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr().fmt(f)
    }
}

/// Room for the longest IPv4 text, `255.255.255.255:65535` (21 bytes), and for the
/// whole words written past its end (a port's 8 bytes from 16); 32 for
/// [`AsciiText`].
const V4_MAX: usize = 32;

/// An octet's decimal text and a dot, left-aligned in 4 bytes (written whole), and
/// how many of them are the text: the octets are four table loads and four stores.
/// 8 bytes each, so an entry's address is a scaled index.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Octet {
    text: [u8; 4],
    len: u8,
}

static OCTETS: [Octet; 256] = octets();

const fn octets() -> [Octet; 256] {
    let mut table = [Octet {
        text: [0; 4],
        len: 0,
    }; 256];
    let mut n = 0;
    while n < 256 {
        table[n] = octet(n);
        n += 1;
    }
    table
}

const fn octet(n: usize) -> Octet {
    let digits = [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ];
    let len = 1 + (n >= 10) as usize + (n >= 100) as usize;
    // Past the dot, dots: never the text's, but ASCII like the rest of `AsciiText`.
    let mut text = [b'.'; 4];
    let mut i = 0;
    while i < len {
        text[i] = digits[3 - len + i];
        i += 1;
    }
    Octet {
        text,
        len: len as u8 + 1,
    }
}

/// "00" to "99": a port's digits two at a time.
static PAIRS: [[u8; 2]; 100] = pairs();

const fn pairs() -> [[u8; 2]; 100] {
    let mut table = [[0; 2]; 100];
    let mut n = 0;
    while n < 100 {
        table[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    table
}

/// Writes `a.b.c.d` (then `:port`) at the start of `buf`; returns its length.
#[inline]
fn ipv4_text(buf: &mut [u8; V4_MAX], ip: Ipv4Addr, port: Option<u16>) -> usize {
    let mut at = 0;
    for octet in ip.octets() {
        let o = &OCTETS[usize::from(octet)];
        buf[at..at + 4].copy_from_slice(&o.text);
        at += usize::from(o.len);
    }
    // The last octet's dot is `:` or past the end.
    let end = at - 1;
    match port {
        Some(port) => {
            buf[end] = b':';
            write_port(buf, at, port)
        }
        None => end,
    }
}

/// Writes `port`'s digits from `at`; returns where they end. The five digits are
/// made in one `u64` and stored at once, the leading zeros shifted out: no loop.
#[inline]
fn write_port(buf: &mut [u8; V4_MAX], at: usize, port: u16) -> usize {
    let n = usize::from(port);
    let hundreds = n / 100;
    let first = hundreds / 100;
    // The first digit in the lowest byte.
    let digits = u64::from(b'0' + first as u8)
        | u64::from(u16::from_le_bytes(PAIRS[hundreds % 100])) << 8
        | u64::from(u16::from_le_bytes(PAIRS[n % 100])) << 24;
    // The leading zeros are the lowest bytes that are '0'; a set bit in the last
    // digit's byte keeps that digit (port 0).
    let zeros = ((digits ^ 0x30_3030_3030) | 1 << 32).trailing_zeros() / 8;
    buf[at..at + 8].copy_from_slice(&(digits >> (8 * zeros)).to_le_bytes());
    at + 5 - zeros as usize
}

/// Long enough for any socket address (`[v6%scope]:port` is at most 58 bytes).
const MAX: usize = 64;

/// An IPv6 address's text (or any `Display`) on the stack, for a writer that needs its
/// length first.
struct AddrText {
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

    /// An IPv6 address (or socket address) as `Display` writes it.
    fn display(value: impl std::fmt::Display) -> AddrText {
        let mut t = AddrText::empty();
        let mut rest = &mut t.buf[..];
        // Always fits: MAX covers the longest form.
        let _ = write!(rest, "{value}");
        t.len = MAX - rest.len();
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only `str`s and ASCII were put in, whole: this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
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
            let mut s = String::from(">");
            write_socket_addr(&mut s, a);
            assert_eq!(s, format!(">{a}"));
            let mut v = b">".to_vec();
            write_socket_addr(&mut v, a);
            assert_eq!(v, format!(">{a}").as_bytes());
        }
    }

    #[test]
    fn texted_addrs_write_what_display_writes() {
        for addr in [
            "127.0.0.1:80",
            "255.255.255.255:65535",
            "0.0.0.0:0",
            "1.2.3.4:1",
            "[::1]:8080",
            "[fe80::1%7]:1",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            let t = TextedAddr::from(a);
            assert_eq!(addr.parse::<TextedAddr>(), Ok(t));
            assert!(std::mem::size_of::<TextedAddr>() <= 40);
            assert_eq!(t.addr(), a);
            assert_eq!(t, TextedAddr::new(a));
            assert_eq!(format!("{t}"), a.to_string());
            assert_eq!(format!("{t:?}"), format!("{a:?}"));
            let mut v = b">".to_vec();
            t.write(&mut v);
            assert_eq!(v, format!(">{a}").as_bytes());
            let mut s = String::from(">");
            t.write(&mut s);
            assert_eq!(s, format!(">{a}"));
            assert_eq!(t.with_text(<[u8]>::to_vec), a.to_string().as_bytes());
            assert_eq!(
                t.with_ip_text(<[u8]>::to_vec),
                a.ip().to_string().as_bytes()
            );
        }
    }

    /// What `Display` writes, through each writer.
    fn check(a: SocketAddr) {
        let want = a.to_string();
        let t = TextedAddr::new(a);
        assert_eq!(t.with_text(<[u8]>::to_vec), want.as_bytes());
        let mut s = String::from(">");
        write_socket_addr(&mut s, a);
        assert_eq!(s, format!(">{want}"));
        let mut v = b">".to_vec();
        write_socket_addr(&mut v, a);
        assert_eq!(v, format!(">{want}").as_bytes());
        let ip = a.ip().to_string();
        assert_eq!(t.with_ip_text(<[u8]>::to_vec), ip.as_bytes());
        let mut s = String::from(">");
        t.write(&mut s);
        assert_eq!(s, format!(">{want}"));
    }

    #[test]
    fn ipv4_edges() {
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "127.0.0.1:18080",
            "1.2.3.4:1",
            "10.20.30.40:10",
            "100.200.9.99:100",
            "9.99.199.255:1000",
            "192.168.0.1:10000",
            "8.8.8.8:9",
            "8.8.8.8:99",
            "8.8.8.8:999",
            "8.8.8.8:9999",
            "8.8.8.8:65530",
        ] {
            check(addr.parse().unwrap());
        }
    }

    /// Every octet in every place, every port.
    #[test]
    fn ipv4_all_octets_and_ports() {
        for n in 0..=255u8 {
            for octets in [[n, 0, 0, 0], [1, n, 2, 3], [255, 255, n, 1], [0, 9, 10, n]] {
                check(SocketAddr::from((octets, u16::from(n) * 257)));
            }
        }
        for port in 0..=u16::MAX {
            check(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }

    /// Calls per run of the benches below (`BENCH_N`, default 1M): instructions per
    /// call are the difference of two callgrind runs' totals (`BENCH_N=0` and not)
    /// over N.
    fn bench_n() -> u32 {
        std::env::var("BENCH_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000)
    }

    /// `write_socket_addr` of a typical address into `out`, `bench_n()` times
    /// (`clear` empties it between calls).
    fn write_n_times<T: TextOut>(mut out: T, clear: impl Fn(&mut T)) {
        let a: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        for _ in 0..bench_n() {
            clear(&mut out);
            write_socket_addr(&mut out, std::hint::black_box(a));
            std::hint::black_box(&mut out);
        }
    }

    /// `valgrind --tool=callgrind <test binary> --ignored --exact
    /// addr_text::tests::bench_write_socket_addr`, with `BENCH_N=0` and without.
    #[test]
    #[ignore]
    fn bench_write_socket_addr() {
        write_n_times(String::with_capacity(64), String::clear);
    }

    #[test]
    #[ignore]
    fn bench_write_socket_addr_bytes() {
        write_n_times(Vec::with_capacity(64), Vec::clear);
    }

    #[test]
    #[ignore]
    fn bench_texted_addr_new() {
        let a: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        for _ in 0..bench_n() {
            std::hint::black_box(TextedAddr::new(std::hint::black_box(a)));
        }
    }
}
