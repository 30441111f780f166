//! The objects of a SyncTarget as the Kubernetes API holds them.

use crate::api::Reason;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::{
    Problem,
    objects::{ObjectSource, SecretAt, SourceError},
    overlap::{directory_identity, nodes_overlap, owns_same_entries},
    qualified,
};
use crate::api::{DingTalkBinding, FieldMapping, SyncTarget};

/// Reads bindings, mappings, targets and Secrets from the API server.
#[derive(Clone)]
pub struct ClusterObjects {
    client: Client,
    scope: Option<String>,
}

impl ClusterObjects {
    /// Objects of every namespace.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            scope: None,
        }
    }

    /// Objects of the namespaces the controller watches (`None`: all of them), so guards
    /// that compare a target with its peers see every peer the controller could sync.
    pub fn scoped(client: Client, scope: Option<String>) -> Self {
        Self { client, scope }
    }
}

/// The API of every object of kind `K` in `scope` (`None`: all namespaces). Listing within
/// the watched scope needs no permission beyond what the controller's watches already need.
pub fn scoped_api<K>(client: Client, scope: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
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

    /// The older target wins a node, in any watched namespace; a suspended target keeps its
    /// node so that a newer one cannot take it while it is paused.
    async fn overlapping(&self, target: &SyncTarget) -> Result<Option<String>, SourceError> {
        let api: Api<SyncTarget> = scoped_api(self.client.clone(), self.scope.as_deref());
        let me = cluster_order(target);
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|t| contends(t, target))
            .map(|t| cluster_order(&t))
            .filter(|k| *k < me)
            .min()
            .map(|(_, ns, name)| {
                if Some(&ns) == target.namespace().as_ref() {
                    name
                } else {
                    qualified(&ns, &name)
                }
            }))
    }
}

/// Whether `other` (another target) and `target` act on the same entries of one directory.
/// Binding names are only comparable within one namespace; across namespaces only the nodes
/// count (one enterprise bound in two namespaces is refused at the binding).
fn contends(other: &SyncTarget, target: &SyncTarget) -> bool {
    let same_ns = other.namespace() == target.namespace();
    if same_ns && other.name_any() == target.name_any() {
        return false;
    }
    if directory_identity(&other.spec) != directory_identity(&target.spec) {
        return false;
    }
    if same_ns {
        owns_same_entries(&other.spec, &target.spec)
    } else {
        nodes_overlap(&other.spec.node, &target.spec.node)
    }
}

/// Oldest first, then by namespace and name: who keeps a node or corpId contested across
/// namespaces, the same answer on every replica. Objects without a creation time come last.
pub fn cluster_order<K: kube::Resource>(obj: &K) -> (i64, String, String) {
    let (created, name) = age_order(obj);
    (created, obj.namespace().unwrap_or_default(), name)
}

/// Oldest first, then by name: who keeps a contested node or corpId. Objects without a
/// creation time (not yet stored) come last.
pub fn age_order<K: kube::Resource>(obj: &K) -> (i64, String) {
    let created = obj.meta().creation_timestamp.as_ref();
    let created = created.map(|t| t.0.as_second()).unwrap_or(i64::MAX);
    (created, obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::target::{LdapSpec, ScimSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn target(ns: &str, name: &str, binding: &str, node: &str, created: i64) -> SyncTarget {
        let mut t = SyncTarget::new(name, Default::default());
        t.metadata.namespace = Some(ns.into());
        t.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        t.spec.binding_ref.name = binding.into();
        t.spec.node = node.into();
        t.spec.directory.ldap = Some(LdapSpec {
            url: "ldap://ldap.example.com".into(),
            ..Default::default()
        });
        t
    }

    fn scim(mut t: SyncTarget) -> SyncTarget {
        t.spec.directory.ldap = None;
        t.spec.directory.scim = Some(ScimSpec {
            url: "https://idp.example.com/scim/v2".into(),
            ..Default::default()
        });
        t
    }

    #[test]
    fn targets_contend_for_overlapping_nodes_of_one_server_in_any_namespace() {
        let a = target("a", "t", "acme", "ou=acme,dc=x", 1);
        assert!(!contends(&a, &a), "a target never contends with itself");
        let same_name_elsewhere = target("b", "t", "beta", "ou=sales,ou=acme,dc=x", 2);
        assert!(contends(&same_name_elsewhere, &a));
        let disjoint = target("b", "u", "beta", "ou=beta,dc=x", 2);
        assert!(!contends(&disjoint, &a));
        let mut other_server = target("b", "v", "beta", "ou=acme,dc=x", 2);
        other_server.spec.directory.ldap.as_mut().unwrap().url = "ldap://other.example.com".into();
        assert!(!contends(&other_server, &a));
    }

    #[test]
    fn one_binding_name_means_one_enterprise_only_within_a_namespace() {
        let a = scim(target("a", "t", "acme", "sales", 1));
        assert!(contends(&scim(target("a", "u", "acme", "support", 2)), &a));
        assert!(!contends(&scim(target("b", "u", "acme", "support", 2)), &a));
    }

    #[test]
    fn the_older_object_wins_then_namespace_then_name() {
        let older = target("z", "t", "acme", "ou=a", 1);
        let newer = target("a", "t", "acme", "ou=a", 2);
        assert!(cluster_order(&older) < cluster_order(&newer));
        let same_time = target("b", "a", "acme", "ou=a", 1);
        assert!(cluster_order(&same_time) < cluster_order(&older));
        let unstored = SyncTarget::new("a", Default::default());
        assert!(cluster_order(&newer) < cluster_order(&unstored));
    }
}
