//! Every run's report reaches the target's report ConfigMaps, the log and the status summary:
//! full syncs from the target's reconcile, event batches and Outbound polls from the runner.

use kube::{Resource, ResourceExt};

use super::{Context, SyncOutcome};
use crate::{
    api::{SyncTarget, SyncTargetStatus},
    report::{self, HeldDeletions, ReportFailure, RunKind, RunReport, store},
};

/// The report of a run whose outcome is `out`.
pub fn report_of(
    out: &SyncOutcome,
    run: RunKind,
    trigger: &str,
    (start, end): (jiff::Timestamp, jiff::Timestamp),
) -> RunReport {
    let s = &out.summary;
    let mut r = RunReport {
        run,
        trigger: trigger.to_string(),
        start_time: Some(start),
        end_time: Some(end),
        complete: out.complete,
        batches: u64::from(run == RunKind::Events),
        failures: out.failures.iter().map(ReportFailure::from).collect(),
        lacking: out.lacking.clone(),
        held: out.held.as_ref().map(|h| HeldDeletions {
            removals: h.removals,
            owned: h.owned,
            token: h.token.clone(),
            message: h.message.clone(),
            entries: out.held_removals.clone(),
        }),
        ..Default::default()
    };
    r.count([
        ("created", s.created),
        ("updated", s.updated),
        ("moved", s.moved),
        ("disabled", s.disabled),
        ("enabled", s.enabled),
        ("deleted", s.deleted),
        ("unchanged", s.unchanged),
    ]);
    r
}

/// The report of a run that could not complete.
pub fn failed_report(
    run: RunKind,
    trigger: &str,
    (start, end): (jiff::Timestamp, jiff::Timestamp),
    error: String,
) -> RunReport {
    RunReport {
        run,
        trigger: trigger.to_string(),
        start_time: Some(start),
        end_time: Some(end),
        error: Some(error),
        ..Default::default()
    }
}

/// Logs `new` (oldest first), adds it to the target's kept reports and sums the current
/// failures up in status. A report that cannot be written is logged, and status sums up
/// what this reconcile saw, so a failure is never only in a ConfigMap nobody could write.
pub async fn record(
    ctx: &Context,
    target: &SyncTarget,
    st: &mut SyncTargetStatus,
    new: Vec<RunReport>,
) {
    if new.is_empty() {
        return;
    }
    let ns = target.namespace().unwrap_or_default();
    let name = target.name_any();
    let label = format!("{ns}/{name}");
    let new = report::merge_event_reports(new);
    for r in &new {
        report::log(&label, r);
    }
    let owner = target.controller_owner_ref(&());
    let keep = target.spec.reports_kept();
    let written = store::append(&ctx.client, &ns, &name, owner.as_ref(), &new, keep).await;
    let summary = match written {
        Ok((cm, kept)) => {
            st.last_report = Some(cm);
            report::summarize_entries(&kept)
        }
        Err(e) => {
            tracing::warn!(target = %label, error = %e, "run report not written");
            let newest_first: Vec<RunReport> = new.into_iter().rev().collect();
            report::summarize(&newest_first)
        }
    };
    st.failures = summary.failures;
    st.failures_truncated = summary.truncated;
    st.failure_reasons = summary.reasons;
}
