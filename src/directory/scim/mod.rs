//! SCIM 2.0 directory backend: people are Users, departments are Groups nested by membership
//! (a sub-department's Group is a member of its parent's), the anchor is `externalId`
//! (`dingsync:user|dept:<corpId>:<id>`), a leaver is `active: false`. DingTalk roles, when a
//! target turns them on, are Groups of their own (`roles.rs`). A person's manager is the
//! enterprise extension's `manager` (`value`: the manager's id; attribute `manager`, or its
//! full path); a department's heads (its `owner` attribute) are a Group of their own
//! (`heads.rs`).
//!
//! Attribute names in a FieldMapping may be SCIM paths — `userName`, `displayName`, `title`,
//! `name.familyName`, `emails[type eq "work"].value`, `phoneNumbers[type eq "mobile"].value`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber` — or the LDAP
//! names one mapping may share with an LDAP target: `uid` (userName), `cn` (displayName),
//! `sn` (name.familyName), `givenName`, `mail` (work email), `mobile` (mobile phone),
//! `telephoneNumber` (work phone), `employeeNumber`, `title`.
//!
//! Servers differ; this backend relies only on POST/GET/PUT/DELETE with `If-Match` when
//! offered, and on PATCH of Group members and names where `ServiceProviderConfig` offers it
//! (`members.rs` says why), reads a person's departments from the Groups' members (some
//! servers never fill a User's `groups`), and ignores members that point at deleted users.

pub mod client;
mod heads;
mod members;
mod roles;

pub use members::MemberWrites;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;
use serde_json::{Value, json};

use self::client::{Resource, ScimClient, ScimError};
use self::members::{Locks, Pending};
use super::{Attrs, DeptEntry, Directory, DirectoryError, PersonEntry, Snapshot};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

impl From<ScimError> for DirectoryError {
    fn from(e: ScimError) -> Self {
        match e {
            ScimError::Unauthorized { .. } | ScimError::Forbidden { .. } => {
                DirectoryError::Auth(e.to_string())
            }
            ScimError::Unavailable { .. } => DirectoryError::Unavailable(e.to_string()),
            ScimError::Config { .. } => DirectoryError::Config(e.to_string()),
            _ => DirectoryError::Rejected(e.to_string()),
        }
    }
}

/// Where an attribute name lives in a SCIM User.
#[derive(Debug, Clone, PartialEq)]
enum Path {
    Top(&'static str),
    Sub(&'static str, &'static str),
    Typed(&'static str, String),
    Enterprise(String),
    /// The enterprise extension's `manager`, a complex value: its `value` is the manager's id.
    Manager,
}

fn path_of(name: &str) -> Option<Path> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "uid" | "username" => Path::Top("userName"),
        "cn" | "displayname" => Path::Top("displayName"),
        "title" => Path::Top("title"),
        "nickname" => Path::Top("nickName"),
        "preferredlanguage" => Path::Top("preferredLanguage"),
        "sn" | "name.familyname" => Path::Sub("name", "familyName"),
        "givenname" | "name.givenname" => Path::Sub("name", "givenName"),
        "name.formatted" => Path::Sub("name", "formatted"),
        "mail" => Path::Typed("emails", "work".into()),
        "mobile" => Path::Typed("phoneNumbers", "mobile".into()),
        "telephonenumber" => Path::Typed("phoneNumbers", "work".into()),
        "employeenumber" => Path::Enterprise("employeeNumber".into()),
        "manager" => Path::Manager,
        _ => {
            for multi in ["emails", "phonenumbers"] {
                if let Some(rest) = lower.strip_prefix(&format!("{multi}[type eq \"")) {
                    let t = rest.strip_suffix("\"].value")?;
                    return Some(Path::Typed(
                        if multi == "emails" {
                            "emails"
                        } else {
                            "phoneNumbers"
                        },
                        t.to_string(),
                    ));
                }
            }
            let ent = ENTERPRISE.to_ascii_lowercase();
            let attr = lower.strip_prefix(&format!("{ent}:"))?;
            if attr == "manager" || attr == "manager.value" {
                return Some(Path::Manager);
            }
            let field = match attr {
                "employeenumber" => "employeeNumber",
                "department" => "department",
                "costcenter" => "costCenter",
                "organization" => "organization",
                "division" => "division",
                _ => return None,
            };
            Path::Enterprise(field.into())
        }
    })
}

fn set(user: &mut Value, name: &str, values: &[String]) -> Result<(), DirectoryError> {
    let path = path_of(name).ok_or_else(|| {
        DirectoryError::Rejected(format!(
            "attribute {name:?}: not a SCIM User attribute this backend knows"
        ))
    })?;
    let value = values.first().cloned();
    match path {
        Path::Top(k) => match value {
            Some(v) => user[k] = json!(v),
            None => drop(user.as_object_mut().map(|o| o.remove(k))),
        },
        Path::Sub(k, sub) => {
            if !user[k].is_object() {
                user[k] = json!({});
            }
            match value {
                Some(v) => user[k][sub] = json!(v),
                None => drop(user[k].as_object_mut().map(|o| o.remove(sub))),
            }
        }
        Path::Typed(k, t) => {
            let mut list: Vec<Value> = user[k].as_array().cloned().unwrap_or_default();
            list.retain(|e| e["type"].as_str() != Some(t.as_str()));
            if let Some(v) = value {
                list.push(json!({"type": t, "value": v, "primary": list.is_empty()}));
            }
            if list.is_empty() {
                user.as_object_mut().map(|o| o.remove(k));
            } else {
                user[k] = Value::Array(list);
            }
        }
        Path::Enterprise(_) | Path::Manager => {
            if !user[ENTERPRISE].is_object() {
                user[ENTERPRISE] = json!({});
            }
            let (f, value) = match path {
                Path::Enterprise(f) => (f, value.map(|v| json!(v))),
                _ => ("manager".to_string(), value.map(|v| json!({ "value": v }))),
            };
            match value {
                Some(v) => user[ENTERPRISE][f.as_str()] = v,
                None => drop(
                    user[ENTERPRISE]
                        .as_object_mut()
                        .map(|o| o.remove(f.as_str())),
                ),
            }
            let schemas = user["schemas"].as_array_mut();
            if let Some(s) = schemas
                && !s.iter().any(|x| x == ENTERPRISE)
            {
                s.push(json!(ENTERPRISE));
            }
        }
    }
    Ok(())
}

/// Every attribute this backend can read from a User, under both spellings, names lowercased.
fn attrs_of(user: &Value) -> Attrs {
    let mut out = Attrs::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(k.to_ascii_lowercase(), vec![v.to_string()]);
        }
    };
    for (k, aliases) in [
        ("userName", &["uid"][..]),
        ("displayName", &["cn"][..]),
        ("title", &[][..]),
        ("nickName", &[][..]),
        ("preferredLanguage", &[][..]),
    ] {
        put(k, user[k].as_str());
        for a in aliases {
            put(a, user[k].as_str());
        }
    }
    put("name.familyName", user["name"]["familyName"].as_str());
    put("sn", user["name"]["familyName"].as_str());
    put("name.givenName", user["name"]["givenName"].as_str());
    put("givenName", user["name"]["givenName"].as_str());
    put("name.formatted", user["name"]["formatted"].as_str());
    for (k, key) in [("emails", "emails"), ("phoneNumbers", "phoneNumbers")] {
        for e in user[k].as_array().into_iter().flatten() {
            let t = e["type"].as_str().unwrap_or("other");
            put(
                &format!("{key}[type eq \"{t}\"].value"),
                e["value"].as_str(),
            );
            match (k, t) {
                ("emails", "work") => put("mail", e["value"].as_str()),
                ("phoneNumbers", "mobile") => put("mobile", e["value"].as_str()),
                ("phoneNumbers", "work") => put("telephoneNumber", e["value"].as_str()),
                _ => {}
            }
        }
    }
    if let Some(ext) = user[ENTERPRISE].as_object() {
        for (f, v) in ext {
            put(&format!("{ENTERPRISE}:{f}"), v.as_str());
            if f == "employeeNumber" {
                put("employeeNumber", v.as_str());
            }
        }
        let manager = ext.get("manager").and_then(|m| m["value"].as_str());
        for k in [
            "manager",
            &format!("{ENTERPRISE}:manager"),
            &format!("{ENTERPRISE}:manager.value"),
        ] {
            put(k, manager);
        }
    }
    out
}

fn anchor(kind: &str, corp: &str, id: &str) -> String {
    format!("dingsync:{kind}:{corp}:{id}")
}

/// A SCIM service provider as one target's node.
pub struct ScimDirectory {
    client: ScimClient,
    corp: String,
    /// Prefix of the target's node, stamped on the Groups it creates (`<prefix>/<name>`) so two
    /// targets' groups never share a name.
    prefix: String,
    index: Mutex<Index>,
    writes: std::sync::atomic::AtomicU64,
    /// How Group members are written, from the client's capabilities.
    member_writes: MemberWrites,
    /// Read-modify-writes of one resource run one at a time.
    locks: Locks,
    /// Member changes waiting for a Group's lock (replace path).
    pending: Pending,
    /// Role id → Group id, as the last role read or create found it (`roles.rs`).
    roles: Mutex<HashMap<String, String>>,
}

#[derive(Default)]
struct Index {
    people: HashMap<String, String>,
    depts: HashMap<String, String>,
    parents: HashMap<String, Option<String>>,
    /// Department id → its heads Group.
    heads: HashMap<String, String>,
}

impl ScimDirectory {
    pub fn new(client: ScimClient, corp: &str, node: &str) -> Self {
        Self {
            member_writes: MemberWrites::for_server(client.capabilities()),
            client,
            corp: corp.into(),
            prefix: node.trim().to_string(),
            index: Mutex::default(),
            writes: Default::default(),
            locks: Locks::default(),
            pending: Pending::default(),
            roles: Mutex::default(),
        }
    }

    /// How this directory writes Group members (PATCH where the server offers it).
    pub fn member_writes(&self) -> MemberWrites {
        self.member_writes
    }

    fn ix(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wrote(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn person(&self, id: &str) -> Result<String, DirectoryError> {
        self.ix()
            .people
            .get(id)
            .cloned()
            .ok_or_else(|| DirectoryError::Rejected(format!("person {id} is not in the directory")))
    }

    fn dept(&self, id: &str) -> Result<String, DirectoryError> {
        self.ix().depts.get(id).cloned().ok_or_else(|| {
            DirectoryError::Rejected(format!("department {id} is not in the directory"))
        })
    }

    fn group_name(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Take a user out of every group of this node (role groups included).
    async fn leave_groups(&self, scim_id: &str) -> Result<(), DirectoryError> {
        let mut groups: Vec<String> = self.ix().depts.values().cloned().collect();
        groups.extend(
            self.roles
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned(),
        );
        for g in groups {
            let body = self.client.get("Groups", &g).await?.body;
            if body["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x["value"].as_str() == Some(scim_id)))
            {
                self.set_members(&g, &[], &[scim_id.to_string()]).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Directory for ScimDirectory {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        let users = self.client.list("Users", None).await?;
        let groups = self.client.list("Groups", None).await?;
        let user_prefix = format!("dingsync:user:{}:", self.corp);
        let dept_prefix = format!("dingsync:dept:{}:", self.corp);
        let mut ix = Index::default();
        let mut snap = Snapshot::default();
        let mut by_scim: HashMap<String, String> = HashMap::new();
        let mut group_ids: HashMap<String, String> = HashMap::new();
        for g in &groups {
            if let Some(id) = g.body["externalId"]
                .as_str()
                .and_then(|e| e.strip_prefix(&dept_prefix))
            {
                group_ids.insert(g.id.clone(), id.to_string());
                ix.depts.insert(id.to_string(), g.id.clone());
            }
        }
        let mut heads = heads::heads_groups(&groups, &self.corp);
        let mut memberships: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut parents: HashMap<String, String> = HashMap::new();
        for g in &groups {
            let Some(dept) = group_ids.get(&g.id) else {
                continue;
            };
            for m in g.body["members"].as_array().into_iter().flatten() {
                let v = m["value"].as_str().unwrap_or_default();
                if let Some(child) = group_ids.get(v) {
                    parents.insert(child.clone(), dept.clone());
                } else {
                    memberships
                        .entry(v.to_string())
                        .or_default()
                        .push(dept.clone());
                }
            }
        }
        for g in &groups {
            let Some(dept) = group_ids.get(&g.id) else {
                continue;
            };
            let shown = g.body["displayName"].as_str().unwrap_or_default();
            let name = shown
                .strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(shown)
                .to_string();
            ix.parents.insert(dept.clone(), parents.get(dept).cloned());
            let mut attrs = Attrs::new();
            if let Some((group, members)) = heads.remove(dept) {
                ix.heads.insert(dept.clone(), group);
                attrs.insert(heads::OWNER, members);
            }
            snap.departments.push(DeptEntry {
                key: g.id.clone(),
                id: dept.clone(),
                name,
                parent: parents.get(dept).cloned(),
                attrs,
            });
        }
        for u in users {
            let external = u.body["externalId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut departments = memberships.remove(&u.id).unwrap_or_default();
            departments.sort();
            let entry = |id: Option<String>| PersonEntry {
                digest: None,
                key: u.id.clone(),
                id,
                attrs: attrs_of(&u.body),
                departments: departments.clone(),
                container: None,
                disabled: u.body["active"].as_bool() == Some(false),
            };
            if let Some(id) = external.strip_prefix(&user_prefix) {
                ix.people.insert(id.to_string(), u.id.clone());
                by_scim.insert(u.id.clone(), id.to_string());
                snap.people.push(entry(Some(id.to_string())));
            } else if external.is_empty() {
                snap.unlinked.push(entry(None));
            } else {
                let name = u.body["userName"].as_str().unwrap_or_default().to_string();
                let why = if external.starts_with("dingsync:") {
                    "anchored to another enterprise".to_string()
                } else {
                    format!("externalId {external:?} belongs to another system")
                };
                snap.skipped.push((u.id.clone(), why));
                snap.taken_names.push(name);
            }
        }
        // Members pointing at deleted users (some servers keep them) matched no user above
        // and are simply not read as anyone's department.
        *self.ix() = ix;
        Ok(snap)
    }

    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        _main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let mut user = json!({"schemas": [USER_SCHEMA], "externalId": anchor("user", &self.corp, id), "active": true});
        for (k, v) in attrs {
            if !v.is_empty() {
                set(&mut user, k, &v.to_vec())?;
            }
        }
        if user["userName"].as_str().is_none_or(str::is_empty) {
            return Err(DirectoryError::Rejected(format!(
                "person {id}: userName (uniqueName) is empty"
            )));
        }
        let created = self.client.create("Users", user).await?;
        self.wrote();
        self.ix().people.insert(id.to_string(), created.id);
        Ok(())
    }

    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        let external = anchor("user", &self.corp, id);
        self.edit("Users", key, |u| {
            u["externalId"] = json!(external);
            Ok(())
        })
        .await?;
        self.ix().people.insert(id.to_string(), key.to_string());
        Ok(())
    }

    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        let scim_id = self.person(id)?;
        self.edit("Users", &scim_id, |u| {
            for (k, v) in changes {
                set(u, k, &v.to_vec())?;
            }
            Ok(())
        })
        .await
    }

    async fn move_person(
        &self,
        _id: &str,
        _name: &str,
        _main_dept: &str,
    ) -> Result<(), DirectoryError> {
        // SCIM has no containers: the department is the Group membership alone.
        Ok(())
    }

    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        let scim_id = self.person(id)?;
        self.edit("Users", &scim_id, |u| {
            u["active"] = json!(false);
            Ok(())
        })
        .await?;
        self.leave_groups(&scim_id).await
    }

    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        let scim_id = self.person(id)?;
        self.edit("Users", &scim_id, |u| {
            u["active"] = json!(true);
            Ok(())
        })
        .await
    }

    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        let scim_id = self.person(id)?;
        self.leave_groups(&scim_id).await?;
        self.client.delete("Users", &scim_id).await?;
        self.wrote();
        self.ix().people.remove(id);
        Ok(())
    }

    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        let group = self.dept(dept)?;
        let add: Vec<(String, &str)> = people
            .iter()
            .map(|p| self.person(p).map(|s| (s, "User")))
            .collect::<Result<_, _>>()?;
        self.set_members(&group, &add, &[]).await
    }

    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        let group = self.dept(dept)?;
        let remove: Vec<String> = people
            .iter()
            .filter_map(|p| self.ix().people.get(p).cloned())
            .collect();
        self.set_members(&group, &[], &remove).await
    }

    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        _attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        let parent_group = parent.map(|p| self.dept(p)).transpose()?;
        let group = json!({"schemas": [GROUP_SCHEMA], "displayName": self.group_name(name), "externalId": anchor("dept", &self.corp, id), "members": []});
        let created = self.client.create("Groups", group).await?;
        self.wrote();
        self.ix().depts.insert(id.to_string(), created.id.clone());
        self.ix()
            .parents
            .insert(id.to_string(), parent.map(Into::into));
        if let Some(pg) = parent_group {
            self.set_members(&pg, &[(created.id, "Group")], &[]).await?;
        }
        Ok(())
    }

    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        // SCIM Groups carry only a name and members: of department attributes, only the heads
        // (`owner`) have somewhere to go, a Group of their own.
        match heads::heads_in(changes) {
            Some(heads) => self.set_heads(id, &heads).await,
            None => Ok(()),
        }
    }

    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let group = self.dept(id)?;
        self.rename_group(&group, &self.group_name(name)).await?;
        self.rename_heads(id, &self.group_name(name)).await?;
        let old = self.ix().parents.get(id).cloned().flatten();
        if old.as_deref() != parent {
            if let Some(o) = old {
                let og = self.dept(&o)?;
                self.set_members(&og, &[], std::slice::from_ref(&group))
                    .await?;
            }
            if let Some(p) = parent {
                let pg = self.dept(p)?;
                self.set_members(&pg, &[(group.clone(), "Group")], &[])
                    .await?;
            }
            self.ix()
                .parents
                .insert(id.to_string(), parent.map(Into::into));
        }
        Ok(())
    }

    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        let group = self.dept(id)?;
        self.delete_heads(id).await?;
        let parent = self.ix().parents.get(id).cloned().flatten();
        if let Some(p) = parent
            && let Ok(pg) = self.dept(&p)
        {
            self.set_members(&pg, &[], std::slice::from_ref(&group))
                .await?;
        }
        self.client.delete("Groups", &group).await?;
        self.wrote();
        self.ix().depts.remove(id);
        Ok(())
    }

    async fn read_roles(&self) -> Result<Vec<super::RoleEntry>, DirectoryError> {
        self.read_role_groups().await
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        self.create_role_group(id, name, members).await
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        self.rename_role_group(id, name).await
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        self.role_group_members(id, add, remove).await
    }
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        self.delete_role_group(id).await
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.ix().people.get(id).cloned()
    }
    fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The service provider as an Outbound source: Groups are departments (a group listed as
    /// a member of another is its child), active Users are people, each in the first group
    /// (by name) that lists them. SCIM has no server-side change feed every server supports,
    /// so `since` filters on `meta.lastModified` here, after one listing.
    async fn read_tree(&self, since: Option<&str>) -> Result<super::SourceTree, DirectoryError> {
        use super::{SourceDept, SourcePerson, SourceTree};
        let users = self.client.list("Users", None).await?;
        let mut groups = self.client.list("Groups", None).await?;
        // A department's heads Group (`heads.rs`) is no department of its own.
        groups.retain(|g| !heads::is_heads_group(g));
        let name_of = |g: &Resource| {
            let shown = g.body["displayName"].as_str().unwrap_or_default();
            shown
                .strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(shown)
                .to_string()
        };
        groups.sort_by_key(|g| name_of(g));
        let group_ids: std::collections::HashSet<&str> =
            groups.iter().map(|g| g.id.as_str()).collect();
        let mut parent: HashMap<String, String> = HashMap::new();
        let mut dept_of: HashMap<String, String> = HashMap::new();
        for g in &groups {
            for m in g.body["members"].as_array().into_iter().flatten() {
                let v = m["value"].as_str().unwrap_or_default();
                if group_ids.contains(v) {
                    parent.entry(v.to_string()).or_insert_with(|| g.id.clone());
                } else {
                    dept_of.entry(v.to_string()).or_insert_with(|| g.id.clone());
                }
            }
        }
        // Parents before children.
        let depth = |id: &str| {
            let mut n = 0;
            let mut cur = parent.get(id);
            while let Some(p) = cur {
                n += 1;
                if n > groups.len() {
                    break;
                }
                cur = parent.get(p);
            }
            n
        };
        let mut tree = SourceTree::default();
        let mut ordered: Vec<&Resource> = groups.iter().collect();
        ordered.sort_by_key(|g| depth(&g.id));
        for g in ordered {
            tree.departments.push(SourceDept {
                id: g.id.clone(),
                name: name_of(g),
                parent: parent.get(&g.id).cloned(),
                attrs: Attrs::new(),
            });
        }
        let mut stamp = since.map(str::to_string);
        let mut all = Vec::new();
        for u in users {
            if u.body["active"].as_bool() == Some(false) {
                continue;
            }
            let dept = dept_of.get(&u.id).cloned();
            all.push((u.id.clone(), dept.clone()));
            let modified = u.body["meta"]["lastModified"].as_str().map(str::to_string);
            if since.is_some_and(|s| modified.as_deref().is_some_and(|m| m < s)) {
                continue;
            }
            if let Some(m) = &modified
                && stamp.as_deref().is_none_or(|s| m.as_str() > s)
            {
                stamp = Some(m.clone());
            }
            let mut attrs = attrs_of(&u.body);
            if let Some(m) = modified {
                attrs.insert("modifytimestamp", vec![m]);
            }
            tree.people.push(SourcePerson {
                id: u.id.clone(),
                key: u.body["userName"].as_str().unwrap_or(&u.id).to_string(),
                attrs,
                dept,
            });
        }
        if since.is_some() {
            tree.all_people = Some(all);
        }
        tree.stamp = stamp;
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_under_both_spellings() {
        let mut u = json!({"schemas": [USER_SCHEMA]});
        set(&mut u, "uid", &["zhangwei".into()]).unwrap();
        set(&mut u, "cn", &["张伟".into()]).unwrap();
        set(&mut u, "mail", &["zw@corp.example".into()]).unwrap();
        set(
            &mut u,
            "phoneNumbers[type eq \"mobile\"].value",
            &["138".into()],
        )
        .unwrap();
        set(
            &mut u,
            &format!("{ENTERPRISE}:employeeNumber"),
            &["E1".into()],
        )
        .unwrap();
        let a = attrs_of(&u);
        assert_eq!(
            a.values_of("username").unwrap(),
            vec!["zhangwei".to_string()]
        );
        assert_eq!(a.values_of("uid").unwrap(), vec!["zhangwei".to_string()]);
        assert_eq!(
            a.values_of("displayname").unwrap(),
            a.values_of("cn").unwrap()
        );
        assert_eq!(
            a.values_of("emails[type eq \"work\"].value").unwrap(),
            a.values_of("mail").unwrap()
        );
        assert_eq!(a.values_of("mobile").unwrap(), vec!["138".to_string()]);
        assert_eq!(
            a.values_of("employeenumber").unwrap(),
            vec!["E1".to_string()]
        );
        // Every attribute `set` writes reads back, or a rule for it would never settle.
        for name in ["nickName", "preferredLanguage", "name.formatted", "title"] {
            set(&mut u, name, &["v".into()]).unwrap();
            assert_eq!(
                attrs_of(&u).first(&name.to_ascii_lowercase()),
                Some("v"),
                "{name}"
            );
        }
        set(&mut u, "mail", &[]).unwrap();
        assert!(!attrs_of(&u).contains_key("mail"));
        assert!(set(&mut u, "favouriteColour", &["x".into()]).is_err());
    }
}
