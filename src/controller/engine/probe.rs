//! The production credential check of a DingTalkBinding.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    api::{DingTalkBindingSpec, binding::Permissions},
    controller::{CredentialChecker, CredentialError},
    dingtalk::{ClientPool, DingTalkError},
    resolve::client_config,
    secret::Secret,
};

/// Confirms credentials by obtaining a token and probes the address-book read permission
/// with one `listsub` of the root department, and the write permission with an update
/// DingTalk always refuses.
#[derive(Default)]
pub struct DingTalkProbe {
    /// The controller's DingTalk clients: the probe's token serves the binding's targets too.
    pub clients: Arc<ClientPool>,
}

#[async_trait]
impl CredentialChecker for DingTalkProbe {
    async fn check(
        &self,
        spec: &DingTalkBindingSpec,
        app_key: &str,
        app_secret: &Secret,
    ) -> Result<Permissions, CredentialError> {
        let client = self
            .clients
            .client(client_config(spec, app_key, app_secret));
        match client.token().await {
            Ok(_) => {}
            Err(DingTalkError::InvalidCredentials { errcode, message }) => {
                return Err(CredentialError::Invalid(format!(
                    "errcode {errcode}: {message}"
                )));
            }
            Err(e) if crate::dingtalk::suite::is_deauthorised(&e) => {
                return Err(CredentialError::Deauthorized(e.to_string()));
            }
            Err(e) => return Err(CredentialError::Unreachable(e.to_string())),
        }
        let mut missing = vec![];
        let read = match client.list_sub_departments(1).await {
            Ok(_) => true,
            // A cached corp token outlives the authorisation: the refusal comes here.
            Err(e) if crate::dingtalk::suite::is_deauthorised(&e) => {
                return Err(CredentialError::Deauthorized(e.to_string()));
            }
            Err(DingTalkError::Denied { errcode: 60011, .. }) => {
                missing.push("qyapi_get_department_list".to_string());
                false
            }
            // Outside the contact scope at the root is normal for a scoped app.
            Err(DingTalkError::Denied { .. }) => true,
            Err(e) if e.is_transient() => return Err(CredentialError::Unreachable(e.to_string())),
            Err(_) => false,
        };
        let write = match client.can_write_contacts().await {
            Ok(true) => true,
            Ok(false) => {
                missing.push(
                    crate::dingtalk::error::permission_for("/topapi/v2/department/update")
                        .unwrap_or("qyapi_manage_addresslist")
                        .to_string(),
                );
                false
            }
            Err(e) if e.is_transient() => return Err(CredentialError::Unreachable(e.to_string())),
            Err(_) => false,
        };
        // Mobile and email visibility cannot be told apart from empty fields without a person
        // to look at; they follow read access here and the sync counts people missing them
        // (UNCONFIRMED: DingTalk offers internal apps no permission-listing API).
        // Third-party apps are never shown mobiles, email or other personal fields.
        let personal = read && spec.suite.is_none();
        Ok(Permissions {
            contact_read: read,
            contact_write: write,
            mobile: personal,
            email: personal,
            missing,
        })
    }
}
