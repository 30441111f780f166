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

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Failure, Held, ObjectKind, SyncError, deletion_gate};
use crate::{
    api::target::DeletionPolicy,
    dingtalk::{
        DingTalkClient, DingTalkError,
        contacts::{Department, User},
        write::{DeptCreate, DeptUpdate, UserCreate, UserUpdate},
    },
    directory::{Directory, SourceTree},
    mapping::outbound::{OutboundMapping, OutboundPerson},
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
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            root: 1,
            policy: DeletionPolicy::Disable,
            max_count: 50,
            max_percent: 10,
            approval: None,
        }
    }
}

impl OutboundOptions {
    /// The options a SyncTarget spec sets (`scope.departmentIds` must name exactly one
    /// department; deletion defaults as for Inbound).
    pub fn for_target(
        spec: &crate::api::SyncTargetSpec,
        approval: Option<String>,
    ) -> Result<Self, String> {
        let [root] = spec.scope.department_ids.as_slice() else {
            return Err("scope.departmentIds: an Outbound target mirrors its node under exactly one DingTalk department".into());
        };
        let deletion = spec.deletion.clone().unwrap_or_default();
        Ok(OutboundOptions {
            root: *root,
            policy: deletion.policy,
            max_count: deletion.max_count.unwrap_or(50),
            max_percent: deletion.max_percent.unwrap_or(10),
            approval,
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

/// What a poll compares with: the newest `modifyTimestamp` seen, the entries modified at that
/// very second (a `>=` search returns them again), and the node's shape (containers and the
/// set of people), which deletions and container renames change without touching any
/// person's timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollMark {
    pub stamp: Option<String>,
    pub at_stamp: BTreeMap<String, String>,
    pub shape: String,
}

fn modified(p: &crate::directory::SourcePerson) -> Option<&str> {
    p.attrs.first("modifytimestamp")
}

fn shape_of(
    tree: &SourceTree,
    people: &mut dyn Iterator<Item = (String, Option<String>)>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for d in &tree.departments {
        h.update(format!("d\t{}\t{}\t{:?}\n", d.id, d.name, d.parent));
    }
    let mut ids: Vec<(String, Option<String>)> = people.collect();
    ids.sort();
    for (id, dept) in ids {
        h.update(format!("p\t{id}\t{dept:?}\n"));
    }
    hex::encode(h.finalize())
}

/// The mark of a full read.
pub fn mark_of(tree: &SourceTree) -> PollMark {
    let stamp = tree.stamp.clone();
    let at_stamp = tree
        .people
        .iter()
        .filter(|p| stamp.is_some() && modified(p) == stamp.as_deref())
        .map(|p| (p.id.clone(), modified(p).unwrap_or_default().to_string()))
        .collect();
    PollMark {
        shape: shape_of(
            tree,
            &mut tree.people.iter().map(|p| (p.id.clone(), p.dept.clone())),
        ),
        stamp,
        at_stamp,
    }
}

/// Asks the directory what changed since `mark` (people modified since its stamp, plus the
/// node's shape) without reading DingTalk at all. Returns whether anything changed.
pub async fn poll(dir: &dyn Directory, mark: &PollMark) -> Result<bool, SyncError> {
    let Some(stamp) = mark.stamp.as_deref() else {
        return Ok(true);
    };
    let tree = dir.read_tree(Some(stamp)).await?;
    let fresh = tree
        .people
        .iter()
        .any(|p| mark.at_stamp.get(&p.id).map(String::as_str) != modified(p).or(Some("")));
    let all = tree.all_people.clone().unwrap_or_default();
    let shape = shape_of(&tree, &mut all.into_iter());
    Ok(fresh || shape != mark.shape)
}

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
        }
    }
}

/// A department known by DingTalk id or created in this run (by source id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Parent {
    Id(i64),
    New(String),
}

/// The plan for one Outbound run.
#[derive(Debug, Clone, Default)]
pub struct OutboundPlan {
    pub ops: Vec<OutOp>,
    pub failures: Vec<Failure>,
    pub unchanged: usize,
    pub kept: usize,
    pub suppressed_removals: usize,
    pub held: Option<Held>,
    pub complete: bool,
    pub incomplete: Vec<String>,
    pub people: usize,
    pub departments: usize,
}

fn failure(kind: ObjectKind, id: &str, name: &str, reason: &str, message: String) -> Failure {
    Failure {
        kind,
        id: id.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
        message,
    }
}

/// A user's current value of a mapped field, as DingTalk reported it.
fn current_field(u: &User, field: &str) -> Option<String> {
    match field {
        "name" => u.name.clone(),
        "mobile" => u.mobile.clone(),
        "email" => u.email.clone(),
        "org_email" => u.org_email.clone(),
        "title" => u.title.clone(),
        "job_number" => u.job_number.clone(),
        "work_place" => u.work_place.clone(),
        "telephone" => u.telephone.clone(),
        "remark" => u.remark.clone(),
        f => f.strip_prefix("extension.").and_then(|k| {
            let ext: serde_json::Value = serde_json::from_str(u.extension.as_deref()?).ok()?;
            ext.get(k).and_then(|v| v.as_str()).map(str::to_string)
        }),
    }
}

/// The `extension.<key>` fields with a value, as DingTalk's `extension` object.
fn extension_of(fields: &BTreeMap<String, String>) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            k.strip_prefix("extension.")
                .map(|key| (key.to_string(), serde_json::Value::String(v.clone())))
        })
        .collect()
}

/// Builds the create request (validated later, at apply, with the dept id known).
fn user_create(p: &OutboundPerson, dept: i64) -> UserCreate {
    let get = |f: &str| p.fields.get(f).filter(|v| !v.is_empty()).cloned();
    let ext = extension_of(&p.fields);
    UserCreate {
        userid: Some(p.userid.clone()),
        name: get("name").unwrap_or_default(),
        mobile: get("mobile"),
        dept_id_list: vec![dept],
        email: get("email"),
        org_email: get("org_email"),
        title: get("title"),
        job_number: get("job_number"),
        work_place: get("work_place"),
        telephone: get("telephone"),
        remark: get("remark"),
        extension: (!ext.is_empty()).then_some(ext),
        ..Default::default()
    }
}

fn user_update(
    userid: &str,
    fields: &BTreeMap<String, String>,
    depts: Option<Vec<i64>>,
) -> UserUpdate {
    let get = |f: &str| fields.get(f).cloned();
    let ext = extension_of(fields);
    UserUpdate {
        userid: userid.to_string(),
        name: get("name"),
        email: get("email"),
        org_email: get("org_email"),
        title: get("title"),
        job_number: get("job_number"),
        work_place: get("work_place"),
        telephone: get("telephone"),
        remark: get("remark"),
        extension: (!ext.is_empty()).then_some(ext),
        extension_merge: true,
        dept_id_list: depts,
        ..Default::default()
    }
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
        complete: dingtalk_complete,
        incomplete,
        people: tree.people.len(),
        departments: tree.departments.len(),
        ..Default::default()
    };
    let subtree: HashSet<i64> = departments.iter().map(|d| d.dept_id).collect();
    let managed: HashMap<&str, &Department> = departments
        .iter()
        .filter_map(|d| {
            d.source_identifier
                .as_deref()
                .and_then(|s| s.strip_prefix(SOURCE_PREFIX))
                .map(|id| (id, d))
        })
        .collect();

    // Departments, parents first (the tree comes that way).
    let mut dept_of: HashMap<&str, Parent> = HashMap::new();
    let mut failed_depts: HashSet<&str> = HashSet::new();
    for d in &tree.departments {
        let parent = match &d.parent {
            None => Some(Parent::Id(opts.root)),
            Some(p) if failed_depts.contains(p.as_str()) => None,
            Some(p) => dept_of.get(p.as_str()).cloned(),
        };
        let Some(parent) = parent else {
            failed_depts.insert(&d.id);
            out.failures.push(failure(
                ObjectKind::Department,
                &d.id,
                &d.name,
                "ParentFailed",
                "its parent department could not be created".into(),
            ));
            continue;
        };
        let name = match mapping.department_name(&d.name, &d.attrs) {
            Ok(n) => n,
            Err(e) => {
                failed_depts.insert(&d.id);
                out.failures.push(failure(
                    ObjectKind::Department,
                    &d.id,
                    &d.name,
                    "TemplateFailed",
                    e.to_string(),
                ));
                continue;
            }
        };
        if let Err(e) = DeptCreate::new(name.clone(), 2).validate() {
            failed_depts.insert(&d.id);
            out.failures.push(failure(
                ObjectKind::Department,
                &d.id,
                &d.name,
                "InvalidValue",
                e.to_string(),
            ));
            continue;
        }
        match managed.get(d.id.as_str()) {
            Some(cur) => {
                let rename = (cur.name != name).then(|| name.clone());
                let moved = cur.parent_id.map(Parent::Id) != Some(parent.clone());
                if rename.is_some() || moved {
                    out.ops.push(OutOp::UpdateDept {
                        dept_id: cur.dept_id,
                        name: rename,
                        parent: moved.then_some(parent),
                    });
                }
                dept_of.insert(&d.id, Parent::Id(cur.dept_id));
            }
            None => {
                out.ops.push(OutOp::CreateDept {
                    source: d.id.clone(),
                    name,
                    parent,
                });
                dept_of.insert(&d.id, Parent::New(d.id.clone()));
            }
        }
    }

    // People.
    let by_userid: HashMap<&str, &User> = users.iter().map(|u| (u.userid.as_str(), u)).collect();
    let mut rendered: Vec<(&crate::directory::SourcePerson, OutboundPerson)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in &tree.people {
        match mapping.person(&p.attrs) {
            Ok(r) if r.userid.is_empty() => out.failures.push(failure(
                ObjectKind::Person,
                &p.id,
                &p.key,
                "InvalidValue",
                "user.uniqueName rendered an empty userid".into(),
            )),
            Ok(r) => {
                *seen.entry(r.userid.clone()).or_default() += 1;
                rendered.push((p, r));
            }
            Err(e) => out.failures.push(failure(
                ObjectKind::Person,
                &p.id,
                &p.key,
                "TemplateFailed",
                e.to_string(),
            )),
        }
    }
    let mut wanted_userids: HashSet<String> = HashSet::new();
    for (p, r) in rendered {
        wanted_userids.insert(r.userid.clone());
        if seen[&r.userid] > 1 {
            out.failures.push(failure(
                ObjectKind::Person,
                &r.userid,
                &p.key,
                "Conflict",
                format!(
                    "several directory entries render userid {:?}; none is pushed",
                    r.userid
                ),
            ));
            continue;
        }
        let dept = match &p.dept {
            None => Parent::Id(opts.root),
            Some(d) if failed_depts.contains(d.as_str()) => {
                out.failures.push(failure(
                    ObjectKind::Person,
                    &r.userid,
                    &p.key,
                    "ParentFailed",
                    "their department could not be created".into(),
                ));
                continue;
            }
            Some(d) => match dept_of.get(d.as_str()) {
                Some(x) => x.clone(),
                None => Parent::Id(opts.root),
            },
        };
        match by_userid.get(r.userid.as_str()) {
            None => {
                // Validate with a placeholder department: the id is only known at apply.
                if let Err(e) = user_create(&r, 2).validate() {
                    out.failures.push(failure(
                        ObjectKind::Person,
                        &r.userid,
                        &p.key,
                        "InvalidValue",
                        e.to_string(),
                    ));
                    continue;
                }
                out.ops.push(OutOp::CreateUser { person: r, dept });
            }
            Some(cur) => {
                let mut fields = BTreeMap::new();
                for (f, v) in &r.fields {
                    let now = current_field(cur, f).unwrap_or_default();
                    // An empty wanted value is "no value": DingTalk cannot clear most fields,
                    // so it is left as it is rather than sent.
                    if v.is_empty() || *v == now {
                        continue;
                    }
                    if f == "mobile" {
                        if !now.is_empty() {
                            out.failures.push(failure(
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
                let current: Vec<i64> = cur.dept_id_list.clone().unwrap_or_default();
                let outside: Vec<i64> = current
                    .iter()
                    .copied()
                    .filter(|d| !subtree.contains(d))
                    .collect();
                let in_place = match &dept {
                    Parent::Id(id) => {
                        current.iter().filter(|d| subtree.contains(d)).count() == 1
                            && current.contains(id)
                    }
                    Parent::New(_) => false,
                };
                let depts = (!in_place).then_some((outside, Some(dept)));
                if fields.is_empty() && depts.is_none() {
                    out.unchanged += 1;
                    continue;
                }
                let check = user_update(
                    &r.userid,
                    &fields,
                    depts.as_ref().map(|(o, _)| {
                        let mut v = o.clone();
                        v.push(2);
                        v
                    }),
                );
                if let Err(e) = check.validate() {
                    out.failures.push(failure(
                        ObjectKind::Person,
                        &r.userid,
                        &p.key,
                        "InvalidValue",
                        e.to_string(),
                    ));
                    continue;
                }
                out.ops.push(OutOp::UpdateUser {
                    userid: r.userid.clone(),
                    fields,
                    depts,
                });
            }
        }
    }

    // Removals: people in DingTalk's subtree who are no longer in the node.
    let mut removals: Vec<OutOp> = Vec::new();
    for u in users {
        if wanted_userids.contains(&u.userid) {
            continue;
        }
        let current = u.dept_id_list.clone().unwrap_or_default();
        let outside: Vec<i64> = current
            .into_iter()
            .filter(|d| !subtree.contains(d))
            .collect();
        if !outside.is_empty() {
            // Also a member elsewhere in the enterprise: only leaves this subtree.
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
            out.kept += 1;
        }
    }
    // Managed departments no longer in the node, leaves first.
    let wanted_depts: HashSet<&str> = tree.departments.iter().map(|d| d.id.as_str()).collect();
    let depth = |d: &Department| {
        let mut n = 0;
        let mut cur = d.parent_id;
        while let Some(p) = cur {
            n += 1;
            cur = departments
                .iter()
                .find(|x| x.dept_id == p)
                .and_then(|x| x.parent_id);
            if n > 64 {
                break;
            }
        }
        n
    };
    let mut gone: Vec<&Department> = managed
        .iter()
        .filter(|(id, _)| !wanted_depts.contains(*id))
        .map(|(_, d)| *d)
        .collect();
    gone.sort_by_key(|d| std::cmp::Reverse(depth(d)));
    let dept_deletes: Vec<OutOp> = gone
        .into_iter()
        .map(|d| OutOp::DeleteDept {
            dept_id: d.dept_id,
            name: d.name.clone(),
        })
        .collect();

    if !out.complete {
        out.suppressed_removals = removals.len() + dept_deletes.len();
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
        users.len(),
        opts.max_count,
        opts.max_percent,
        opts.approval.as_deref(),
        "removals from DingTalk",
    ) {
        out.held = Some(held);
        out.ops.clear();
        return out;
    }
    out.ops.extend(removals);
    out.ops.extend(dept_deletes);
    out
}

/// Reads DingTalk's subtree, with every department's `source_identifier` (fetched one by one
/// where `listsub` leaves it out: whether it does is UNCONFIRMED).
async fn read_dingtalk(
    client: &DingTalkClient,
    root: i64,
) -> (Vec<Department>, Vec<User>, bool, Vec<String>) {
    let scope = client.read_scope(&[root]).await;
    let mut complete = scope.is_complete();
    let mut incomplete = scope.failure_messages();
    let mut departments = scope.departments;
    for d in departments.iter_mut().filter(|d| d.dept_id != root) {
        if d.source_identifier.is_none() {
            match client.get_department(d.dept_id).await {
                Ok(full) => d.source_identifier = full.source_identifier.or(Some(String::new())),
                Err(e) => {
                    complete = false;
                    incomplete.push(format!("department {}: {e}", d.dept_id));
                }
            }
        }
    }
    (departments, scope.users, complete, incomplete)
}

/// One full Outbound run: read both sides, plan, apply (unless `dry_run`).
pub async fn run(
    client: &DingTalkClient,
    dir: &dyn Directory,
    mapping: &OutboundMapping,
    opts: &OutboundOptions,
    dry_run: bool,
) -> Result<OutboundReport, SyncError> {
    let tree = dir.read_tree(None).await?;
    let mark = mark_of(&tree);
    let (departments, users, complete, incomplete) = read_dingtalk(client, opts.root).await;
    if departments.is_empty() {
        return Err(SyncError::Source(format!(
            "DingTalk department {} could not be read: {}",
            opts.root,
            incomplete.join("; ")
        )));
    }
    let plan = plan(
        &tree,
        &departments,
        &users,
        complete,
        incomplete,
        mapping,
        opts,
    );
    if dry_run {
        return Ok(report_of(&plan));
    }
    let mut r = apply(client, plan, &users).await;
    r.mark = Some(mark);
    Ok(r)
}

fn report_of(plan: &OutboundPlan) -> OutboundReport {
    OutboundReport {
        pending: plan.ops.len(),
        sample: plan.ops.iter().take(50).map(OutOp::describe).collect(),
        unchanged: plan.unchanged,
        kept: plan.kept,
        failures: plan.failures.clone(),
        complete: plan.complete,
        incomplete: plan.incomplete.clone(),
        suppressed_removals: plan.suppressed_removals,
        held: plan.held.clone(),
        people: plan.people,
        departments: plan.departments,
        ..Default::default()
    }
}

/// Applies a plan in order; a failed write is that object's failure, the rest go on.
pub async fn apply(client: &DingTalkClient, plan: OutboundPlan, users: &[User]) -> OutboundReport {
    let mut r = OutboundReport {
        pending: 0,
        sample: Vec::new(),
        ..report_of(&plan)
    };
    let mut created: HashMap<String, i64> = HashMap::new();
    let mut failed_new: HashSet<String> = HashSet::new();
    let resolve = |p: &Parent, created: &HashMap<String, i64>| match p {
        Parent::Id(id) => Some(*id),
        Parent::New(s) => created.get(s).copied(),
    };
    let existing: HashMap<&str, &User> = users.iter().map(|u| (u.userid.as_str(), u)).collect();
    for op in plan.ops {
        match op {
            OutOp::CreateDept {
                source,
                name,
                parent,
            } => {
                let Some(pid) = resolve(&parent, &created) else {
                    failed_new.insert(source.clone());
                    r.failures.push(failure(
                        ObjectKind::Department,
                        &source,
                        &name,
                        "ParentFailed",
                        "its parent department could not be created".into(),
                    ));
                    continue;
                };
                let mut req = DeptCreate::new(name.clone(), pid);
                req.source_identifier = Some(format!("{SOURCE_PREFIX}{source}"));
                r.writes += 1;
                match client.create_department(&req).await {
                    Ok(id) => {
                        created.insert(source, id);
                        r.departments_created += 1;
                    }
                    Err(e) => {
                        failed_new.insert(source.clone());
                        r.failures
                            .push(failed(ObjectKind::Department, &source, &name, &e));
                    }
                }
            }
            OutOp::UpdateDept {
                dept_id,
                name,
                parent,
            } => {
                let mut req = DeptUpdate::new(dept_id);
                req.name = name.clone();
                if let Some(p) = &parent {
                    req.parent_id = resolve(p, &created);
                }
                r.writes += 1;
                match client.update_department(&req).await {
                    Ok(()) => r.departments_updated += 1,
                    Err(e) => r.failures.push(failed(
                        ObjectKind::Department,
                        &dept_id.to_string(),
                        name.as_deref().unwrap_or(""),
                        &e,
                    )),
                }
            }
            OutOp::CreateUser { person, dept } => {
                let Some(did) = resolve(&dept, &created) else {
                    r.failures.push(failure(
                        ObjectKind::Person,
                        &person.userid,
                        "",
                        "ParentFailed",
                        "their department could not be created".into(),
                    ));
                    continue;
                };
                r.writes += 1;
                match client.create_user(&user_create(&person, did)).await {
                    Ok(_) => r.created += 1,
                    // The userid is taken elsewhere in the enterprise: the same person, so
                    // update them and add this department to their memberships.
                    Err(DingTalkError::Invalid { errcode: 60102, .. }) => {
                        match client.get_user(&person.userid).await {
                            Ok(cur) => {
                                let mut depts = cur.dept_id_list.clone().unwrap_or_default();
                                if !depts.contains(&did) {
                                    depts.push(did);
                                }
                                let mut fields = person.fields.clone();
                                fields.remove("mobile");
                                fields.retain(|f, v| {
                                    !v.is_empty()
                                        && current_field(&cur, f).as_deref() != Some(v.as_str())
                                });
                                r.writes += 1;
                                match client
                                    .update_user(&user_update(&person.userid, &fields, Some(depts)))
                                    .await
                                {
                                    Ok(()) => r.updated += 1,
                                    Err(e) => r.failures.push(failed(
                                        ObjectKind::Person,
                                        &person.userid,
                                        "",
                                        &e,
                                    )),
                                }
                            }
                            Err(e) => {
                                r.failures
                                    .push(failed(ObjectKind::Person, &person.userid, "", &e))
                            }
                        }
                    }
                    Err(e) => r
                        .failures
                        .push(failed(ObjectKind::Person, &person.userid, "", &e)),
                }
            }
            OutOp::UpdateUser {
                userid,
                fields,
                depts,
            } => {
                let removal = fields.is_empty() && depts.as_ref().is_some_and(|(_, d)| d.is_none());
                let list = match &depts {
                    None => None,
                    Some((outside, None)) => Some(outside.clone()),
                    Some((outside, Some(d))) => match resolve(d, &created) {
                        Some(id) => {
                            let mut v = outside.clone();
                            v.push(id);
                            Some(v)
                        }
                        None => {
                            r.failures.push(failure(
                                ObjectKind::Person,
                                &userid,
                                "",
                                "ParentFailed",
                                "their department could not be created".into(),
                            ));
                            continue;
                        }
                    },
                };
                let moved = list.is_some() && !removal;
                r.writes += 1;
                match client
                    .update_user(&user_update(&userid, &fields, list))
                    .await
                {
                    Ok(()) if removal => r.deleted += 1,
                    Ok(()) => {
                        if !fields.is_empty() {
                            r.updated += 1;
                        } else if moved {
                            r.moved += 1;
                        }
                        if moved && !fields.is_empty() {
                            r.moved += 1;
                        }
                    }
                    Err(e) => r.failures.push(failed(
                        ObjectKind::Person,
                        &userid,
                        existing
                            .get(userid.as_str())
                            .and_then(|u| u.name.as_deref())
                            .unwrap_or(""),
                        &e,
                    )),
                }
            }
            OutOp::DeleteUser { userid } => {
                r.writes += 1;
                match client.delete_user(&userid).await {
                    Ok(()) => r.deleted += 1,
                    Err(e) => r.failures.push(failed(ObjectKind::Person, &userid, "", &e)),
                }
            }
            OutOp::DeleteDept { dept_id, name } => {
                r.writes += 1;
                match client.delete_department(dept_id).await {
                    Ok(()) => r.departments_deleted += 1,
                    Err(e) => r.failures.push(failed(
                        ObjectKind::Department,
                        &dept_id.to_string(),
                        &name,
                        &e,
                    )),
                }
            }
        }
    }
    r
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
