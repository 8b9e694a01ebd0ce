//! Virtual host selection by the request's host, with Envoy's precedence:
//! exact > longest suffix wildcard > longest prefix wildcard > `*`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hosts up to this length are lower-cased on the stack; real host names are far
/// shorter (DNS caps them at 253 bytes), so the heap fallback is for abuse only.
const STACK_HOST: usize = 256;

/// A multiply-rotate hasher for the domain maps. SipHash's flooding resistance buys
/// nothing here: the maps are filled once from config and only ever probed by
/// request hosts, so an attacker cannot grow a bucket, and lookups are per request.
#[derive(Default, Clone, Copy)]
pub(crate) struct DomainHasher(u64);

impl DomainHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for DomainHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Zero padding is unambiguous because `[u8]`'s Hash writes the length first.
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the top bits, which hashbrown uses for its control
        // bytes, weakly mixed for short keys; a final avalanche fixes that.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type DomainMap = HashMap<Box<[u8]>, usize, BuildHasherDefault<DomainHasher>>;

/// How a configured domain matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DomainKind {
    Exact(Vec<u8>),
    /// `*.example.com`: the part after the `*`.
    Suffix(Vec<u8>),
    /// `example.*`: the part before the `*`.
    Prefix(Vec<u8>),
    Any,
}

/// Classifies a configured domain (lower-cased), or says why it is not one of
/// Envoy's forms.
pub(crate) fn parse_domain(domain: &str) -> Result<DomainKind, &'static str> {
    if domain.is_empty() {
        return Err("empty domain");
    }
    let lower = domain.as_bytes().to_ascii_lowercase();
    let stars = lower.iter().filter(|&&b| b == b'*').count();
    match stars {
        0 => Ok(DomainKind::Exact(lower)),
        1 if lower == b"*" => Ok(DomainKind::Any),
        1 if lower[0] == b'*' => Ok(DomainKind::Suffix(lower[1..].to_vec())),
        1 if lower[lower.len() - 1] == b'*' => {
            Ok(DomainKind::Prefix(lower[..lower.len() - 1].to_vec()))
        }
        _ => Err("a wildcard may stand only at the start or the end, once"),
    }
}

/// Domain -> virtual host index.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: DomainMap,
    /// Suffix wildcards grouped by suffix length, longest first, so the first hit is
    /// the longest suffix and a lookup costs one probe per distinct length.
    suffixes: Vec<(usize, DomainMap)>,
    /// Prefix wildcards, grouped the same way.
    prefixes: Vec<(usize, DomainMap)>,
    any: Option<usize>,
}

impl DomainIndex {
    /// Adds a domain. On a duplicate, returns the virtual host that already has it.
    pub(crate) fn insert(&mut self, kind: DomainKind, vhost: usize) -> Result<(), usize> {
        let (map, key) = match kind {
            DomainKind::Any => {
                return match self.any {
                    Some(first) => Err(first),
                    None => {
                        self.any = Some(vhost);
                        Ok(())
                    }
                };
            }
            DomainKind::Exact(key) => (&mut self.exact, key),
            DomainKind::Suffix(key) => (group(&mut self.suffixes, key.len()), key),
            DomainKind::Prefix(key) => (group(&mut self.prefixes, key.len()), key),
        };
        match map.get(key.as_slice()) {
            Some(&first) => Err(first),
            None => {
                map.insert(key.into_boxed_slice(), vhost);
                Ok(())
            }
        }
    }

    /// The virtual host for a Host header value as received.
    #[inline]
    pub(crate) fn find(&self, raw_host: &[u8]) -> Option<usize> {
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.any;
        }
        let host = strip_port(raw_host);
        if !host.iter().any(u8::is_ascii_uppercase) {
            return self.find_lower(host);
        }
        if host.len() <= STACK_HOST {
            let mut buf = [0u8; STACK_HOST];
            let lower = &mut buf[..host.len()];
            lower.copy_from_slice(host);
            lower.make_ascii_lowercase();
            self.find_lower(lower)
        } else {
            self.find_lower(&host.to_ascii_lowercase())
        }
    }

    fn find_lower(&self, host: &[u8]) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        // Strictly longer: the wildcard must stand for at least one character.
        for (len, map) in &self.suffixes {
            if host.len() > *len {
                if let Some(&i) = map.get(&host[host.len() - len..]) {
                    return Some(i);
                }
            }
        }
        for (len, map) in &self.prefixes {
            if host.len() > *len {
                if let Some(&i) = map.get(&host[..*len]) {
                    return Some(i);
                }
            }
        }
        self.any
    }
}

fn group(groups: &mut Vec<(usize, DomainMap)>, len: usize) -> &mut DomainMap {
    let at = match groups.binary_search_by(|(l, _)| len.cmp(l)) {
        Ok(at) => at,
        Err(at) => {
            groups.insert(at, (len, DomainMap::default()));
            at
        }
    };
    &mut groups[at].1
}

/// Drops a trailing `:port`. A bracketed IPv6 literal keeps its brackets (`[::1]`, as
/// Envoy compares it); a bare IPv6 address (several colons) has no port to strip.
#[inline]
pub(crate) fn strip_port(host: &[u8]) -> &[u8] {
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => match &host[end + 1..] {
                [] => host,
                [b':', port @ ..] if all_digits(port) => &host[..=end],
                _ => host,
            },
            None => host,
        };
    }
    match host.iter().position(|&b| b == b':') {
        // Digits contain no colon, so this also requires the colon to be the only one.
        Some(colon) if all_digits(&host[colon + 1..]) => &host[..colon],
        _ => host,
    }
}
