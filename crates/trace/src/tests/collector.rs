//! A bare gRPC collector for the tests, on h2 directly (not tonic), so the exporter's
//! wire format is checked against an independent reader: it records every call's
//! path, metadata and length-prefixed messages, and answers each with one empty
//! message (an empty `Commands` / `ExportTraceServiceResponse`) and grpc-status 0,
//! or with the error status it was started to give ([`Answer`]).

use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Call {
    pub path: String,
    pub headers: http::HeaderMap,
    pub messages: Vec<Bytes>,
}

pub struct Collector {
    pub addr: SocketAddr,
    pub calls: mpsc::Receiver<Call>,
}

/// How the collector answers every call.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// An empty message and grpc-status 0.
    Ok,
    /// A trailers-only answer: the grpc-status in the response head, no body.
    TrailersOnly(u8),
    /// An empty message, then this grpc-status in the trailers.
    AfterMessage(u8),
}

impl Collector {
    /// Starts a collector on its own thread, on `addr` (port 0: any free port).
    pub fn start(addr: &str) -> Collector {
        Collector::start_with(addr, None, Answer::Ok)
    }

    /// The same, answering every call as `answer` says.
    pub fn start_answering(addr: &str, answer: Answer) -> Collector {
        Collector::start_with(addr, None, answer)
    }

    /// The same, behind TLS.
    pub fn start_tls(addr: &str, tls: tokio_rustls::TlsAcceptor) -> Collector {
        Collector::start_with(addr, Some(tls), Answer::Ok)
    }

    fn start_with(addr: &str, tls: Option<tokio_rustls::TlsAcceptor>, answer: Answer) -> Collector {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (calls_tx, calls) = mpsc::channel();
        let addr = addr.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind(&addr).await.expect("bind");
                ready_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("ready");
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let calls_tx = calls_tx.clone();
                    match &tls {
                        None => {
                            tokio::spawn(serve(sock, calls_tx, answer));
                        }
                        Some(acceptor) => {
                            let accept = acceptor.accept(sock);
                            tokio::spawn(async move {
                                if let Ok(sock) = accept.await {
                                    serve(sock, calls_tx, answer).await;
                                }
                            });
                        }
                    }
                }
            });
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("collector started");
        Collector { addr, calls }
    }

    /// The next call whose path ends with `method`, skipping others.
    pub fn next(&self, method: &str) -> Call {
        loop {
            let call = self
                .calls
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no {method} call"));
            if call.path.ends_with(method) {
                return call;
            }
        }
    }
}

async fn serve<IO>(io: IO, calls: mpsc::Sender<Call>, answer: Answer)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(handle(req, respond, calls.clone(), answer));
    }
}

async fn handle(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    calls: mpsc::Sender<Call>,
    answer: Answer,
) {
    let (parts, mut body) = req.into_parts();
    let mut buf = BytesMut::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    let mut messages = Vec::new();
    let mut buf = buf.freeze();
    while buf.len() >= 5 {
        let compressed = buf.get_u8();
        assert_eq!(compressed, 0, "the exporter does not compress");
        let len = buf.get_u32() as usize;
        messages.push(buf.split_to(len));
    }
    let _ = calls.send(Call {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        messages,
    });
    let status = |code: u8| http::HeaderValue::from(u16::from(code));
    let mut response = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    if let Answer::TrailersOnly(code) = answer {
        response = response
            .header("grpc-status", status(code))
            .header("grpc-message", "refused%20by%20the%20test");
        let _ = respond.send_response(response.body(()).expect("response"), true);
        return;
    }
    let Ok(mut stream) = respond.send_response(response.body(()).expect("response"), false) else {
        return;
    };
    let _ = stream.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = http::HeaderMap::new();
    let code = match answer {
        Answer::AfterMessage(code) => code,
        _ => 0,
    };
    trailers.insert("grpc-status", status(code));
    let _ = stream.send_trailers(trailers);
}
