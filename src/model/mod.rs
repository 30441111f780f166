//! The neutral model: departments and people as the source (DingTalk, or a directory for
//! outbound) has them, keyed by stable source ids. Every field a template may use is kept in
//! `fields`, under DingTalk's own field names, so mappings read like DingTalk's API docs.

mod fields;
mod role;
mod tree;

use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use fields::{Fields, extension_map};
pub use role::Role;
pub use tree::DeptTree;

/// Fields of a person a template may use (DingTalk's names). Templates naming anything else
/// are refused when the mapping is compiled, so a typo never renders as an empty string.
pub const PERSON_FIELDS: &[&str] = &[
    "userid",
    "unionid",
    "name",
    "mobile",
    "state_code",
    "telephone",
    "email",
    "org_email",
    "title",
    "job_number",
    "work_place",
    "remark",
    "hired_date",
    "manager_userid",
    // True when the person heads any of their in-scope departments; `leader_of`: those
    // departments' ids (text, like a department's `id`).
    "is_leader",
    "leader_of",
    "avatar",
    "active",
    "admin",
    "boss",
    "senior",
    "exclusive_account",
    "login_id",
    "extension",
    "dept_id_list",
    "main_dept_id",
    "dept_names",
    "corp_id",
    // Outbound: the directory attributes of the source entry (uid, cn, mail, ...).
    "uid",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "employeeNumber",
    "telephoneNumber",
    "userName",
];

/// Fields of a department a template may use.
pub const DEPARTMENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "parent_id",
    "order",
    "source_identifier",
    "corp_id",
    "path",
    // The department's heads (userids): `dept_manager_userid_list` of `department/get`, or
    // the members a full read lists as `leader` of it.
    "dept_manager_userid_list",
];

/// A department, keyed by its source id (DingTalk dept_id as text).
#[derive(Debug, Clone, PartialEq)]
pub struct Department {
    pub id: String,
    pub name: String,
    /// Parent's id; `None` for a root of the target's scope.
    pub parent: Option<String>,
    pub fields: Fields,
}

/// A person, keyed by userid.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: String,
    pub name: String,
    /// Every in-scope department the person belongs to.
    pub departments: Vec<String>,
    /// The department whose OU holds the person in the `OuTree` layout (`main_dept_id` to
    /// templates): the first in-scope department of their `dept_id_list`. DingTalk flags a
    /// main department only in `dept_position_list[].is_main`, which `user/get` returns and
    /// `user/list` (the full read) does not, and does not say that `dept_id_list` puts it
    /// first; the list's first is what both reads give alike, so a person's container never
    /// flips between a full sync and an event's re-read.
    pub main_department: Option<String>,
    pub fields: Fields,
}

impl Person {
    /// Whether a field has non-blank text ([`Person::text`] without the copy).
    pub fn has_text(&self, field: &str) -> bool {
        self.fields
            .text(field)
            .is_some_and(|s| !s.trim().is_empty())
    }

    /// A field as trimmed text, `None` when absent or empty.
    pub fn text(&self, field: &str) -> Option<String> {
        let s = self.fields.text(field)?.trim();
        (!s.is_empty()).then(|| s.to_string())
    }
}

/// Everything read from the source for one target.
#[derive(Debug, Clone, Default)]
pub struct SourceSnapshot {
    pub corp_id: String,
    /// Parents come before children.
    pub departments: Vec<Department>,
    pub people: Vec<Person>,
    /// False when any part of the read failed: such a snapshot never disables or deletes.
    pub complete: bool,
    /// Why the read was incomplete.
    pub incomplete: Vec<String>,
}

/// The records an incremental run is about (ids named by events), re-read from the source.
/// A named record the re-read does not return has left the enterprise or the scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// userids.
    pub people: BTreeSet<String>,
    /// dept_ids as text.
    pub departments: BTreeSet<String>,
    /// A role or a role assignment changed: the roles pass runs (`sync/inbound/roles.rs`).
    pub roles: bool,
}

impl Changes {
    pub fn people<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Self {
        Self {
            people: ids.into_iter().map(Into::into).collect(),
            departments: BTreeSet::new(),
            roles: false,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.people.is_empty() && self.departments.is_empty() && !self.roles
    }
}

impl SourceSnapshot {
    /// Put departments in parents-first order, drop departments whose parent chain is broken or
    /// cyclic (reported as incomplete), and people's links to departments not in scope.
    pub fn normalise(self) -> Self {
        self.normalise_within(&HashSet::new())
    }

    /// Keep only the records `changes` names (what an incremental run re-read); the snapshot's
    /// completeness is kept.
    pub fn restrict(mut self, changes: &Changes) -> Self {
        self.departments
            .retain(|d| changes.departments.contains(&d.id));
        self.people.retain(|p| changes.people.contains(&p.id));
        self
    }

    /// [`SourceSnapshot::normalise`] for a partial snapshot (an incremental run): departments
    /// in `known` (already in the directory) stay valid parents and memberships.
    pub fn normalise_within(mut self, known: &HashSet<String>) -> Self {
        let ids: HashSet<String> = self.departments.iter().map(|d| d.id.clone()).collect();
        let mut children: BTreeMap<Option<String>, Vec<Department>> = BTreeMap::new();
        for mut d in std::mem::take(&mut self.departments) {
            let order_parent = match &d.parent {
                Some(p) if ids.contains(p) => Some(p.clone()),
                Some(p) if known.contains(p) => None,
                _ => {
                    d.parent = None;
                    None
                }
            };
            children.entry(order_parent).or_default().push(d);
        }
        let mut ordered = Vec::with_capacity(ids.len());
        let mut queue: std::collections::VecDeque<Option<String>> = [None].into();
        while let Some(parent) = queue.pop_front() {
            if let Some(kids) = children.remove(&parent) {
                for k in kids {
                    queue.push_back(Some(k.id.clone()));
                    ordered.push(k);
                }
            }
        }
        for (_, cyclic) in children {
            for d in cyclic {
                self.incomplete.push(format!(
                    "department {} ({}) is in a parent cycle; skipped",
                    d.id, d.name
                ));
                self.complete = false;
            }
        }
        let kept: HashSet<String> = ordered.iter().map(|d| d.id.clone()).collect();
        for p in &mut self.people {
            p.departments
                .retain(|d| kept.contains(d.as_str()) || known.contains(d.as_str()));
            p.departments.sort();
            p.departments.dedup();
            if p.main_department
                .as_ref()
                .is_none_or(|m| !p.departments.contains(m))
            {
                p.main_department = p.departments.first().cloned();
            }
        }
        self.departments = ordered;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: &str, parent: Option<&str>) -> Department {
        Department {
            id: id.into(),
            name: format!("d{id}"),
            parent: parent.map(Into::into),
            fields: Default::default(),
        }
    }

    #[test]
    fn normalise_orders_parents_first_and_reports_cycles() {
        let snap = SourceSnapshot {
            departments: vec![
                dept("3", Some("2")),
                dept("2", Some("1")),
                dept("1", None),
                dept("8", Some("9")),
                dept("9", Some("8")),
            ],
            complete: true,
            ..Default::default()
        }
        .normalise();
        let order: Vec<&str> = snap.departments.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(order, vec!["1", "2", "3"]);
        assert!(!snap.complete);
        assert_eq!(snap.incomplete.len(), 2);
    }
}
