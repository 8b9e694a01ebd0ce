use thiserror::Error;

/// A TLS context that cannot be built; `path` is the JSON path of the offending field.
#[derive(Debug, Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    pub path: String,
    pub reason: String,
}

impl TlsError {
    pub(crate) fn new(path: impl Into<String>, reason: impl Into<String>) -> TlsError {
        TlsError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
