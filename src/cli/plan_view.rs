//! The body of `dingsync plan`: the plan's steps as a tree of the departments they happen in
//! (coloured on a terminal, plain otherwise), and the same plan as JSON for machines.

use std::collections::{BTreeMap, HashMap};

use console::{Style, style};
use serde_json::{Value, json};

use crate::{
    model::SourceSnapshot,
    sync::{self, ObjectKind, Op, Verb},
};

/// Steps listed per run unless `--all` is given.
const STEPS_SHOWN: usize = 50;

/// Where steps about people who are no longer in DingTalk (or in scope) are listed.
const GONE: &str = "(no longer in DingTalk's scope)";

/// What a step does, as a sign and a colour: green adds, red removes, yellow changes.
fn mark(op: &Op) -> (&'static str, Style) {
    match op {
        Op::CreateDept { .. }
        | Op::CreatePerson { .. }
        | Op::EnablePerson { .. }
        | Op::LinkPerson { .. } => ("+", Style::new().green()),
        Op::DisablePerson { .. } | Op::DeletePerson { .. } | Op::DeleteDept { .. } => {
            ("-", Style::new().red())
        }
        _ => ("~", Style::new().yellow()),
    }
}

/// The departments of one snapshot: names, parents, children in source order.
struct Tree<'a> {
    name: HashMap<&'a str, &'a str>,
    parent: HashMap<&'a str, &'a str>,
    children: HashMap<Option<&'a str>, Vec<&'a str>>,
}

impl<'a> Tree<'a> {
    fn of(snapshot: &'a SourceSnapshot) -> Self {
        let mut t = Tree {
            name: HashMap::new(),
            parent: HashMap::new(),
            children: HashMap::new(),
        };
        for d in &snapshot.departments {
            t.name.insert(&d.id, &d.name);
            if let Some(p) = &d.parent {
                t.parent.insert(&d.id, p);
            }
        }
        for d in &snapshot.departments {
            // A parent outside the snapshot makes the department a root of the view.
            let parent = d.parent.as_deref().filter(|p| t.name.contains_key(p));
            t.children.entry(parent).or_default().push(&d.id);
        }
        t
    }

    /// Names from the root, joined by `/`.
    fn path(&self, id: &str) -> String {
        let mut names = vec![];
        let mut at = Some(id);
        while let Some(i) = at {
            let Some(name) = self.name.get(i) else { break };
            names.push(*name);
            at = self.parent.get(i).copied();
            if names.len() > self.name.len() {
                break; // a cycle in the data: stop rather than loop
            }
        }
        names.reverse();
        names.join("/")
    }
}

/// The department a step happens in: the department itself, or the person's main
/// department (else first); `None` for people DingTalk no longer has in scope.
fn home<'a>(op: &'a Op, people: &HashMap<&str, Option<&'a str>>) -> Option<&'a str> {
    match op.subject() {
        (ObjectKind::Department, id) => Some(id),
        (_, id) => people.get(id).copied().flatten(),
    }
}

/// Steps worth listing: memberships are only counted.
fn listed(plan: &sync::Plan) -> impl Iterator<Item = &sync::Step> {
    plan.steps
        .iter()
        .filter(|s| !matches!(s.op, Op::AddMembers { .. } | Op::RemoveMembers { .. }))
}

/// Each person's department for the view, by userid.
fn homes(snapshot: &SourceSnapshot) -> HashMap<&str, Option<&str>> {
    snapshot
        .people
        .iter()
        .map(|p| {
            let main = p.main_department.as_deref();
            (
                p.id.as_str(),
                main.or(p.departments.first().map(String::as_str)),
            )
        })
        .collect()
}

/// Prints the steps under the departments they happen in, parents before children; people
/// DingTalk no longer has last. At most [`STEPS_SHOWN`] steps unless `all`.
pub(super) fn print_tree(snapshot: &SourceSnapshot, plan: &sync::Plan, all: bool) {
    let tree = Tree::of(snapshot);
    let people = homes(snapshot);
    let mut by_home: HashMap<Option<&str>, Vec<&sync::Step>> = HashMap::new();
    for s in listed(plan) {
        by_home.entry(home(&s.op, &people)).or_default().push(s);
    }
    // A department is shown when it or a department below it has steps.
    let mut shown: HashMap<&str, bool> = HashMap::new();
    for id in by_home.keys().flatten() {
        let mut at = Some(*id);
        while let Some(i) = at {
            if shown.insert(i, true).is_some() {
                break;
            }
            at = tree.parent.get(i).copied();
        }
    }
    let mut budget = if all { usize::MAX } else { STEPS_SHOWN };
    let mut stack: Vec<(&str, usize)> = tree
        .children
        .get(&None)
        .into_iter()
        .flatten()
        .rev()
        .map(|d| (*d, 0))
        .collect();
    while let Some((id, depth)) = stack.pop() {
        if !shown.contains_key(id) {
            continue;
        }
        let indent = "  ".repeat(depth + 1);
        println!("{indent}{}", style(tree.name[id]).bold());
        print_steps(&indent, by_home.get(&Some(id)), &mut budget);
        let kids = tree.children.get(&Some(id)).into_iter().flatten();
        stack.extend(kids.rev().map(|k| (*k, depth + 1)));
    }
    if let Some(gone) = by_home.get(&None) {
        println!("  {}", style(GONE).bold());
        print_steps("  ", Some(gone), &mut budget);
    }
    let total = listed(plan).count();
    let left = total.saturating_sub(if all { total } else { STEPS_SHOWN });
    if left > 0 {
        println!("  … {left} more steps (--all shows them)");
    }
}

/// One department's steps, departments' own first, while `budget` lasts.
fn print_steps(indent: &str, steps: Option<&Vec<&sync::Step>>, budget: &mut usize) {
    let mut steps: Vec<&&sync::Step> = steps.into_iter().flatten().collect();
    steps.sort_by_key(|s| s.op.subject().0 != ObjectKind::Department);
    for s in steps {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let (sign, colour) = mark(&s.op);
        let what = format!("{sign} {:<8}", s.op.verb().to_string());
        println!(
            "{indent}  {} {:<28} {}",
            colour.apply_to(what),
            s.label,
            s.reason
        );
    }
}

/// The plan's counts, by verb, as `plan` prints them and JSON carries them.
fn counts(plan: &sync::Plan) -> BTreeMap<&'static str, usize> {
    [
        ("create", Verb::Create),
        ("update", Verb::Update),
        ("link", Verb::Link),
        ("move", Verb::Move),
        ("enable", Verb::Enable),
        ("disable", Verb::Disable),
        ("delete", Verb::Delete),
    ]
    .into_iter()
    .map(|(k, v)| (k, plan.count(v)))
    .collect()
}

/// One line: what the plan would do.
pub(super) fn summary(plan: &sync::Plan) -> String {
    let c = counts(plan);
    format!(
        "plan: {} create, {} update, {} link, {} move, {} enable, {} disable, {} delete; {} unchanged",
        c["create"],
        c["update"],
        c["link"],
        c["move"],
        c["enable"],
        c["disable"],
        c["delete"],
        plan.unchanged_people + plan.unchanged_departments
    )
}

/// An Inbound target's plan for machines: every step with the department path it happens in.
pub(super) fn plan_json(
    (name, url, node): (&str, &str, &str),
    snapshot: &SourceSnapshot,
    plan: &sync::Plan,
) -> Value {
    let tree = Tree::of(snapshot);
    let people = homes(snapshot);
    let steps: Vec<Value> = listed(plan)
        .map(|s| {
            let (kind, id) = s.op.subject();
            json!({
                "verb": s.op.verb().to_string(),
                "kind": kind.to_string(),
                "id": id,
                "label": s.label,
                "reason": s.reason,
                "department": home(&s.op, &people).map(|d| tree.path(d)),
            })
        })
        .collect();
    let problems: Vec<Value> = plan
        .problems
        .iter()
        .map(|p| json!({"kind": p.kind.to_string(), "id": p.id, "name": p.name, "reason": p.reason, "message": p.message}))
        .collect();
    json!({
        "target": name,
        "direction": "Inbound",
        "directory": {"url": url, "node": node},
        "dingtalk": {
            "departments": snapshot.departments.len(),
            "people": snapshot.people.len(),
            "complete": snapshot.complete,
            "incomplete": snapshot.incomplete,
        },
        "summary": counts(plan),
        "unchanged": plan.unchanged_people + plan.unchanged_departments,
        "held": plan.held.as_ref().map(|h| json!({"message": h.message, "token": h.token})),
        "suppressedRemovals": plan.suppressed_removals,
        "missingMobile": plan.missing_mobile,
        "missingEmail": plan.missing_email,
        "steps": steps,
        "problems": problems,
    })
}

/// An Outbound target's plan (or run) for machines.
pub(super) fn outbound_json(
    (name, url, node): (&str, &str, &str),
    root: i64,
    r: &sync::outbound::OutboundReport,
) -> Value {
    let failures: Vec<Value> = r
        .failures
        .iter()
        .map(|f| json!({"kind": f.kind.to_string(), "id": f.id, "name": f.name, "reason": f.reason.to_string(), "message": f.message}))
        .collect();
    json!({
        "target": name,
        "direction": "Outbound",
        "directory": {"url": url, "node": node, "people": r.people, "departments": r.departments},
        "dingtalkDepartment": root,
        "complete": r.complete,
        "incomplete": r.incomplete,
        "pendingWrites": r.pending,
        "unchanged": r.unchanged,
        "kept": r.kept,
        "held": r.held.as_ref().map(|h| json!({"message": h.message, "token": h.token})),
        "sample": r.sample,
        "failures": failures,
    })
}

/// An Inbound apply for machines: what was written and what failed.
pub(super) fn report_json((name, url, node): (&str, &str, &str), r: &sync::Report) -> Value {
    let failures: Vec<Value> = r
        .failures
        .iter()
        .map(|f| json!({"kind": f.kind.to_string(), "id": f.id, "name": f.name, "reason": f.reason, "message": f.message}))
        .collect();
    json!({
        "target": name,
        "direction": "Inbound",
        "directory": {"url": url, "node": node},
        "dingtalk": {"departments": r.departments, "people": r.people, "complete": r.complete, "incomplete": r.incomplete},
        "written": {
            "created": r.created, "updated": r.updated, "moved": r.moved, "disabled": r.disabled,
            "enabled": r.enabled, "deleted": r.deleted, "unchanged": r.unchanged, "writes": r.writes,
        },
        "held": r.held.as_ref().map(|h| json!({"message": h.message, "token": h.token})),
        "suppressedRemovals": r.suppressed_removals,
        "missingMobile": r.missing_mobile,
        "missingEmail": r.missing_email,
        "failures": failures,
    })
}
