//! Configuration errors and warnings, each tied to a JSON path such as
//! `servers[0].listeners[1].filter_chains[0].filters[0].config.router_config_name`.

use std::fmt;
use std::path::PathBuf;

/// One problem at one place of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_list(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    /// Every problem, one per line.
    pub fn issues(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(list) => list.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

fn render_list(list: &[ConfigIssue]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects errors and warnings while a config is checked.
#[derive(Debug, Default)]
pub struct Problems {
    pub errors: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
    /// A route or tcp_proxy naming a cluster that does not exist is a warning, not an
    /// error: xDS, where (as in Envoy) such a route answers 503 until the cluster
    /// arrives, instead of the whole route configuration being refused.
    pub dangling_clusters_allowed: bool,
}

impl Problems {
    /// For configs composed from xDS ([`Problems::dangling_clusters_allowed`]).
    pub fn for_xds() -> Problems {
        Problems {
            dangling_clusters_allowed: true,
            ..Problems::default()
        }
    }

    /// A reference to a cluster that does not exist.
    pub fn no_cluster(&mut self, path: impl Into<String>, name: &str) {
        let message = format!("no cluster named {name:?}");
        if self.dangling_clusters_allowed {
            self.warn(path, message);
        } else {
            self.error(path, message);
        }
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}
