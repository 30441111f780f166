//! The Outbound plan: the directory tree against DingTalk's subtree under the target's root.
//! Departments (parents first), then people (rendered, placed, diffed), then removals behind
//! the incomplete-read and threshold gates, managed departments deleted leaves first.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap, HashSet},
};

use super::{
    OutboundOptions, OutboundReport, SOURCE_PREFIX, failure,
    fields::{current_field, hired_ms, user_create, user_update},
    matching::{Found, Matcher},
    parent_failed,
    per_dept::{self, PerDept},
    references::{DeptFields, People, plan_department_fields, resolve_person},
};
use crate::{
    api::target::DeletionPolicy,
    dingtalk::{
        DingTalkError,
        contacts::{Department, User},
        write::DeptCreate,
    },
    directory::{SourceDept, SourcePerson, SourceTree},
    mapping::outbound::{OutboundMapping, OutboundPerson},
    sync::{Failure, ObjectKind, deletion_gate, depth},
};

/// One planned DingTalk write.
#[derive(Debug, Clone, PartialEq)]
pub enum OutOp {
    CreateDept {
        source: String,
        name: String,
        /// Parent: an existing DingTalk id, or a department created earlier in the plan.
        parent: Parent,
    },
    UpdateDept {
        dept_id: i64,
        name: Option<String>,
        parent: Option<Parent>,
    },
    CreateUser {
        person: OutboundPerson,
        dept: Parent,
    },
    UpdateUser {
        userid: String,
        fields: BTreeMap<String, String>,
        /// The whole new membership set (DingTalk replaces it).
        depts: Option<(Vec<i64>, Option<Parent>)>,
    },
    DeleteUser {
        userid: String,
    },
    DeleteDept {
        dept_id: i64,
        name: String,
    },
    /// A person's order and title in their department, once it exists.
    UserDeptFields {
        userid: String,
        dept: Parent,
        fields: PerDept,
    },
    /// A department's fields besides the name, once its people are in place.
    UpdateDeptFields {
        dept: Parent,
        name: String,
        fields: DeptFields,
    },
    /// A same-named, unmarked department DingTalk already has (`adoptExisting`): marked with
    /// the container's id, so dingsync manages it from now on.
    AdoptDept {
        dept_id: i64,
        source: String,
        name: String,
    },
}

impl OutOp {
    /// One line for `dingsync plan`.
    pub fn describe(&self) -> String {
        match self {
            OutOp::CreateDept { name, .. } => format!("create department {name}"),
            OutOp::UpdateDept {
                dept_id,
                name,
                parent,
            } => format!(
                "update department {dept_id}{}{}",
                name.as_deref()
                    .map(|n| format!(": rename to {n}"))
                    .unwrap_or_default(),
                if parent.is_some() { ", move" } else { "" }
            ),
            OutOp::CreateUser { person, .. } => format!("create user {}", person.userid),
            OutOp::UpdateUser {
                userid,
                fields,
                depts,
            } => match (fields.is_empty(), depts) {
                (true, Some((_, None))) => format!("remove user {userid} from the department"),
                (true, _) => format!("move user {userid}"),
                _ => format!(
                    "update user {userid}: {}",
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            },
            OutOp::DeleteUser { userid } => format!("delete user {userid}"),
            OutOp::DeleteDept { dept_id, name } => format!("delete department {dept_id} {name}"),
            OutOp::UserDeptFields { userid, fields, .. } => {
                let names = [
                    fields.order.map(|_| "dept_order_list"),
                    fields.title.as_ref().map(|_| "dept_title_list"),
                ];
                let names: Vec<&str> = names.into_iter().flatten().collect();
                format!("update user {userid}: {}", names.join(", "))
            }
            OutOp::UpdateDeptFields { name, fields, .. } => {
                format!("update department {name}: {}", fields.names().join(", "))
            }
            OutOp::AdoptDept { dept_id, name, .. } => {
                format!("adopt department {dept_id} {name}")
            }
        }
    }
}

/// A department known by DingTalk id or created in this run (by source id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Parent {
    Id(i64),
    New(String),
}

/// The plan for one Outbound run: the writes, and the report as planning leaves it (failures
/// found, people unchanged or kept, the gates' verdict); applying goes on from that report.
#[derive(Debug, Clone, Default)]
pub struct OutboundPlan {
    pub ops: Vec<OutOp>,
    pub report: OutboundReport,
}

/// DingTalk's side, as the plan compares with it.
struct DingTalkSide<'a> {
    /// Every department under the root, the root included.
    subtree: HashSet<i64>,
    /// Departments dingsync made, by the directory id they mirror.
    managed: HashMap<&'a str, &'a Department>,
    users: HashMap<&'a str, &'a User>,
    all_users: &'a [User],
    departments: &'a [Department],
}

impl<'a> DingTalkSide<'a> {
    fn of(departments: &'a [Department], users: &'a [User]) -> Self {
        DingTalkSide {
            subtree: departments.iter().map(|d| d.dept_id).collect(),
            managed: departments
                .iter()
                .filter_map(|d| {
                    d.source_identifier
                        .as_deref()
                        .and_then(|s| s.strip_prefix(SOURCE_PREFIX))
                        .map(|id| (id, d))
                })
                .collect(),
            users: users.iter().map(|u| (u.userid.as_str(), u)).collect(),
            all_users: users,
            departments,
        }
    }

    /// A department under `parent` with this name that no directory container marked.
    fn unmarked_child(&self, parent: i64, name: &str) -> Option<&'a Department> {
        self.departments.iter().find(|d| {
            d.parent_id == Some(parent)
                && d.name == name
                && d.source_identifier.as_deref().unwrap_or("").is_empty()
        })
    }
}

/// Where each directory container is, or will be, in DingTalk.
#[derive(Default)]
struct Placement<'a> {
    dept_of: HashMap<&'a str, Parent>,
    /// Containers that could not be planned: their people and children are not either.
    failed: HashSet<&'a str>,
}

/// Plans the run from the directory tree and DingTalk's subtree under `opts.root`.
pub fn plan(
    tree: &SourceTree,
    departments: &[Department],
    users: &[User],
    dingtalk_complete: bool,
    incomplete: Vec<String>,
    mapping: &OutboundMapping,
    opts: &OutboundOptions,
) -> OutboundPlan {
    let mut out = OutboundPlan {
        ops: Vec::new(),
        report: OutboundReport {
            complete: dingtalk_complete,
            incomplete,
            people: tree.people.len(),
            departments: tree.departments.len(),
            ..Default::default()
        },
    };
    let side = DingTalkSide::of(departments, users);
    let placement = plan_departments(tree, &side, mapping, opts, &mut out);
    let (rendered, per_userid) = render_people(tree, mapping, &mut out.report.failures);
    let mut wanted = HashSet::new();
    let linked = link_people(rendered, &per_userid, &side, &mut wanted, &mut out.report);
    let mut people = People::default();
    tree.people.iter().for_each(|p| people.know(&p.key));
    linked
        .iter()
        .for_each(|(p, r, _)| people.add(&p.key, &r.userid));
    let placed = plan_people(linked, &placement, &side, &people, opts, &mut out);
    let by_id: HashMap<i64, &Department> = departments.iter().map(|d| (d.dept_id, d)).collect();
    let fields = plan_department_fields(
        &tree.departments,
        &placement.dept_of,
        &by_id,
        mapping,
        &people,
        &placed,
        &mut out.report,
    );
    out.ops.extend(fields);
    let removals = plan_user_removals(users, &wanted, &side.subtree, opts, &mut out.report);
    let dept_deletes = plan_department_deletes(tree, &side, departments);
    gate_removals(out, removals, dept_deletes, users.len(), opts)
}

/// Each container as a DingTalk department: created, or (when dingsync made it) renamed and
/// moved to follow the directory.
fn plan_departments<'a>(
    tree: &'a SourceTree,
    side: &DingTalkSide<'_>,
    mapping: &OutboundMapping,
    opts: &OutboundOptions,
    out: &mut OutboundPlan,
) -> Placement<'a> {
    let mut at = Placement::default();
    for d in &tree.departments {
        let parent = match &d.parent {
            None => Some(Parent::Id(opts.root)),
            Some(p) if at.failed.contains(p.as_str()) => None,
            Some(p) => at.dept_of.get(p.as_str()).cloned(),
        };
        let named = match parent {
            None => Err(parent_failed(ObjectKind::Department, &d.id, &d.name)),
            Some(parent) => department_name(d, mapping).map(|name| (parent, name)),
        };
        let (parent, name) = match named {
            Ok(x) => x,
            Err(f) => {
                at.failed.insert(&d.id);
                out.report.failures.push(f);
                continue;
            }
        };
        let managed = side.managed.get(d.id.as_str());
        let existing = existing_department(side, &parent, &name).filter(|_| managed.is_none());
        let placed = match (managed, existing) {
            (Some(cur), _) => {
                out.ops.extend(department_update(cur, name, parent));
                Parent::Id(cur.dept_id)
            }
            (None, Some(found)) => {
                match adopt(d, found, opts.adopt_existing) {
                    Ok(op) => out.ops.push(op),
                    Err(f) => {
                        at.failed.insert(&d.id);
                        out.report.failures.push(f);
                        continue;
                    }
                }
                Parent::Id(found.dept_id)
            }
            (None, None) => {
                out.ops.push(OutOp::CreateDept {
                    source: d.id.clone(),
                    name,
                    parent,
                });
                Parent::New(d.id.clone())
            }
        };
        at.dept_of.insert(&d.id, placed);
    }
    at
}

/// The unmarked department DingTalk already has where a container's would be created (its
/// name taken under the same parent, which DingTalk refuses with 60021).
fn existing_department<'a>(
    side: &DingTalkSide<'a>,
    parent: &Parent,
    name: &str,
) -> Option<&'a Department> {
    match parent {
        Parent::Id(pid) => side.unmarked_child(*pid, name),
        Parent::New(_) => None,
    }
}

/// Adopting `found` for container `d` when the target allows it, else a failure that says how.
fn adopt(d: &SourceDept, found: &Department, allowed: bool) -> Result<OutOp, Failure> {
    if !allowed {
        return Err(failure(
            ObjectKind::Department,
            &d.id,
            &d.name,
            "AlreadyExists",
            already_exists(&found.name, found.dept_id),
        ));
    }
    Ok(OutOp::AdoptDept {
        dept_id: found.dept_id,
        source: d.id.clone(),
        name: found.name.clone(),
    })
}

/// Why a container cannot be created beside a department DingTalk already has.
pub(super) fn already_exists(name: &str, dept_id: i64) -> String {
    format!(
        "DingTalk already has a department named {name:?} (id {dept_id}) under the same parent, not created by dingsync (errcode 60021); set adoptExisting: true on the SyncTarget to adopt it (dingsync then marks and manages it)"
    )
}

/// A container's DingTalk name: rendered, and valid by DingTalk's rules.
fn department_name(d: &SourceDept, mapping: &OutboundMapping) -> Result<String, Failure> {
    let fail = |reason, message| failure(ObjectKind::Department, &d.id, &d.name, reason, message);
    let name = mapping
        .department_name(&d.name, &d.attrs)
        .map_err(|e| fail("TemplateFailed", e.to_string()))?;
    DeptCreate::new(name.clone(), 2)
        .validate()
        .map_err(|e| fail("InvalidValue", e.to_string()))?;
    Ok(name)
}

/// A managed department whose container was renamed or moved.
fn department_update(cur: &Department, name: String, parent: Parent) -> Option<OutOp> {
    let rename = (cur.name != name).then_some(name);
    let moved = cur.parent_id.map(Parent::Id).as_ref() != Some(&parent);
    (rename.is_some() || moved).then(|| OutOp::UpdateDept {
        dept_id: cur.dept_id,
        name: rename,
        parent: moved.then_some(parent),
    })
}

/// Each person as a DingTalk user, and how many entries render each userid.
fn render_people<'a>(
    tree: &'a SourceTree,
    mapping: &OutboundMapping,
    failures: &mut Vec<Failure>,
) -> (
    Vec<(&'a SourcePerson, OutboundPerson)>,
    HashMap<String, usize>,
) {
    let mut rendered = Vec::new();
    let mut per_userid: HashMap<String, usize> = HashMap::new();
    for p in &tree.people {
        let fail = |reason, message| failure(ObjectKind::Person, &p.id, &p.key, reason, message);
        match mapping.person(&p.attrs) {
            Ok(r) if r.userid.is_empty() => failures.push(fail(
                "InvalidValue",
                "user.uniqueName rendered an empty userid".into(),
            )),
            Ok(r) => {
                *per_userid.entry(r.userid.clone()).or_default() += 1;
                rendered.push((p, r));
            }
            Err(e) => failures.push(fail("TemplateFailed", e.to_string())),
        }
    }
    (rendered, per_userid)
}

/// A rendered person with the DingTalk user they are (found by userid or a `match` rule).
type Linked<'a, 'b> = (&'a SourcePerson, OutboundPerson, Option<&'b User>);

/// Each rendered person with the DingTalk user they already are, if any. Every userid the
/// node renders goes in `wanted` (one several entries render too: it is nobody's to remove),
/// and so do the users an ambiguous match found.
fn link_people<'a, 'b>(
    rendered: Vec<(&'a SourcePerson, OutboundPerson)>,
    per_userid: &HashMap<String, usize>,
    side: &DingTalkSide<'b>,
    wanted: &mut HashSet<String>,
    report: &mut OutboundReport,
) -> Vec<Linked<'a, 'b>> {
    let renders: HashSet<&str> = per_userid.keys().map(String::as_str).collect();
    let mut matcher = Matcher::new(side.all_users, &renders);
    let mut linked = Vec::new();
    for (p, mut r) in rendered {
        wanted.insert(r.userid.clone());
        if per_userid[&r.userid] > 1 {
            let message = format!(
                "several directory entries render userid {:?}; none is pushed",
                r.userid
            );
            let conflict = failure(ObjectKind::Person, &r.userid, &p.key, "Conflict", message);
            report.failures.push(conflict);
            continue;
        }
        let cur = match side.users.get(r.userid.as_str()) {
            Some(cur) => Some(*cur),
            None => match matcher.find(&r) {
                Found::Nobody => None,
                Found::One(u) => {
                    // Linked: DingTalk's userid is immutable, so theirs is the one written.
                    r.userid = u.userid.clone();
                    wanted.insert(r.userid.clone());
                    report.linked += 1;
                    Some(u)
                }
                Found::Several(field, users) => {
                    report.failures.push(ambiguous(p, &r, &field, &users));
                    // Nobody's to remove while it is unresolved.
                    wanted.extend(users.iter().map(|u| u.userid.clone()));
                    continue;
                }
            },
        };
        linked.push((p, r, cur));
    }
    linked
}

/// Each linked person against DingTalk: created, updated, or unchanged. Returns the
/// department each is placed in. A manager DingTalk does not have yet is set after everyone
/// is written (DingTalk refuses an unknown manager).
fn plan_people(
    linked: Vec<Linked<'_, '_>>,
    placement: &Placement<'_>,
    side: &DingTalkSide<'_>,
    people: &People,
    opts: &OutboundOptions,
    out: &mut OutboundPlan,
) -> HashMap<String, Parent> {
    let mut placed = HashMap::new();
    let mut later = Vec::new();
    for (p, mut r, cur) in linked {
        let dept = match department_of(p, &r.userid, placement, opts) {
            Ok(d) => d,
            Err(f) => {
                out.report.failures.push(f);
                continue;
            }
        };
        placed.insert(r.userid.clone(), dept.clone());
        resolve_person(&r.refs, &mut r.fields, people);
        if let Some(v) = r.fields.get_mut("hired_date").filter(|v| !v.is_empty()) {
            match hired_ms(v) {
                Ok(ms) => *v = ms,
                Err(m) => {
                    let f = failure(ObjectKind::Person, &r.userid, &p.key, "InvalidValue", m);
                    out.report.failures.push(f);
                    continue;
                }
            }
        }
        later.extend(defer_manager(&mut r, cur, side));
        match per_dept::take(&mut r.fields, &r.userid, &p.key) {
            Ok(want) => later.extend(per_dept::differing(want, cur, &dept).map(|fields| {
                OutOp::UserDeptFields {
                    userid: r.userid.clone(),
                    dept: dept.clone(),
                    fields,
                }
            })),
            Err(f) => {
                out.report.failures.push(f);
                continue;
            }
        }
        let op = match cur {
            None => new_user(p, r, dept),
            Some(cur) => user_changes(p, r, dept, cur, &side.subtree, &mut out.report),
        };
        match op {
            Ok(Some(op)) => out.ops.push(op),
            Ok(None) => out.report.unchanged += 1,
            Err(f) => out.report.failures.push(f),
        }
    }
    out.ops.extend(later);
    placed
}

/// A manager DingTalk does not have yet (created in this run) is taken out of the person's
/// write and set by an update of its own once everyone is written.
fn defer_manager(
    r: &mut OutboundPerson,
    cur: Option<&User>,
    side: &DingTalkSide<'_>,
) -> Option<OutOp> {
    let m = r.fields.get("manager_userid").filter(|m| !m.is_empty())?;
    if side.users.contains_key(m.as_str()) {
        return None;
    }
    let m = r.fields.remove("manager_userid")?;
    let now = cur.and_then(|u| u.manager_userid.as_deref());
    (now != Some(m.as_str())).then(|| OutOp::UpdateUser {
        userid: r.userid.clone(),
        fields: BTreeMap::from([("manager_userid".to_string(), m)]),
        depts: None,
    })
}

/// A `match` rule found several DingTalk users: the person is refused, naming them.
fn ambiguous(p: &SourcePerson, r: &OutboundPerson, field: &str, users: &[&User]) -> Failure {
    let names: Vec<String> = users
        .iter()
        .map(|u| format!("{} ({})", u.userid, u.name.as_deref().unwrap_or("")))
        .collect();
    let message = format!(
        "the match rule on {field} finds {} DingTalk users: {}; none is linked and the person is not created",
        users.len(),
        names.join(", ")
    );
    failure(
        ObjectKind::Person,
        &r.userid,
        &p.key,
        "AmbiguousMatch",
        message,
    )
}

/// The DingTalk department a person goes in: their container's, or the root.
fn department_of(
    p: &SourcePerson,
    userid: &str,
    placement: &Placement<'_>,
    opts: &OutboundOptions,
) -> Result<Parent, Failure> {
    match &p.dept {
        None => Ok(Parent::Id(opts.root)),
        Some(d) if placement.failed.contains(d.as_str()) => {
            Err(parent_failed(ObjectKind::Person, userid, &p.key))
        }
        Some(d) => Ok(placement
            .dept_of
            .get(d.as_str())
            .cloned()
            .unwrap_or(Parent::Id(opts.root))),
    }
}

/// A user request DingTalk's rules refuse: that person's failure, naming the field.
pub(super) fn invalid_value(p: &SourcePerson, userid: &str, e: &DingTalkError) -> Failure {
    failure(
        ObjectKind::Person,
        userid,
        &p.key,
        "InvalidValue",
        e.to_string(),
    )
}

/// A person DingTalk does not have yet.
fn new_user(p: &SourcePerson, r: OutboundPerson, dept: Parent) -> Result<Option<OutOp>, Failure> {
    // Validate with a placeholder department: the id is only known at apply.
    user_create(&r, 2)
        .validate()
        .map_err(|e| invalid_value(p, &r.userid, &e))?;
    Ok(Some(OutOp::CreateUser { person: r, dept }))
}

/// A person DingTalk has: the fields that differ, and their membership when they are not in
/// place. `None` when nothing changes.
fn user_changes(
    p: &SourcePerson,
    r: OutboundPerson,
    dept: Parent,
    cur: &User,
    subtree: &HashSet<i64>,
    report: &mut OutboundReport,
) -> Result<Option<OutOp>, Failure> {
    let fields = changed_fields(p, &r, cur, &mut report.failures);
    let depts = membership(cur, dept, subtree);
    if fields.is_empty() && depts.is_none() {
        return Ok(None);
    }
    let list = depts.as_ref().map(|(outside, _)| {
        let mut v = outside.clone();
        v.push(2);
        v
    });
    user_update(&r.userid, &fields, list, cur.extension.as_deref())
        .validate()
        .map_err(|e| invalid_value(p, &r.userid, &e))?;
    Ok(Some(OutOp::UpdateUser {
        userid: r.userid,
        fields,
        depts,
    }))
}

/// The mapped fields whose value differs from DingTalk's. An empty wanted value is "no value":
/// DingTalk cannot clear most fields, so it is left as it is rather than sent. A mobile is
/// never sent (DingTalk refuses it); a differing one is that person's failure.
pub(super) fn changed_fields(
    p: &SourcePerson,
    r: &OutboundPerson,
    cur: &User,
    failures: &mut Vec<Failure>,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for (f, v) in &r.fields {
        let now = current_field(cur, f).unwrap_or_default();
        if v.is_empty() && f == "manager_userid" && !now.is_empty() {
            // The manager left or was taken away: DingTalk's is cleared.
            fields.insert(f.clone(), String::new());
            continue;
        }
        if v.is_empty() || *v == now {
            continue;
        }
        if f == "mobile" {
            if !now.is_empty() {
                failures.push(failure(
                    ObjectKind::Person,
                    &r.userid,
                    &p.key,
                    "MobileChanged",
                    format!(
                        "mobile differs ({now} in DingTalk): DingTalk does not let an app change a mobile (errcode 40022); change it in DingTalk, or remove and re-add the person there"
                    ),
                ));
            }
            continue;
        }
        fields.insert(f.clone(), v.clone());
    }
    fields
}

/// A user's new memberships when they are not in `dept` alone within the subtree: their
/// departments elsewhere in the enterprise, kept, and `dept`. `None` when already in place.
fn membership(
    cur: &User,
    dept: Parent,
    subtree: &HashSet<i64>,
) -> Option<(Vec<i64>, Option<Parent>)> {
    let current: &[i64] = cur.dept_id_list.as_deref().unwrap_or_default();
    let in_place = match &dept {
        Parent::Id(id) => {
            current.iter().filter(|d| subtree.contains(d)).count() == 1 && current.contains(id)
        }
        Parent::New(_) => false,
    };
    let outside: Vec<i64> = current
        .iter()
        .copied()
        .filter(|d| !subtree.contains(d))
        .collect();
    (!in_place).then_some((outside, Some(dept)))
}

/// People in DingTalk's subtree who are no longer in the node: taken out of the subtree when
/// they belong elsewhere in the enterprise too, else deleted (policy `Delete`) or kept.
fn plan_user_removals(
    users: &[User],
    wanted: &HashSet<String>,
    subtree: &HashSet<i64>,
    opts: &OutboundOptions,
    report: &mut OutboundReport,
) -> Vec<OutOp> {
    let mut removals = Vec::new();
    for u in users.iter().filter(|u| !wanted.contains(&u.userid)) {
        let outside: Vec<i64> = (u.dept_id_list.iter().flatten().copied())
            .filter(|d| !subtree.contains(d))
            .collect();
        if !outside.is_empty() {
            removals.push(OutOp::UpdateUser {
                userid: u.userid.clone(),
                fields: BTreeMap::new(),
                depts: Some((outside, None)),
            });
        } else if opts.policy == DeletionPolicy::Delete {
            removals.push(OutOp::DeleteUser {
                userid: u.userid.clone(),
            });
        } else {
            report.kept += 1;
        }
    }
    removals
}

/// Managed departments no longer in the node, leaves first.
fn plan_department_deletes(
    tree: &SourceTree,
    side: &DingTalkSide<'_>,
    departments: &[Department],
) -> Vec<OutOp> {
    let wanted: HashSet<&str> = tree.departments.iter().map(|d| d.id.as_str()).collect();
    let parent_of = |id: &i64| {
        departments
            .iter()
            .find(|x| x.dept_id == *id)
            .and_then(|x| x.parent_id)
    };
    let mut gone: Vec<&Department> = side
        .managed
        .iter()
        .filter(|(id, _)| !wanted.contains(*id))
        .map(|(_, d)| *d)
        .collect();
    gone.sort_by_key(|d| Reverse(depth(d.parent_id, parent_of)));
    gone.into_iter()
        .map(|d| OutOp::DeleteDept {
            dept_id: d.dept_id,
            name: d.name.clone(),
        })
        .collect()
}

/// On an incomplete read of DingTalk nothing is removed; too many removals (of DingTalk's
/// `owned` users) hold the whole run until approved.
fn gate_removals(
    mut out: OutboundPlan,
    removals: Vec<OutOp>,
    dept_deletes: Vec<OutOp>,
    owned: usize,
    opts: &OutboundOptions,
) -> OutboundPlan {
    if !out.report.complete {
        out.report.suppressed_removals = removals.len() + dept_deletes.len();
        return out;
    }
    let ids: Vec<String> = removals
        .iter()
        .map(|op| match op {
            OutOp::DeleteUser { userid } => format!("delete:{userid}"),
            OutOp::UpdateUser { userid, .. } => format!("leave:{userid}"),
            _ => String::new(),
        })
        .collect();
    if let Some(held) = deletion_gate(
        ids,
        owned,
        opts.max_count,
        opts.max_percent,
        opts.approval.as_deref(),
        "removals from DingTalk",
    ) {
        out.report.held = Some(held);
        out.ops.clear();
        return out;
    }
    out.ops.extend(removals);
    out.ops.extend(dept_deletes);
    out
}
