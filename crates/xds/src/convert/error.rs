//! Why a resource was refused, and the context that collects warnings while one is
//! converted. Every message names the resource and the Envoy field path, because the
//! error text becomes the NACK's `error_detail` and the warnings go to the log.

use mosn_config::ConfigIssue;
use std::fmt;

/// Why an Envoy resource could not be converted. Display: `<resource>: <path>: <why>`,
/// e.g. `cluster "a": lb_policy: LOAD_BALANCING_POLICY_CONFIG ... is not supported`.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A field whose meaning mosn-rs cannot honour, so ignoring it would change what
    /// the proxy does.
    #[error("{}", render(resource, path, message))]
    Unsupported {
        resource: String,
        path: String,
        message: String,
    },
    /// A value Envoy itself would refuse (a required field missing, a bad address).
    #[error("{}", render(resource, path, message))]
    Invalid {
        resource: String,
        path: String,
        message: String,
    },
    /// A typed config whose bytes do not decode as its type URL says.
    #[error("{}", render(resource, path, &format!("cannot decode {type_url}: {source}")))]
    Decode {
        resource: String,
        path: String,
        type_url: String,
        #[source]
        source: prost::DecodeError,
    },
    /// The converted config fails the checks a MOSN JSON config must pass.
    #[error("{resource}: the converted config is refused by mosn-rs's checks: {}", render_issues(.issues))]
    Rejected {
        resource: String,
        issues: Vec<ConfigIssue>,
    },
    /// `apply_secrets`: a TLS context names an SDS secret that has not arrived.
    #[error("{resource}: {path}: SDS secret {name:?} is not known (yet)")]
    MissingSecret {
        resource: String,
        path: String,
        name: String,
    },
}

impl ConvertError {
    /// The resource the error is about, e.g. `cluster "a"`.
    pub fn resource(&self) -> &str {
        match self {
            ConvertError::Unsupported { resource, .. }
            | ConvertError::Invalid { resource, .. }
            | ConvertError::Decode { resource, .. }
            | ConvertError::Rejected { resource, .. }
            | ConvertError::MissingSecret { resource, .. } => resource,
        }
    }
}

fn render(resource: &str, path: &str, message: &str) -> String {
    if path.is_empty() {
        format!("{resource}: {message}")
    } else {
        format!("{resource}: {path}: {message}")
    }
}

fn render_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A converted value and the warnings its conversion raised (fields ignored or
/// approximated; each names the resource and the Envoy field).
#[derive(Debug, Clone)]
pub struct Converted<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// The resource being converted and the warnings raised so far.
#[derive(Debug)]
pub(crate) struct Ctx {
    resource: String,
    warnings: Vec<String>,
}

impl Ctx {
    /// `kind` is the resource type as people say it ("listener", "cluster").
    pub(crate) fn new(kind: &str, name: &str) -> Ctx {
        Ctx {
            resource: format!("{kind} {name:?}"),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl fmt::Display) {
        let line = render(&self.resource, path, &message.to_string());
        // One warning per distinct problem: a filter repeated on many chains is
        // reported per chain (the paths differ), never twice for one place.
        if !self.warnings.contains(&line) {
            self.warnings.push(line);
        }
    }

    /// A field mosn-rs cannot honour.
    pub(crate) fn refuse(&self, path: &str, message: impl Into<String>) -> ConvertError {
        ConvertError::Unsupported {
            resource: self.resource.clone(),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// A value Envoy would refuse too.
    pub(crate) fn invalid(&self, path: &str, message: impl Into<String>) -> ConvertError {
        ConvertError::Invalid {
            resource: self.resource.clone(),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn decode_error(
        &self,
        path: &str,
        type_url: &str,
        source: prost::DecodeError,
    ) -> ConvertError {
        ConvertError::Decode {
            resource: self.resource.clone(),
            path: path.to_owned(),
            type_url: type_url.to_owned(),
            source,
        }
    }

    pub(crate) fn finish<T>(self, value: T) -> Converted<T> {
        Converted {
            value,
            warnings: self.warnings,
        }
    }
}

/// `base.field`, or `field` at the top.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}
