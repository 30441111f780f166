//! The directory side of an incremental run: only the entries the batch touches, read by
//! anchor — the people named, the departments named, the departments the re-read records sit
//! in or under, and (for people without an entry yet) the unlinked entries their match
//! values find and the account names their homonym suffixes would check. Planned from these,
//! the batch gets the plan a read of the whole node would give it.

use std::collections::{BTreeSet, HashSet};

use super::{SyncError, plan};
use crate::{
    directory::{Anchors, Directory, Snapshot},
    mapping::Mapping,
    model::{Changes, SourceSnapshot},
};

/// Look-up rounds before a batch settles for a read of the whole node (a long run of
/// homonyms whose names are all taken; each round looks several suffixes ahead).
const MAX_ROUNDS: usize = 16;

/// The changed records, normalised against the departments in the node, and the entries of
/// the node they touch.
pub(super) async fn read(
    dir: &dyn Directory,
    read: SourceSnapshot,
    changes: &Changes,
    mapping: &Mapping,
) -> Result<(SourceSnapshot, Snapshot), SyncError> {
    let mut current = dir.read_some(&touched(&read, changes)).await?;
    let known: HashSet<String> = current.departments.iter().map(|d| d.id.clone()).collect();
    // Every department the records name was asked for: `known` decides for them exactly as
    // the node's full list would.
    let snapshot = read.normalise_within(&known);
    let mut asked = Anchors::default();
    for _ in 0..MAX_ROUNDS {
        let more = plan::lookups(&snapshot, &current, mapping, &asked);
        if more.is_empty() {
            return Ok((snapshot, current));
        }
        merge(&mut current, dir.read_some(&more).await?);
        asked.values.extend(more.values);
        asked.names.extend(more.names);
    }
    Ok((snapshot, dir.read().await?))
}

/// The anchors a batch touches: its people, its departments and their parents, and the
/// departments its people are (to be) in. The departments people leave come with the people.
fn touched(read: &SourceSnapshot, changes: &Changes) -> Anchors {
    let mut people = changes.people.clone();
    people.extend(read.people.iter().map(|p| p.id.clone()));
    let mut departments: BTreeSet<String> = changes.departments.clone();
    for d in &read.departments {
        departments.insert(d.id.clone());
        departments.extend(d.parent.clone());
    }
    for p in &read.people {
        departments.extend(p.departments.iter().cloned());
        departments.extend(p.main_department.clone());
    }
    Anchors {
        people,
        departments,
        ..Default::default()
    }
}

/// Add a later round's entries to what was read, each entry once.
fn merge(into: &mut Snapshot, more: Snapshot) {
    let keys: HashSet<String> = (into.people.iter().chain(&into.unlinked))
        .map(|p| p.key.clone())
        .collect();
    into.people
        .extend(more.people.into_iter().filter(|p| !keys.contains(&p.key)));
    into.unlinked
        .extend(more.unlinked.into_iter().filter(|p| !keys.contains(&p.key)));
    let depts: HashSet<String> = into.departments.iter().map(|d| d.id.clone()).collect();
    into.departments.extend(
        more.departments
            .into_iter()
            .filter(|d| !depts.contains(&d.id)),
    );
    let skipped: HashSet<String> = into.skipped.iter().map(|(dn, _)| dn.clone()).collect();
    into.skipped.extend(
        more.skipped
            .into_iter()
            .filter(|(dn, _)| !skipped.contains(dn)),
    );
    into.taken_names.extend(more.taken_names);
    into.taken_names.sort();
    into.taken_names.dedup();
}
