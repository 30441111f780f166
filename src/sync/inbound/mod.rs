//! Inbound: DingTalk (a [`Source`]) kept in step in a directory node. Read both sides, plan
//! (`plan`: the diff and its gates), apply (`apply`), report.

mod apply;
pub mod plan;
pub mod roles;
mod targeted;

use std::collections::HashSet;

use self::{apply::finish, plan::Options};
use super::{ProgressFn, Report, Source, SyncError};
use crate::{
    directory::{Anchors, Directory},
    mapping::Mapping,
    model::{Changes, DeptTree, SourceSnapshot},
};
use plan::Plan;

/// Past this many people to re-read after a lean read, the whole node is read instead: a
/// targeted read costs a few searches per person.
const REFINE_BY_ANCHOR: usize = 2_000;

/// Read both sides and compute the plan, writing nothing.
pub async fn compute(
    source: &dyn Source,
    dir: &dyn Directory,
    mapping: &Mapping,
    opts: &Options,
    progress: ProgressFn<'_>,
) -> Result<(SourceSnapshot, Plan), SyncError> {
    progress("ReadingSource", 0, None);
    let mut snapshot = source.read().await?.normalise();
    snapshot.fill_department_data(&DeptTree::default(), mapping.reads_dept_names());
    progress("ReadingDirectory", snapshot.people.len(), None);
    // Lean: each anchored entry's owned attributes as a digest, not their values.
    let current = dir.read_lean(&plan::digested(mapping)).await?;
    progress("Planning", 0, None);
    let mut plan = plan::plan(&snapshot, &current, mapping, opts);
    drop(current);
    if plan.unverified.len() > REFINE_BY_ANCHOR {
        // Many differ (a mapping change): one read of the node beats a search per person.
        plan.refine(&dir.read().await?);
    } else if !plan.unverified.is_empty() {
        // The few whose digests differ, read in full to say what changed.
        let anchors = Anchors {
            people: plan.unverified.iter().cloned().collect(),
            ..Default::default()
        };
        plan.refine(&dir.read_some(&anchors).await?);
    }
    Ok((snapshot, plan))
}

/// One full run: plan, gates, apply, report. With `dry_run` nothing is written.
pub async fn run(
    source: &dyn Source,
    dir: &dyn Directory,
    mapping: &Mapping,
    opts: &Options,
    dry_run: bool,
    progress: ProgressFn<'_>,
) -> Result<Report, SyncError> {
    let (snapshot, plan) = compute(source, dir, mapping, opts, progress).await?;
    let mut report = finish(dir, snapshot, plan, dry_run, progress).await?;
    if opts.roles {
        progress("Roles", 0, None);
        roles::sync_roles(source, dir, opts, dry_run, &mut report).await?;
    }
    Ok(report)
}

/// Read the changed records and what of the directory they touch, and plan only what
/// `changes` names, writing nothing. Departments already in the node stay valid parents and
/// groups. The directory is read by anchor ([`Directory::read_some`]), so the run costs in
/// proportion to the batch; a plan that disables or deletes is made again from a read of the
/// whole node, since the deletion gate weighs removals against the node's whole population.
pub async fn compute_changed(
    source: &dyn Source,
    dir: &dyn Directory,
    mapping: &Mapping,
    opts: &Options,
    changes: &Changes,
    progress: ProgressFn<'_>,
) -> Result<(SourceSnapshot, Plan), SyncError> {
    let changes = &targeted::with_referrers(dir, mapping, changes, opts.ou_tree).await?;
    progress(
        "ReadingSource",
        0,
        Some(changes.people.len() + changes.departments.len()),
    );
    let mut read = source.read_changed(changes).await?;
    // The departments the re-read lacks are named as the source last saw them.
    read.fill_department_data(&source.known_departments(), mapping.reads_dept_names());
    progress("ReadingDirectory", 0, None);
    let (snapshot, current) = targeted::read(dir, read.clone(), changes, mapping).await?;
    progress("Planning", 0, None);
    let plan = plan::plan_scoped(&snapshot, &current, mapping, opts, Some(changes));
    let removes = plan.steps.iter().any(|s| s.op.is_removal());
    if plan.held.is_none() && !removes {
        return Ok((snapshot, plan));
    }
    progress("ReadingDirectory", 0, None);
    let current = dir.read().await?;
    let known: HashSet<String> = current.departments.iter().map(|d| d.id.clone()).collect();
    let snapshot = read.normalise_within(&known);
    progress("Planning", 0, None);
    let plan = plan::plan_scoped(&snapshot, &current, mapping, opts, Some(changes));
    Ok((snapshot, plan))
}

/// An incremental run: the same plan, gates, apply and report as [`run`], restricted to the
/// records `changes` names (people and departments an event reported). Only a full run can
/// notice anything else (a missed event, drift). With roles on, a role event
/// (`changes.roles`) or a batch naming people runs the roles pass after them: every role and
/// its holders are re-read (one call plus one per role), not a full sync. People count too
/// since whether DingTalk announces the roles of a hire or a rehire by a role event of its own
/// is not documented (unconfirmed).
pub async fn run_changed(
    source: &dyn Source,
    dir: &dyn Directory,
    mapping: &Mapping,
    opts: &Options,
    changes: &Changes,
    dry_run: bool,
    progress: ProgressFn<'_>,
) -> Result<Report, SyncError> {
    let mut report = if changes.people.is_empty() && changes.departments.is_empty() {
        Report {
            complete: true,
            ..Default::default()
        }
    } else {
        let (snapshot, plan) =
            compute_changed(source, dir, mapping, opts, changes, progress).await?;
        finish(dir, snapshot, plan, dry_run, progress).await?
    };
    if opts.roles && (changes.roles || !changes.people.is_empty()) {
        progress("Roles", 0, None);
        roles::sync_roles(source, dir, opts, dry_run, &mut report).await?;
    }
    Ok(report)
}
