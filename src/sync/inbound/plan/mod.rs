//! The diff: source snapshot + directory snapshot + mapping → an ordered plan, each operation
//! with its reason; then the safety gates. Pure: reads nothing, writes nothing.
//!
//! Steps, in order: `departments`, `people` (render and match), `names` (unique account
//! names, homonyms suffixed), `people` again (the diff), `removals`, `gates`.

mod departments;
mod gates;
mod names;
mod people;
mod references;
mod removals;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
};

use self::names::UniqueNames;
use crate::{
    api::target::DeletionPolicy,
    directory::{Anchors, Attrs, Digested, Name, PersonEntry, Snapshot, attrs::Values},
    mapping::Mapping,
    model::{Changes, Department, Person, SourceSnapshot},
    sync::{ObjectKind, Verb},
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
    /// Point a person's reference attribute (`refersTo`) at these people's entries (source
    /// ids; none clears it). The apply turns them into locators when it writes.
    ReferPerson {
        id: String,
        attr: Name,
        to: Vec<String>,
    },
    /// The same for a department's attribute (its heads as `owner`).
    ReferDept {
        id: String,
        attr: Name,
        to: Vec<String>,
    },
}

impl Op {
    /// Order of execution: departments parents-first, links, people, added memberships and
    /// references (every entry they may point at exists, under its final name), removed
    /// memberships, disables/deletes of people, departments children-first. Removed
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
            Op::AddMembers { .. } | Op::ReferPerson { .. } | Op::ReferDept { .. } => 3,
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
            | Op::DeleteDept { id }
            | Op::ReferDept { id, .. } => (ObjectKind::Department, id),
            Op::AddMembers { dept, .. } | Op::RemoveMembers { dept, .. } => {
                (ObjectKind::Department, dept)
            }
            Op::LinkPerson { id, .. }
            | Op::CreatePerson { id, .. }
            | Op::UpdatePerson { id, .. }
            | Op::MovePerson { id, .. }
            | Op::EnablePerson { id }
            | Op::DisablePerson { id }
            | Op::DeletePerson { id }
            | Op::ReferPerson { id, .. } => (ObjectKind::User, id),
        }
    }

    pub fn verb(&self) -> Verb {
        match self {
            Op::CreateDept { .. } | Op::CreatePerson { .. } => Verb::Create,
            Op::MoveDept { .. } | Op::MovePerson { .. } => Verb::Move,
            Op::UpdateDept { .. }
            | Op::UpdatePerson { .. }
            | Op::ReferPerson { .. }
            | Op::ReferDept { .. } => Verb::Update,
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
    /// DingTalk roles kept as directory groups (`inbound/roles.rs`).
    pub roles: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: DeletionPolicy::Disable,
            max_count: 50,
            max_percent: 10,
            ou_tree: false,
            approval: None,
            roles: false,
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
    /// People read lean whose digest differs: their update carries every owned attribute
    /// until [`Plan::refine`] narrows it to what changed.
    pub unverified: HashSet<String>,
}

impl Plan {
    /// Narrow the updates of `unverified` people to what differs from their entries in
    /// `full` (a read of them with every attribute); an update left empty goes, and a person
    /// with no other step counts as unchanged. A person `full` lacks keeps the whole update.
    pub fn refine(&mut self, full: &Snapshot) {
        let by_id: HashMap<&str, &PersonEntry> = (full.people.iter())
            .filter_map(|p| Some((p.id.as_deref()?, p)))
            .collect();
        let mut emptied = HashSet::new();
        for step in &mut self.steps {
            let Op::UpdatePerson { id, changes: owned } = &mut step.op else {
                continue;
            };
            let Some(entry) = by_id
                .get(id.as_str())
                .filter(|_| self.unverified.contains(id))
            else {
                continue;
            };
            *owned = changes(&entry.attrs, owned);
            step.reason = changed_reason(owned);
            if owned.is_empty() {
                emptied.insert(id.clone());
            }
        }
        self.steps
            .retain(|s| !matches!(&s.op, Op::UpdatePerson { id, .. } if emptied.contains(id)));
        for id in &emptied {
            let other = (self.steps.iter()).any(|s| match &s.op {
                Op::AddMembers { people, .. } | Op::RemoveMembers { people, .. } => {
                    people.contains(id)
                }
                op => op.subject() == (ObjectKind::User, id),
            });
            if !other {
                self.unchanged_people += 1;
            }
        }
        self.unverified.clear();
    }

    /// Steps doing `verb` (a [`Verb`], or its word).
    pub fn count<V>(&self, verb: V) -> usize
    where
        Verb: PartialEq<V>,
    {
        self.steps.iter().filter(|s| s.op.verb() == verb).count()
    }
}

impl Problem {
    fn department(d: &Department, reason: &'static str, message: String) -> Self {
        Problem {
            kind: ObjectKind::Department,
            id: d.id.clone(),
            name: d.name.clone(),
            reason,
            message,
        }
    }

    fn person(p: &Person, reason: &'static str, message: String) -> Self {
        Problem {
            kind: ObjectKind::User,
            id: p.id.clone(),
            name: p.name.clone(),
            reason,
            message,
        }
    }
}

/// A plan while its steps build it: problems and counters go straight into `out`; operations
/// wait in `steps`, removals apart (the gates may drop them), memberships grouped by
/// department until they become one step per department.
#[derive(Default)]
struct Draft {
    out: Plan,
    steps: Vec<Step>,
    removals: Vec<Step>,
    members: Members,
}

/// Memberships to add and remove, by department (ordered, so the plan is the same every run).
#[derive(Default)]
struct Members {
    add: BTreeMap<String, Vec<String>>,
    remove: BTreeMap<String, Vec<String>>,
}

impl Members {
    fn add(&mut self, dept: &str, person: &str) {
        self.add
            .entry(dept.to_owned())
            .or_default()
            .push(person.to_owned());
    }

    fn remove(&mut self, dept: &str, person: &str) {
        self.remove
            .entry(dept.to_owned())
            .or_default()
            .push(person.to_owned());
    }

    /// One step per department: the additions, then the removals.
    fn into_steps(self, steps: &mut Vec<Step>) {
        let add = self.add.into_iter().map(|(dept, people)| Step {
            op: Op::AddMembers {
                dept: dept.clone(),
                people,
            },
            label: dept,
            reason: "membership".into(),
        });
        let remove = self.remove.into_iter().map(|(dept, people)| Step {
            op: Op::RemoveMembers {
                dept: dept.clone(),
                people,
            },
            label: dept,
            reason: "membership".into(),
        });
        steps.extend(add.chain(remove));
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

/// Why an update is planned: the attributes it changes.
fn changed_reason(diff: &Attrs) -> Cow<'static, str> {
    let names: Vec<&str> = diff.keys().map(Name::as_str).collect();
    format!("changed: {names:?}").into()
}

/// What an incremental run planning from a targeted read (`dir` holds only what the batch
/// touches) must still look up in the node, given what it `asked` already: first the match
/// values of people without an entry (the unlinked entries a rule could link to them), then
/// the account names handing out homonym suffixes would check. Empty once `dir` settles the
/// plan as a read of the whole node would.
pub(crate) fn lookups(
    source: &SourceSnapshot,
    dir: &Snapshot,
    mapping: &Mapping,
    asked: &Anchors,
) -> Anchors {
    let mut more = Anchors {
        name_attr: mapping.name_attribute().to_ascii_lowercase(),
        ..Default::default()
    };
    let linked: HashSet<&str> = dir.people.iter().filter_map(|p| p.id.as_deref()).collect();
    let new: Vec<&Person> = (source.people.iter())
        .filter(|p| !linked.contains(p.id.as_str()))
        .collect();
    if new.is_empty() {
        return more;
    }
    for p in new {
        // A template error is the plan's to report; it matches nothing.
        let Ok(values) = mapping.match_values(p) else {
            continue;
        };
        more.values.extend(
            values
                .into_iter()
                .map(|(attr, value)| (attr.to_ascii_lowercase(), value))
                .filter(|v| !asked.values.contains(v)),
        );
    }
    if !more.values.is_empty() {
        return more;
    }
    let names = UniqueNames::of(dir, mapping);
    let wants = people::match_people(source, dir, &names, mapping, &mut Plan::default());
    more.names = names.unknown(&wants, mapping.suffix_style(), &asked.names);
    more
}

/// What a lean read of the node folds into digests for this mapping: the attributes it keeps
/// in step on every run (`Always`), the naming attribute aside.
pub fn digested(mapping: &Mapping) -> Digested {
    Digested::new(mapping.owned_person_attributes(), mapping.name_attribute())
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
    let mut draft = Draft::default();
    let depts = departments::plan_departments(source, dir, mapping, scope, &mut draft);
    let mut names = UniqueNames::of(dir, mapping);
    let mut wants = people::match_people(source, dir, &names, mapping, &mut draft.out);
    names.assign(&mut wants, mapping.suffix_style());
    // Only an incomplete read needs them: who the source still has.
    let seen: Option<HashSet<&str>> =
        (!source.complete).then(|| wants.iter().map(|w| w.person.id.as_str()).collect());
    people::diff_people(wants, &depts.planned, &names.attr, opts, &mut draft);
    removals::plan_leavers(source, dir, scope, opts, &names, &mut draft);
    removals::plan_gone_departments(source, dir, &depts.in_dir, scope, opts, &mut draft);
    references::plan_references(source, dir, mapping, opts, scope, &names.attr, &mut draft);

    let Draft {
        mut out,
        mut steps,
        mut removals,
        members,
    } = draft;
    members.into_steps(&mut steps);
    if let Some(seen) = seen {
        out.suppressed_removals =
            gates::drop_removals_of_incomplete_read(&mut steps, &mut removals, &seen);
    }
    if let Some(held) = gates::hold_too_many_removals(&removals, dir.people.len(), opts) {
        out.held = Some(held);
        return out;
    }
    steps.extend(removals);
    steps.sort_by_key(|s| s.op.phase());
    out.steps = steps;
    out
}
