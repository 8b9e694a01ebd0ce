//! SkyWalking's cross-process header `sw8` (v3):
//! `sample-b64(traceId)-b64(parentSegmentId)-parentSpanId-b64(parentService)-
//! b64(parentServiceInstance)-b64(parentEndpoint)-b64(addressUsedAtClient)`,
//! base64 being the standard alphabet with padding (it has no `-`, so `-` splits).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt::Write;

/// A parsed incoming `sw8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sw8 {
    /// `1`: the upstream recorded this trace; `0`: it did not, and asks us not to.
    pub sampled: bool,
    pub trace_id: String,
    pub segment_id: String,
    pub span_id: i32,
    pub service: String,
    pub instance: String,
    pub endpoint: String,
    pub address: String,
}

/// Parses a `sw8` value; None when it is malformed (the caller then starts a new
/// trace: a bad header from a client must never fail the request).
pub(crate) fn parse(value: &[u8]) -> Option<Sw8> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let mut next = || parts.next();
    let sampled = match next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    let trace_id = decode(next()?)?;
    let segment_id = decode(next()?)?;
    let span_id: i32 = next()?.parse().ok()?;
    let service = decode(next()?)?;
    let instance = decode(next()?)?;
    let endpoint = decode(next()?)?;
    let address = decode(next()?)?;
    if next().is_some() || trace_id.is_empty() || segment_id.is_empty() || span_id < 0 {
        return None;
    }
    Some(Sw8 {
        sampled,
        trace_id,
        segment_id,
        span_id,
        service,
        instance,
        endpoint,
        address,
    })
}

fn decode(field: &str) -> Option<String> {
    String::from_utf8(STANDARD.decode(field).ok()?).ok()
}

/// Base64 of `text`, for the header.
pub(crate) fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

/// The `sw8` value naming our segment's span `span_id` as the parent. `service_b64`
/// and `instance_b64` come encoded already (they never change).
pub(crate) fn format(
    trace_id: &str,
    segment_id: &str,
    span_id: i32,
    service_b64: &str,
    instance_b64: &str,
    endpoint: &str,
    peer: &str,
) -> String {
    let mut out = String::with_capacity(
        16 + 4 * (trace_id.len() + segment_id.len() + endpoint.len() + peer.len()) / 3
            + service_b64.len()
            + instance_b64.len(),
    );
    out.push_str("1-");
    STANDARD.encode_string(trace_id, &mut out);
    out.push('-');
    STANDARD.encode_string(segment_id, &mut out);
    out.push('-');
    // Writing to a String cannot fail.
    let _ = write!(out, "{span_id}");
    out.push('-');
    out.push_str(service_b64);
    out.push('-');
    out.push_str(instance_b64);
    out.push('-');
    STANDARD.encode_string(endpoint, &mut out);
    out.push('-');
    STANDARD.encode_string(peer, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from SkyWalking's Cross Process Propagation Headers Protocol v3.
    const SAMPLE: &str = "1-MWYyZDRiZjQ3YmY3MTFlYWI3OTRhY2RlNDgwMDExMjI=-\
        MWU3YzIwNGE3YmY3MTFlYWI4NThhY2RlNDgwMDExMjI=-0-\
        c2VydmljZQ==-aW5zdGFuY2U=-L2FwcA==-MTI3LjAuMC4xOjgwODA=";

    #[test]
    fn parses_the_protocol_example() {
        let sw8 = parse(SAMPLE.as_bytes()).unwrap();
        assert!(sw8.sampled);
        assert_eq!(sw8.trace_id, "1f2d4bf47bf711eab794acde48001122");
        assert_eq!(sw8.segment_id, "1e7c204a7bf711eab858acde48001122");
        assert_eq!(sw8.span_id, 0);
        assert_eq!(sw8.service, "service");
        assert_eq!(sw8.instance, "instance");
        assert_eq!(sw8.endpoint, "/app");
        assert_eq!(sw8.address, "127.0.0.1:8080");
    }

    #[test]
    fn not_sampled_is_read() {
        let text = SAMPLE.replacen('1', "0", 1);
        assert!(!parse(text.as_bytes()).unwrap().sampled);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "1",
            "2-YQ==-Yg==-0-Yw==-ZA==-ZQ==-Zg==",
            "1-YQ==-Yg==-x-Yw==-ZA==-ZQ==-Zg==",
            "1-YQ==-Yg==--1-Yw==-ZA==-ZQ==-Zg==",
            "1-YQ==-Yg==-0-Yw==-ZA==-ZQ==",
            "1-YQ==-Yg==-0-Yw==-ZA==-ZQ==-Zg==-aA==",
            "1-!!!-Yg==-0-Yw==-ZA==-ZQ==-Zg==",
            "1--Yg==-0-Yw==-ZA==-ZQ==-Zg==",
            "1-/w==-Yg==-0-Yw==-ZA==-ZQ==-Zg==", // not UTF-8
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn format_round_trips() {
        let text = format(
            "t1",
            "s1",
            1,
            &encode("svc"),
            &encode("inst@host"),
            "/a/b",
            "10.0.0.1:80",
        );
        let sw8 = parse(text.as_bytes()).unwrap();
        assert_eq!(
            sw8,
            Sw8 {
                sampled: true,
                trace_id: "t1".into(),
                segment_id: "s1".into(),
                span_id: 1,
                service: "svc".into(),
                instance: "inst@host".into(),
                endpoint: "/a/b".into(),
                address: "10.0.0.1:80".into(),
            }
        );
    }
}
