//! NET/IO: listening sockets. Each worker gets its own socket per listener address,
//! bound with SO_REUSEPORT so the kernel spreads connections across workers and no
//! worker shares an accept queue (or a lock) with another. Sockets are plain file
//! descriptors, so a later process can adopt them.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Listen backlog, as Envoy and nginx default to a large value on Linux.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Opens a non-blocking listening TCP socket with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    bind_with(addr, backlog, false)
}

/// Like [`bind_reuseport`]; `transparent` sets IP_TRANSPARENT (TPROXY: the socket
/// accepts connections to addresses that are not the host's; needs CAP_NET_ADMIN).
pub fn bind_with(
    addr: SocketAddr,
    backlog: i32,
    transparent: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if transparent {
        socket.set_ip_transparent(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Opens `count` sockets on one address, one per worker. If the address is taken by a
/// socket without SO_REUSEPORT, the first bind fails and the error names the address.
pub fn bind_per_worker(
    addr: SocketAddr,
    count: usize,
    transparent: bool,
) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1))
        .map(|_| {
            bind_with(addr, DEFAULT_BACKLOG, transparent)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_a_port() {
        let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        let more = bind_per_worker(addr, 2, false).unwrap();
        assert_eq!(more.len(), 2);
        assert_eq!(more[1].local_addr().unwrap(), addr);
    }

    #[test]
    fn a_taken_port_is_an_error_naming_it() {
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap();
        let err = bind_per_worker(addr, 1, false).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()));
    }
}
