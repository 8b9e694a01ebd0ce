//! STRICT_DNS clusters: the host address forms they accept (`host:port`, `host`, `IP:port`)
//! and MOSN's DNS keys (`dns_refresh_rate`, `dns_lookup_family`, `respect_dns_ttl`),
//! shared by validation and the resolver in mosn-upstream (docs/clusters.md).

use crate::model::ClusterConfig;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How often names are resolved again when `dns_refresh_rate` is absent or 0 (MOSN's and
/// Envoy's 5 s).
pub const DEFAULT_REFRESH_RATE: Duration = Duration::from_secs(5);
/// A shorter `dns_refresh_rate` is raised to this (with a warning).
pub const MIN_REFRESH_RATE: Duration = Duration::from_millis(100);
/// The port of a host given without one, as MOSN (`aaa.com` means `aaa.com:80`).
pub const DEFAULT_PORT: u16 = 80;

/// Which answers of a lookup become hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LookupFamily {
    /// Absent: the IPv4 answers, or the IPv6 ones when there is no IPv4 answer
    /// (MOSN asks for A records only; Envoy calls this `V4_PREFERRED`).
    #[default]
    V4Preferred,
    /// `V4_ONLY`: IPv4 answers only.
    V4Only,
    /// `V6_ONLY`: IPv6 answers only.
    V6Only,
    /// Envoy's `AUTO`: the IPv6 answers, or the IPv4 ones when there is no IPv6 answer.
    Auto,
    /// Envoy's `ALL`: every answer.
    All,
}

/// The `dns_lookup_family` values, for messages.
pub const LOOKUP_FAMILIES: &[&str] = &["V4_ONLY", "V6_ONLY", "V4_PREFERRED", "AUTO", "ALL"];

impl LookupFamily {
    /// Parses MOSN's values (`V4_ONLY`, `V6_ONLY`) and Envoy's (`V4_PREFERRED`, `AUTO`,
    /// `ALL`); empty is the default. Case-insensitive.
    pub fn parse(text: &str) -> Option<LookupFamily> {
        Some(match text.to_ascii_uppercase().as_str() {
            "" => LookupFamily::V4Preferred,
            "V4_ONLY" => LookupFamily::V4Only,
            "V6_ONLY" => LookupFamily::V6Only,
            "V4_PREFERRED" => LookupFamily::V4Preferred,
            "AUTO" => LookupFamily::Auto,
            "ALL" => LookupFamily::All,
            _ => return None,
        })
    }

    /// The answers this family keeps, sorted and without duplicates; empty when none fits.
    pub fn select(self, answers: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = answers.into_iter().collect();
        all.sort();
        all.dedup();
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = all.iter().partition(|ip| ip.is_ipv4());
        match self {
            LookupFamily::V4Only => v4,
            LookupFamily::V6Only => v6,
            LookupFamily::V4Preferred if v4.is_empty() => v6,
            LookupFamily::V4Preferred => v4,
            LookupFamily::Auto if v6.is_empty() => v4,
            LookupFamily::Auto => v6,
            LookupFamily::All => all,
        }
    }

    /// What a lookup that kept nothing lacked, for logs.
    pub fn wanted(self) -> &'static str {
        match self {
            LookupFamily::V4Only => "IPv4",
            LookupFamily::V6Only => "IPv6",
            _ => "IP",
        }
    }
}

/// A host `address` of a STRICT_DNS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddress {
    /// An IP address: used as it is, never resolved (as MOSN).
    Ip {
        addr: SocketAddr,
        /// The port was absent and is [`DEFAULT_PORT`].
        default_port: bool,
    },
    /// A name to resolve.
    Name {
        name: String,
        port: u16,
        /// The port was absent and is [`DEFAULT_PORT`].
        default_port: bool,
    },
}

impl HostAddress {
    pub fn default_port(&self) -> bool {
        match self {
            HostAddress::Ip { default_port, .. } | HostAddress::Name { default_port, .. } => {
                *default_port
            }
        }
    }
}

/// Parses `host:port`, `IP:port`, `[IPv6]:port`, or either without a port (port 80).
pub fn parse_host_address(text: &str) -> Result<HostAddress, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(HostAddress::Ip {
            addr,
            default_port: false,
        });
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(HostAddress::Ip {
            addr: SocketAddr::new(ip, DEFAULT_PORT),
            default_port: true,
        });
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(HostAddress::Ip {
                addr: SocketAddr::new(ip, DEFAULT_PORT),
                default_port: true,
            });
        }
    }
    let (name, port, default_port) = match text.rsplit_once(':') {
        Some((name, port)) => {
            if name.contains(':') || name.starts_with('[') {
                return Err(
                    "not an IP address or host name (an IPv6 address is written [addr]:port)"
                        .into(),
                );
            }
            (name, parse_port(port)?, false)
        }
        None => (text, DEFAULT_PORT, true),
    };
    check_host_name(name)?;
    Ok(HostAddress::Name {
        name: name.to_string(),
        port,
        default_port,
    })
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port after ':'".into());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {text:?}"));
    }
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 is not a destination".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("port {text} is out of range (1-65535)")),
    }
}

/// A DNS name as resolvers take it: dot-separated labels of letters, digits, `-` (not
/// first or last) and `_`, 1 to 63 characters each, 253 in all; one trailing dot allowed.
/// A name whose last label is all digits is a mistyped IP address, not a name.
pub fn check_host_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("missing host name".into());
    }
    if bare.len() > 253 {
        return Err(format!(
            "host name is {} characters long (at most 253)",
            bare.len()
        ));
    }
    let mut last = "";
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in host name {name:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a host name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a valid IP address, nor a host name".into());
    }
    Ok(())
}

impl ClusterConfig {
    /// `dns_refresh_rate`, defaults and floor applied.
    pub fn dns_refresh_rate(&self) -> Duration {
        match self.dns_refresh_rate.map(|d| d.0) {
            None => DEFAULT_REFRESH_RATE,
            Some(d) if d.is_zero() => DEFAULT_REFRESH_RATE,
            Some(d) => d.max(MIN_REFRESH_RATE),
        }
    }

    /// `dns_lookup_family`; an unknown value (refused by validation) reads as the default.
    pub fn dns_lookup_family(&self) -> LookupFamily {
        LookupFamily::parse(&self.dns_lookup_family).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, port: u16, default_port: bool) -> HostAddress {
        HostAddress::Name {
            name: n.into(),
            port,
            default_port,
        }
    }

    #[test]
    fn address_forms() {
        assert_eq!(
            parse_host_address("localhost:8080"),
            Ok(name("localhost", 8080, false))
        );
        assert_eq!(
            parse_host_address("svc.ns.svc.cluster.local."),
            Ok(name("svc.ns.svc.cluster.local.", 80, true))
        );
        assert_eq!(
            parse_host_address("_grpc.x-1.example:9"),
            Ok(name("_grpc.x-1.example", 9, false))
        );
        assert_eq!(
            parse_host_address("10.0.0.1:53"),
            Ok(HostAddress::Ip {
                addr: "10.0.0.1:53".parse().unwrap(),
                default_port: false
            })
        );
        assert_eq!(
            parse_host_address("10.0.0.1"),
            Ok(HostAddress::Ip {
                addr: "10.0.0.1:80".parse().unwrap(),
                default_port: true
            })
        );
        assert_eq!(
            parse_host_address("[::1]"),
            Ok(HostAddress::Ip {
                addr: "[::1]:80".parse().unwrap(),
                default_port: true
            })
        );
        assert!(parse_host_address("[::1]:443")
            .is_ok_and(|a| !a.default_port() && matches!(a, HostAddress::Ip { .. })));
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, why) in [
            ("", "missing host name"),
            (":80", "missing host name"),
            ("host:", "missing port"),
            ("host:http", "bad port"),
            ("host:0", "port 0"),
            ("host:65536", "out of range"),
            ("host:-1", "bad port"),
            ("a..b:80", "empty label"),
            ("-a.b:80", "starts or ends"),
            ("a b:80", "not allowed"),
            ("a/b:80", "not allowed"),
            ("256.1.1.1:80", "not a valid IP"),
            ("fe80::1%eth0:80", "IPv6"),
            ("[::1]:x", "IPv6"),
        ] {
            let e = parse_host_address(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let long = format!("{}.com:80", "a".repeat(64));
        assert!(parse_host_address(&long)
            .unwrap_err()
            .contains("longer than 63"));
        let huge = format!("{}com:80", "abcdefghi.".repeat(26));
        assert!(parse_host_address(&huge)
            .unwrap_err()
            .contains("at most 253"));
    }

    #[test]
    fn families_select_answers() {
        let answers: Vec<IpAddr> = ["::1", "127.0.0.1", "10.0.0.2", "127.0.0.1", "fe80::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let v4 = |f: LookupFamily| f.select(answers.clone());
        let s = |v: Vec<IpAddr>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(s(v4(LookupFamily::V4Preferred)), ["10.0.0.2", "127.0.0.1"]);
        assert_eq!(s(v4(LookupFamily::V4Only)), ["10.0.0.2", "127.0.0.1"]);
        assert_eq!(s(v4(LookupFamily::V6Only)), ["::1", "fe80::1"]);
        assert_eq!(s(v4(LookupFamily::Auto)), ["::1", "fe80::1"]);
        assert_eq!(v4(LookupFamily::All).len(), 4);
        let only6: Vec<IpAddr> = vec!["::1".parse().unwrap()];
        assert_eq!(s(LookupFamily::V4Preferred.select(only6.clone())), ["::1"]);
        assert!(LookupFamily::V4Only.select(only6).is_empty());
        let only4: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        assert_eq!(s(LookupFamily::Auto.select(only4)), ["127.0.0.1"]);
        assert_eq!(LookupFamily::parse("v4_only"), Some(LookupFamily::V4Only));
        assert_eq!(LookupFamily::parse(""), Some(LookupFamily::V4Preferred));
        assert_eq!(LookupFamily::parse("V5_ONLY"), None);
    }

    #[test]
    fn refresh_rate_defaults_and_floor() {
        let mut c = ClusterConfig::default();
        assert_eq!(c.dns_refresh_rate(), DEFAULT_REFRESH_RATE);
        c.dns_refresh_rate = Some(crate::GoDuration(Duration::ZERO));
        assert_eq!(c.dns_refresh_rate(), DEFAULT_REFRESH_RATE);
        c.dns_refresh_rate = Some(crate::GoDuration(Duration::from_millis(1)));
        assert_eq!(c.dns_refresh_rate(), MIN_REFRESH_RATE);
        c.dns_refresh_rate = Some(crate::GoDuration(Duration::from_secs(30)));
        assert_eq!(c.dns_refresh_rate(), Duration::from_secs(30));
    }
}
