//! A small gRPC client over tonic's generic `Grpc`: the exporters call a handful of
//! methods, so no generated stubs (and no protoc) are needed. Span batches go out
//! as bytes encoded already (`wire`), through a codec that passes them on as they
//! are; the rare management calls and every response use prost's codec.

use super::coalesce::Coalesced;
use crate::TraceError;
use bytes::{BufMut, Bytes};
use hyper_util::rt::TokioIo;
use mosn_config::tracing::Collector;
use std::marker::PhantomData;
use std::time::Duration;
use tonic::client::Grpc;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_prost::{ProstCodec, ProstDecoder};

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
        GrpcClient {
            grpc: Grpc::new(self.endpoint.connect_with_connector_lazy(connector)),
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

    /// One client-streaming call carrying `messages`, each a message's protobuf
    /// encoding (a unary call is the same on the wire, with one message).
    pub async fn send_encoded<R>(
        &mut self,
        path: &'static str,
        messages: Vec<Encoded>,
    ) -> Result<R, Status>
    where
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.call(path, messages, PreEncoded::<R>(PhantomData))
            .await
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
            self.grpc
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("collector unreachable: {e}")))?;
            let mut request = Request::new(tokio_stream::iter(messages));
            *request.metadata_mut() = self.metadata.clone();
            let path = http::uri::PathAndQuery::from_static(path);
            self.grpc
                .client_streaming(request, path, codec)
                .await
                .map(tonic::Response::into_inner)
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("export call timed out")))
    }
}

/// Sends messages encoded already, decodes the answer with prost.
struct PreEncoded<R>(PhantomData<R>);

impl<R> Codec for PreEncoded<R>
where
    R: prost::Message + Default + Send + 'static,
{
    type Encode = Encoded;
    type Decode = R;
    type Encoder = PassThrough;
    type Decoder = ProstDecoder<R>;

    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }

    fn decoder(&mut self) -> ProstDecoder<R> {
        ProstDecoder::default()
    }
}

/// A message encoded already: whole, or in pieces to be sent one after the other
/// (an envelope and the chunks of spans it holds, which are not copied together
/// first).
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
struct PassThrough;

impl Encoder for PassThrough {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Encoded::Whole(b) => dst.put_slice(&b),
            Encoded::Pieces(pieces) => {
                // One reservation: growing piece by piece would copy the message
                // again at every doubling.
                dst.reserve(pieces.iter().map(Bytes::len).sum());
                for piece in pieces {
                    dst.put_slice(&piece);
                }
            }
        }
        Ok(())
    }
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
