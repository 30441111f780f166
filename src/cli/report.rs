//! What `plan` and `apply` print: per target, what DingTalk and the directory hold, and what
//! the run would change (plan) or changed (apply).

use crate::sync::{
    self, Op,
    lacking::{Lacking, Named},
    outbound,
};

/// People named per "without a mobile / email" list unless `--all` is given.
const LACKING_SHOWN: usize = 20;

/// What one side held: `(side, departments, people)` and, for a short read, why.
fn print_read((side, departments, people): (&str, usize, usize), incomplete: Option<String>) {
    let note = incomplete.unwrap_or_default();
    println!("  {side}: {departments} departments, {people} people{note}");
}

/// An Outbound run: what the directory holds and what was (or would be) pushed to DingTalk.
pub(super) fn print_outbound(
    name: &str,
    url: &str,
    node: &str,
    root: i64,
    r: &outbound::OutboundReport,
    written: bool,
) {
    println!("SyncTarget {name} (Outbound): {url} {node} -> DingTalk department {root}");
    let incomplete = format!(
        "; DingTalk read INCOMPLETE, no removals: {}",
        r.incomplete.join("; ")
    );
    let side = ("directory", r.departments, r.people);
    print_read(side, (!r.complete).then_some(incomplete));
    if let Some(h) = &r.held {
        println!("  HELD: {} (approve with token {})", h.message, h.token);
    }
    if written {
        println!(
            "  people: {} created, {} updated, {} moved, {} removed, {} kept, {} unchanged; departments: {} created, {} updated, {} deleted; {} DingTalk writes",
            r.created,
            r.updated,
            r.moved,
            r.deleted,
            r.kept,
            r.unchanged,
            r.departments_created,
            r.departments_updated,
            r.departments_deleted,
            r.writes
        );
    } else {
        println!(
            "  {} DingTalk writes pending; {} people unchanged, {} kept",
            r.pending, r.unchanged, r.kept
        );
        for line in &r.sample {
            println!("    {line}");
        }
    }
    for f in &r.failures {
        println!(
            "  FAILED {} {} {}: {} ({})",
            f.kind, f.id, f.name, f.message, f.reason
        );
    }
}

/// An Inbound apply: what DingTalk holds and what was written.
pub(super) fn print_report(name: &str, url: &str, node: &str, r: &sync::Report) {
    println!("SyncTarget {name}: {url} {node}");
    let incomplete = format!(
        " (INCOMPLETE read, {} removals held back: {})",
        r.suppressed_removals,
        r.incomplete.join("; ")
    );
    print_read(
        ("DingTalk", r.departments, r.people),
        (!r.complete).then_some(incomplete),
    );
    println!("  {}", counts(r));
    if let Some(held) = &r.held {
        println!("  HELD, nothing written: {}", held.message);
    }
    if let Some(roles) = &r.roles {
        println!("  {}", roles.summary());
    }
    for f in r.failures.iter().take(20) {
        println!("  FAILED {} {} ({}): {}", f.kind, f.id, f.reason, f.message);
    }
    let counts = (r.missing_mobile, r.missing_email);
    print_lacking(counts, &r.lacking, LACKING_SHOWN, "");
}

fn print_lacking(counts: (usize, usize), lacking: &Lacking, shown: usize, hint: &str) {
    for line in lacking_lines(counts, lacking, shown, hint) {
        println!("{line}");
    }
}

/// Who lacks a mobile and who lacks an email: each count, then the first `shown` of `lacking`
/// by userid, and how many more there are.
fn lacking_lines(
    (mobile, email): (usize, usize),
    lacking: &Lacking,
    shown: usize,
    hint: &str,
) -> Vec<String> {
    let mut out = vec![];
    for (what, count, people) in [
        ("a mobile", mobile, &lacking.mobile),
        ("an email", email, &lacking.email),
    ] {
        if count == 0 {
            continue;
        }
        out.push(format!("  without {what}: {count}"));
        let listed: Vec<&Named> = people.iter().take(shown).collect();
        out.extend(listed.iter().map(|p| format!("    {} {}", p.id, p.name)));
        if count > listed.len() {
            out.push(format!("    … and {} more{hint}", count - listed.len()));
        }
    }
    out
}

/// An Inbound plan: what DingTalk holds and every step the directory would take.
pub(super) fn print_plan(
    name: &str,
    url: &str,
    node: &str,
    snapshot: &crate::model::SourceSnapshot,
    plan: &sync::Plan,
    all: bool,
) {
    println!("SyncTarget {name}: {url} {node}");
    let incomplete = format!(" (INCOMPLETE read: {})", snapshot.incomplete.join("; "));
    let side = (
        "DingTalk",
        snapshot.departments.len(),
        snapshot.people.len(),
    );
    print_read(side, (!snapshot.complete).then_some(incomplete));
    println!("  {}", super::plan_view::summary(plan));
    if let Some(h) = &plan.held {
        println!(
            "  HELD: {} — approve with annotation dingsync.io/approve-deletions={}",
            h.message, h.token
        );
    }
    super::plan_view::print_tree(snapshot, plan, all);
    print_plan_tail(plan);
    let shown = if all { usize::MAX } else { LACKING_SHOWN };
    let lacking = Lacking::of(&snapshot.people, shown);
    let counts = (plan.missing_mobile, plan.missing_email);
    print_lacking(counts, &lacking, shown, " (--all lists them)");
}

/// Memberships, problems and removals left out, after the listed steps.
fn print_plan_tail(plan: &sync::Plan) {
    let members = |add: bool| -> usize {
        let count = |s: &&sync::Step| match &s.op {
            Op::AddMembers { people, .. } if add => people.len(),
            Op::RemoveMembers { people, .. } if !add => people.len(),
            _ => 0,
        };
        plan.steps.iter().map(|s| count(&s)).sum()
    };
    let (adds, removes) = (members(true), members(false));
    if adds + removes > 0 {
        println!("  memberships: +{adds} -{removes}");
    }
    for p in &plan.problems {
        println!(
            "  ! {} {} {}: {} ({})",
            p.kind, p.id, p.name, p.message, p.reason
        );
    }
    if plan.suppressed_removals > 0 {
        println!(
            "  {} disables/deletes left out: the DingTalk read was incomplete",
            plan.suppressed_removals
        );
    }
}

/// What an Inbound run did, in one line.
pub(super) fn counts(r: &sync::Report) -> String {
    format!(
        "created {}, updated {}, moved {}, disabled {}, enabled {}, deleted {}, unchanged {}, \
         failed {}; {} directory writes",
        r.created,
        r.updated,
        r.moved,
        r.disabled,
        r.enabled,
        r.deleted,
        r.unchanged,
        r.failures.len(),
        r.writes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lacking_lists_are_capped_with_how_many_more() {
        let named = |id: &str| Named {
            id: id.into(),
            name: format!("名{id}"),
        };
        let lacking = Lacking {
            mobile: vec![named("u1"), named("u2"), named("u3")],
            email: vec![],
        };
        // The report kept 3 of 5 without a mobile; 2 are shown.
        let lines = lacking_lines((5, 0), &lacking, 2, " (--all lists them)");
        assert_eq!(
            lines,
            [
                "  without a mobile: 5",
                "    u1 名u1",
                "    u2 名u2",
                "    … and 3 more (--all lists them)"
            ]
        );
        assert!(lacking_lines((0, 0), &Lacking::default(), 20, "").is_empty());
    }
}
