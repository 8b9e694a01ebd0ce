//! Micro benchmarks of the per-span costs, without criterion: ignored tests that print
//! ns per span. Run them in release:
//! `cargo test --release -p mosn-trace -- --ignored --nocapture --test-threads=1`.

use super::reference;
use crate::export::wire::Wire;
use crate::record::Finished;
use crate::{otel, skywalking, SpanEnd, Tracer};
use prost::Message;
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

/// The upstream of the observe bench's requests.
const PEER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);

/// The exporter's default batch size.
const BATCH: usize = 512;

/// A request as the observe bench sends them: a new trace, one upstream try, 200.
fn typical_end() -> SpanEnd<'static> {
    SpanEnd {
        method: "GET",
        path: "/api/v1/items?id=42",
        authority: "127.0.0.1:2045",
        protocol: "HTTP/1.1",
        listener: "listener_http",
        route: None,
        cluster: Some("upstream_cluster"),
        upstream_host: "127.0.0.1:8081".parse().ok(),
        status: 200,
        response_flags: "",
        downstream_remote: "127.0.0.1:51234".parse().expect("an address"),
        bytes_received: 78,
        bytes_sent: 240,
        duration: None,
    }
}

fn path_header(name: &str) -> Option<&'static [u8]> {
    (name == ":path").then_some(b"/api/v1/items?id=42".as_slice())
}

fn log_tracer(driver: &str) -> std::sync::Arc<Tracer> {
    let config = match driver {
        "SkyWalking" => {
            json!({"reporter": "log", "service_name": "mosn", "service_instance": "i1"})
        }
        _ => json!({"report_method": "console", "service_name": "mosn"}),
    };
    super::tracer(driver, config)
}

/// `BATCH` finished records of the driver, made the way the proxy makes them.
fn records<'e>(t: &Tracer, end: &'e SpanEnd<'e>) -> Vec<Finished<'e>> {
    (0..BATCH)
        .map(|_| {
            let mut span = t.start(&path_header).expect("sampled");
            let _ = span.upstream_headers(PEER);
            span.into_record(end).0
        })
        .collect()
}

/// Runs `round` (which handles `BATCH` spans) often enough and prints the median
/// and best ns per span.
fn measure(what: &str, mut round: impl FnMut()) {
    for _ in 0..20 {
        round();
    }
    let mut per_span = Vec::new();
    for _ in 0..15 {
        let began = Instant::now();
        for _ in 0..40 {
            round();
        }
        per_span.push(began.elapsed().as_nanos() as f64 / (40 * BATCH) as f64);
    }
    per_span.sort_by(f64::total_cmp);
    println!(
        "{what:<48} {:>6.0} ns/span (median), {:>6.0} best",
        per_span[per_span.len() / 2],
        per_span[0]
    );
}

#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn bench_export_encoding() {
    let t = log_tracer("otel");
    let end = typical_end();
    let batch = records(&t, &end);
    let resource = vec![
        reference::string_kv("service.name", "mosn"),
        reference::string_kv("telemetry.sdk.name", "mosn-rs"),
        reference::string_kv("telemetry.sdk.language", "rust"),
        reference::string_kv("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    let mut buf = Vec::new();
    measure("OTLP, prost structs: encode a batch", || {
        buf.clear();
        let req = reference::otlp_request(black_box(&batch), &resource);
        req.encode(&mut buf).expect("room");
        black_box(&buf);
    });
    let fixed = otel::Fixed::new(&resource);
    let mut wire = Wire::default();
    measure("OTLP, field by field: encode a batch", || {
        wire.begin_batch();
        otel::encode_request(&mut wire, black_box(&batch), &fixed);
        black_box(wire.take_messages());
    });

    let t = log_tracer("SkyWalking");
    let batch = records(&t, &end);
    measure("SkyWalking, prost structs: encode a batch", || {
        buf.clear();
        let segments: Vec<_> = black_box(&batch)
            .iter()
            .filter_map(|f| reference::sw_segment(f, "mosn", "i1"))
            .collect();
        for s in &segments {
            s.encode(&mut buf).expect("room");
        }
        black_box(&buf);
    });
    measure("SkyWalking, field by field: encode a batch", || {
        wire.begin_batch();
        for f in black_box(&batch) {
            skywalking::encode_segment(&mut wire, f, "mosn", "i1");
        }
        black_box(wire.take_messages());
    });
}

#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn bench_worker_span() {
    for driver in ["otel", "SkyWalking"] {
        let t = log_tracer(driver);
        let end = typical_end();
        let mut out = Vec::with_capacity(BATCH);
        measure(
            &format!("{driver}: start + headers + record + drop"),
            || {
                for _ in 0..BATCH {
                    let mut span = t.start(&path_header).expect("sampled");
                    black_box(span.upstream_headers(PEER));
                    out.push(span.into_record(&end).0);
                }
                out.clear();
            },
        );
    }
}

/// Encodes one typical record of `driver` `BENCH_N` times (default 0) with
/// `encode`: for instruction counts, `valgrind --tool=callgrind` on the test binary
/// at two values of `BENCH_N`.
fn encode_n_times(driver: &str, encode: impl Fn(&mut Wire, &Finished)) {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let t = log_tracer(driver);
    let end = typical_end();
    let mut span = t.start(&path_header).expect("sampled");
    let _ = span.upstream_headers(PEER);
    let (record, _) = span.into_record(&end);
    let mut wire = Wire::default();
    wire.begin_batch();
    for i in 0..n {
        if i % 64 == 0 {
            black_box(wire.take_all());
            wire.begin_batch();
        }
        encode(&mut wire, black_box(&record));
    }
    black_box(wire.take_all());
}

#[test]
#[ignore = "a benchmark: run under callgrind with BENCH_N set"]
fn bench_n_otlp_spans() {
    encode_n_times("otel", otel::encode_span);
}

#[test]
#[ignore = "a benchmark: run under callgrind with BENCH_N set"]
fn bench_n_sw_segments() {
    encode_n_times("SkyWalking", |w, f| {
        skywalking::encode_segment(w, f, "mosn", "i1")
    });
}
