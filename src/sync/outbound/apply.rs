//! Applying an Outbound plan to DingTalk, in order. A failed write is that object's failure
//! and the rest go on; what needs a department that could not be created is skipped.

use std::collections::{BTreeMap, HashMap};

use super::{
    DingTalkSink, OutboundReport, SOURCE_PREFIX, failed, failure,
    fields::{current_field, user_create, user_update},
    matching::normalized,
    parent_failed,
    per_dept::PerDept,
    plan::{OutOp, OutboundPlan, Parent},
    references::DeptFields,
};
use crate::{
    dingtalk::{
        DingTalkError,
        contacts::User,
        write::{DeptCreate, DeptOrderWrite, DeptTitleWrite, DeptUpdate, UserUpdate},
    },
    mapping::outbound::OutboundPerson,
    sync::{Failure, ObjectKind},
};

/// Applies a plan in order; a failed write is that object's failure, the rest go on. `users`
/// are DingTalk's users as read, to name them in failures.
pub async fn apply(sink: &dyn DingTalkSink, plan: OutboundPlan, users: &[User]) -> OutboundReport {
    let OutboundPlan { ops, report } = plan;
    let mut run = Applying {
        sink,
        report,
        created: HashMap::new(),
        existing: users.iter().map(|u| (u.userid.as_str(), u)).collect(),
    };
    for op in ops {
        run.apply(op).await;
    }
    run.report
}

/// One plan being applied.
struct Applying<'a> {
    sink: &'a dyn DingTalkSink,
    report: OutboundReport,
    /// Departments created in this run: directory id → DingTalk id.
    created: HashMap<String, i64>,
    existing: HashMap<&'a str, &'a User>,
}

impl Applying<'_> {
    async fn apply(&mut self, op: OutOp) {
        match op {
            OutOp::CreateDept {
                source,
                name,
                parent,
            } => self.create_department(source, name, parent).await,
            OutOp::UpdateDept {
                dept_id,
                name,
                parent,
            } => self.update_department(dept_id, name, parent).await,
            OutOp::CreateUser { person, dept } => self.create_user(person, dept).await,
            OutOp::UpdateUser {
                userid,
                fields,
                depts,
            } => self.update_user(userid, fields, depts).await,
            OutOp::DeleteUser { userid } => self.delete_user(userid).await,
            OutOp::DeleteDept { dept_id, name } => self.delete_department(dept_id, name).await,
            OutOp::AdoptDept {
                dept_id,
                source,
                name,
            } => self.adopt_department(dept_id, source, name).await,
            OutOp::UserDeptFields {
                userid,
                dept,
                fields,
            } => self.update_user_dept_fields(userid, dept, fields).await,
            OutOp::UpdateDeptFields { dept, name, fields } => {
                self.update_department_fields(dept, name, fields).await
            }
        }
    }

    /// A department's DingTalk id; `None` for one this run failed to create.
    fn resolve(&self, p: &Parent) -> Option<i64> {
        match p {
            Parent::Id(id) => Some(*id),
            Parent::New(s) => self.created.get(s).copied(),
        }
    }

    fn fail(&mut self, kind: ObjectKind, id: &str, name: &str, e: &DingTalkError) {
        self.report.failures.push(failed(kind, id, name, e));
    }

    async fn create_department(&mut self, source: String, name: String, parent: Parent) {
        let Some(pid) = self.resolve(&parent) else {
            let f = parent_failed(ObjectKind::Department, &source, &name);
            self.report.failures.push(f);
            return;
        };
        let mut req = DeptCreate::new(name, pid);
        req.source_identifier = Some(format!("{SOURCE_PREFIX}{source}"));
        self.report.writes += 1;
        match self.sink.create_department(&req).await {
            Ok(id) => {
                self.created.insert(source, id);
                self.report.departments_created += 1;
            }
            Err(e @ DingTalkError::Invalid { errcode: 60021, .. }) => {
                let mut f = failed(ObjectKind::Department, &source, &req.name, &e);
                f.reason = "AlreadyExists".into();
                f.message = format!(
                    "{e}; that department was not created by dingsync: set adoptExisting: true on the SyncTarget to adopt it"
                );
                self.report.failures.push(f);
            }
            Err(e) => self.fail(ObjectKind::Department, &source, &req.name, &e),
        }
    }

    /// A person's order and title in their department.
    async fn update_user_dept_fields(&mut self, userid: String, dept: Parent, f: PerDept) {
        // A person this run could not place is reported already.
        let Some(dept_id) = self.resolve(&dept) else {
            return;
        };
        let update = UserUpdate {
            userid: userid.clone(),
            dept_order_list: f.order.map(|order| vec![DeptOrderWrite { dept_id, order }]),
            dept_title_list: f.title.map(|title| vec![DeptTitleWrite { dept_id, title }]),
            ..Default::default()
        };
        self.report.writes += 1;
        match self.sink.update_user(&update).await {
            Ok(()) => self.report.updated += 1,
            Err(e) => self.fail(ObjectKind::Person, &userid, "", &e),
        }
    }

    /// A department's order, visibility and heads.
    async fn update_department_fields(&mut self, dept: Parent, name: String, f: DeptFields) {
        // A department this run failed to create is reported already.
        let Some(id) = self.resolve(&dept) else {
            return;
        };
        let mut req = DeptUpdate::new(id);
        req.order = f.order;
        req.hide_dept = f.hide_dept;
        req.outer_dept = f.outer_dept;
        req.dept_manager_userid_list = f.managers;
        self.report.writes += 1;
        match self.sink.update_department(&req).await {
            Ok(()) => self.report.departments_updated += 1,
            Err(e) => self.fail(ObjectKind::Department, &id.to_string(), &name, &e),
        }
    }

    /// Marks an existing department with the container's id: dingsync manages it from now on.
    async fn adopt_department(&mut self, dept_id: i64, source: String, name: String) {
        let mut req = DeptUpdate::new(dept_id);
        req.source_identifier = Some(format!("{SOURCE_PREFIX}{source}"));
        self.report.writes += 1;
        match self.sink.update_department(&req).await {
            Ok(()) => self.report.departments_adopted += 1,
            Err(e) => self.fail(ObjectKind::Department, &source, &name, &e),
        }
    }

    async fn update_department(
        &mut self,
        dept_id: i64,
        name: Option<String>,
        parent: Option<Parent>,
    ) {
        let mut req = DeptUpdate::new(dept_id);
        req.name = name;
        if let Some(p) = &parent {
            req.parent_id = self.resolve(p);
        }
        self.report.writes += 1;
        match self.sink.update_department(&req).await {
            Ok(()) => self.report.departments_updated += 1,
            Err(e) => {
                let name = req.name.as_deref().unwrap_or("");
                self.fail(ObjectKind::Department, &dept_id.to_string(), name, &e);
            }
        }
    }

    async fn create_user(&mut self, person: OutboundPerson, dept: Parent) {
        let Some(did) = self.resolve(&dept) else {
            let f = parent_failed(ObjectKind::Person, &person.userid, "");
            self.report.failures.push(f);
            return;
        };
        self.report.writes += 1;
        match self.sink.create_user(&user_create(&person, did)).await {
            Ok(()) => self.report.created += 1,
            // The userid is taken elsewhere in the enterprise: the same person, so update
            // them and add this department to their memberships.
            Err(DingTalkError::Invalid { errcode: 60102, .. }) => {
                self.adopt_user(person, did).await;
            }
            Err(DingTalkError::Invalid { errcode: 60104, .. }) => {
                self.taken(person, did, "mobile").await;
            }
            Err(DingTalkError::Invalid { errcode: 60106, .. }) => {
                self.taken(person, did, "email").await;
            }
            Err(e) => self.fail(ObjectKind::Person, &person.userid, "", &e),
        }
    }

    /// DingTalk has the person's mobile (60104) or email (60106) on another user: that user
    /// is found (`getbymobile`; an email among the users read) and linked when a `match` rule
    /// on the field allows it, else the person fails naming them.
    async fn taken(&mut self, person: OutboundPerson, did: i64, field: &str) {
        let value = person.fields.get(field).cloned().unwrap_or_default();
        let owner = match field {
            "mobile" => match self.sink.user_by_mobile(&value).await {
                Ok(owner) => owner,
                Err(e) => return self.fail(ObjectKind::Person, &person.userid, "", &e),
            },
            _ => self
                .existing
                .values()
                .find(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| normalized(field, e) == normalized(field, &value))
                })
                .map(|u| u.userid.clone()),
        };
        match owner {
            Some(userid) if person.key(field).is_some() => {
                self.report.linked += 1;
                self.adopt_user(OutboundPerson { userid, ..person }, did)
                    .await;
            }
            owner => {
                let f = taken_failure(&person.userid, field, &value, owner.as_deref());
                self.report.failures.push(f);
            }
        }
    }

    /// Someone DingTalk already has outside the subtree: their differing fields (never the
    /// mobile) updated, and `did` added to their departments.
    async fn adopt_user(&mut self, person: OutboundPerson, did: i64) {
        let cur = match self.sink.get_user(&person.userid).await {
            Ok(cur) => cur,
            Err(e) => return self.fail(ObjectKind::Person, &person.userid, "", &e),
        };
        let mut depts = cur.dept_id_list.clone().unwrap_or_default();
        if !depts.contains(&did) {
            depts.push(did);
        }
        let mut fields = person.fields;
        fields.remove("mobile");
        fields
            .retain(|f, v| !v.is_empty() && current_field(&cur, f).as_deref() != Some(v.as_str()));
        self.report.writes += 1;
        let update = user_update(
            &person.userid,
            &fields,
            Some(depts),
            cur.extension.as_deref(),
        );
        match self.sink.update_user(&update).await {
            Ok(()) => self.report.updated += 1,
            Err(e) => self.fail(ObjectKind::Person, &person.userid, "", &e),
        }
    }

    /// Fields, memberships, or both; with no fields and no department of the subtree left,
    /// it takes the user out of the subtree (a removal).
    async fn update_user(
        &mut self,
        userid: String,
        fields: BTreeMap<String, String>,
        depts: Option<(Vec<i64>, Option<Parent>)>,
    ) {
        let removal = fields.is_empty() && depts.as_ref().is_some_and(|(_, d)| d.is_none());
        let list = match depts {
            None => None,
            Some((outside, None)) => Some(outside),
            Some((mut outside, Some(d))) => match self.resolve(&d) {
                Some(id) => {
                    outside.push(id);
                    Some(outside)
                }
                None => {
                    let f = parent_failed(ObjectKind::Person, &userid, "");
                    self.report.failures.push(f);
                    return;
                }
            },
        };
        let moved = list.is_some() && !removal;
        self.report.writes += 1;
        let current = self.existing.get(userid.as_str());
        let ext = current.and_then(|u| u.extension.as_deref());
        match self
            .sink
            .update_user(&user_update(&userid, &fields, list, ext))
            .await
        {
            Ok(()) if removal => self.report.deleted += 1,
            Ok(()) => {
                self.report.updated += usize::from(!fields.is_empty());
                self.report.moved += usize::from(moved);
            }
            Err(e) => {
                let existing = self.existing.get(userid.as_str()).copied();
                let name = existing.and_then(|u| u.name.as_deref()).unwrap_or("");
                self.report
                    .failures
                    .push(failed(ObjectKind::Person, &userid, name, &e));
            }
        }
    }

    async fn delete_user(&mut self, userid: String) {
        self.report.writes += 1;
        match self.sink.delete_user(&userid).await {
            Ok(()) => self.report.deleted += 1,
            Err(e) => self.fail(ObjectKind::Person, &userid, "", &e),
        }
    }

    async fn delete_department(&mut self, dept_id: i64, name: String) {
        self.report.writes += 1;
        match self.sink.delete_department(dept_id).await {
            Ok(()) => self.report.departments_deleted += 1,
            Err(e) => self.fail(ObjectKind::Department, &dept_id.to_string(), &name, &e),
        }
    }
}

/// A person whose mobile or email another DingTalk user has, and no rule links them.
fn taken_failure(userid: &str, field: &str, value: &str, owner: Option<&str>) -> Failure {
    let message = match owner {
        Some(owner) => format!(
            "{field} {value} already belongs to DingTalk user {owner}; add a match rule on {field} to the FieldMapping to link this person to them, or change the {field} in one place"
        ),
        None => format!(
            "{field} {value} already belongs to a DingTalk user this app cannot see (errcode {})",
            if field == "mobile" { 60104 } else { 60106 }
        ),
    };
    failure(ObjectKind::Person, userid, "", "AlreadyExists", message)
}
