//! Reconcile errors, each with a stable CamelCase reason used for conditions, Events and
//! metrics, and a class that decides between waiting for a change and retrying.

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed (network, conflict, 5xx): retried with backoff.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be read into its type (malformed in the API server).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A dependency is temporarily unavailable (DingTalk, directory): retried with backoff.
    #[error("{reason}: {message}")]
    Transient {
        reason: &'static str,
        message: String,
    },
}

impl From<crate::resolve::SourceError> for Error {
    fn from(e: crate::resolve::SourceError) -> Self {
        match e {
            crate::resolve::SourceError::Kube(k) => Error::Kube(k),
        }
    }
}

impl Error {
    /// Stable reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::InvalidObject(_) => "InvalidObject",
            Error::Transient { reason, .. } => reason,
        }
    }

    /// Permanent errors wait for a change to the object; the rest are retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::InvalidObject(_))
    }
}
