//! A fast stand-in trace collector for benchmarks (bench/run-observe.sh): it
//! accepts OTLP/gRPC `TraceService/Export` calls and SkyWalking v3 gRPC calls
//! (`TraceSegmentReportService/collect` and the management service), counts the
//! spans and segments it receives, and answers every call with an empty message
//! and `grpc-status: 0`.
//!
//! Why not a real collector: neither the OpenTelemetry Collector nor a SkyWalking
//! OAP server installs on this machine, and the Python test collectors
//! (tests/peers, built on the projects' own protos, which the tests use to check
//! what mosn-rs sends) take ~30 us of CPU per span: at the proxy's rate they fall
//! behind, and the spans the proxy then drops would make tracing look cheaper than
//! it is. This one decodes only what it counts.
//!
//!   trace_sink PORT
//!
//! Listens on 127.0.0.1:PORT (cleartext HTTP/2, as gRPC without TLS). Exits when
//! its stdin reaches end-of-file, printing `spans N segments M calls C` on stdout.

use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::net::TcpListener;

const OTLP_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const SW_COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    segments: AtomicU64,
    calls: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: trace_sink PORT")?
        .parse()?;
    let counts = Arc::new(Counts::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", port)))?;
    {
        let counts = counts.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, counts.clone()));
            }
        });
    }
    // The runtime runs on its own thread; this one waits for stdin to close.
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    println!(
        "spans {} segments {} calls {}",
        counts.spans.load(Relaxed),
        counts.segments.load(Relaxed),
        counts.calls.load(Relaxed)
    );
    Ok(())
}

async fn serve(socket: tokio::net::TcpStream, counts: Arc<Counts>) {
    // Windows large enough that a batch never waits for a WINDOW_UPDATE round trip
    // (gRPC servers grow theirs by BDP estimation to the same effect).
    let Ok(mut conn) = h2::server::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(socket)
        .await
    else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(call(request, respond, counts.clone()));
    }
}

/// One gRPC call: read every message, count, answer an empty message.
async fn call(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    counts: Arc<Counts>,
) {
    let path = request.uri().path().to_owned();
    let mut body = request.into_body();
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
        while let Some(message) = next_message(&mut buf) {
            match path.as_str() {
                OTLP_EXPORT => {
                    counts.spans.fetch_add(otlp_span_count(&message), Relaxed);
                }
                SW_COLLECT => {
                    counts.segments.fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
    }
    counts.calls.fetch_add(1, Relaxed);
    let response = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap_or_default();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    // One empty message: no compression flag, length 0.
    let _ = send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

/// The next complete length-prefixed gRPC message in `buf`, taken out of it.
fn next_message(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    Some(buf.split_to(len).freeze())
}

/// Spans in an ExportTraceServiceRequest: resource_spans (1) > scope_spans (2) >
/// spans (2).
fn otlp_span_count(request: &[u8]) -> u64 {
    let mut n = 0;
    for resource_spans in length_fields(request, 1) {
        for scope_spans in length_fields(resource_spans, 2) {
            n += length_fields(scope_spans, 2).count() as u64;
        }
    }
    n
}

/// The length-delimited fields numbered `number` of a protobuf message (others are
/// skipped; a malformed message ends the walk).
fn length_fields(mut msg: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || loop {
        let key = varint(&mut msg)?;
        let value = match key & 7 {
            0 => {
                varint(&mut msg)?;
                None
            }
            1 => Some(take(&mut msg, 8)?),
            2 => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                Some(take(&mut msg, len)?)
            }
            5 => Some(take(&mut msg, 4)?),
            _ => return None,
        };
        if key >> 3 == number && key & 7 == 2 {
            return value;
        }
    })
}

fn take<'a>(msg: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if msg.len() < len {
        return None;
    }
    let (head, rest) = msg.split_at(len);
    *msg = rest;
    Some(head)
}

fn varint(msg: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = msg.split_first()?;
        *msg = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}
