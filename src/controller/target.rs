//! SyncTarget: dereference binding, mapping and Secrets; refuse overlapping nodes; decide
//! whether a full sync is due; run it through the engine; report in status.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, Error, Sensitive, SyncRequest, SyncRunError, secrets, status};
use crate::api::{
    DingTalkBinding, FieldMapping, SyncTarget, SyncTargetSpec, SyncTargetStatus, condition,
    condition_type as ct, find_condition, set_condition,
    status::{FALSE, TRUE},
    target::{APPROVE_ANNOTATION, Progress, SYNC_NOW_ANNOTATION},
};

/// Full-sync interval when the spec names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// At most this many failures are listed in status.
pub const MAX_FAILURES: usize = 20;

/// Why a full sync is due now, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Created,
    SpecChanged,
    Requested(String),
    Interval,
}

impl Trigger {
    pub fn label(&self) -> &'static str {
        match self {
            Trigger::Created => "Created",
            Trigger::SpecChanged => "SpecChanged",
            Trigger::Requested(_) => "Requested",
            Trigger::Interval => "Interval",
        }
    }
}

/// Decide whether a full sync is due (pure). `fingerprint` covers the target's, binding's and
/// mapping's specs, so a change to any of them re-syncs by itself.
pub fn due(
    status: &SyncTargetStatus,
    fingerprint: &str,
    sync_now: Option<&str>,
    interval: Duration,
    now: jiff::Timestamp,
) -> Result<Trigger, Duration> {
    let Some(last) = status.last_sync_time.as_ref() else {
        return Ok(Trigger::Created);
    };
    if let Some(req) = sync_now
        && status.last_sync_request.as_deref() != Some(req)
    {
        return Ok(Trigger::Requested(req.to_string()));
    }
    if status.baseline.as_deref() != Some(fingerprint) {
        return Ok(Trigger::SpecChanged);
    }
    let elapsed = now.duration_since(last.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    if elapsed >= interval {
        Ok(Trigger::Interval)
    } else {
        Err(interval - elapsed)
    }
}

/// A stable digest of everything that shapes a sync's result.
pub fn fingerprint(
    target: &SyncTargetSpec,
    binding: &crate::api::DingTalkBindingSpec,
    mapping: &crate::api::FieldMappingSpec,
) -> String {
    // Only fields that change what is written; suspend/dryRun/intervals do not.
    let mut t = target.clone();
    t.suspend = false;
    t.dry_run = false;
    t.full_sync = None;
    let json = serde_json::json!({
        "target": t,
        "corp": binding.corp_id,
        "scope": binding.endpoints,
        "mapping": mapping,
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Whether two directory nodes overlap (one equals or contains the other). DNs compare
/// case-insensitively with spaces around separators ignored.
pub fn nodes_overlap(a: &str, b: &str) -> bool {
    let a = normalise_dn(a);
    let b = normalise_dn(b);
    a == b || a.ends_with(&format!(",{b}")) || b.ends_with(&format!(",{a}"))
}

fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two targets on one directory would act on the same entries. LDAP nodes are
/// subtrees; SCIM users have no container, so one enterprise's targets on one SCIM server always
/// share its users, whatever their group prefixes.
pub fn owns_same_entries(a: &SyncTargetSpec, b: &SyncTargetSpec) -> bool {
    if a.directory.scim.is_some() {
        a.binding_ref.name == b.binding_ref.name || nodes_overlap(&a.node, &b.node)
    } else {
        nodes_overlap(&a.node, &b.node)
    }
}

/// The server a target writes to, so nodes are only compared within one directory.
pub fn directory_identity(spec: &SyncTargetSpec) -> String {
    let url = match (&spec.directory.ldap, &spec.directory.scim) {
        (Some(l), _) => l.url.clone(),
        (_, Some(s)) => s.url.clone(),
        _ => String::new(),
    };
    match url::Url::parse(&url) {
        Ok(u) => {
            let port = u.port_or_known_default().unwrap_or(match u.scheme() {
                "ldap" => 389,
                "ldaps" => 636,
                _ => 0,
            });
            format!(
                "{}://{}:{}{}",
                u.scheme().trim_end_matches('s'),
                u.host_str().unwrap_or("").to_lowercase(),
                port,
                u.path().trim_end_matches('/')
            )
        }
        Err(_) => url.to_lowercase(),
    }
}

/// Reconcile one SyncTarget.
pub async fn reconcile(target: Arc<SyncTarget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = target.namespace().unwrap_or_default();
    let name = target.name_any();
    let key = format!("SyncTarget/{ns}/{name}");
    ctx.metrics.count_reconcile("SyncTarget");
    let generation = target.metadata.generation;
    let before = target.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = generation;

    let (action, failure) = evaluate(&target, &ctx, &ns, &mut st, generation).await?;
    let mut retry = None;
    if let Some(reason) = failure {
        ctx.metrics.count_failure("SyncTarget", reason);
        let (attempt, delay) = ctx.backoff_attempt(&key);
        quarantine(&mut st, reason, attempt, delay, generation);
        retry = Some(delay);
    } else {
        ctx.reset_backoff(&key);
        lift_quarantine(&mut st, generation);
    }
    status::apply_status(&ctx, target.as_ref(), target.status.as_ref(), &st).await?;
    status::publish_transitions(&ctx, target.as_ref(), &before.conditions, &st.conditions).await;
    Ok(action.unwrap_or_else(|| Action::requeue(retry.unwrap_or_else(|| ctx.backoff(&key)))))
}

/// Sync failures in a row after which a target is marked `Quarantined`.
pub const QUARANTINE_AFTER: u32 = 3;

/// After repeated sync failures, say so: the target keeps retrying, at growing intervals (the
/// backoff), instead of hammering DingTalk or the directory, and lifts this by itself on the
/// first success. Failures that are not the sync's own (a binding not ready yet) don't count.
fn quarantine(
    st: &mut SyncTargetStatus,
    reason: &str,
    attempt: u32,
    next: std::time::Duration,
    g: Option<i64>,
) {
    if !matches!(
        reason,
        "SyncFailed" | "IncompleteRead" | "DirectoryAuthFailed"
    ) || attempt < QUARANTINE_AFTER
    {
        return;
    }
    set_condition(
        &mut st.conditions,
        condition(
            ct::QUARANTINED,
            TRUE,
            reason,
            format!(
                "{attempt} sync failures in a row; retrying at growing intervals, next attempt \
                 in about {} s",
                next.as_secs().max(1)
            ),
            g,
        ),
    );
}

fn lift_quarantine(st: &mut SyncTargetStatus, g: Option<i64>) {
    if st
        .conditions
        .iter()
        .any(|c| c.type_ == ct::QUARANTINED && c.status == TRUE)
    {
        set_condition(
            &mut st.conditions,
            condition(
                ct::QUARANTINED,
                FALSE,
                "Recovered",
                "the last sync succeeded",
                g,
            ),
        );
    }
}

fn not_ready(
    st: &mut SyncTargetStatus,
    reason: &'static str,
    msg: impl Into<String>,
    g: Option<i64>,
) {
    set_condition(
        &mut st.conditions,
        condition(ct::READY, FALSE, reason, msg, g),
    );
}

/// Returns the action (None = transient: back off) and the failure reason, if any.
async fn evaluate(
    target: &SyncTarget,
    ctx: &Context,
    ns: &str,
    st: &mut SyncTargetStatus,
    g: Option<i64>,
) -> Result<(Option<Action>, Option<&'static str>), Error> {
    let spec = &target.spec;
    let wait = Some(Action::await_change());

    if spec.suspend {
        not_ready(
            st,
            "Suspended",
            "spec.suspend is true: nothing is synced until it is false",
            g,
        );
        return Ok((wait, None));
    }

    // The binding must exist and be Ready.
    let bindings: Api<DingTalkBinding> = Api::namespaced(ctx.client.clone(), ns);
    let Some(binding) = bindings.get_opt(&spec.binding_ref.name).await? else {
        not_ready(
            st,
            "BindingNotFound",
            format!(
                "spec.bindingRef: DingTalkBinding {ns}/{} not found",
                spec.binding_ref.name
            ),
            g,
        );
        return Ok((wait, Some("BindingNotFound")));
    };
    let binding_ready = binding
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, ct::READY));
    if binding_ready.map(|c| c.status.as_str()) != Some(TRUE) {
        let why = binding_ready
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "not reconciled yet".into());
        not_ready(
            st,
            "BindingNotReady",
            format!(
                "DingTalkBinding {} is not ready ({why})",
                spec.binding_ref.name
            ),
            g,
        );
        return Ok((wait, Some("BindingNotReady")));
    }
    // Outbound writes DingTalk's address book: the binding's probe must have found the write
    // permission, or nothing is attempted.
    if spec.direction == crate::api::target::Direction::Outbound
        && !binding
            .status
            .as_ref()
            .and_then(|s| s.permissions.as_ref())
            .is_some_and(|p| p.contact_write)
    {
        not_ready(
            st,
            "PermissionMissing",
            format!(
                "DingTalkBinding {}: the app lacks the address-book write permission qyapi_manage_addresslist that an Outbound target needs; grant it in DingTalk's developer console",
                spec.binding_ref.name
            ),
            g,
        );
        return Ok((wait, Some("PermissionMissing")));
    }

    // The mapping must exist and compile.
    let mappings: Api<FieldMapping> = Api::namespaced(ctx.client.clone(), ns);
    let Some(mapping) = mappings.get_opt(&spec.field_mapping_ref.name).await? else {
        not_ready(
            st,
            "MappingNotFound",
            format!(
                "spec.fieldMappingRef: FieldMapping {ns}/{} not found",
                spec.field_mapping_ref.name
            ),
            g,
        );
        return Ok((wait, Some("MappingNotFound")));
    };
    if let Err(msg) = ctx.validator.validate(&mapping.spec) {
        not_ready(
            st,
            "MappingInvalid",
            format!("FieldMapping {}: {msg}", spec.field_mapping_ref.name),
            g,
        );
        return Ok((wait, Some("MappingInvalid")));
    }

    // Two targets never own overlapping nodes of one directory: the older one keeps it.
    if let Some(other) = overlapping_target(ctx, ns, target).await? {
        not_ready(
            st,
            "Conflict",
            format!(
                "node {:?} overlaps the node of SyncTarget {other} in the same directory",
                spec.node
            ),
            g,
        );
        return Ok((wait, Some("Conflict")));
    }

    // Secrets: the app's credentials and the directory's.
    let secrets::TargetSecrets {
        app_key,
        app_secret,
        directory: dir_secret,
        ca,
    } = match secrets::target_secrets(ctx, ns, &binding.spec, spec).await? {
        Ok(s) => s,
        Err(m) => {
            not_ready(st, m.reason, m.message, g);
            return Ok((wait, Some(m.reason)));
        }
    };

    let callback = match binding.spec.events.as_ref() {
        Some(e) if e.delivery == crate::api::binding::EventDelivery::Callback => {
            match &e.callback_secret_ref {
                Some(r) => {
                    let what = "binding events.callbackSecretRef";
                    let token = secrets::secret_text(ctx, ns, &r.name, "token", what).await?;
                    let aes = secrets::secret_text(ctx, ns, &r.name, "aesKey", what).await?;
                    match (token, aes) {
                        (Ok(t), Ok(a)) => Some((Sensitive::new(t), Sensitive::new(a))),
                        _ => None,
                    }
                }
                None => None,
            }
        }
        _ => None,
    };
    let base_request = SyncRequest {
        callback,
        target: format!("{ns}/{}", target.name_any()),
        spec: spec.clone(),
        binding: binding.spec.clone(),
        mapping: mapping.spec.clone(),
        app_key,
        app_secret,
        directory_secret: dir_secret,
        directory_ca: ca,
        trigger: String::new(),
        approval: target.annotations().get(APPROVE_ANNOTATION).cloned(),
        progress: None,
    };

    // Is a full sync due? A gap in the event stream makes it so.
    let fp = fingerprint(spec, &binding.spec, &mapping.spec);
    if ctx.runner.full_sync_wanted(&base_request.target) {
        st.baseline = None;
    }
    let interval = spec
        .full_sync
        .as_ref()
        .and_then(|f| f.interval)
        .map(Duration::from)
        .unwrap_or(DEFAULT_INTERVAL);
    let sync_now = target.annotations().get(SYNC_NOW_ANNOTATION).cloned();
    let trigger = match due(
        st,
        &fp,
        sync_now.as_deref(),
        interval,
        jiff::Timestamp::now(),
    ) {
        Ok(t) => t,
        Err(remaining) => {
            let baseline = st.baseline.as_deref() == Some(fp.as_str());
            let live = track_events(ctx, &base_request, baseline, st, g).await;
            // While events flow, look again soon: the condition follows the connection.
            let next = if live {
                remaining.min(recheck(spec))
            } else {
                remaining
            };
            return Ok((Some(Action::requeue(next)), None));
        }
    };

    let request = SyncRequest {
        trigger: trigger.label().to_string(),
        ..base_request.clone()
    };
    let started = Time(jiff::Timestamp::now());
    let (tx, rx) = tokio::sync::watch::channel(None::<Progress>);
    let request = SyncRequest {
        progress: Some(Arc::new(
            move |phase: &str, done: usize, total: Option<usize>| {
                tx.send_replace(Some(Progress {
                    phase: phase.to_string(),
                    done: done as i64,
                    total: total.map(|t| t as i64),
                }));
            },
        )),
        ..request
    };
    let reporter = tokio::spawn(report_progress(ctx.client.clone(), target.clone(), rx));
    let result = ctx.runner.run(request).await;
    reporter.abort();
    let _ = reporter.await;
    clear_progress(&ctx.client, target).await;
    let ended = Time(jiff::Timestamp::now());
    if let Trigger::Requested(r) = &trigger {
        st.last_sync_request = Some(r.clone());
    }
    match result {
        Ok(out) => {
            let mut summary = out.summary.clone();
            summary.trigger = trigger.label().to_string();
            summary.start_time = Some(started);
            summary.end_time = Some(ended.clone());
            for (op, n) in [
                ("create", summary.created),
                ("update", summary.updated),
                ("move", summary.moved),
                ("disable", summary.disabled),
                ("enable", summary.enabled),
                ("delete", summary.deleted),
            ] {
                if n > 0 {
                    ctx.metrics
                        .sync_operations
                        .get_or_create(&super::metrics::OperationLabels {
                            operation: op.into(),
                        })
                        .inc_by(n as u64);
                }
            }
            st.last_sync = Some(summary.clone());
            st.last_sync_time = Some(ended.clone());
            st.people = Some(out.people);
            st.departments = Some(out.departments);
            st.failures = out.failures.iter().take(MAX_FAILURES).cloned().collect();
            st.failures_truncated = (out.failures.len() > MAX_FAILURES)
                .then(|| (out.failures.len() - MAX_FAILURES) as i64);
            st.plan = out.plan.clone();
            st.pending_approval = out.held.clone();
            if let Some(held) = &out.held {
                set_condition(
                    &mut st.conditions,
                    condition(
                        ct::SYNCED,
                        FALSE,
                        "AwaitingApproval",
                        held.message.clone(),
                        g,
                    ),
                );
                not_ready(
                    st,
                    "AwaitingApproval",
                    format!(
                        "{}; approve with annotation {APPROVE_ANNOTATION}={}",
                        held.message, held.token
                    ),
                    g,
                );
                // Do not re-run on the interval while held: only an approval or a change helps.
                return Ok((wait, Some("AwaitingApproval")));
            }
            if spec.dry_run {
                set_condition(
                    &mut st.conditions,
                    condition(
                        ct::SYNCED,
                        FALSE,
                        "DryRun",
                        "spec.dryRun is true: the plan is in status.plan, nothing was written",
                        g,
                    ),
                );
                set_condition(
                    &mut st.conditions,
                    condition(ct::READY, TRUE, "DryRun", "plan computed", g),
                );
                st.baseline = None;
                return Ok((Some(Action::requeue(interval)), None));
            }
            let (reason, msg) = if !out.complete {
                ("IncompleteRead", "the DingTalk read was incomplete: nothing was disabled or deleted; the next run retries".to_string())
            } else if summary.failed > 0 {
                (
                    "PartiallySynced",
                    format!("{} objects failed; see status.failures", summary.failed),
                )
            } else {
                (
                    "Synced",
                    format!(
                        "{} created, {} updated, {} moved, {} disabled, {} deleted, {} unchanged",
                        summary.created,
                        summary.updated,
                        summary.moved,
                        summary.disabled,
                        summary.deleted,
                        summary.unchanged
                    ),
                )
            };
            let synced = out.complete && summary.failed == 0;
            set_condition(
                &mut st.conditions,
                condition(
                    ct::SYNCED,
                    if synced { TRUE } else { FALSE },
                    reason,
                    msg.clone(),
                    g,
                ),
            );
            set_condition(
                &mut st.conditions,
                condition(ct::READY, TRUE, reason, msg, g),
            );
            if out.complete {
                // A complete run is the baseline incremental sync starts from.
                st.baseline = Some(fp);
                st.last_successful_sync_time = Some(ended);
                let live = !spec.dry_run && track_events(ctx, &base_request, true, st, g).await;
                let next = if live {
                    interval.min(recheck(spec))
                } else {
                    interval
                };
                Ok((Some(Action::requeue(next)), None))
            } else {
                Ok((None, Some("IncompleteRead")))
            }
        }
        Err(SyncRunError::DirectoryAuth(msg)) => {
            set_condition(
                &mut st.conditions,
                condition(ct::SYNCED, FALSE, "DirectoryAuthFailed", msg.clone(), g),
            );
            not_ready(st, "DirectoryAuthFailed", msg, g);
            Ok((wait, Some("DirectoryAuthFailed")))
        }
        Err(SyncRunError::Permanent(msg)) => {
            set_condition(
                &mut st.conditions,
                condition(ct::SYNCED, FALSE, "SyncFailed", msg.clone(), g),
            );
            not_ready(st, "SyncFailed", msg, g);
            Ok((wait, Some("SyncFailed")))
        }
        Err(SyncRunError::Transient(msg)) => {
            set_condition(
                &mut st.conditions,
                condition(ct::SYNCED, FALSE, "SyncFailed", msg.clone(), g),
            );
            not_ready(st, "SyncFailed", msg, g);
            Ok((None, Some("SyncFailed")))
        }
    }
}

/// How often a target fed by events is looked at again, so its `IncrementalActive`
/// condition follows the event connection and a gap is noticed.
const EVENTS_RECHECK: Duration = Duration::from_secs(30);

/// When to look at a live target again: Inbound targets follow their event connection,
/// Outbound targets poll the directory at their `pollInterval`.
fn recheck(spec: &crate::api::target::SyncTargetSpec) -> Duration {
    match spec.direction {
        crate::api::target::Direction::Inbound => EVENTS_RECHECK,
        crate::api::target::Direction::Outbound => spec
            .incremental_sync
            .as_ref()
            .and_then(|i| i.poll_interval)
            .map(Duration::from)
            .unwrap_or(super::adapters::OUTBOUND_POLL),
    }
}

/// Hand the target to the runner's event feed and show the outcome as `IncrementalActive`.
/// Returns whether the target is fed by events at all.
async fn track_events(
    ctx: &Context,
    request: &SyncRequest,
    baseline: bool,
    st: &mut SyncTargetStatus,
    g: Option<i64>,
) -> bool {
    let enabled = request
        .spec
        .incremental_sync
        .as_ref()
        .is_none_or(|i| i.enabled);
    if !enabled {
        set_condition(
            &mut st.conditions,
            condition(
                ct::INCREMENTAL_ACTIVE,
                FALSE,
                "Disabled",
                "spec.incrementalSync.enabled is false: full syncs only",
                g,
            ),
        );
        return false;
    }
    let Some(view) = ctx.runner.track_events(request, baseline).await else {
        return false;
    };
    set_condition(
        &mut st.conditions,
        condition(
            ct::INCREMENTAL_ACTIVE,
            if view.active { TRUE } else { FALSE },
            &view.reason,
            view.message,
            g,
        ),
    );
    true
}

/// Field manager of the live progress writes.
const PROGRESS_MANAGER: &str = "dingsync-progress";

/// A merge patch of `status.progress` alone (`null` removes it), so the live figures never
/// touch the fields the reconcile applies.
fn progress_patch(progress: Option<&Progress>) -> serde_json::Value {
    serde_json::json!({ "status": { "progress": progress } })
}

/// Write the run's phase and counts into `status.progress`, at most every two seconds.
async fn report_progress(
    client: kube::Client,
    target: SyncTarget,
    mut rx: tokio::sync::watch::Receiver<Option<Progress>>,
) {
    let api: Api<SyncTarget> = Api::namespaced(client, &target.namespace().unwrap_or_default());
    let pp = kube::api::PatchParams {
        field_manager: Some(PROGRESS_MANAGER.into()),
        ..Default::default()
    };
    while rx.changed().await.is_ok() {
        let current = rx.borrow_and_update().clone();
        if let Err(e) = api
            .patch_status(
                &target.name_any(),
                &pp,
                &kube::api::Patch::Merge(progress_patch(current.as_ref())),
            )
            .await
        {
            tracing::debug!(error = %e, "progress not written");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Remove `status.progress` when the run is over.
async fn clear_progress(client: &kube::Client, target: &SyncTarget) {
    let api: Api<SyncTarget> =
        Api::namespaced(client.clone(), &target.namespace().unwrap_or_default());
    let pp = kube::api::PatchParams {
        field_manager: Some(PROGRESS_MANAGER.into()),
        ..Default::default()
    };
    let _ = api
        .patch_status(
            &target.name_any(),
            &pp,
            &kube::api::Patch::Merge(progress_patch(None)),
        )
        .await;
}

/// The older target whose node overlaps this one's in the same directory, if any.
async fn overlapping_target(
    ctx: &Context,
    ns: &str,
    target: &SyncTarget,
) -> Result<Option<String>, Error> {
    let api: Api<SyncTarget> = Api::namespaced(ctx.client.clone(), ns);
    let me = (
        target
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(i64::MAX),
        target.name_any(),
    );
    let dir = directory_identity(&target.spec);
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|t| t.name_any() != target.name_any() && !t.spec.suspend)
        .filter(|t| directory_identity(&t.spec) == dir && owns_same_entries(&t.spec, &target.spec))
        .map(|t| {
            (
                (
                    t.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|x| x.0.as_second())
                        .unwrap_or(i64::MAX),
                    t.name_any(),
                ),
                t,
            )
        })
        .filter(|(k, _)| *k < me)
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_containment_ignoring_case_and_spaces() {
        assert!(nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "OU=Acme, DC=example,dc=com"
        ));
        assert!(nodes_overlap(
            "ou=sales,ou=acme,dc=example,dc=com",
            "ou=acme,dc=example,dc=com"
        ));
        assert!(nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "ou=sales,ou=acme,dc=example,dc=com"
        ));
        assert!(!nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "ou=beta,dc=example,dc=com"
        ));
        assert!(!nodes_overlap(
            "ou=acme2,dc=example,dc=com",
            "ou=acme,dc=example,dc=com"
        ));
    }

    #[test]
    fn directory_identity_normalises_default_ports() {
        let mut a = SyncTargetSpec::default();
        a.directory.ldap = Some(crate::api::target::LdapSpec {
            url: "ldap://LDAP.example.com".into(),
            ..Default::default()
        });
        let mut b = a.clone();
        b.directory.ldap.as_mut().unwrap().url = "ldap://ldap.example.com:389/".into();
        assert_eq!(directory_identity(&a), directory_identity(&b));
        b.directory.ldap.as_mut().unwrap().url = "ldap://other.example.com:389".into();
        assert_ne!(directory_identity(&a), directory_identity(&b));
    }

    #[test]
    fn one_enterprise_twice_on_one_scim_server_overlaps() {
        let scim = |binding: &str, node: &str| {
            let mut t = SyncTargetSpec {
                node: node.into(),
                ..Default::default()
            };
            t.binding_ref.name = binding.into();
            t.directory.scim = Some(crate::api::target::ScimSpec {
                url: "https://idp.example.com/scim/v2".into(),
                ..Default::default()
            });
            t
        };
        assert!(owns_same_entries(
            &scim("acme", "sales"),
            &scim("acme", "engineering")
        ));
        assert!(!owns_same_entries(
            &scim("acme", "sales"),
            &scim("beta", "beta")
        ));
        let ldap = |node: &str| SyncTargetSpec {
            node: node.into(),
            ..Default::default()
        };
        assert!(!owns_same_entries(&ldap("ou=a,dc=x"), &ldap("ou=b,dc=x")));
    }

    fn synced_at(secs: i64, fp: &str) -> SyncTargetStatus {
        SyncTargetStatus {
            last_sync_time: Some(Time(jiff::Timestamp::from_second(secs).unwrap())),
            baseline: Some(fp.into()),
            ..Default::default()
        }
    }

    #[test]
    fn triggers() {
        let now = jiff::Timestamp::from_second(10_000).unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            due(&SyncTargetStatus::default(), "f", None, hour, now),
            Ok(Trigger::Created)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "g", None, hour, now),
            Ok(Trigger::SpecChanged)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "f", None, hour, now),
            Err(Duration::from_secs(2600))
        );
        assert_eq!(
            due(&synced_at(6_000, "f"), "f", None, hour, now),
            Ok(Trigger::Interval)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "f", Some("1"), hour, now),
            Ok(Trigger::Requested("1".into()))
        );
        let mut acted = synced_at(9_000, "f");
        acted.last_sync_request = Some("1".into());
        assert!(
            due(&acted, "f", Some("1"), hour, now).is_err(),
            "an annotation value is acted on once"
        );
    }

    #[test]
    fn fingerprint_ignores_suspend_and_interval_but_not_node() {
        let b = crate::api::DingTalkBindingSpec::default();
        let m = crate::api::FieldMappingSpec::default();
        let mut t = SyncTargetSpec {
            node: "ou=a".into(),
            ..Default::default()
        };
        let f0 = fingerprint(&t, &b, &m);
        t.suspend = true;
        assert_eq!(f0, fingerprint(&t, &b, &m));
        t.node = "ou=b".into();
        assert_ne!(f0, fingerprint(&t, &b, &m));
        let mut m2 = m.clone();
        m2.user.unique_name.template = "{{ x }}".into();
        t.node = "ou=a".into();
        assert_ne!(f0, fingerprint(&t, &b, &m2));
    }
}
