//! W3C Trace Context `traceparent`: `version-traceid-parentid-flags`, lower-case hex.
//! Version 00 is exactly 55 characters; a later version may carry more after a `-`,
//! and its first four fields are read as 00's (as the spec asks). Version ff is invalid.

use crate::ids::{hex128, hex64, parse_hex};

/// The sampled bit of the trace flags.
pub(crate) const FLAG_SAMPLED: u8 = 0x01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Parses a `traceparent`; None when invalid (the caller starts a new trace).
pub(crate) fn parse(value: &[u8]) -> Option<TraceParent> {
    let value = value.trim_ascii();
    if value.len() < 55 {
        return None;
    }
    let version = parse_hex(&value[0..2], 2)?;
    let exact = match version {
        0 => value.len() == 55,
        0xff => false,
        _ => value.len() == 55 || value[55] == b'-',
    };
    if !exact || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = parse_hex(&value[3..35], 32)?;
    let parent_id = parse_hex(&value[36..52], 16)?;
    let flags = parse_hex(&value[53..55], 2)?;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id: parent_id as u64,
        flags: flags as u8,
    })
}

/// The length of a version-00 `traceparent`.
pub(crate) const LEN: usize = 55;

/// A version-00 `traceparent`, sampled, as text.
#[cfg(test)]
pub(crate) fn format(trace_id: u128, span_id: u64) -> String {
    String::from_utf8(encode(trace_id, span_id).to_vec()).unwrap_or_default()
}

/// `00-<trace id>-<span id>-01` (sampled), on the stack.
pub(crate) fn encode(trace_id: u128, span_id: u64) -> [u8; LEN] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    out[3..35].copy_from_slice(hex128(trace_id).as_bytes());
    out[36..52].copy_from_slice(hex64(span_id).as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_the_spec_example() {
        let tp = parse(SPEC.as_bytes()).unwrap();
        assert_eq!(tp.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(tp.parent_id, 0xb7ad6b7169203331);
        assert!(tp.sampled());
        let tp = parse(SPEC.replace("-01", "-00").as_bytes()).unwrap();
        assert!(!tp.sampled());
    }

    #[test]
    fn later_versions_are_read_leniently() {
        let v1 = SPEC.replacen("00", "01", 1) + "-extra";
        assert!(parse(v1.as_bytes()).is_some());
        let v0_long = SPEC.to_string() + "-extra";
        assert_eq!(parse(v0_long.as_bytes()), None);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
            "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        let text = format(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331);
        assert_eq!(text, SPEC);
        assert_eq!(
            parse(text.as_bytes()).unwrap().parent_id,
            0xb7ad6b7169203331
        );
    }
}
