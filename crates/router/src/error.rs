//! Build errors. Each names the router, virtual host and route it comes from, in the
//! same `routers[i]` vocabulary as the JSON, so an operator can find the offending entry.

use std::fmt;

/// Where in a router configuration a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub router: String,
    /// Index and name of the virtual host (names are optional in MOSN, hence the index).
    pub virtual_host: Option<(usize, String)>,
    /// Index of the route in the virtual host's `routers` list.
    pub route: Option<usize>,
}

impl Location {
    pub(crate) fn router(router: &str) -> Self {
        Location {
            router: router.to_owned(),
            virtual_host: None,
            route: None,
        }
    }

    pub(crate) fn virtual_host(router: &str, index: usize, name: &str) -> Self {
        Location {
            virtual_host: Some((index, name.to_owned())),
            ..Location::router(router)
        }
    }

    pub(crate) fn with_route(&self, index: usize) -> Self {
        Location {
            route: Some(index),
            ..self.clone()
        }
    }

    pub(crate) fn boxed(&self) -> Box<Location> {
        Box::new(self.clone())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "router {:?}", self.router)?;
        if let Some((index, name)) = &self.virtual_host {
            write!(f, " virtual_hosts[{index}]")?;
            if !name.is_empty() {
                write!(f, " ({name:?})")?;
            }
        }
        if let Some(index) = self.route {
            write!(f, " routers[{index}]")?;
        }
        Ok(())
    }
}

/// Locations are boxed to keep `Result<_, RouterError>` small.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    #[error("duplicate router_config_name {0:?}")]
    DuplicateRouter(String),
    #[error("{at}: bad domain {domain:?}: {reason}")]
    BadDomain {
        at: Box<Location>,
        domain: String,
        reason: &'static str,
    },
    #[error("{at}: domain {domain:?} is already used by virtual_hosts[{first}]")]
    DuplicateDomain {
        at: Box<Location>,
        domain: String,
        first: usize,
    },
    #[error("{at}: {reason}")]
    BadRoute {
        at: Box<Location>,
        reason: &'static str,
    },
    #[error("{at}: {field}: {reason}")]
    BadField {
        at: Box<Location>,
        /// The JSON field, relative to the route.
        field: String,
        reason: String,
    },
    #[error("{at}: bad regex in {field} {pattern:?}: {source}")]
    BadRegex {
        at: Box<Location>,
        /// The JSON field holding the pattern, relative to the route.
        field: String,
        pattern: String,
        #[source]
        source: regex::Error,
    },
}
