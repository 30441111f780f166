//! SyncTarget: dereference binding, mapping and Secrets; refuse overlapping nodes; decide
//! whether a full sync is due; run it through the engine; report in status.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt, runtime::controller::Action};

pub use super::Trigger;
use super::{Context, Error, SyncOutcome, SyncRequest, SyncRunError, status};
use crate::{
    api::{
        Reason, SyncTarget, SyncTargetSpec, SyncTargetStatus, condition, condition_type as ct,
        set_condition,
        status::{FALSE, TRUE},
        target::{APPROVE_ANNOTATION, Progress, SYNC_NOW_ANNOTATION},
    },
    report::{RunKind, RunReport},
    resolve::{self, Resolved, TargetKey},
};

/// Full-sync interval when the spec names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// At most this many failures are listed in status; all are in the run reports.
pub const MAX_FAILURES: usize = crate::report::STATUS_FAILURES;

/// What the target's annotations ask for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    /// The sync-now annotation's value.
    pub sync_now: Option<&'a str>,
    /// The approve-deletions annotation's value.
    pub approval: Option<&'a str>,
}

/// Decide whether a full sync is due (pure). `fingerprint` covers the target's, binding's and
/// mapping's specs, so a change to any of them re-syncs by itself. Approving a held run with
/// its token runs it at once: the held run wrote nothing and kept no baseline of its own.
pub fn due(
    status: &SyncTargetStatus,
    fingerprint: &str,
    asked: Asked<'_>,
    interval: Duration,
    now: jiff::Timestamp,
) -> Result<Trigger, Duration> {
    let Some(last) = status.last_sync_time.as_ref() else {
        return Ok(Trigger::Created);
    };
    let pending = status.pending_approval.as_ref().map(|p| p.token.as_str());
    if pending.is_some() && asked.approval == pending {
        return Ok(Trigger::Approved);
    }
    if let Some(req) = asked.sync_now
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
    t.reports = None;
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

/// Reconcile one SyncTarget.
pub async fn reconcile(target: Arc<SyncTarget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = target.namespace().unwrap_or_default();
    let name = target.name_any();
    let key = format!("SyncTarget/{ns}/{name}");
    let _timer = ctx.metrics.reconcile_started("SyncTarget");
    let generation = target.metadata.generation;
    let before = target.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = generation;

    let mut reports = vec![];
    let (action, failure) = evaluate(&target, &ctx, &mut st, generation, &mut reports).await?;
    reports.extend(ctx.runner.take_reports(&TargetKey::new(&ns, &name)));
    super::reports::record(&ctx, &target, &mut st, reports).await;
    let mut retry = None;
    if let Some(reason) = failure {
        ctx.metrics.count_failure("SyncTarget", reason.as_str());
        let (attempt, delay) = ctx.backoff_attempt(&key);
        quarantine(&mut st, reason, attempt, delay, generation);
        retry = Some(delay);
    } else {
        ctx.reset_backoff(&key);
        lift_quarantine(&mut st, generation);
    }
    ctx.metrics.record_target(&ns, &name, &st);
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
    reason: Reason,
    attempt: u32,
    next: std::time::Duration,
    g: Option<i64>,
) {
    if !matches!(
        reason,
        Reason::SyncFailed | Reason::IncompleteRead | Reason::DirectoryAuthFailed
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
                Reason::Recovered,
                "the last sync succeeded",
                g,
            ),
        );
    }
}

fn not_ready(st: &mut SyncTargetStatus, reason: Reason, msg: impl Into<String>, g: Option<i64>) {
    set_condition(
        &mut st.conditions,
        condition(ct::READY, FALSE, reason, msg, g),
    );
}

/// What a reconcile decided: when to look again (None = transient: back off) and the failure
/// reason, if any.
type Decision = (Option<Action>, Option<Reason>);

/// Resolves the target, and runs a full sync when one is due or keeps events flowing when not.
async fn evaluate(
    target: &SyncTarget,
    ctx: &Context,
    st: &mut SyncTargetStatus,
    g: Option<i64>,
    reports: &mut Vec<RunReport>,
) -> Result<Decision, Error> {
    let spec = &target.spec;
    let wait = Some(Action::await_change());
    if spec.suspend {
        let why = "spec.suspend is true: nothing is synced until it is false";
        not_ready(st, Reason::Suspended, why, g);
        return Ok((wait, None));
    }
    let resolved = match resolve::resolve(&ctx.objects(), target).await? {
        Ok(r) => r,
        Err(p) => {
            not_ready(st, p.reason, p.message, g);
            // The older target holding the node may be in another namespace, whose changes
            // do not wake this one: look again.
            let wait = match p.reason {
                Reason::Conflict => Some(Action::requeue(super::binding::CONFLICT_RECHECK)),
                _ => wait,
            };
            return Ok((wait, Some(p.reason)));
        }
    };
    // Is a full sync due? A gap in the event stream makes it so.
    let fp = fingerprint(spec, &resolved.binding, &resolved.mapping);
    let events_asked = ctx.runner.full_sync_wanted(&resolved.key);
    if events_asked {
        st.baseline = None;
    }
    let interval = full_sync_interval(spec);
    let sync_now = target.annotations().get(SYNC_NOW_ANNOTATION).cloned();
    let asked = Asked {
        sync_now: sync_now.as_deref(),
        approval: resolved.approval.as_deref(),
    };
    let now = jiff::Timestamp::now();
    let trigger = match due(st, &fp, asked, interval, now) {
        // Dropping the baseline made the run due; the status says who asked.
        Ok(Trigger::SpecChanged) if events_asked => Trigger::Events,
        Ok(t) => t,
        Err(remaining) => {
            note_wrong_approval(st, asked.approval, g);
            let baseline = st.baseline.as_deref() == Some(fp.as_str());
            let live = track_events(ctx, &resolved, baseline, st, g).await;
            // While events flow, look again soon: the condition follows the connection.
            let next = if live {
                remaining.min(recheck(spec))
            } else {
                remaining
            };
            return Ok((Some(Action::requeue(next)), None));
        }
    };
    let started = Time(jiff::Timestamp::now());
    let result = run_with_progress(ctx, target, resolved.clone(), trigger.clone()).await;
    let ended = Time(jiff::Timestamp::now());
    if let Trigger::Requested(r) = &trigger {
        st.last_sync_request = Some(r.clone());
    }
    let run = Run {
        trigger,
        started,
        ended,
        interval,
        fingerprint: fp,
    };
    reports.push(run.report(&result));
    Ok(match result {
        Ok(out) => record_outcome(ctx, &resolved, st, out, run, g).await,
        Err(e) => record_failure(st, e, g),
    })
}

/// A held run whose approve annotation holds another token (stale, from an earlier hold, or
/// mistyped) stays held; the condition says so instead of looking approved.
fn note_wrong_approval(st: &mut SyncTargetStatus, approval: Option<&str>, g: Option<i64>) {
    let (Some(held), Some(given)) = (st.pending_approval.clone(), approval) else {
        return;
    };
    let message = format!(
        "{}; annotation {APPROVE_ANNOTATION} holds {given:?}, not the pending token: approve \
         with {APPROVE_ANNOTATION}={}",
        held.message, held.token
    );
    not_ready(st, Reason::AwaitingApproval, message, g);
}

/// `spec.fullSync.interval`, or the default.
fn full_sync_interval(spec: &SyncTargetSpec) -> Duration {
    spec.full_sync
        .as_ref()
        .and_then(|f| f.interval)
        .map(Duration::from)
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Runs the sync while its phase and counts are written into `status.progress`.
async fn run_with_progress(
    ctx: &Context,
    target: &SyncTarget,
    resolved: Resolved,
    trigger: Trigger,
) -> Result<SyncOutcome, SyncRunError> {
    let (tx, rx) = tokio::sync::watch::channel(None::<Progress>);
    let progress = move |phase: &str, done: usize, total: Option<usize>| {
        tx.send_replace(Some(Progress {
            phase: phase.to_string(),
            done: done as i64,
            total: total.map(|t| t as i64),
        }));
    };
    let request = SyncRequest {
        target: resolved,
        trigger,
        progress: Some(Arc::new(progress)),
    };
    let reporter = tokio::spawn(report_progress(ctx.client.clone(), target.clone(), rx));
    let result = ctx.runner.run(request).await;
    reporter.abort();
    let _ = reporter.await;
    clear_progress(&ctx.client, target).await;
    result
}

/// One finished full sync: why it ran, when, and the spec it ran at.
struct Run {
    trigger: Trigger,
    started: Time,
    ended: Time,
    interval: Duration,
    fingerprint: String,
}

impl Run {
    /// The run's report, whether it completed or not.
    fn report(&self, result: &Result<SyncOutcome, SyncRunError>) -> RunReport {
        let times = (self.started.0, self.ended.0);
        let trigger = self.trigger.label();
        match result {
            Ok(out) => super::reports::report_of(out, RunKind::Full, trigger, times),
            Err(e) => super::reports::failed_report(RunKind::Full, trigger, times, e.to_string()),
        }
    }
}

/// Writes a run's outcome into status: counts, failures, plan, and the conditions it earns.
async fn record_outcome(
    ctx: &Context,
    resolved: &Resolved,
    st: &mut SyncTargetStatus,
    out: SyncOutcome,
    run: Run,
    g: Option<i64>,
) -> Decision {
    let took = run.ended.0.duration_since(run.started.0).unsigned_abs();
    let mut summary = out.summary.clone();
    summary.trigger = run.trigger.label().to_string();
    summary.start_time = Some(run.started);
    summary.end_time = Some(run.ended.clone());
    count_operations(ctx, &summary);
    ctx.metrics.record_run(
        &resolved.key.namespace,
        &resolved.key.name,
        took,
        out.failures.iter().map(|f| f.reason.as_str()),
    );
    st.last_sync = Some(summary.clone());
    st.last_sync_time = Some(run.ended.clone());
    st.people = Some(out.people);
    st.departments = Some(out.departments);
    st.plan = out.plan.clone();
    st.pending_approval = out.held.clone();
    if let Some(held) = &out.held {
        set_condition(
            &mut st.conditions,
            condition(
                ct::SYNCED,
                FALSE,
                Reason::AwaitingApproval,
                held.message.clone(),
                g,
            ),
        );
        let approve = format!(
            "{}; approve with annotation {APPROVE_ANNOTATION}={}",
            held.message, held.token
        );
        not_ready(st, Reason::AwaitingApproval, approve, g);
        note_wrong_approval(st, resolved.approval.as_deref(), g);
        // Do not re-run on the interval while held: only an approval or a change helps.
        return (Some(Action::await_change()), Some(Reason::AwaitingApproval));
    }
    if resolved.spec.dry_run {
        let why = "spec.dryRun is true: the plan is in status.plan, nothing was written";
        set_condition(
            &mut st.conditions,
            condition(ct::SYNCED, FALSE, Reason::DryRun, why, g),
        );
        set_condition(
            &mut st.conditions,
            condition(ct::READY, TRUE, Reason::DryRun, "plan computed", g),
        );
        st.baseline = None;
        return (Some(Action::requeue(run.interval)), None);
    }
    let (reason, msg) = outcome_condition(&out);
    let synced = if out.complete && summary.failed == 0 {
        TRUE
    } else {
        FALSE
    };
    set_condition(
        &mut st.conditions,
        condition(ct::SYNCED, synced, reason, msg.clone(), g),
    );
    set_condition(
        &mut st.conditions,
        condition(ct::READY, TRUE, reason, msg, g),
    );
    if !out.complete {
        return (None, Some(Reason::IncompleteRead));
    }
    // A complete run is the baseline incremental sync starts from.
    st.baseline = Some(run.fingerprint);
    st.last_successful_sync_time = Some(run.ended);
    let live = track_events(ctx, resolved, true, st, g).await;
    let next = if live {
        run.interval.min(recheck(&resolved.spec))
    } else {
        run.interval
    };
    (Some(Action::requeue(next)), None)
}

/// Adds a run's writes to the operations counter, by kind of write.
fn count_operations(ctx: &Context, s: &crate::api::target::RunSummary) {
    for (op, n) in [
        ("create", s.created),
        ("update", s.updated),
        ("move", s.moved),
        ("disable", s.disabled),
        ("enable", s.enabled),
        ("delete", s.deleted),
    ] {
        if n > 0 {
            let labels = super::metrics::OperationLabels {
                operation: op.into(),
            };
            ctx.metrics
                .sync_operations
                .get_or_create(&labels)
                .inc_by(n as u64);
        }
    }
}

/// The reason and message of a run that was neither held nor a dry run, with the run's
/// notes appended.
fn outcome_condition(out: &SyncOutcome) -> (Reason, String) {
    let (reason, mut message) = outcome_reason(out);
    for note in &out.notes {
        message.push_str("; ");
        message.push_str(note);
    }
    (reason, message)
}

fn outcome_reason(out: &SyncOutcome) -> (Reason, String) {
    let s = &out.summary;
    if !out.complete {
        let why = "the DingTalk read was incomplete: nothing was disabled or deleted; the next \
                   run retries";
        (Reason::IncompleteRead, why.to_string())
    } else if s.failed > 0 {
        let why = format!(
            "{} objects failed; see status.failures and `dingsync report`",
            s.failed
        );
        (Reason::PartiallySynced, why)
    } else {
        let why = format!(
            "{} created, {} updated, {} moved, {} disabled, {} deleted, {} unchanged",
            s.created, s.updated, s.moved, s.disabled, s.deleted, s.unchanged
        );
        (Reason::Synced, why)
    }
}

/// A run that could not complete: `Synced` and `Ready` say why.
fn record_failure(st: &mut SyncTargetStatus, e: SyncRunError, g: Option<i64>) -> Decision {
    let (reason, msg, action) = match e {
        SyncRunError::DirectoryAuth(m) => {
            (Reason::DirectoryAuthFailed, m, Some(Action::await_change()))
        }
        SyncRunError::Permanent(m) => (Reason::SyncFailed, m, Some(Action::await_change())),
        SyncRunError::Transient(m) => (Reason::SyncFailed, m, None),
        SyncRunError::PermissionMissing(m) => (Reason::PermissionMissing, m, None),
    };
    set_condition(
        &mut st.conditions,
        condition(ct::SYNCED, FALSE, reason, msg.clone(), g),
    );
    not_ready(st, reason, msg, g);
    (action, Some(reason))
}

/// How often a target fed by events is looked at again, so its `IncrementalActive`
/// condition follows the event connection and a gap is noticed.
const EVENTS_RECHECK: Duration = Duration::from_secs(30);

/// When to look at a live target again: Inbound targets follow their event connection,
/// Outbound targets poll the directory at their `pollInterval`.
fn recheck(spec: &crate::api::target::SyncTargetSpec) -> Duration {
    match spec.direction {
        crate::api::target::Direction::Inbound => EVENTS_RECHECK,
        crate::api::target::Direction::Outbound => super::engine::poll_interval(spec),
    }
}

/// Hand the target to the runner's event feed and show the outcome as `IncrementalActive`.
/// Returns whether the target is fed by events at all.
async fn track_events(
    ctx: &Context,
    request: &Resolved,
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
                Reason::Disabled,
                "spec.incrementalSync.enabled is false: full syncs only",
                g,
            ),
        );
        return false;
    }
    if let Some(c) = st.content_sync_cookie.clone() {
        ctx.runner.resume_content_sync(&request.key, c);
    }
    let Some(view) = ctx.runner.track_events(request, baseline).await else {
        return false;
    };
    if let Some(c) = ctx.runner.content_sync_cookie(&request.key) {
        st.content_sync_cookie = Some(c);
    }
    set_condition(
        &mut st.conditions,
        condition(
            ct::INCREMENTAL_ACTIVE,
            if view.active { TRUE } else { FALSE },
            view.reason,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn synced_at(secs: i64, fp: &str) -> SyncTargetStatus {
        SyncTargetStatus {
            last_sync_time: Some(Time(jiff::Timestamp::from_second(secs).unwrap())),
            baseline: Some(fp.into()),
            ..Default::default()
        }
    }

    fn now_asked(v: &str) -> Asked<'_> {
        Asked {
            sync_now: Some(v),
            approval: None,
        }
    }

    #[test]
    fn approving_a_held_run_with_its_token_runs_it() {
        let now = jiff::Timestamp::from_second(10_000).unwrap();
        let hour = Duration::from_secs(3600);
        let mut held = synced_at(9_000, "f");
        held.pending_approval = Some(crate::api::target::PendingApproval {
            removals: 7,
            owned: 10,
            token: "tok-1".into(),
            message: "7 of 10 would be disabled".into(),
        });
        let asked = |approval| Asked {
            sync_now: None,
            approval,
        };
        assert_eq!(
            due(&held, "f", asked(Some("tok-1")), hour, now),
            Ok(Trigger::Approved)
        );
        assert!(
            due(&held, "f", asked(Some("tok-0")), hour, now).is_err(),
            "a stale token"
        );
        assert!(due(&held, "f", asked(None), hour, now).is_err());
        let mut st = held.clone();
        note_wrong_approval(&mut st, Some("tok-0"), Some(3));
        let ready = crate::api::find_condition(&st.conditions, ct::READY).unwrap();
        assert_eq!(ready.reason, "AwaitingApproval");
        assert!(
            ready.message.contains("\"tok-0\", not the pending token"),
            "{}",
            ready.message
        );
        // Once run, the approval is used up: the same annotation does not run it again.
        let mut done = held;
        done.pending_approval = None;
        assert!(due(&done, "f", asked(Some("tok-1")), hour, now).is_err());
    }

    #[test]
    fn a_runs_notes_follow_its_condition_message() {
        let mut out = SyncOutcome {
            complete: true,
            ..Default::default()
        };
        out.notes.push("the app's contact scope is narrower".into());
        let (reason, message) = outcome_condition(&out);
        assert_eq!(reason, Reason::Synced);
        assert!(
            message.ends_with("unchanged; the app's contact scope is narrower"),
            "{message}"
        );
    }

    #[test]
    fn triggers() {
        let now = jiff::Timestamp::from_second(10_000).unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            due(
                &SyncTargetStatus::default(),
                "f",
                Asked::default(),
                hour,
                now
            ),
            Ok(Trigger::Created)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "g", Asked::default(), hour, now),
            Ok(Trigger::SpecChanged)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "f", Asked::default(), hour, now),
            Err(Duration::from_secs(2600))
        );
        assert_eq!(
            due(&synced_at(6_000, "f"), "f", Asked::default(), hour, now),
            Ok(Trigger::Interval)
        );
        assert_eq!(
            due(&synced_at(9_000, "f"), "f", now_asked("1"), hour, now),
            Ok(Trigger::Requested("1".into()))
        );
        let mut acted = synced_at(9_000, "f");
        acted.last_sync_request = Some("1".into());
        assert!(
            due(&acted, "f", now_asked("1"), hour, now).is_err(),
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
