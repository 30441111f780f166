//! The directory side of an incremental run: only the entries the batch touches, read by
//! anchor — the people named, the departments named, the departments the re-read records sit
//! in or under, and (for people without an entry yet) the unlinked entries their match
//! values find and the account names their homonym suffixes would check. Planned from these,
//! the batch gets the plan a read of the whole node would give it.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{SyncError, plan};
use crate::{
    directory::{Anchors, Attrs, Directory, Snapshot},
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
    let mut current = dir.read_some(&touched(&read, changes, mapping)).await?;
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

/// The anchors a batch touches: its people, its departments and their parents, the
/// departments its people are (to be) in, and the people their references (`refersTo`) name,
/// whose entries say where those point. The departments people leave come with the people.
fn touched(read: &SourceSnapshot, changes: &Changes, mapping: &Mapping) -> Anchors {
    let mut people = changes.people.clone();
    people.extend(read.people.iter().map(|p| p.id.clone()));
    // A template error is the plan's to report; it names no one.
    for p in &read.people {
        for (_, ids) in mapping.person_references(p).unwrap_or_default() {
            people.extend(ids);
        }
    }
    for d in &read.departments {
        for (_, ids) in mapping.department_references(d).unwrap_or_default() {
            people.extend(ids);
        }
    }
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

/// `changes` with the records whose references point at the entry of a person it names: a
/// rename, move or departure changes what they should hold, though no event names them.
/// Reports are found in the directory (DingTalk cannot list a manager's reports); the
/// departments a person may head are those they are a member of (DingTalk's heads are
/// members), re-read for their heads.
pub(super) async fn with_referrers(
    dir: &dyn Directory,
    mapping: &Mapping,
    changes: &Changes,
    ou_tree: bool,
) -> Result<Changes, SyncError> {
    let attrs: Vec<String> = (mapping.person_reference_attributes())
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let mut out = changes.clone();
    if ou_tree && mapping.has_references() && !changes.departments.is_empty() {
        let dept_attrs: Vec<String> = (mapping.department_reference_attributes())
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let node = dir.read().await?;
        let (people, depts) = referring_into(&node, &attrs, &dept_attrs, &changes.departments);
        out.people.extend(people);
        out.departments.extend(depts);
    }
    if !mapping.has_references() || changes.people.is_empty() {
        return Ok(out);
    }
    let named = Anchors {
        people: changes.people.clone(),
        ..Default::default()
    };
    let named = dir.read_some(&named).await?;
    if mapping.has_department_references() {
        for p in &named.people {
            out.departments.extend(p.departments.iter().cloned());
        }
    }
    let held: BTreeSet<(String, String)> = (named.people.iter())
        .flat_map(|p| attrs.iter().map(|a| (a.clone(), p.key.clone())))
        .collect();
    if held.is_empty() {
        return Ok(out);
    }
    let holders = Anchors {
        held,
        ..Default::default()
    };
    let found = dir.read_some(&holders).await?;
    out.people
        .extend(found.people.into_iter().filter_map(|p| p.id));
    Ok(out)
}

/// `OuTree`: the people and departments whose references (`attrs`, `dept_attrs`) point at
/// someone inside the departments `named` (their OUs may be renamed or moved, and every DN
/// inside with them), the people pointed at, and the departments between those people and
/// the named ones. Needs the whole node: a DN value cannot be searched by its suffix.
fn referring_into<'a>(
    node: &'a Snapshot,
    attrs: &[String],
    dept_attrs: &[String],
    named: &BTreeSet<String>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let parents: HashMap<&'a str, Option<&'a str>> = (node.departments.iter())
        .map(|d| (d.id.as_str(), d.parent.as_deref()))
        .collect();
    // The departments from a container up to the named one holding it, if one does: the
    // plan needs the whole chain read to see that the person inside moves.
    let inside = |mut d: Option<&'a str>| {
        let mut chain = Vec::new();
        while let Some(id) = d {
            chain.push(id);
            if named.contains(id) {
                return Some(chain);
            }
            d = parents.get(id).copied().flatten();
        }
        None
    };
    let moving: HashMap<String, (&str, Vec<&str>)> = (node.people.iter())
        .filter_map(|p| {
            let chain = inside(p.container.as_deref())?;
            Some((p.key.to_lowercase(), (p.id.as_deref()?, chain)))
        })
        .collect();
    let mut people = BTreeSet::new();
    let mut chains = BTreeSet::new();
    let mut pointing = |attrs: &Attrs, names: &[String]| {
        let mut found = false;
        for v in names
            .iter()
            .flat_map(|a| attrs.get(a).into_iter().flatten())
        {
            if let Some((target, chain)) = moving.get(&v.to_lowercase()) {
                people.insert(target.to_string());
                chains.extend(chain.iter().map(|d| d.to_string()));
                found = true;
            }
        }
        found
    };
    let mut referring = BTreeSet::new();
    for p in &node.people {
        if let Some(id) = &p.id
            && pointing(&p.attrs, attrs)
        {
            referring.insert(id.clone());
        }
    }
    let mut depts: BTreeSet<String> = (node.departments.iter())
        .filter(|d| pointing(&d.attrs, dept_attrs))
        .map(|d| d.id.clone())
        .collect();
    people.extend(referring);
    depts.extend(chains);
    (people, depts)
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
