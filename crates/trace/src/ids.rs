//! Span and trace ids from the per-thread `fastrand` generator: no lock, no syscall.
//! They need to be unique, not unpredictable.

/// A random non-zero 128-bit id (W3C and SkyWalking both treat zero as invalid).
pub(crate) fn id128() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

/// A random non-zero 64-bit id.
pub(crate) fn id64() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

/// The two lower-case hex digits of every byte: an id's text is a table look-up
/// per byte, not a shift per digit.
static HEX_PAIRS: [[u8; 2]; 256] = hex_pairs();

const fn hex_pairs() -> [[u8; 2]; 256] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
        b += 1;
    }
    pairs
}

/// Lower-case hex digits of an id, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// `N` digits of `v` (N = 2 × the bytes of the value, at most 32).
    fn of(v: u128) -> Self {
        let mut out = [0u8; N];
        let bytes = v.to_be_bytes();
        let value_bytes = bytes.get(16 - N / 2..).unwrap_or_default();
        for (pair, &b) in out.chunks_exact_mut(2).zip(value_bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        Hex(out)
    }

    pub fn as_str(&self) -> &str {
        // The digits are ASCII: this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The digits as bytes (no UTF-8 check: for base64 and protobuf).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// 32 lower-case hex digits.
pub(crate) fn hex128(v: u128) -> Hex<32> {
    Hex::of(v)
}

/// 16 lower-case hex digits.
pub(crate) fn hex64(v: u64) -> Hex<16> {
    Hex::of(u128::from(v))
}

/// Parses exactly `len` lower-case hex digits (W3C forbids upper case).
pub(crate) fn parse_hex(text: &[u8], len: usize) -> Option<u128> {
    if text.len() != len || len > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in text {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let v = 0x0af7651916cd43dd8448eb211c80319c_u128;
        assert_eq!(hex128(v).as_str(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parse_hex(hex128(v).as_bytes(), 32), Some(v));
        assert_eq!(hex64(0xb7ad6b7169203331).as_str(), "b7ad6b7169203331");
        assert_eq!(hex64(1).as_str(), "0000000000000001");
        assert_eq!(parse_hex(b"0A", 2), None);
        assert_eq!(parse_hex(b"0a", 3), None);
        assert_ne!(id128(), id128());
        assert_ne!(id64(), 0);
    }
}
