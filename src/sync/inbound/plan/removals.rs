//! Removals: people who left DingTalk (or the scope) disabled, deleted or only taken out of
//! their groups, as the deletion policy says; departments gone from the source deleted
//! children first, each group emptied before it goes.

use std::{
    cmp::Reverse,
    collections::{HashMap, HashSet},
};

use super::{Draft, Members, Op, Options, Step, names::UniqueNames};
use crate::{
    api::target::DeletionPolicy,
    directory::{DeptEntry, Snapshot},
    model::{Changes, SourceSnapshot},
    sync::depth,
};

/// Anchored entries whose person is gone from the source (or, for an incremental run, was
/// named and is gone).
pub(super) fn plan_leavers(
    source: &SourceSnapshot,
    dir: &Snapshot,
    scope: Option<&Changes>,
    opts: &Options,
    names: &UniqueNames,
    draft: &mut Draft,
) {
    // Everyone the source has, including people whose templates failed: never leavers.
    let in_source: HashSet<&str> = source.people.iter().map(|p| p.id.as_str()).collect();
    for e in &dir.people {
        let Some(id) = e.id.as_deref() else { continue };
        if in_source.contains(id) || scope.is_some_and(|c| !c.people.contains(id)) {
            continue;
        }
        let label = format!("{} ({})", names.current(e).unwrap_or_default(), id);
        let op = match opts.policy {
            DeletionPolicy::Disable if !e.disabled => Op::DisablePerson { id: id.into() },
            DeletionPolicy::Disable => continue,
            DeletionPolicy::Delete | DeletionPolicy::Retain => {
                for d in &e.departments {
                    draft.members.remove(d, id);
                }
                if opts.policy == DeletionPolicy::Retain {
                    continue;
                }
                Op::DeletePerson { id: id.into() }
            }
        };
        draft.removals.push(Step {
            op,
            label,
            reason: "left DingTalk or the scope".into(),
        });
    }
}

/// Departments gone from the source (or, for an incremental run, named and gone), children
/// before parents. `Retain` keeps them.
pub(super) fn plan_gone_departments(
    source: &SourceSnapshot,
    dir: &Snapshot,
    in_dir: &HashMap<&str, &DeptEntry>,
    scope: Option<&Changes>,
    opts: &Options,
    draft: &mut Draft,
) {
    if opts.policy == DeletionPolicy::Retain {
        return;
    }
    let in_source: HashSet<&str> = source.departments.iter().map(|d| d.id.as_str()).collect();
    let mut gone: Vec<&DeptEntry> = dir
        .departments
        .iter()
        .filter(|d| !in_source.contains(d.id.as_str()))
        .filter(|d| scope.is_none_or(|c| c.departments.contains(&d.id)))
        .collect();
    gone.sort_by_key(|d| {
        Reverse(depth(d.parent.as_deref(), |p| {
            in_dir.get(p).and_then(|x| x.parent.as_deref())
        }))
    });
    empty_groups(dir, &gone, &mut draft.members);
    for d in gone {
        draft.removals.push(Step {
            op: Op::DeleteDept { id: d.id.clone() },
            label: format!("{} ({})", d.name, d.id),
            reason: "removed from DingTalk or the scope".into(),
        });
    }
}

/// A group is emptied before it is deleted: every member not already leaving it is removed.
/// One pass over the people, not one per group.
fn empty_groups(dir: &Snapshot, gone: &[&DeptEntry], members: &mut Members) {
    let gone_ids: HashSet<&str> = gone.iter().map(|d| d.id.as_str()).collect();
    if gone_ids.is_empty() {
        return;
    }
    let extra: Vec<(String, String)> = {
        let mut queued: HashSet<(&str, &str)> = members
            .remove
            .iter()
            .flat_map(|(d, ids)| ids.iter().map(move |i| (d.as_str(), i.as_str())))
            .collect();
        let mut extra = vec![];
        for p in &dir.people {
            let Some(id) = p.id.as_deref() else { continue };
            for d in &p.departments {
                if gone_ids.contains(d.as_str()) && queued.insert((d.as_str(), id)) {
                    extra.push((d.clone(), id.to_string()));
                }
            }
        }
        extra
    };
    for (d, id) in extra {
        members.remove.entry(d).or_default().push(id);
    }
}
