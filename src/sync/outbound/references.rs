//! What refers to other people: a person's `manager_userid` and a department's heads
//! (`dept_manager_userid_list`), from directory references (an LDAP DN, a SCIM id) turned
//! into the userids those entries have in DingTalk; and the department fields besides the
//! name (`order`, `hide_dept`, `outer_dept`), checked before anything is written.
//!
//! A reference to an entry outside the node (gone, or never there) is no value: the manager
//! or head is cleared. A reference to an entry of the node that could not be planned (a
//! template or match failure) leaves DingTalk's value as it is, so one person's failure
//! never clears another's manager.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{OutboundReport, failure, plan::Parent};
use crate::{
    dingtalk::contacts::Department,
    directory::{SourceDept, ldap::dn::Dn},
    mapping::outbound::OutboundMapping,
    sync::{Failure, ObjectKind},
};

/// Directory references and the DingTalk userids they stand for.
#[derive(Default)]
pub(super) struct People {
    userid_of: HashMap<String, String>,
    /// Every entry of the node, planned or not.
    known: HashSet<String>,
}

/// The same entry however a reference spells it: an LDAP DN by its normalised form, any
/// other reference (a SCIM id) as given, lowercased.
fn ref_key(reference: &str) -> String {
    Dn::parse(reference)
        .map(|d| d.key())
        .unwrap_or_else(|_| reference.trim().to_lowercase())
}

impl People {
    pub(super) fn know(&mut self, key: &str) {
        self.known.insert(ref_key(key));
    }

    pub(super) fn add(&mut self, key: &str, userid: &str) {
        self.userid_of.insert(ref_key(key), userid.to_string());
    }

    /// The userids `refs` stand for; `None` when one is an entry of the node that could not
    /// be planned (its value is then left alone).
    pub(super) fn resolve(&self, refs: &[String]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for r in refs {
            let key = ref_key(r);
            match self.userid_of.get(&key) {
                Some(u) => out.push(u.clone()),
                None if self.known.contains(&key) => return None,
                None => {}
            }
        }
        Some(out)
    }
}

/// A department's fields besides the name, as they are to be written. `None`: left alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeptFields {
    pub order: Option<i64>,
    pub hide_dept: Option<bool>,
    pub outer_dept: Option<bool>,
    /// The heads, sorted; empty clears them.
    pub managers: Option<Vec<String>>,
}

impl DeptFields {
    pub fn is_empty(&self) -> bool {
        *self == DeptFields::default()
    }

    /// The names of the fields set, for `dingsync plan`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.order.is_some() {
            v.push("order");
        }
        if self.hide_dept.is_some() {
            v.push("hide_dept");
        }
        if self.outer_dept.is_some() {
            v.push("outer_dept");
        }
        if self.managers.is_some() {
            v.push("dept_manager_userid_list");
        }
        v
    }

    /// Only what differs from DingTalk's department `cur` (none: a new one).
    fn differing(self, cur: Option<&Department>) -> DeptFields {
        let Some(cur) = cur else {
            // A new department has no heads to clear.
            return DeptFields {
                managers: self.managers.filter(|m| !m.is_empty()),
                ..self
            };
        };
        let mut now = cur.dept_manager_userid_list.clone().unwrap_or_default();
        now.sort();
        DeptFields {
            order: self.order.filter(|o| cur.order != Some(*o)),
            hide_dept: (self.hide_dept).filter(|h| cur.hide_dept.unwrap_or(false) != *h),
            outer_dept: (self.outer_dept).filter(|o| cur.outer_dept.unwrap_or(false) != *o),
            managers: self.managers.filter(|m| *m != now),
        }
    }
}

/// A yes/no field: `true`/`false`, `1`/`0`, `yes`/`no` (any case); empty is no value.
fn flag(field: &str, v: &str) -> Result<Option<bool>, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        other => Err(format!("{field}: {other:?} is not true or false")),
    }
}

/// The department fields a container's rules give, checked: `order` a whole number, the
/// flags true or false, every head a person of the node placed in this department.
pub(super) fn wanted_fields(
    d: &SourceDept,
    mapping: &OutboundMapping,
    people: &People,
    members: &HashSet<&str>,
) -> Result<DeptFields, Failure> {
    let fail = |reason, message| failure(ObjectKind::Department, &d.id, &d.name, reason, message);
    let r = mapping
        .department_fields(&d.name, &d.attrs)
        .map_err(|e| fail("TemplateFailed", e.to_string()))?;
    let get = |f: &str| r.fields.get(f).map(String::as_str).unwrap_or("");
    let order = match get("order") {
        "" => None,
        v => Some(v.parse::<i64>().map_err(|_| {
            fail(
                "InvalidValue",
                format!("order: {v:?} is not a whole number"),
            )
        })?),
    };
    let invalid = |m| fail("InvalidValue", m);
    let managers = match (
        r.refs.get("dept_manager_userid_list"),
        r.fields.get("dept_manager_userid_list"),
    ) {
        (Some(refs), _) => people.resolve(refs),
        (None, Some(list)) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        (None, None) => None,
    };
    let managers = match managers {
        Some(mut m) => {
            m.sort();
            m.dedup();
            if let Some(outsider) = m.iter().find(|u| !members.contains(u.as_str())) {
                return Err(invalid(format!(
                    "dept_manager_userid_list: {outsider} is not a member of this department (DingTalk takes only members as its heads)"
                )));
            }
            Some(m)
        }
        None => None,
    };
    Ok(DeptFields {
        order,
        hide_dept: flag("hide_dept", get("hide_dept")).map_err(invalid)?,
        outer_dept: flag("outer_dept", get("outer_dept")).map_err(invalid)?,
        managers,
    })
}

/// Each planned container's department fields where they differ from DingTalk's: one
/// update per department, after the people (heads must be members first).
pub(super) fn plan_department_fields(
    tree: &[SourceDept],
    dept_of: &HashMap<&str, Parent>,
    current: &HashMap<i64, &Department>,
    mapping: &OutboundMapping,
    people: &People,
    placed: &HashMap<String, Parent>,
    report: &mut OutboundReport,
) -> Vec<super::OutOp> {
    let mut ops = Vec::new();
    if !mapping.has_department_fields() {
        return ops;
    }
    for d in tree {
        let Some(dept) = dept_of.get(d.id.as_str()) else {
            continue;
        };
        let members: HashSet<&str> = (placed.iter())
            .filter(|(_, p)| *p == dept)
            .map(|(u, _)| u.as_str())
            .collect();
        let wanted = match wanted_fields(d, mapping, people, &members) {
            Ok(w) => w,
            Err(f) => {
                report.failures.push(f);
                continue;
            }
        };
        let cur = match dept {
            Parent::Id(id) => current.get(id).copied(),
            Parent::New(_) => None,
        };
        let fields = wanted.differing(cur);
        if !fields.is_empty() {
            ops.push(super::OutOp::UpdateDeptFields {
                dept: dept.clone(),
                name: d.name.clone(),
                fields,
            });
        }
    }
    ops
}

/// A person's references resolved into their fields: `manager_userid` becomes the
/// manager's userid (empty: none), or is left out when it cannot be known.
pub(super) fn resolve_person(
    refs: &BTreeMap<String, Vec<String>>,
    fields: &mut BTreeMap<String, String>,
    people: &People,
) {
    for (field, list) in refs {
        match people.resolve(list) {
            Some(userids) => {
                let first = userids.into_iter().next().unwrap_or_default();
                fields.insert(field.clone(), first);
            }
            None => {
                fields.remove(field);
            }
        }
    }
}
