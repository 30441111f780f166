//! The production implementations of the controller's seams.

use async_trait::async_trait;

use super::{
    CredentialChecker, CredentialError, Sensitive, SyncOutcome, SyncRequest, SyncRunError,
    SyncRunner,
};
use crate::{
    api::{
        DingTalkBindingSpec, FieldMappingSpec,
        binding::Permissions,
        target::{Failure, PendingApproval, PlanSummary, RunSummary},
    },
    dingtalk::{ClientConfig, DingTalkClient, DingTalkError, Secret},
    directory::{
        Directory, DirectoryError,
        ldap::{LdapDirectory, LdapTarget, client::Secret as LdapSecret},
        scim::{
            ScimDirectory,
            client::{BearerToken, ScimClient},
        },
    },
    mapping::Mapping,
    sync::{self, Options, SyncError, dingtalk_source::DingTalkSource},
};

/// The client configuration a binding describes.
pub fn client_config(
    spec: &DingTalkBindingSpec,
    app_key: &str,
    app_secret: &Sensitive,
) -> ClientConfig {
    let mut c = ClientConfig::new(&spec.corp_id, app_key, Secret::new(app_secret.expose()));
    if let Some(e) = &spec.endpoints {
        if let Some(v) = &e.oapi {
            c.oapi_base = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = &e.api {
            c.api_base = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = &e.login {
            c.login_base = v.trim_end_matches('/').to_string();
        }
    }
    if let Some(n) = spec.rate_limits.as_ref().and_then(|r| r.per_api_per_second) {
        c.per_api_per_second = n;
    }
    c.attempts = 3;
    c
}

/// Confirms credentials by obtaining a token and probes the address-book read permission
/// with one `listsub` of the root department.
#[derive(Default)]
pub struct DingTalkProbe;

#[async_trait]
impl CredentialChecker for DingTalkProbe {
    async fn check(
        &self,
        spec: &DingTalkBindingSpec,
        app_key: &str,
        app_secret: &Sensitive,
    ) -> Result<Permissions, CredentialError> {
        let client = DingTalkClient::shared(client_config(spec, app_key, app_secret));
        match client.token().await {
            Ok(_) => {}
            Err(DingTalkError::InvalidCredentials { errcode, message }) => {
                return Err(CredentialError::Invalid(format!(
                    "errcode {errcode}: {message}"
                )));
            }
            Err(e) => return Err(CredentialError::Unreachable(e.to_string())),
        }
        let mut missing = vec![];
        let read = match client.list_sub_departments(1).await {
            Ok(_) => true,
            Err(DingTalkError::Denied { errcode: 60011, .. }) => {
                missing.push("qyapi_get_department_list".to_string());
                false
            }
            // Outside the contact scope at the root is normal for a scoped app.
            Err(DingTalkError::Denied { .. }) => true,
            Err(e) if e.is_transient() => return Err(CredentialError::Unreachable(e.to_string())),
            Err(_) => false,
        };
        // Mobile and email visibility cannot be told apart from empty fields without a person
        // to look at; they follow read access here and the sync counts people missing them
        // (UNCONFIRMED: DingTalk offers internal apps no permission-listing API).
        Ok(Permissions {
            contact_read: read,
            contact_write: false,
            mobile: read,
            email: read,
            missing,
        })
    }
}

/// Compile every template of a mapping with the engine's compiler; the error names the rule.
pub fn validate_mapping(spec: &FieldMappingSpec) -> Result<(), String> {
    Mapping::compile(spec)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs full syncs with the real engine: DingTalk as the source, the target's directory.
pub struct Engine;

#[async_trait]
impl SyncRunner for Engine {
    async fn run(&self, req: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        use crate::api::target::Direction;
        if req.spec.direction == Direction::Outbound {
            return Err(SyncRunError::Permanent(
                "direction Outbound is not supported by this version".into(),
            ));
        }
        let mapping =
            Mapping::compile(&req.mapping).map_err(|e| SyncRunError::Permanent(e.to_string()))?;
        let ca = match &req.directory_ca {
            Some(b) => Some(String::from_utf8(b.clone()).map_err(|_| {
                SyncRunError::Permanent("caSecretRef: the CA bundle is not PEM text".into())
            })?),
            None => None,
        };
        let open_error = |e: DirectoryError| match e {
            DirectoryError::Auth(m) => SyncRunError::DirectoryAuth(m),
            DirectoryError::Unavailable(m) => SyncRunError::Transient(m),
            other => SyncRunError::Permanent(other.to_string()),
        };
        let dir: Box<dyn Directory> = match (&req.spec.directory.ldap, &req.spec.directory.scim) {
            (Some(ldap), _) => {
                let target = LdapTarget::from_spec(
                    ldap,
                    LdapSecret::new(req.directory_secret.expose()),
                    ca,
                    &req.spec.node,
                    req.spec.layout,
                    &req.binding.corp_id,
                );
                let store = target.open().await.map_err(|e| open_error(e.into()))?;
                Box::new(LdapDirectory::new(store))
            }
            (None, Some(scim)) => {
                let client = ScimClient::connect(
                    &scim.url,
                    BearerToken::new(req.directory_secret.expose()),
                    ca.as_deref().map(str::as_bytes),
                )
                .await
                .map_err(|e| open_error(e.into()))?;
                Box::new(ScimDirectory::new(
                    client,
                    &req.binding.corp_id,
                    &req.spec.node,
                ))
            }
            (None, None) => {
                return Err(SyncRunError::Permanent(
                    "spec.directory: set exactly one of ldap or scim".into(),
                ));
            }
        };
        let client =
            DingTalkClient::shared(client_config(&req.binding, &req.app_key, &req.app_secret));
        let source = DingTalkSource::new(client, req.spec.scope.department_ids.clone());
        let deletion = req.spec.deletion.clone().unwrap_or_default();
        let opts = Options {
            policy: deletion.policy,
            max_count: deletion.max_count.unwrap_or(50),
            max_percent: deletion.max_percent.unwrap_or(10),
            ou_tree: req.spec.layout == Some(crate::api::target::Layout::OuTree),
            approval: req.approval.clone(),
        };
        let report = sync::run(
            &source,
            dir.as_ref(),
            &mapping,
            &opts,
            req.spec.dry_run,
            &|_, _, _| {},
        )
        .await
        .map_err(|e| match e {
            SyncError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
            SyncError::Directory(d) if !d.is_per_object() => SyncRunError::Transient(d.to_string()),
            other => SyncRunError::Transient(other.to_string()),
        })?;
        Ok(outcome(&report))
    }
}

/// A run report as the controller writes it into status.
pub fn outcome(r: &sync::Report) -> SyncOutcome {
    let n = |x: usize| x as i64;
    let plan = &r.plan;
    SyncOutcome {
        summary: RunSummary {
            created: n(r.created),
            updated: n(r.updated),
            moved: n(r.moved),
            disabled: n(r.disabled),
            enabled: n(r.enabled),
            deleted: n(r.deleted),
            unchanged: n(r.unchanged),
            failed: n(r.failures.len()),
            missing_mobile: n(r.missing_mobile),
            missing_email: n(r.missing_email),
            ..Default::default()
        },
        failures: r
            .failures
            .iter()
            .map(|f| Failure {
                kind: f.kind.into(),
                id: f.id.clone(),
                name: Some(f.name.clone()),
                reason: f.reason.clone(),
                message: f.message.clone(),
            })
            .collect(),
        people: n(r.people),
        departments: n(r.departments),
        complete: r.complete,
        held: r.held.as_ref().map(|h| PendingApproval {
            removals: n(h.removals),
            owned: n(h.owned),
            token: h.token.clone(),
            message: h.message.clone(),
        }),
        plan: Some(PlanSummary {
            create: n(plan.count("create")),
            update: n(plan.count("update") + plan.count("link")),
            moves: n(plan.count("move")),
            disable: n(plan.count("disable")),
            enable: n(plan.count("enable")),
            delete: n(plan.count("delete")),
            sample: plan
                .steps
                .iter()
                .take(20)
                .map(|s| format!("{} {}: {}", s.op.verb(), s.label, s.reason))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_template_names_its_rule() {
        let mut spec = FieldMappingSpec::default();
        spec.user.unique_name.template = "{{ name | pinyin }}".into();
        spec.user
            .attributes
            .push(crate::api::mapping::AttributeRule {
                target: "mail".into(),
                template: "{{ email | lower ".into(),
                ..Default::default()
            });
        let err = validate_mapping(&spec).unwrap_err();
        assert!(err.starts_with("user.attributes[0] (mail)"), "{err}");
        spec.user.attributes[0].template = "{{ email | lower }}".into();
        validate_mapping(&spec).unwrap();
    }
}
