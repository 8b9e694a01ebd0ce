//! Request mirroring: a copy of a request goes to another cluster for a share of
//! requests; its response is read and dropped. It runs as its own task on this
//! worker, so it never delays or fails the original.

use super::exchange::take_connection;
use super::headers::{self, UpstreamRequest};
use super::io::{read_some, write_all_vectored};
use super::Downstream;
use bytes::{Bytes, BytesMut};
use mosn_protocol::http1::{parse_response, RequestHead};
use mosn_upstream::{ClusterManager, LbContext};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

/// How long a mirrored request may take in all.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a copy of `head` (with `target` if the route rewrote it) and `body` to
/// `cluster`. The Host gets Envoy's `-shadow` suffix so the mirror can tell copies apart.
pub(super) fn spawn(
    conn: &Downstream<'_>,
    head: &RequestHead,
    target: Option<&[u8]>,
    body: Bytes,
    cluster: &str,
) {
    let clusters: Arc<ClusterManager> = conn.listener.clusters.clone();
    let Some(cluster) = clusters.get(cluster) else {
        return;
    };
    let mut shadow_host = head.host().to_vec();
    shadow_host.extend_from_slice(b"-shadow");
    let mut head_out = Vec::with_capacity(head.buf.len() + 64);
    headers::write_upstream_request(
        &mut head_out,
        head,
        &UpstreamRequest {
            target,
            host: Some(&shadow_host),
            remove: &[],
            add: &[],
            forwarded_for: conn
                .listener
                .options
                .add_x_forwarded_for
                .then_some(conn.peer_ip.as_str()),
            drop_expect: true,
            fallback_host: "",
            upgrade: None,
            xfcc: conn.client_cert.action(conn.listener.xfcc),
            trace: None,
        },
    );
    let limits = conn.listener.upstream_limits;
    tokio::task::spawn_local(async move {
        let run = async {
            let host = cluster.choose_host(&LbContext::default())?;
            let mut up = take_connection(&cluster, &host).await.ok()?;
            cluster.stats.upstream_request_total.inc();
            let mut parts = [IoSlice::new(&head_out), IoSlice::new(&body)];
            write_all_vectored(&mut up.stream, &mut parts, MIRROR_TIMEOUT)
                .await
                .ok()?;
            // Read the response head for the stats; the connection is then dropped
            // rather than pooled, so no body needs reading.
            let mut buf = BytesMut::new();
            loop {
                if let Ok(Some(resp)) = parse_response(&mut buf, &limits) {
                    cluster.stats.response(resp.status);
                    return Some(());
                }
                if read_some(&mut up.stream, &mut buf, 8192).await.ok()? == 0 {
                    return None;
                }
            }
        };
        let _ = tokio::time::timeout(MIRROR_TIMEOUT, run).await;
    });
}
