//! DingTalkBinding: read the app credentials, refuse a second binding of one enterprise, confirm
//! the credentials and the app's permissions with DingTalk.

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, CredentialError, Error, Sensitive, secrets::secret_text, status};
use crate::api::{
    DingTalkBinding, DingTalkBindingStatus, Reason, SyncTarget, condition, condition_type as ct,
    set_condition,
    status::{FALSE, TRUE},
};

/// Credentials are re-checked this often even when nothing changes.
const RECHECK: Duration = Duration::from_secs(30 * 60);

/// Reconcile one binding and write its status.
pub async fn reconcile(binding: Arc<DingTalkBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = binding.namespace().unwrap_or_default();
    let name = binding.name_any();
    let generation = binding.metadata.generation;
    let key = format!("DingTalkBinding/{ns}/{name}");
    ctx.metrics.count_reconcile("DingTalkBinding");
    let before = binding.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = generation;
    st.targets = targets_using(&ctx, &ns, &name).await?;

    let (action, outcome) = evaluate(&binding, &ctx, &ns, &mut st, generation).await?;
    login_condition(&binding, &ctx, &mut st, generation).await?;
    match &outcome {
        Ok(()) => ctx.reset_backoff(&key),
        Err(reason) => ctx.metrics.count_failure("DingTalkBinding", reason),
    }
    status::apply_status(&ctx, binding.as_ref(), binding.status.as_ref(), &st).await?;
    status::publish_transitions(&ctx, binding.as_ref(), &before.conditions, &st.conditions).await;
    Ok(match (action, outcome) {
        (None, Err(_)) => Action::requeue(ctx.backoff(&key)),
        (Some(a), _) => a,
        (None, Ok(())) => Action::requeue(RECHECK),
    })
}

/// Fill the conditions; returns an explicit action (or None for the default) and the failure
/// reason, if any.
async fn evaluate(
    binding: &DingTalkBinding,
    ctx: &Context,
    ns: &str,
    st: &mut DingTalkBindingStatus,
    generation: Option<i64>,
) -> Result<(Option<Action>, Result<(), &'static str>), Error> {
    let spec = &binding.spec;
    let ready = |st: &mut DingTalkBindingStatus, ok: bool, reason: &str, msg: String| {
        set_condition(
            &mut st.conditions,
            condition(
                ct::READY,
                if ok { TRUE } else { FALSE },
                reason,
                msg,
                generation,
            ),
        );
    };

    // An enterprise is bound once: the oldest binding of a corpId keeps it.
    if let Some(owner) = older_binding_of_corp(ctx, ns, binding).await? {
        let msg = format!(
            "corpId {} is already bound by DingTalkBinding {owner}",
            spec.corp_id
        );
        ready(st, false, Reason::Conflict.as_str(), msg);
        return Ok((Some(Action::await_change()), Err(Reason::Conflict.as_str())));
    }

    let secret = &spec.credentials_secret_ref;
    let app_key = secret_text(
        ctx,
        ns,
        &secret.name,
        &secret.app_key_key,
        "spec.credentialsSecretRef",
    )
    .await?;
    let app_secret = secret_text(
        ctx,
        ns,
        &secret.name,
        &secret.app_secret_key,
        "spec.credentialsSecretRef",
    )
    .await?;
    let (app_key, app_secret) = match (app_key, app_secret) {
        (Ok(k), Ok(s)) => (k, Sensitive::new(s)),
        (Err(m), _) | (_, Err(m)) => {
            set_condition(
                &mut st.conditions,
                condition(
                    ct::CREDENTIALS_VALID,
                    FALSE,
                    m.reason,
                    m.message.clone(),
                    generation,
                ),
            );
            ready(st, false, m.reason, m.message);
            // The Secret watch brings us back when it appears.
            return Ok((Some(Action::await_change()), Err(m.reason)));
        }
    };

    match ctx.checker.check(spec, &app_key, &app_secret).await {
        Ok(perms) => {
            set_condition(
                &mut st.conditions,
                condition(
                    ct::CREDENTIALS_VALID,
                    TRUE,
                    Reason::Valid.as_str(),
                    "an access token was obtained",
                    generation,
                ),
            );
            let (granted, reason, msg) = if !perms.contact_read {
                (
                    false,
                    Reason::PermissionMissing.as_str(),
                    format!(
                        "the app cannot read the address book; missing: {}",
                        missing(&perms)
                    ),
                )
            } else if !perms.missing.is_empty() {
                (
                    true,
                    Reason::PartiallyGranted.as_str(),
                    format!(
                        "address book readable; not granted: {}",
                        perms.missing.join(", ")
                    ),
                )
            } else {
                (
                    true,
                    Reason::Granted.as_str(),
                    "all address-book permissions granted".to_string(),
                )
            };
            set_condition(
                &mut st.conditions,
                condition(
                    ct::PERMISSIONS_GRANTED,
                    if granted { TRUE } else { FALSE },
                    reason,
                    msg.clone(),
                    generation,
                ),
            );
            st.permissions = Some(perms);
            if granted {
                ready(
                    st,
                    true,
                    Reason::Valid.as_str(),
                    format!("bound to {}", spec.corp_id),
                );
                Ok((None, Ok(())))
            } else {
                ready(st, false, Reason::PermissionMissing.as_str(), msg);
                Ok((
                    Some(Action::requeue(RECHECK)),
                    Err(Reason::PermissionMissing.as_str()),
                ))
            }
        }
        Err(CredentialError::Invalid(msg)) => {
            set_condition(
                &mut st.conditions,
                condition(
                    ct::CREDENTIALS_VALID,
                    FALSE,
                    Reason::InvalidCredentials.as_str(),
                    msg.clone(),
                    generation,
                ),
            );
            ready(st, false, Reason::InvalidCredentials.as_str(), msg);
            Ok((
                Some(Action::await_change()),
                Err(Reason::InvalidCredentials.as_str()),
            ))
        }
        Err(CredentialError::Unreachable(msg)) => {
            ready(st, false, Reason::ApiUnreachable.as_str(), msg);
            Ok((None, Err(Reason::ApiUnreachable.as_str())))
        }
    }
}

/// `LoginReady`: whether every replica can serve this binding's login (inputs complete and
/// valid); absent while login is off.
async fn login_condition(
    binding: &DingTalkBinding,
    ctx: &Context,
    st: &mut DingTalkBindingStatus,
    generation: Option<i64>,
) -> Result<(), Error> {
    if !binding.spec.login.as_ref().is_some_and(|l| l.enabled) {
        st.conditions.retain(|c| c.type_ != ct::LOGIN_READY);
        return Ok(());
    }
    let (ok, reason, msg) = match super::login::inputs(ctx, binding).await? {
        Ok(i) => (true, Reason::Serving.as_str(), i.summary()),
        Err(p) => (false, p.reason, p.message),
    };
    set_condition(
        &mut st.conditions,
        condition(
            ct::LOGIN_READY,
            if ok { TRUE } else { FALSE },
            reason,
            msg,
            generation,
        ),
    );
    Ok(())
}

fn missing(p: &crate::api::binding::Permissions) -> String {
    if p.missing.is_empty() {
        "contact read".into()
    } else {
        p.missing.join(", ")
    }
}

/// The binding that owns this corpId when it is not `binding`: the oldest by creation time,
/// then by name, so the answer is the same on every replica and every run.
async fn older_binding_of_corp(
    ctx: &Context,
    ns: &str,
    binding: &DingTalkBinding,
) -> Result<Option<String>, Error> {
    let api: Api<DingTalkBinding> = Api::namespaced(ctx.client.clone(), ns);
    let all = api.list(&Default::default()).await?;
    let me = sort_key(binding);
    Ok(all
        .items
        .iter()
        .filter(|b| {
            b.spec.corp_id.eq_ignore_ascii_case(&binding.spec.corp_id)
                && b.name_any() != binding.name_any()
        })
        .filter(|b| sort_key(b) < me)
        .min_by_key(|b| sort_key(b))
        .map(|b| b.name_any()))
}

fn sort_key(b: &DingTalkBinding) -> (i64, String) {
    let t = b
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(i64::MAX);
    (t, b.name_any())
}

async fn targets_using(ctx: &Context, ns: &str, name: &str) -> Result<Vec<String>, Error> {
    let api: Api<SyncTarget> = Api::namespaced(ctx.client.clone(), ns);
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|t| t.spec.binding_ref.name == name)
        .map(|t| t.name_any())
        .collect();
    names.sort();
    Ok(names)
}
