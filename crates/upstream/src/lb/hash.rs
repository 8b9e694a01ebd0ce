//! Stable hashing for the consistent-hash balancers. Stable across processes and
//! builds (unlike std's `DefaultHasher`), so every proxy maps a key to the same host.

/// SplitMix64's finalizer: spreads every input bit over the output. Applied to the
/// route's hash before a lookup, so a weak hash still lands evenly.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a over `bytes` from `seed`, finished with [`mix64`].
pub(crate) fn hash_bytes(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ mix64(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// A host's key: its address as MOSN prints it (`ip:port`).
pub(crate) fn host_key(addr: &std::net::SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_seeded() {
        assert_eq!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.1:80", 1));
        assert_ne!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.1:80", 2));
        assert_ne!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.2:80", 1));
        // Pinned: a change here remaps every consistent-hash key of every deployment.
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    }
}
