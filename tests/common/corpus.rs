//! MOSN's own example configs (the compatibility corpus) made runnable here: every
//! port rewritten to a free one, consistently, so a client-side and a server-side
//! config still point at each other.

use super::free_port;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// A port free on every address (some corpus listeners bind 0.0.0.0), taken below
/// the kernel's ephemeral range so that no outgoing connection or `free_port()` of a
/// test running beside this one picks it meanwhile.
pub fn wildcard_free_port() -> u16 {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u32 = range
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32768);
    let (first, span) = if low > 12000 {
        (10000, low - 10000)
    } else {
        (0, 0)
    };
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    for _ in 0..200 {
        let p = if span == 0 {
            free_port()
        } else {
            // xorshift32
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (first + seed % span) as u16
        };
        if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// Rewrites every port of a config: `"IP:PORT"` strings and `port_value` numbers,
/// the same old port to the same new free port throughout.
pub fn rewrite_ports(text: &str, map: &mut HashMap<u16, u16>) -> String {
    let mut taken: HashSet<u16> = map.values().copied().collect();
    let mut new_port = |old: u16, map: &mut HashMap<u16, u16>| -> u16 {
        *map.entry(old).or_insert_with(|| loop {
            let p = wildcard_free_port();
            if taken.insert(p) {
                break p;
            }
        })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut after_port_value_key = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                let s = &text[start..j];
                after_port_value_key = s.eq_ignore_ascii_case("port_value");
                match s.parse::<SocketAddr>() {
                    Ok(mut addr) => {
                        addr.set_port(new_port(addr.port(), map));
                        out.push('"');
                        out.push_str(&addr.to_string());
                        out.push('"');
                    }
                    Err(_) => out.push_str(&text[i..=j]),
                }
                i = j + 1;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = &text[start..i];
                match digits.parse::<u16>() {
                    Ok(old) if after_port_value_key => {
                        out.push_str(&new_port(old, map).to_string())
                    }
                    _ => out.push_str(digits),
                }
                after_port_value_key = false;
            }
            _ => {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// A JSON object's member, its key matched case-insensitively (as MOSN reads keys).
pub fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Ports of the listeners that bind (and of the admin API).
pub fn listening_ports(config: &Value) -> Vec<u16> {
    let mut ports = Vec::new();
    let servers = member(config, "servers").and_then(Value::as_array);
    for server in servers.into_iter().flatten() {
        let listeners = member(server, "listeners").and_then(Value::as_array);
        for l in listeners.into_iter().flatten() {
            let binds = member(l, "bind_port").and_then(Value::as_bool) == Some(true);
            let addr = member(l, "address")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<SocketAddr>().ok());
            if let (true, Some(addr)) = (binds, addr) {
                ports.push(addr.port());
            }
        }
    }
    let admin_port = member(config, "admin")
        .and_then(|a| member(a, "address"))
        .and_then(|a| member(a, "socket_address"))
        .and_then(|a| member(a, "port_value"))
        .and_then(Value::as_u64);
    ports.extend(admin_port.map(|p| p as u16));
    ports
}
