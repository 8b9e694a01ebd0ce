//! SkyWalking's cross-process header `sw8` (v3):
//! `sample-b64(traceId)-b64(parentSegmentId)-parentSpanId-b64(parentService)-
//! b64(parentServiceInstance)-b64(parentEndpoint)-b64(addressUsedAtClient)`,
//! base64 being the standard alphabet with padding (it has no `-`, so `-` splits).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A parsed incoming `sw8`, owned (the tests' view; the tracer parses with
/// `parse_with` into a span's text buffer).
#[cfg(test)]
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

/// The parts of an incoming `sw8` that are not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// `1`: the upstream recorded this trace; `0`: it did not, and asks us not to.
    pub sampled: bool,
    pub span_id: i32,
}

/// Parses a `sw8` value; None when it is malformed (the caller then starts a new
/// trace: a bad header from a client must never fail the request).
#[cfg(test)]
pub(crate) fn parse(value: &[u8]) -> Option<Sw8> {
    let mut texts = Vec::with_capacity(6);
    let head = parse_with(value, |t| texts.push(t.to_string()))?;
    let mut texts = texts.into_iter();
    let mut next = || texts.next().unwrap_or_default();
    Some(Sw8 {
        sampled: head.sampled,
        trace_id: next(),
        segment_id: next(),
        span_id: head.span_id,
        service: next(),
        instance: next(),
        endpoint: next(),
        address: next(),
    })
}

/// Parses a `sw8` value, handing its decoded text fields to `text` in order (trace
/// id, parent segment id, service, instance, endpoint, address), each decoded on the
/// stack when short. None when the value is malformed; `text` may have been called
/// for some fields by then.
pub(crate) fn parse_with(value: &[u8], mut text: impl FnMut(&str)) -> Option<Head> {
    let value = std::str::from_utf8(value).ok()?.trim();
    // Check the shape before decoding anything.
    let mut parts = [""; 8];
    let mut split = value.split('-');
    for part in &mut parts {
        *part = split.next()?;
    }
    if split.next().is_some() || parts[1].is_empty() || parts[2].is_empty() {
        return None;
    }
    let sampled = match parts[0] {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    let span_id: i32 = parts[3].parse().ok()?;
    if span_id < 0 {
        return None;
    }
    for part in [parts[1], parts[2], parts[4], parts[5], parts[6], parts[7]] {
        decode_with(part, &mut text)?;
    }
    Some(Head { sampled, span_id })
}

/// Decodes one base64 field (it must be UTF-8) and hands it to `text`.
fn decode_with(field: &str, text: &mut impl FnMut(&str)) -> Option<()> {
    let mut stack = [0u8; 256];
    match STANDARD.decode_slice(field, &mut stack) {
        Ok(n) => text(std::str::from_utf8(stack.get(..n)?).ok()?),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            text(&String::from_utf8(STANDARD.decode(field).ok()?).ok()?)
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return None,
    }
    Some(())
}

/// Base64 of `text`, for the header.
pub(crate) fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

/// Appends the `sw8` value naming our segment's span `span_id` as the parent. The
/// ids are text, as bytes; `service_b64` and `instance_b64` come encoded already
/// (they never change).
#[allow(clippy::too_many_arguments)] // sw8's fields, in its order
pub(crate) fn write(
    out: &mut Vec<u8>,
    trace_id: &[u8],
    segment_id: &[u8],
    span_id: i32,
    service_b64: &str,
    instance_b64: &str,
    endpoint: &str,
    peer: &str,
) {
    let b64 = |n: usize| n.div_ceil(3) * 4;
    let mut digits = itoa::Buffer::new();
    let span_id = digits.format(span_id);
    out.reserve(
        9 + b64(trace_id.len())
            + b64(segment_id.len())
            + span_id.len()
            + service_b64.len()
            + instance_b64.len()
            + b64(endpoint.len())
            + b64(peer.len()),
    );
    out.extend_from_slice(b"1-");
    push_b64(out, trace_id);
    out.push(b'-');
    push_b64(out, segment_id);
    out.push(b'-');
    out.extend_from_slice(span_id.as_bytes());
    out.push(b'-');
    out.extend_from_slice(service_b64.as_bytes());
    out.push(b'-');
    out.extend_from_slice(instance_b64.as_bytes());
    out.push(b'-');
    push_b64(out, endpoint.as_bytes());
    out.push(b'-');
    push_b64(out, peer.as_bytes());
}

/// The standard base64 alphabet.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the standard base64 (padded) of `input`: each 3 bytes are 4 table
/// look-ups, appended together. (The base64 crate's encoders cost several times as
/// much for these short fields, and the header is made for every upstream try.)
fn push_b64(out: &mut Vec<u8>, input: &[u8]) {
    let digit = |n: u32| B64[(n & 63) as usize];
    let mut groups = input.chunks_exact(3);
    for g in &mut groups {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        out.extend_from_slice(&[digit(n >> 18), digit(n >> 12), digit(n >> 6), digit(n)]);
    }
    match *groups.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[digit(n >> 18), digit(n >> 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[digit(n >> 18), digit(n >> 12), digit(n >> 6), b'=']);
        }
        _ => {}
    }
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
    fn base64_is_the_standard_one() {
        let input: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..input.len() {
            let mut out = Vec::new();
            push_b64(&mut out, &input[..len]);
            assert_eq!(out, STANDARD.encode(&input[..len]).as_bytes(), "{len}");
        }
    }

    #[test]
    fn format_round_trips() {
        let mut text = Vec::new();
        write(
            &mut text,
            b"t1",
            b"s1",
            1,
            &encode("svc"),
            &encode("inst@host"),
            "/a/b",
            "10.0.0.1:80",
        );
        let sw8 = parse(&text).unwrap();
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
