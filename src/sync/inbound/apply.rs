//! Applying an inbound plan to the directory: phase by phase, concurrently within a phase,
//! a failed object skipped by what depends on it, and the report tallied as steps land.

use std::{collections::HashSet, sync::Mutex};

use futures::{StreamExt, stream};

use super::plan::{Op, Plan, Step};
use crate::{
    directory::{Attrs, Directory, DirectoryError, Name},
    model::SourceSnapshot,
    sync::{
        Failure, ObjectKind, ProgressFn, Report, SyncError,
        lacking::{Lacking, REPORT_CAP},
    },
};

/// Gates passed (or not), apply unless dry, and report.
pub(super) async fn finish(
    dir: &dyn Directory,
    snapshot: SourceSnapshot,
    plan: Plan,
    dry_run: bool,
    progress: ProgressFn<'_>,
) -> Result<Report, SyncError> {
    let writes_before = dir.writes();
    let lacking = Lacking::of(&snapshot.people, REPORT_CAP);
    // The plan carries everything the writes need: the source's records go now, not after
    // the (long) apply.
    let SourceSnapshot {
        complete,
        incomplete,
        ..
    } = snapshot;
    let mut report = Report {
        complete,
        incomplete,
        missing_mobile: plan.missing_mobile,
        missing_email: plan.missing_email,
        lacking,
        people: plan.people,
        departments: plan.departments,
        suppressed_removals: plan.suppressed_removals,
        held: plan.held.clone(),
        unchanged: plan.unchanged_people + plan.unchanged_departments,
        ..Default::default()
    };
    for p in &plan.problems {
        report.failures.push(Failure {
            kind: p.kind,
            id: p.id.clone(),
            name: p.name.clone(),
            reason: p.reason.into(),
            message: p.message.clone(),
            locator: locate(dir, p.kind, &p.id),
        });
    }
    if !dry_run && plan.held.is_none() {
        apply(dir, &plan, &mut report, progress).await?;
    } else {
        tally(&plan.steps, &mut report);
    }
    report.writes = dir.writes() - writes_before;
    report.plan = plan;
    Ok(report)
}

fn tally(steps: &[Step], report: &mut Report) {
    let mut people_updated: HashSet<&str> = HashSet::new();
    for s in steps {
        match &s.op {
            Op::CreateDept { .. } | Op::CreatePerson { .. } => report.created += 1,
            Op::MoveDept { .. } | Op::MovePerson { .. } => report.moved += 1,
            Op::UpdatePerson { id, .. } | Op::ReferPerson { id, .. } => {
                if people_updated.insert(id) {
                    report.updated += 1;
                }
            }
            Op::UpdateDept { .. } | Op::ReferDept { .. } | Op::LinkPerson { .. } => {
                report.updated += 1
            }
            Op::EnablePerson { .. } => report.enabled += 1,
            Op::DisablePerson { .. } => report.disabled += 1,
            Op::DeletePerson { .. } | Op::DeleteDept { .. } => report.deleted += 1,
            Op::AddMembers { .. } | Op::RemoveMembers { .. } => {}
        }
    }
}

/// Apply the plan phase by phase; within a phase, up to the directory's
/// [`Directory::write_concurrency`] operations at once. A failed object is recorded and
/// skipped later; a lost connection stops the run.
async fn apply(
    dir: &dyn Directory,
    plan: &Plan,
    report: &mut Report,
    progress: ProgressFn<'_>,
) -> Result<(), SyncError> {
    let failed: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let total = plan.steps.len();
    let mut done = 0usize;
    let mut phase_start = 0;
    let width = dir.write_concurrency().max(1);
    // Said at the start too, so a reader timing the phases sees when writing began.
    progress("Applying", 0, Some(total));
    while phase_start < total {
        let phase = plan.steps[phase_start].op.phase();
        let end = plan.steps[phase_start..]
            .iter()
            .position(|s| s.op.phase() != phase)
            .map_or(total, |i| phase_start + i);
        let batch = &plan.steps[phase_start..end];
        for (group, width) in schedule(batch, phase, width) {
            // Futures are made as slots free up, not all at once: a phase can hold 100,000.
            let mut results = stream::iter(
                group
                    .into_iter()
                    .map(|i| run_step(dir, i, &batch[i], &failed)),
            )
            .buffer_unordered(width);
            while let Some((i, r)) = results.next().await {
                let step = &batch[i];
                match r {
                    Ok(()) => tally(std::slice::from_ref(step), report),
                    Err(e) if e.is_per_object() => {
                        let (kind, id) = step.op.subject();
                        let mut set = failed.lock().expect("failed set");
                        set.insert(format!("{kind}:{id}"));
                        if matches!(step.op, Op::CreatePerson { .. } | Op::LinkPerson { .. }) {
                            set.insert(absent_key(id));
                        }
                        drop(set);
                        report.failures.push(Failure {
                            kind,
                            id: id.to_string(),
                            name: step.label.clone(),
                            reason: "DirectoryRejected".into(),
                            message: format!("{} failed: {e}", step.op.verb()),
                            locator: locate(dir, kind, id),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        done += batch.len();
        progress("Applying", done, Some(total));
        phase_start = end;
    }
    Ok(())
}

/// How one phase runs: groups of step indices, each finished (and its failures recorded)
/// before the next starts, with how many of the group may run at once (up to `width`).
///
/// Unordered phases run concurrently, except that two operations on one object (a person's
/// move to another OU and their attribute update) never run at once: each would look the
/// entry up where the other is moving it from. The second goes in a later group. In the
/// department phases order matters: a
/// run of department creates goes in waves (a department after its parent's wave, and after
/// an earlier sibling of the same name, so which of two clashing names wins does not depend
/// on timing); every other department operation (a move or rename may free or take a name
/// a later one needs) runs alone, in plan order.
fn schedule(batch: &[Step], phase: u8, width: usize) -> Vec<(Vec<usize>, usize)> {
    if !Op::is_ordered_phase(phase) {
        let mut seen: std::collections::HashMap<(ObjectKind, &str), usize> = Default::default();
        let mut groups: Vec<(Vec<usize>, usize)> = vec![];
        for (i, step) in batch.iter().enumerate() {
            let nth = seen.entry(step.op.subject()).or_default();
            if groups.len() <= *nth {
                groups.push((vec![], width));
            }
            groups[*nth].0.push(i);
            *nth += 1;
        }
        return groups;
    }
    let mut groups: Vec<(Vec<usize>, usize)> = vec![];
    let mut i = 0;
    while i < batch.len() {
        if !matches!(batch[i].op, Op::CreateDept { .. }) {
            groups.push((vec![i], 1));
            i += 1;
            continue;
        }
        // A run of creates, parents before children (the plan's order).
        let mut wave_of: std::collections::HashMap<&str, usize> = Default::default();
        let mut name_wave: std::collections::HashMap<(Option<&str>, String), usize> =
            Default::default();
        let mut waves: Vec<Vec<usize>> = vec![];
        while let Some(Step {
            op: Op::CreateDept {
                id, name, parent, ..
            },
            ..
        }) = batch.get(i)
        {
            let after_parent = parent
                .as_deref()
                .and_then(|p| wave_of.get(p))
                .map_or(0, |w| w + 1);
            let key = (parent.as_deref(), name.to_lowercase());
            let after_namesake = name_wave.get(&key).map_or(0, |w| w + 1);
            let wave = after_parent.max(after_namesake);
            wave_of.insert(id, wave);
            name_wave.insert(key, wave);
            if waves.len() <= wave {
                waves.resize_with(wave + 1, Vec::new);
            }
            waves[wave].push(i);
            i += 1;
        }
        groups.extend(waves.into_iter().map(|w| (w, width)));
    }
    groups
}

async fn run_step(
    dir: &dyn Directory,
    i: usize,
    step: &Step,
    failed: &Mutex<HashSet<String>>,
) -> (usize, Result<(), DirectoryError>) {
    let trimmed = {
        let failed = failed.lock().expect("failed set");
        if let Some(why) = blocked_by(&step.op, &failed) {
            return (i, Err(DirectoryError::Rejected(why)));
        }
        without_absent_members(&step.op, &failed)
    };
    match trimmed {
        None => (i, execute(dir, &step.op).await),
        // Everyone in the batch failed earlier: nothing left to write.
        Some(Op::AddMembers { people, .. }) if people.is_empty() => (i, Ok(())),
        Some(op) => (i, execute(dir, &op).await),
    }
}

/// Key of a person whose entry could not be created or linked in this run.
fn absent_key(id: &str) -> String {
    format!("absent:{id}")
}

/// A membership batch without the people whose entries do not exist because their create or
/// link failed earlier in this run, so one rejected person never costs the others their group.
/// `None` when nothing is left out.
fn without_absent_members(op: &Op, failed: &HashSet<String>) -> Option<Op> {
    let Op::AddMembers { dept, people } = op else {
        return None;
    };
    if !people.iter().any(|p| failed.contains(&absent_key(p))) {
        return None;
    }
    Some(Op::AddMembers {
        dept: dept.clone(),
        people: people
            .iter()
            .filter(|p| !failed.contains(&absent_key(p)))
            .cloned()
            .collect(),
    })
}

/// An operation whose object (or the department it needs) already failed in this run.
fn blocked_by(op: &Op, failed: &HashSet<String>) -> Option<String> {
    let (kind, id) = op.subject();
    if failed.contains(&format!("{kind}:{id}")) {
        return Some(format!(
            "skipped: an earlier operation on {kind} {id} failed"
        ));
    }
    match op {
        Op::CreateDept {
            parent: Some(p), ..
        }
        | Op::MoveDept {
            parent: Some(p), ..
        } if failed.contains(&format!("Department:{p}")) => {
            Some(format!("skipped: parent department {p} failed"))
        }
        _ => None,
    }
}

async fn execute(dir: &dyn Directory, op: &Op) -> Result<(), DirectoryError> {
    match op {
        Op::CreateDept {
            id,
            name,
            parent,
            attrs,
        } => dir.create_dept(id, name, parent.as_deref(), attrs).await,
        Op::MoveDept { id, name, parent } => dir.move_dept(id, name, parent.as_deref()).await,
        Op::UpdateDept { id, changes } => dir.update_dept(id, changes).await,
        Op::LinkPerson { key, id } => dir.link_person(key, id).await,
        Op::CreatePerson {
            id,
            attrs,
            main_dept,
        } => dir.create_person(id, attrs, main_dept.as_deref()).await,
        Op::UpdatePerson { id, changes } => dir.update_person(id, changes).await,
        Op::MovePerson {
            id,
            name,
            main_dept,
        } => dir.move_person(id, name, main_dept).await,
        Op::EnablePerson { id } => dir.enable_person(id).await,
        Op::AddMembers { dept, people } => dir.add_members(dept, people).await,
        Op::RemoveMembers { dept, people } => dir.remove_members(dept, people).await,
        Op::DisablePerson { id } => dir.disable_person(id).await,
        Op::DeletePerson { id } => dir.delete_person(id).await,
        Op::DeleteDept { id } => dir.delete_dept(id).await,
        Op::ReferPerson { id, attr, to } => dir.update_person(id, &located(dir, attr, to)?).await,
        Op::ReferDept { id, attr, to } => dir.update_dept(id, &located(dir, attr, to)?).await,
    }
}

/// A reference attribute's values: the entries of the people `to` names, located now (an
/// entry created or renamed earlier in this run is found under its new locator).
fn located(dir: &dyn Directory, attr: &Name, to: &[String]) -> Result<Attrs, DirectoryError> {
    let values = (to.iter())
        .map(|id| {
            dir.locate_person(id).ok_or_else(|| {
                DirectoryError::Rejected(format!("{attr}: person {id} has no entry to point at"))
            })
        })
        .collect::<Result<Vec<String>, _>>()?;
    let mut attrs = Attrs::new();
    attrs.insert(attr, values);
    Ok(attrs)
}

/// A failed person's entry as the directory indexes it, for the report.
fn locate(dir: &dyn Directory, kind: ObjectKind, id: &str) -> Option<Box<str>> {
    (kind == ObjectKind::User)
        .then(|| dir.locate_person(id))
        .flatten()
        .map(String::into_boxed_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(id: &str, name: &str, parent: Option<&str>) -> Step {
        Step {
            op: Op::CreateDept {
                id: id.into(),
                name: name.into(),
                parent: parent.map(Into::into),
                attrs: Default::default(),
            },
            label: id.into(),
            reason: "new in DingTalk".into(),
        }
    }

    #[test]
    fn department_creates_run_in_waves_and_other_department_steps_alone() {
        let steps = vec![
            create("1", "Acme", None),
            create("2", "Sales", Some("1")),
            create("3", "R&D", Some("1")),
            create("4", "East", Some("2")),
            // Same name under the same parent as "2": after it, never beside it.
            create("5", "sales", Some("1")),
            create("6", "Other", Some("9")),
            Step {
                op: Op::MoveDept {
                    id: "9".into(),
                    name: "Old".into(),
                    parent: None,
                },
                label: "9".into(),
                reason: "moved in DingTalk".into(),
            },
            create("7", "Child", Some("6")),
        ];
        let groups = schedule(&steps, 0, 8);
        assert_eq!(
            groups,
            vec![
                (vec![0, 5], 8),
                (vec![1, 2], 8),
                (vec![3, 4], 8),
                (vec![6], 1),
                (vec![7], 8),
            ]
        );
        let people: Vec<Step> = (0..3)
            .map(|i| Step {
                op: Op::EnablePerson { id: i.to_string() },
                label: String::new(),
                reason: "".into(),
            })
            .collect();
        assert_eq!(schedule(&people, 2, 32), vec![(vec![0, 1, 2], 32)]);
        // A person moved and updated: the update waits for the move.
        let mut both = people.clone();
        both.insert(
            1,
            Step {
                op: Op::MovePerson {
                    id: "2".into(),
                    name: "x".into(),
                    main_dept: "7".into(),
                },
                label: String::new(),
                reason: "".into(),
            },
        );
        assert_eq!(
            schedule(&both, 2, 32),
            vec![(vec![0, 1, 2], 32), (vec![3], 32)]
        );
    }
}
