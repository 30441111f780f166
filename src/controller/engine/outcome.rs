//! A run's report, as the controller writes it into status.

use crate::{
    api::target::{Failure, PendingApproval, PlanSummary, RunSummary},
    controller::SyncOutcome,
    sync::{self, outbound},
};

fn failures_of(failures: &[sync::Failure]) -> Vec<Failure> {
    failures
        .iter()
        .map(|f| Failure {
            kind: f.kind.into(),
            id: f.id.clone(),
            name: Some(f.name.clone()),
            reason: f.reason.clone(),
            message: f.message.clone(),
        })
        .collect()
}

fn held_of(h: &sync::Held) -> PendingApproval {
    PendingApproval {
        removals: h.removals as i64,
        owned: h.owned as i64,
        token: h.token.clone(),
        message: h.message.clone(),
    }
}

pub fn outbound_outcome(r: &outbound::OutboundReport) -> SyncOutcome {
    let n = |x: usize| x as i64;
    SyncOutcome {
        summary: RunSummary {
            created: n(r.created),
            updated: n(r.updated),
            moved: n(r.moved),
            deleted: n(r.deleted),
            unchanged: n(r.unchanged),
            failed: n(r.failures.len()),
            ..Default::default()
        },
        failures: failures_of(&r.failures),
        people: n(r.people),
        departments: n(r.departments),
        complete: r.complete,
        held: r.held.as_ref().map(held_of),
        plan: None,
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
        failures: failures_of(&r.failures),
        people: n(r.people),
        departments: n(r.departments),
        complete: r.complete,
        held: r.held.as_ref().map(held_of),
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
