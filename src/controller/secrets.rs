//! Reading one key of a Secret, with the failure named for the condition.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Context, Error, Sensitive};
use crate::api::{DingTalkBindingSpec, SyncTargetSpec};

/// Why a referenced Secret key could not be read; becomes the condition reason and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub reason: &'static str,
    pub message: String,
}

/// The bytes of `key` in Secret `name`, or why they are not there. Never logs the value.
pub async fn secret_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Result<Vec<u8>, Missing>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Err(Missing {
            reason: "SecretNotFound",
            message: format!("{field}: Secret {namespace}/{name} not found"),
        }));
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
    match from_data.or(from_string) {
        Some(v) if !v.is_empty() => Ok(Ok(v)),
        _ => Ok(Err(Missing {
            reason: "SecretKeyMissing",
            message: format!("{field}: Secret {namespace}/{name} has no (non-empty) key {key:?}"),
        })),
    }
}

/// Like [`secret_key`], as UTF-8 text.
pub async fn secret_text(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Result<String, Missing>, Error> {
    Ok(match secret_key(ctx, namespace, name, key, field).await? {
        Ok(bytes) => String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| Missing {
                reason: "SecretKeyMissing",
                message: format!(
                    "{field}: key {key:?} of Secret {namespace}/{name} is not UTF-8 text"
                ),
            }),
        Err(m) => Err(m),
    })
}

/// What a target's run needs from Secrets: the app's credentials and the directory's.
pub struct TargetSecrets {
    pub app_key: String,
    pub app_secret: Sensitive,
    /// LDAP bind password or SCIM token.
    pub directory: Sensitive,
    pub ca: Option<Vec<u8>>,
}

/// Reads the binding's app credentials and the target's directory credential and CA bundle;
/// the first one missing is named.
pub async fn target_secrets(
    ctx: &Context,
    namespace: &str,
    binding: &DingTalkBindingSpec,
    spec: &SyncTargetSpec,
) -> Result<Result<TargetSecrets, Missing>, Error> {
    let cred = &binding.credentials_secret_ref;
    let what = "binding credentialsSecretRef";
    let app_key = secret_text(ctx, namespace, &cred.name, &cred.app_key_key, what).await?;
    let app_secret = secret_text(ctx, namespace, &cred.name, &cred.app_secret_key, what).await?;
    let Some((dir_ref, field)) = spec.directory.credential_ref() else {
        return Ok(Err(Missing {
            reason: "InvalidSpec",
            message: "spec.directory: set exactly one of ldap or scim".into(),
        }));
    };
    let directory = secret_text(ctx, namespace, &dir_ref.name, &dir_ref.key, field).await?;
    let ca = match spec.directory.ca_ref() {
        Some(r) => Some(secret_key(ctx, namespace, &r.name, &r.key, "caSecretRef").await?),
        None => None,
    };
    Ok(match (app_key, app_secret, directory, ca.transpose()) {
        (Ok(app_key), Ok(s), Ok(d), Ok(ca)) => Ok(TargetSecrets {
            app_key,
            app_secret: Sensitive::new(s),
            directory: Sensitive::new(d),
            ca,
        }),
        (Err(m), ..) | (_, Err(m), ..) | (_, _, Err(m), _) | (.., Err(m)) => Err(m),
    })
}
