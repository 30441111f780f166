//! Departments: which to create, and which to move, rename or update, parents first (the
//! source lists them that way). A department whose parent could not be planned is a problem,
//! not a step, and so are its children in turn.

use std::collections::{HashMap, HashSet};

use super::{Draft, Op, Problem, Step, changed_reason, changes};
use crate::{
    directory::{DeptEntry, Snapshot},
    mapping::Mapping,
    model::{Changes, Department, SourceSnapshot},
};

/// What the rest of the plan needs to know about departments.
pub(super) struct Departments<'a> {
    /// The node's departments by id.
    pub in_dir: HashMap<&'a str, &'a DeptEntry>,
    /// Departments that exist or will once the plan is applied: the parents and groups people
    /// may be placed in.
    pub planned: HashSet<String>,
}

/// Plan every source department against the node's.
pub(super) fn plan_departments<'a>(
    source: &SourceSnapshot,
    dir: &'a Snapshot,
    mapping: &Mapping,
    scope: Option<&Changes>,
    draft: &mut Draft,
) -> Departments<'a> {
    let in_dir: HashMap<&str, &DeptEntry> =
        dir.departments.iter().map(|d| (d.id.as_str(), d)).collect();
    // An incremental run starts from the node's departments: they stay valid parents.
    let mut planned: HashSet<String> = match scope {
        Some(_) => dir.departments.iter().map(|d| d.id.clone()).collect(),
        None => HashSet::new(),
    };
    let mut count = 0usize;
    for d in &source.departments {
        let name = match mapping.department_name(d) {
            Ok(n) => n,
            Err(e) => {
                let problem = Problem::department(d, "TemplateError", e.to_string());
                draft.out.problems.push(problem);
                continue;
            }
        };
        if let Some(parent) = d.parent.as_ref().filter(|p| !planned.contains(*p)) {
            let message = format!("parent department {parent} could not be planned");
            let problem = Problem::department(d, "ParentFailed", message);
            draft.out.problems.push(problem);
            continue;
        }
        let label = format!("{} ({})", d.name, d.id);
        let ok = match in_dir.get(d.id.as_str()) {
            None => create_department(d, name, label, mapping, draft),
            Some(cur) => {
                update_department(d, cur, name, label, mapping, draft);
                true
            }
        };
        if ok {
            planned.insert(d.id.clone());
            count += 1;
        }
    }
    draft.out.departments = count;
    Departments { in_dir, planned }
}

/// A department new to the node is created with its rendered attributes. False when they
/// cannot be rendered: the department is then not planned at all.
fn create_department(
    d: &Department,
    name: String,
    label: String,
    mapping: &Mapping,
    draft: &mut Draft,
) -> bool {
    let attrs = match mapping.department_attributes(d, true) {
        Ok(a) => a,
        Err(e) => {
            let problem = Problem::department(d, "TemplateError", e.to_string());
            draft.out.problems.push(problem);
            return false;
        }
    };
    draft.steps.push(Step {
        op: Op::CreateDept {
            id: d.id.clone(),
            name,
            parent: d.parent.clone(),
            attrs,
        },
        label,
        reason: "new in DingTalk".into(),
    });
    true
}

/// A department already in the node is moved or renamed when its name or parent changed,
/// and updated when its attributes did. One whose attributes cannot be rendered still counts
/// as planned: it exists, so its children and members can be placed.
fn update_department(
    d: &Department,
    cur: &DeptEntry,
    name: String,
    label: String,
    mapping: &Mapping,
    draft: &mut Draft,
) {
    let mut changed = false;
    if cur.name != name || cur.parent != d.parent {
        let reason = if cur.parent != d.parent {
            "moved in DingTalk"
        } else {
            "renamed in DingTalk"
        };
        draft.steps.push(Step {
            op: Op::MoveDept {
                id: d.id.clone(),
                name,
                parent: d.parent.clone(),
            },
            label: label.clone(),
            reason: reason.into(),
        });
        changed = true;
    }
    match mapping.department_attributes(d, false) {
        Ok(mut wanted) => {
            mapping.keep_department_fills(&cur.attrs, &mut wanted);
            let diff = changes(&cur.attrs, &wanted);
            if !diff.is_empty() {
                draft.steps.push(Step {
                    reason: changed_reason(&diff),
                    op: Op::UpdateDept {
                        id: d.id.clone(),
                        changes: diff,
                    },
                    label,
                });
                changed = true;
            }
        }
        Err(e) => {
            let problem = Problem::department(d, "TemplateError", e.to_string());
            draft.out.problems.push(problem);
        }
    }
    if !changed {
        draft.out.unchanged_departments += 1;
    }
}
