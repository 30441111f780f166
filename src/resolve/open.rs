//! From resolved parts to an opened sync: the directory backend chosen (LDAP or SCIM), the
//! DingTalk client configured, the engine's options built — once, for every caller.

use std::sync::Arc;

use super::Resolved;
use crate::{
    api::{
        DingTalkBindingSpec,
        target::{Direction, Layout},
    },
    dingtalk::{ClientConfig, ClientPool, DingTalkClient},
    directory::{
        Directory, DirectoryError,
        ad::{AdDirectory, AdTarget},
        ldap::{LdapDirectory, LdapTarget},
        scim::{ScimDirectory, client::ScimClient},
    },
    mapping::{Mapping, MappingError, outbound::OutboundMapping},
    secret::Secret,
    sync::{
        Options, dingtalk_source::DingTalkSource, outbound::OutboundOptions,
        source_scope::ScopeRules,
    },
};

/// Why a resolved target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory refused, could not be reached, or cannot work with the spec.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The mapping does not compile for the target's direction.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The spec asks for something the engine cannot do.
    #[error("{0}")]
    Spec(String),
}

/// Whether the directory may be written. An Outbound target's directory is its source and is
/// always opened read-only; so is a plan's, and a login's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// An Inbound run: DingTalk is read, the directory written.
pub struct Inbound {
    pub dir: Arc<dyn Directory>,
    pub source: Arc<DingTalkSource>,
    pub mapping: Mapping,
    pub options: Options,
}

/// An Outbound run: the directory is read, DingTalk written.
pub struct Outbound {
    pub dir: Arc<dyn Directory>,
    pub client: DingTalkClient,
    pub mapping: OutboundMapping,
    pub options: OutboundOptions,
}

/// A target ready to run in its direction.
pub enum Opened {
    Inbound(Inbound),
    Outbound(Outbound),
}

/// The target's CA bundle as PEM text.
fn ca_text(r: &Resolved) -> Result<Option<String>, OpenError> {
    r.directory_ca
        .as_ref()
        .map(|b| {
            String::from_utf8(b.clone())
                .map_err(|_| OpenError::Spec("caSecretRef: the CA bundle is not PEM text".into()))
        })
        .transpose()
}

/// The target's OpenLDAP directory as such (for what only LDAP offers: content
/// synchronisation); `None` for other backends.
pub async fn open_ldap(r: &Resolved, access: Access) -> Result<Option<LdapDirectory>, OpenError> {
    let Some(ldap) = &r.spec.directory.ldap else {
        return Ok(None);
    };
    let (password, layout) = (r.directory_secret.clone(), r.spec.layout);
    let ca = ca_text(r)?;
    let mut target =
        LdapTarget::from_spec(ldap, password, ca, &r.spec.node, layout, &r.binding.corp_id);
    target.create_node = r.spec.create_node;
    let store = match access {
        Access::ReadWrite => target.open().await,
        Access::ReadOnly => target.open_read_only().await,
    };
    Ok(Some(LdapDirectory::new(
        store.map_err(DirectoryError::from)?,
    )))
}

/// Opens the target's directory and DingTalk side (its app's client from `clients`), compiles
/// its mapping and builds its options.
pub async fn open(r: &Resolved, access: Access, clients: &ClientPool) -> Result<Opened, OpenError> {
    let client = clients.client(client_config(&r.binding, &r.app_key, &r.app_secret));
    if r.spec.direction == Direction::Outbound {
        let mapping = OutboundMapping::compile(&r.mapping)?;
        let options =
            OutboundOptions::for_target(&r.spec, r.approval.clone()).map_err(OpenError::Spec)?;
        let dir = open_directory(r, Access::ReadOnly).await?;
        return Ok(Opened::Outbound(Outbound {
            dir,
            client,
            mapping,
            options,
        }));
    }
    let mapping = Mapping::compile(&r.mapping)?;
    let dir = open_directory(r, access).await?;
    // Resolving checked the rules already; a failure here means a caller skipped it.
    let rules =
        ScopeRules::for_target(&r.spec.scope).map_err(|e| OpenError::Spec(e.to_string()))?;
    let source = DingTalkSource::with_rules(client, rules)
        .keeping(mapping.person_fields())
        .reading_heads(mapping.reads_heads());
    Ok(Opened::Inbound(Inbound {
        dir,
        source: Arc::new(source),
        mapping,
        options: inbound_options(r),
    }))
}

/// The engine's options a target spec sets; what the spec leaves out keeps the engine's default.
fn inbound_options(r: &Resolved) -> Options {
    let deletion = r.spec.deletion.clone().unwrap_or_default();
    let defaults = Options::default();
    Options {
        policy: deletion.policy,
        max_count: deletion.max_count.unwrap_or(defaults.max_count),
        max_percent: deletion.max_percent.unwrap_or(defaults.max_percent),
        // Only LDAP and AD nodes have containers to place people in: SCIM has no OUs, and a
        // SCIM target asking for `OuTree` would plan a move for everyone on every run.
        ou_tree: r.spec.layout == Some(Layout::OuTree)
            && (r.spec.directory.ldap.is_some() || r.spec.directory.active_directory.is_some()),
        approval: r.approval.clone(),
        roles: r.spec.roles,
    }
}

/// Opens the target's directory (LDAP or SCIM) with its credentials.
pub async fn open_directory(r: &Resolved, access: Access) -> Result<Arc<dyn Directory>, OpenError> {
    let ca = ca_text(r)?;
    let dir: Arc<dyn Directory> = match (&r.spec.directory.ldap, &r.spec.directory.scim) {
        (Some(_), _) => match open_ldap(r, access).await? {
            Some(d) => Arc::new(d),
            None => unreachable!("an ldap directory opens as one"),
        },
        (None, Some(scim)) => {
            // Connecting only reads ServiceProviderConfig.
            let token = r.directory_secret.clone();
            let client = ScimClient::connect(&scim.url, token, ca.as_deref().map(str::as_bytes))
                .await
                .map_err(DirectoryError::from)?;
            Arc::new(ScimDirectory::new(client, &r.binding.corp_id, &r.spec.node))
        }
        (None, None) => match &r.spec.directory.active_directory {
            Some(ad) => {
                let password = r.directory_secret.clone();
                let target = AdTarget::from_spec(
                    ad,
                    password,
                    ca,
                    &r.spec.node,
                    r.spec.layout,
                    &r.binding.corp_id,
                );
                let store = match access {
                    Access::ReadWrite => target.open().await,
                    Access::ReadOnly => target.open_read_only().await,
                };
                Arc::new(AdDirectory::new(store.map_err(DirectoryError::from)?))
            }
            None => {
                return Err(OpenError::Spec(
                    "spec.directory: set exactly one of ldap, scim or activeDirectory".into(),
                ));
            }
        },
    };
    Ok(dir)
}

/// The client configuration a binding describes.
pub fn client_config(
    spec: &DingTalkBindingSpec,
    app_key: &str,
    app_secret: &Secret,
) -> ClientConfig {
    // Through a third-party app: the suite's key and secret, corp tokens with its tickets.
    let mut c = match &spec.suite {
        Some(_) => ClientConfig::for_suite(
            &spec.corp_id,
            app_key,
            app_secret.clone(),
            crate::dingtalk::suite::tickets_of(app_key),
        ),
        None => ClientConfig::new(&spec.corp_id, app_key, app_secret.clone()),
    };
    if let Some(e) = &spec.endpoints {
        let base = |v: &Option<String>| v.as_ref().map(|v| v.trim_end_matches('/').to_string());
        if let Some(v) = base(&e.oapi) {
            c.oapi_base = v;
        }
        if let Some(v) = base(&e.api) {
            c.api_base = v;
        }
        if let Some(v) = base(&e.login) {
            c.login_base = v;
        }
    }
    if let Some(n) = spec.rate_limits.as_ref().and_then(|r| r.per_api_per_second) {
        c.per_api_per_second = n;
    }
    c.attempts = 3;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::TargetKey;

    fn resolved(directory: serde_json::Value) -> Resolved {
        let spec = serde_json::from_value(serde_json::json!({
            "bindingRef": {"name": "b"}, "fieldMappingRef": {"name": "m"},
            "direction": "Inbound", "directory": directory, "node": "n", "layout": "OuTree",
        }))
        .expect("a target spec");
        Resolved {
            key: TargetKey::new("ns", "t"),
            spec,
            binding: serde_json::from_value(serde_json::json!({
                "corpId": "c", "credentialsSecretRef": {"name": "s"}
            }))
            .expect("a binding spec"),
            mapping: Default::default(),
            app_key: "k".into(),
            app_secret: Secret::new("s"),
            directory_secret: Secret::new("p"),
            directory_ca: None,
            callback: None,
            approval: None,
        }
    }

    #[test]
    fn only_an_ldap_node_places_people_in_department_containers() {
        let ldap = serde_json::json!({"ldap": {
            "url": "ldap://x", "bindDN": "cn=a", "passwordSecretRef": {"name": "p", "key": "k"}
        }});
        let scim = serde_json::json!({"scim": {
            "url": "https://x/scim/v2", "tokenSecretRef": {"name": "p", "key": "k"}
        }});
        assert!(inbound_options(&resolved(ldap)).ou_tree);
        assert!(!inbound_options(&resolved(scim)).ou_tree);
    }
}
