//! MOSN v2 JSON configuration for mosn-rs: the typed model, loading with JSON-path
//! errors, MOSN-compatible key handling, and validation.

pub mod dns;
pub mod duration;
pub mod error;
pub mod filters;
pub mod keys;
pub mod listener_filters;
pub mod load;
pub mod metrics;
pub mod model;
pub mod tls;
pub mod tracing;
pub mod validate;

pub use duration::GoDuration;
pub use error::{ConfigError, ConfigIssue};
pub use filters::{Http1Options, NetworkFilter, ProxyFilterConfig, TcpProxyConfig};
pub use load::{load_file, load_str, LoadedConfig};
pub use model::*;

use std::time::Duration;

/// MOSN's default graceful stop timeout.
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// MOSN's default idle timeout of a downstream connection.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// MOSN's default upstream connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// MOSN's default route timeout (its global request timeout).
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(60);

impl MosnConfig {
    /// Every listener of every server.
    pub fn listeners(&self) -> impl Iterator<Item = &ListenerConfig> {
        self.servers.iter().flat_map(|s| s.listeners.iter())
    }

    /// Makes relative certificate paths relative to `base` (the config file's folder).
    pub fn resolve_tls_paths(&mut self, base: &std::path::Path) {
        for server in &mut self.servers {
            for listener in &mut server.listeners {
                for chain in &mut listener.filter_chains {
                    for tls in chain
                        .tls_context
                        .iter_mut()
                        .chain(&mut chain.tls_context_set)
                    {
                        tls.resolve_paths(base);
                    }
                }
            }
        }
        for cluster in &mut self.cluster_manager.clusters {
            if let Some(tls) = &mut cluster.tls_context {
                tls.resolve_paths(base);
            }
        }
    }

    /// The first server's settings govern process-wide options (log, workers).
    pub fn first_server(&self) -> Option<&ServerConfig> {
        self.servers.first()
    }

    pub fn graceful_timeout(&self) -> Duration {
        self.first_server()
            .and_then(|s| s.graceful_timeout)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_GRACEFUL_TIMEOUT)
    }
}

/// Checks a cluster config given on its own (a runtime update): the problems with
/// paths relative to the cluster, and whether any is an error.
pub fn check_cluster(cluster: &ClusterConfig) -> Result<Vec<ConfigIssue>, Vec<ConfigIssue>> {
    let mut problems = error::Problems::default();
    validate::check_cluster(cluster, "cluster", &mut problems);
    if problems.errors.is_empty() {
        Ok(problems.warnings)
    } else {
        Err(problems.errors)
    }
}

/// Parses a value given on its own (an admin API body) into a typed config `T`, with
/// MOSN's key handling. Errors and warnings name their paths from `what`.
pub fn parse_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    what: &str,
) -> Result<(T, Vec<ConfigIssue>), Vec<ConfigIssue>> {
    let mut problems = error::Problems::default();
    match load::typed_from_value::<T>(value, what, &mut problems) {
        Some(v) if problems.errors.is_empty() => Ok((v, problems.warnings)),
        _ => Err(problems.errors),
    }
}

#[cfg(test)]
mod cluster_type_tests;
#[cfg(test)]
mod lb_tests;
#[cfg(test)]
mod tests;
