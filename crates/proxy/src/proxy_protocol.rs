//! The PROXY protocol (v1 text, v2 binary; haproxy.org's spec): a load balancer in
//! front states the client's address in a header before the connection's own bytes.
//! The header is read exactly (peeked first, then consumed), so whatever follows
//! (TLS, HTTP) is left on the socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// v2's 12-byte signature.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// v1's longest header, CRLF included (the spec's 107 bytes).
const V1_MAX: usize = 107;
/// v2's fixed part: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// What a header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection from this client address.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The balancer's own connection (v2 LOCAL, v1 UNKNOWN): keep the socket's address.
    Local,
}

/// A header's fate, from the bytes seen so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of this many bytes.
    Done(Header, usize),
    /// More bytes are needed.
    Partial,
    /// Not a PROXY protocol header.
    Absent,
    /// A header, but malformed.
    Bad(&'static str),
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let v2_prefix = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] {
        return if buf.len() < V2_FIXED {
            Parsed::Partial
        } else {
            parse_v2(buf)
        };
    }
    let v1_prefix = buf.len().min(6);
    if buf[..v1_prefix] == b"PROXY "[..v1_prefix] {
        return parse_v1(buf);
    }
    Parsed::Absent
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Bad("v1 header without CRLF in 107 bytes")
        } else {
            Parsed::Partial
        };
    };
    if end + 2 > V1_MAX {
        return Parsed::Bad("v1 header longer than 107 bytes");
    }
    let Ok(line) = std::str::from_utf8(&buf[6..end]) else {
        return Parsed::Bad("v1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (Ok(src), Ok(dst)) = (src.parse::<IpAddr>(), dst.parse::<IpAddr>()) else {
                return Parsed::Bad("v1 header with a bad address");
            };
            let v4 = *proto == "TCP4";
            if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
                return Parsed::Bad("v1 address family does not match its protocol");
            }
            let (Some(sport), Some(dport)) = (port(sport), port(dport)) else {
                return Parsed::Bad("v1 header with a bad port");
            };
            Header::Proxied {
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            }
        }
        _ => return Parsed::Bad("v1 header with bad fields"),
    };
    Parsed::Done(header, end + 2)
}

/// A decimal port without sign or leading zeros (the spec's rule).
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Parsed::Bad("v2 header with an unknown version");
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = V2_FIXED + len;
    if buf.len() < total {
        return Parsed::Partial;
    }
    let body = &buf[V2_FIXED..total];
    let header = match ver_cmd & 0x0F {
        0x0 => Header::Local,
        0x1 => match buf[13] {
            // AF_INET, STREAM
            0x11 if body.len() >= 12 => Header::Proxied {
                source: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(body[0], body[1], body[2], body[3])),
                    u16::from_be_bytes([body[8], body[9]]),
                ),
                destination: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(body[4], body[5], body[6], body[7])),
                    u16::from_be_bytes([body[10], body[11]]),
                ),
            },
            // AF_INET6, STREAM
            0x21 if body.len() >= 36 => {
                let ip = |b: &[u8]| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(b);
                    IpAddr::V6(Ipv6Addr::from(o))
                };
                Header::Proxied {
                    source: SocketAddr::new(
                        ip(&body[0..16]),
                        u16::from_be_bytes([body[32], body[33]]),
                    ),
                    destination: SocketAddr::new(
                        ip(&body[16..32]),
                        u16::from_be_bytes([body[34], body[35]]),
                    ),
                }
            }
            // UNSPEC, or UDP/unix: the spec says to keep the socket's addresses.
            0x00 => Header::Local,
            0x11 | 0x21 => return Parsed::Bad("v2 address block too short"),
            _ => Header::Local,
        },
        _ => return Parsed::Bad("v2 header with an unknown command"),
    };
    Parsed::Done(header, total)
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Malformed(&'static str),
    TimedOut,
    Closed,
}

/// Reads the header from `stream` by `deadline`. `Ok(None)`: no header, and the
/// listener allows that.
pub async fn read(
    stream: &TcpStream,
    deadline: Instant,
    allow_missing: bool,
) -> Result<Option<Header>, Refused> {
    let mut buf = vec![0u8; V2_FIXED];
    let mut want = 1;
    loop {
        buf.resize(want.max(buf.len()), 0);
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Err(Refused::TimedOut),
            Ok(Err(_)) | Ok(Ok(0)) => return Err(Refused::Closed),
            Ok(Ok(n)) => n,
        };
        match parse(&buf[..n]) {
            Parsed::Done(header, len) => {
                consume(stream, len, deadline).await?;
                return Ok(Some(header));
            }
            Parsed::Absent if allow_missing => return Ok(None),
            Parsed::Absent => return Err(Refused::Missing),
            Parsed::Bad(why) => return Err(Refused::Malformed(why)),
            Parsed::Partial => {
                // Peek returns what is there: wait for more, asking for a larger view.
                if n == buf.len() {
                    want = buf.len() * 2;
                    if want > V2_FIXED + usize::from(u16::MAX) {
                        return Err(Refused::Malformed("header too long"));
                    }
                } else {
                    let readable = tokio::time::timeout_at(deadline, wait_for_more(stream, n));
                    match readable.await {
                        Err(_) => return Err(Refused::TimedOut),
                        Ok(false) => return Err(Refused::Closed),
                        Ok(true) => {}
                    }
                }
            }
        }
    }
}

/// Waits until more than `seen` bytes are buffered (false when the peer closed).
async fn wait_for_more(stream: &TcpStream, seen: usize) -> bool {
    let mut probe = vec![0u8; seen + 1];
    loop {
        if stream.readable().await.is_err() {
            return false;
        }
        match stream.peek(&mut probe).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n > seen => return true,
            // Same bytes as before: yield until the socket has new data.
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
}

/// Reads and drops exactly `len` bytes (the header, already peeked).
async fn consume(stream: &TcpStream, len: usize, deadline: Instant) -> Result<(), Refused> {
    let mut left = len;
    let mut sink = [0u8; 256];
    while left > 0 {
        let take = left.min(sink.len());
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Err(_) => return Err(Refused::TimedOut),
            Ok(Err(_)) => return Err(Refused::Closed),
            Ok(Ok(())) => {}
        }
        match stream.try_read(&mut sink[..take]) {
            Ok(0) => return Err(Refused::Closed),
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(Refused::Closed),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(h),
            Parsed::Done(
                Header::Proxied {
                    source: "192.0.2.1:56324".parse().unwrap(),
                    destination: "198.51.100.2:443".parse().unwrap()
                },
                45
            )
        );
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert!(matches!(
            parse(v6),
            Parsed::Done(Header::Proxied { .. }, 40)
        ));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Done(Header::Local, 15));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parsed::Partial);
        assert_eq!(parse(b"PRO"), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Absent);
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
            Parsed::Bad(_)
        ));
        let mut endless = b"PROXY ".to_vec();
        endless.resize(126, b'1');
        assert!(matches!(parse(&endless), Parsed::Bad(_)));
    }

    #[test]
    fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0x00, 0x0C, 10, 0, 0, 1, 10, 0, 0, 2, 0x1F, 0x90, 0x01, 0xBB,
        ]);
        h.extend_from_slice(b"rest");
        assert_eq!(
            parse(&h),
            Parsed::Done(
                Header::Proxied {
                    source: "10.0.0.1:8080".parse().unwrap(),
                    destination: "10.0.0.2:443".parse().unwrap()
                },
                28
            )
        );
        assert_eq!(parse(&h[..20]), Parsed::Partial);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(parse(&local), Parsed::Done(Header::Local, 16));
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x31, 0x11, 0x00, 0x00]);
        assert!(matches!(parse(&bad), Parsed::Bad(_)));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
        assert!(matches!(parse(&short), Parsed::Bad(_)));
    }
}
