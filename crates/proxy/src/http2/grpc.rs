//! Answers for gRPC requests the proxy makes itself: HTTP 200, `application/grpc`,
//! and `grpc-status` in a trailers-only response, as gRPC clients expect.

use crate::http1::local_reply::LocalReply;

/// Is this a gRPC request (content-type application/grpc or application/grpc+...)?
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status for a local reply (gRPC's HTTP mapping: 404 is UNIMPLEMENTED,
/// gateway failures are UNAVAILABLE, a timeout is DEADLINE_EXCEEDED).
pub fn status_for(reply: LocalReply) -> u32 {
    match reply {
        LocalReply::NoRoute => 12,
        LocalReply::UpstreamTimeout | LocalReply::RequestTimeout => 4,
        LocalReply::BadRequest(..) => 13,
        LocalReply::NoHealthyUpstream
        | LocalReply::ConnectFailure
        | LocalReply::UpstreamReset
        | LocalReply::UpstreamProtocolError
        | LocalReply::Overflow => 14,
    }
}

/// Parses `grpc-timeout` (RFC: up to 8 digits and a unit H M S m u n).
pub fn timeout(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    use std::time::Duration;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(timeout(&h), Some(std::time::Duration::from_millis(250)));
        h.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(timeout(&h), Some(std::time::Duration::from_secs(3)));
        h.insert("grpc-timeout", "123456789S".parse().unwrap());
        assert_eq!(timeout(&h), None);
        h.insert("grpc-timeout", "5x".parse().unwrap());
        assert_eq!(timeout(&h), None);
    }
}
