//! Outbound: a directory node (the source) kept in step in DingTalk under one department.
//!
//! Identity, so renames stay renames and nothing is duplicated:
//! - a person is their DingTalk `userid`, rendered from the directory by the FieldMapping's
//!   `uniqueName` (so the same person logs in to both with one name);
//! - a department is the directory container's stable id (LDAP `entryUUID`), stored in the
//!   DingTalk department's `source_identifier` as `dingsync:<id>`. Only departments carrying
//!   that mark are ever renamed, moved or deleted; anything else under the root is left alone.
//!
//! Order: departments are created and moved parents first, then people are created, updated
//! and moved, then removals (behind the same incomplete-read and threshold gates as inbound),
//! then empty managed departments are deleted leaves first (DingTalk refuses to delete a
//! department with members or children). Every write is validated by DingTalk's rules before
//! it is sent, so a bad value is a failure of that person naming the field, never of the run.
//!
//! Steps: `sink` (DingTalk's side, behind [`DingTalkSink`]), `plan` (with `matching`: the
//! `match` rules that link people DingTalk already has), `apply`; `poll` tells
//! between runs whether the directory changed at all.

mod apply;
mod fields;
mod live;
mod matching;
mod per_dept;
mod plan;
mod poll;
mod references;
mod sink;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use live::{Batch, Session, follow};
pub use per_dept::PerDept;
pub use plan::{OutOp, OutboundPlan, Parent, plan};
pub use poll::{PollMark, mark_of, poll};
pub use references::DeptFields;
pub use sink::DingTalkSink;

use super::{Failure, Held, ObjectKind, SyncError};
use crate::{
    api::target::DeletionPolicy,
    dingtalk::DingTalkError,
    directory::{Directory, SourceTree},
    mapping::outbound::OutboundMapping,
};

/// Marks the departments dingsync made (and owns) in DingTalk.
pub const SOURCE_PREFIX: &str = "dingsync:";

/// How an Outbound run behaves.
#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// The DingTalk department the node is mirrored under (1 = root).
    pub root: i64,
    /// `Delete` removes people who left the node from DingTalk; `Disable` and `Retain` keep
    /// them (DingTalk has no disabled state), reported as kept.
    pub policy: DeletionPolicy,
    /// 0 turns the count check off.
    pub max_count: u32,
    /// 100 turns the percentage check off.
    pub max_percent: u32,
    pub approval: Option<String>,
    /// A container whose name an unmarked DingTalk department under the same parent already
    /// has adopts that department instead of failing.
    pub adopt_existing: bool,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            root: 1,
            policy: DeletionPolicy::Disable,
            max_count: 50,
            max_percent: 10,
            approval: None,
            adopt_existing: false,
        }
    }
}

impl OutboundOptions {
    /// The options a SyncTarget spec sets (`scope.departmentIds` names at most one
    /// department, the root when left out; deletion defaults as for Inbound).
    pub fn for_target(
        spec: &crate::api::SyncTargetSpec,
        approval: Option<String>,
    ) -> Result<Self, String> {
        let root = spec.scope.outbound_root()?;
        let deletion = spec.deletion.clone().unwrap_or_default();
        // The same thresholds as Inbound when the spec sets none.
        let defaults = crate::sync::Options::default();
        Ok(OutboundOptions {
            root,
            policy: deletion.policy,
            max_count: deletion.max_count.unwrap_or(defaults.max_count),
            max_percent: deletion.max_percent.unwrap_or(defaults.max_percent),
            approval,
            adopt_existing: spec.adopt_existing,
        })
    }
}

/// What an Outbound run did.
#[derive(Debug, Clone, Default)]
pub struct OutboundReport {
    pub created: usize,
    pub updated: usize,
    pub moved: usize,
    pub deleted: usize,
    /// People who left the node but stay in DingTalk (policy `Disable` or `Retain`).
    pub kept: usize,
    pub unchanged: usize,
    pub departments_created: usize,
    pub departments_updated: usize,
    pub departments_deleted: usize,
    /// Unmarked DingTalk departments adopted (`adoptExisting`).
    pub departments_adopted: usize,
    /// People linked by a `match` rule to a DingTalk user under another userid.
    pub linked: usize,
    pub failures: Vec<Failure>,
    /// False when DingTalk's side was read incompletely: nothing was removed.
    pub complete: bool,
    pub incomplete: Vec<String>,
    pub suppressed_removals: usize,
    pub held: Option<Held>,
    /// DingTalk write calls sent.
    pub writes: u64,
    pub people: usize,
    pub departments: usize,
    /// Where the directory stood when it was read (the next poll starts from it).
    pub mark: Option<PollMark>,
    /// Dry run: the writes the plan holds, and the first of them in words.
    pub pending: usize,
    pub sample: Vec<String>,
}

/// One full Outbound run: read both sides, plan, apply (unless `dry_run`).
pub async fn run(
    sink: &dyn DingTalkSink,
    dir: &dyn Directory,
    mapping: &OutboundMapping,
    opts: &OutboundOptions,
    dry_run: bool,
) -> Result<OutboundReport, SyncError> {
    let tree = dir.read_tree(None).await?;
    let mut r = sync_tree(sink, &tree, mapping, opts, dry_run).await?;
    if !dry_run {
        r.mark = Some(mark_of(&tree));
    }
    Ok(r)
}

/// Read DingTalk's side, plan the directory `tree` against it, and apply unless `dry_run`.
async fn sync_tree(
    sink: &dyn DingTalkSink,
    tree: &SourceTree,
    mapping: &OutboundMapping,
    opts: &OutboundOptions,
    dry_run: bool,
) -> Result<OutboundReport, SyncError> {
    let dingtalk = sink::read_subtree(sink, opts.root, mapping.has_department_fields()).await;
    // A read that fell short may be the app's scope or permission: the probe says so, naming
    // the department. It changes nothing, but it is a write call, so a dry run leaves it out.
    if !dingtalk.complete && !dry_run {
        probe(sink, opts.root).await?;
    }
    if dingtalk.departments.is_empty() {
        return Err(SyncError::Source(format!(
            "DingTalk department {} could not be read: {}",
            opts.root,
            dingtalk.incomplete.join("; ")
        )));
    }
    let plan = plan(
        tree,
        &dingtalk.departments,
        &dingtalk.users,
        dingtalk.complete,
        dingtalk.incomplete,
        mapping,
        opts,
    );
    if dry_run {
        return Ok(dry_run_report(plan));
    }
    Ok(apply(sink, plan, &dingtalk.users).await)
}

/// Whether the app may write the target's department: `PermissionMissing` naming it when the
/// app's contact scope leaves it out or the write permission is missing. A run calls it only
/// when its read of DingTalk fell short, so a run that reads everything makes no extra call.
pub async fn probe(sink: &dyn DingTalkSink, root: i64) -> Result<(), SyncError> {
    match sink.probe_write(root).await {
        Err(source @ DingTalkError::Denied { .. }) => Err(SyncError::PermissionMissing {
            dept_id: root,
            source,
        }),
        // Anything else the run's own reads and writes meet and report.
        _ => Ok(()),
    }
}

/// What a dry run reports: the plan's findings, and the writes it would make.
fn dry_run_report(plan: OutboundPlan) -> OutboundReport {
    OutboundReport {
        pending: plan.ops.len(),
        sample: plan.ops.iter().take(50).map(OutOp::describe).collect(),
        ..plan.report
    }
}

fn failure(kind: ObjectKind, id: &str, name: &str, reason: &str, message: String) -> Failure {
    Failure {
        kind,
        id: id.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
        message,
        locator: None,
    }
}

/// An object left out because the department it goes in could not be created.
fn parent_failed(kind: ObjectKind, id: &str, name: &str) -> Failure {
    let message = match kind {
        ObjectKind::Department => "its parent department could not be created",
        _ => "their department could not be created",
    };
    failure(kind, id, name, "ParentFailed", message.into())
}

/// A failed write as the report shows it.
fn failed(kind: ObjectKind, id: &str, name: &str, e: &DingTalkError) -> Failure {
    failure(kind, id, name, reason(e), e.to_string())
}

/// A short, stable reason for a failed write.
fn reason(e: &DingTalkError) -> &'static str {
    match e {
        DingTalkError::Validation { .. } => "InvalidValue",
        DingTalkError::Denied { .. } => "PermissionDenied",
        DingTalkError::NotFound { .. } => "NotFound",
        DingTalkError::Invalid { .. } => "Refused",
        DingTalkError::Unavailable { .. } => "Unavailable",
        _ => "Failed",
    }
}
