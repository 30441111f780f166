//! The diff: source snapshot + directory snapshot + mapping → an ordered plan, each operation
//! with its reason; then the safety gates. Pure: reads nothing, writes nothing.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
};

use crate::{
    api::{mapping::SuffixStyle, target::DeletionPolicy},
    directory::{Attrs, Name, PersonEntry, Snapshot, attrs::Values},
    mapping::Mapping,
    model::{Changes, SourceSnapshot},
    sync::{ObjectKind, Verb, deletion_gate},
};

pub use crate::sync::Held;

/// One directory operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    CreateDept {
        id: String,
        name: String,
        parent: Option<String>,
        attrs: Attrs,
    },
    MoveDept {
        id: String,
        name: String,
        parent: Option<String>,
    },
    UpdateDept {
        id: String,
        changes: Attrs,
    },
    LinkPerson {
        key: String,
        id: String,
    },
    CreatePerson {
        id: String,
        attrs: Attrs,
        main_dept: Option<String>,
    },
    UpdatePerson {
        id: String,
        changes: Attrs,
    },
    MovePerson {
        id: String,
        name: String,
        main_dept: String,
    },
    EnablePerson {
        id: String,
    },
    AddMembers {
        dept: String,
        people: Vec<String>,
    },
    RemoveMembers {
        dept: String,
        people: Vec<String>,
    },
    DisablePerson {
        id: String,
    },
    DeletePerson {
        id: String,
    },
    DeleteDept {
        id: String,
    },
}

impl Op {
    /// Order of execution: departments parents-first, links, people, added memberships,
    /// removed memberships, disables/deletes of people, departments children-first. Removed
    /// memberships get their own phase so a member value is gone before its entry is (a
    /// directory without referential integrity would otherwise keep a dangling member).
    pub fn phase(&self) -> u8 {
        match self {
            Op::CreateDept { .. } | Op::MoveDept { .. } | Op::UpdateDept { .. } => 0,
            Op::LinkPerson { .. } => 1,
            Op::CreatePerson { .. }
            | Op::UpdatePerson { .. }
            | Op::MovePerson { .. }
            | Op::EnablePerson { .. } => 2,
            Op::AddMembers { .. } => 3,
            Op::RemoveMembers { .. } => 4,
            Op::DisablePerson { .. } | Op::DeletePerson { .. } => 5,
            Op::DeleteDept { .. } => 6,
        }
    }

    /// Phases whose operations depend on each other's order (department trees) and so run
    /// one at a time; the others run concurrently.
    pub fn is_ordered_phase(phase: u8) -> bool {
        matches!(phase, 0 | 6)
    }

    /// Disables and deletes: what the deletion gate counts.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Op::DisablePerson { .. } | Op::DeletePerson { .. } | Op::DeleteDept { .. }
        )
    }

    /// `User` or `Department`, and the id the operation is about.
    pub fn subject(&self) -> (ObjectKind, &str) {
        match self {
            Op::CreateDept { id, .. }
            | Op::MoveDept { id, .. }
            | Op::UpdateDept { id, .. }
            | Op::DeleteDept { id } => (ObjectKind::Department, id),
            Op::AddMembers { dept, .. } | Op::RemoveMembers { dept, .. } => {
                (ObjectKind::Department, dept)
            }
            Op::LinkPerson { id, .. }
            | Op::CreatePerson { id, .. }
            | Op::UpdatePerson { id, .. }
            | Op::MovePerson { id, .. }
            | Op::EnablePerson { id }
            | Op::DisablePerson { id }
            | Op::DeletePerson { id } => (ObjectKind::User, id),
        }
    }

    pub fn verb(&self) -> Verb {
        match self {
            Op::CreateDept { .. } | Op::CreatePerson { .. } => Verb::Create,
            Op::MoveDept { .. } | Op::MovePerson { .. } => Verb::Move,
            Op::UpdateDept { .. } | Op::UpdatePerson { .. } => Verb::Update,
            Op::LinkPerson { .. } => Verb::Link,
            Op::EnablePerson { .. } => Verb::Enable,
            Op::AddMembers { .. } => Verb::AddMembers,
            Op::RemoveMembers { .. } => Verb::RemoveMembers,
            Op::DisablePerson { .. } => Verb::Disable,
            Op::DeletePerson { .. } | Op::DeleteDept { .. } => Verb::Delete,
        }
    }
}

/// An operation and why it is in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    /// Who it is about, for people: `张伟 (zhangwei)`.
    pub label: String,
    /// Mostly a fixed phrase: borrowed, so 100,000 "new in DingTalk" cost nothing.
    pub reason: Cow<'static, str>,
}

/// A per-object problem found while planning (nothing is written for that object).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ObjectKind,
    pub id: String,
    pub name: String,
    pub reason: &'static str,
    pub message: String,
}

/// Knobs of the diff and the gates.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: DeletionPolicy,
    /// 0 turns the count check off.
    pub max_count: u32,
    /// 100 turns the percentage check off.
    pub max_percent: u32,
    /// `OuTree`: people live in their main department's container.
    pub ou_tree: bool,
    /// Approval token from the approve annotation.
    pub approval: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: DeletionPolicy::Disable,
            max_count: 50,
            max_percent: 10,
            ou_tree: false,
            approval: None,
        }
    }
}

/// The plan for one run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// In execution order.
    pub steps: Vec<Step>,
    pub problems: Vec<Problem>,
    /// Set when the deletion gate stopped the run: `steps` is then empty.
    pub held: Option<Held>,
    /// Removals left out because the source read was incomplete.
    pub suppressed_removals: usize,
    pub unchanged_people: usize,
    pub unchanged_departments: usize,
    pub missing_mobile: usize,
    pub missing_email: usize,
    /// People and departments the node will hold.
    pub people: usize,
    pub departments: usize,
}

impl Plan {
    /// Steps doing `verb` (a [`Verb`], or its word).
    pub fn count<V>(&self, verb: V) -> usize
    where
        Verb: PartialEq<V>,
    {
        self.steps.iter().filter(|s| s.op.verb() == verb).count()
    }
}

fn values_equal(current: Option<Values<'_>>, wanted: Values<'_>) -> bool {
    let current = current.unwrap_or_else(Values::empty);
    if current.len() != wanted.len() {
        return false;
    }
    // One value (the common case) needs no sorting.
    if current.len() <= 1 {
        return current.eq(wanted);
    }
    let mut a: Vec<&str> = current.collect();
    let mut b: Vec<&str> = wanted.collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// The attributes of `wanted` that differ from `current` (names compared case-insensitively).
fn changes(current: &Attrs, wanted: &Attrs) -> Attrs {
    wanted
        .iter()
        .filter(|(k, v)| {
            // Names are mostly lowercase already: no copy for those.
            let current = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                current.get(&k.to_ascii_lowercase())
            } else {
                current.get(k)
            };
            !values_equal(current, v.clone())
        })
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect()
}

fn suffixed(wanted: &str, n: usize, userid: &str, style: SuffixStyle) -> String {
    match style {
        SuffixStyle::Number => format!("{wanted}{n}"),
        SuffixStyle::UserId if n == 2 => format!("{wanted}.{}", userid.to_lowercase()),
        SuffixStyle::UserId => format!("{wanted}.{}{n}", userid.to_lowercase()),
    }
}

/// Compute the plan of a full run: everything in the source against everything in the node.
pub fn plan(source: &SourceSnapshot, dir: &Snapshot, mapping: &Mapping, opts: &Options) -> Plan {
    plan_scoped(source, dir, mapping, opts, None)
}

/// Compute the plan, restricted to `scope` when given (an incremental run): `source` then holds
/// just the changed records as re-read; a named record absent from it has left (or left the
/// scope); everything not named is left as it is, and departments already in the node count as
/// existing parents and groups.
pub fn plan_scoped(
    source: &SourceSnapshot,
    dir: &Snapshot,
    mapping: &Mapping,
    opts: &Options,
    scope: Option<&Changes>,
) -> Plan {
    let mut out = Plan::default();
    let mut steps: Vec<Step> = vec![];
    let name_attr = mapping.name_attribute().to_string();
    let name_attr_name = Name::new(&name_attr);
    let name_key = name_attr.to_ascii_lowercase();

    // ---- departments ----
    let dir_depts: HashMap<&str, &crate::directory::DeptEntry> =
        dir.departments.iter().map(|d| (d.id.as_str(), d)).collect();
    // Departments that exist (or will): an incremental run starts from the node's.
    let mut dept_ok: HashSet<String> = match scope {
        Some(_) => dir.departments.iter().map(|d| d.id.clone()).collect(),
        None => HashSet::new(),
    };
    let mut planned_depts = 0usize;
    for d in &source.departments {
        let name = match mapping.department_name(d) {
            Ok(n) => n,
            Err(e) => {
                out.problems.push(Problem {
                    kind: ObjectKind::Department,
                    id: d.id.clone(),
                    name: d.name.clone(),
                    reason: "TemplateError",
                    message: e.to_string(),
                });
                continue;
            }
        };
        if d.parent.as_ref().is_some_and(|p| !dept_ok.contains(p)) {
            out.problems.push(Problem {
                kind: ObjectKind::Department,
                id: d.id.clone(),
                name: d.name.clone(),
                reason: "ParentFailed",
                message: format!(
                    "parent department {} could not be planned",
                    d.parent.clone().unwrap_or_default()
                ),
            });
            continue;
        }
        let label = format!("{} ({})", d.name, d.id);
        match dir_depts.get(d.id.as_str()) {
            None => {
                let attrs = match mapping.department_attributes(d, true) {
                    Ok(a) => a,
                    Err(e) => {
                        out.problems.push(Problem {
                            kind: ObjectKind::Department,
                            id: d.id.clone(),
                            name: d.name.clone(),
                            reason: "TemplateError",
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                steps.push(Step {
                    op: Op::CreateDept {
                        id: d.id.clone(),
                        name,
                        parent: d.parent.clone(),
                        attrs,
                    },
                    label,
                    reason: "new in DingTalk".into(),
                });
            }
            Some(cur) => {
                let mut changed = false;
                if cur.name != name || cur.parent != d.parent {
                    let reason = if cur.parent != d.parent {
                        "moved in DingTalk"
                    } else {
                        "renamed in DingTalk"
                    };
                    steps.push(Step {
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
                    Ok(wanted) => {
                        let diff = changes(&cur.attrs, &wanted);
                        if !diff.is_empty() {
                            let names: Vec<&str> = diff.keys().map(Name::as_str).collect();
                            steps.push(Step {
                                op: Op::UpdateDept {
                                    id: d.id.clone(),
                                    changes: diff.clone(),
                                },
                                label,
                                reason: format!("changed: {names:?}").into(),
                            });
                            changed = true;
                        }
                    }
                    Err(e) => out.problems.push(Problem {
                        kind: ObjectKind::Department,
                        id: d.id.clone(),
                        name: d.name.clone(),
                        reason: "TemplateError",
                        message: e.to_string(),
                    }),
                }
                if !changed {
                    out.unchanged_departments += 1;
                }
            }
        }
        dept_ok.insert(d.id.clone());
        planned_depts += 1;
    }
    out.departments = planned_depts;

    // ---- people: names ----
    let dir_people: HashMap<&str, &PersonEntry> = dir
        .people
        .iter()
        .filter_map(|p| p.id.as_deref().map(|id| (id, p)))
        .collect();
    let current_name = |p: &PersonEntry| p.attrs.first(&name_key).map(str::to_owned);
    // Every name in the node is taken, including unlinked and skipped entries'.
    let mut taken: HashSet<String> = dir
        .people
        .iter()
        .chain(&dir.unlinked)
        .filter_map(current_name)
        .map(|n| n.to_lowercase())
        .collect();
    for name in &dir.taken_names {
        taken.insert(name.to_lowercase());
    }

    // Matching index over unlinked entries: (attribute, lowercased value) → keys.
    let mut match_index: HashMap<(String, String), Vec<&PersonEntry>> = HashMap::new();
    for e in &dir.unlinked {
        for (k, vals) in &e.attrs {
            for v in vals {
                match_index
                    .entry((k.to_string(), v.to_lowercase()))
                    .or_default()
                    .push(e);
            }
        }
    }
    let mut claimed: HashMap<String, String> = HashMap::new();

    // People sorted by userid so name suffixes are handed out the same way every run.
    let mut people: Vec<&crate::model::Person> = source.people.iter().collect();
    people.sort_by(|a, b| a.id.cmp(&b.id));

    struct Wanted<'a> {
        person: &'a crate::model::Person,
        entry: Option<&'a PersonEntry>,
        link: Option<&'a PersonEntry>,
        wanted: String,
        name: Option<String>,
        /// Rendered attributes only: no person's template context outlives its rendering
        /// (at 100,000 people the contexts would be most of the plan's memory).
        attrs: Result<Attrs, crate::mapping::RenderError>,
    }
    // Templates are the diff's main cost and each person's are independent: rendered on every
    // core first. Matching, which hands out claims, stays sequential in userid order.
    struct Rendered {
        wanted: Result<String, crate::mapping::RenderError>,
        /// Only for people not yet linked: the match rules' values.
        matches: Option<Result<Vec<(String, String)>, crate::mapping::RenderError>>,
        attrs: Result<Attrs, crate::mapping::RenderError>,
    }
    let rendered = par_map(&people, |p| {
        let ctx = mapping.context(p);
        let linked = dir_people.contains_key(p.id.as_str());
        Rendered {
            wanted: mapping.wanted_name_in(p, &ctx),
            matches: (!linked).then(|| mapping.match_values_in(&ctx)),
            attrs: mapping.person_attributes_in(&ctx, !linked),
        }
    });
    let mut wants: Vec<Wanted> = Vec::with_capacity(people.len());
    for (p, r) in people.into_iter().zip(rendered.into_iter().flatten()) {
        if !p.has_text("mobile") {
            out.missing_mobile += 1;
        }
        if !p.has_text("email") && !p.has_text("org_email") {
            out.missing_email += 1;
        }
        let wanted = match r.wanted {
            Ok(w) => w,
            Err(e) => {
                out.problems.push(Problem {
                    kind: ObjectKind::User,
                    id: p.id.clone(),
                    name: p.name.clone(),
                    reason: "TemplateError",
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut entry = dir_people.get(p.id.as_str()).copied();
        let mut link = None;
        if entry.is_none() {
            // First time: try the match rules in order.
            let values = match r.matches.expect("rendered for every unlinked person") {
                Ok(v) => v,
                Err(e) => {
                    out.problems.push(Problem {
                        kind: ObjectKind::User,
                        id: p.id.clone(),
                        name: p.name.clone(),
                        reason: "TemplateError",
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let mut refused = false;
            for (attr, value) in values {
                let hits = match_index
                    .get(&(attr.to_ascii_lowercase(), value.clone()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match hits {
                    [] => continue,
                    [one] => {
                        if let Some(other) = claimed.get(&one.key) {
                            out.problems.push(Problem {
                                kind: ObjectKind::User,
                                id: p.id.clone(),
                                name: p.name.clone(),
                                reason: "AmbiguousMatch",
                                message: format!("{attr}={value} matches {} which {other} already matched; not linked", one.key),
                            });
                            refused = true;
                        } else {
                            claimed.insert(one.key.clone(), p.id.clone());
                            link = Some(*one);
                            entry = Some(*one);
                        }
                        break;
                    }
                    many => {
                        let keys: Vec<&str> = many.iter().map(|e| e.key.as_str()).collect();
                        out.problems.push(Problem {
                            kind: ObjectKind::User,
                            id: p.id.clone(),
                            name: p.name.clone(),
                            reason: "AmbiguousMatch",
                            message: format!(
                                "{attr}={value} matches {} entries ({}); none linked",
                                many.len(),
                                keys.join("; ")
                            ),
                        });
                        refused = true;
                        break;
                    }
                }
            }
            if refused {
                continue;
            }
        }
        // An account keeps the name it has: usernames are logins, and a display-name change in
        // DingTalk must not change someone's login (the mapped attributes follow instead).
        let name = entry.and_then(current_name);
        // Rendered for a new entry; an existing account just matched gets an update instead.
        let attrs = if link.is_some() {
            mapping.person_attributes_in(&mapping.context(p), false)
        } else {
            r.attrs
        };
        wants.push(Wanted {
            person: p,
            entry,
            link,
            wanted,
            name,
            attrs,
        });
    }
    for w in &mut wants {
        if w.name.is_some() {
            continue;
        }
        let mut candidate = w.wanted.clone();
        let mut n = 2;
        while taken.contains(&candidate.to_lowercase()) {
            candidate = suffixed(&w.wanted, n, &w.person.id, mapping.suffix_style());
            n += 1;
        }
        taken.insert(candidate.to_lowercase());
        w.name = Some(candidate);
    }

    // ---- people: operations ----
    let mut members_add: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut members_remove: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let in_source: HashSet<&str> = wants.iter().map(|w| w.person.id.as_str()).collect();
    // Everyone the source has, including people whose templates failed: never leavers.
    let all_source: HashSet<&str> = source.people.iter().map(|p| p.id.as_str()).collect();
    let all_source_depts: HashSet<&str> =
        source.departments.iter().map(|d| d.id.as_str()).collect();
    out.people = wants.len();
    // Consumed: each person's rendered attributes move into their step, never copied.
    for w in wants {
        let p = w.person;
        let name = w.name.expect("assigned above");
        // Made only for a step: most people of a resync have none.
        let label = || format!("{} ({name})", p.name);
        let mut attrs = match w.attrs {
            Ok(a) => a,
            Err(e) => {
                out.problems.push(Problem {
                    kind: ObjectKind::User,
                    id: p.id.clone(),
                    name: p.name.clone(),
                    reason: "TemplateError",
                    message: e.to_string(),
                });
                continue;
            }
        };
        attrs.insert(&name_attr_name, vec![name.clone()]);
        let depts: BTreeSet<&str> = p
            .departments
            .iter()
            .filter(|d| dept_ok.contains(*d))
            .map(String::as_str)
            .collect();
        let main = p.main_department.clone().filter(|m| dept_ok.contains(m));
        let mut touched = false;
        match w.entry {
            None => {
                steps.push(Step {
                    op: Op::CreatePerson {
                        id: p.id.clone(),
                        attrs,
                        main_dept: if opts.ou_tree { main.clone() } else { None },
                    },
                    label: label(),
                    reason: "new in DingTalk".into(),
                });
                for d in &depts {
                    members_add
                        .entry((*d).to_owned())
                        .or_default()
                        .push(p.id.clone());
                }
                continue;
            }
            Some(e) => {
                if let Some(l) = w.link {
                    steps.push(Step {
                        op: Op::LinkPerson {
                            key: l.key.clone(),
                            id: p.id.clone(),
                        },
                        label: label(),
                        reason: "an existing account matched the match rules".into(),
                    });
                    touched = true;
                }
                if e.disabled {
                    steps.push(Step {
                        op: Op::EnablePerson { id: p.id.clone() },
                        label: label(),
                        reason: "back in DingTalk (rehire)".into(),
                    });
                    touched = true;
                }
                let diff = changes(&e.attrs, &attrs);
                if !diff.is_empty() {
                    let names: Vec<&str> = diff.keys().map(Name::as_str).collect();
                    steps.push(Step {
                        op: Op::UpdatePerson {
                            id: p.id.clone(),
                            changes: diff.clone(),
                        },
                        label: label(),
                        reason: format!("changed: {names:?}").into(),
                    });
                    touched = true;
                }
                if opts.ou_tree
                    && let Some(m) = &main
                    && e.container.as_ref() != Some(m)
                {
                    steps.push(Step {
                        op: Op::MovePerson {
                            id: p.id.clone(),
                            name: name.clone(),
                            main_dept: m.clone(),
                        },
                        label: label(),
                        reason: "main department changed".into(),
                    });
                    touched = true;
                }
                // A disabled entry lost its memberships; an enabled one keeps what it has.
                let have: BTreeSet<&str> = if e.disabled {
                    BTreeSet::new()
                } else {
                    e.departments.iter().map(String::as_str).collect()
                };
                for d in depts.difference(&have) {
                    members_add
                        .entry((*d).to_owned())
                        .or_default()
                        .push(p.id.clone());
                    touched = true;
                }
                for d in have.difference(&depts) {
                    members_remove
                        .entry((*d).to_owned())
                        .or_default()
                        .push(p.id.clone());
                    touched = true;
                }
            }
        }
        if !touched {
            out.unchanged_people += 1;
        }
    }

    // Leavers: anchored entries whose person is gone (or out of scope).
    let mut removals: Vec<Step> = vec![];
    for e in &dir.people {
        let Some(id) = e.id.as_deref() else { continue };
        if all_source.contains(id) || scope.is_some_and(|c| !c.people.contains(id)) {
            continue;
        }
        let label = format!("{} ({})", current_name(e).unwrap_or_default(), id);
        match opts.policy {
            DeletionPolicy::Disable if !e.disabled => {
                removals.push(Step {
                    op: Op::DisablePerson { id: id.into() },
                    label,
                    reason: "left DingTalk or the scope".into(),
                });
            }
            DeletionPolicy::Disable => {}
            DeletionPolicy::Delete => {
                for d in &e.departments {
                    members_remove.entry(d.clone()).or_default().push(id.into());
                }
                removals.push(Step {
                    op: Op::DeletePerson { id: id.into() },
                    label,
                    reason: "left DingTalk or the scope".into(),
                });
            }
            DeletionPolicy::Retain => {
                for d in &e.departments {
                    members_remove.entry(d.clone()).or_default().push(id.into());
                }
            }
        }
    }
    // Departments gone from the source, children before parents.
    if opts.policy != DeletionPolicy::Retain {
        let gone: Vec<&crate::directory::DeptEntry> = dir
            .departments
            .iter()
            .filter(|d| !all_source_depts.contains(d.id.as_str()))
            .filter(|d| scope.is_none_or(|c| c.departments.contains(&d.id)))
            .collect();
        let depth = |d: &crate::directory::DeptEntry| {
            let mut n = 0;
            let mut cur = d.parent.clone();
            while let Some(c) = cur {
                n += 1;
                cur = dir_depts.get(c.as_str()).and_then(|x| x.parent.clone());
                if n > 64 {
                    break;
                }
            }
            n
        };
        let mut gone = gone;
        gone.sort_by_key(|d| std::cmp::Reverse(depth(d)));
        // A group is emptied before it is deleted; one pass over the people, not one per group.
        let gone_ids: HashSet<&str> = gone.iter().map(|d| d.id.as_str()).collect();
        if !gone_ids.is_empty() {
            let extra: Vec<(String, String)> = {
                let mut queued: HashSet<(&str, &str)> = members_remove
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
                members_remove.entry(d).or_default().push(id);
            }
        }
        for d in gone {
            removals.push(Step {
                op: Op::DeleteDept { id: d.id.clone() },
                label: format!("{} ({})", d.name, d.id),
                reason: "removed from DingTalk or the scope".into(),
            });
        }
    }
    for (dept, people) in members_add {
        steps.push(Step {
            op: Op::AddMembers {
                dept: dept.clone(),
                people,
            },
            label: dept,
            reason: "membership".into(),
        });
    }
    for (dept, people) in members_remove {
        steps.push(Step {
            op: Op::RemoveMembers {
                dept: dept.clone(),
                people,
            },
            label: dept,
            reason: "membership".into(),
        });
    }

    // ---- gates ----
    if !source.complete {
        // Nothing is disabled or deleted on an incomplete read; membership removals of people
        // we still see are safe, those of leavers are not.
        out.suppressed_removals = removals.len();
        let leaving: HashSet<String> = removals
            .iter()
            .filter_map(|s| match &s.op {
                Op::DisablePerson { id } | Op::DeletePerson { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let gone_depts: HashSet<String> = removals
            .iter()
            .filter_map(|s| match &s.op {
                Op::DeleteDept { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        steps.retain(|s| match &s.op {
            Op::RemoveMembers { dept, people } => {
                !gone_depts.contains(dept)
                    && !people
                        .iter()
                        .any(|p| leaving.contains(p) || !in_source.contains(p.as_str()))
            }
            _ => true,
        });
        removals.clear();
    }
    let ids: Vec<String> = removals
        .iter()
        .map(|s| format!("{}:{}", s.op.verb(), s.op.subject().1))
        .collect();
    if let Some(held) = deletion_gate(
        ids,
        dir.people.len(),
        opts.max_count,
        opts.max_percent,
        opts.approval.as_deref(),
        "disables/deletes",
    ) {
        out.held = Some(held);
        out.steps.clear();
        return out;
    }
    steps.extend(removals);
    steps.sort_by_key(|s| s.op.phase());
    out.steps = steps;
    out
}

/// `f` over `items` on every available core, in order, as one vector per thread (flatten to
/// read). Small inputs stay on the calling thread.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || items.len() < 2048 {
        return vec![items.iter().map(f).collect()];
    }
    let f = &f;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order_across_threads_and_propagates_panics() {
        let items: Vec<usize> = (0..10_000).collect();
        let out = par_map(&items, |i| i * 2);
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert!(out.len() > 1, "large inputs are split across threads");
        }
        let flat: Vec<usize> = out.into_iter().flatten().collect();
        assert_eq!(flat, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let panicked = std::panic::catch_unwind(|| {
            par_map(&items, |i| assert!(*i != 7_777, "bad item"));
        });
        assert!(panicked.is_err());
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            suffixed("zhangwei", 2, "U1", SuffixStyle::Number),
            "zhangwei2"
        );
        assert_eq!(
            suffixed("zhangwei", 2, "U1", SuffixStyle::UserId),
            "zhangwei.u1"
        );
        assert_eq!(
            suffixed("zhangwei", 3, "U1", SuffixStyle::UserId),
            "zhangwei.u13"
        );
    }
}
