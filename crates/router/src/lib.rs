//! Route tables of mosn-rs, built from MOSN's `routers` config: virtual host selection
//! by host, first-match route lookup, and per-route header mutations.
//!
//! Everything is compiled at build time so that [`RouteTable::route`] takes no locks and
//! allocates nothing (a host longer than 256 bytes with upper-case letters is the one
//! exception: it is lower-cased on the heap).

mod domain;
mod error;
mod headers;
mod matcher;

pub use error::{Location, RouterError};
pub use headers::{HeaderAdd, HeaderOps};

use bytes::Bytes;
use domain::DomainIndex;
use matcher::Matcher;
use mosn_config as cfg;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the router needs to know about a request.
pub trait RequestView {
    /// Host header / :authority value as received (may include ":port", any case).
    fn host(&self) -> &[u8];
    /// Path without the query string (bytes as received).
    fn path(&self) -> &[u8];
    /// First value of a header, name matched case-insensitively (name given lower-case).
    /// Header matchers on pseudo-headers (`:method`, `:path`, `:authority`) ask for them
    /// here too, by their lower-case name with the colon.
    fn header(&self, lower_name: &str) -> Option<&[u8]>;
}

/// What to do with a request that matched a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to a cluster. `timeout` is the route's own; `None` means the caller's
    /// default (MOSN's is [`mosn_config::DEFAULT_ROUTE_TIMEOUT`]).
    Cluster {
        name: Arc<str>,
        timeout: Option<Duration>,
    },
    /// Answer without an upstream.
    DirectResponse { status: u16, body: Bytes },
}

/// A matched route: its action and the header mutations of all levels above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub action: RouteAction,
    pub headers: HeaderOps,
}

#[derive(Debug)]
struct CompiledRoute {
    matcher: Matcher,
    route: Route,
}

#[derive(Debug)]
struct VirtualHost {
    routes: Box<[CompiledRoute]>,
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
        let mut cluster_names: HashMap<&str, Arc<str>> = HashMap::new();
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
            let vhost_ops = vh.header_mutations();
            let mut routes = Vec::with_capacity(vh.routers.len());
            for (ri, rc) in vh.routers.iter().enumerate() {
                let at = at.with_route(ri);
                let matcher = Matcher::build(&rc.matcher, &at)?;
                let (action, headers) = match (&rc.route, &rc.direct_response) {
                    (Some(action), None) => {
                        let name = cluster_names
                            .entry(action.cluster_name.as_str())
                            .or_insert_with(|| Arc::from(action.cluster_name.as_str()))
                            .clone();
                        let headers = HeaderOps::merge(&[
                            &action.header_mutations(),
                            &rc.header_mutations(),
                            &vhost_ops,
                            &router_ops,
                        ]);
                        let timeout = action.timeout.map(|d| d.0);
                        (RouteAction::Cluster { name, timeout }, headers)
                    }
                    (None, Some(direct)) => {
                        let headers =
                            HeaderOps::merge(&[&rc.header_mutations(), &vhost_ops, &router_ops]);
                        let action = RouteAction::DirectResponse {
                            status: direct.status,
                            body: Bytes::from(direct.body.clone()),
                        };
                        (action, headers)
                    }
                    (Some(_), Some(_)) => {
                        return Err(RouterError::BadRoute {
                            at: at.boxed(),
                            reason: "set either route or direct_response, not both",
                        })
                    }
                    (None, None) => {
                        return Err(RouterError::BadRoute {
                            at: at.boxed(),
                            reason: "a route needs a route or a direct_response",
                        })
                    }
                };
                routes.push(CompiledRoute {
                    matcher,
                    route: Route { action, headers },
                });
            }
            virtual_hosts.push(VirtualHost {
                routes: routes.into_boxed_slice(),
            });
        }
        Ok(RouteTable {
            name: router_name.to_owned(),
            domains,
            virtual_hosts: virtual_hosts.into_boxed_slice(),
        })
    }

    /// The route for a request: the virtual host chosen by host, then its first route
    /// whose conditions all hold. `None` when no virtual host or no route matches.
    #[inline]
    pub fn route<R: RequestView + ?Sized>(&self, req: &R) -> Option<&Route> {
        let vhost = self.virtual_hosts.get(self.domains.find(req.host())?)?;
        let path = req.path();
        vhost
            .routes
            .iter()
            .find(|r| r.matcher.matches(path, req))
            .map(|r| &r.route)
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
