//! Where a target's objects come from. The controller reads the Kubernetes API; `plan`,
//! `apply` and `login` read a folder of the same manifests. Resolution is written once
//! against this trait, so both read a target the same way.

use crate::api::Reason;
use async_trait::async_trait;

use super::Problem;
use crate::api::{DingTalkBinding, FieldMapping, SyncTarget};

/// A source could not be read at all (not "the object is missing": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// One key of one Secret, and the spec field that names it (for messages).
#[derive(Debug, Clone, Copy)]
pub struct SecretAt<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub key: &'a str,
    pub field: &'a str,
}

/// Gets the objects a SyncTarget refers to.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    async fn binding(&self, ns: &str, name: &str) -> Result<Option<DingTalkBinding>, SourceError>;
    async fn mapping(&self, ns: &str, name: &str) -> Result<Option<FieldMapping>, SourceError>;
    async fn target(&self, ns: &str, name: &str) -> Result<Option<SyncTarget>, SourceError>;

    /// The bytes a Secret key holds, or the problem naming the spec field that refers to it.
    /// Never logs the value.
    async fn secret_key(&self, at: SecretAt<'_>) -> Result<Result<Vec<u8>, Problem>, SourceError>;

    /// Whether objects carry a status a controller keeps: then a binding must be Ready, and
    /// have probed the permissions a target needs, before the target runs. Manifests have none.
    fn has_status(&self) -> bool {
        false
    }

    /// The name of an older target whose node overlaps this one's in the same directory.
    /// Only the cluster knows every target and when each was created.
    async fn overlapping(&self, _target: &SyncTarget) -> Result<Option<String>, SourceError> {
        Ok(None)
    }
}

/// Like [`ObjectSource::secret_key`], as trimmed UTF-8 text.
pub async fn secret_text(
    objects: &dyn ObjectSource,
    ns: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Result<String, Problem>, SourceError> {
    let at = SecretAt {
        ns,
        name,
        key,
        field,
    };
    Ok(match objects.secret_key(at).await? {
        Ok(bytes) => String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| {
                Problem::new(
                    Reason::SecretKeyMissing,
                    format!(
                        "{field}: key {key:?} of Secret {} is not UTF-8 text",
                        super::qualified(ns, name)
                    ),
                )
            }),
        Err(p) => Err(p),
    })
}
