//! The gates between the diff and the plan: an incomplete read removes nothing, and too many
//! removals at once hold the whole run until someone approves exactly that set.

use std::collections::HashSet;

use super::{Held, Op, Options, Step};
use crate::sync::deletion_gate;

/// On an incomplete read nothing is disabled or deleted; membership removals of people the
/// read still saw are safe, those of leavers (or of gone departments) are not. Returns how
/// many removals were left out.
pub(super) fn drop_removals_of_incomplete_read(
    steps: &mut Vec<Step>,
    removals: &mut Vec<Step>,
    seen: &HashSet<&str>,
) -> usize {
    let leaving: HashSet<&str> = removals
        .iter()
        .filter_map(|s| match &s.op {
            Op::DisablePerson { id } | Op::DeletePerson { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let gone_depts: HashSet<&str> = removals
        .iter()
        .filter_map(|s| match &s.op {
            Op::DeleteDept { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    steps.retain(|s| match &s.op {
        Op::RemoveMembers { dept, people } => {
            !gone_depts.contains(dept.as_str())
                && !people
                    .iter()
                    .any(|p| leaving.contains(p.as_str()) || !seen.contains(p.as_str()))
        }
        _ => true,
    });
    let dropped = removals.len();
    removals.clear();
    dropped
}

/// The deletion threshold over the disables and deletes left, of the node's `owned` entries.
pub(super) fn hold_too_many_removals(
    removals: &[Step],
    owned: usize,
    opts: &Options,
) -> Option<Held> {
    let ids: Vec<String> = removals
        .iter()
        .map(|s| format!("{}:{}", s.op.verb(), s.op.subject().1))
        .collect();
    deletion_gate(
        ids,
        owned,
        opts.max_count,
        opts.max_percent,
        opts.approval.as_deref(),
        "disables/deletes",
    )
}
