//! Listener filters, run on an accepted socket in their configured order: the PROXY
//! protocol (the client's address from a trusted balancer's header) and MOSN's
//! `original_dst` (the connection goes to the listener of its original destination).

use crate::proxy_protocol::{self, Header};
use crate::snapshot::{ListenerRuntime, Snapshot};
use crate::Accepted;
use mosn_config::listener_filters::{ListenerFilter, OriginalDstMode};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Runs the listener's filters; None: the connection is to be closed.
pub(crate) async fn run(
    stream: &TcpStream,
    mut conn: Accepted,
    mut listener: Arc<ListenerRuntime>,
    snapshot: &Snapshot,
) -> Option<(Accepted, Arc<ListenerRuntime>)> {
    let deadline = Instant::now() + listener.handshake_timeout;
    let filters = listener.listener_filters.clone();
    for f in &filters {
        match *f {
            ListenerFilter::ProxyProtocol {
                allow_requests_without_proxy_protocol,
            } => {
                match proxy_protocol::read(stream, deadline, allow_requests_without_proxy_protocol)
                    .await
                {
                    Ok(Some(Header::Proxied {
                        source,
                        destination,
                    })) => {
                        conn.peer = source;
                        conn.local = destination;
                    }
                    Ok(_) => {}
                    Err(why) => {
                        listener.stats.proxy_protocol_error.inc();
                        tracing::debug!(peer = %conn.peer, reason = ?why, "PROXY protocol header refused: closing");
                        return None;
                    }
                }
            }
            ListenerFilter::OriginalDst {
                mode,
                fallback_to_local,
                hand_off,
            } => {
                let original = match mode {
                    OriginalDstMode::Redirect => redirected_destination(stream),
                    OriginalDstMode::Tproxy => stream.local_addr().ok(),
                };
                let Some(original) = original else {
                    // Not redirected (a direct connection): stay on this listener.
                    continue;
                };
                conn.local = original;
                if hand_off {
                    listener = target(snapshot, &listener, original, fallback_to_local);
                }
            }
        }
    }
    Some((conn, listener))
}

/// SO_ORIGINAL_DST (iptables REDIRECT): the address the client connected to.
fn redirected_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let sock = socket2::SockRef::from(stream);
    let addr = match stream.local_addr().ok()? {
        SocketAddr::V4(_) => sock.original_dst().ok()?,
        SocketAddr::V6(_) => sock.original_dst_ipv6().ok()?,
    };
    addr.as_socket()
}

/// MOSN's choice: the listener on exactly the original address, else one on its port
/// at 127.0.0.1 (with `fallback_to_local`) or 0.0.0.0, else the accepting listener.
fn target(
    snapshot: &Snapshot,
    accepting: &Arc<ListenerRuntime>,
    original: SocketAddr,
    fallback_to_local: bool,
) -> Arc<ListenerRuntime> {
    let on = |ip: IpAddr| {
        snapshot
            .listeners
            .iter()
            .find(|l| l.addr == SocketAddr::new(ip, original.port()))
            .cloned()
    };
    let fallback_ip = if fallback_to_local {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    on(original.ip())
        .or_else(|| on(fallback_ip))
        .unwrap_or_else(|| accepting.clone())
}
