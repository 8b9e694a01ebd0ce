//! The hand-written encoding against prost's encoding of the same messages built as
//! structs (`reference`): byte for byte, over requests that take every branch.

use super::reference;
use crate::export::wire::Wire;
use crate::otel::proto as otlp;
use crate::record::Finished;
use crate::{otel, skywalking, SpanEnd, Tracer};
use prost::Message;
use serde_json::json;

struct Case {
    headers: &'static [(&'static str, &'static str)],
    /// Upstream tries, in order (an address, or a name).
    peers: &'static [&'static str],
    end: SpanEnd<'static>,
}

fn base() -> SpanEnd<'static> {
    SpanEnd {
        route: None,
        ..super::end(200, "")
    }
}

const LONG_PATH: &str = "/a/very/long/path/that/needs/more/than/one/hundred/and/twenty/\
    seven/bytes/so/that/its/length/takes/two/varint/bytes/and/the/nested/messages/grow/\
    past/their/guesses?with=a&query=string&that=is&long=too";

fn cases() -> Vec<Case> {
    let v6: crate::TextedAddr = "[2001:db8::7]:4431".parse().expect("an address");
    vec![
        Case {
            headers: &[],
            peers: &["127.0.0.1:9001"],
            end: base(),
        },
        Case {
            headers: &[
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("tracestate", "congo=t61rcWkgMzE"),
                (
                    "sw8",
                    "1-MWYyZDRiZjQ3YmY3MTFlYWI3OTRhY2RlNDgwMDExMjI=-\
                     MWU3YzIwNGE3YmY3MTFlYWI4NThhY2RlNDgwMDExMjI=-3-\
                     c2VydmljZQ==-aW5zdGFuY2U=-L2FwcA==-MTI3LjAuMC4xOjgwODA=",
                ),
                (":path", LONG_PATH),
            ],
            peers: &["10.0.0.1:80", "10.0.0.2:80"],
            end: SpanEnd {
                path: LONG_PATH,
                authority: "[::1]:8080",
                route: Some("orders"),
                upstream_host: None,
                status: 503,
                response_flags: "UF,URX",
                downstream_remote: v6,
                protocol: "HTTP/2",
                ..base()
            },
        },
        Case {
            headers: &[("tracestate", "a=b")],
            peers: &[],
            end: SpanEnd {
                method: "",
                path: "",
                authority: "",
                listener: "",
                cluster: None,
                status: 0,
                bytes_received: 0,
                bytes_sent: u64::MAX,
                ..base()
            },
        },
        Case {
            // An exit with no peer text; an sw8 with empty optional fields.
            headers: &[
                ("sw8", "1-YQ==-Yg==-0-----"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("tracestate", "  "),
            ],
            peers: &[""],
            end: SpanEnd {
                path: "/überall?ä=ö",
                authority: "host-without-port",
                status: 404,
                ..base()
            },
        },
        Case {
            headers: &[],
            peers: &[],
            end: SpanEnd {
                status: 200,
                response_flags: "DC",
                upstream_host: Some(v6),
                ..base()
            },
        },
    ]
}

fn tracer(driver: &str, instance: &str) -> std::sync::Arc<Tracer> {
    let config = match driver {
        "SkyWalking" => {
            json!({"reporter": "log", "service_name": "edge", "service_instance": instance})
        }
        _ => json!({"report_method": "console"}),
    };
    super::tracer(driver, config)
}

fn records<'c>(t: &Tracer, cases: &'c [Case]) -> Vec<Finished<'c>> {
    cases
        .iter()
        .map(|case| {
            let lookup = |name: &str| {
                case.headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_bytes())
            };
            let mut span = t.start(&lookup).expect("sampled");
            // An address goes in as the proxy passes it; anything else by name.
            for peer in case.peers {
                let _ = match peer.parse() {
                    Ok(addr) => span.upstream_headers(addr),
                    Err(_) => span.upstream_headers_named(peer),
                };
            }
            span.into_record(&case.end).0
        })
        .collect()
}

#[test]
fn otlp_bytes_match_prost() {
    let t = tracer("otel", "");
    let cases = cases();
    let batch = records(&t, &cases);
    let resource = vec![
        reference::string_kv("service.name", "edge"),
        reference::string_kv("deployment.environment", ""),
    ];
    let want = reference::otlp_request(&batch, &resource).encode_to_vec();
    let mut w = Wire::default();
    // Twice: the second batch reuses the buffer.
    for _ in 0..2 {
        w.begin_batch();
        otel::encode_request(&mut w, &batch, &otel::Fixed::new(&resource));
        assert_eq!(w.bytes(), want.as_slice());
        let messages = w.take_messages();
        assert_eq!(messages.len(), 1);
        let got = otlp::ExportTraceServiceRequest::decode(messages[0].clone()).expect("decodes");
        assert_eq!(
            got.resource_spans[0].scope_spans[0].spans.len(),
            batch.len()
        );
    }
}

#[test]
fn skywalking_bytes_match_prost() {
    for instance in ["i1", ""] {
        let t = tracer("SkyWalking", "i1");
        let cases = cases();
        let batch = records(&t, &cases);
        let mut w = Wire::default();
        for _ in 0..2 {
            w.begin_batch();
            for f in &batch {
                skywalking::encode_segment(&mut w, f, "edge", instance);
            }
            let messages = w.take_messages();
            assert_eq!(messages.len(), batch.len());
            for (f, got) in batch.iter().zip(&messages) {
                let want = reference::sw_segment(f, "edge", instance)
                    .expect("a SkyWalking record")
                    .encode_to_vec();
                assert_eq!(got.as_ref(), want.as_slice(), "{f:?}");
            }
        }
    }
}
