//! DingTalkBinding: read the app credentials, refuse a second binding of one enterprise, confirm
//! the credentials and the app's permissions with DingTalk.

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, CredentialError, Error, EventsState, EventsView, secrets::Missing, status};
use crate::api::{
    DingTalkBinding, DingTalkBindingStatus, Reason, SyncTarget,
    binding::Permissions,
    condition, condition_type as ct, set_condition,
    status::{FALSE, TRUE},
};
use crate::resolve::{
    cluster::{cluster_order, scoped_api},
    qualified,
};
use crate::secret::Secret;

/// Credentials are re-checked this often even when nothing changes.
const RECHECK: Duration = Duration::from_secs(30 * 60);

/// A de-authorised binding looks again this often: the enterprise may authorise the app again.
const DEAUTHORIZED_RECHECK: Duration = Duration::from_secs(5 * 60);

/// A binding refused for a corpId bound elsewhere looks again this often: the holder may be
/// in another namespace, whose changes do not wake this binding.
pub const CONFLICT_RECHECK: Duration = Duration::from_secs(60);

/// Reconcile one binding and write its status.
pub async fn reconcile(binding: Arc<DingTalkBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = binding.namespace().unwrap_or_default();
    let name = binding.name_any();
    let generation = binding.metadata.generation;
    let key = format!("DingTalkBinding/{ns}/{name}");
    let _timer = ctx.metrics.reconcile_started("DingTalkBinding");
    let before = binding.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = generation;
    st.targets = targets_using(&ctx, &ns, &name).await?;

    let (action, outcome) = evaluate(&binding, &ctx, &ns, &mut st, generation).await?;
    login_condition(&binding, &ctx, &mut st, generation).await?;
    let events = ctx.runner.events_state(&ns, &name);
    let (ok, reason, msg) = events_condition(&binding.spec, events.as_ref());
    set(&mut st, ct::EVENTS_CONNECTED, ok, reason, msg, generation);
    match &outcome {
        Ok(()) => ctx.reset_backoff(&key),
        Err(reason) => ctx
            .metrics
            .count_failure("DingTalkBinding", reason.as_str()),
    }
    status::apply_status(&ctx, binding.as_ref(), binding.status.as_ref(), &st).await?;
    status::publish_transitions(&ctx, binding.as_ref(), &before.conditions, &st.conditions).await;
    Ok(match (action, outcome) {
        (None, Err(_)) => Action::requeue(ctx.backoff(&key)),
        (Some(a), _) => a,
        // A suite binding comes back sooner: a pushed ticket is stored on the next look.
        (None, Ok(())) if binding.spec.suite.is_some() => {
            Action::requeue(super::suite_ticket::STORE_INTERVAL)
        }
        (None, Ok(())) => Action::requeue(RECHECK),
    })
}

/// An explicit action (None for the default) and the failure reason, if any.
type Outcome = (Option<Action>, Result<(), Reason>);

/// Set condition `type_` to True or False.
fn set(
    st: &mut DingTalkBindingStatus,
    type_: &str,
    ok: bool,
    reason: Reason,
    msg: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if ok { TRUE } else { FALSE };
    set_condition(
        &mut st.conditions,
        condition(type_, status, reason, msg, generation),
    );
}

/// Fill the conditions: one enterprise per binding, then the credentials, then what DingTalk
/// says of them.
async fn evaluate(
    binding: &DingTalkBinding,
    ctx: &Context,
    ns: &str,
    st: &mut DingTalkBindingStatus,
    generation: Option<i64>,
) -> Result<Outcome, Error> {
    let spec = &binding.spec;
    // An enterprise is bound once: the oldest binding of a corpId keeps it.
    if let Some(owner) = older_binding_of_corp(ctx, ns, binding).await? {
        let msg = format!(
            "corpId {} is already bound by DingTalkBinding {owner}",
            spec.corp_id
        );
        let reason = Reason::Conflict;
        set(st, ct::READY, false, reason, msg, generation);
        return Ok((Some(Action::requeue(CONFLICT_RECHECK)), Err(reason)));
    }
    let (app_key, app_secret) = match credentials(ctx, ns, binding).await? {
        Ok(c) => c,
        Err(m) => {
            set(
                st,
                ct::CREDENTIALS_VALID,
                false,
                m.reason,
                m.message.clone(),
                generation,
            );
            set(st, ct::READY, false, m.reason, m.message, generation);
            // The Secret watch brings us back when it appears.
            return Ok((Some(Action::await_change()), Err(m.reason)));
        }
    };
    if spec.suite.is_some()
        && let Some(store) = ctx.suite_tickets.get()
    {
        // A restarted replica starts from the kept ticket; a pushed one is then kept.
        let kept = store.load(&ctx.client, &app_key).await;
        if let Err(e) = kept.and(store.store(&ctx.client, &app_key).await) {
            // The ticket stays in this process: only a restart before the next store loses it.
            tracing::warn!(error = %e, "cannot keep the suiteTicket in its Secret");
        }
    }
    Ok(match ctx.checker.check(spec, &app_key, &app_secret).await {
        Ok(perms) => granted(spec, perms, st, generation),
        Err(CredentialError::Invalid(msg)) => {
            let reason = Reason::InvalidCredentials;
            set(
                st,
                ct::CREDENTIALS_VALID,
                false,
                reason,
                msg.clone(),
                generation,
            );
            set(st, ct::READY, false, reason, msg, generation);
            (Some(Action::await_change()), Err(reason))
        }
        Err(CredentialError::Deauthorized(msg)) => {
            // The enterprise removed the third-party app: nothing to retry until it is
            // authorised again (a new `dingsync bind`), which changes nothing here.
            let reason = Reason::Deauthorized;
            set(
                st,
                ct::CREDENTIALS_VALID,
                false,
                reason,
                msg.clone(),
                generation,
            );
            set(st, ct::READY, false, reason, msg, generation);
            (Some(Action::requeue(DEAUTHORIZED_RECHECK)), Err(reason))
        }
        Err(CredentialError::Unreachable(msg)) => {
            let reason = Reason::ApiUnreachable;
            set(st, ct::READY, false, reason, msg, generation);
            (None, Err(reason))
        }
    })
}

/// `EventsConnected` from the binding's event connection as this replica holds it.
fn events_condition(
    spec: &crate::api::DingTalkBindingSpec,
    view: Option<&EventsView>,
) -> (bool, Reason, String) {
    use crate::api::binding::EventDelivery;
    let delivery = spec.events.as_ref().map(|e| e.delivery).unwrap_or_default();
    if delivery == EventDelivery::None {
        let msg = "events.delivery is None: full syncs only";
        return (false, Reason::EventsOff, msg.into());
    }
    let Some(view) = view else {
        let msg = "events start once a SyncTarget using this binding has finished a full sync";
        return (false, Reason::Connecting, msg.into());
    };
    let last = match view.last_event {
        Some(t) => format!("; last event at {}", rfc3339(t)),
        None => "; no event yet".into(),
    };
    match &view.state {
        EventsState::Connected => (true, Reason::Connected, format!("Stream connected{last}")),
        EventsState::Callback => {
            let msg = format!("DingTalk pushes to the callback route{last}");
            (true, Reason::Connected, msg)
        }
        EventsState::Connecting => {
            let msg = format!("opening the Stream connection{last}");
            (false, Reason::Connecting, msg)
        }
        EventsState::Disconnected(error) => {
            let msg = format!("Stream connection lost ({error}); reconnecting{last}");
            (false, Reason::Disconnected, msg)
        }
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// The AppKey and AppSecret (or the suite's SuiteKey and SuiteSecret) from the binding's
/// Secret.
async fn credentials(
    ctx: &Context,
    ns: &str,
    binding: &DingTalkBinding,
) -> Result<Result<(String, Secret), Missing>, Error> {
    Ok(crate::resolve::app::app_credentials(&ctx.objects(), ns, binding).await?)
}

/// The credentials work: record the permissions DingTalk granted; without address-book read
/// the binding is not usable.
fn granted(
    spec: &crate::api::DingTalkBindingSpec,
    perms: Permissions,
    st: &mut DingTalkBindingStatus,
    generation: Option<i64>,
) -> Outcome {
    let valid = Reason::Valid;
    set(
        st,
        ct::CREDENTIALS_VALID,
        true,
        valid,
        "an access token was obtained",
        generation,
    );
    let (granted, reason, msg) = if !perms.contact_read {
        (
            false,
            Reason::PermissionMissing,
            format!(
                "the app cannot read the address book; missing: {}",
                missing(&perms)
            ),
        )
    } else if !perms.missing.is_empty() || spec.suite.is_some() {
        let mut not = perms.missing.join(", ");
        if spec.suite.is_some() {
            // Said once here rather than as a failure per person.
            let isv = "mobile, email and other personal fields are not available to \
                       third-party apps: match rules and mappings on them find nothing";
            not = if not.is_empty() {
                isv.into()
            } else {
                format!("{not}; {isv}")
            };
        }
        let msg = format!("address book readable; not granted: {not}");
        (true, Reason::PartiallyGranted, msg)
    } else {
        (
            true,
            Reason::Granted,
            "all address-book permissions granted".to_string(),
        )
    };
    set(
        st,
        ct::PERMISSIONS_GRANTED,
        granted,
        reason,
        msg.clone(),
        generation,
    );
    st.permissions = Some(perms);
    if granted {
        let msg = format!("bound to {}", spec.corp_id);
        set(st, ct::READY, true, valid, msg, generation);
        (None, Ok(()))
    } else {
        let reason = Reason::PermissionMissing;
        set(st, ct::READY, false, reason, msg, generation);
        (Some(Action::requeue(RECHECK)), Err(reason))
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
    match super::login::inputs(ctx, binding).await? {
        Ok(i) => set(
            st,
            ct::LOGIN_READY,
            true,
            Reason::Serving,
            i.summary(),
            generation,
        ),
        Err(p) => set(st, ct::LOGIN_READY, false, p.reason, p.message, generation),
    }
    Ok(())
}

fn missing(p: &Permissions) -> String {
    if p.missing.is_empty() {
        "contact read".into()
    } else {
        p.missing.join(", ")
    }
}

/// The binding that owns this corpId when it is not `binding`, in any namespace the controller
/// watches: the oldest by creation time, then by namespace and name, so the answer is the same
/// on every replica and every run. Two bindings of one corp would split its Stream events
/// between two connections.
async fn older_binding_of_corp(
    ctx: &Context,
    ns: &str,
    binding: &DingTalkBinding,
) -> Result<Option<String>, Error> {
    let api: Api<DingTalkBinding> = scoped_api(ctx.client.clone(), ctx.scope.as_deref());
    let all = api.list(&Default::default()).await?;
    let me = cluster_order(binding);
    Ok(all
        .items
        .iter()
        .filter(|b| b.spec.corp_id.eq_ignore_ascii_case(&binding.spec.corp_id))
        .map(cluster_order)
        .filter(|k| *k < me)
        .min()
        .map(|(_, other_ns, name)| {
            if other_ns == ns {
                name
            } else {
                qualified(&other_ns, &name)
            }
        }))
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
