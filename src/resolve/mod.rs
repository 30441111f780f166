//! From a SyncTarget to a runnable sync, written once for every caller: the controller,
//! `plan`, `apply`, `login` and `demo`.
//!
//! [`resolve`] follows the target's references through an [`ObjectSource`] (the Kubernetes
//! API or a folder of manifests) — binding, mapping, Secrets — and returns the resolved parts,
//! or the first [`Problem`], whose reason is the target's condition reason. [`open`] then picks
//! the directory backend and builds the engine's options.

pub mod app;
pub mod cluster;
pub mod folder;
mod login;
pub mod objects;
mod open;
pub mod overlap;

use crate::{
    api::{
        DingTalkBinding, DingTalkBindingSpec, FieldMappingSpec, Reason, SyncTarget, SyncTargetSpec,
        binding::EventDelivery, find_condition, status::TRUE, target::APPROVE_ANNOTATION,
        target::Direction,
    },
    secret::Secret,
};

pub use cluster::ClusterObjects;
pub use folder::Manifests;
pub use login::{LoginInputs, LoginOpenError, login_inputs, open_login};
pub use objects::{ObjectSource, SecretAt, SourceError, secret_text};
pub use open::{
    Access, Inbound, OpenError, Opened, Outbound, client_config, open, open_directory, open_ldap,
};

/// A namespaced object's name, the key every per-target piece of state is kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TargetKey {
    pub namespace: String,
    pub name: String,
}

impl TargetKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Kubernetes object (a folder's objects have no namespace).
    pub fn of(object: &impl kube::ResourceExt) -> Self {
        Self::new(object.namespace().unwrap_or_default(), object.name_any())
    }
}

/// `namespace/name`, or the bare name where there is no namespace.
impl std::fmt::Display for TargetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&qualified(&self.namespace, &self.name))
    }
}

/// `ns/name` for messages; a folder's objects have no namespace and show their name alone.
pub fn qualified(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// Why a target cannot run as declared: `reason` is its condition reason, `message` names the
/// field or object at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Everything a run of one target needs, dereferenced and checked.
#[derive(Clone)]
pub struct Resolved {
    pub key: TargetKey,
    pub spec: SyncTargetSpec,
    pub binding: DingTalkBindingSpec,
    pub mapping: FieldMappingSpec,
    pub app_key: String,
    pub app_secret: Secret,
    /// LDAP bind password or SCIM token.
    pub directory_secret: Secret,
    /// CA bundle for the directory, if any.
    pub directory_ca: Option<Vec<u8>>,
    /// The binding's HTTP callback keys (`events.delivery: Callback`): token and
    /// EncodingAESKey, from `events.callbackSecretRef`.
    pub callback: Option<(Secret, Secret)>,
    /// Approval token taken from the approve annotation, if set.
    pub approval: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("key", &self.key)
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret)
            .field("directory_secret", &self.directory_secret)
            .finish_non_exhaustive()
    }
}

/// What [`resolve`] gives: the parts, or the first problem (the outer error: the source could
/// not be read at all).
pub type Resolution = Result<Result<Resolved, Problem>, SourceError>;

/// Follows a SyncTarget's references. Checks run in the order a reader would fix them:
/// binding, its readiness and permissions (cluster only), mapping, scope, overlapping nodes,
/// Secrets.
pub async fn resolve(objects: &dyn ObjectSource, target: &SyncTarget) -> Resolution {
    let key = TargetKey::of(target);
    let spec = &target.spec;
    let Some(binding) = objects
        .binding(&key.namespace, &spec.binding_ref.name)
        .await?
    else {
        return Ok(Err(Problem::new(
            Reason::BindingNotFound,
            format!(
                "spec.bindingRef: DingTalkBinding {} not found",
                qualified(&key.namespace, &spec.binding_ref.name)
            ),
        )));
    };
    if objects.has_status()
        && let Err(p) = binding_usable(&binding, spec)
    {
        return Ok(Err(p));
    }
    let mapping_name = &spec.field_mapping_ref.name;
    let Some(mapping) = objects.mapping(&key.namespace, mapping_name).await? else {
        return Ok(Err(Problem::new(
            Reason::MappingNotFound,
            format!(
                "spec.fieldMappingRef: FieldMapping {} not found",
                qualified(&key.namespace, mapping_name)
            ),
        )));
    };
    if let Err(e) = validate_mapping(&mapping.spec) {
        return Ok(Err(Problem::new(
            Reason::MappingInvalid,
            format!("FieldMapping {mapping_name}: {e}"),
        )));
    }
    if let Err(p) = validate_scope(spec) {
        return Ok(Err(p));
    }
    if let Some(other) = objects.overlapping(target).await? {
        return Ok(Err(Problem::new(
            Reason::Conflict,
            format!(
                "node {:?} overlaps the node of SyncTarget {other} in the same directory",
                spec.node
            ),
        )));
    }
    let approval = target.metadata.annotations.as_ref();
    let approval = approval.and_then(|a| a.get(APPROVE_ANNOTATION).cloned());
    credentials(objects, key, &binding, spec, &mapping.spec, approval).await
}

/// The target a binding's login reads accounts from (`login.targetRef`): an Inbound target of
/// that binding, with its mapping and Secrets.
pub async fn login_target(
    objects: &dyn ObjectSource,
    binding: &DingTalkBinding,
    name: &str,
) -> Resolution {
    let ns = kube::ResourceExt::namespace(binding).unwrap_or_default();
    let Some(target) = objects.target(&ns, name).await? else {
        return Ok(Err(Problem::new(
            Reason::TargetNotFound,
            format!(
                "login.targetRef: SyncTarget {} not found",
                qualified(&ns, name)
            ),
        )));
    };
    let spec = &target.spec;
    if spec.binding_ref.name != kube::ResourceExt::name_any(binding)
        || spec.direction != Direction::Inbound
    {
        return Ok(Err(Problem::new(
            Reason::InvalidSpec,
            format!(
                "login.targetRef: SyncTarget {} must be an Inbound target of this binding",
                qualified(&ns, name)
            ),
        )));
    }
    let mapping_name = &spec.field_mapping_ref.name;
    let Some(mapping) = objects.mapping(&ns, mapping_name).await? else {
        return Ok(Err(Problem::new(
            Reason::MappingNotFound,
            format!(
                "login.targetRef: its FieldMapping {} is not found",
                qualified(&ns, mapping_name)
            ),
        )));
    };
    let key = TargetKey::new(ns, name);
    credentials(objects, key, binding, spec, &mapping.spec, None).await
}

/// A binding whose status says it may serve targets: Ready, and for Outbound targets with the
/// address-book write permission its probe found.
fn binding_usable(binding: &DingTalkBinding, spec: &SyncTargetSpec) -> Result<(), Problem> {
    let status = binding.status.as_ref();
    let ready =
        status.and_then(|s| find_condition(&s.conditions, crate::api::condition_type::READY));
    if ready.map(|c| c.status.as_str()) != Some(TRUE) {
        let why = ready
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "not reconciled yet".into());
        return Err(Problem::new(
            Reason::BindingNotReady,
            format!(
                "DingTalkBinding {} is not ready ({why})",
                spec.binding_ref.name
            ),
        ));
    }
    let can_write = status
        .and_then(|s| s.permissions.as_ref())
        .is_some_and(|p| p.contact_write);
    if spec.direction == Direction::Outbound && !can_write {
        return Err(Problem::new(
            Reason::PermissionMissing,
            format!(
                "DingTalkBinding {}: the app lacks the address-book write permission \
                 qyapi_manage_addresslist that an Outbound target needs; grant it in \
                 DingTalk's developer console",
                spec.binding_ref.name
            ),
        ));
    }
    Ok(())
}

/// Checks `spec.scope`: the people filter compiles and names only known fields, and the
/// Inbound-only rules (and `roles`) are not set on an Outbound target. The problem names the
/// field.
pub fn validate_scope(spec: &SyncTargetSpec) -> Result<(), Problem> {
    let scope = &spec.scope;
    if spec.direction == Direction::Outbound {
        return match scope.outbound_root() {
            Err(why) => Err(Problem::new(Reason::InvalidSpec, why)),
            Ok(_) if scope.filters() => Err(Problem::new(
                Reason::InvalidSpec,
                "spec.scope: excludeDepartmentIds, includeHidden and peopleFilter apply to \
                 Inbound targets only",
            )),
            // An Outbound target reads no DingTalk roles: saying so beats ignoring it.
            Ok(_) if spec.roles => Err(Problem::new(
                Reason::InvalidSpec,
                "spec.roles: DingTalk roles become groups for Inbound targets only",
            )),
            Ok(_) => Ok(()),
        };
    }
    crate::sync::source_scope::ScopeRules::for_target(scope)
        .map(|_| ())
        .map_err(|e| Problem::new(Reason::InvalidSpec, e.to_string()))
}

/// Compiles every template of a mapping with the engine's compiler; the error names the rule.
pub fn validate_mapping(spec: &FieldMappingSpec) -> Result<(), String> {
    match spec.direction {
        Direction::Inbound => crate::mapping::Mapping::compile(spec).map(|_| ()),
        Direction::Outbound => crate::mapping::outbound::OutboundMapping::compile(spec).map(|_| ()),
    }
    .map_err(|e| e.to_string())
}

/// Reads the app's credentials, the directory's credential and CA bundle, and the callback
/// keys; the first one missing is named.
async fn credentials(
    objects: &dyn ObjectSource,
    key: TargetKey,
    binding: &DingTalkBinding,
    spec: &SyncTargetSpec,
    mapping: &FieldMappingSpec,
    approval: Option<String>,
) -> Resolution {
    let ns = key.namespace.clone();
    let app = app::app_credentials(objects, &ns, binding).await?;
    let (app_key, app_secret) = match app {
        Ok((k, s)) => (Ok(k), Ok(s.expose().to_owned())),
        Err(p) => (Err(p.clone()), Err(p)),
    };
    let Some((dir_ref, field)) = spec.directory.credential_ref() else {
        return Ok(Err(Problem::new(
            Reason::InvalidSpec,
            "spec.directory: set exactly one of ldap, scim or activeDirectory",
        )));
    };
    let directory = secret_text(objects, &ns, &dir_ref.name, &dir_ref.key, field).await?;
    let ca = match spec.directory.ca_ref() {
        Some(r) => {
            let at = objects::SecretAt {
                ns: &ns,
                name: &r.name,
                key: &r.key,
                field: "caSecretRef",
            };
            Some(objects.secret_key(at).await?)
        }
        None => None,
    };
    let (app_key, app_secret, directory, ca) =
        match (app_key, app_secret, directory, ca.transpose()) {
            (Ok(k), Ok(s), Ok(d), Ok(ca)) => (k, s, d, ca),
            (Err(p), ..) | (_, Err(p), ..) | (_, _, Err(p), _) | (.., Err(p)) => return Ok(Err(p)),
        };
    Ok(Ok(Resolved {
        callback: callback_keys(objects, &ns, &binding.spec).await?,
        key,
        spec: spec.clone(),
        binding: binding.spec.clone(),
        mapping: mapping.clone(),
        app_key,
        app_secret: Secret::new(app_secret),
        directory_secret: Secret::new(directory),
        directory_ca: ca,
        approval,
    }))
}

/// The HTTP callback's token and EncodingAESKey, for a binding with `events.delivery:
/// Callback`. Missing keys are not a problem here: the event feed says what is wrong.
async fn callback_keys(
    objects: &dyn ObjectSource,
    ns: &str,
    binding: &DingTalkBindingSpec,
) -> Result<Option<(Secret, Secret)>, SourceError> {
    let Some(events) = binding.events.as_ref() else {
        return Ok(None);
    };
    let (EventDelivery::Callback, Some(r)) = (events.delivery, &events.callback_secret_ref) else {
        return Ok(None);
    };
    let what = "binding events.callbackSecretRef";
    let token = secret_text(objects, ns, &r.name, "token", what).await?;
    let aes = secret_text(objects, ns, &r.name, "aesKey", what).await?;
    Ok(match (token, aes) {
        (Ok(t), Ok(a)) => Some((Secret::new(t), Secret::new(a))),
        _ => None,
    })
}

/// What any replica needs to check a push to binding `ns/name` before handing it on: the
/// crypto of its `events.callbackSecretRef`, owned by its app key. `None` when the binding is
/// gone, does not take callbacks, or its keys are missing or malformed (the leader's event
/// feed reports those).
pub async fn callback_crypto(
    objects: &dyn ObjectSource,
    ns: &str,
    name: &str,
) -> Result<Option<crate::dingtalk::callback::CallbackCrypto>, SourceError> {
    let Some(binding) = objects.binding(ns, name).await? else {
        return Ok(None);
    };
    let Some((token, aes)) = callback_keys(objects, ns, &binding.spec).await? else {
        return Ok(None);
    };
    let cred = &binding.spec.credentials_secret_ref;
    let what = "binding credentialsSecretRef";
    let Ok(app_key) = secret_text(objects, ns, &cred.name, &cred.app_key_key, what).await? else {
        return Ok(None);
    };
    Ok(crate::dingtalk::callback::CallbackCrypto::new(token.expose(), aes.expose(), &app_key).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::target::Scope;

    fn spec(direction: Direction, scope: Scope) -> SyncTargetSpec {
        SyncTargetSpec {
            direction,
            scope,
            ..Default::default()
        }
    }

    #[test]
    fn the_scope_is_checked_and_the_problem_names_the_field() {
        let filter = |f: &str| Scope {
            people_filter: Some(f.into()),
            ..Default::default()
        };
        assert!(validate_scope(&spec(Direction::Inbound, filter("{{ active }}"))).is_ok());
        for bad in ["{{ active and }}", "{{ titel != '实习生' }}"] {
            let p = validate_scope(&spec(Direction::Inbound, filter(bad))).unwrap_err();
            assert_eq!(p.reason, Reason::InvalidSpec);
            assert!(p.message.starts_with("spec.scope.peopleFilter: "), "{p}");
        }
        let p = validate_scope(&spec(Direction::Outbound, filter("{{ active }}"))).unwrap_err();
        assert!(p.message.contains("Inbound targets only"), "{p}");
        let two = Scope {
            department_ids: vec![1, 2],
            ..Default::default()
        };
        let p = validate_scope(&spec(Direction::Outbound, two)).unwrap_err();
        assert!(p.message.starts_with("scope.departmentIds"), "{p}");
        assert!(validate_scope(&spec(Direction::Outbound, Scope::default())).is_ok());
        let roles = SyncTargetSpec {
            roles: true,
            ..spec(Direction::Outbound, Scope::default())
        };
        let p = validate_scope(&roles).unwrap_err();
        assert!(p.message.starts_with("spec.roles: "), "{p}");
    }
}
