//! The simulated organisation: departments, people and the apps allowed to read them.
//!
//! Loaded from YAML (see `examples/simulator/org.yaml`) or produced by [`crate::sim::generate`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The root department's id, fixed by DingTalk.
pub const ROOT_DEPT: i64 = 1;

/// API permissions DingTalk grants per app (console names). An app without one gets
/// errcode 88 / sub_code 60011 on the matching API.
pub const PERM_DEPT_LIST: &str = "qyapi_get_department_list";
pub const PERM_DEPT_MEMBER: &str = "qyapi_get_department_member";
pub const PERM_MEMBER: &str = "qyapi_get_member";
pub const PERM_MEMBER_BY_MOBILE: &str = "qyapi_get_member_by_mobile";
pub const PERM_MANAGE: &str = "qyapi_manage_addresslist";
/// Field permission "employee mobile": without it `mobile`/`state_code` are silently omitted.
pub const PERM_FIELD_MOBILE: &str = "Contact.User.mobile";
/// Field permission "email and other personal info": without it `email`, `org_email`,
/// `work_place`, `remark`, `extension`, `hired_date`, `telephone` are omitted.
pub const PERM_FIELD_PERSONAL: &str = "Contact.User.personal";
/// Personal permission needed by `/v1.0/contact/users/me`.
pub const PERM_USER_READ: &str = "Contact.User.Read";

pub const ALL_PERMISSIONS: &[&str] = &[
    PERM_DEPT_LIST,
    PERM_DEPT_MEMBER,
    PERM_MEMBER,
    PERM_MEMBER_BY_MOBILE,
    PERM_MANAGE,
    PERM_FIELD_MOBILE,
    PERM_FIELD_PERSONAL,
    PERM_USER_READ,
];

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("cannot read org file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("org file {path} is not valid YAML for an org: {source}")]
    Yaml {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("org is invalid: {0}")]
    Invalid(String),
}

/// One department. `parent_id` is `None` only for the root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
    /// Sort value within the parent, smaller first.
    #[serde(default)]
    pub order: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identifier: Option<String>,
    #[serde(default)]
    pub create_dept_group: bool,
    #[serde(default)]
    pub auto_add_user: bool,
    #[serde(default)]
    pub hide_dept: bool,
    /// Members see only this department (and what it permits).
    #[serde(default)]
    pub outer_dept: bool,
    /// Department heads (userids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manager_userids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Department {
    pub fn new(id: i64, name: impl Into<String>, parent_id: Option<i64>) -> Self {
        Self {
            id,
            name: name.into(),
            parent_id,
            order: 0,
            source_identifier: None,
            create_dept_group: false,
            auto_add_user: false,
            hide_dept: false,
            outer_dept: false,
            manager_userids: Vec::new(),
            brief: None,
            telephone: None,
            code: None,
        }
    }
}

/// One person (employee) of the org.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub userid: String,
    /// Generated from the userid when empty.
    #[serde(default)]
    pub unionid: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default = "default_state_code")]
    pub state_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// JSON object serialized as a string, as DingTalk returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hired_date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// All departments, first one is the main one.
    pub departments: Vec<i64>,
    /// Order per department (larger first within a department).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dept_order: BTreeMap<i64, i64>,
    /// Departments this person heads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_in: Vec<i64>,
    /// Has activated DingTalk (not "employed": inactive people are members too).
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub boss: bool,
    #[serde(default)]
    pub senior: bool,
    #[serde(default)]
    pub hide_mobile: bool,
    #[serde(default)]
    pub real_authed: bool,
    #[serde(default)]
    pub exclusive_account: bool,
    /// `sso` or `dingtalk` for exclusive accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_id: Option<String>,
    /// Creation and last modification, ms (for `order_field` entry_*/modify_*).
    #[serde(default)]
    pub created_ms: i64,
    #[serde(default)]
    pub modified_ms: i64,
}

fn default_state_code() -> String {
    "86".into()
}
fn yes() -> bool {
    true
}

/// Which part of the org an app may read. `None` everywhere = the whole org.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Departments whose subtrees are visible. Empty together with `users` = whole org.
    #[serde(default)]
    pub departments: Vec<i64>,
    /// Individually visible people.
    #[serde(default)]
    pub users: Vec<String>,
}

impl Scope {
    pub fn is_whole_org(&self) -> bool {
        self.departments.is_empty() && self.users.is_empty()
    }
}

/// An internal app of the org (AppKey/AppSecret, permissions, contact scope).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub app_key: String,
    pub app_secret: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Granted permissions; absent = all of [`ALL_PERMISSIONS`].
    #[serde(default = "all_permissions")]
    pub permissions: BTreeSet<String>,
    #[serde(default)]
    pub scope: Scope,
    /// Allowed OAuth `redirect_uri` prefixes; empty = any.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("app_key", &self.app_key)
            .field("app_secret", &"***")
            .field("permissions", &self.permissions)
            .field("scope", &self.scope)
            .finish()
    }
}

pub fn all_permissions() -> BTreeSet<String> {
    ALL_PERMISSIONS.iter().map(|s| s.to_string()).collect()
}

impl App {
    pub fn new(app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            name: None,
            permissions: all_permissions(),
            scope: Scope::default(),
            redirect_uris: Vec::new(),
        }
    }
    pub fn has(&self, perm: &str) -> bool {
        self.permissions.contains(perm)
    }
}

/// The whole organisation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub corp_id: String,
    pub name: String,
    #[serde(default)]
    pub departments: Vec<Department>,
    #[serde(default)]
    pub people: Vec<Person>,
    #[serde(default)]
    pub apps: Vec<App>,
    /// Role groups and their roles (see `sim/roles.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<super::roles::RoleGroup>,
}

impl Org {
    /// An org with only its root department.
    pub fn empty(corp_id: impl Into<String>, name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            corp_id: corp_id.into(),
            departments: vec![Department::new(ROOT_DEPT, name.clone(), None)],
            name,
            people: Vec::new(),
            apps: Vec::new(),
            roles: Vec::new(),
        }
    }

    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, OrgError> {
        let mut org: Org = serde_yaml::from_str(text).map_err(|source| OrgError::Yaml {
            path: origin.to_owned(),
            source,
        })?;
        org.normalize();
        org.validate()?;
        Ok(org)
    }

    pub fn load(path: &Path) -> Result<Self, OrgError> {
        let text = std::fs::read_to_string(path).map_err(|source| OrgError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Fills derived defaults: root department, unionids, parent of top-level departments.
    pub fn normalize(&mut self) {
        if !self.departments.iter().any(|d| d.id == ROOT_DEPT) {
            self.departments
                .insert(0, Department::new(ROOT_DEPT, self.name.clone(), None));
        }
        for d in &mut self.departments {
            if d.id != ROOT_DEPT && d.parent_id.is_none() {
                d.parent_id = Some(ROOT_DEPT);
            }
            if d.id == ROOT_DEPT {
                d.parent_id = None;
            }
        }
        for p in &mut self.people {
            if p.unionid.is_empty() {
                p.unionid = derive_unionid(&self.corp_id, &p.userid);
            }
        }
    }

    /// Structural checks: unique ids, existing parents, no cycles, known departments.
    pub fn validate(&self) -> Result<(), OrgError> {
        let bad = |m: String| Err(OrgError::Invalid(m));
        if self.corp_id.trim().is_empty() {
            return bad("corp_id must not be empty".into());
        }
        let mut ids = BTreeSet::new();
        for d in &self.departments {
            if !ids.insert(d.id) {
                return bad(format!("department id {} appears twice", d.id));
            }
            if d.id < 1 {
                return bad(format!("department id {} must be positive", d.id));
            }
        }
        for d in &self.departments {
            if let Some(p) = d.parent_id
                && !ids.contains(&p)
            {
                return bad(format!(
                    "department {} ({}) names unknown parent_id {p}",
                    d.id, d.name
                ));
            }
        }
        let parents: BTreeMap<i64, Option<i64>> = self
            .departments
            .iter()
            .map(|d| (d.id, d.parent_id))
            .collect();
        for d in &self.departments {
            let mut cur = d.parent_id;
            let mut steps = 0;
            while let Some(p) = cur {
                steps += 1;
                if p == d.id || steps > parents.len() {
                    return bad(format!("department {} is part of a parent cycle", d.id));
                }
                cur = parents.get(&p).copied().flatten();
            }
        }
        let mut userids = BTreeSet::new();
        let mut mobiles = BTreeSet::new();
        for p in &self.people {
            if p.userid.is_empty() || p.userid.len() > 64 {
                return bad(format!(
                    "person {:?}: userid must be 1-64 characters",
                    p.name
                ));
            }
            if !userids.insert(p.userid.as_str()) {
                return bad(format!("userid {} appears twice", p.userid));
            }
            if p.departments.is_empty() {
                return bad(format!("person {} has no departments", p.userid));
            }
            for d in &p.departments {
                if !ids.contains(d) {
                    return bad(format!("person {} names unknown department {d}", p.userid));
                }
            }
            if let Some(m) = &p.mobile
                && !mobiles.insert(m.as_str())
            {
                return bad(format!("mobile of {} is used twice", p.userid));
            }
        }
        let mut keys = BTreeSet::new();
        for a in &self.apps {
            if a.app_key.is_empty() || a.app_secret.is_empty() {
                return bad("every app needs app_key and app_secret".into());
            }
            if !keys.insert(a.app_key.as_str()) {
                return bad(format!("app_key {} appears twice", a.app_key));
            }
            for d in &a.scope.departments {
                if !ids.contains(d) {
                    return bad(format!(
                        "app {} scope names unknown department {d}",
                        a.app_key
                    ));
                }
            }
        }
        super::roles::validate(self).map_err(OrgError::Invalid)
    }

    pub fn department(&self, id: i64) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    pub fn person(&self, userid: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.userid == userid)
    }

    pub fn app(&self, app_key: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.app_key == app_key)
    }

    /// Direct children of `id`, sorted by (order, id).
    pub fn children(&self, id: i64) -> Vec<&Department> {
        let mut v: Vec<&Department> = self
            .departments
            .iter()
            .filter(|d| d.parent_id == Some(id))
            .collect();
        v.sort_by_key(|d| (d.order, d.id));
        v
    }

    /// `id` followed by its ancestors up to the root.
    pub fn ancestry(&self, id: i64) -> Vec<i64> {
        let mut out = vec![id];
        let mut cur = self.department(id).and_then(|d| d.parent_id);
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = self.department(p).and_then(|d| d.parent_id);
        }
        out
    }

    pub fn depth(&self, id: i64) -> usize {
        self.ancestry(id).len()
    }

    /// Direct members of `dept`.
    pub fn members(&self, dept: i64) -> Vec<&Person> {
        self.people
            .iter()
            .filter(|p| p.departments.contains(&dept))
            .collect()
    }

    /// All descendants of `id` (not including `id`).
    pub fn descendants(&self, id: i64) -> Vec<i64> {
        // Children of every department in one pass (not a scan of all per department).
        let mut children: std::collections::HashMap<i64, Vec<&Department>> = Default::default();
        for d in &self.departments {
            if let Some(p) = d.parent_id {
                children.entry(p).or_default().push(d);
            }
        }
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            let Some(cs) = children.get_mut(&cur) else {
                continue;
            };
            cs.sort_by_key(|d| (d.order, d.id));
            for c in cs.iter() {
                out.push(c.id);
                stack.push(c.id);
            }
        }
        out
    }

    /// Is `dept` visible to `app` (in or below a scope department)?
    pub fn dept_in_scope(&self, app: &App, dept: i64) -> bool {
        if app.scope.is_whole_org() {
            return true;
        }
        self.ancestry(dept)
            .iter()
            .any(|d| app.scope.departments.contains(d))
    }

    pub fn person_in_scope(&self, app: &App, p: &Person) -> bool {
        app.scope.is_whole_org()
            || app.scope.users.contains(&p.userid)
            || p.departments.iter().any(|d| self.dept_in_scope(app, *d))
    }
}

/// A stable, unionid-looking string (DingTalk's look like `iPiSxxxxxxxxiEiE`).
pub fn derive_unionid(corp_id: &str, userid: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{corp_id}/{userid}").as_bytes());
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let body: String = h
        .iter()
        .take(22)
        .map(|b| ALPHA[(*b as usize) % ALPHA.len()] as char)
        .collect();
    format!("{body}iEiE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_yaml_loads() {
        let text = include_str!("../../examples/simulator/org.yaml");
        let org = Org::from_yaml_str(text, "sim-org.yaml").unwrap();
        assert!(org.department(ROOT_DEPT).is_some());
        assert!(org.people.iter().filter(|p| p.name == "张伟").count() >= 2);
        assert!(!org.apps.is_empty());
    }

    #[test]
    fn rejects_unknown_parent_and_cycles() {
        let bad = "corp_id: dingx\nname: x\ndepartments:\n  - {id: 2, name: a, parent_id: 9}\n";
        let e = Org::from_yaml_str(bad, "t").unwrap_err().to_string();
        assert!(e.contains("unknown parent_id 9"), "{e}");
        let cyc = "corp_id: dingx\nname: x\ndepartments:\n  - {id: 2, name: a, parent_id: 3}\n  - {id: 3, name: b, parent_id: 2}\n";
        let e = Org::from_yaml_str(cyc, "t").unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let dup = "corp_id: dingx\nname: x\npeople:\n  - {userid: a, name: A, departments: [1]}\n  - {userid: a, name: B, departments: [1]}\n";
        assert!(Org::from_yaml_str(dup, "t").is_err());
    }
}
