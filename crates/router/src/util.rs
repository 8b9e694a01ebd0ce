//! Byte helpers for matching and hashing: percent-decoding, query strings, cookies,
//! FNV-1a. None of them allocates, except `with_decoded` for values over
//! [`STACK_DECODE`] bytes that contain escapes.

/// Decoded values up to this length are built on the stack.
const STACK_DECODE: usize = 512;

#[inline]
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Iterates the bytes of a query-string component, percent-decoded and with `+` read
/// as a space (HTML form encoding). A `%` not followed by two hex digits stays as is.
#[derive(Clone)]
pub(crate) struct Decoded<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Decoded<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Decoded { raw, at: 0 }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = *self.raw.get(self.at)?;
        self.at += 1;
        match b {
            b'+' => Some(b' '),
            b'%' => {
                let pair = self
                    .raw
                    .get(self.at..self.at + 2)
                    .and_then(|p| Some(hex(p[0])? << 4 | hex(p[1])?));
                if let Some(byte) = pair {
                    self.at += 2;
                    Some(byte)
                } else {
                    Some(b'%')
                }
            }
            other => Some(other),
        }
    }
}

/// Does the decoded form of `raw` equal `want`?
#[inline]
pub(crate) fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    if !needs_decoding(raw) {
        return raw == want;
    }
    Decoded::new(raw).eq(want.iter().copied())
}

#[inline]
fn needs_decoding(raw: &[u8]) -> bool {
    raw.iter().any(|&b| b == b'%' || b == b'+')
}

/// Calls `f` with the decoded form of `raw`.
pub(crate) fn with_decoded<T>(raw: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    if !needs_decoding(raw) {
        return f(raw);
    }
    // Decoding never lengthens a value.
    if raw.len() <= STACK_DECODE {
        let mut buf = [0u8; STACK_DECODE];
        let mut n = 0;
        for b in Decoded::new(raw) {
            buf[n] = b;
            n += 1;
        }
        f(&buf[..n])
    } else {
        let owned: Vec<u8> = Decoded::new(raw).collect();
        f(&owned)
    }
}

/// The raw (still encoded) value of the first query parameter whose decoded name is
/// `name`: `Some(b"")` for `?name` and `?name=`.
pub(crate) fn query_param<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            decoded_eq(key, name).then_some(value)
        })
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`), without surrounding
/// double quotes.
pub(crate) fn cookie<'c>(header: &'c [u8], name: &[u8]) -> Option<&'c [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if pair[..eq].trim_ascii() != name {
            return None;
        }
        let value = pair[eq + 1..].trim_ascii();
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        })
    })
}

/// The query string of a request target (`/p?q` gives `q`), empty when there is none.
#[inline]
pub(crate) fn query_of(path_and_query: &[u8]) -> &[u8] {
    match memchr::memchr(b'?', path_and_query) {
        Some(q) => &path_and_query[q + 1..],
        None => &[],
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a: stable across builds and platforms, which a consistent-hash
/// balancer needs (the same key must land on the same host after a restart).
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}
