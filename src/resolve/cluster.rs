//! The objects of a SyncTarget as the Kubernetes API holds them.

use crate::api::Reason;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::{
    Problem,
    objects::{ObjectSource, SecretAt, SourceError},
    overlap::{directory_identity, owns_same_entries},
    qualified,
};
use crate::api::{DingTalkBinding, FieldMapping, SyncTarget};

/// Reads bindings, mappings, targets and Secrets from the API server.
#[derive(Clone)]
pub struct ClusterObjects {
    client: Client,
}

impl ClusterObjects {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ObjectSource for ClusterObjects {
    async fn binding(&self, ns: &str, name: &str) -> Result<Option<DingTalkBinding>, SourceError> {
        Ok(Api::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await?)
    }

    async fn mapping(&self, ns: &str, name: &str) -> Result<Option<FieldMapping>, SourceError> {
        Ok(Api::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await?)
    }

    async fn target(&self, ns: &str, name: &str) -> Result<Option<SyncTarget>, SourceError> {
        Ok(Api::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await?)
    }

    async fn secret_key(&self, at: SecretAt<'_>) -> Result<Result<Vec<u8>, Problem>, SourceError> {
        let SecretAt {
            ns,
            name,
            key,
            field,
        } = at;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(secret) = api.get_opt(name).await? else {
            return Ok(Err(Problem::new(
                Reason::SecretNotFound,
                format!("{field}: Secret {} not found", qualified(ns, name)),
            )));
        };
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone());
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec());
        Ok(match from_data.or(from_string) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Problem::new(
                Reason::SecretKeyMissing,
                format!(
                    "{field}: Secret {} has no (non-empty) key {key:?}",
                    qualified(ns, name)
                ),
            )),
        })
    }

    fn has_status(&self) -> bool {
        true
    }

    /// The older target (by creation time, then name) wins a node; suspended ones hold none.
    async fn overlapping(&self, target: &SyncTarget) -> Result<Option<String>, SourceError> {
        let ns = target.namespace().unwrap_or_default();
        let api: Api<SyncTarget> = Api::namespaced(self.client.clone(), &ns);
        let age = |t: &SyncTarget| {
            let created = t.metadata.creation_timestamp.as_ref();
            (
                created.map(|x| x.0.as_second()).unwrap_or(i64::MAX),
                t.name_any(),
            )
        };
        let me = age(target);
        let dir = directory_identity(&target.spec);
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|t| t.name_any() != target.name_any() && !t.spec.suspend)
            .filter(|t| {
                directory_identity(&t.spec) == dir && owns_same_entries(&t.spec, &target.spec)
            })
            .map(|t| age_order(&t))
            .filter(|k| *k < me)
            .min()
            .map(|(_, name)| name))
    }
}

/// Oldest first, then by name: who keeps a contested node or corpId. Objects without a
/// creation time (not yet stored) come last.
pub fn age_order<K: kube::Resource>(obj: &K) -> (i64, String) {
    let created = obj.meta().creation_timestamp.as_ref();
    let created = created.map(|t| t.0.as_second()).unwrap_or(i64::MAX);
    (created, obj.name_any())
}
