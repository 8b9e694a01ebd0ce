//! Route tables of mosn-rs, built from MOSN's `routers` config: virtual host selection
//! by host, indexed first-match route lookup (path, headers, query parameters, MOSN
//! variables), per-route header mutations, and route actions with the pure helpers the
//! proxy applies (cluster choice, rewrites, redirects, mirrors, hashing, retry policy).
//! See docs/routing.md.
//!
//! Everything is compiled at build time so that [`RouteTable::route`] takes no locks and
//! allocates nothing (the exceptions: a host longer than 256 bytes with upper-case
//! letters is lower-cased on the heap, and so is the percent-decoding of a query value
//! longer than 512 bytes that a regex tests).

mod action;
mod domain;
mod error;
mod headers;
mod index;
mod matcher;
mod retry;
mod util;

pub use action::{
    ClusterAction, ClusterChoice, ClusterSpecifier, HashPolicy, HostRewrite, MetadataMatch,
    MirrorPolicy, PathRewrite, Redirect, RequestKey, RouteAction, WeightedCluster,
    WeightedClusters,
};
pub use error::{Location, RouterError};
pub use headers::{HeaderAdd, HeaderOps};
pub use retry::{RetryBackOff, RetryOn, RetryPolicy};
pub use util::fnv1a64;

use domain::DomainIndex;
use index::RouteIndex;
use matcher::{Conditions, PathMatch};
use mosn_config as cfg;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What the router needs to know about a request. Only `host`, `path` and `header`
/// are required; the others have defaults that derive what they can from those.
pub trait RequestView {
    /// Host header / :authority value as received (may include ":port", any case).
    fn host(&self) -> &[u8];
    /// Path without the query string (bytes as received).
    fn path(&self) -> &[u8];
    /// First value of a header, name matched case-insensitively (name given lower-case).
    /// Header matchers on pseudo-headers (`:path`) ask for them here too, by their
    /// lower-case name with the colon.
    fn header(&self, lower_name: &str) -> Option<&[u8]>;
    /// The raw query string without `?`, empty when there is none. Default: the part
    /// of `header(":path")` after `?`.
    fn query(&self) -> &[u8] {
        self.header(":path").map(util::query_of).unwrap_or_default()
    }
    /// The request method. Default: `header(":method")`, else empty.
    fn method(&self) -> &[u8] {
        self.header(":method").unwrap_or_default()
    }
    /// `http` or `https` as the client used it. Default: `http`.
    fn scheme(&self) -> &[u8] {
        b"http"
    }
    /// The client's address (source-IP hashing). Default: unknown.
    fn peer_ip(&self) -> Option<IpAddr> {
        None
    }
    /// A MOSN variable the router does not derive itself from the request (see
    /// docs/routing.md for the names it derives). Default: none.
    fn variable(&self, _name: &str) -> Option<&[u8]> {
        None
    }
}

/// A matched route: its action and the header mutations of all levels above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub action: RouteAction,
    pub headers: HeaderOps,
}

#[derive(Debug)]
struct CompiledRoute {
    path: PathMatch,
    conditions: Conditions,
    route: Route,
}

#[derive(Debug)]
struct VirtualHost {
    routes: Box<[CompiledRoute]>,
    index: RouteIndex,
}

/// One router configuration (`router_config_name`), compiled.
#[derive(Debug)]
pub struct RouteTable {
    name: String,
    domains: DomainIndex,
    virtual_hosts: Box<[VirtualHost]>,
}

impl RouteTable {
    pub fn build(cfg: &cfg::RouterConfiguration) -> Result<RouteTable, RouterError> {
        let router_name = cfg.router_config_name.as_str();
        let router_ops = cfg.header_mutations();
        // Routes to one cluster share its name.
        let mut cluster_names: action::ClusterNames<'_> = HashMap::new();
        let mut domains = DomainIndex::default();
        let mut virtual_hosts = Vec::with_capacity(cfg.virtual_hosts.len());
        for (vi, vh) in cfg.virtual_hosts.iter().enumerate() {
            let at = Location::virtual_host(router_name, vi, &vh.name);
            for domain in &vh.domains {
                let kind =
                    domain::parse_domain(domain).map_err(|reason| RouterError::BadDomain {
                        at: at.boxed(),
                        domain: domain.clone(),
                        reason,
                    })?;
                domains
                    .insert(kind, vi)
                    .map_err(|first| RouterError::DuplicateDomain {
                        at: at.boxed(),
                        domain: domain.clone(),
                        first,
                    })?;
            }
            if u32::try_from(vh.routers.len()).is_err() {
                return Err(RouterError::BadRoute {
                    at: at.boxed(),
                    reason: "too many routes in one virtual host",
                });
            }
            let vhost_ops = vh.header_mutations();
            let mut routes = Vec::with_capacity(vh.routers.len());
            for (ri, rc) in vh.routers.iter().enumerate() {
                let at = at.with_route(ri);
                let path = PathMatch::build(&rc.matcher, &at)?;
                let conditions = Conditions::build(&rc.matcher, &at)?;
                let action = action::build(rc, &at, &mut cluster_names)?;
                let route_ops = rc.header_mutations();
                let headers = match (&action, &rc.route) {
                    (RouteAction::Cluster(_), Some(a)) => HeaderOps::merge(&[
                        &a.header_mutations(),
                        &route_ops,
                        &vhost_ops,
                        &router_ops,
                    ]),
                    _ => HeaderOps::merge(&[&route_ops, &vhost_ops, &router_ops]),
                };
                routes.push(CompiledRoute {
                    path,
                    conditions,
                    route: Route { action, headers },
                });
            }
            let index = RouteIndex::build(routes.iter().map(|r| &r.path.kind));
            virtual_hosts.push(VirtualHost {
                routes: routes.into_boxed_slice(),
                index,
            });
        }
        Ok(RouteTable {
            name: router_name.to_owned(),
            domains,
            virtual_hosts: virtual_hosts.into_boxed_slice(),
        })
    }

    /// The route for a request: the virtual host chosen by host, then its first route
    /// (in config order) whose conditions all hold. `None` when no virtual host or no
    /// route matches.
    #[inline]
    pub fn route<R: RequestView + ?Sized>(&self, req: &R) -> Option<&Route> {
        let vhost = self.virtual_hosts.get(self.domains.find(req.host())?)?;
        let path = req.path();
        let routes = &vhost.routes;
        let found = vhost.index.find(
            path,
            |i| routes[i as usize].conditions.matches(req),
            |i| {
                let r = &routes[i as usize];
                r.path.matches(path) && r.conditions.matches(req)
            },
        )?;
        Some(&routes[found as usize].route)
    }

    /// The `router_config_name`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// All route tables of a config, by `router_config_name`.
#[derive(Debug, Default)]
pub struct RouterSet {
    tables: HashMap<String, Arc<RouteTable>>,
}

impl RouterSet {
    pub fn build(routers: &[cfg::RouterConfiguration]) -> Result<RouterSet, RouterError> {
        let mut tables = HashMap::with_capacity(routers.len());
        for router in routers {
            let table = RouteTable::build(router)?;
            if tables
                .insert(router.router_config_name.clone(), Arc::new(table))
                .is_some()
            {
                return Err(RouterError::DuplicateRouter(
                    router.router_config_name.clone(),
                ));
            }
        }
        Ok(RouterSet { tables })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<RouteTable>> {
        self.tables.get(name)
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The router names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_actions;
#[cfg(test)]
mod tests_matching;
