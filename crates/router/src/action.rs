//! What a matched route does, compiled from MOSN's `route`, `redirect` and
//! `direct_response`, with the pure helpers the proxy applies per request: cluster
//! choice, path and host rewrites, mirroring, hashing, redirect locations.

use crate::domain::strip_port;
use crate::error::{Location, RouterError};
use crate::matcher::VarSource;
use crate::retry::RetryPolicy;
use crate::util;
use crate::RequestView;
use bytes::Bytes;
use mosn_config as cfg;
use regex::bytes::Regex;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// What to do with a request that matched a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to a cluster.
    Cluster(ClusterAction),
    /// Answer with a redirect (`Location` from [`Redirect::location`]).
    Redirect(Redirect),
    /// Answer without an upstream.
    DirectResponse { status: u16, body: Bytes },
}

/// The subset a load balancer must pick from: MOSN's `metadata_match`
/// (`filter_metadata["mosn.lb"]`), string values only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataMatch(pub BTreeMap<String, String>);

impl MetadataMatch {
    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// None when the config holds no string value under `mosn.lb`.
    fn from_config(md: Option<&cfg::MetadataMatchConfig>) -> Option<MetadataMatch> {
        let lb = md?.filter_metadata.get(cfg::LB_METADATA_KEY)?;
        let map: BTreeMap<String, String> = lb
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        (!map.is_empty()).then_some(MetadataMatch(map))
    }

    /// `child`'s entries over `parent`'s (a weighted cluster's over its route's).
    fn merged(parent: Option<&MetadataMatch>, child: Option<MetadataMatch>) -> Option<Self> {
        match (parent, child) {
            (None, child) => child,
            (Some(p), None) => Some(p.clone()),
            (Some(p), Some(c)) => {
                let mut map = p.0.clone();
                map.extend(c.0);
                Some(MetadataMatch(map))
            }
        }
    }
}

/// The cluster chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterChoice<'a> {
    pub name: &'a str,
    /// The subset criteria to pass to the cluster's load balancer.
    pub metadata_match: Option<&'a MetadataMatch>,
}

/// A request value that names something: a header (lower-case name) or a MOSN variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    name: Box<str>,
    source: VarSource,
}

impl RequestKey {
    fn header(name: &str) -> RequestKey {
        let lower = name.to_ascii_lowercase();
        RequestKey {
            source: VarSource::Header(lower.clone().into()),
            name: lower.into(),
        }
    }

    fn variable(name: &str) -> RequestKey {
        RequestKey {
            name: name.into(),
            source: VarSource::new(name),
        }
    }

    /// The header name (lower-case) or variable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value in this request; query-parameter variables stay percent-encoded.
    pub fn get<'r, R: RequestView + ?Sized>(&self, req: &'r R) -> Option<&'r [u8]> {
        self.source.get(req)
    }
}

/// Clusters chosen at random in proportion to their weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedClusters {
    entries: Box<[WeightedCluster]>,
    total: u64,
}

/// One entry of `weighted_clusters`. `metadata_match` is already merged with the
/// route's (the entry's keys win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    pub name: Arc<str>,
    pub weight: u32,
    pub metadata_match: Option<MetadataMatch>,
}

impl WeightedClusters {
    pub fn entries(&self) -> &[WeightedCluster] {
        &self.entries
    }

    /// The sum of the weights (never 0).
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// The entry `random` (uniform over u64) falls on.
    pub fn pick(&self, random: u64) -> &WeightedCluster {
        let mut point = random % self.total;
        for entry in self.entries.iter() {
            let weight = u64::from(entry.weight);
            if point < weight {
                return entry;
            }
            point -= weight;
        }
        // Unreachable: the weights sum to `total`, which is more than `point`.
        &self.entries[self.entries.len() - 1]
    }
}

/// How a route names its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSpecifier {
    /// `cluster_name`.
    Name(Arc<str>),
    /// `cluster_header`: the cluster named by this request header.
    Header(RequestKey),
    /// MOSN's `cluster_variable`: the cluster named by this variable.
    Variable(RequestKey),
    /// `weighted_clusters`.
    Weighted(WeightedClusters),
}

/// What a path rewrite replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matched {
    /// The first n bytes of the path (the route's prefix; 0 prepends).
    Prefix(usize),
    /// The whole path (a `path` route).
    WholePath,
}

#[derive(Debug, Clone)]
enum Rewrite {
    Prefix {
        matched: Matched,
        replacement: Box<[u8]>,
    },
    Regex {
        regex: Regex,
        substitution: Box<[u8]>,
    },
}

/// A path rewrite: `prefix_rewrite` (the matched prefix, or the whole path of a
/// `path` route, is replaced) or `regex_rewrite` (every match in the path replaced,
/// `$1`/`${name}` or Envoy's `\1` in the substitution). The query is kept.
#[derive(Debug, Clone)]
pub struct PathRewrite(Rewrite);

impl PartialEq for PathRewrite {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (
                Rewrite::Prefix {
                    matched: a,
                    replacement: ra,
                },
                Rewrite::Prefix {
                    matched: b,
                    replacement: rb,
                },
            ) => a == b && ra == rb,
            (
                Rewrite::Regex {
                    regex: a,
                    substitution: sa,
                },
                Rewrite::Regex {
                    regex: b,
                    substitution: sb,
                },
            ) => a.as_str() == b.as_str() && sa == sb,
            _ => false,
        }
    }
}

impl Eq for PathRewrite {}

impl PathRewrite {
    /// The new path-and-query, or None when the rewrite does not apply.
    pub fn rewrite(&self, path_and_query: &[u8]) -> Option<Vec<u8>> {
        let (path, query) = match memchr::memchr(b'?', path_and_query) {
            Some(q) => path_and_query.split_at(q),
            None => (path_and_query, &[][..]),
        };
        let new_path = self.rewrite_path_only(path)?;
        let mut out = new_path.into_owned();
        out.extend_from_slice(query);
        Some(out)
    }

    /// The new path (no query), or None when the rewrite does not apply.
    fn rewrite_path_only<'p>(&self, path: &'p [u8]) -> Option<Cow<'p, [u8]>> {
        match &self.0 {
            Rewrite::Prefix {
                matched: Matched::WholePath,
                replacement,
            } => Some(Cow::Owned(replacement.to_vec())),
            Rewrite::Prefix {
                matched: Matched::Prefix(n),
                replacement,
            } => {
                let rest = path.get(*n..)?;
                let mut out = Vec::with_capacity(replacement.len() + rest.len());
                out.extend_from_slice(replacement);
                out.extend_from_slice(rest);
                Some(Cow::Owned(out))
            }
            Rewrite::Regex {
                regex,
                substitution,
            } => match regex.replace_all(path, &substitution[..]) {
                Cow::Borrowed(_) => None,
                Cow::Owned(new) if new == path => None,
                owned => Some(owned),
            },
        }
    }
}

/// Envoy writes group references as `\1`; the regex crate (like Go, which MOSN
/// uses) as `$1`. Rewrites `\N` into `${N}` and leaves everything else alone.
fn substitution(s: &str) -> Box<[u8]> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.extend_from_slice(b"${");
            out.push(b[i + 1]);
            out.push(b'}');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out.into_boxed_slice()
}

/// What the proxy sends as Host upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostRewrite {
    /// The request's own Host.
    #[default]
    Keep,
    /// `host_rewrite`.
    Literal(Box<str>),
    /// MOSN's `auto_host_rewrite_header`: the value of this request header
    /// (lower-case name), when present.
    Header(Box<str>),
    /// `auto_host_rewrite`: the chosen upstream host's name, when it has one.
    Auto,
}

impl HostRewrite {
    /// The Host value to send, or None to keep the request's. `upstream_hostname` is
    /// the chosen host's `hostname` (None or empty when it has none).
    pub fn host<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        upstream_hostname: Option<&'a str>,
    ) -> Option<&'a [u8]> {
        match self {
            HostRewrite::Keep => None,
            HostRewrite::Literal(h) => Some(h.as_bytes()),
            HostRewrite::Header(name) => req.header(name).filter(|v| !v.is_empty()),
            HostRewrite::Auto => upstream_hostname
                .filter(|h| !h.is_empty())
                .map(str::as_bytes),
        }
    }
}

/// A cluster that receives a copy of some requests (the response is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorPolicy {
    pub cluster: Arc<str>,
    /// Share of requests mirrored, 0-100 (MOSN's `percent`).
    pub percent: u32,
}

impl MirrorPolicy {
    /// Is this request mirrored? `random` is any uniformly distributed number.
    pub fn should_mirror(&self, random: u64) -> bool {
        self.percent > 0 && random % 100 < u64::from(self.percent)
    }
}

/// One `hash_policy` entry: where the key of a consistent-hash balancer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicy {
    /// The value of a request header (lower-case name).
    Header { name: Box<str> },
    /// The value of a cookie. `path` and `ttl` are kept for a proxy that sets the
    /// cookie when it is missing (neither MOSN nor mosn-rs does yet).
    Cookie {
        name: Box<str>,
        path: Option<Box<str>>,
        ttl: Option<Duration>,
    },
    /// The client's IP address.
    SourceIp,
}

impl HashPolicy {
    /// The 64-bit FNV-1a hash of the key (header value, cookie value, or the IP's
    /// octets, IPv4-mapped IPv6 read as IPv4); None when the request lacks it.
    pub fn hash<R: RequestView + ?Sized>(&self, req: &R) -> Option<u64> {
        match self {
            HashPolicy::Header { name } => req.header(name).map(util::fnv1a64),
            HashPolicy::Cookie { name, .. } => req
                .header("cookie")
                .and_then(|c| util::cookie(c, name.as_bytes()))
                .map(util::fnv1a64),
            HashPolicy::SourceIp => req.peer_ip().map(|ip| match ip {
                IpAddr::V4(v4) => util::fnv1a64(&v4.octets()),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => util::fnv1a64(&v4.octets()),
                    None => util::fnv1a64(&v6.octets()),
                },
            }),
        }
    }

    fn build(h: &cfg::HashPolicyConfig, i: usize, at: &Location) -> Result<Self, RouterError> {
        let bad = |field: &str, reason: &str| RouterError::BadField {
            at: at.boxed(),
            field: format!("route.hash_policy[{i}]{field}"),
            reason: reason.into(),
        };
        match (&h.header, &h.cookie, &h.source_ip) {
            (Some(header), None, None) if header.key.is_empty() => {
                Err(bad(".header.key", "a header hash policy needs a key"))
            }
            (Some(header), None, None) => Ok(HashPolicy::Header {
                name: header.key.to_ascii_lowercase().into(),
            }),
            (None, Some(cookie), None) if cookie.name.is_empty() => {
                Err(bad(".cookie.name", "a cookie hash policy needs a name"))
            }
            (None, Some(cookie), None) => Ok(HashPolicy::Cookie {
                name: cookie.name.as_str().into(),
                path: (!cookie.path.is_empty()).then(|| cookie.path.as_str().into()),
                ttl: cookie.ttl.map(|d| d.0),
            }),
            (None, None, Some(_)) => Ok(HashPolicy::SourceIp),
            _ => Err(bad("", "set exactly one of header, cookie, source_ip")),
        }
    }
}

/// Forwarding to a cluster, with everything the proxy applies on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAction {
    pub cluster: ClusterSpecifier,
    /// The route's `metadata_match` (weighted entries carry their own, merged).
    pub metadata_match: Option<MetadataMatch>,
    /// The route's `timeout` as configured: `None` means the proxy's default (MOSN's
    /// is [`mosn_config::DEFAULT_ROUTE_TIMEOUT`]); `Some(Duration::ZERO)` means no
    /// timeout (MOSN and Envoy read 0 so).
    pub timeout: Option<Duration>,
    /// Envoy's `idle_timeout` as configured (`Some(ZERO)`: disabled).
    pub idle_timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
    pub path_rewrite: Option<PathRewrite>,
    pub host_rewrite: HostRewrite,
    /// MOSN's route-level policy first, then those inside `route`.
    pub mirrors: Box<[MirrorPolicy]>,
    pub hash_policy: Box<[HashPolicy]>,
}

impl ClusterAction {
    /// The cluster for this request and the subset criteria to balance with.
    /// `random` (uniform over u64) makes the weighted pick; a header or variable that
    /// is missing, empty or not UTF-8 gives None (Envoy answers such a request 404).
    pub fn pick_cluster<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random: u64,
    ) -> Option<ClusterChoice<'a>> {
        let name = match &self.cluster {
            ClusterSpecifier::Name(name) => &**name,
            ClusterSpecifier::Header(key) | ClusterSpecifier::Variable(key) => {
                let value = key.get(req)?;
                std::str::from_utf8(value).ok().filter(|s| !s.is_empty())?
            }
            ClusterSpecifier::Weighted(w) => {
                let entry = w.pick(random);
                return Some(ClusterChoice {
                    name: &entry.name,
                    metadata_match: entry.metadata_match.as_ref(),
                });
            }
        };
        Some(ClusterChoice {
            name,
            metadata_match: self.metadata_match.as_ref(),
        })
    }

    /// The new path-and-query when a rewrite applies (the query is kept).
    pub fn rewrite_path(&self, path_and_query: &[u8]) -> Option<Vec<u8>> {
        self.path_rewrite.as_ref()?.rewrite(path_and_query)
    }

    /// The key for a consistent-hash balancer: the hashes of every policy that
    /// yields one, combined as Envoy combines them (`rotl(h, 1) ^ next`). With no
    /// policy, the source IP's hash (MOSN's default policy).
    pub fn hash<R: RequestView + ?Sized>(&self, req: &R) -> Option<u64> {
        if self.hash_policy.is_empty() {
            return HashPolicy::SourceIp.hash(req);
        }
        self.hash_policy
            .iter()
            .filter_map(|p| p.hash(req))
            .reduce(|acc, h| acc.rotate_left(1) ^ h)
    }

    /// The mirror policies that apply to this request, for a `random` drawn per
    /// request (each policy takes its own share of the same draw).
    pub fn mirrors_for(&self, random: u64) -> impl Iterator<Item = &MirrorPolicy> {
        self.mirrors.iter().filter(move |m| m.should_mirror(random))
    }
}

/// A redirect answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308 (default 301).
    pub status: u16,
    scheme: Option<Box<str>>,
    host: Option<Box<str>>,
    port: Option<u16>,
    path: Option<Box<[u8]>>,
    /// A query given inside `path_redirect` (Envoy), which replaces the request's.
    path_query: Option<Box<[u8]>>,
    prefix_rewrite: Option<PathRewrite>,
    strip_query: bool,
}

impl Redirect {
    /// The `Location` for this request: the request's scheme, host, path and query,
    /// each replaced where the redirect says so. On a scheme change, an explicit
    /// default port of the other scheme (`:443` going to http, `:80` to https) is
    /// dropped, as MOSN does.
    pub fn location<R: RequestView + ?Sized>(&self, req: &R) -> String {
        let current_scheme = req.scheme();
        let scheme = self.scheme.as_deref().map_or(current_scheme, str::as_bytes);
        let host = self.host.as_deref().map_or(req.host(), str::as_bytes);
        let path = req.path();
        let mut out = Vec::with_capacity(scheme.len() + host.len() + path.len() + 16);
        out.extend_from_slice(scheme);
        out.extend_from_slice(b"://");
        let bare = strip_port(host);
        match self.port {
            Some(port) => {
                out.extend_from_slice(bare);
                out.push(b':');
                out.extend_from_slice(port.to_string().as_bytes());
            }
            None => {
                let port = &host[bare.len()..];
                let drop_port = !scheme.eq_ignore_ascii_case(current_scheme)
                    && ((scheme.eq_ignore_ascii_case(b"http") && port == b":443")
                        || (scheme.eq_ignore_ascii_case(b"https") && port == b":80"));
                out.extend_from_slice(if drop_port { bare } else { host });
            }
        }
        match (&self.path, &self.prefix_rewrite) {
            (Some(p), _) => out.extend_from_slice(p),
            (None, Some(rw)) => match rw.rewrite_path_only(path) {
                Some(new) => out.extend_from_slice(&new),
                None => out.extend_from_slice(path),
            },
            (None, None) => out.extend_from_slice(path),
        }
        let query = match &self.path_query {
            Some(q) => &q[..],
            None if self.strip_query => &[][..],
            None => req.query(),
        };
        if !query.is_empty() {
            out.push(b'?');
            out.extend_from_slice(query);
        }
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    fn build(
        r: &cfg::RedirectAction,
        matched: Option<Matched>,
        at: &Location,
    ) -> Result<Redirect, RouterError> {
        let bad = |field: &str, reason: String| RouterError::BadField {
            at: at.boxed(),
            field: format!("redirect.{field}"),
            reason,
        };
        let status = match r.response_code {
            0 => 301,
            code @ (301 | 302 | 303 | 307 | 308) => code as u16,
            other => {
                return Err(bad(
                    "response_code",
                    format!("redirect code {other} is not one of 301, 302, 303, 307, 308"),
                ))
            }
        };
        for (field, value) in [
            ("path_redirect", &r.path_redirect),
            ("host_redirect", &r.host_redirect),
            ("prefix_rewrite", &r.prefix_rewrite),
        ] {
            if value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(bad(field, "contains whitespace or a control byte".into()));
            }
        }
        let scheme = match (r.scheme_redirect.as_str(), r.https_redirect) {
            ("", false) => None,
            ("", true) => Some("https".into()),
            (_, true) => {
                return Err(bad(
                    "https_redirect",
                    "set scheme_redirect or https_redirect, not both".into(),
                ))
            }
            (s, false) => {
                let lower = s.to_ascii_lowercase();
                let b = lower.as_bytes();
                let valid = b[0].is_ascii_alphabetic()
                    && b[1..]
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
                if !valid {
                    return Err(bad("scheme_redirect", format!("bad scheme {s:?}")));
                }
                Some(lower.into())
            }
        };
        let port = match r.port_redirect {
            0 => None,
            p => Some(
                u16::try_from(p).map_err(|_| bad("port_redirect", format!("{p} is not a port")))?,
            ),
        };
        if !r.path_redirect.is_empty() && !r.prefix_rewrite.is_empty() {
            return Err(bad(
                "prefix_rewrite",
                "set path_redirect or prefix_rewrite, not both".into(),
            ));
        }
        let (path, path_query) = match r.path_redirect.split_once('?') {
            _ if r.path_redirect.is_empty() => (None, None),
            Some((p, q)) => (Some(p.as_bytes().into()), Some(q.as_bytes().into())),
            None => (Some(r.path_redirect.as_bytes().into()), None),
        };
        let prefix_rewrite = (!r.prefix_rewrite.is_empty()).then(|| {
            PathRewrite(Rewrite::Prefix {
                matched: matched.unwrap_or(Matched::Prefix(0)),
                replacement: r.prefix_rewrite.as_bytes().into(),
            })
        });
        Ok(Redirect {
            status,
            scheme,
            host: (!r.host_redirect.is_empty()).then(|| r.host_redirect.as_str().into()),
            port,
            path,
            path_query,
            prefix_rewrite,
            strip_query: r.strip_query,
        })
    }
}

/// Shares one `Arc<str>` per cluster name across a route table.
pub(crate) type ClusterNames<'c> = HashMap<&'c str, Arc<str>>;

fn intern<'c>(names: &mut ClusterNames<'c>, name: &'c str) -> Arc<str> {
    names.entry(name).or_insert_with(|| Arc::from(name)).clone()
}

/// Builds the action of a route (its `route`, `redirect` or `direct_response`).
pub(crate) fn build<'c>(
    rc: &'c cfg::RouteConfig,
    at: &Location,
    names: &mut ClusterNames<'c>,
) -> Result<RouteAction, RouterError> {
    let matched = match (&rc.matcher.prefix, &rc.matcher.path) {
        (Some(p), _) => Some(Matched::Prefix(p.len())),
        (None, Some(_)) => Some(Matched::WholePath),
        (None, None) => None,
    };
    match (&rc.route, &rc.redirect, &rc.direct_response) {
        (Some(action), None, None) => {
            build_cluster_action(action, rc, matched, at, names).map(RouteAction::Cluster)
        }
        (None, Some(redirect), None) => {
            Redirect::build(redirect, matched, at).map(RouteAction::Redirect)
        }
        (None, None, Some(direct)) => Ok(RouteAction::DirectResponse {
            status: direct.status,
            body: Bytes::from(direct.body.clone()),
        }),
        (None, None, None) => Err(RouterError::BadRoute {
            at: at.boxed(),
            reason: "a route needs one of route, redirect, direct_response",
        }),
        _ => Err(RouterError::BadRoute {
            at: at.boxed(),
            reason: "set only one of route, redirect, direct_response",
        }),
    }
}

fn build_cluster_action<'c>(
    a: &'c cfg::RouteAction,
    rc: &'c cfg::RouteConfig,
    matched: Option<Matched>,
    at: &Location,
    names: &mut ClusterNames<'c>,
) -> Result<ClusterAction, RouterError> {
    let bad = |field: String, reason: String| RouterError::BadField {
        at: at.boxed(),
        field,
        reason,
    };
    let metadata_match = MetadataMatch::from_config(a.metadata_match.as_ref());
    // MOSN's precedence: weighted clusters, then cluster_name, then cluster_variable;
    // mosn-rs puts Envoy's cluster_header before cluster_variable.
    let cluster = if !a.weighted_clusters.is_empty() {
        let mut entries = Vec::with_capacity(a.weighted_clusters.len());
        let mut total = 0u64;
        for (i, w) in a.weighted_clusters.iter().enumerate() {
            let c = &w.cluster;
            if c.name.is_empty() {
                return Err(bad(
                    format!("route.weighted_clusters[{i}].cluster.name"),
                    "a cluster name is required".into(),
                ));
            }
            total += u64::from(c.weight);
            entries.push(WeightedCluster {
                name: intern(names, &c.name),
                weight: c.weight,
                metadata_match: MetadataMatch::merged(
                    metadata_match.as_ref(),
                    MetadataMatch::from_config(c.metadata_match.as_ref()),
                ),
            });
        }
        if total == 0 {
            return Err(bad(
                "route.weighted_clusters".into(),
                "the weights sum to 0".into(),
            ));
        }
        ClusterSpecifier::Weighted(WeightedClusters {
            entries: entries.into_boxed_slice(),
            total,
        })
    } else if !a.cluster_name.is_empty() {
        ClusterSpecifier::Name(intern(names, &a.cluster_name))
    } else if !a.cluster_header.is_empty() {
        ClusterSpecifier::Header(RequestKey::header(&a.cluster_header))
    } else if !a.cluster_variable.is_empty() {
        ClusterSpecifier::Variable(RequestKey::variable(&a.cluster_variable))
    } else {
        return Err(RouterError::BadRoute {
            at: at.boxed(),
            reason: "a route needs a cluster_name (or weighted_clusters, cluster_header, cluster_variable)",
        });
    };
    let hash_policy = a
        .hash_policy
        .iter()
        .enumerate()
        .map(|(i, h)| HashPolicy::build(h, i, at))
        .collect::<Result<_, _>>()?;
    let retry = a
        .retry_policy
        .as_ref()
        .map(|r| RetryPolicy::build(r, at))
        .transpose()?;
    let no_ctl = |field: &str, value: &str| {
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(bad(
                format!("route.{field}"),
                "contains CR, LF or NUL".into(),
            ));
        }
        Ok(())
    };
    let path_rewrite = if !a.prefix_rewrite.is_empty() {
        no_ctl("prefix_rewrite", &a.prefix_rewrite)?;
        // As in MOSN, a prefix rewrite needs a prefix or path to replace.
        matched.map(|matched| {
            PathRewrite(Rewrite::Prefix {
                matched,
                replacement: a.prefix_rewrite.as_bytes().into(),
            })
        })
    } else if let Some(rw) = &a.regex_rewrite {
        let field = "route.regex_rewrite.pattern.regex";
        if rw.pattern.regex.is_empty() {
            return Err(bad(field.into(), "a regex is required".into()));
        }
        no_ctl("regex_rewrite.substitution", &rw.substitution)?;
        let regex = Regex::new(&rw.pattern.regex).map_err(|source| RouterError::BadRegex {
            at: at.boxed(),
            field: field.into(),
            pattern: rw.pattern.regex.clone(),
            source,
        })?;
        Some(PathRewrite(Rewrite::Regex {
            regex,
            substitution: substitution(&rw.substitution),
        }))
    } else {
        None
    };
    no_ctl("host_rewrite", &a.host_rewrite)?;
    // MOSN's precedence.
    let host_rewrite = if !a.host_rewrite.is_empty() {
        HostRewrite::Literal(a.host_rewrite.as_str().into())
    } else if !a.auto_host_rewrite_header.is_empty() {
        HostRewrite::Header(a.auto_host_rewrite_header.to_ascii_lowercase().into())
    } else if a.auto_host_rewrite {
        HostRewrite::Auto
    } else {
        HostRewrite::Keep
    };
    let mut mirrors = Vec::new();
    for (field, list) in [
        ("request_mirror_policies", &rc.request_mirror_policies),
        ("route.request_mirror_policies", &a.request_mirror_policies),
    ] {
        for (i, m) in list.iter().enumerate() {
            if m.cluster.is_empty() {
                return Err(bad(
                    format!("{field}[{i}].cluster"),
                    "a mirror policy needs a cluster".into(),
                ));
            }
            if m.percent > 100 {
                return Err(bad(
                    format!("{field}[{i}].percent"),
                    format!("{} is not a percentage (0-100)", m.percent),
                ));
            }
            mirrors.push(MirrorPolicy {
                cluster: intern(names, &m.cluster),
                percent: m.percent,
            });
        }
    }
    Ok(ClusterAction {
        cluster,
        metadata_match,
        timeout: a.timeout.map(|d| d.0),
        idle_timeout: a.idle_timeout.map(|d| d.0),
        retry,
        path_rewrite,
        host_rewrite,
        mirrors: mirrors.into_boxed_slice(),
        hash_policy,
    })
}
