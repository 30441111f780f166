//! A run's report, as the controller writes it into status.

use crate::{
    api::target::{Failure, PendingApproval, PlanSummary, RunSummary},
    controller::{
        SyncOutcome,
        reports::{failed_report, report_of},
    },
    report::{RunKind, RunReport},
    sync::{self, Verb, outbound},
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
            dn: f.locator.as_deref().map(str::to_owned),
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

/// Both directions' reports name what every run reports alike: one call reads it from either.
macro_rules! common {
    ($r:expr) => {{
        let counts = [$r.created, $r.updated, $r.moved, $r.deleted, $r.unchanged];
        let held = $r.held.as_ref();
        reported(
            &$r.failures,
            $r.people,
            $r.departments,
            $r.complete,
            held,
            counts,
        )
    }};
}

/// An Outbound run's report as the controller writes it into status.
pub fn outbound_outcome(r: &outbound::OutboundReport) -> SyncOutcome {
    common!(r)
}

fn n(x: usize) -> i64 {
    x as i64
}

/// What every run reports, whichever its direction.
fn reported(
    failures: &[sync::Failure],
    people: usize,
    departments: usize,
    complete: bool,
    held: Option<&sync::Held>,
    [created, updated, moved, deleted, unchanged]: [usize; 5],
) -> SyncOutcome {
    SyncOutcome {
        summary: RunSummary {
            created: n(created),
            updated: n(updated),
            moved: n(moved),
            deleted: n(deleted),
            unchanged: n(unchanged),
            failed: n(failures.len()),
            ..Default::default()
        },
        failures: failures_of(failures),
        people: n(people),
        departments: n(departments),
        complete,
        held: held.map(held_of),
        plan: None,
        notes: vec![],
        lacking: Default::default(),
        held_removals: vec![],
    }
}

/// A run report as the controller writes it into status.
pub fn outcome(r: &sync::Report) -> SyncOutcome {
    let base = common!(r);
    let plan = &r.plan;
    SyncOutcome {
        summary: RunSummary {
            disabled: n(r.disabled),
            enabled: n(r.enabled),
            missing_mobile: n(r.missing_mobile),
            missing_email: n(r.missing_email),
            ..base.summary
        },
        lacking: crate::report::LackingReport::of(r.missing_mobile, r.missing_email, &r.lacking),
        held_removals: held_removals(r),
        plan: Some(PlanSummary {
            create: n(plan.count(Verb::Create)),
            update: n(plan.count(Verb::Update) + plan.count(Verb::Link)),
            moves: n(plan.count(Verb::Move)),
            disable: n(plan.count(Verb::Disable)),
            enable: n(plan.count(Verb::Enable)),
            delete: n(plan.count(Verb::Delete)),
            sample: plan
                .steps
                .iter()
                .take(20)
                .map(|s| format!("{} {}: {}", s.op.verb(), s.label, s.reason))
                .collect(),
        }),
        ..base
    }
}

/// Removals a held run lists, at most this many (a report stays within its pages).
const HELD_LISTED: usize = 10_000;

/// The disables and deletes a held run would have made, one line each.
fn held_removals(r: &sync::Report) -> Vec<String> {
    if r.held.is_none() {
        return vec![];
    }
    (r.plan.steps.iter())
        .filter(|s| matches!(s.op.verb(), Verb::Disable | Verb::Delete))
        .take(HELD_LISTED)
        .map(|s| format!("{} {}", s.op.verb(), s.label))
        .collect()
}

/// An event batch's report, as the target's reconcile keeps it.
pub fn batch_report(b: &sync::events::BatchRecord) -> RunReport {
    let times = (timestamp(b.started), timestamp(b.ended));
    match &b.result {
        Ok(r) => report_of(&outcome(r), RunKind::Events, "Event", times),
        Err(e) => failed_report(RunKind::Events, "Event", times, e.clone()),
    }
}

fn timestamp(t: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_batch_becomes_an_events_report_naming_its_failures() {
        let now = std::time::SystemTime::now();
        let report = sync::Report {
            updated: 1,
            complete: true,
            failures: vec![sync::Failure {
                kind: sync::ObjectKind::User,
                id: "u2".into(),
                name: "张三".into(),
                reason: "TemplateError".into(),
                message: "employeeNumber: invalid value".into(),
                locator: Some("uid=zhangsan,ou=people,dc=example,dc=com".into()),
            }],
            ..Default::default()
        };
        let batch = sync::events::BatchRecord {
            started: now,
            ended: now,
            result: Ok(report),
        };
        let r = batch_report(&batch);
        assert_eq!(
            (r.run, r.trigger.as_str(), r.batches),
            (RunKind::Events, "Event", 1)
        );
        assert_eq!(r.counts.get("updated"), Some(&1));
        assert_eq!(r.failures[0].id, "u2");
        assert_eq!(r.failures[0].name, "张三");
        assert_eq!(
            r.failures[0].dn.as_deref(),
            Some("uid=zhangsan,ou=people,dc=example,dc=com"),
            "the entry's DN reaches the report"
        );
        let failed = sync::events::BatchRecord {
            result: Err("directory unavailable".into()),
            ..batch
        };
        assert_eq!(
            batch_report(&failed).error.as_deref(),
            Some("directory unavailable")
        );
    }
}
