//! A small gRPC client over tonic's generic `Grpc`: the exporters call a handful of
//! methods, so no generated stubs (and no protoc) are needed. Span batches go out
//! as bytes encoded already (`wire`), framed here and handed to the channel as
//! they are: tonic's `Grpc` would copy every message into its encode buffer first
//! (a batch is ~200 KiB). The rare management calls, and every response, go
//! through tonic's codec machinery with prost's codec.

use super::coalesce::Coalesced;
use crate::TraceError;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use mosn_config::tracing::Collector;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::client::Grpc;
use tonic::codec::{Codec, Streaming};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_prost::{ProstCodec, ProstDecoder};
use tower::{Service, ServiceExt};

/// How long a connection attempt to the collector may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one export call may take, connection included.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A collector to call, prepared outside any runtime (so config problems surface at
/// start, on the caller's thread).
#[derive(Debug, Clone)]
pub(crate) struct GrpcTarget {
    endpoint: Endpoint,
    uri: String,
    metadata: MetadataMap,
}

impl GrpcTarget {
    pub fn new(collector: &Collector, metadata: &[(String, String)]) -> Result<Self, TraceError> {
        let uri = collector.uri();
        let bad_uri = |source| TraceError::Collector {
            uri: uri.clone(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(bad_uri)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if let Some(tls) = &collector.tls {
            let mut cfg = ClientTlsConfig::new()
                .domain_name(tls.server_name.as_deref().unwrap_or(&collector.host));
            cfg = match &tls.ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|source| TraceError::CaFile {
                        path: path.clone(),
                        source,
                    })?;
                    // tonic skips what it cannot parse; a CA file without a
                    // certificate would only fail later, at every handshake.
                    if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
                        return Err(TraceError::NoCertificate(path.clone()));
                    }
                    cfg.ca_certificate(Certificate::from_pem(pem))
                }
                None => cfg.with_native_roots(),
            };
            endpoint = endpoint.tls_config(cfg).map_err(bad_uri)?;
        }
        let mut map = MetadataMap::new();
        for (name, value) in metadata {
            let key = MetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| TraceError::Metadata(name.clone()))?;
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| TraceError::Metadata(name.clone()))?;
            map.insert(key, value);
        }
        Ok(GrpcTarget {
            endpoint,
            uri,
            metadata: map,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// A client whose connection is made on first use and remade after a failure.
    /// Must run inside a tokio runtime. The connection's writes are gathered
    /// ([`Coalesced`]); tonic adds TLS over it when configured, and applies the
    /// connect timeout.
    pub fn connect(&self) -> GrpcClient {
        let connector = tower::service_fn(|uri: http::Uri| async move {
            let (host, port) = host_and_port(&uri);
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            Ok::<_, std::io::Error>(TokioIo::new(Coalesced::new(tcp)))
        });
        let channel = self.endpoint.connect_with_connector_lazy(connector);
        GrpcClient {
            grpc: Grpc::new(channel.clone()),
            channel,
            metadata: self.metadata.clone(),
        }
    }
}

/// Where a sink's batches go: a collector's client, or None for the log reporter;
/// with its name for log lines.
pub(crate) struct Destination {
    pub name: String,
    pub client: Option<GrpcClient>,
}

impl Destination {
    /// Runs inside the exporter's runtime (the gRPC channel needs one).
    pub fn new(grpc: Option<&GrpcTarget>) -> Destination {
        Destination {
            name: grpc.map_or_else(|| "log".to_string(), |g| g.uri().to_string()),
            client: grpc.map(GrpcTarget::connect),
        }
    }
}

pub(crate) struct GrpcClient {
    grpc: Grpc<Channel>,
    /// The same channel (a handle to one connection): for the calls whose
    /// messages are encoded already.
    channel: Channel,
    metadata: MetadataMap,
}

impl GrpcClient {
    pub async fn unary<Q, R>(&mut self, path: &'static str, message: Q) -> Result<R, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.call(path, vec![message], ProstCodec::<Q, R>::default())
            .await
    }

    /// A client-streaming call of messages encoded already (a unary one when there
    /// is one message): their bytes go to the channel without a copy.
    pub async fn send_encoded<R>(
        &mut self,
        path: &'static str,
        messages: Vec<Encoded>,
    ) -> Result<R, Status>
    where
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let call = async {
            let request = self.encoded_request(path, messages)?;
            let channel = self.channel.ready().await.map_err(unreachable)?;
            let response = channel
                .call(request)
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            one_message(response).await
        };
        within_deadline(call).await
    }

    /// The HTTP/2 request of a gRPC call to `path` carrying `messages`, each with
    /// its 5-byte length prefix, as tonic makes it (the channel adds the scheme
    /// and authority, and its user agent).
    fn encoded_request(
        &self,
        path: &'static str,
        messages: Vec<Encoded>,
    ) -> Result<http::Request<tonic::body::Body>, Status> {
        let mut frames = VecDeque::with_capacity(messages.len() * 2);
        for message in messages {
            let pieces = match message {
                Encoded::Whole(b) => vec![b],
                Encoded::Pieces(pieces) => pieces,
            };
            let len: usize = pieces.iter().map(Bytes::len).sum();
            let len =
                u32::try_from(len).map_err(|_| Status::resource_exhausted("message over 4 GiB"))?;
            let mut prefix = [0u8; 5];
            prefix[1..].copy_from_slice(&len.to_be_bytes());
            frames.push_back(Bytes::copy_from_slice(&prefix));
            frames.extend(pieces.into_iter().filter(|p| !p.is_empty()));
        }
        let mut request = http::Request::new(tonic::body::Body::new(Frames(frames)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(path);
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        *headers = self.metadata.clone().into_headers();
        // Set last: configured metadata cannot replace them (and `grpc-` names are
        // refused with the config).
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok(request)
    }

    async fn call<C>(
        &mut self,
        path: &'static str,
        messages: Vec<C::Encode>,
        codec: C,
    ) -> Result<C::Decode, Status>
    where
        C: Codec + Send + 'static,
        C::Encode: Sync,
        C::Decode: Sync,
    {
        let call = async {
            self.grpc.ready().await.map_err(unreachable)?;
            let mut request = Request::new(tokio_stream::iter(messages));
            *request.metadata_mut() = self.metadata.clone();
            let path = http::uri::PathAndQuery::from_static(path);
            self.grpc
                .client_streaming(request, path, codec)
                .await
                .map(tonic::Response::into_inner)
        };
        within_deadline(call).await
    }
}

/// A call, given up after `CALL_TIMEOUT`.
async fn within_deadline<T>(
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("export call timed out")))
}

/// The status of a channel that could not take a call.
fn unreachable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("collector unreachable: {e}"))
}

/// Sends messages encoded already, decodes the answer with prost.
#[derive(Debug, Clone)]
pub(crate) enum Encoded {
    Whole(Bytes),
    Pieces(Vec<Bytes>),
}

impl Encoded {
    /// The message in one buffer (for the log reporters, which decode it).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Encoded::Whole(b) => b.clone(),
            Encoded::Pieces(pieces) => Bytes::from(pieces.concat()),
        }
    }
}

/// Writes a message's bytes as they are (tonic adds the gRPC framing).
/// The frames of a request body, each handed on as it is.
struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(
            self.get_mut()
                .0
                .pop_front()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

/// The one message of a unary or client-streaming call's response, as tonic's
/// `Grpc::client_streaming` reads it: a trailers-only answer's status, else the
/// message, then the status in the trailers.
async fn one_message<R>(response: http::Response<tonic::body::Body>) -> Result<R, Status>
where
    R: prost::Message + Default + Send + Sync + 'static,
{
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    let code = response.status();
    let mut body = Streaming::new_response(
        ProstDecoder::<R>::default(),
        response.into_body(),
        code,
        None,
        None,
    );
    let message = body
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing response message."))?;
    body.trailers().await?;
    Ok(message)
}

/// Where to connect for a collector's URI: its host (an IPv6 address without
/// brackets) and port (the scheme's when none is given).
fn host_and_port(uri: &http::Uri) -> (String, u16) {
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    (host.to_string(), uri.port_u16().unwrap_or(default_port))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a failed call is worth another try with the same spans.
pub(crate) fn retryable(status: &Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        Unavailable | DeadlineExceeded | ResourceExhausted | Aborted | Cancelled | Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn a_collector_uri_gives_the_address_to_connect_to() {
        let at = |uri: &str| host_and_port(&uri.parse().expect("a URI"));
        assert_eq!(at("http://127.0.0.1:4317"), ("127.0.0.1".into(), 4317));
        assert_eq!(at("http://[::1]:11800"), ("::1".into(), 11800));
        assert_eq!(
            at("https://collector.example"),
            ("collector.example".into(), 443)
        );
        assert_eq!(at("http://collector"), ("collector".into(), 80));
    }
}
